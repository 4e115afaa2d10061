//! W3C trace context across queues and HTTP calls: the producer's
//! `traceparent` message attribute (or SQS's `AWSTraceHeader` system
//! attribute, in X-Ray's format) is the parent of a message's span, and the
//! current span's context goes out as a `traceparent` header — a header
//! only, never in a body (the Runtime Service's idempotency fingerprint
//! covers the body, and its schema refuses unknown fields).
//!
//! A malformed value is ignored (the span starts a trace of its own), as
//! the W3C recommendation says: a producer's bad header must not fail the
//! message.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

/// The message attribute W3C trace context travels in.
pub const TRACEPARENT: &str = "traceparent";
/// SQS's system attribute for X-Ray's trace header.
pub const AWS_TRACE_HEADER: &str = "AWSTraceHeader";

/// The remote parent named by a `traceparent` value
/// (`00-{32 hex}-{16 hex}-{2 hex}`), if it is one.
pub fn from_traceparent(value: &str) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    // Version 00 has exactly four fields; a later version may add more.
    if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    remote(trace, span, flags)
}

/// The remote parent named by an X-Ray trace header
/// (`Root=1-{8 hex}-{24 hex};Parent={16 hex};Sampled={0|1}`), if it names
/// one.
pub fn from_aws_trace_header(value: &str) -> Option<SpanContext> {
    let (mut root, mut parent, mut sampled) = (None, None, "0");
    for field in value.split(';') {
        match field.trim().split_once('=')? {
            ("Root", v) => root = Some(v),
            ("Parent", v) => parent = Some(v),
            ("Sampled", v) => sampled = v,
            _ => {}
        }
    }
    let mut root = root?.split('-');
    let (_, time, unique) = (
        root.next().filter(|v| *v == "1")?,
        root.next()?,
        root.next()?,
    );
    if time.len() != 8 {
        return None;
    }
    let flags = if sampled == "1" { "01" } else { "00" };
    remote(&format!("{time}{unique}"), parent?, flags)
}

fn remote(trace: &str, span: &str, flags: &str) -> Option<SpanContext> {
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
        return None;
    }
    let context = SpanContext::new(
        TraceId::from_hex(trace).ok()?,
        SpanId::from_hex(span).ok()?,
        TraceFlags::new(u8::from_str_radix(flags, 16).ok()? & 1),
        true,
        TraceState::default(),
    );
    context.is_valid().then_some(context)
}

/// The producer's context among a message's attributes: `traceparent`
/// first, then `AWSTraceHeader`.
pub fn of_message<'a>(attributes: impl Iterator<Item = (&'a str, &'a str)>) -> Option<SpanContext> {
    let mut aws = None;
    for (name, value) in attributes {
        if name == TRACEPARENT {
            if let Some(context) = from_traceparent(value) {
                return Some(context);
            }
        } else if name == AWS_TRACE_HEADER {
            aws = from_aws_trace_header(value);
        }
    }
    aws
}

/// The `traceparent` of the current span, when tracing is on and a span
/// is recording.
pub fn current_traceparent() -> Option<String> {
    if !super::spans::enabled() {
        return None;
    }
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let context = tracing::Span::current().context();
    let span = context.span();
    let span = span.span_context();
    span.is_valid().then(|| traceparent(span))
}

/// A span context as a `traceparent` value.
pub fn traceparent(span: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        span.trace_id(),
        span.span_id(),
        span.trace_flags().to_u8()
    )
}

/// The same context as an X-Ray trace header, for `AWSTraceHeader` on the
/// copies envmgr sends (SQS does not copy system attributes).
pub fn aws_trace_header(span: &SpanContext) -> String {
    let trace = span.trace_id().to_string();
    format!(
        "Root=1-{}-{};Parent={};Sampled={}",
        &trace[..8],
        &trace[8..],
        span.span_id(),
        u8::from(span.is_sampled())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_w3c_traceparent_names_its_parent() {
        let context = from_traceparent(PARENT).unwrap();
        assert_eq!(
            context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(context.span_id().to_string(), "00f067aa0ba902b7");
        assert!(context.is_sampled() && context.is_remote());
        assert_eq!(traceparent(&context), PARENT);
    }

    #[test]
    fn malformed_values_name_no_parent() {
        for bad in [
            "",
            "00-1",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4BF92F3577B34DA6A3CE929D0E0E473X-00f067aa0ba902b7-01",
        ] {
            assert!(from_traceparent(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn an_xray_header_names_the_same_parent_both_ways() {
        // AWS's documented example header.
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let context = from_aws_trace_header(header).unwrap();
        assert_eq!(
            context.trace_id().to_string(),
            "5759e988bd862e3fe1be46a994272793"
        );
        assert_eq!(context.span_id().to_string(), "53995c3f42cd8ad8");
        assert!(context.is_sampled());
        assert_eq!(aws_trace_header(&context), header);
        assert!(from_aws_trace_header("Root=1-5759e988-bd862e3fe1be46a994272793").is_none());
    }

    #[test]
    fn traceparent_wins_over_the_aws_header() {
        let aws = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let found =
            of_message([(AWS_TRACE_HEADER, aws), (TRACEPARENT, PARENT)].into_iter()).unwrap();
        assert_eq!(found.span_id().to_string(), "00f067aa0ba902b7");
        let found =
            of_message([(TRACEPARENT, "junk"), (AWS_TRACE_HEADER, aws)].into_iter()).unwrap();
        assert_eq!(found.span_id().to_string(), "53995c3f42cd8ad8");
    }
}
