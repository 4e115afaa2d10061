//! The layers of `host/src`, as `ARCHITECTURE.md` lists them, held by the
//! code: this test reads every file's imports (`use` trees and paths
//! written inline) and fails on an import from a lower layer to a higher
//! one that the document does not allow by name (importing from one's own
//! ancestor, such as the crate root, is not one), on an allowed one the code
//! no longer makes, on more than eight allowed ones, on a module no layer
//! names, and on any cycle between modules (a module and its own ancestors
//! or descendants excepted: a parent re-exports its children, a child's
//! `super::` is its parent).
//!
//! The reader is a tokenizer, not a parser: comments, strings and character
//! literals are dropped, then `crate::`/`super::`/`self::` paths are taken
//! from `use` trees and from code. Macros that build paths from pieces
//! would escape it; the host has none.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use envmgr_tests::architecture::{Graph, Layers, cycles};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn layers() -> Layers {
    let text = std::fs::read_to_string(workspace().join("ARCHITECTURE.md")).unwrap();
    Layers::from_markdown(&text).unwrap_or_else(|why| panic!("ARCHITECTURE.md: {why}"))
}

fn graph() -> Graph {
    Graph::read(&workspace().join("host/src")).unwrap()
}

#[test]
fn every_module_has_a_layer() {
    let layers = layers();
    let unplaced: Vec<String> = graph()
        .modules()
        .filter(|module| layers.layer_of(module).is_none())
        .map(|module| module.join("::"))
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules of host/src that no layer in ARCHITECTURE.md names (add them to its table): {unplaced:?}"
    );
}

#[test]
fn imports_point_down_or_are_listed() {
    let layers = layers();
    let graph = graph();
    let mut used = BTreeSet::new();
    let mut forbidden = Vec::new();
    for (from, to) in graph.edges() {
        let (Some(low), Some(high)) = (layers.layer_of(from), layers.layer_of(to)) else {
            continue;
        };
        // A module may use what its ancestors hold for their children (the
        // crate root: the builtin component's bytes, exported macros).
        if high <= low || from.starts_with(to) {
            continue;
        }
        match layers.allowance(from, to) {
            Some(index) => {
                used.insert(index);
            }
            None => forbidden.push(format!(
                "{} (layer {low}) imports {} (layer {high})",
                from.join("::"),
                to.join("::")
            )),
        }
    }
    assert!(
        forbidden.is_empty(),
        "imports from a lower layer to a higher one that ARCHITECTURE.md does not allow:\n{}",
        forbidden.join("\n")
    );
    let stale: Vec<String> = layers
        .allowed()
        .enumerate()
        .filter(|(index, _)| !used.contains(index))
        .map(|(_, (from, to))| format!("{from} -> {to}"))
        .collect();
    assert!(
        stale.is_empty(),
        "ARCHITECTURE.md allows upward imports the code no longer makes (remove them): {stale:?}"
    );
    assert!(
        layers.allowed().count() <= 8,
        "at most 8 upward imports may be allowed; ARCHITECTURE.md lists {}",
        layers.allowed().count()
    );
}

#[test]
fn no_cycle_between_modules() {
    let found = cycles(&graph());
    let shown: Vec<String> = found
        .iter()
        .map(|cycle| {
            cycle
                .iter()
                .map(|module| module.join("::"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    assert!(
        shown.is_empty(),
        "cycles between modules of host/src (each line one strongly connected set):\n{}",
        shown.join("\n")
    );
}

/// The reader itself, on a file written for it: every kind of import it
/// must see, and text that only looks like one.
#[test]
fn the_reader_sees_every_kind_of_import() {
    let dir = std::env::temp_dir().join(format!("envmgr-architecture-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(
        src.join("lib.rs"),
        "pub mod a;\npub mod b;\npub mod c;\npub mod d;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("a/mod.rs"),
        r#"
        //! crate::d::never (a comment)
        pub mod inner;
        use crate::{b::One, c::{self, Two}};
        fn f() { let _ = crate::d::call(); let s = "crate::d::never"; let c = '"'; }
        mod tests { use super::inner::X; }
        "#,
    )
    .unwrap();
    std::fs::write(src.join("a/inner.rs"), "use super::super::b as other;\n").unwrap();
    for name in ["b", "c", "d"] {
        std::fs::write(src.join(format!("{name}.rs")), "").unwrap();
    }
    let graph = Graph::read(&src).unwrap();
    let edges: BTreeMap<String, BTreeSet<String>> =
        graph
            .edges()
            .fold(BTreeMap::new(), |mut edges, (from, to)| {
                edges
                    .entry(from.join("::"))
                    .or_default()
                    .insert(to.join("::"));
                edges
            });
    std::fs::remove_dir_all(&dir).unwrap();
    let of = |module: &str| edges.get(module).cloned().unwrap_or_default();
    assert_eq!(
        of("a"),
        ["a::inner", "b", "c", "d"]
            .map(String::from)
            .into_iter()
            .collect::<BTreeSet<_>>()
    );
    assert_eq!(of("a::inner"), BTreeSet::from(["b".to_string()]));
}
