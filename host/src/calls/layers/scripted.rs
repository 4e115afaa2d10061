//! Scripted calls (the mock host): what a test arranged to happen right
//! before a call (another delivery, a table changed), how long it takes,
//! whether it fails; and when it ran (its span) and that it is under way
//! (the mock host waits for the calls a message started). Without faults
//! or a transcript, a call goes straight through.

use std::future::Future;

use tokio::time::Instant;

use crate::calls::{Call, Observer};
use crate::capabilities::Error;

pub async fn around<T, E: From<Error>>(
    observer: &Observer,
    call: Call,
    next: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let scripted = observer.before(call);
    if let Some(action) = scripted.interleaved {
        action().await;
    }
    // Counted from here: an interleaved delivery waits for the calls in
    // flight, never for the one it runs in front of.
    let _in_flight = observer.started();
    let started = Instant::now();
    if let Some(latency) = scripted.latency {
        tokio::time::sleep(latency).await;
    }
    let result = match scripted.fault {
        Some(fault) => Err(E::from(fault)),
        None => next.await,
    };
    observer.span(call, started);
    result
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::calls::layers::testing::{Answered, run};
    use crate::calls::{Faults, Hit, Transcript};
    use crate::capabilities::ErrorCode;

    fn observer() -> (Observer, Faults, Transcript) {
        let faults = Faults::default();
        let transcript = Transcript::default();
        let observer = Observer {
            faults: Some(faults.clone()),
            transcript: Some(transcript.clone()),
            ..Observer::default()
        };
        (observer, faults, transcript)
    }

    #[test]
    fn the_nth_call_fails_as_scripted_and_the_others_run() {
        let (observer, faults, _) = observer();
        faults.inject(
            Call::RuntimeCreate,
            Hit::Nth(2),
            ErrorCode::Unavailable,
            "down",
        );
        let call = || {
            around(&observer, Call::RuntimeCreate, async {
                Ok("made".to_string())
            })
        };
        let first: Answered = run(call());
        let second: Answered = run(call());
        let third: Answered = run(call());
        assert_eq!(first.unwrap(), "made");
        assert_eq!(second.unwrap_err().message, "down");
        assert_eq!(third.unwrap(), "made");
    }

    #[test]
    fn an_interleaving_runs_before_the_call_and_latency_is_inside_its_span() {
        let (observer, faults, transcript) = observer();
        let ran = Arc::new(AtomicBool::new(false));
        let seen = ran.clone();
        faults.interleave(
            Call::DynamodbGet,
            Hit::Every,
            Arc::new(move || {
                let seen = seen.clone();
                Box::pin(async move { seen.store(true, Ordering::SeqCst) })
            }),
        );
        faults.delay(Call::DynamodbGet, Duration::from_millis(250));
        let mark = transcript.mark();
        let answered: Answered = run(around(&observer, Call::DynamodbGet, async {
            assert!(ran.load(Ordering::SeqCst), "the interleaving ran first");
            Ok(String::new())
        }));
        assert!(answered.is_ok());
        let (_, spans) = transcript.take_from(mark);
        assert_eq!(spans.len(), 1);
        assert_eq!(
            spans[0].ended - spans[0].started,
            Duration::from_millis(250)
        );
    }
}
