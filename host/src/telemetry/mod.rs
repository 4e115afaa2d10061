//! Traces: one message's work, from the producer's context to the calls it
//! made, exported over OTLP when an endpoint is configured
//! (`[telemetry] otlp_endpoint`, or the standard `OTEL_EXPORTER_OTLP_*`
//! variables) and absent otherwise — no layer, no span data, no cost.
//!
//! Threat model: a span outlives its message (it is exported in batches,
//! after the message's redactor is gone), and a collector is often run by
//! another team. So nothing that can hold a secret or identify a person
//! reaches one: only the spans made here ([`spans`], target
//! `envmgr::telemetry`) are exported — every other span and every log event
//! is filtered out before the OpenTelemetry layer sees it — and their
//! attributes are the fixed allow-list in [`spans::ALLOWED`]: names,
//! codes, counts and ids, never a message body, an error text, a
//! repository, a login or a title. Replay and shadow runs make no spans
//! (the call layer skips them), and CLI commands other than `serve` do not
//! install the layer.

pub mod context;
mod export;
pub mod http;
pub mod message;
pub mod slo;
pub mod spans;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;

pub use export::Endpoint;

/// The exporter while `serve` runs; [`Telemetry::shutdown`] sends what is
/// batched.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// The tracing layer that turns [`spans`] into OpenTelemetry spans, and
    /// the exporter behind it; `None` when no endpoint is configured.
    pub fn layer<S>(
        endpoint: Option<&str>,
        runtime: tokio::runtime::Handle,
    ) -> anyhow::Result<Option<(impl Layer<S> + Send + Sync + 'static, Self)>>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
    {
        let Some(endpoint) = Endpoint::resolve(endpoint, |name| std::env::var(name).ok()) else {
            return Ok(None);
        };
        let provider = export::provider(&endpoint, runtime)?;
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "envmgr");
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_level(false)
            .with_tracked_inactivity(false)
            .with_filter(filter_fn(|metadata| {
                metadata.is_span() && metadata.target() == spans::TARGET
            }));
        spans::enable();
        Ok(Some((layer, Self { provider })))
    }

    /// Export what is batched and stop the exporter (the end of `serve`).
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "traces not all exported at stop");
        }
    }
}
