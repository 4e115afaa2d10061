//! GitHub failing to answer is GitHub's passing fault, not the message's
//! and not the host's: a request that got no answer, or a 500, 502, 503
//! or 504 (GitHub's JSON error or its edge's HTML page), is tried again
//! within the call, after a jittered, growing wait, while the message's
//! deadline leaves room — rather than once per receive, where a blip of a
//! few seconds could use up a queue's tries and dead-letter the message.
//!
//! Which requests: those that can be sent twice without doing twice what
//! they do (GET, PATCH, PUT, DELETE; a token mint, which only makes another
//! token), here; and the creates whose outcome can be checked (a comment,
//! a deployment, a deployment status), in [`checked`]: before a create is
//! sent again, what the failed one may have made is looked for, and found
//! it is the answer. Nothing here pauses the host: an outage of GitHub is
//! reported as `unavailable`, and the message is tried again later.

use std::future::Future;
use std::time::Duration;

use http::{Method, StatusCode};

use super::client::answer::Answer;
use crate::capabilities::{CapResult, ErrorCode};

/// Tries of one request at most (the first and three more).
pub const TRIES: u32 = 4;
/// The first wait; each next one doubles, each drawn from half to all of it.
const FIRST_WAIT: Duration = Duration::from_millis(200);
/// What a try leaves of the message's deadline for the rest of its work.
const KEEP_FOR_THE_MESSAGE: Duration = Duration::from_secs(2);

/// Whether GitHub failed to answer (rather than answered no).
pub fn transient(result: &CapResult<Answer>) -> bool {
    match result {
        Err(failed) => failed.code == ErrorCode::Unavailable,
        Ok(answer) => matches!(
            answer.status,
            StatusCode::INTERNAL_SERVER_ERROR
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT
        ),
    }
}

/// Whether a request may be sent again as it is.
pub fn repeatable(method: &Method, mints_a_token: bool) -> bool {
    mints_a_token
        || matches!(
            *method,
            Method::GET | Method::PATCH | Method::PUT | Method::DELETE
        )
}

/// How long to wait before try `tries + 1`, or None when there is no try
/// left or the message's deadline leaves no room for it.
pub fn wait_before_next(tries: u32) -> Option<Duration> {
    if tries >= TRIES {
        return None;
    }
    let full = FIRST_WAIT * (1 << (tries - 1).min(8));
    let wait = full / 2 + full.mul_f64(0.5 * jitter());
    match crate::capabilities::time_left() {
        Some(left) if left < wait + KEEP_FOR_THE_MESSAGE => None,
        _ => Some(wait),
    }
}

/// A share from 0 to 1, so hosts that failed together do not retry in step.
fn jitter() -> f64 {
    let mut byte = [0u8; 2];
    let _ = getrandom::fill(&mut byte);
    f64::from(u16::from_le_bytes(byte)) / f64::from(u16::MAX)
}

/// A create whose outcome can be checked: `create` sent, and after a
/// transient failure `made` asked whether the try made it anyway (then that
/// is the answer) before `create` is sent again, while tries and the
/// deadline last.
pub async fn checked<T, C, CF, M, MF>(create: C, made: M) -> CapResult<T>
where
    C: Fn() -> CF,
    CF: Future<Output = CapResult<T>>,
    M: Fn() -> MF,
    MF: Future<Output = CapResult<Option<T>>>,
{
    let mut tries = 1;
    loop {
        let result = create().await;
        let failed_to_answer =
            matches!(&result, Err(failed) if failed.code == ErrorCode::Unavailable);
        if !failed_to_answer {
            return result;
        }
        let Some(wait) = wait_before_next(tries) else {
            return result;
        };
        tokio::time::sleep(wait).await;
        tries += 1;
        if let Ok(Some(found)) = made().await {
            return Ok(found);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::capabilities::error;

    #[test]
    fn waits_grow_with_jitter_and_stop_at_the_last_try() {
        for tries in 1..TRIES {
            let full = FIRST_WAIT * (1 << (tries - 1));
            let wait = wait_before_next(tries).expect("a try left");
            assert!(wait >= full / 2 && wait <= full, "{tries}: {wait:?}");
        }
        assert_eq!(wait_before_next(TRIES), None);
    }

    #[test]
    fn only_requests_that_can_be_repeated_are() {
        assert!(repeatable(&Method::GET, false));
        assert!(repeatable(&Method::PATCH, false));
        assert!(repeatable(&Method::DELETE, false));
        assert!(!repeatable(&Method::POST, false));
        assert!(repeatable(&Method::POST, true), "a token mint");
    }

    #[tokio::test]
    async fn a_create_that_failed_but_made_its_thing_is_not_made_twice() {
        let sent = Mutex::new(0);
        let result = checked(
            || async {
                *sent.lock().unwrap() += 1;
                Err::<u64, _>(error(ErrorCode::Unavailable, "github create comment: 502"))
            },
            || async { Ok(Some(42)) },
        )
        .await;
        assert_eq!(result.unwrap(), 42);
        assert_eq!(*sent.lock().unwrap(), 1, "found, not sent again");
        let refused = checked(
            || async { Err::<u64, _>(error(ErrorCode::Invalid, "422")) },
            || async { Ok(Some(1)) },
        )
        .await;
        assert!(refused.is_err(), "a refusal is an answer, not tried again");
    }
}
