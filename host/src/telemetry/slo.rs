//! The figures behind the push-to-ready objective (`docs/slo.md`):
//!
//! - `envmgr_push_to_ready_seconds`: from a request's time (the push's
//!   `updated_at`, the API request's `requestedAt`: the `{requestedAt}`
//!   of its request version) to the status report that turned its
//!   environment ready, observed when the logic applied that report;
//! - `envmgr_message_latency_seconds{queue}`: from a message's first send
//!   (kept across deferrals) to its finish.
//!
//! Each observation carries the message's trace id as its exemplar when
//! traces are exported, so a slow bucket leads to a trace. Bounds: the
//! only label is the logical queue (from the config); an exemplar is kept
//! per bucket (the latest).
//!
//! A report is known applied by the logic's outcome, `environment … is
//! ready (status report N)` (docs/messages.md, "Runtime status report"):
//! the host reads the report's `ver` claim only after the logic verified
//! its signature and applied it.

use std::sync::LazyLock;

use base64::Engine as _;
use opentelemetry::trace::TraceContextExt as _;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// A label set, as `crate::metrics` writes them (it registers these).
type Labels = Vec<(&'static str, String)>;
type Histogram = HistogramWithExemplars<Labels>;

/// Seconds: a preview is expected in minutes.
const READY_BUCKETS: [f64; 12] = [
    5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0,
];
/// Seconds: a message is expected in well under one.
const LATENCY_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

static PUSH_TO_READY: LazyLock<Histogram> =
    LazyLock::new(|| Histogram::new(READY_BUCKETS.into_iter()));
static MESSAGE_LATENCY: LazyLock<Family<Labels, Histogram>> =
    LazyLock::new(|| Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS.into_iter())));

pub(crate) fn register(registry: &mut Registry) {
    registry.register(
        "envmgr_push_to_ready_seconds",
        "From a request's time (the push, the API request) to the status report that turned its environment ready",
        PUSH_TO_READY.clone(),
    );
    registry.register(
        "envmgr_message_latency_seconds",
        "From a message's first send to its finish (done or skipped), by queue",
        MESSAGE_LATENCY.clone(),
    );
}

/// A message first sent at `sent_at_ms` (0: unknown) finished at
/// `now_ms`; `done` is the logic's outcome text when it was done (not
/// skipped).
pub fn finished(queue: &str, body: &str, sent_at_ms: u64, done: Option<&str>, now_ms: u64) {
    let exemplar = trace_exemplar();
    if sent_at_ms > 0 && now_ms >= sent_at_ms {
        let seconds = (now_ms - sent_at_ms) as f64 / 1000.0;
        MESSAGE_LATENCY
            .get_or_create(&vec![("queue", queue.to_string())])
            .observe(seconds, exemplar.clone(), None);
    }
    let Some(text) = done else { return };
    if !text.contains(" is ready (status report ") {
        return;
    }
    if let Some(requested_at_ms) = reported_request_time(body)
        && now_ms >= requested_at_ms
    {
        PUSH_TO_READY.observe((now_ms - requested_at_ms) as f64 / 1000.0, exemplar, None);
    }
}

/// The current trace's id, as an exemplar's label set.
fn trace_exemplar() -> Option<Labels> {
    if !super::spans::enabled() {
        return None;
    }
    let context = opentelemetry::Context::current();
    let span = context.span();
    let span = span.span_context();
    span.is_valid()
        .then(|| vec![("trace_id", span.trace_id().to_string())])
}

/// The request time (ms) in a status report's `ver` claim: the
/// `{requestedAt:013}` before its first `#` (docs/data-model.md).
fn reported_request_time(body: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        report: String,
    }
    #[derive(serde::Deserialize)]
    struct Claims {
        ver: String,
    }
    let envelope: Envelope = serde_json::from_str(body).ok()?;
    let payload = envelope.report.split('.').nth(1)?;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Claims = serde_json::from_slice(&claims).ok()?;
    claims.ver.split('#').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(ver: &str) -> String {
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::json!({"sub": "env_1", "ver": ver, "state": "ready"}).to_string());
        serde_json::json!({"version": 1, "kind": "runtime-status", "report": format!("h.{claims}.s")})
            .to_string()
    }

    #[test]
    fn the_request_time_is_read_from_the_reports_version() {
        let version = "1795863600000#3f786850e387550fdab836ed7e6dc881de23001b";
        assert_eq!(
            reported_request_time(&report(version)),
            Some(1_795_863_600_000)
        );
        assert_eq!(reported_request_time("{}"), None);
        assert_eq!(reported_request_time(&report("not-a-time#x")), None);
    }
}
