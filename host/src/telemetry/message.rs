//! A message's exported span, placed in its trace: the producer's context
//! (`traceparent`, or SQS's `AWSTraceHeader`) is its parent, except for a
//! runtime status report, which is its own operation minutes later, so the
//! create's context it carries back becomes a link and the report starts a
//! trace of its own (the messaging conventions' "creation context" link).

use opentelemetry::trace::TraceContextExt as _;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::{context, spans};

/// What of a received message places its span.
pub struct Received<'a> {
    pub queue: &'a str,
    pub id: &'a str,
    pub receive_count: u32,
    pub body: &'a str,
    /// Its String message attributes (`traceparent` among them).
    pub attributes: Vec<(&'a str, &'a str)>,
    /// SQS's `AWSTraceHeader` system attribute.
    pub trace_header: Option<&'a str>,
}

/// The exported span of `received` and its (trace id, span id), for the
/// log span to carry; `(Span::none(), None)` while tracing is off.
pub fn start(
    received: &Received<'_>,
    logic: &str,
    contract: &str,
) -> (Span, Option<(String, String)>) {
    if !spans::enabled() {
        return (Span::none(), None);
    }
    let span = spans::message(
        received.queue,
        received.id,
        received.receive_count,
        logic,
        contract,
    );
    let system = received
        .trace_header
        .map(|header| (context::AWS_TRACE_HEADER, header));
    let producer = context::of_message(received.attributes.iter().copied().chain(system));
    if let Some(producer) = producer {
        if is_status_report(received.body) {
            span.add_link(producer);
        } else {
            let _ =
                span.set_parent(opentelemetry::Context::new().with_remote_span_context(producer));
        }
    }
    let ids = {
        let context = span.context();
        let this = context.span();
        let this = this.span_context();
        this.is_valid()
            .then(|| (this.trace_id().to_string(), this.span_id().to_string()))
    };
    (span, ids)
}

/// How the message ended, on its span.
pub fn finished(span: &Span, disposition: &str, failed: bool) {
    span.record("envmgr.disposition", disposition);
    if failed {
        span.record("otel.status_code", "error");
    }
}

/// Whether `body` is a runtime status report (`docs/messages.md`): read
/// for its `kind` only.
fn is_status_report(body: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(borrow)]
        kind: Option<&'a str>,
    }
    serde_json::from_str::<Kind<'_>>(body).is_ok_and(|k| k.kind == Some("runtime-status"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_status_report_is_told_by_its_kind() {
        assert!(super::is_status_report(
            r#"{"version":1,"kind":"runtime-status","report":"x"}"#
        ));
        assert!(!super::is_status_report(
            r#"{"version":1,"kind":"create-environment"}"#
        ));
        assert!(!super::is_status_report("not json"));
    }
}
