//! Nothing secret crosses back: every text a dependency sends (error bodies
//! and success values alike) passes a redactor before it reaches the guest,
//! a log, a record or a dead letter.
//!
//! A redactor knows every live credential: the process's own (the GitHub
//! App key, installation tokens, the Runtime Service token, the Segment key,
//! AWS credentials, userinfo in configured URLs — [`Credentials`]) and the
//! message's (its decrypted secrets and tokens). It replaces each in every
//! form a service may echo it in: raw, JSON-escaped, standard and URL-safe
//! base64 at all three alignments, hex in both cases, and percent/form
//! encoded — the longest match first, before any text is cut short. A
//! secret too short to recognise safely (under [`MIN_SECRET_BYTES`]) makes
//! the redactor withhold the dependency's text altogether.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";
/// Shorter secrets cannot be searched for without matching ordinary text
/// (and their encodings even less): the text is withheld instead.
pub const MIN_SECRET_BYTES: usize = 8;
/// A secret shorter than this is not looked for in values at all.
const SHORTEST_FOUND: usize = 4;
/// What a text says when it was withheld.
pub const WITHHELD: &str =
    "[the dependency's text is withheld: it may contain a secret too short to redact]";
/// The longest dependency text kept (after redaction), in characters.
pub const MAX_TEXT_CHARS: usize = 500;
/// An encoded form shorter than this is not searched for (it would match
/// ordinary text); the raw form of a secret is always.
const MIN_NEEDLE_BYTES: usize = 6;

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

/// The process's own credentials: registered once known (at start, or when
/// minted), shared by every redactor of the process.
#[derive(Clone, Default)]
pub struct Credentials(Arc<RwLock<BTreeSet<String>>>);

/// Never their values: how many there are.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.0.read().map(|c| c.len()).unwrap_or(0);
        write!(f, "Credentials({count} registered)")
    }
}

impl Credentials {
    /// Remember a credential. One shorter than [`MIN_SECRET_BYTES`] is not
    /// a credential any service issues (only test setups have them, e.g.
    /// moto's `test` keys) and would withhold every text: it is left out.
    pub fn register(&self, secret: &str) {
        if secret.len() < MIN_SECRET_BYTES {
            return;
        }
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(secret.to_string());
    }

    /// The password and `user:password` of a URL's userinfo, if any.
    pub fn register_url(&self, url: &str) {
        let Some((_, rest)) = url.split_once("://") else {
            return;
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            self.register(userinfo);
            if let Some((_, password)) = userinfo.split_once(':') {
                self.register(password);
            }
        }
    }

    /// Every line of a PEM key's body, and the whole of it.
    pub fn register_pem(&self, pem: &str) {
        let body: String = pem
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        self.register(&body);
        for line in pem.lines().filter(|l| !l.starts_with("-----")) {
            if line.len() >= 16 {
                self.register(line.trim());
            }
        }
    }

    fn snapshot(&self) -> Vec<String> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

/// Redacts the process's credentials and those of one message.
#[derive(Clone, Default)]
pub struct Redactor {
    credentials: Credentials,
    message: Arc<Mutex<Vec<String>>>,
    compiled: Arc<Mutex<Option<Compiled>>>,
}

struct Compiled {
    /// How many secrets it was built from: rebuilt when that changes.
    built_from: usize,
    automaton: Option<AhoCorasick>,
    withhold: bool,
    /// The forms of the short secrets that can be searched for at all.
    short: Option<AhoCorasick>,
}

impl Redactor {
    /// A redactor for one message, on the process's credentials.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials,
            ..Self::default()
        }
    }

    /// A plaintext this message holds (a decrypted secret, a token).
    pub fn add(&self, secret: &str) {
        if !secret.is_empty() {
            self.message
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(secret.to_string());
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
        let mut secrets = self.credentials.snapshot();
        secrets.extend(
            self.message
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned(),
        );
        if secrets.is_empty() {
            return text.to_string();
        }
        let mut compiled = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        if compiled
            .as_ref()
            .is_none_or(|c| c.built_from != secrets.len())
        {
            *compiled = Some(compile(&secrets));
        }
        let compiled = compiled.as_ref().expect("just built");
        if compiled.withhold {
            let found = compiled
                .short
                .as_ref()
                .is_some_and(|short| short.is_match(text));
            if short == Short::WithholdAlways || found {
                return WITHHELD.to_string();
            }
        }
        match &compiled.automaton {
            Some(automaton) => {
                automaton.replace_all(text, &vec![REDACTED; automaton.patterns_len()])
            }
            None => text.to_string(),
        }
    }
}

/// What a secret shorter than [`MIN_SECRET_BYTES`] does to a text.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Short {
    WithholdAlways,
    WithholdIfFound,
}

fn compile(secrets: &[String]) -> Compiled {
    let withhold = secrets.iter().any(|s| s.len() < MIN_SECRET_BYTES);
    // A short secret's forms of at least 4 characters: in a value the flow
    // needs (a runtime's id or URL) one of them withholds the value. A
    // secret under 4 bytes cannot be told apart from any id (`DEBUG=1`
    // would match every `rt_1`): it only withholds free text.
    let short_forms: BTreeSet<String> = secrets
        .iter()
        .filter(|s| (SHORTEST_FOUND..MIN_SECRET_BYTES).contains(&s.len()))
        .flat_map(|secret| {
            let mut forms = encodings(secret.as_bytes());
            forms.push(secret.clone());
            forms
        })
        .filter(|form| form.len() >= SHORTEST_FOUND)
        .collect();
    let short = AhoCorasick::builder()
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .build(short_forms.iter())
        .ok();
    let mut needles: BTreeSet<String> = BTreeSet::new();
    for secret in secrets.iter().filter(|s| s.len() >= MIN_SECRET_BYTES) {
        needles.insert(secret.clone());
        for form in encodings(secret.as_bytes()) {
            if form.len() >= MIN_NEEDLE_BYTES {
                needles.insert(form);
            }
        }
    }
    let needles: Vec<String> = needles.into_iter().collect();
    // Built for each message (its secrets are part of it) and run over a few
    // short texts: a contiguous NFA builds many times faster than the DFA
    // the builder would pick for this many needles, which dominated a
    // message's CPU time on the local backend (docs/performance.md).
    let automaton = AhoCorasick::builder()
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .match_kind(MatchKind::LeftmostLongest)
        .build(&needles)
        .ok();
    Compiled {
        built_from: secrets.len(),
        automaton,
        withhold,
        short,
    }
}

/// Percent-encoding that keeps RFC 3986's unreserved characters.
const UNRESERVED_KEPT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// JSON string content with every non-ASCII character as `\uXXXX`.
fn ascii_json(text: &str) -> String {
    let json = serde_json::to_string(text).unwrap_or_default();
    let inner = &json[1..json.len().saturating_sub(1)];
    let mut out = String::with_capacity(inner.len());
    for c in inner.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// The forms a service may echo `secret` in.
pub fn encodings(secret: &[u8]) -> Vec<String> {
    let mut forms = Vec::new();
    if let Ok(text) = std::str::from_utf8(secret) {
        // JSON-escaped, without the quotes.
        let json = serde_json::to_string(text).unwrap_or_default();
        forms.push(json[1..json.len().saturating_sub(1)].to_string());
        // JSON with every non-ASCII character escaped (`\u00e4`), as some
        // serializers write it.
        forms.push(ascii_json(text));
        // Percent-encoded — everything but letters and digits, or all but
        // RFC 3986's unreserved characters — in both cases of hex digits,
        // and form-encoded.
        for set in [percent_encoding::NON_ALPHANUMERIC, UNRESERVED_KEPT] {
            let percent = percent_encoding::utf8_percent_encode(text, set).to_string();
            forms.push(lowercase_escapes(&percent));
            forms.push(percent);
        }
        forms.push(form_urlencoded::byte_serialize(secret).collect());
    }
    forms.push(hex::encode(secret));
    forms.push(hex::encode_upper(secret));
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for offset in 0..3 {
            forms.push(aligned_base64(engine, secret, offset));
        }
    }
    forms.retain(|form| !form.is_empty());
    forms
}

/// The characters of base64 that depend on `secret` alone when it starts
/// `offset` bytes into the encoded stream: what any base64 text holding it
/// contains, whatever surrounds it.
fn aligned_base64(engine: &impl base64::Engine, secret: &[u8], offset: usize) -> String {
    let mut padded = vec![0u8; offset];
    padded.extend_from_slice(secret);
    let encoded = engine.encode(&padded);
    let first = (8 * offset).div_ceil(6);
    let end_bits = 8 * (offset + secret.len());
    let last = (end_bits / 6).min(encoded.len()); // chars wholly within
    if last <= first {
        return String::new();
    }
    encoded[first..last].to_string()
}

/// `%2F` → `%2f`: some services echo lowercase escapes.
fn lowercase_escapes(percent: &str) -> String {
    let mut out = String::with_capacity(percent.len());
    let mut chars = percent.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            for _ in 0..2 {
                if let Some(h) = chars.next() {
                    out.push(h.to_ascii_lowercase());
                }
            }
        }
    }
    out
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
    fn every_encoding_at_every_alignment_is_redacted() {
        let redactor = redactor();
        let bytes = SECRET.as_bytes();
        let mut echoes = vec![
            format!(
                "invalid request: {}",
                serde_json::json!({ "secrets": { "DB": SECRET } })
            ),
            format!(
                "db={}",
                percent_encoding::utf8_percent_encode(SECRET, percent_encoding::NON_ALPHANUMERIC)
            ),
            format!(
                "q={}",
                form_urlencoded::byte_serialize(bytes).collect::<String>()
            ),
            format!("hex {} / {}", hex::encode(bytes), hex::encode_upper(bytes)),
            format!("{{\"db\": \"{}\"}}", ascii_json(SECRET)),
            percent_encoding::utf8_percent_encode(SECRET, UNRESERVED_KEPT).to_string(),
        ];
        for prefix in ["", "a", "ab", "abc"] {
            let mut framed = prefix.as_bytes().to_vec();
            framed.extend_from_slice(bytes);
            framed.extend_from_slice(b"tail");
            echoes.push(base64::engine::general_purpose::STANDARD.encode(&framed));
            echoes.push(base64::engine::general_purpose::URL_SAFE.encode(&framed));
        }
        for echo in echoes {
            let clean = redactor.scrub(&echo);
            assert!(clean.contains(REDACTED), "{echo} → {clean}");
            for form in encodings(bytes) {
                assert!(!clean.contains(&form), "{form} left in {clean}");
            }
            assert!(!clean.contains("s3cr3t"), "{clean}");
        }
    }

    #[test]
    fn the_longest_form_goes_first_and_text_is_cut_after() {
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
    }

    #[test]
    fn ordinary_text_passes_unchanged() {
        let redactor = redactor();
        let text = "github create comment: 422 Validation Failed";
        assert_eq!(redactor.clean(text), text);
    }
}
