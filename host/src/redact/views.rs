//! The normalised views of a text that secrets are looked for in.
//!
//! A service echoes what it was sent in whatever layout and encoding its
//! framework writes: JSON with `\u0026` (Go, Gson, .NET) or `\u00E4`, PHP's
//! `\/`, a Python repr's `\x..`, HTML entities, percent-encoding that keeps
//! `/` or not, base64 with or without MIME line breaks at any alignment,
//! hex in either case. Rather than list every encoded form of every secret
//! (which made the needle set grow with each encoder and each credential),
//! the text is decoded into a few views, each byte of which remembers the
//! span of the original text it came from; a secret is looked for as its
//! plain bytes in every view, and a match is redacted as the original span
//! it maps back to.
//!
//! The views, and their bound: the text itself; one round of each escape
//! family it holds (backslash escapes of JSON and Python, percent
//! encoding, HTML references: [`unescape`]), and a second round on each of
//! those (JSON inside JSON, percent-encoded JSON); every run of base64 or
//! hex characters in the text and in the first rounds, decoded at each
//! alignment; and a round of each family on those. A text that holds
//! escapes of one family yields about `10 n` bytes of views for `n` bytes
//! of text, one that holds all three at most about `40 n`: a scrub costs
//! `O(n)` whatever the redactor knows.

/// The most characters one byte of a secret can take in the escapes the
/// views decode, two deep (`A` as `%26%23x000041%3B`: an HTML reference,
/// percent-encoded); a cut text loses this many characters per byte of its
/// longest needle.
pub const MOST_CHARS_PER_BYTE: usize = 16;
/// Base64 runs shorter than this cannot hold the shortest secret looked
/// for (4 bytes: a short secret in a value the flow needs).
const SHORTEST_BASE64_RUN: usize = 6;
/// Hex runs shorter than this cannot hold it either.
const SHORTEST_HEX_RUN: usize = 8;

/// Bytes to search, each with the span of the original text it came from.
pub struct View {
    pub bytes: Vec<u8>,
    /// Empty for the original text itself (each byte is its own span).
    origin: Vec<(u32, u32)>,
}

impl View {
    /// The original text, as the first view.
    pub fn original(text: &str) -> Self {
        Self {
            bytes: text.as_bytes().to_vec(),
            origin: Vec::new(),
        }
    }

    /// The span of the original text that bytes `start..end` of this view
    /// came from.
    pub fn span(&self, start: usize, end: usize) -> (usize, usize) {
        if self.origin.is_empty() {
            return (start, end);
        }
        (
            self.origin[start].0 as usize,
            self.origin[end - 1].1 as usize,
        )
    }

    fn origin_of(&self, start: usize, end: usize) -> (u32, u32) {
        let (a, b) = self.span(start, end);
        (a as u32, b as u32)
    }
}

/// The escape families, each decoded in a round of its own: a text in one
/// of them may hold what looks like another's escape as plain text (HTML
/// keeps a secret's `\\b` as it is).
const FAMILIES: [u8; 3] = [b'\\', b'%', b'&'];

/// Every view of `text` a secret is looked for in, the text first.
pub fn all(text: &str) -> Vec<View> {
    let original = View::original(text);
    let first = unescapes(&original);
    let second: Vec<View> = first.iter().flat_map(unescapes).collect();
    let mut decoded = Vec::new();
    for source in std::iter::once(&original).chain(&first) {
        base64_runs(source, &mut decoded);
        hex_runs(source, &mut decoded);
    }
    let again: Vec<View> = decoded.iter().flat_map(unescapes).collect();
    let mut views = vec![original];
    views.extend(first);
    views.extend(second);
    views.extend(decoded);
    views.extend(again);
    views
}

/// One round of each escape family `view` holds, each a view.
fn unescapes(view: &View) -> Vec<View> {
    FAMILIES
        .iter()
        .filter_map(|&family| unescape(view, family))
        .collect()
}

fn hex_value(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

/// `count` hex digits at `at`, if all are.
fn hex_at(bytes: &[u8], at: usize, count: usize) -> Option<u32> {
    let digits = bytes.get(at..at + count)?;
    digits
        .iter()
        .try_fold(0u32, |value, &b| Some(value * 16 + hex_value(b)?))
}

/// What one escape at the start of `rest` stands for: its bytes and how
/// long the escape is. None: not an escape.
fn escape_at(rest: &[u8]) -> Option<(Vec<u8>, usize)> {
    let char_bytes = |c: u32| {
        char::from_u32(c).map(|c| {
            let mut buf = [0u8; 4];
            c.encode_utf8(&mut buf).as_bytes().to_vec()
        })
    };
    match rest.first()? {
        b'\\' => {
            let simple = |b: u8| Some((vec![b], 2));
            match rest.get(1)? {
                b'u' => {
                    let unit = hex_at(rest, 2, 4)?;
                    if (0xD800..0xDC00).contains(&unit)
                        && rest.get(6..8) == Some(b"\\u")
                        && let Some(low) = hex_at(rest, 8, 4)
                        && (0xDC00..0xE000).contains(&low)
                    {
                        let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                        return Some((char_bytes(c)?, 12));
                    }
                    Some((char_bytes(unit)?, 6))
                }
                b'U' => Some((char_bytes(hex_at(rest, 2, 8)?)?, 10)),
                b'x' => Some((vec![hex_at(rest, 2, 2)? as u8], 4)),
                b'n' => simple(b'\n'),
                b'r' => simple(b'\r'),
                b't' => simple(b'\t'),
                b'b' => simple(0x08),
                b'f' => simple(0x0c),
                &b @ (b'/' | b'\\' | b'"' | b'\'') => simple(b),
                _ => None,
            }
        }
        b'%' => Some((vec![hex_at(rest, 1, 2)? as u8], 3)),
        b'&' => entity(rest).and_then(|(c, len)| Some((char_bytes(c)?, len))),
        _ => None,
    }
}

/// An HTML character reference at the start of `rest`: its code point and
/// length.
fn entity(rest: &[u8]) -> Option<(u32, usize)> {
    let end = rest.iter().take(12).position(|&b| b == b';')?;
    let name = &rest[1..end];
    let code = match name {
        b"amp" => u32::from(b'&'),
        b"lt" => u32::from(b'<'),
        b"gt" => u32::from(b'>'),
        b"quot" => u32::from(b'"'),
        b"apos" => u32::from(b'\''),
        b"sol" => u32::from(b'/'),
        b"plus" => u32::from(b'+'),
        b"equals" => u32::from(b'='),
        [b'#', b'x' | b'X', hex @ ..] if !hex.is_empty() && hex.len() <= 6 => {
            hex_at(hex, 0, hex.len())?
        }
        [b'#', decimal @ ..] if !decimal.is_empty() && decimal.len() <= 7 => {
            std::str::from_utf8(decimal).ok()?.parse().ok()?
        }
        _ => return None,
    };
    Some((code, end + 1))
}

/// `view` with one round of the escapes that start with `family` decoded;
/// None if it had none.
fn unescape(view: &View, family: u8) -> Option<View> {
    let bytes = &view.bytes;
    if !bytes.contains(&family) {
        return None;
    }
    let mut out = View {
        bytes: Vec::with_capacity(bytes.len()),
        origin: Vec::with_capacity(bytes.len()),
    };
    let mut changed = false;
    let mut at = 0;
    while at < bytes.len() {
        let escaped = if bytes[at] == family {
            escape_at(&bytes[at..])
        } else {
            None
        };
        match escaped {
            Some((decoded, len)) => {
                let origin = view.origin_of(at, at + len);
                for b in decoded {
                    out.bytes.push(b);
                    out.origin.push(origin);
                }
                changed = true;
                at += len;
            }
            None => {
                out.bytes.push(bytes[at]);
                out.origin.push(view.origin_of(at, at + 1));
                at += 1;
            }
        }
    }
    changed.then_some(out)
}

/// A base64 character's value, standard and URL-safe alphabets alike.
fn base64_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

/// Each run of base64 characters in `view` (line breaks inside a run are
/// skipped, as MIME and PEM wrap it), decoded from each of its first four
/// characters: one of them is where the encoding started.
fn base64_runs(view: &View, out: &mut Vec<View>) {
    let bytes = &view.bytes;
    let mut run: Vec<u32> = Vec::new();
    let mut at = 0;
    while at <= bytes.len() {
        let b = bytes.get(at).copied();
        match b {
            Some(b) if base64_value(b).is_some() => run.push(at as u32),
            Some(b'\r' | b'\n') if !run.is_empty() => {}
            _ => {
                if run.len() >= SHORTEST_BASE64_RUN {
                    for offset in 0..4 {
                        if run.len() - offset >= SHORTEST_BASE64_RUN {
                            out.push(decode_base64(view, &run[offset..]));
                        }
                    }
                }
                run.clear();
            }
        }
        at += 1;
    }
}

/// The bytes base64 characters at `positions` stand for; each byte's
/// origin covers every character that carries one of its bits.
fn decode_base64(view: &View, positions: &[u32]) -> View {
    let mut out = View {
        bytes: Vec::with_capacity(positions.len() * 3 / 4),
        origin: Vec::with_capacity(positions.len() * 3 / 4),
    };
    for group in positions.chunks(4) {
        let values: Vec<u32> = group
            .iter()
            .map(|&p| u32::from(base64_value(view.bytes[p as usize]).unwrap_or(0)))
            .collect();
        let bits = values.iter().fold(0u32, |acc, v| (acc << 6) | v) << (6 * (4 - values.len()));
        // Byte k comes from characters k and k + 1 of the group.
        for k in 0..group.len().saturating_sub(1) {
            let first = group[k] as usize;
            let last = group[k + 1] as usize;
            out.bytes.push((bits >> (16 - 8 * k)) as u8);
            let (start, _) = view.span(first, first + 1);
            let (_, end) = view.span(last, last + 1);
            out.origin.push((start as u32, end as u32));
        }
    }
    out
}

/// Each run of hex digits in `view`, decoded from its first and its second
/// digit.
fn hex_runs(view: &View, out: &mut Vec<View>) {
    let bytes = &view.bytes;
    let mut start = 0;
    while start < bytes.len() {
        if hex_value(bytes[start]).is_none() {
            start += 1;
            continue;
        }
        let end = bytes[start..]
            .iter()
            .position(|&b| hex_value(b).is_none())
            .map_or(bytes.len(), |len| start + len);
        if end - start >= SHORTEST_HEX_RUN {
            for offset in 0..2 {
                let mut decoded = View {
                    bytes: Vec::new(),
                    origin: Vec::new(),
                };
                let mut at = start + offset;
                while at + 2 <= end {
                    decoded.bytes.push(hex_at(bytes, at, 2).unwrap_or(0) as u8);
                    decoded.origin.push(view.origin_of(at, at + 2));
                    at += 2;
                }
                out.push(decoded);
            }
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decodes_to(text: &str, wanted: &[u8]) -> Option<(usize, usize)> {
        all(text).into_iter().find_map(|view| {
            let at = view.bytes.windows(wanted.len()).position(|w| w == wanted)?;
            Some(view.span(at, at + wanted.len()))
        })
    }

    #[test]
    fn escapes_of_every_kind_decode_to_the_plain_bytes() {
        let plain = "a&b/ä😀";
        for text in [
            r#"x "a\u0026b\/\u00E4\ud83d\ude00" y"#,
            "x a&amp;b&#x2F;&#228;&#128512; y",
            "x a%26b/%C3%A4%F0%9F%98%80 y",
            r"x a&b/\xc3\xa4\U0001F600 y",
        ] {
            let (start, end) = decodes_to(text, plain.as_bytes()).expect(text);
            assert_eq!(&text[..start], text.split('a').next().unwrap(), "{text}");
            assert!(text[end..].trim_start_matches('"').trim() == "y", "{text}");
        }
    }

    #[test]
    fn base64_at_any_alignment_and_with_line_breaks_maps_back_to_its_characters() {
        use base64::Engine as _;
        let secret = b"0123456789abcdef-secret";
        for prefix in ["", "a", "ab", "abc"] {
            let mut framed = prefix.as_bytes().to_vec();
            framed.extend_from_slice(secret);
            framed.extend_from_slice(b"!tail");
            let encoded = base64::engine::general_purpose::STANDARD.encode(&framed);
            let wrapped: String = encoded
                .as_bytes()
                .chunks(8)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join("\r\n");
            let text = format!("body: {wrapped} end");
            let (start, end) = decodes_to(&text, secret).expect(&text);
            assert!(start >= "body: ".len() && end <= text.len() - " end".len());
        }
    }

    #[test]
    fn hex_in_either_case() {
        for text in [
            format!("k={}", hex::encode("secret-bytes")),
            format!("k=0{}", hex::encode_upper("secret-bytes")),
        ] {
            assert!(decodes_to(&text, b"secret-bytes").is_some(), "{text}");
        }
    }
}
