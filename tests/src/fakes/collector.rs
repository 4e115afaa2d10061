//! A fake OpenTelemetry collector: the OTLP/HTTP trace receiver
//! (`POST /v1/traces`) as the OTLP specification defines it — a body of
//! `ExportTraceServiceRequest`, binary protobuf (`application/x-protobuf`)
//! or its JSON mapping (`application/json`), answered 200 with an empty
//! `ExportTraceServiceResponse` in the request's encoding; any other
//! content type is refused 415. It keeps every request's raw bytes (where
//! the tests search for secret canaries) and the spans decoded.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;

/// One exported span, as the tests read it.
#[derive(Clone, Debug)]
pub struct Span {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    pub kind: i32,
    pub attributes: Vec<(String, String)>,
    /// (trace id, span id) of each link.
    pub links: Vec<(String, String)>,
    /// 0 unset, 1 ok, 2 error.
    pub status: i32,
}

impl Span {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Inner {
    raw: Vec<Vec<u8>>,
    spans: Vec<Span>,
}

#[derive(Clone, Default)]
pub struct FakeCollector {
    inner: Arc<Mutex<Inner>>,
}

impl FakeCollector {
    /// Listening on 127.0.0.1; the base URL (`/v1/traces` is appended by
    /// the exporter, as for `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub fn start() -> (Self, String) {
        let fake = Self::default();
        let router = Router::new()
            .route("/v1/traces", post(traces))
            .with_state(fake.clone());
        let address = super::serve(router);
        (fake, format!("http://{address}"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.lock().spans.clone()
    }

    /// Every byte every export sent.
    pub fn raw(&self) -> Vec<u8> {
        self.lock().raw.concat()
    }
}

async fn traces(State(fake): State<FakeCollector>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let json = content_type.starts_with("application/json");
    let request = if json {
        serde_json::from_slice::<ExportTraceServiceRequest>(&body).map_err(|e| e.to_string())
    } else if content_type.starts_with("application/x-protobuf") {
        ExportTraceServiceRequest::decode(body.as_ref()).map_err(|e| e.to_string())
    } else {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported content type",
        )
            .into_response();
    };
    let request = match request {
        Ok(request) => request,
        Err(why) => return (StatusCode::BAD_REQUEST, why).into_response(),
    };
    {
        let mut inner = fake.lock();
        inner.raw.push(body.to_vec());
        inner.spans.extend(spans(request));
    }
    if json {
        ([(header::CONTENT_TYPE, "application/json")], "{}").into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            Vec::<u8>::new(),
        )
            .into_response()
    }
}

fn spans(request: ExportTraceServiceRequest) -> Vec<Span> {
    let mut spans = Vec::new();
    for resource in request.resource_spans {
        for scope in resource.scope_spans {
            for span in scope.spans {
                spans.push(Span {
                    name: span.name,
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent_span_id: hex::encode(&span.parent_span_id),
                    kind: span.kind,
                    attributes: span
                        .attributes
                        .into_iter()
                        .map(|kv| (kv.key, shown(kv.value.and_then(|v| v.value))))
                        .collect(),
                    links: span
                        .links
                        .into_iter()
                        .map(|l| (hex::encode(&l.trace_id), hex::encode(&l.span_id)))
                        .collect(),
                    status: span.status.map_or(0, |s| s.code),
                });
            }
        }
    }
    spans
}

fn shown(value: Option<AnyValue>) -> String {
    match value {
        Some(AnyValue::StringValue(s)) => s,
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}
