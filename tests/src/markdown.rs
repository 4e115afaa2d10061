//! Markdown as GitHub renders it, enough to check the documentation
//! (`tests/docs.rs`): the lines outside fenced code blocks, the links of
//! the prose (not those in code spans), reference definitions, `#`
//! headings and GitHub's anchors for them (its slug, `-1`, `-2` for
//! repeats), and the section under an anchor.

use std::collections::BTreeMap;

/// A link of a Markdown file: its line (from 1) and its target as written.
pub struct Link {
    pub line: usize,
    pub target: String,
}

/// A heading of a Markdown file: its line (from 1), its level and its
/// anchor.
pub struct Heading {
    pub line: usize,
    pub level: usize,
    pub anchor: String,
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
pub fn links(text: &str) -> Vec<Link> {
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
pub fn headings(text: &str) -> Vec<Heading> {
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
pub fn section(text: &str, anchor: Option<&str>) -> Option<String> {
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
