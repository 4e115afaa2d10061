//! The module graph of a crate's sources and the layer table of
//! `ARCHITECTURE.md`, for `tests/architecture.rs`.
//!
//! A module is a file (`a/b.rs` and `a/b/mod.rs` are `a::b`; `lib.rs` is
//! the root); a module written inline (`mod tests { … }`) counts as its
//! file's, except that `super::` inside it starts one level further down.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module's path below the crate root: `["capabilities", "github"]`.
pub type Module = Vec<String>;

/// Which modules import which.
pub struct Graph {
    edges: BTreeMap<Module, BTreeSet<Module>>,
}

impl Graph {
    /// Every `.rs` file under `src` (a crate's `src/`), `main.rs` aside (it
    /// imports the library by its name, not through `crate::`).
    pub fn read(src: &Path) -> std::io::Result<Graph> {
        let mut files = Vec::new();
        collect(src, src, &mut files)?;
        let modules: BTreeSet<Module> = files.iter().map(|(module, _)| module.clone()).collect();
        let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
        for (module, path) in &files {
            let text = std::fs::read_to_string(path)?;
            let targets = edges.entry(module.clone()).or_default();
            for (inline, written) in paths(&tokens(&strip(&text))) {
                let mut here = module.clone();
                here.extend(inline);
                if let Some(target) = resolve(&here, &written, &modules)
                    && &target != module
                {
                    targets.insert(target);
                }
            }
        }
        Ok(Graph { edges })
    }

    pub fn modules(&self) -> impl Iterator<Item = &Module> {
        self.edges.keys()
    }

    pub fn edges(&self) -> impl Iterator<Item = (&Module, &Module)> {
        self.edges
            .iter()
            .flat_map(|(from, targets)| targets.iter().map(move |to| (from, to)))
    }
}

fn collect(
    root: &Path,
    dir: &Path,
    files: &mut Vec<(Module, std::path::PathBuf)>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(root, &path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let relative = path.strip_prefix(root).unwrap().with_extension("");
            let mut module: Module = relative
                .components()
                .map(|part| part.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module == ["main"] {
                continue;
            }
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            files.push((module, path));
        }
    }
    Ok(())
}

/// The source without comments, string and character literals (each
/// literal left as `""`, so tokens around it stay apart).
fn strip(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let rest = &chars[i..];
        if rest.starts_with(&['/', '/']) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if rest.starts_with(&['/', '*']) {
            let mut depth = 0;
            loop {
                if chars[i..].starts_with(&['/', '*']) {
                    depth += 1;
                    i += 2;
                } else if chars[i..].starts_with(&['*', '/']) {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if let Some(end) = raw_string_end(&chars, i) {
            out.push_str("\"\"");
            i = end;
        } else if chars[i] == '"' {
            i += 1;
            while chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if let Some(end) = char_literal_end(&chars, i) {
            out.push_str("\"\"");
            i = end;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// Where a raw string (`r"…"`, `r#"…"#`, `br"…"`) starting at `i` ends.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    let identifier_before = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
    if identifier_before || chars[i] != 'r' {
        return None;
    }
    let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
    if chars.get(i + 1 + hashes) != Some(&'"') {
        return None;
    }
    let mut j = i + 2 + hashes;
    loop {
        if chars[j] == '"'
            && chars[j + 1..]
                .iter()
                .take(hashes)
                .filter(|c| **c == '#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
}

/// Where a character literal starting at `i` ends (`'a'`, `'\n'`,
/// `'\u{1F600}'`); None for a lifetime or a label (`'a`, `'outer:`).
fn char_literal_end(chars: &[char], i: usize) -> Option<usize> {
    if chars[i] != '\'' {
        return None;
    }
    if chars.get(i + 1) == Some(&'\\') {
        let close = chars[i + 2..].iter().position(|c| *c == '\'')?;
        return Some(i + 3 + close);
    }
    (chars.get(i + 2) == Some(&'\'')).then_some(i + 3)
}

fn tokens(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push("::".into());
            i += 2;
        } else {
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
            i += 1;
        }
    }
    tokens
}

/// Every path starting with `crate`, `super` or `self`, with the inline
/// modules it was written in.
fn paths(tokens: &[String]) -> Vec<(Vec<String>, Vec<String>)> {
    let mut found = Vec::new();
    // (brace depth the inline module's body opened at, its name)
    let mut inline: Vec<(usize, String)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        let here: Vec<String> = inline.iter().map(|(_, name)| name.clone()).collect();
        match tokens[i].as_str() {
            "mod" if tokens.get(i + 2).is_some_and(|t| t == "{") => {
                inline.push((depth + 1, tokens[i + 1].clone()));
            }
            "{" => depth += 1,
            "}" => {
                if inline.last().is_some_and(|(opened, _)| *opened == depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            "use" => {
                let mut tree = Vec::new();
                i = use_tree(tokens, i + 1, &[], &mut tree);
                found.extend(tree.into_iter().map(|path| (here.clone(), path)));
                continue;
            }
            "crate" | "super" | "self"
                if tokens.get(i + 1).is_some_and(|t| t == "::")
                    && (i == 0 || tokens[i - 1] != "::") =>
            {
                let mut path = vec![tokens[i].clone()];
                i += 1;
                while tokens.get(i).is_some_and(|t| t == "::")
                    && tokens.get(i + 1).is_some_and(|t| is_identifier(t))
                {
                    path.push(tokens[i + 1].clone());
                    i += 2;
                }
                found.push((here, path));
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

fn is_identifier(token: &str) -> bool {
    token.starts_with(|c: char| c.is_alphabetic() || c == '_')
}

/// The paths one `use` tree names, from `i` (after `use`); returns where
/// the tree ends.
fn use_tree(
    tokens: &[String],
    mut i: usize,
    prefix: &[String],
    found: &mut Vec<Vec<String>>,
) -> usize {
    let mut path = prefix.to_vec();
    loop {
        match tokens.get(i).map(String::as_str) {
            Some("{") => {
                i += 1;
                while tokens[i] != "}" {
                    i = use_tree(tokens, i, &path, found);
                    if tokens[i] == "," {
                        i += 1;
                    }
                }
                return i + 1;
            }
            Some("*") | None => {
                found.push(path);
                return i + 1;
            }
            Some(name) => {
                if name != "self" || path.is_empty() {
                    path.push(name.to_string());
                }
                i += 1;
                match tokens.get(i).map(String::as_str) {
                    Some("::") => i += 1,
                    Some("as") => {
                        found.push(path);
                        return i + 2;
                    }
                    _ => {
                        found.push(path);
                        return i;
                    }
                }
            }
        }
    }
}

/// The file module `written` (as seen from `here`) lands in: the longest
/// prefix of its absolute path that is one. None for a path outside the
/// crate.
fn resolve(here: &[String], written: &[String], modules: &BTreeSet<Module>) -> Option<Module> {
    let mut absolute: Module = match written.first().map(String::as_str) {
        Some("crate") => Vec::new(),
        Some("super" | "self") => here.to_vec(),
        _ => return None,
    };
    let mut rest = if written[0] == "crate" {
        &written[1..]
    } else {
        written
    };
    while let Some(first) = rest.first() {
        match first.as_str() {
            "super" => {
                absolute.pop();
            }
            "self" => {}
            _ => break,
        }
        rest = &rest[1..];
    }
    absolute.extend(rest.iter().cloned());
    (0..=absolute.len())
        .rev()
        .map(|length| absolute[..length].to_vec())
        .find(|prefix| modules.contains(prefix))
}

/// Every set of modules that import each other round, leaving out imports
/// between a module and its own ancestors or descendants.
pub fn cycles(graph: &Graph) -> Vec<Vec<Module>> {
    let related = |a: &Module, b: &Module| a.starts_with(b) || b.starts_with(a);
    let edges: BTreeMap<&Module, Vec<&Module>> = graph
        .edges
        .iter()
        .map(|(from, targets)| {
            (
                from,
                targets.iter().filter(|to| !related(from, to)).collect(),
            )
        })
        .collect();
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    for start in edges.keys() {
        if seen.contains(start) {
            continue;
        }
        let reach = reachable(&edges, start);
        let component: Vec<Module> = reach
            .iter()
            .filter(|module| reachable(&edges, module).contains(start))
            .map(|module| (*module).clone())
            .collect();
        seen.extend(
            component
                .iter()
                .filter_map(|m| edges.get_key_value(m).map(|(k, _)| *k)),
        );
        if component.len() > 1 {
            found.push(component);
        }
    }
    found
}

fn reachable<'a>(
    edges: &BTreeMap<&'a Module, Vec<&'a Module>>,
    start: &'a Module,
) -> BTreeSet<&'a Module> {
    let mut reached = BTreeSet::from([start]);
    let mut todo = vec![start];
    while let Some(module) = todo.pop() {
        for next in edges.get(module).into_iter().flatten() {
            if reached.insert(next) {
                todo.push(next);
            }
        }
    }
    reached
}

/// `ARCHITECTURE.md`'s tables: the layer of each module (the most specific
/// entry wins), and the upward imports allowed by name.
pub struct Layers {
    placed: BTreeMap<Module, usize>,
    allowed: Vec<(String, String)>,
}

impl Layers {
    /// Rows of the table headed `| Layer | Modules |…` (modules in
    /// backticks, `::`-separated; the crate root is `crate`), and of the
    /// one headed `| From | To |…`.
    pub fn from_markdown(text: &str) -> Result<Layers, String> {
        let mut placed = BTreeMap::new();
        let mut allowed = Vec::new();
        let mut table = "";
        for line in text.lines() {
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            if !line.trim_start().starts_with('|') {
                table = "";
                continue;
            }
            match cells.first().copied() {
                Some("Layer") => table = "layers",
                Some("From") => table = "allowed",
                Some(first) if first.starts_with("---") => {}
                Some(first) if table == "layers" => {
                    let layer: usize = first
                        .parse()
                        .map_err(|_| format!("layer {first:?} is not a number"))?;
                    for module in backticked(cells.get(1).copied().unwrap_or_default()) {
                        let module = module_of(&module);
                        if placed.insert(module.clone(), layer).is_some() {
                            return Err(format!("{} is in two layers", module.join("::")));
                        }
                    }
                }
                Some(_) if table == "allowed" => {
                    let from = backticked(cells[0])
                        .pop()
                        .ok_or("an allowed import without its `from`")?;
                    let to = backticked(cells.get(1).copied().unwrap_or_default())
                        .pop()
                        .ok_or("an allowed import without its `to`")?;
                    allowed.push((from, to));
                }
                _ => {}
            }
        }
        if placed.is_empty() {
            return Err("no `| Layer | Modules |` table".into());
        }
        Ok(Layers { placed, allowed })
    }

    pub fn layer_of(&self, module: &Module) -> Option<usize> {
        (0..=module.len())
            .rev()
            .find_map(|length| self.placed.get(&module[..length]).copied())
    }

    /// The index of the allowance covering `from` → `to`, if one does.
    pub fn allowance(&self, from: &Module, to: &Module) -> Option<usize> {
        self.allowed
            .iter()
            .position(|(a, b)| from.starts_with(&module_of(a)) && to.starts_with(&module_of(b)))
    }

    pub fn allowed(&self) -> impl Iterator<Item = &(String, String)> {
        self.allowed.iter()
    }
}

fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn module_of(written: &str) -> Module {
    if written == "crate" {
        return Vec::new();
    }
    written.split("::").map(str::to_string).collect()
}
