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
//! Names are matched whatever their case; the KMS ciphertexts the logic
//! decrypted become stand-ins as well.

use std::collections::BTreeMap;
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
            true => scrubbed(recording),
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

fn add(found: &mut BTreeMap<String, &'static str>, text: &str, kind: &'static str) {
    if text.chars().count() >= shortest(kind) {
        // Case-insensitive: GitHub's names are, and the logic may
        // lower-case them (a repository's index key).
        found.entry(text.to_ascii_lowercase()).or_insert(kind);
    }
}

fn collect(value: &Value, parent: &str, found: &mut BTreeMap<String, &'static str>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
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

/// The recording with every identifying text replaced, consistently.
pub fn scrubbed(recording: &Recording) -> Recording {
    // Every string of the recording, JSON texts inside strings included.
    let Ok(mut whole) = serde_json::to_value(recording) else {
        return recording.clone();
    };
    // First, while the ciphertexts are still whole.
    scrub_ciphertexts(&mut whole);
    // The names: from the message, and the logins among what dependencies
    // answered (a comment's author, an app's trusted authors). Not their
    // texts: a comment's body holds the logic's own markers, which it
    // looks for again.
    let mut found = BTreeMap::new();
    if let Ok(body) = serde_json::from_str::<Value>(&recording.message.body) {
        collect(&body, "payload", &mut found);
    }
    if let Some(calls) = whole.get("calls").and_then(Value::as_array) {
        let mut answered = BTreeMap::new();
        for call in calls {
            if let Some(answer) = call.get("answer") {
                collect(answer, "answer", &mut answered);
            }
        }
        for (text, kind) in answered {
            if kind == "login" {
                found.entry(text).or_insert(kind);
            }
        }
    }
    if found.is_empty() {
        return serde_json::from_value(whole).unwrap_or_else(|_| recording.clone());
    }
    // Longest first, so `acme/shop` is replaced whole before `acme`.
    let mut texts: Vec<(String, &'static str)> = found.into_iter().collect();
    texts.sort_by_key(|(text, _)| std::cmp::Reverse(text.len()));
    let mut numbers: BTreeMap<&str, usize> = BTreeMap::new();
    let stand_ins: Vec<String> = texts
        .iter()
        .map(|(_, kind)| {
            let n = numbers.entry(kind).or_insert(0);
            *n += 1;
            format!("{kind}-{n}")
        })
        .collect();
    let patterns: Vec<&str> = texts.iter().map(|(t, _)| t.as_str()).collect();
    let Ok(replacer) = aho_corasick::AhoCorasick::builder()
        .match_kind(aho_corasick::MatchKind::LeftmostLongest)
        .ascii_case_insensitive(true)
        .build(&patterns)
    else {
        return recording.clone();
    };
    // Whole words only: `shop` in `acme/shop` goes, in `app_shop` it stays
    // (an id the logic may hash).
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-');
    let replace = |text: &str| {
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
        out
    };
    fn walk(value: &mut Value, replace: &dyn Fn(&str) -> String) {
        match value {
            Value::String(s) => *s = replace(s),
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, replace)),
            Value::Object(map) => map.values_mut().for_each(|v| walk(v, replace)),
            _ => {}
        }
    }
    walk(&mut whole, &replace);
    serde_json::from_value(whole).unwrap_or_else(|_| recording.clone())
}

/// The KMS ciphertexts the logic read (a secret's item) and decrypted leave
/// only as stand-ins: a ciphertext with the encryption context beside it is
/// a secret to anyone who may decrypt under the key. Each becomes the same
/// stand-in wherever it appears, and its decrypt request names the
/// stand-in's digest, so the recording still replays.
fn scrub_ciphertexts(whole: &mut Value) {
    use base64::Engine as _;
    let base64 = base64::engine::general_purpose::STANDARD;
    let mut decrypted: BTreeMap<String, String> = BTreeMap::new();
    if let Some(calls) = whole.get("calls").and_then(Value::as_array) {
        for call in calls {
            if call.get("call").and_then(Value::as_str) == Some("kms.decrypt")
                && let Some(digest) = call
                    .pointer("/request/ciphertext-sha256")
                    .and_then(Value::as_str)
            {
                let n = decrypted.len() + 1;
                decrypted
                    .entry(digest.to_string())
                    .or_insert_with(|| base64.encode(format!("scrubbed ciphertext {n}")));
            }
        }
    }
    if decrypted.is_empty() {
        return;
    }
    fn walk(value: &mut Value, swap: &dyn Fn(&str) -> Option<String>) {
        match value {
            Value::String(text) => {
                if let Some(stand_in) = swap(text) {
                    *text = stand_in;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, swap)),
            Value::Object(map) => map.values_mut().for_each(|v| walk(v, swap)),
            _ => {}
        }
    }
    let swap = |text: &str| -> Option<String> {
        // A decrypt's digest: the stand-in's digest.
        if let Some(stand_in) = decrypted.get(text) {
            return base64
                .decode(stand_in)
                .ok()
                .map(|bytes| crate::engine::hex_sha256(&bytes));
        }
        // A ciphertext: its stand-in.
        let bytes = base64.decode(text).ok()?;
        decrypted.get(&crate::engine::hex_sha256(&bytes)).cloned()
    };
    walk(whole, &swap);
}
