//! The sandbox: a trapping, looping or memory-hungry guest ends as an error
//! while the host lives on; the guest sees nothing ambient; plaintext secrets
//! and tokens never reach the transcript, the comment, the records or logs.

use std::sync::Arc;
use std::time::Duration;

use envmgr::capabilities::dynamodb::AttributeValue;
use envmgr::engine::{Engine, Limits};
use envmgr::mock::{MockHost, default_config};
use envmgr::observe::{Call, Hit};
use envmgr::{Outcome, RunError};
use envmgr_tests::*;

/// Tight limits so the misbehaviour ends fast.
fn chaos_host() -> MockHost {
    let engine = Arc::new(
        Engine::new(Limits {
            memory_bytes: 16 << 20,
            deadline: Duration::from_millis(300),
            concurrency: 4,
        })
        .unwrap(),
    );
    let logic = Arc::new(engine.load(CHAOS_LOGIC).unwrap());
    MockHost::new(engine, logic, default_config())
}

async fn still_serves(host: &MockHost) {
    let delivery = host.deliver(&host.message("api", "fine")).await;
    assert!(
        matches!(delivery.result, Ok(Ok(Outcome::Done(_)))),
        "the host serves the next message: {:?}",
        delivery.result
    );
}

#[tokio::test]
async fn a_guest_panic_is_a_trap_and_the_host_lives_on() {
    let host = chaos_host();
    let delivery = host.deliver(&host.message("api", "trap")).await;
    match delivery.result {
        Err(RunError::Trap(what)) => assert!(what.contains("unreachable"), "{what}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    still_serves(&host).await;
}

#[tokio::test]
async fn an_endless_loop_ends_at_the_deadline() {
    let host = chaos_host();
    let started = std::time::Instant::now();
    let delivery = host.deliver(&host.message("api", "loop")).await;
    assert_eq!(
        delivery.result.unwrap_err(),
        RunError::Timeout(Duration::from_millis(300))
    );
    // Generous bound: the point is that it ends, not how fast.
    assert!(started.elapsed() < Duration::from_secs(30));
    still_serves(&host).await;
}

#[tokio::test]
async fn a_memory_bomb_ends_at_the_memory_limit() {
    let host = chaos_host();
    let delivery = host.deliver(&host.message("api", "bomb")).await;
    match delivery.result {
        Err(RunError::MemoryExhausted(what)) => assert!(what.contains("16777216"), "{what}"),
        other => panic!("expected memory exhaustion, got {other:?}"),
    }
    still_serves(&host).await;
}

#[tokio::test]
async fn the_guest_sees_no_environment_files_or_network() {
    let host = chaos_host();
    let delivery = host.deliver(&host.message("api", "ambient")).await;
    match delivery.result {
        Ok(Ok(Outcome::Done(seen))) => assert_eq!(
            seen, "vars=0 args=0 root=None file=false tcp=false",
            "the sandbox leaks"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_component_of_another_world_is_refused() {
    let (engine, _) = shared_logic();
    // A core module, not a component.
    let error = engine.load(b"\0asm\x01\0\0\0").unwrap_err();
    assert!(
        format!("{error:#}").contains("not a valid component"),
        "{error:#}"
    );
}

const SECRET_VALUES: [&str; 3] = [
    "postgres://user:hunter2@db.internal/shop",
    "sk_live_51HxQ2bGvTnV8sTuvWxYz",
    "whsec_4f1c2a9be77d",
];

#[tokio::test]
async fn no_plaintext_secret_or_token_leaves_the_host() {
    let host = seeded_host();
    set_secret(&host, APP_ID, "global", "DATABASE_URL", SECRET_VALUES[0]);
    set_secret(&host, APP_ID, "preview", "STRIPE_KEY", SECRET_VALUES[1]);
    set_secret(&host, APP_ID, "preview", "WEBHOOK_SECRET", SECRET_VALUES[2]);

    let mut transcript = Vec::new();
    for (action, sha, at) in [
        ("opened", SHA_1, "2026-11-28T11:00:00Z"),
        ("opened", SHA_1, "2026-11-28T11:00:00Z"),
        ("synchronize", SHA_2, "2026-11-28T11:30:00Z"),
    ] {
        let body = pull_request_event(action, 7, "feature/login", sha, at);
        let delivery = host.deliver(&host.message("probot", &body)).await;
        assert!(matches!(delivery.result, Ok(Ok(Outcome::Done(_)))));
        transcript.extend(delivery.transcript.iter().map(|e| e.to_string()));
    }

    // The runtime did receive every value and token: the test can fail.
    let calls = host.runtime.calls();
    let delivered: Vec<String> = calls
        .iter()
        .flat_map(|c| c.secrets.iter().map(|(_, v)| v.expose().to_string()))
        .collect();
    for value in SECRET_VALUES {
        assert!(
            delivered.iter().any(|d| d == value),
            "runtime lacks {value}"
        );
    }
    // One token per runtime requested: the redelivery finds its runtime on
    // the record and asks for none.
    let tokens = host.github.issued_tokens();
    assert_eq!(tokens.len(), 2);

    // Everywhere else: only labels.
    let mut outside: Vec<String> = transcript;
    outside.extend(host.github.comments(REPO, 7).into_iter().map(|c| c.body));
    outside.extend(
        host.analytics
            .events()
            .into_iter()
            .map(|e| format!("{e:?}")),
    );
    for table in ["environments", "apps"] {
        for item in host.tables.scan(table) {
            for (_, value) in item {
                if let AttributeValue::S(s) = value {
                    outside.push(s);
                }
            }
        }
    }
    assert!(outside.iter().any(|t| t.contains("<secret:STRIPE_KEY>")));
    assert!(
        outside
            .iter()
            .any(|t| t.contains("<github-token:acme/shop>"))
    );
    for text in &outside {
        for secret in SECRET_VALUES
            .iter()
            .map(|s| s.to_string())
            .chain(tokens.clone())
        {
            assert!(!text.contains(&secret), "plaintext leaked into: {text}");
        }
    }
    // Even the host's own Debug output of a runtime call is redacted.
    let debug = format!("{:?}", calls[0]);
    assert!(!SECRET_VALUES.iter().any(|s| debug.contains(s)), "{debug}");
}

#[tokio::test]
async fn a_dependency_error_quoting_a_secret_reaches_the_guest_redacted() {
    let host = seeded_host();
    set_secret(&host, APP_ID, "global", "DATABASE_URL", SECRET_VALUES[0]);
    set_secret(&host, APP_ID, "preview", "STRIPE_KEY", SECRET_VALUES[1]);
    // The second decrypt fails quoting the first one's plaintext (base64,
    // as an echoing service might): the reason must not carry it.
    use base64::Engine as _;
    let quoted = base64::engine::general_purpose::STANDARD.encode(SECRET_VALUES[0]);
    host.faults.inject(
        Call::KmsDecrypt,
        Hit::Nth(2),
        envmgr::capabilities::ErrorCode::Invalid,
        &format!(
            "cannot decrypt; the last plaintext was {} ({quoted})",
            SECRET_VALUES[0]
        ),
    );
    let body = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z");
    let delivery = host.deliver(&host.message("probot", &body)).await;
    let reason = match &delivery.result {
        Ok(Err(failure)) => failure.reason.clone(),
        other => panic!("{other:?}"),
    };
    assert!(reason.contains("[redacted]"), "{reason}");
    assert!(
        !reason.contains(SECRET_VALUES[0]) && !reason.contains(&quoted),
        "{reason}"
    );
    for item in records(&host) {
        let stored = attr(&item, "failureReason").unwrap_or_default();
        assert!(!stored.contains(SECRET_VALUES[0]) && !stored.contains(&quoted));
    }
}
