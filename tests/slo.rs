//! The push-to-ready objective (`docs/slo.md`): its burn-rate rules
//! (`docs/prometheus/envmgr-slo.rules.yml`) checked and unit-tested by
//! Prometheus's own `promtool` against the series of
//! `envmgr-slo.test.yml`, and the metrics they read, as a real `serve`
//! exposes them: one observation per request turned ready, with the
//! trace id of the report that did it as its exemplar.

use std::time::Duration;

use envmgr_tests::fakes::collector::FakeCollector;
use envmgr_tests::*;

fn rules_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/prometheus")
}

fn promtool(args: &[&str]) -> String {
    let output = std::process::Command::new(promtool::promtool())
        .args(args)
        .current_dir(rules_dir())
        .output()
        .expect("running promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?}: {text}");
    text
}

#[test]
fn the_burn_alerts_fire_as_their_series_say() {
    promtool(&["check", "rules", "envmgr-slo.rules.yml"]);
    let tested = promtool(&["test", "rules", "envmgr-slo.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// Every series name the rules read (the recording rules' own aside).
fn names_read_by_the_rules() -> Vec<String> {
    let rules = std::fs::read_to_string(rules_dir().join("envmgr-slo.rules.yml")).unwrap();
    let mut found: Vec<String> = rules
        .split(|c: char| !(c.is_ascii_lowercase() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("envmgr_"))
        .map(String::from)
        .collect();
    found.sort();
    found.dedup();
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_exposes_what_the_rules_read_with_trace_exemplars() {
    let port = free_port();
    let stack = stack::Stack::new(
        "slo",
        env!("CARGO_BIN_EXE_envmgr-under-test"),
        stack::Options {
            extra_config: format!("[admin]\nlisten = \"127.0.0.1:{port}\"\n"),
            ..stack::Options::default()
        },
    );
    stack.seed_shop("postgres://shop@db/shop", "sk_test_slo");
    stack.runtime_reports(Duration::from_millis(200), "ready");
    let (collector, url) = FakeCollector::start();
    let (mut daemon, _) = stack.serve_with(&[
        ("ENVMGR__TELEMETRY__OTLP_ENDPOINT", url.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]);
    // Pushed a moment ago: the request's time is the event's `updated_at`.
    let now = envmgr::support::utc(envmgr::support::now_ms() as u64, false);
    let event = pull_request_event("opened", 7, "feature/login", SHA_1, &now);
    stack.send("probot", &event);
    let ready = "envmgr_push_to_ready_seconds_count 1\n";
    // The endpoint listens a moment after the process starts.
    stack::eventually("the environment ready", Duration::from_secs(60), || async {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http_get(port, "/metrics").contains(ready)
    })
    .await;
    let metrics = http_get(port, "/metrics");
    for name in names_read_by_the_rules() {
        assert!(
            metrics.contains(&format!("{name}{{")) || metrics.contains(&format!("{name} ")),
            "{name} not exposed:\n{metrics}"
        );
    }
    // The request was ready within the objective's 300 s.
    assert!(
        metrics.contains("envmgr_push_to_ready_seconds_bucket{le=\"300.0\"} 1"),
        "{metrics}"
    );
    for queue in ["probot", "api"] {
        let count = format!("envmgr_message_latency_seconds_count{{queue=\"{queue}\"}} 1\n");
        assert!(metrics.contains(&count), "{count}: {metrics}");
    }
    // Its exemplar names the report's trace.
    stack::eventually(
        "the report's span exported",
        Duration::from_secs(30),
        || async { collector.spans().iter().any(|s| s.name == "api process") },
    )
    .await;
    let report = collector
        .spans()
        .into_iter()
        .find(|s| s.name == "api process")
        .unwrap();
    let exemplar = format!("# {{trace_id=\"{}\"}}", report.trace_id);
    let observed = metrics
        .lines()
        .find(|l| l.starts_with("envmgr_push_to_ready_seconds_bucket") && l.contains("# {"))
        .unwrap_or_else(|| panic!("no exemplar: {metrics}"));
    assert!(observed.contains(&exemplar), "{observed}");
    assert!(stack::terminate(&mut daemon).success());
}
