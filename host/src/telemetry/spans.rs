//! The only spans exported, and the only attributes they carry
//! ([`ALLOWED`]). Each constructor returns `Span::none()` while tracing is
//! off, so an untraced host makes no span at all.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing::Span;
use tracing::field::Empty;

/// The target of every exported span; the layer's filter lets only it in.
pub const TARGET: &str = "envmgr::telemetry";

/// Every attribute an exported span may carry: names, codes, counts and
/// ids. Nothing here can hold a message body, a secret, an error's text, a
/// repository, a login or a title (a unit test holds every span to it).
pub const ALLOWED: &[&str] = &[
    // How tracing-opentelemetry names the span, its kind and status.
    "otel.name",
    "otel.kind",
    "otel.status_code",
    // Messaging (semantic conventions): the queue and the message's id.
    "messaging.system",
    "messaging.operation.type",
    "messaging.operation.name",
    "messaging.destination.name",
    "messaging.message.id",
    // envmgr's own: the delivery, the logic that ran and how it ended.
    "envmgr.receive_count",
    "envmgr.logic.version",
    "envmgr.contract",
    "envmgr.disposition",
    // A capability call the logic made: its name, its result's code.
    "envmgr.call",
    "envmgr.outcome",
    // HTTP client (semantic conventions): no path, no query.
    "http.request.method",
    "server.address",
    "url.template",
    "http.response.status_code",
    "error.type",
    // AWS SDK calls (semantic conventions for RPC).
    "rpc.system",
    "rpc.service",
    "rpc.method",
];

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether the exporting layer is installed.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

pub(crate) fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// A message being processed: the root of its trace, or the child of the
/// producer's context (set by the caller).
pub fn message(
    queue: &str,
    message_id: &str,
    receive_count: u32,
    logic: &str,
    contract: &str,
) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(
        target: TARGET,
        "message",
        otel.name = format!("{queue} process"),
        otel.kind = "consumer",
        otel.status_code = Empty,
        messaging.system = "aws_sqs",
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = queue,
        messaging.message.id = message_id,
        envmgr.receive_count = receive_count,
        envmgr.logic.version = logic,
        envmgr.contract = contract,
        envmgr.disposition = Empty,
    )
}

/// A capability call the logic made, named as the WIT names it
/// (`github.create-comment`); `envmgr.outcome` is `ok` or the error's code.
pub fn call(name: &'static str) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(
        target: TARGET,
        "call",
        otel.name = name,
        envmgr.call = name,
        envmgr.outcome = Empty,
        otel.status_code = Empty,
    )
}

/// An HTTP request to a dependency: method, host and the route's template
/// (never the path: it holds repository names).
pub fn http(method: &str, server: &str, template: &str) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(
        target: TARGET,
        "http",
        otel.name = format!("{method} {template}"),
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = method,
        server.address = server,
        url.template = template,
        http.response.status_code = Empty,
        error.type = Empty,
    )
}

/// An AWS SDK operation (DynamoDB, KMS, SQS).
pub fn aws(service: &'static str, operation: &'static str) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(
        target: TARGET,
        "aws",
        otel.name = format!("{service}.{operation}"),
        otel.kind = "client",
        otel.status_code = Empty,
        rpc.system = "aws-api",
        rpc.service = service,
        rpc.method = operation,
        error.type = Empty,
    )
}

/// Record how an HTTP request ended on its span.
pub fn http_status(span: &Span, status: Option<u16>) {
    match status {
        Some(code) => {
            span.record("http.response.status_code", code);
            if code >= 400 {
                span.record("error.type", code.to_string());
                span.record("otel.status_code", "error");
            }
        }
        None => {
            span.record("error.type", "no answer");
            span.record("otel.status_code", "error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exported_span_carries_only_allowed_attributes() {
        // The callsites' field names, whatever their values: the layer's
        // filter lets only these spans through, so these are every
        // attribute a collector can receive.
        enable();
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            let spans = [
                message("q", "m", 1, "l", "c"),
                call("github.create-comment"),
                http("POST", "h", "/t"),
                aws("DynamoDB", "GetItem"),
            ];
            for span in spans {
                let metadata = span.metadata().expect("a subscriber is set");
                assert_eq!(metadata.target(), TARGET);
                for field in metadata.fields() {
                    let name = field.name();
                    assert!(
                        ALLOWED.contains(&name),
                        "{} carries {name}",
                        metadata.name()
                    );
                }
            }
        });
    }
}
