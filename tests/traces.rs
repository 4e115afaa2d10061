//! Traces through the real binary: `serve` exporting to the tests' fake
//! OTLP collector (`tests/src/fakes/collector.rs`). One webhook makes one
//! trace, under the producer's `traceparent`; its capability calls and the
//! Runtime Service's HTTP request are children; the service receives the
//! context as a header and its status report, carrying it back, starts a
//! trace of its own linked to the create's. Nothing a message carries that
//! is secret or identifying reaches the collector, and a host without a
//! collector sends no context anywhere.

use std::time::Duration;

use envmgr::queue::Attribute;
use envmgr_tests::fakes::collector::{FakeCollector, Span};
use envmgr_tests::*;

const WAIT: Duration = Duration::from_secs(60);
/// The producer's context (the W3C recommendation's example).
const PRODUCER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PRODUCER_SPAN: &str = "00f067aa0ba902b7";
const DATABASE_URL: &str = "postgres://shop:canary-db-Zq81@db/shop";
const STRIPE_KEY: &str = "sk_test_canary_Lr5w";
/// How spans kinds are numbered in OTLP.
const CONSUMER: i32 = 5;
const CLIENT: i32 = 3;

fn traced(stack: &stack::Stack, collector: &str) -> std::process::Child {
    let (daemon, _) = stack.serve_with(&[
        ("ENVMGR__TELEMETRY__OTLP_ENDPOINT", collector),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]);
    daemon
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// On both backends: the webhook's trace, the report's, and the canaries.
async fn one_webhook_makes_one_trace_and_its_report_links_back(backend: stack::Backend) {
    let stack = stack::Stack::new(
        "traces",
        env!("CARGO_BIN_EXE_envmgr-under-test"),
        stack::Options {
            backend,
            ..stack::Options::default()
        },
    );
    stack.seed_shop(DATABASE_URL, STRIPE_KEY);
    stack.runtime_reports(Duration::from_millis(200), "ready");
    let (collector, url) = FakeCollector::start();
    let mut daemon = traced(&stack, &url);
    let parent = format!("00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01");
    let body = stack::example("pull-request-opened.json");
    let attributes = [("traceparent".to_string(), Attribute::text("String", parent))];
    stack
        .send_with_attributes("probot", &body, &attributes)
        .await;
    stack::eventually("the environment ready", WAIT, || async {
        let items = stack.environment_items().await;
        items
            .iter()
            .any(|i| i.get("status").map(String::as_str) == Some("ready"))
    })
    .await;
    // The report's span is exported once its message finished.
    stack::eventually("both messages' spans exported", WAIT, || async {
        named(&collector.spans(), "api process").len() == 1
            && named(&collector.spans(), "probot process").len() == 1
    })
    .await;
    let stopped = stack::terminate(&mut daemon);
    let logs = stack.logs();
    assert!(
        stopped.success(),
        "{stopped:?}: {}",
        &logs[logs.len().saturating_sub(3000)..]
    );
    let spans = collector.spans();

    // The webhook's span: a consumer under the producer's context.
    let message = named(&spans, "probot process")[0];
    assert_eq!(message.kind, CONSUMER);
    assert_eq!(message.trace_id, PRODUCER_TRACE);
    assert_eq!(message.parent_span_id, PRODUCER_SPAN);
    assert_eq!(message.attribute("messaging.system"), Some("aws_sqs"));
    assert_eq!(
        message.attribute("messaging.destination.name"),
        Some("probot")
    );
    assert_eq!(message.attribute("envmgr.disposition"), Some("Deleted"));
    assert_eq!(message.status, 0);
    assert!(message.attribute("envmgr.contract").is_some());
    // Its capability calls are its children, each with its outcome.
    let calls: Vec<&Span> = spans
        .iter()
        .filter(|s| s.attribute("envmgr.call").is_some())
        .collect();
    let create = calls
        .iter()
        .find(|s| s.name == "runtime.create")
        .expect("the runtime call's span");
    for name in [
        "github.authenticate",
        "dynamodb.transact-write",
        "kms.decrypt",
        "runtime.create",
    ] {
        let call = calls
            .iter()
            .find(|s| s.name == name && s.trace_id == PRODUCER_TRACE);
        let call = call.unwrap_or_else(|| panic!("no span for {name}: {spans:#?}"));
        assert_eq!(call.parent_span_id, message.span_id, "{name}");
        assert_eq!(call.attribute("envmgr.outcome"), Some("ok"), "{name}");
    }
    assert_runtime_request_and_report(&stack, &spans, create);
    // A log line finds its trace.
    assert!(
        stack.logs().contains(&format!("trace_id={PRODUCER_TRACE}")),
        "{}",
        stack.logs()
    );

    assert_nothing_secret_or_unlisted_exported(&collector, &spans);
}

/// The Runtime Service's request: a client span under its call, and the
/// context the service received names it; the report: a trace of its own,
/// linked to the create's request.
fn assert_runtime_request_and_report(stack: &stack::Stack, spans: &[Span], create: &Span) {
    let request = named(spans, "POST /v1/runtimes")[0];
    assert_eq!(
        (request.kind, request.parent_span_id.as_str()),
        (CLIENT, create.span_id.as_str())
    );
    assert_eq!(request.attribute("http.response.status_code"), Some("201"));
    let sent = stack.runtime.traceparents();
    assert_eq!(
        sent,
        vec![Some(format!("00-{PRODUCER_TRACE}-{}-01", request.span_id))]
    );
    // The report: a trace of its own, linked to the create's request.
    let report = named(spans, "api process")[0];
    assert_ne!(report.trace_id, PRODUCER_TRACE);
    assert!(report.parent_span_id.is_empty(), "{report:?}");
    assert_eq!(
        report.links,
        vec![(PRODUCER_TRACE.to_string(), request.span_id.clone())]
    );
}

/// Nothing secret or identifying in any exported byte, and no attribute
/// outside the allow-list.
fn assert_nothing_secret_or_unlisted_exported(collector: &FakeCollector, spans: &[Span]) {
    let raw = String::from_utf8_lossy(&collector.raw()).into_owned();
    for canary in [
        DATABASE_URL,
        STRIPE_KEY,
        "canary",
        "Add login page",
        "octocat",
        "acme/shop",
        "acme",
    ] {
        assert!(!raw.contains(canary), "{canary} was exported");
    }
    for span in spans {
        for (name, _) in &span.attributes {
            assert!(
                envmgr::telemetry::spans::ALLOWED.contains(&name.as_str()),
                "{name} on {}",
                span.name
            );
        }
    }
}

/// Without a collector, no context leaves the host: the Runtime Service
/// gets no `traceparent`, even for a message that came with one.
async fn without_a_collector_no_context_is_sent(backend: stack::Backend) {
    let stack = stack::Stack::new(
        "untraced",
        env!("CARGO_BIN_EXE_envmgr-under-test"),
        stack::Options {
            backend,
            ..stack::Options::default()
        },
    );
    stack.seed_shop(DATABASE_URL, STRIPE_KEY);
    let mut daemon = stack.serve();
    let parent = format!("00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01");
    let attributes = [("traceparent".to_string(), Attribute::text("String", parent))];
    let body = stack::example("pull-request-opened.json");
    stack
        .send_with_attributes("probot", &body, &attributes)
        .await;
    stack::eventually("the runtime requested", WAIT, || async {
        !stack.runtime.traceparents().is_empty()
    })
    .await;
    assert!(stack::terminate(&mut daemon).success());
    assert_eq!(stack.runtime.traceparents(), vec![None]);
    assert!(!stack.logs().contains("trace_id"));
}

envmgr_tests::on_both_backends!(
    one_webhook_makes_one_trace_and_its_report_links_back,
    without_a_collector_no_context_is_sent,
);

/// SQS's `AWSTraceHeader` (X-Ray's format) is a producer's context too,
/// and a dead-letter copy envmgr sends keeps it: SQS does not copy system
/// attributes.
#[tokio::test(flavor = "multi_thread")]
async fn the_aws_trace_header_is_a_parent_and_dead_letter_copies_keep_it() {
    use aws_sdk_sqs::types::{
        MessageSystemAttributeName, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
    };
    let stack = stack::Stack::new(
        "xray",
        env!("CARGO_BIN_EXE_envmgr-under-test"),
        stack::Options {
            backend: stack::Backend::Aws,
            ..stack::Options::default()
        },
    );
    stack.seed_shop(DATABASE_URL, STRIPE_KEY);
    let (collector, url) = FakeCollector::start();
    let mut daemon = traced(&stack, &url);
    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk().await);
    let queue = stack.queue_name("api");
    let url = sqs
        .get_queue_url()
        .queue_name(&queue)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let trace = MessageSystemAttributeValue::builder()
        .data_type("String")
        .string_value(header)
        .build()
        .unwrap();
    // Not a request at all: a permanent failure, dead-lettered at once.
    sqs.send_message()
        .queue_url(&url)
        .message_body(r#"{"version":1,"kind":"no-such-kind"}"#)
        .message_system_attributes(MessageSystemAttributeNameForSends::AwsTraceHeader, trace)
        .send()
        .await
        .unwrap();
    stack::eventually("the message's span exported", WAIT, || async {
        !named(&collector.spans(), "api process").is_empty()
    })
    .await;
    let message = named(&collector.spans(), "api process")[0].clone();
    assert_eq!(message.trace_id, "5759e988bd862e3fe1be46a994272793");
    assert_eq!(message.parent_span_id, "53995c3f42cd8ad8");
    assert_eq!(
        message.attribute("envmgr.disposition"),
        Some("DeadLettered")
    );
    assert_eq!(message.status, 2, "an error: dead-lettered");
    assert!(stack::terminate(&mut daemon).success());
    let dlq = format!("{}-dlq", stack.queue_name("api"));
    let dlq = sqs
        .get_queue_url()
        .queue_name(&dlq)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let received = sqs
        .receive_message()
        .queue_url(&dlq)
        .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let copy = &received.messages.unwrap_or_default()[0];
    let kept = copy
        .attributes
        .as_ref()
        .and_then(|a| a.get(&MessageSystemAttributeName::AwsTraceHeader));
    assert_eq!(kept.map(String::as_str), Some(header));
}
