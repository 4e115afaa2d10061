//! Snapshot assertions for rendered text: the expected output is a file
//! checked in under `guest/tests/snapshots/`, so a change to what people see
//! shows up in review as a diff of that file.
//!
//! `UPDATE_SNAPSHOTS=1 cargo test -p envmgr-guest` writes the files anew.

use std::fs;
use std::path::PathBuf;

/// Compare `actual` with the snapshot `name`.md, or rewrite the snapshot
/// when `UPDATE_SNAPSHOTS=1`.
pub fn assert_snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.md"));
    if std::env::var("UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
        fs::create_dir_all(path.parent().expect("a snapshot directory"))
            .expect("create the snapshot directory");
        fs::write(&path, actual).expect("write the snapshot");
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "snapshot {} cannot be read ({error}); to write it, run\n  \
             UPDATE_SNAPSHOTS=1 cargo test -p envmgr-guest",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "snapshot {} differs (- expected, + actual):\n{}\n\
             If the new text is right, run\n  UPDATE_SNAPSHOTS=1 cargo test -p envmgr-guest\n\
             and review the change to the file.",
            path.display(),
            line_diff(&expected, actual)
        );
    }
}

/// A unified-style line diff (longest common subsequence; snapshots are
/// short), every line shown with ` `, `-` or `+`.
fn line_diff(expected: &str, actual: &str) -> String {
    let old: Vec<&str> = expected.split('\n').collect();
    let new: Vec<&str> = actual.split('\n').collect();
    // common[i][j]: length of the LCS of old[i..] and new[j..].
    let mut common = vec![vec![0usize; new.len() + 1]; old.len() + 1];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            common[i][j] = if old[i] == new[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut diff = Vec::new();
    while i < old.len() || j < new.len() {
        if i < old.len() && j < new.len() && old[i] == new[j] {
            diff.push(format!("  {}", old[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < old.len() && (j == new.len() || common[i + 1][j] >= common[i][j + 1]) {
            diff.push(format!("- {}", old[i]));
            i += 1;
        } else {
            diff.push(format!("+ {}", new[j]));
            j += 1;
        }
    }
    diff.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_marks_changed_lines() {
        assert_eq!(line_diff("a\nb\nc", "a\nB\nc"), "  a\n- b\n+ B\n  c");
        assert_eq!(line_diff("a", "a\nb"), "  a\n+ b");
    }
}
