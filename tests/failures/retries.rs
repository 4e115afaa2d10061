//! A dependency that fails and may recover: the failure is retryable (its
//! Retry-After kept), and the retry makes the runtime, the record, the
//! comment and the deployment once.

use envmgr::FailureKind;
use envmgr::calls::{Call, Hit};
use envmgr::capabilities::ErrorCode;
use envmgr::capabilities::github::DeploymentState;
use envmgr_tests::*;

use crate::helpers::{assert_done, deployment_states, failure, opened, retryable, untouched};

#[tokio::test]
async fn an_outage_retiring_the_superseded_deployment_is_retried() {
    let host = seeded_host();
    set_secret(&host, APP_ID, "global", "DATABASE_URL", "postgres://db");
    let opened = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z");
    assert_done(&host.deliver(&host.message("probot", &opened)).await);
    // The push retires the first commit's deployment (its first status call;
    // the opened request made one).
    host.faults.inject(
        Call::GithubCreateDeploymentStatus,
        Hit::Nth(2),
        ErrorCode::Unavailable,
        "injected",
    );
    let pushed = pull_request_event(
        "synchronize",
        7,
        "feature/login",
        SHA_2,
        "2026-11-28T11:30:00Z",
    );
    let (kind, reason) = failure(&host.deliver(&host.message("probot", &pushed)).await);
    assert_eq!(kind, FailureKind::Retryable, "{reason}");
    assert!(reason.contains("superseded GitHub deployment"), "{reason}");
    // The failed call may have reached GitHub: the retry asks before it
    // gives the status again.
    let retried = host.deliver(&host.message("probot", &pushed)).await;
    assert_done(&retried);
    assert_eq!(
        retried
            .transcript
            .iter()
            .filter(|e| e.call == Call::GithubListDeploymentStatuses)
            .count(),
        1
    );
    let deployments = host.github.deployments(REPO).unwrap();
    let states: Vec<Vec<DeploymentState>> = deployments
        .iter()
        .map(|d| d.statuses.iter().map(|s| s.state).collect())
        .collect();
    assert_eq!(
        states,
        [
            vec![DeploymentState::InProgress, DeploymentState::Inactive],
            vec![DeploymentState::InProgress],
        ]
    );
}

/// The `key=` of every runtime call in a transcript, the failed ones
/// included: what the Runtime Service would have been sent.
fn runtime_keys(transcript: &[envmgr::calls::Entry]) -> Vec<String> {
    transcript
        .iter()
        .filter(|e| e.call == Call::RuntimeCreate)
        .map(|e| {
            e.request
                .strip_prefix("key=")
                .and_then(|rest| rest.split(' ').next())
                .expect("the transcript names the key")
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn runtime_failing_twice_then_succeeding_yields_one_of_everything() {
    let host = seeded_host();
    host.faults.inject(
        Call::RuntimeCreate,
        Hit::Nth(1),
        ErrorCode::Unavailable,
        "503 Service Unavailable",
    );
    host.faults.inject(
        Call::RuntimeCreate,
        Hit::Nth(2),
        ErrorCode::Unavailable,
        "503 Service Unavailable",
    );
    let mut message = host.message("probot", &opened());
    let mut transcript = Vec::new();
    for attempt in 1..=2 {
        message.receive_count = attempt;
        let delivery = host.deliver(&message).await;
        let reason = retryable(&delivery);
        assert!(reason.contains("503"), "{reason}");
        transcript.extend(delivery.transcript);
        // The queue's backoff: each retry comes later.
        host.clock.advance(std::time::Duration::from_secs(30));
    }
    message.receive_count = 3;
    let delivery = host.deliver(&message).await;
    assert_done(&delivery);
    transcript.extend(delivery.transcript);

    // Every try asked for the same runtime: a service that did create it
    // before its answer was lost finds it by the key.
    let keys = runtime_keys(&transcript);
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    let runtimes = host.runtime.runtimes().unwrap();
    assert_eq!(
        runtimes
            .iter()
            .map(|r| &r.idempotency_key)
            .collect::<Vec<_>>(),
        [&keys[0]],
        "one runtime, under that key"
    );
    // Retryable failures leave the record creating, never failed.
    assert_eq!(records(&host).len(), 3);
    let statuses: Vec<_> = records(&host)
        .iter()
        .map(|i| attr(i, "status").unwrap().to_string())
        .collect();
    assert!(statuses.iter().all(|s| s == "runtime-requested"));
    assert_eq!(host.github.comments(REPO, 7).unwrap().len(), 1);
    // One deployment, in progress once; one event, keyed by the request.
    assert_eq!(deployment_states(&host), [[DeploymentState::InProgress]]);
    let events = host.analytics.events().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].message_id, format!("envmgr-{}", keys[0]));
}

/// Successful transactions that put the environment's record items.
fn record_puts(transcript: &[envmgr::calls::Entry]) -> usize {
    transcript
        .iter()
        .filter(|e| {
            e.call == Call::DynamodbTransactWrite
                && e.result == "ok"
                && e.request.contains("put environments {pk=ENVIRONMENT#")
        })
        .count()
}

#[tokio::test]
async fn a_transaction_conflict_then_success_writes_once() {
    let host = seeded_host();
    host.faults.inject(
        Call::DynamodbTransactWrite,
        Hit::Nth(1),
        ErrorCode::Conflict,
        "TransactionConflict",
    );
    let message = host.message("probot", &opened());
    let first = host.deliver(&message).await;
    retryable(&first);
    untouched(&host);
    assert_eq!(record_puts(&first.transcript), 0);
    let second = host.deliver(&message).await;
    assert_done(&second);
    assert_eq!(record_puts(&second.transcript), 1, "written once");
    // Delivered once more (a delete that did not reach the queue): the
    // record holds this request already and is not written again.
    let third = host.deliver(&message).await;
    assert_done(&third);
    assert_eq!(record_puts(&third.transcript), 0, "not rewritten");
    assert_eq!(records(&host).len(), 3);
}

#[tokio::test]
async fn a_dependencys_retry_after_reaches_the_host() {
    let host = seeded_host();
    host.faults.inject_error(
        Call::GithubCreateComment,
        Hit::Every,
        envmgr::capabilities::Error {
            code: ErrorCode::Throttled,
            message: "secondary rate limit".into(),
            retry_after_ms: Some(60_000),
        },
    );
    let delivery = host.deliver(&host.message("probot", &opened())).await;
    match delivery.result {
        Ok(Err(failure)) => {
            assert_eq!(failure.kind, FailureKind::Retryable);
            assert_eq!(failure.retry_after_ms, Some(60_000));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_github_outage_creating_the_deployment_is_retried_and_makes_one() {
    let host = seeded_host();
    host.faults.inject(
        Call::GithubCreateDeployment,
        Hit::Nth(1),
        ErrorCode::Unavailable,
        "502 Bad Gateway",
    );
    let mut message = host.message("probot", &opened());
    let reason = retryable(&host.deliver(&message).await);
    assert!(reason.contains("create the GitHub deployment"), "{reason}");
    assert!(reason.contains("502"), "{reason}");
    // The runtime comes first: requested and recorded; no deployment yet.
    assert_eq!(host.runtime.calls().len(), 1);
    assert!(host.github.deployments(REPO).unwrap().is_empty());

    message.receive_count = 2;
    assert_done(&host.deliver(&message).await);
    assert_eq!(
        host.runtime.calls().len(),
        1,
        "the runtime is not asked again"
    );
    assert_eq!(deployment_states(&host), [[DeploymentState::InProgress]]);
}

#[tokio::test]
async fn a_github_outage_setting_the_status_is_retried_and_sets_it_once() {
    let host = seeded_host();
    host.faults.inject(
        Call::GithubCreateDeploymentStatus,
        Hit::Nth(1),
        ErrorCode::Unavailable,
        "503 Service Unavailable",
    );
    let mut message = host.message("probot", &opened());
    let reason = retryable(&host.deliver(&message).await);
    assert!(
        reason.contains("set the GitHub deployment status"),
        "{reason}"
    );
    // The runtime was requested and recorded; the retry finds both.
    assert_eq!(host.runtime.calls().len(), 1);
    assert!(
        records(&host)
            .iter()
            .all(|i| attr(i, "status") == Some("runtime-requested"))
    );

    message.receive_count = 2;
    assert_done(&host.deliver(&message).await);
    assert_eq!(host.runtime.runtimes().unwrap().len(), 1, "one runtime");
    assert_eq!(deployment_states(&host), [[DeploymentState::InProgress]]);
}
