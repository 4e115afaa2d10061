//! The named set of ways a real service echoes what it was sent: the
//! redaction property test runs random secrets through each, the echoing
//! Runtime Service fake answers with the create request through each, and
//! the leak checks look for a secret in each form.
//!
//! Each is what a common framework writes: Go's `encoding/json`, Gson and
//! .NET escape `<`, `>`, `&` as `\u003c`-style; Python's `json.dumps`
//! escapes non-ASCII in lower case, Java's Jackson and others in upper;
//! PHP's `json_encode` escapes `/`; Python's `repr` quotes with `'`;
//! `encodeURIComponent`-style percent-encoding keeps `A-Za-z0-9-_.!~*'()`,
//! `encodeURI`-style also `/:?#@&=+$,;`; HTML templates escape `&<>"'`;
//! MIME (RFC 2045) breaks base64 every 76 characters with CRLF.

use base64::Engine as _;

/// One way of writing a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoder {
    Raw,
    Json,
    /// Pretty-printed JSON (spaces after separators): a whole object.
    JsonSpaced,
    JsonHtmlSafe,
    JsonAsciiLower,
    JsonAsciiUpper,
    PhpJson,
    PythonRepr,
    /// Python's `repr` of the parsed JSON (`{'d': '…'}`), as a validation
    /// error prints a request; a text that is not JSON as `PythonRepr`.
    PythonDict,
    PercentAll,
    PercentAllLower,
    PercentKeepSlash,
    Form,
    Html,
    Base64,
    Base64Url,
    Base64Mime,
    HexLower,
    HexUpper,
    /// JSON inside a JSON string (a service that quotes its input as text).
    JsonInJson,
}

impl Encoder {
    pub const ALL: [Encoder; 20] = [
        Encoder::Raw,
        Encoder::Json,
        Encoder::JsonSpaced,
        Encoder::JsonHtmlSafe,
        Encoder::JsonAsciiLower,
        Encoder::JsonAsciiUpper,
        Encoder::PhpJson,
        Encoder::PythonRepr,
        Encoder::PythonDict,
        Encoder::PercentAll,
        Encoder::PercentAllLower,
        Encoder::PercentKeepSlash,
        Encoder::Form,
        Encoder::Html,
        Encoder::Base64,
        Encoder::Base64Url,
        Encoder::Base64Mime,
        Encoder::HexLower,
        Encoder::HexUpper,
        Encoder::JsonInJson,
    ];

    /// `text` written this way.
    pub fn encode(self, text: &str) -> String {
        let b64 = &base64::engine::general_purpose::STANDARD;
        match self {
            Encoder::Raw => text.to_string(),
            Encoder::Json => json_string(text, |_| None),
            Encoder::JsonSpaced => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_default(),
                Err(_) => json_string(text, |_| None),
            },
            Encoder::JsonHtmlSafe => json_string(text, |c| {
                matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}')
                    .then(|| utf16_escapes(c, false))
            }),
            Encoder::JsonAsciiLower => {
                json_string(text, |c| (!c.is_ascii()).then(|| utf16_escapes(c, false)))
            }
            Encoder::JsonAsciiUpper => {
                json_string(text, |c| (!c.is_ascii()).then(|| utf16_escapes(c, true)))
            }
            Encoder::PhpJson => json_string(text, |c| match c {
                '/' => Some("\\/".to_string()),
                c if !c.is_ascii() => Some(utf16_escapes(c, false)),
                _ => None,
            }),
            Encoder::PythonRepr => python_repr(text),
            Encoder::PythonDict => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(value) => python_value(&value),
                Err(_) => python_repr(text),
            },
            Encoder::PercentAll => percent(text, |_| false, true),
            Encoder::PercentAllLower => percent(text, |_| false, false),
            Encoder::PercentKeepSlash => percent(text, |b| b"/:?#@&=+$,;".contains(&b), true),
            Encoder::Form => form_urlencoded::byte_serialize(text.as_bytes()).collect(),
            Encoder::Html => text
                .chars()
                .map(|c| match c {
                    '&' => "&amp;".to_string(),
                    '<' => "&lt;".to_string(),
                    '>' => "&gt;".to_string(),
                    '"' => "&quot;".to_string(),
                    '\'' => "&#39;".to_string(),
                    c => c.to_string(),
                })
                .collect(),
            Encoder::Base64 => b64.encode(text),
            Encoder::Base64Url => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text),
            Encoder::Base64Mime => b64
                .encode(text)
                .as_bytes()
                .chunks(76)
                .map(|line| std::str::from_utf8(line).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\r\n"),
            Encoder::HexLower => hex_string(text.as_bytes(), false),
            Encoder::HexUpper => hex_string(text.as_bytes(), true),
            Encoder::JsonInJson => Encoder::Json.encode(&Encoder::Json.encode(text)),
        }
    }

    /// Every form of `secret` an encoder writes, at least `shortest`
    /// characters long: what a leak check looks for.
    pub fn forms(secret: &str, shortest: usize) -> Vec<String> {
        let mut forms: Vec<String> = Encoder::ALL
            .iter()
            .map(|encoder| {
                let form = encoder.encode(secret);
                // Without a JSON string's quotes: a secret is inside one.
                match form.strip_prefix('"').and_then(|f| f.strip_suffix('"')) {
                    Some(inner) => inner.to_string(),
                    None => form,
                }
            })
            .collect();
        // Base64 inside a longer text: the characters that depend on the
        // secret alone, at each of the three alignments.
        for engine in [
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            for offset in 0..3 {
                forms.push(aligned_base64(engine, secret.as_bytes(), offset));
            }
        }
        forms.retain(|form| form.len() >= shortest);
        forms.sort();
        forms.dedup();
        forms
    }
}

/// The base64 characters that depend on `secret` alone when it starts
/// `offset` bytes into the encoded stream.
fn aligned_base64(engine: &impl base64::Engine, secret: &[u8], offset: usize) -> String {
    let mut padded = vec![0u8; offset];
    padded.extend_from_slice(secret);
    let encoded = engine.encode(&padded);
    let first = (8 * offset).div_ceil(6);
    let last = (8 * (offset + secret.len()) / 6).min(encoded.len());
    encoded.get(first..last).unwrap_or_default().to_string()
}

/// A JSON string, with `escape` choosing characters to write as escapes.
fn json_string(text: &str, escape: impl Fn(char) -> Option<String>) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match escape(c) {
            Some(escaped) => out.push_str(&escaped),
            None => {
                let one = serde_json::to_string(&c.to_string()).unwrap_or_default();
                out.push_str(&one[1..one.len() - 1]);
            }
        }
    }
    out.push('"');
    out
}

fn utf16_escapes(c: char, upper: bool) -> String {
    let mut units = [0u16; 2];
    c.encode_utf16(&mut units)
        .iter()
        .map(|unit| {
            if upper {
                format!("\\u{unit:04X}")
            } else {
                format!("\\u{unit:04x}")
            }
        })
        .collect()
}

/// Python 3's `repr` of a `str`: single quotes, `\\`, `\'`, `\n`, `\r`,
/// `\t`, and `\xNN` for other control characters.
fn python_repr(text: &str) -> String {
    let mut out = String::from("'");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Python's `repr` of what `json.loads` makes of a JSON value.
fn python_value(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => python_repr(s),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(python_value)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(members) => format!(
            "{{{}}}",
            members
                .iter()
                .map(|(k, v)| format!("{}: {}", python_repr(k), python_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn percent(text: &str, keep: impl Fn(u8) -> bool, upper: bool) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) || keep(b) {
            out.push(b as char);
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

fn hex_string(bytes: &[u8], upper: bool) -> String {
    bytes
        .iter()
        .map(|b| {
            if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect()
}
