//! Recordings as files, for replay without any cloud access: `envmgr
//! record export DIR [--scrub]` writes one JSON file per recording and the
//! components of the versions that handled them (`logic/{id}.wasm`), so
//! `envmgr logic replay CANDIDATE --from DIR` needs nothing else.
//!
//! `--scrub` replaces what identifies people and private code: pull-request
//! titles and bodies, logins, e-mail addresses, repository owners and
//! names. Each such text gets a stand-in (`login-1`, `title-2`, …) used
//! everywhere it appears in the recording (message, requests, answers), so
//! the recording still replays as long as the logic only copies those texts
//! (a value derived from one, such as a hash of a title, no longer matches).
//! The names are those of the message, and the logins and repository names
//! among what dependencies answered (a status report's message names no
//! repository: the record DynamoDB answered does); a name found anywhere is
//! replaced everywhere in the recording, inside URLs and host names too.
//! Names are matched as written and lower-cased; every KMS ciphertext (the
//! app's secrets read, the signing keys) becomes a stand-in as well.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::Value;

use crate::record::Recording;

/// A recording's file name: in time order when listed.
fn file_name(recording: &Recording) -> String {
    let id: String = recording
        .message
        .id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{:013}-{id}-{}.json",
        recording.handled_at_ms, recording.message.receive_count
    )
}

/// Write `recordings` into `dir` and the components `component` finds.
/// Returns the files written.
pub fn export(
    recordings: &[Recording],
    dir: &Path,
    scrub: bool,
    component: impl Fn(&str) -> Option<Vec<u8>>,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir.join("logic"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    let mut versions = std::collections::BTreeSet::new();
    for recording in recordings {
        let recording = match scrub {
            true => scrubbed(recording)?,
            false => recording.clone(),
        };
        let path = dir.join(file_name(&recording));
        std::fs::write(&path, serde_json::to_vec_pretty(&recording)?)
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        versions.insert(recording.logic.clone());
    }
    for version in versions {
        let path = dir.join("logic").join(format!("{version}.wasm"));
        if !path.exists()
            && let Some(bytes) = component(&version)
        {
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}

/// Every recording in `dir`, oldest first.
pub fn read(dir: &Path) -> anyhow::Result<Vec<Recording>> {
    let mut recordings = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let recording: Recording = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a recording", path.display()))?;
        if recording.format != super::FORMAT {
            anyhow::bail!(
                "{} is a recording of format {}; this host reads format {}",
                path.display(),
                recording.format,
                super::FORMAT
            );
        }
        recordings.push(recording);
    }
    recordings.sort_by_key(|r| r.handled_at_ms);
    Ok(recordings)
}

/// The component of `version` exported beside the recordings, if any.
pub fn component(dir: &Path, version: &str) -> Option<Vec<u8>> {
    std::fs::read(dir.join("logic").join(format!("{version}.wasm"))).ok()
}

/// Which message fields identify people or private code, and the stand-in
/// they become.
fn kind_of(key: &str, parent: &str) -> Option<&'static str> {
    Some(match (key, parent) {
        ("title", _) => "title",
        ("body", _) => "text",
        ("login", _) => "login",
        ("email", _) => "email",
        ("full_name", _) => "repository",
        ("name", "repository" | "repo") => "repository",
        ("owner", "repository" | "repo" | "payload") => "owner",
        ("repository", _) => "repository",
        _ => return None,
    })
}

/// The shortest text of each kind that is replaced: a name of two letters
/// is one (`ui`, `go`); a title or body that short identifies nobody.
fn shortest(kind: &str) -> usize {
    match kind {
        "login" | "owner" | "repository" => 2,
        _ => 3,
    }
}

/// The names found: each by its lower-case form, with its kind and every
/// spelling seen.
type Names = BTreeMap<String, (&'static str, BTreeSet<String>)>;

fn add(found: &mut Names, text: &str, kind: &'static str) {
    if text.chars().count() >= shortest(kind) {
        // As written and lower-cased: GitHub's names are case-insensitive
        // and the logic lower-cases some (a repository's index key). Not
        // in any case: `app` must not take `APP` out of `APP#…` keys.
        let lower = text.to_lowercase();
        let (_, spellings) = found
            .entry(lower.clone())
            .or_insert((kind, BTreeSet::new()));
        spellings.insert(text.to_string());
        spellings.insert(lower);
    }
}

/// The text of a string, or of a DynamoDB string attribute as a recording
/// holds one (`{"s": "acme/shop"}`).
fn text_of(value: &Value) -> Option<&str> {
    match value {
        Value::String(text) => Some(text),
        Value::Object(attribute) if attribute.len() == 1 => attribute.get("s")?.as_str(),
        _ => None,
    }
}

fn collect(value: &Value, parent: &str, found: &mut Names) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let value = match text_of(value) {
                    Some(text) => &Value::String(text.to_string()),
                    None => value,
                };
                match value {
                    Value::String(text) => {
                        if let Some(kind) = kind_of(key, parent) {
                            // `owner/name` as its two parts, so that every
                            // way the logic joins them again still matches.
                            match text.split_once('/') {
                                Some(_) => text.split('/').for_each(|part| add(found, part, kind)),
                                None => add(found, text, kind),
                            }
                        }
                    }
                    // An app's trusted authors: logins, however stored.
                    other if key == "trustedAuthors" => {
                        strings(other, &mut |t| add(found, t, "login"))
                    }
                    other => collect(other, key, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, parent, found)),
        _ => {}
    }
}

fn strings(value: &Value, each: &mut dyn FnMut(&str)) {
    match value {
        Value::String(text) => each(text),
        Value::Array(items) => items.iter().for_each(|v| strings(v, each)),
        Value::Object(map) => map.values().for_each(|v| strings(v, each)),
        _ => {}
    }
}

fn walk(value: &mut Value, replace: &dyn Fn(&str) -> Option<String>) {
    match value {
        Value::String(text) => {
            if let Some(replaced) = replace(text) {
                *text = replaced;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| walk(v, replace)),
        Value::Object(map) => map.values_mut().for_each(|v| walk(v, replace)),
        _ => {}
    }
}

/// The recording with every identifying text replaced, consistently; an
/// error rather than a recording left as it was.
pub fn scrubbed(recording: &Recording) -> anyhow::Result<Recording> {
    // Every string of the recording, JSON texts inside strings included.
    let mut whole = serde_json::to_value(recording)?;
    // First, while the ciphertexts are still whole.
    scrub_ciphertexts(&mut whole);
    // The names: from the message, and the logins among what dependencies
    // answered (a comment's author, an app's trusted authors). Not their
    // texts: a comment's body holds the logic's own markers, which it
    // looks for again.
    let mut found = Names::new();
    if let Ok(body) = serde_json::from_str::<Value>(&recording.message.body) {
        collect(&body, "payload", &mut found);
    }
    if let Some(calls) = whole.get("calls").and_then(Value::as_array) {
        let mut answered = Names::new();
        for call in calls {
            if let Some(answer) = call.get("answer") {
                collect(answer, "answer", &mut answered);
            }
        }
        // Logins, and the names of the repository the environment is of
        // (a status report's message names none: they come with the
        // record DynamoDB answered); not an answer's titles or bodies.
        for (lower, (kind, spellings)) in answered {
            if matches!(kind, "login" | "owner" | "repository") {
                let (_, known) = found.entry(lower).or_insert((kind, BTreeSet::new()));
                known.extend(spellings);
            }
        }
    }
    if !found.is_empty() {
        let mut numbers: BTreeMap<&str, usize> = BTreeMap::new();
        let mut patterns: Vec<String> = Vec::new();
        let mut stand_ins: Vec<String> = Vec::new();
        for (kind, spellings) in found.values() {
            let n = numbers.entry(kind).or_insert(0);
            *n += 1;
            for spelling in spellings {
                patterns.push(spelling.clone());
                stand_ins.push(format!("{kind}-{n}"));
            }
        }
        // Leftmost-longest: `acme/shop`'s parts are replaced in it, and a
        // longer name is never cut by a shorter one inside it.
        let replacer = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(&patterns)
            .context("scrubbing a recording")?;
        // Whole words only: `shop` in `acme/shop` and in a host name's
        // `shop-pr-7` goes, in `app_shop` it stays (an id the logic may
        // hash); `-` parts the labels of host names and URLs.
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        let replace = |text: &str| -> Option<String> {
            let mut out = String::with_capacity(text.len());
            let mut at = 0;
            for found in replacer.find_iter(text) {
                let before = text[..found.start()].chars().next_back();
                let after = text[found.end()..].chars().next();
                if word(before) || word(after) {
                    continue;
                }
                out.push_str(&text[at..found.start()]);
                out.push_str(&stand_ins[found.pattern().as_usize()]);
                at = found.end();
            }
            out.push_str(&text[at..]);
            Some(out)
        };
        walk(&mut whole, &replace);
    }
    serde_json::from_value(whole).context("a scrubbed recording no longer reads as one")
}

/// The KMS ciphertexts in a recording leave only as stand-ins: a
/// ciphertext with the encryption context beside it is a secret to anyone
/// allowed to decrypt under the key. Every value named a ciphertext
/// (`ciphertext`, `signingKeyCiphertext`: every secret item the logic read,
/// decrypted or not, and the signing keys) becomes bytes of the same length
/// made up here, the same wherever the ciphertext appears, and a decrypt
/// request's digest of it becomes the stand-in's digest, so the recording
/// still replays.
fn scrub_ciphertexts(whole: &mut Value) {
    use base64::Engine as _;
    let base64 = base64::engine::general_purpose::STANDARD;
    // The digest of each ciphertext found, and its stand-in.
    let mut stand_ins: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    fn named(value: &Value, found: &mut dyn FnMut(&str)) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    let text = match value {
                        Value::String(text) => Some(text.as_str()),
                        // An item's attribute: `{"b": base64}`.
                        Value::Object(attribute) => attribute.get("b").and_then(Value::as_str),
                        _ => None,
                    };
                    match text {
                        Some(text) if key.to_ascii_lowercase().ends_with("ciphertext") => {
                            found(text)
                        }
                        _ => named(value, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| named(v, found)),
            _ => {}
        }
    }
    named(whole, &mut |text| {
        let Ok(bytes) = base64.decode(text) else {
            return;
        };
        let n = stand_ins.len();
        stand_ins
            .entry(crate::support::hex_sha256(&bytes))
            .or_insert_with(|| made_up(n, bytes.len()));
    });
    if stand_ins.is_empty() {
        return;
    }
    let renamed: BTreeMap<&str, String> = stand_ins
        .iter()
        .map(|(digest, stand_in)| (digest.as_str(), crate::support::hex_sha256(stand_in)))
        .collect();
    walk(whole, &|text| {
        // A decrypt's digest of a ciphertext: the stand-in's digest.
        if let Some(digest) = renamed.get(text) {
            return Some(digest.clone());
        }
        // The ciphertext itself, wherever it appears: its stand-in.
        let bytes = base64.decode(text).ok()?;
        stand_ins
            .get(&crate::support::hex_sha256(&bytes))
            .map(|stand_in| base64.encode(stand_in))
    });
}

/// `length` bytes that are no ciphertext: the n-th stand-in's, the same
/// for the same n, binary like a ciphertext (the logic checks its size).
fn made_up(n: usize, length: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(length + 32);
    let mut block = 0u64;
    while bytes.len() < length {
        let seed = format!("envmgr --scrub stand-in {n} {block}");
        bytes.extend_from_slice(&<sha2::Sha256 as sha2::Digest>::digest(seed.as_bytes()));
        block += 1;
    }
    bytes.truncate(length);
    bytes
}
