//! Where and how spans leave the host: OTLP over HTTP (protobuf, or JSON
//! with `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`), batched by the SDK's
//! processor on its own thread and sent with the host's reqwest client on
//! the host's tokio runtime (no second HTTP stack in the binary).
//!
//! Bound: the SDK's batch queue holds at most 2,048 spans
//! (`OTEL_BSP_MAX_QUEUE_SIZE`); past it spans are dropped, never waited
//! for, so a slow or absent collector cannot hold a message.

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// How long one export may take; the collector's answer is small.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where traces go: the config's endpoint (a base URL, `/v1/traces`
/// appended, as for `OTEL_EXPORTER_OTLP_ENDPOINT`), or the standard
/// variables, resolved by the SDK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Configured(String),
    FromEnvironment,
}

impl Endpoint {
    /// `None` when nothing names a collector, or `OTEL_SDK_DISABLED=true`.
    pub fn resolve(configured: Option<&str>, env: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return None;
        }
        if let Some(base) = configured.filter(|v| !v.trim().is_empty()) {
            return Some(Self::Configured(format!(
                "{}/v1/traces",
                base.trim().trim_end_matches('/')
            )));
        }
        (set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
            || set("OTEL_EXPORTER_OTLP_ENDPOINT").is_some())
        .then_some(Self::FromEnvironment)
    }
}

/// The tracer provider exporting to `endpoint` in batches.
pub(super) fn provider(
    endpoint: &Endpoint,
    runtime: tokio::runtime::Handle,
) -> anyhow::Result<SdkTracerProvider> {
    let http = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .build()
        .context("the OTLP exporter's HTTP client")?;
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Client { http, runtime })
        .with_timeout(EXPORT_TIMEOUT);
    if let Endpoint::Configured(url) = endpoint {
        exporter = exporter.with_endpoint(url.clone());
    }
    let exporter = exporter.build().context("the OTLP trace exporter")?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("envmgr");
    }
    let resource = resource
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The SDK's HTTP client: the batch processor calls it from its own
/// thread, so each request runs on the host's runtime and is awaited.
#[derive(Debug)]
struct Client {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for Client {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let http = self.http.clone();
        let (status, headers, body) = self
            .runtime
            .spawn(async move {
                let response = http.execute(request).await?;
                let (status, headers) = (response.status(), response.headers().clone());
                Ok::<_, reqwest::Error>((status, headers, response.bytes().await?))
            })
            .await??;
        let mut response = http::Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::Endpoint;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn off_unless_something_names_a_collector() {
        assert_eq!(Endpoint::resolve(None, env(&[])), None);
        assert_eq!(
            Endpoint::resolve(Some(" "), env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")])),
            None
        );
        assert_eq!(
            Endpoint::resolve(
                None,
                env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")])
            ),
            Some(Endpoint::FromEnvironment)
        );
        assert_eq!(
            Endpoint::resolve(
                None,
                env(&[(
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://c:4318/v1/traces"
                )])
            ),
            Some(Endpoint::FromEnvironment)
        );
    }

    #[test]
    fn the_config_is_a_base_url_and_wins() {
        let found = Endpoint::resolve(
            Some("http://collector:4318/"),
            env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://other:4318")]),
        );
        assert_eq!(
            found,
            Some(Endpoint::Configured(
                "http://collector:4318/v1/traces".into()
            ))
        );
    }

    #[test]
    fn the_sdk_switch_turns_it_off() {
        let disabled = env(&[
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"),
        ]);
        assert_eq!(Endpoint::resolve(Some("http://c"), disabled), None);
    }
}
