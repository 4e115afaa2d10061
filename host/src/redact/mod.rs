//! Nothing secret crosses back: every text a dependency sends (error bodies
//! and success values alike) passes a redactor before it reaches the guest,
//! a log, a record or a dead letter.
//!
//! The guarantee: a secret the redactor knows — the process's credentials
//! ([`Credentials`]) and the message's own (its decrypted secrets, tokens
//! and signing key, [`Redactor::add`]) — does not survive in a cleaned
//! text, whole or as any part that identifies it on its own ([`parts`]),
//! raw or in any encoding the normalised views decode ([`views`]: JSON,
//! HTML and Python escapes in either case, percent and form encoding,
//! base64 with or without line breaks at any alignment, hex), and not as
//! the start of one at a cut ([`cut_for_redaction`]).
//!
//! What it does not promise: a secret shorter than [`MIN_SECRET_BYTES`]
//! cannot be told from ordinary text, so a message holding one has its
//! dependency texts withheld ([`WITHHELD`]); a value the flow needs (a
//! runtime's id or URL) is withheld only when such a secret may be in it.
//! Encodings the views do not decode (an encryption, a hash, a secret
//! split by the service into pieces under 8 bytes) are not found.
//!
//! Cost: a scrub reads each byte of its text's views once (about `6 n`
//! bytes for a text of `n`), whatever the number of credentials; the
//! figures are in docs/performance.md.

mod credentials;
mod needles;
pub mod parts;
mod secret;
pub mod views;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

pub use credentials::{Credentials, GRACE};
use needles::{Needles, folded};
pub use secret::Secret;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";
/// Shorter secrets cannot be searched for without matching ordinary text
/// (and their encodings even less): the text is withheld instead.
pub const MIN_SECRET_BYTES: usize = needles::KEY_BYTES;
/// A secret shorter than this is not looked for in values at all.
const SHORTEST_FOUND: usize = 4;
/// What a text says when it was withheld.
pub const WITHHELD: &str =
    "[the dependency's text is withheld: it may contain a secret too short to redact]";
/// The longest dependency text kept (after redaction), in characters.
pub const MAX_TEXT_CHARS: usize = 500;
/// How a text cut before redaction ends ([`cut_for_redaction`]).
pub const CUT_MARK: &str = " …[cut]";

/// What a dependency sends back, with every secret the redactor knows
/// taken out (strings) — or passed as it is where nothing textual comes
/// from a dependency (our own table items, sealed plaintext).
pub trait Scrub {
    fn scrub(self, redactor: &Redactor) -> Self;
}

/// Types with no dependency text in them.
#[macro_export]
macro_rules! nothing_to_scrub {
    ($($t:ty),* $(,)?) => {
        $(impl $crate::redact::Scrub for $t {
            fn scrub(self, _: &$crate::redact::Redactor) -> Self {
                self
            }
        })*
    };
}

nothing_to_scrub!(());

/// A dependency's text alone (the runtime ids a delete removed): redacted
/// and cut, as every text answer is.
impl Scrub for String {
    fn scrub(self, redactor: &Redactor) -> Self {
        cut(&redactor.scrub_value(&self), MAX_TEXT_CHARS)
    }
}

impl<T: Scrub> Scrub for Vec<T> {
    fn scrub(self, redactor: &Redactor) -> Self {
        self.into_iter().map(|v| v.scrub(redactor)).collect()
    }
}

impl<T: Scrub> Scrub for Option<T> {
    fn scrub(self, redactor: &Redactor) -> Self {
        self.map(|v| v.scrub(redactor))
    }
}

/// Redacts the process's credentials and those of one message.
#[derive(Clone, Default)]
pub struct Redactor {
    credentials: Credentials,
    message: Arc<Mutex<MessageSecrets>>,
}

/// The secrets one message holds, on top of the process's.
#[derive(Default)]
struct MessageSecrets {
    needles: Needles,
    /// Whole secrets of [`SHORTEST_FOUND`] to [`MIN_SECRET_BYTES`] bytes.
    short: Vec<Vec<u8>>,
    /// A secret under [`MIN_SECRET_BYTES`] is among them.
    withhold: bool,
    added: HashSet<String>,
}

impl Redactor {
    /// A redactor for one message, on the process's credentials.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials,
            ..Self::default()
        }
    }

    /// A plaintext this message holds (a decrypted secret, a token, a
    /// private key): looked for whole and as its parts ([`parts`]).
    pub fn add(&self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let mut message = self.message.lock().unwrap_or_else(|p| p.into_inner());
        if !message.added.insert(secret.to_string()) {
            return;
        }
        if secret.len() < MIN_SECRET_BYTES {
            message.withhold = true;
            if secret.len() >= SHORTEST_FOUND {
                message.short.push(folded(secret.as_bytes()).into_owned());
            }
        }
        for part in parts::of(secret) {
            message.needles.insert(part.as_bytes());
        }
    }

    /// `text` with every known secret replaced, then cut to
    /// [`MAX_TEXT_CHARS`]; or [`WITHHELD`].
    pub fn clean(&self, text: &str) -> String {
        cut(&self.scrub(text), MAX_TEXT_CHARS)
    }

    /// `text` with every known secret replaced (not cut); or [`WITHHELD`]
    /// when a secret of this message is too short to redact reliably.
    pub fn scrub(&self, text: &str) -> String {
        self.scrub_as(text, Short::WithholdAlways)
    }

    /// A value the flow goes on with (a runtime's id or URL, a comment's
    /// link): secrets replaced, and withheld only when a short secret may
    /// be in it — an app with `DEBUG=1` among its secrets still gets its
    /// runtime's URL.
    pub fn scrub_value(&self, text: &str) -> String {
        self.scrub_as(text, Short::WithholdIfFound)
    }

    fn scrub_as(&self, text: &str, short: Short) -> String {
        let credentials = self.credentials.read();
        let message = self.message.lock().unwrap_or_else(|p| p.into_inner());
        if message.withhold && short == Short::WithholdAlways {
            return WITHHELD.to_string();
        }
        let (body, was_cut) = match text.strip_suffix(CUT_MARK) {
            Some(body) => (body, true),
            None => (text, false),
        };
        let nothing_to_find = credentials.needles.is_empty()
            && message.needles.is_empty()
            && message.short.is_empty();
        if nothing_to_find {
            return text.to_string();
        }
        let mut spans = Vec::new();
        let mut found = Vec::new();
        for view in views::all(body) {
            let bytes = folded(&view.bytes);
            if message.short.iter().any(|needle| {
                bytes
                    .windows(needle.len())
                    .any(|window| window == &needle[..])
            }) {
                return WITHHELD.to_string();
            }
            found.clear();
            credentials.needles.find(&bytes, &mut found);
            message.needles.find(&bytes, &mut found);
            spans.extend(found.iter().map(|&(start, end)| view.span(start, end)));
        }
        // A cut text may end in the start of a secret that was not found
        // whole: drop as much as the longest needle could take up.
        let keep = if was_cut {
            let longest = credentials.needles.longest().max(message.needles.longest());
            body.len()
                .saturating_sub(longest * views::MOST_CHARS_PER_BYTE)
        } else {
            body.len()
        };
        let mut out = replaced(body, spans, keep);
        if was_cut {
            out.push_str(CUT_MARK);
        }
        out
    }
}

/// `text` up to `keep` with each span replaced by [`REDACTED`] (a span that
/// starts before `keep` whole; overlapping and touching spans as one).
fn replaced(text: &str, mut spans: Vec<(usize, usize)>, keep: usize) -> String {
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len().min(keep));
    let mut at = 0;
    let mut replacing = false;
    for (start, end) in spans {
        let start = floor_char_boundary(text, start);
        if start >= keep {
            break;
        }
        let end = ceil_char_boundary(text, end);
        if replacing && start <= at {
            at = at.max(end);
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str(REDACTED);
        at = end;
        replacing = true;
    }
    if at < keep {
        out.push_str(&text[at..floor_char_boundary(text, keep)]);
    }
    out
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn ceil_char_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

/// What a secret shorter than [`MIN_SECRET_BYTES`] does to a text.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Short {
    WithholdAlways,
    WithholdIfFound,
}

/// At most `limit` bytes of a dependency's `text`, for a redactor to
/// clean: when cut, it ends in [`CUT_MARK`], and the redactor drops the
/// tail that may hold the start of a secret along with it.
pub fn cut_for_redaction(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    format!("{}{CUT_MARK}", &text[..floor_char_boundary(text, limit)])
}

/// At most `limit` characters, ending in `…` when cut.
pub fn cut(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let mut kept: String = text.chars().take(limit.saturating_sub(1)).collect();
    kept.push('…');
    kept
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    const SECRET: &str = "postgres://shop:s3cr3t-hunter2@db/shop?x=1&y=ä";

    fn redactor() -> Redactor {
        let redactor = Redactor::new(Credentials::default());
        redactor.add(SECRET);
        redactor
    }

    #[test]
    fn echoes_in_other_layouts_and_encodings_are_redacted() {
        let redactor = redactor();
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("ab{SECRET}cd"));
        let mime: Vec<&str> = b64
            .as_bytes()
            .chunks(7)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        for echo in [
            format!("invalid: {}", serde_json::json!({ "DB": SECRET })),
            "{\"DB\": \"postgres:\\/\\/shop:s3cr3t-hunter2@db\\/shop?x=1\\u0026y=\\u00E4\"}"
                .to_string(),
            format!("{{'DB': '{SECRET}'}}"),
            "db=postgres%3A%2f%2fshop%3As3cr3t-hunter2%40db/shop%3Fx%3D1%26y%3D%C3%A4".into(),
            mime.join("\r\n"),
            format!("hex {}", hex::encode_upper(SECRET)),
            "&lt;postgres://shop:s3cr3t-hunter2@db/shop?x=1&amp;y=&#xE4;&gt;".into(),
            // Only the password: a part that identifies the secret alone.
            "password authentication failed: \"s3cr3t-hunter2\"".into(),
        ] {
            let clean = redactor.scrub(&echo);
            assert!(clean.contains(REDACTED), "{echo} → {clean}");
            assert!(
                !clean.contains("s3cr3t") && !clean.contains("hunter"),
                "{echo} → {clean}"
            );
        }
    }

    #[test]
    fn a_cut_text_loses_the_tail_that_may_start_a_secret() {
        let redactor = redactor();
        let whole = format!("{}{SECRET} and more", "x".repeat(1_000));
        for at in (990..whole.len()).step_by(3) {
            let cut_text = cut_for_redaction(&whole, at);
            let clean = redactor.scrub(&cut_text);
            assert!(clean.ends_with(CUT_MARK), "{clean}");
            assert!(
                !clean.contains("post") && !clean.contains("s3c"),
                "cut at {at}: {clean}"
            );
        }
        // Nothing secret at the end: only the margin goes.
        let clean = redactor.scrub(&cut_for_redaction(&"y".repeat(5_000), 4_000));
        let margin = views::MOST_CHARS_PER_BYTE * SECRET.len();
        assert_eq!(clean.len(), 4_000 - margin + CUT_MARK.len());
    }

    #[test]
    fn the_text_is_cut_after_redaction() {
        let redactor = redactor();
        let echo = format!("{}{SECRET}", "x".repeat(MAX_TEXT_CHARS - 10));
        let clean = redactor.clean(&echo);
        assert!(
            !clean.contains("post"),
            "no prefix of the secret survives the cut"
        );
        assert!(clean.chars().count() <= MAX_TEXT_CHARS);
    }

    #[test]
    fn a_secret_too_short_to_find_withholds_the_text() {
        let redactor = redactor();
        redactor.add("info");
        assert_eq!(redactor.scrub("anything at all"), WITHHELD);
        // A value the flow needs is withheld only if it may hold it.
        assert_eq!(redactor.scrub_value("rt_1"), "rt_1");
        assert_eq!(redactor.scrub_value("https://x.test/?level=info"), WITHHELD);
        assert_eq!(redactor.scrub_value("https://x.test/?l=696e666f"), WITHHELD);
        // Too short to tell from any id: only free text is withheld.
        let other = Redactor::new(Credentials::default());
        other.add("1");
        assert_eq!(other.scrub_value("rt_1"), "rt_1");
        assert_eq!(other.scrub("rt_1"), WITHHELD);
    }

    #[test]
    fn process_credentials_and_url_userinfo_are_known_to_every_redactor() {
        let credentials = Credentials::default();
        credentials.register("runtime-token-123456");
        credentials.register_url("https://svc:hunter2hunter2@runtime.internal/v1");
        let redactor = Redactor::new(credentials.clone());
        let clean = redactor.scrub("Bearer runtime-token-123456 from svc:hunter2hunter2@x");
        assert!(
            !clean.contains("runtime-token-123456") && !clean.contains("hunter2"),
            "{clean}"
        );
        // Registered after the redactor was made: still known.
        credentials.register("ghs_minted_later_0001");
        assert!(
            !redactor
                .scrub("token ghs_minted_later_0001")
                .contains("ghs_minted")
        );
        // The URL itself is not a secret.
        assert!(
            redactor
                .scrub("runtime.internal/v1")
                .contains("runtime.internal")
        );
    }

    #[test]
    fn ordinary_text_passes_unchanged() {
        let redactor = redactor();
        for text in [
            "github create comment: 422 Validation Failed",
            "a+b=c & d%2 \\q https://example.test/a/b?c=d",
            "ünïcödé around ✓",
        ] {
            assert_eq!(redactor.clean(text), text);
        }
    }
}
