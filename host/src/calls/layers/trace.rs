//! Traces: each capability call the logic makes is a span in its message's
//! trace (`crate::telemetry`), named as the WIT names it, with how it ended
//! (`ok`, `condition-failed`, or the error's code; never the error's text).
//! A replayed call — `logic replay` and shadow runs — makes none: it did
//! not happen. With tracing off the span is `Span::none()`: nothing made.

use std::future::Future;

use tracing::Instrument as _;

use crate::calls::Call;
use crate::capabilities::{Describe, code_name};

pub async fn around<T, E: Describe>(
    replayed: bool,
    call: Call,
    next: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    if replayed || !crate::telemetry::spans::enabled() {
        return next.await;
    }
    let span = crate::telemetry::spans::call(call.name());
    let result = next.instrument(span.clone()).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(failed) => failed.failure_code().map_or("condition-failed", code_name),
    };
    span.record("envmgr.outcome", outcome);
    if matches!(&result, Err(failed) if failed.failure_code().is_some()) {
        span.record("otel.status_code", "error");
    }
    result
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use crate::calls::layers::testing::{Answered, run};

    /// Counts the spans made.
    struct Counting(Arc<AtomicUsize>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Counting {
        fn on_new_span(
            &self,
            _: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_replayed_call_makes_no_span_and_a_live_one_makes_one() {
        crate::telemetry::spans::enable();
        let made = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry().with(Counting(made.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let answered: Answered = run(around(true, Call::KmsDecrypt, async { Ok("x".into()) }));
            assert!(answered.is_ok());
            assert_eq!(
                made.load(Ordering::SeqCst),
                0,
                "replay and shadow runs export nothing"
            );
            let _: Answered = run(around(false, Call::KmsDecrypt, async { Ok("x".into()) }));
            assert_eq!(made.load(Ordering::SeqCst), 1);
        });
    }
}
