//! GitHub's rules for one installation's requests ("Best practices for using
//! the REST API", "Rate limits for the REST API"): one request at a time
//! (the caller holds the installation's turn while it uses this), mutative
//! requests spaced, no request while an answer's wait runs; and the figures
//! a metrics endpoint or a benchmark reads.

use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, StatusCode};

/// GitHub, after a rate limit that says neither `Retry-After` nor a reset
/// time: "wait for at least one minute before retrying".
const UNSPECIFIED_WAIT: Duration = Duration::from_secs(60);
/// The shortest wait after a rate-limit refusal: a reset time already past
/// on this host's clock must not make the request go again at once.
const MIN_REFUSAL_WAIT: Duration = Duration::from_secs(1);

/// An installation's rate limit as its last answer gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// `x-ratelimit-limit`: requests per hour.
    pub limit: Option<u64>,
    /// `x-ratelimit-remaining`.
    pub remaining: u64,
    /// `x-ratelimit-reset`: when `remaining` goes back to `limit`.
    pub reset: Option<SystemTime>,
}

/// What envmgr sent for an installation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// Requests sent with the installation's token.
    pub sent: u64,
    /// Those GitHub counted against the installation's rate limit: all but
    /// `304 Not Modified`.
    pub counted: u64,
    /// Installation tokens minted (with the App's JWT, counted against the
    /// App rather than the installation), the runtime's included.
    pub token_mints: u64,
}

#[derive(Default)]
pub struct Figures {
    pub rate_limit: Option<RateLimit>,
    pub counts: RequestCounts,
}

/// When the installation may send next.
#[derive(Default)]
pub struct Pacing {
    /// No request before this: an answer asked to wait.
    not_before: Option<Instant>,
    /// When the answer to the last mutative request came.
    last_write: Option<Instant>,
}

impl Pacing {
    /// Wait until a request may go: out GitHub's wait, taken from `budget`,
    /// then (for a write) `spacing` after the last write. Err, having waited
    /// nothing: GitHub's wait is longer than what is left of the budget; it
    /// holds what remains of that wait.
    pub async fn ready(
        &mut self,
        write: bool,
        spacing: Duration,
        budget: &mut Duration,
    ) -> Result<(), Duration> {
        if let Some(until) = self.not_before {
            let wait = until.saturating_duration_since(Instant::now());
            if wait > *budget {
                return Err(wait);
            }
            *budget -= wait;
            tokio::time::sleep(wait).await;
            self.not_before = None;
        }
        if write && let Some(last) = self.last_write {
            tokio::time::sleep_until((last + spacing).into()).await;
        }
        Ok(())
    }

    /// The answer to a request came.
    pub fn answered(&mut self, write: bool) {
        if write {
            self.last_write = Some(Instant::now());
        }
    }

    /// Send nothing for `wait` from now (or longer, if already held longer).
    pub fn hold(&mut self, wait: Duration) {
        let until = Instant::now() + wait;
        self.not_before = Some(self.not_before.map_or(until, |held| held.max(until)));
    }
}

/// What an answer asks of the installation's next requests.
#[derive(Debug, PartialEq, Eq)]
pub struct Wait {
    pub wait: Duration,
    /// The request was refused for a rate limit: it may go again after the
    /// wait (GitHub did not act on it).
    pub refused: bool,
}

/// Whether GitHub refused a request for a rate limit: 429, or 403 with a
/// `Retry-After`, no requests left, or saying so (the secondary limits).
pub fn rate_limited(status: StatusCode, headers: &HeaderMap, message: &str) -> bool {
    match status.as_u16() {
        429 => true,
        403 => {
            header_u64(headers, "retry-after").is_some()
                || header_u64(headers, "x-ratelimit-remaining") == Some(0)
                || message.to_ascii_lowercase().contains("rate limit")
        }
        _ => false,
    }
}

/// The wait an answer asks for, if any: `Retry-After` seconds; else, with
/// no requests left, until `x-ratelimit-reset`; else, after a rate-limit
/// refusal, a minute. `now` is this host's clock, which the reset time is
/// judged on.
pub fn wait_asked(
    status: StatusCode,
    headers: &HeaderMap,
    message: &str,
    now: SystemTime,
) -> Option<Wait> {
    let refused = rate_limited(status, headers, message);
    let retry_after = header_u64(headers, "retry-after").map(Duration::from_secs);
    let until_reset = if header_u64(headers, "x-ratelimit-remaining") == Some(0) {
        header_u64(headers, "x-ratelimit-reset").map(|reset| {
            (SystemTime::UNIX_EPOCH + Duration::from_secs(reset))
                .duration_since(now)
                .unwrap_or_default()
        })
    } else {
        None
    };
    let wait = match retry_after.or(until_reset) {
        Some(wait) => wait,
        None if refused => UNSPECIFIED_WAIT,
        None => return None,
    };
    Some(Wait {
        wait: if refused {
            wait.max(MIN_REFUSAL_WAIT)
        } else {
            wait
        },
        refused,
    })
}

/// The rate-limit figures of an answer, if it has them.
pub fn rate_limit_of(headers: &HeaderMap) -> Option<RateLimit> {
    Some(RateLimit {
        remaining: header_u64(headers, "x-ratelimit-remaining")?,
        limit: header_u64(headers, "x-ratelimit-limit"),
        reset: header_u64(headers, "x-ratelimit-reset")
            .map(|reset| SystemTime::UNIX_EPOCH + Duration::from_secs(reset)),
    })
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    http::HeaderName::from_static(name),
                    value.parse().expect("a header value"),
                )
            })
            .collect()
    }

    const NOW: u64 = 1_800_000_000;

    fn wait(status: u16, pairs: &[(&'static str, &str)], message: &str) -> Option<Wait> {
        wait_asked(
            StatusCode::from_u16(status).unwrap(),
            &headers(pairs),
            message,
            SystemTime::UNIX_EPOCH + Duration::from_secs(NOW),
        )
    }

    #[test]
    fn retry_after_comes_first() {
        assert_eq!(
            wait(429, &[("retry-after", "3")], ""),
            Some(Wait {
                wait: Duration::from_secs(3),
                refused: true
            })
        );
        // The secondary rate limit: 403 with Retry-After (and none left).
        let reset = (NOW + 50).to_string();
        assert_eq!(
            wait(
                403,
                &[
                    ("retry-after", "2"),
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", &reset)
                ],
                ""
            ),
            Some(Wait {
                wait: Duration::from_secs(2),
                refused: true
            })
        );
    }

    #[test]
    fn the_primary_limit_waits_for_the_reset() {
        let reset = (NOW + 40).to_string();
        let primary = [
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", reset.as_str()),
        ];
        assert_eq!(
            wait(403, &primary, "API rate limit exceeded for installation."),
            Some(Wait {
                wait: Duration::from_secs(40),
                refused: true
            })
        );
        // The last request allowed went through: the next ones wait.
        assert_eq!(
            wait(200, &primary, ""),
            Some(Wait {
                wait: Duration::from_secs(40),
                refused: false
            })
        );
        // A reset already past on this clock still waits a little.
        let past = (NOW - 5).to_string();
        assert_eq!(
            wait(
                429,
                &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", &past)],
                ""
            ),
            Some(Wait {
                wait: MIN_REFUSAL_WAIT,
                refused: true
            })
        );
    }

    #[test]
    fn a_rate_limit_without_a_time_waits_a_minute() {
        assert_eq!(
            wait(
                403,
                &[],
                "You have exceeded a secondary rate limit. Please wait a few minutes."
            ),
            Some(Wait {
                wait: UNSPECIFIED_WAIT,
                refused: true
            })
        );
    }

    #[test]
    fn other_answers_ask_nothing_unless_they_say_so() {
        let left = [
            ("x-ratelimit-remaining", "4999"),
            ("x-ratelimit-reset", "1"),
        ];
        assert_eq!(wait(200, &left, ""), None);
        assert_eq!(
            wait(403, &left, "Resource not accessible by integration"),
            None
        );
        assert_eq!(wait(500, &[], ""), None);
        assert_eq!(
            wait(503, &[("retry-after", "5")], ""),
            Some(Wait {
                wait: Duration::from_secs(5),
                refused: false
            })
        );
    }

    #[test]
    fn rate_limit_figures_are_read_from_the_headers() {
        let figures = rate_limit_of(&headers(&[
            ("x-ratelimit-limit", "5000"),
            ("x-ratelimit-remaining", "4990"),
            ("x-ratelimit-reset", "1800003600"),
        ]))
        .expect("figures");
        assert_eq!(figures.limit, Some(5_000));
        assert_eq!(figures.remaining, 4_990);
        assert_eq!(
            figures.reset,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_003_600))
        );
        assert_eq!(rate_limit_of(&HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn a_wait_longer_than_the_budget_is_not_waited() {
        let mut pacing = Pacing::default();
        pacing.hold(Duration::from_secs(30));
        let mut budget = Duration::from_secs(2);
        let started = Instant::now();
        let left = pacing
            .ready(false, Duration::ZERO, &mut budget)
            .await
            .unwrap_err();
        assert!(left > Duration::from_secs(29));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(budget, Duration::from_secs(2));
    }

    #[tokio::test]
    async fn writes_are_spaced_reads_are_not() {
        let mut pacing = Pacing::default();
        let spacing = Duration::from_millis(200);
        let mut budget = Duration::ZERO;
        pacing.answered(true);
        let started = Instant::now();
        pacing.ready(false, spacing, &mut budget).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(150));
        pacing.ready(true, spacing, &mut budget).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(190));
    }
}
