//! The parts of a secret that identify it on their own.
//!
//! A service may echo part of what it was sent in a layout of its own: the
//! signing key's `d` quoted alone or in a Python repr, a database URL's
//! password in a driver's error, one line of a PEM key. So a secret is
//! looked for whole and as each of these parts:
//!
//! - a JWK: its private members (`d`, `p`, `q`, `dp`, `dq`, `qi`, `k`, and
//!   `oth`'s); never its public ones, which are meant to be shown;
//! - another JSON object or array: every string in it, and their parts;
//! - a URL (also inside a longer text, e.g. a connection string): its
//!   userinfo and the password in it;
//! - a PEM block: its body joined, and each line of it.
//!
//! A part shorter than [`MIN_SECRET_BYTES`] does not identify anything (a
//! 4-byte password matches ordinary words): it is not looked for alone.
//! The whole secret, and any longer part, still are; and a whole secret
//! that short is handled by the redactor's own rule.

use super::MIN_SECRET_BYTES;

/// JWK members that are private key material (RFC 7518 §6).
const JWK_PRIVATE: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];
/// How deep a JSON secret is searched for strings.
const JSON_DEPTH: usize = 4;

/// `secret` and the parts of it that identify it, each at least
/// [`MIN_SECRET_BYTES`] long, without repeats.
pub fn of(secret: &str) -> Vec<String> {
    let mut parts = vec![secret.to_string()];
    add_parts(secret, JSON_DEPTH, &mut parts);
    parts.retain(|part| part.len() >= MIN_SECRET_BYTES);
    parts.sort();
    parts.dedup();
    parts
}

fn add_parts(text: &str, depth: usize, parts: &mut Vec<String>) {
    let trimmed = text.trim();
    if depth > 0
        && (trimmed.starts_with('{') || trimmed.starts_with('['))
        && let Ok(value) = serde_json::from_str::<serde_json::Value>(trimmed)
    {
        json_parts(&value, depth, parts);
    }
    url_parts(text, parts);
    pem_parts(text, parts);
}

fn json_parts(value: &serde_json::Value, depth: usize, parts: &mut Vec<String>) {
    use serde_json::Value;
    match value {
        Value::Object(members) if members.contains_key("kty") => {
            for name in JWK_PRIVATE {
                if let Some(Value::String(member)) = members.get(name) {
                    parts.push(member.clone());
                }
            }
            if let Some(Value::Array(others)) = members.get("oth") {
                for other in others {
                    for name in ["r", "d", "t"] {
                        if let Some(Value::String(member)) = other.get(name) {
                            parts.push(member.clone());
                        }
                    }
                }
            }
        }
        Value::Object(members) => members
            .values()
            .for_each(|v| json_parts(v, depth.saturating_sub(1), parts)),
        Value::Array(items) => items
            .iter()
            .for_each(|v| json_parts(v, depth.saturating_sub(1), parts)),
        Value::String(text) if depth > 0 => {
            parts.push(text.clone());
            add_parts(text, depth - 1, parts);
        }
        _ => {}
    }
}

/// The userinfo (`user:password`) and the password of every URL in `text`.
fn url_parts(text: &str, parts: &mut Vec<String>) {
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let after = &rest[at + 3..];
        let authority = after
            .split(['/', '?', '#', ' ', '"', '\'', '\n'])
            .next()
            .unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            parts.push(userinfo.to_string());
            if let Some((_, password)) = userinfo.split_once(':') {
                parts.push(password.to_string());
                // As the URL carries it, and as the driver would use it.
                if let Ok(decoded) = percent_encoding::percent_decode_str(password).decode_utf8() {
                    parts.push(decoded.into_owned());
                }
            }
        }
        rest = after;
    }
}

/// A PEM block's body joined, and each of its lines.
fn pem_parts(text: &str, parts: &mut Vec<String>) {
    if !text.contains("-----BEGIN") {
        return;
    }
    let body: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("-----") && !line.contains(':'))
        .collect();
    parts.push(body.concat());
    parts.extend(body.iter().map(|line| line.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwk_gives_its_private_members_and_not_its_public_ones() {
        let jwk = r#"{"kty":"OKP","crv":"Ed25519","x":"public-x-coordinate-abc","d":"private-d-member-xyz"}"#;
        let parts = of(jwk);
        assert!(parts.contains(&"private-d-member-xyz".to_string()));
        assert!(!parts.iter().any(|p| p.contains("public-x") && p != jwk));
        assert!(parts.contains(&jwk.to_string()));
    }

    #[test]
    fn urls_give_their_password_and_short_parts_are_left_out() {
        let parts = of("host=db; url=postgres://shop:s3cr3t%2Fhunter@db.internal/shop");
        for part in ["shop:s3cr3t%2Fhunter", "s3cr3t%2Fhunter", "s3cr3t/hunter"] {
            assert!(parts.contains(&part.to_string()), "{part}: {parts:?}");
        }
        let parts = of("postgres://u:pw@db/x");
        assert_eq!(
            parts,
            ["postgres://u:pw@db/x"],
            "`u:pw` and `pw` are too short"
        );
    }

    #[test]
    fn json_secrets_give_their_strings_and_pem_keys_their_lines() {
        let account = serde_json::json!({
            "type": "service_account",
            "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEF\nAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n",
        })
        .to_string();
        let parts = of(&account);
        for part in [
            "service_account",
            "MIIEvQIBADANBgkqhkiG9w0BAQEF",
            "AASCBKcwggSjAgEAAoIBAQC7",
            "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7",
        ] {
            assert!(parts.contains(&part.to_string()), "{part}: {parts:?}");
        }
    }
}
