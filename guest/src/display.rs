//! Text from outside (branch names, titles, logins, app names, what a
//! dependency answered) as it may be shown to people on GitHub.
//!
//! - Characters that change how text is *displayed* without being seen —
//!   bidirectional overrides and isolates (a branch `x\u{202E}gnp.exe`
//!   shows as `xexe.png`), zero-width characters — are shown escaped
//!   (`\u{202E}`), and control characters become spaces.
//! - A URL becomes a link only when it is `https` (or `http` to a
//!   `localhost` name, what the local backend answers), with the characters
//!   that would end a markdown link or table cell percent-encoded.
//!
//! GitHub's environment name `preview/{branch}` is not shown through this:
//! it must stay byte for byte the branch's.

/// Shown as `\u{XXXX}`: direction marks, embeddings, overrides and isolates
/// (Unicode's `Bidi_Control`), and the zero-width characters.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// `raw` with invisible characters escaped and controls made spaces.
pub fn neutralise(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if invisible(c) {
            out.push_str(&format!("\\u{{{:04X}}}", c as u32));
        } else if c.is_control() {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `text` holds a character [`neutralise`] would change.
pub fn needs_neutralising(text: &str) -> bool {
    text.chars().any(|c| invisible(c) || c.is_control())
}

/// `url` as a link target, or None when it is not one to offer people.
pub fn link_target(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // Userinfo in a link hides where it goes (`https://github.com@evil`).
    if authority.contains('@') {
        return None;
    }
    let host_name = authority
        .split(':')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let allowed = match scheme.to_ascii_lowercase().as_str() {
        "https" => !host_name.is_empty(),
        "http" => host_name == "localhost" || host_name.ends_with(".localhost"),
        _ => false,
    };
    if !allowed || needs_neutralising(url) {
        return None;
    }
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '(' | ')' | '|' | '<' | '>' | '"' | '`' | '[' | ']' | '\\' | '{' | '}' => {
                out.push_str(&format!("%{:02X}", c as u32));
            }
            c if c.is_whitespace() => {
                let mut bytes = [0u8; 4];
                for b in c.encode_utf8(&mut bytes).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_overrides_and_zero_width_characters_are_shown_escaped() {
        assert_eq!(neutralise("x\u{202E}gnp.exe"), "x\\u{202E}gnp.exe");
        assert_eq!(
            neutralise("a\u{200B}b\u{2066}c\u{FEFF}"),
            "a\\u{200B}b\\u{2066}c\\u{FEFF}"
        );
        assert_eq!(neutralise("line\nbreak\t"), "line break ");
        assert_eq!(
            neutralise("feature/日本語"),
            "feature/日本語",
            "letters stay"
        );
    }

    #[test]
    fn only_safe_urls_become_links_and_markdown_cannot_break_out() {
        assert_eq!(
            link_target("https://env.preview.example.com/a(b)|c d").as_deref(),
            Some("https://env.preview.example.com/a%28b%29%7Cc%20d")
        );
        assert_eq!(
            link_target("http://env_1.localhost").as_deref(),
            Some("http://env_1.localhost")
        );
        for refused in [
            "javascript:alert(1)",
            "http://evil.example.com",
            "data:text/html,x",
            "https://",
            "https://user:pw@host",
            "https://host/\u{202E}x",
            "ftp://host/x",
        ] {
            assert_eq!(link_target(refused), None, "{refused}");
        }
    }
}
