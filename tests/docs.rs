//! The documentation holds together (issue 28): every relative link in
//! `README.md`, `CONTRIBUTING.md`, `ARCHITECTURE.md` and `docs/` points to a
//! file that exists, and its `#anchor` to a heading of that page; every page
//! under `docs/` is listed in `docs/SUMMARY.md`; the README stays at most 150
//! lines; and its first screen links, for each question a newcomer asks
//! first, to a page that holds the answer's command.
//!
//! Markdown as GitHub renders it: an anchor is GitHub's slug of a heading
//! (`#` headings; the documents use no others), and what is inside a fenced
//! code block or a code span is not a link.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

use envmgr_tests::markdown::{Link, headings, links, section};

/// The README's most lines.
const README_MAX_LINES: usize = 150;

/// The README's first screen, in lines.
const FIRST_SCREEN_LINES: usize = 40;

/// A question the README's first screen answers: the words that find its
/// line, and what the linked page (or its section, with an anchor) holds.
struct Question {
    asks: &'static str,
    words: &'static [&'static str],
    holds: &'static [&'static str],
}

const QUESTIONS: &[Question] = &[
    Question {
        asks: "How do I run it locally?",
        words: &["locally"],
        holds: &["envmgr serve"],
    },
    Question {
        asks: "How do I run it on AWS?",
        words: &["aws"],
        holds: &["envmgr init"],
    },
    Question {
        asks: "Where is `/metrics`?",
        words: &["/metrics"],
        holds: &["/metrics", "listen"],
    },
    Question {
        asks: "How do I ship a logic version?",
        words: &["logic version"],
        holds: &["envmgr logic install"],
    },
    Question {
        asks: "How do I redrive dead letters?",
        words: &["dead letter", "dead-letter"],
        holds: &["envmgr dlq redrive"],
    },
];

/// Every relative link resolves: the file exists and, for a Markdown page,
/// the anchor names one of its headings.
#[test]
fn relative_links_and_their_anchors_resolve() {
    let root = root();
    let mut anchors_of: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    let mut broken = Vec::new();
    for file in documents(&root) {
        let text = read(&file);
        for link in links(&text) {
            let place = format!("{}:{}", relative(&root, &file), link.line);
            if link.target.is_empty() {
                broken.push(format!("{place}: a link with no target"));
                continue;
            }
            let Some((target, anchor)) = local_target(&root, &file, &link.target) else {
                continue;
            };
            if !target.exists() {
                broken.push(format!(
                    "{place}: `{}`: {} does not exist (correct the path, or write the page)",
                    link.target,
                    relative(&root, &target)
                ));
                continue;
            }
            let Some(anchor) = anchor else {
                continue;
            };
            // Anchors into other files (`#L10` of a source file) are GitHub's
            // line anchors, not headings.
            if !is_markdown(&target) {
                continue;
            }
            let known = anchors_of.entry(target.clone()).or_insert_with(|| {
                headings(&read(&target))
                    .into_iter()
                    .map(|heading| heading.anchor)
                    .collect()
            });
            if !known.contains(&anchor) {
                broken.push(format!(
                    "{place}: `{}`: {} has no heading whose anchor is `#{anchor}` (correct the anchor, or the heading); its anchors: {}",
                    link.target,
                    relative(&root, &target),
                    listed(known)
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "{} broken link(s) in the documentation:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

/// No page of the book is an orphan: every `.md` under `docs/` but the
/// summary itself, the man pages and the Prometheus rules is listed in
/// `docs/SUMMARY.md` (that the listed pages exist is the test above).
#[test]
fn every_page_of_the_book_is_in_its_summary() {
    let root = root();
    let docs = root.join("docs");
    let summary = docs.join("SUMMARY.md");
    let listed: BTreeSet<PathBuf> = links(&read(&summary))
        .iter()
        .filter_map(|link| local_target(&root, &summary, &link.target))
        .map(|(page, _)| page)
        .collect();
    let outside = [summary, docs.join("man"), docs.join("prometheus")];
    let orphans: Vec<String> = markdown_under(&docs)
        .into_iter()
        .filter(|page| !outside.iter().any(|left_out| page.starts_with(left_out)))
        .filter(|page| !listed.contains(page))
        .map(|page| relative(&root, &page))
        .collect();
    assert!(
        orphans.is_empty(),
        "pages of docs/ that docs/SUMMARY.md does not list (add a `- [Title](path.md)` line for each, under its part): {}",
        orphans.join(", ")
    );
}

/// The README is a front page, not the manual.
#[test]
fn the_readme_is_short() {
    let lines = read(&root().join("README.md")).lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, at most {README_MAX_LINES}: move the detail to a page of docs/ and link to it"
    );
}

/// The README's first screen links, for each first question, to a page
/// that holds the answer: a line of the first 40 that names the question
/// links to a page (or a section of one) holding the command.
#[test]
fn the_readmes_first_screen_answers_the_first_questions() {
    let root = root();
    let readme = root.join("README.md");
    let text = read(&readme);
    let screen = text
        .lines()
        .take(FIRST_SCREEN_LINES)
        .collect::<Vec<_>>()
        .join("\n");
    let lines: Vec<String> = screen.lines().map(str::to_lowercase).collect();
    let screen_links = links(&screen);
    let mut unanswered = Vec::new();
    for question in QUESTIONS {
        let candidates: Vec<&Link> = screen_links
            .iter()
            .filter(|link| {
                lines.get(link.line - 1).is_some_and(|line| {
                    question
                        .words
                        .iter()
                        .any(|word| line.contains(&word.to_lowercase()))
                })
            })
            .collect();
        if candidates.is_empty() {
            unanswered.push(format!(
                "{}: no line of README.md's first {FIRST_SCREEN_LINES} saying {} has a link; add one such as `- {} → [the page](docs/…)`",
                question.asks,
                quoted(question.words, " or "),
                question.asks
            ));
            continue;
        }
        let mut why = Vec::new();
        for link in candidates {
            match answer(&root, &readme, link, question.holds) {
                Ok(()) => {
                    why.clear();
                    break;
                }
                Err(reason) => why.push(reason),
            }
        }
        if !why.is_empty() {
            unanswered.push(format!("{}: {}", question.asks, why.join("; ")));
        }
    }
    assert!(
        unanswered.is_empty(),
        "README.md's first screen does not answer every first question:\n{}",
        unanswered.join("\n")
    );
}

/// Whether the page `link` names (its section, with an anchor) holds every
/// one of `holds`; if not, what to fix.
fn answer(root: &Path, readme: &Path, link: &Link, holds: &[&str]) -> Result<(), String> {
    let place = format!("README.md:{} links to `{}`", link.line, link.target);
    let Some((page, anchor)) = local_target(root, readme, &link.target) else {
        return Err(format!("{place}, not a page of this repository"));
    };
    let text =
        fs::read_to_string(page).map_err(|e| format!("{place}, which cannot be read: {e}"))?;
    let Some(under) = section(&text, anchor.as_deref()) else {
        return Err(format!("{place}, a heading that page does not have"));
    };
    let missing: Vec<&str> = holds
        .iter()
        .copied()
        .filter(|command| !under.contains(*command))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{place}, which does not hold {} (link to the page that does, or write it there)",
        quoted(&missing, " and ")
    ))
}

/// The repository: the parent of this crate (`tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lies in the repository")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The documents whose links are checked.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["README.md", "CONTRIBUTING.md", "ARCHITECTURE.md"]
        .iter()
        .map(|name| root.join(name))
        .collect();
    files.extend(markdown_under(&root.join("docs")));
    files
}

/// Every `.md` file under `dir`, at any depth, sorted.
fn markdown_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries =
            fs::read_dir(&folder).unwrap_or_else(|e| panic!("listing {}: {e}", folder.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("listing {}: {e}", folder.display()))
                .path();
            if path.is_dir() {
                folders.push(path);
            } else if is_markdown(&path) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn is_markdown(path: &Path) -> bool {
    path.extension().is_some_and(|extension| extension == "md")
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Words as a reader sees them in a message: `a` or `b`.
fn quoted(words: &[&str], between: &str) -> String {
    words
        .iter()
        .map(|word| format!("`{word}`"))
        .collect::<Vec<_>>()
        .join(between)
}

/// A page's anchors for a message: the first 30.
fn listed(anchors: &BTreeSet<String>) -> String {
    let mut shown: Vec<&str> = anchors.iter().take(30).map(String::as_str).collect();
    if anchors.len() > shown.len() {
        shown.push("…");
    }
    if shown.is_empty() {
        return "none".to_string();
    }
    shown.join(", ")
}

/// Where a link points when it points into the repository: the file
/// (normalised) and the anchor. None for a link to the web or mail.
fn local_target(root: &Path, from: &Path, target: &str) -> Option<(PathBuf, Option<String>)> {
    let lower = target.to_ascii_lowercase();
    let elsewhere = ["http:", "https:", "mailto:", "ftp:", "tel:"];
    if lower.contains("://") || elsewhere.iter().any(|scheme| lower.starts_with(scheme)) {
        return None;
    }
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor.to_string())),
        None => (target, None),
    };
    let file = if path.is_empty() {
        from.to_path_buf()
    } else if let Some(from_root) = path.strip_prefix('/') {
        root.join(from_root)
    } else {
        from.parent().unwrap_or(root).join(path)
    };
    Some((normalise(&file), anchor))
}

/// `path` without `.` and `..` components.
fn normalise(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !normal.pop() {
                    normal.push("..");
                }
            }
            other => normal.push(other.as_os_str()),
        }
    }
    normal
}
