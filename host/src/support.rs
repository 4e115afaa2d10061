//! Small helpers every room uses: time, randomness, error and duration
//! text. Here rather than in one backend, so no room depends on another
//! for them.

use std::time::Duration;

use sha2::{Digest as _, Sha256};

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `ms` since the epoch as an RFC 3339 UTC time, to the second
/// (`2026-11-28T11:45:00Z`) or to the millisecond (`…T11:45:00.5Z`); the
/// number itself if `time` cannot represent it. The host's one date
/// formatter.
pub fn utc(ms: u64, to_the_ms: bool) -> String {
    let nanos = match to_the_ms {
        true => i128::from(ms) * 1_000_000,
        false => i128::from(ms / 1_000) * 1_000_000_000,
    };
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// `2026-11-28T11:45:00Z (3 min ago)`: the exact time and how long ago,
/// against `now_ms`.
pub fn when(at_ms: u64, now_ms: u64) -> String {
    format!("{} ({})", utc(at_ms, false), ago(at_ms, now_ms))
}

/// `just now`, `42 s ago`, `3 min ago`, `5 h ago`, `2 days ago`; `in 3 min`
/// for a time still to come.
pub fn ago(at_ms: u64, now_ms: u64) -> String {
    let (seconds, future) = match now_ms.checked_sub(at_ms) {
        Some(past) => (past / 1_000, false),
        None => ((at_ms - now_ms) / 1_000, true),
    };
    let span = match seconds {
        0 => return "just now".to_string(),
        1..60 => format!("{seconds} s"),
        60..3_600 => format!("{} min", seconds / 60),
        3_600..86_400 => format!("{} h", seconds / 3_600),
        _ => plural(seconds / 86_400, "day"),
    };
    match future {
        true => format!("in {span}"),
        false => format!("{span} ago"),
    }
}

/// `1 call`, `2 calls`, `0 calls`.
pub fn plural(count: impl Into<u64>, noun: &str) -> String {
    let count = count.into();
    match count {
        1 => format!("1 {noun}"),
        _ => format!("{count} {noun}s"),
    }
}

/// `bytes` random bytes as lowercase hex (receipts, ids, local tokens).
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the OS random source is available");
    hex::encode(buffer)
}

/// An error and its sources on one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A duration as log fields and messages show it: seconds, to the
/// millisecond (`5s`, `1.5s`, `0.25s`). Not `Debug`, whose unit changes
/// with the size (`500ms`, `5s`).
pub fn seconds(duration: Duration) -> String {
    let millis = duration.as_millis();
    let whole = millis / 1000;
    let fraction = millis % 1000;
    if fraction == 0 {
        format!("{whole}s")
    } else {
        let fraction = format!("{fraction:03}");
        format!("{whole}.{}s", fraction.trim_end_matches('0'))
    }
}

/// The SHA-256 of `bytes` in lower-case hex: a logic version's id, a
/// ciphertext's fingerprint.
pub fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Run `pass` every `every` until `stop` changes, the first time after a
/// random part of `every`: hosts started together do not all act at once.
pub async fn periodically<F, Fut>(
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let jitter = u64::from_str_radix(&random_hex(4), 16).unwrap_or(0);
    let mut wait = every.mul_f64(0.1 + 0.9 * (jitter as f64 / u32::MAX as f64));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        wait = every;
        pass().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_a_person_says_them() {
        let now = 1_800_000_000_000;
        assert_eq!(ago(now, now), "just now");
        assert_eq!(ago(now - 42_000, now), "42 s ago");
        assert_eq!(ago(now - 3 * 60_000 - 5_000, now), "3 min ago");
        assert_eq!(ago(now - 5 * 3_600_000, now), "5 h ago");
        assert_eq!(ago(now - 86_400_000, now), "1 day ago");
        assert_eq!(ago(now - 2 * 86_400_000, now), "2 days ago");
        assert_eq!(ago(now + 180_000, now), "in 3 min");
        assert_eq!(when(now - 180_000, now), "2027-01-15T07:57:00Z (3 min ago)");
    }

    #[test]
    fn plurals_follow_the_count() {
        assert_eq!(plural(1u64, "call"), "1 call");
        assert_eq!(plural(0u64, "call"), "0 calls");
        assert_eq!(plural(2u64, "call"), "2 calls");
    }

    #[test]
    fn seconds_read_the_same_whatever_the_size() {
        assert_eq!(seconds(Duration::from_secs(5)), "5s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5s");
        assert_eq!(seconds(Duration::from_millis(250)), "0.25s");
        assert_eq!(seconds(Duration::from_millis(7)), "0.007s");
        assert_eq!(seconds(Duration::ZERO), "0s");
    }
}
