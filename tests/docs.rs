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

/// A link of a Markdown file: its line (from 1) and its target as written.
struct Link {
    line: usize,
    target: String,
}

/// A heading of a Markdown file: its line (from 1), its level and its
/// anchor.
struct Heading {
    line: usize,
    level: usize,
    anchor: String,
}

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

/// The lines outside fenced code blocks, with their numbers (from 1); the
/// fences' own lines are left out.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut prose = Vec::new();
    let mut open: Option<(u8, usize)> = None;
    for (index, line) in text.lines().enumerate() {
        let fence = fence_of(line);
        match open {
            Some((mark, length)) => {
                if let Some((closing, run)) = fence
                    && closing == mark
                    && run >= length
                    && line.trim_start()[run..].trim().is_empty()
                {
                    open = None;
                }
            }
            None if fence.is_some() => open = fence,
            None => prose.push((index + 1, line)),
        }
    }
    prose
}

/// The fence a line opens or closes, if it is one: its character and how
/// many of it.
fn fence_of(line: &str) -> Option<(u8, usize)> {
    let trimmed = line.trim_start().as_bytes();
    let mark = *trimmed.first()?;
    if mark != b'`' && mark != b'~' {
        return None;
    }
    let run = run_length(trimmed, 0, mark);
    (run >= 3).then_some((mark, run))
}

/// How many `byte`s follow one another from `at`.
fn run_length(bytes: &[u8], at: usize, byte: u8) -> usize {
    bytes[at..].iter().take_while(|&&b| b == byte).count()
}

/// Blocks of prose: runs of non-blank lines outside code blocks (a code
/// span may go on to the next line of its paragraph), each with the number
/// of its first line.
fn blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks: Vec<(usize, String)> = Vec::new();
    let mut previous = 0;
    for (number, line) in prose_lines(text) {
        if line.trim().is_empty() {
            previous = 0;
            continue;
        }
        match blocks.last_mut() {
            Some((_, block)) if previous != 0 && previous + 1 == number => {
                block.push('\n');
                block.push_str(line);
            }
            _ => blocks.push((number, line.to_string())),
        }
        previous = number;
    }
    blocks
}

/// Every link of a Markdown text outside code: inline links and images
/// `[text](target)`, and reference definitions `[label]: target`.
fn links(text: &str) -> Vec<Link> {
    blocks(text)
        .iter()
        .flat_map(|(first_line, block)| block_links(*first_line, block))
        .collect()
}

/// The links of one block whose first line is `first_line`.
fn block_links(first_line: usize, block: &str) -> Vec<Link> {
    let mut links: Vec<Link> = block
        .lines()
        .enumerate()
        .filter_map(|(offset, line)| {
            definition(line).map(|target| Link {
                line: first_line + offset,
                target,
            })
        })
        .collect();
    let bytes = block.as_bytes();
    let line_at = |at: usize| first_line + bytes[..at].iter().filter(|&&b| b == b'\n').count();
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 2,
            b'`' => at = after_code_span(bytes, at),
            b']' if bytes.get(at + 1) == Some(&b'(') => {
                let (target, end) = destination(block, at + 2);
                links.push(Link {
                    line: line_at(at),
                    target,
                });
                at = end;
            }
            _ => at += 1,
        }
    }
    links
}

/// Where the code span opening at `at` ends: just after the closing run of
/// as many backticks, or just after the opening run if none closes it.
fn after_code_span(bytes: &[u8], at: usize) -> usize {
    let run = run_length(bytes, at, b'`');
    let mut search = at + run;
    while search < bytes.len() {
        if bytes[search] == b'`' {
            let closing = run_length(bytes, search, b'`');
            if closing == run {
                return search + closing;
            }
            search += closing;
        } else {
            search += 1;
        }
    }
    at + run
}

/// The destination of an inline link from `start` (just after its `(`):
/// `<…>`, or up to whitespace or the `)` that closes it; and where the scan
/// goes on.
fn destination(block: &str, start: usize) -> (String, usize) {
    let bytes = block.as_bytes();
    let mut at = start;
    while bytes.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
        at += 1;
    }
    if bytes.get(at) == Some(&b'<') {
        let end = block[at..]
            .find('>')
            .map_or(bytes.len(), |offset| at + offset);
        return (block[at + 1..end].to_string(), end);
    }
    let begin = at;
    let mut depth = 0;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b')' if depth == 0 => break,
            b')' => depth -= 1,
            b'(' => depth += 1,
            _ if byte.is_ascii_whitespace() => break,
            _ => {}
        }
        at += 1;
    }
    (block[begin..at].to_string(), at)
}

/// The target of a reference definition `[label]: target`, if `line` is
/// one.
fn definition(line: &str) -> Option<String> {
    let rest = line.trim_start().strip_prefix('[')?;
    let (label, rest) = rest.split_once("]:")?;
    if label.is_empty() || label.contains(['[', ']']) {
        return None;
    }
    let target = rest.split_whitespace().next()?;
    Some(
        target
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string(),
    )
}

/// The headings of a Markdown text with GitHub's anchors: the slug of the
/// heading, then `-1`, `-2`, … for the next ones with the same slug.
fn headings(text: &str) -> Vec<Heading> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut headings = Vec::new();
    for (line, content) in prose_lines(text) {
        let Some((level, title)) = atx_heading(content) else {
            continue;
        };
        let base = slug(title);
        let count = seen.entry(base.clone()).or_insert(0);
        let anchor = match *count {
            0 => base,
            n => format!("{base}-{n}"),
        };
        *count += 1;
        headings.push(Heading {
            line,
            level,
            anchor,
        });
    }
    headings
}

/// The level and text of a `#` heading, if `line` is one.
fn atx_heading(line: &str) -> Option<(usize, &str)> {
    let trimmed = line.trim_start();
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    let level = run_length(trimmed.as_bytes(), 0, b'#');
    if level == 0 || level > 6 {
        return None;
    }
    let rest = &trimmed[level..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    // A closing run of `#` goes, when a space comes before it.
    let title = rest.trim();
    let unclosed = title.trim_end_matches('#');
    if unclosed.is_empty() || unclosed.ends_with([' ', '\t']) {
        return Some((level, unclosed.trim_end()));
    }
    Some((level, title))
}

/// GitHub's anchor of a heading: its text without link targets,
/// lower-cased, every character but letters, digits, spaces, `-` and `_`
/// removed (code marks and emphasis with them), spaces made `-`.
fn slug(title: &str) -> String {
    let mut text = String::new();
    let mut rest = title;
    while let Some(at) = rest.find("](") {
        text.push_str(&rest[..at]);
        let target = &rest[at + 2..];
        rest = target.find(')').map_or("", |end| &target[end + 1..]);
    }
    text.push_str(rest);
    text.to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            _ if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The text under the heading `anchor` names, to the next heading of its
/// level or above; the whole text without an anchor. None: no such heading.
fn section(text: &str, anchor: Option<&str>) -> Option<String> {
    let Some(anchor) = anchor else {
        return Some(text.to_string());
    };
    let all = headings(text);
    let index = all.iter().position(|heading| heading.anchor == anchor)?;
    let start = &all[index];
    let end = all[index + 1..]
        .iter()
        .find(|heading| heading.level <= start.level)
        .map_or(usize::MAX, |heading| heading.line);
    Some(
        text.lines()
            .skip(start.line - 1)
            .take(end - start.line)
            .collect::<Vec<_>>()
            .join("\n"),
    )
}
