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
