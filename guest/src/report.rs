//! A runtime's status report (docs/runtime-service.md, "Status reports"):
//! a compact JWS the runtime signs with the environment's private key for
//! one request, saying the environment is `ready` (at a URL) or `failed`
//! (in a category, for a reason).
//!
//! The rules, in the order they are applied:
//!
//! 1. The claims name the environment (`sub`) and the request (`ver`). A
//!    report for a request older than the record's is skipped; one for a
//!    request the environment never had is refused.
//! 2. The signature is checked with the public key on the record, EdDSA
//!    only (the host refuses every other algorithm and ignores key hints).
//! 3. Expiry is judged against the message's sent time with a clock-skew
//!    allowance of [`CLOCK_SKEW_MS`]: expired or future-dated reports are
//!    refused.
//! 4. A report applies only with a higher `seq` than the stored one, so a
//!    captured `ready` replayed after `failed` cannot flip it back.
//! 5. The report is stored (the environment's `REPORT` item) before it is
//!    applied. A report that arrives before the create finished is stored
//!    only: the create's last write merges it. Otherwise it is applied
//!    under the environment's lease: the record, the pull-request comment
//!    and the GitHub deployment.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::capabilities::{ErrorCode, Item, KeyCondition, PutItem, Value, Write};
use crate::environment::{STATUS_FAILED, STATUS_READY, TABLE};
use crate::item::{get_s, get_u64, key, n, s};
use crate::outcome::Failure;

/// The report item's sort key, beside the record (`#`) and the lease.
pub const SORT_KEY: &str = "REPORT";
/// How far the runtime's clock and the queue's may disagree.
pub const CLOCK_SKEW_MS: u64 = 60_000;
/// Longest reason kept on the record.
const REASON_CHARS: usize = 500;
/// The failure categories the comment and the deployment show; any other
/// is shown as `other`.
pub const CATEGORIES: [&str; 7] = [
    "build",
    "start",
    "health-check",
    "timeout",
    "capacity",
    "config",
    "internal",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Ready,
    Failed,
}

impl State {
    /// The record's status for it.
    pub fn status(self) -> &'static str {
        match self {
            Self::Ready => STATUS_READY,
            Self::Failed => STATUS_FAILED,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }
}

/// A report's claims, as signed (others are ignored).
#[derive(Deserialize)]
struct Claims {
    sub: String,
    ver: String,
    state: String,
    url: Option<String>,
    category: Option<String>,
    reason: Option<String>,
    iat: u64,
    exp: u64,
    jti: String,
    seq: u64,
}

/// What the runtime reported, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub environment_id: String,
    pub version: String,
    pub seq: u64,
    pub state: State,
    /// Ready: where the environment answers; failed: where to read more.
    pub url: Option<String>,
    /// Failed: one of [`CATEGORIES`], or `other`.
    pub category: String,
    /// Failed: the runtime's own words, for the record only.
    pub reason: Option<String>,
    pub issued_at_ms: u64,
    pub id: String,
}

/// A report's order among all an environment gets: by request version,
/// then by sequence number, as text (the version has a fixed width).
fn order(version: &str, seq: u64) -> String {
    format!("{version}#{seq:020}")
}

impl Report {
    /// The report as the `REPORT` item keeps it.
    fn item(&self) -> Item {
        let mut item = key(
            format!("ENVIRONMENT#{}", self.environment_id),
            SORT_KEY.to_string(),
        );
        item.extend([
            s("entity", "report"),
            s("order", &order(&self.version, self.seq)),
            s("requestVersion", &self.version),
            n("seq", self.seq),
            s("state", self.state.name()),
            s("category", &self.category),
            n("issuedAt", self.issued_at_ms),
            s("reportId", &self.id),
        ]);
        if let Some(url) = &self.url {
            item.push(s("url", url));
        }
        if let Some(reason) = &self.reason {
            item.push(s("reason", reason));
        }
        item
    }

    /// The report the `REPORT` item holds, if it is for `version`.
    pub fn stored(item: Option<&Item>, version: &str) -> Option<Self> {
        let item = item?;
        if get_s(item, "requestVersion") != Some(version) {
            return None;
        }
        let state = match get_s(item, "state")? {
            "ready" => State::Ready,
            "failed" => State::Failed,
            _ => return None,
        };
        let environment_id = get_s(item, "pk")?.strip_prefix("ENVIRONMENT#")?;
        Some(Self {
            environment_id: environment_id.to_string(),
            version: version.to_string(),
            seq: get_u64(item, "seq")?,
            state,
            url: get_s(item, "url").map(str::to_string),
            category: get_s(item, "category").unwrap_or("other").to_string(),
            reason: get_s(item, "reason").map(str::to_string),
            issued_at_ms: get_u64(item, "issuedAt").unwrap_or(0),
            id: get_s(item, "reportId").unwrap_or("").to_string(),
        })
    }

    /// Store it, unless the environment holds this report or a later one
    /// (the condition fails then).
    pub fn write(&self) -> Write {
        Write::Put(PutItem {
            table: TABLE.to_string(),
            item: self.item(),
            condition: crate::capabilities::absent_or_at_most(
                "order".to_string(),
                Value::S(order(&self.version, self.seq.saturating_sub(1))),
            ),
        })
    }
}

/// The check a create puts in its last write: no report of `version` is
/// stored (else it merges the report instead).
pub fn none_for(environment_id: &str, version: &str) -> Write {
    Write::Check(KeyCondition {
        table: TABLE.to_string(),
        key: key(
            format!("ENVIRONMENT#{environment_id}"),
            SORT_KEY.to_string(),
        ),
        condition: crate::capabilities::absent_or_at_most(
            "order".to_string(),
            Value::S(order(version, 0)),
        ),
    })
}

/// The claims of a compact JWS, before its signature is checked: only to
/// find the environment whose key checks it.
pub fn unverified(jws: &str) -> Result<(String, String), Failure> {
    let mut parts = jws.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refused("it is not a compact JWS (three parts)"));
    };
    let payload = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| refused(&format!("its payload is not base64url: {e}")))?;
    #[derive(Deserialize)]
    struct Names {
        sub: String,
        ver: String,
    }
    let names: Names = serde_json::from_slice(&payload)
        .map_err(|e| refused(&format!("its claims do not name sub and ver: {e}")))?;
    Ok((names.sub, names.ver))
}

/// The verified claims of a report for `version` of `environment_id`,
/// sent at `sent_at_ms`, checked against the rules.
pub fn checked(
    claims: &str,
    environment_id: &str,
    version: &str,
    sent_at_ms: u64,
) -> Result<Report, Failure> {
    let claims: Claims = serde_json::from_str(claims)
        .map_err(|e| refused(&format!("its claims are not as documented: {e}")))?;
    if claims.sub != environment_id || claims.ver != version {
        return Err(refused("its claims changed under the signature"));
    }
    let state = match claims.state.as_str() {
        "ready" => State::Ready,
        "failed" => State::Failed,
        other => {
            return Err(refused(&format!(
                "state `{other}` is not `ready` or `failed`"
            )));
        }
    };
    if claims.seq == 0 {
        return Err(refused("seq must be 1 or more"));
    }
    let issued_at_ms = claims.iat.saturating_mul(1_000);
    let expires_at_ms = claims.exp.saturating_mul(1_000);
    if expires_at_ms.saturating_add(CLOCK_SKEW_MS) < sent_at_ms {
        return Err(refused(&format!(
            "it expired (exp {}) before it was sent",
            claims.exp
        )));
    }
    if issued_at_ms > sent_at_ms.saturating_add(CLOCK_SKEW_MS) {
        return Err(refused(&format!(
            "it was issued (iat {}) after it was sent",
            claims.iat
        )));
    }
    let category = match (&state, claims.category.as_deref()) {
        (State::Failed, Some(category)) if CATEGORIES.contains(&category) => category.to_string(),
        (State::Failed, _) => "other".to_string(),
        (State::Ready, _) => String::new(),
    };
    let reason = claims
        .reason
        .map(|reason| crate::display::neutralise(&reason))
        .map(|reason| reason.chars().take(REASON_CHARS).collect());
    Ok(Report {
        environment_id: claims.sub,
        version: claims.ver,
        seq: claims.seq,
        state,
        url: claims.url,
        category,
        reason,
        issued_at_ms,
        id: claims.jti.chars().take(128).collect(),
    })
}

/// Whether a reported URL may be shown for `environment_id`: https (or a
/// `localhost` name), with a host among `hosts` (comma-separated; `*.x`
/// for any name under x) when configured, else the host of the preview URL
/// `template` when configured, else any.
pub fn url_allowed(
    url: &str,
    hosts: Option<&str>,
    template: Option<&str>,
    environment_id: &str,
) -> bool {
    if crate::display::link_target(url).as_deref() != Some(url) {
        return false;
    }
    let host = host_of(url);
    let matches = |pattern: &str| {
        let pattern = pattern.trim().to_ascii_lowercase();
        match pattern.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => host == pattern,
        }
    };
    match (hosts, template) {
        (Some(hosts), _) => hosts.split(',').any(matches),
        (None, Some(template)) => {
            host == host_of(&template.replace("{environment}", environment_id))
        }
        (None, None) => true,
    }
}

/// A URL's host name, lower-cased.
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .split(':')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// A report refused for good (dead-lettered with this reason).
pub fn refused(why: &str) -> Failure {
    Failure::permanent(format!("status report refused: {why}"))
}

/// The host's verdict on the signature, as a failure.
pub fn not_verified(environment_id: &str, error: &crate::capabilities::CapabilityError) -> Failure {
    if error.code == ErrorCode::Invalid {
        refused(&format!(
            "it is not signed with environment {environment_id}'s key ({})",
            error.message
        ))
    } else {
        Failure::at("check the status report's signature", error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERSION: &str = "1795863600000#1111111111111111111111111111111111111111";

    fn claims(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut claims = serde_json::json!({
            "sub": "env_1", "ver": VERSION, "state": "ready", "url": "https://env-1.example.com",
            "iat": 1_795_863_600u64, "exp": 1_795_863_900u64, "jti": "r1", "seq": 1
        });
        edit(&mut claims);
        claims.to_string()
    }

    const SENT: u64 = 1_795_863_610_000;

    #[test]
    fn a_report_in_time_is_taken() {
        let report = checked(&claims(|_| {}), "env_1", VERSION, SENT).unwrap();
        assert_eq!(report.state, State::Ready);
        assert_eq!(report.url.as_deref(), Some("https://env-1.example.com"));
    }

    #[test]
    fn expired_and_future_dated_reports_are_refused() {
        let expired = claims(|c| c["exp"] = 1_795_863_500u64.into());
        assert!(checked(&expired, "env_1", VERSION, SENT).is_err());
        let future = claims(|c| c["iat"] = 1_795_863_700u64.into());
        assert!(checked(&future, "env_1", VERSION, SENT).is_err());
        // Within the skew allowance either way.
        let skewed = claims(|c| c["iat"] = 1_795_863_660u64.into());
        assert!(checked(&skewed, "env_1", VERSION, SENT).is_ok());
    }

    #[test]
    fn unknown_categories_are_other_and_reasons_are_capped() {
        let failed = claims(|c| {
            c["state"] = "failed".into();
            c["category"] = "<script>".into();
            c["reason"] = "x".repeat(2_000).into();
        });
        let report = checked(&failed, "env_1", VERSION, SENT).unwrap();
        assert_eq!(report.category, "other");
        assert_eq!(report.reason.unwrap().chars().count(), REASON_CHARS);
    }

    #[test]
    fn reports_order_by_version_then_seq() {
        assert!(order(VERSION, 2) > order(VERSION, 1));
        assert!(order(VERSION, 10) > order(VERSION, 9));
        let newer = "1795863700000#2222222222222222222222222222222222222222";
        assert!(order(newer, 0) > order(VERSION, 99));
    }
}
