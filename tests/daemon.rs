//! `envmgr serve` end to end: the real binary with fake GitHub, Segment and
//! Runtime servers, all on 127.0.0.1, and its queues, tables and KMS key on
//! each backend — moto (SQS, DynamoDB, KMS) and the local database file.
//! Every scenario runs on both (`aws::` and `local::` at the bottom).

#[path = "daemon/end_to_end.rs"]
mod end_to_end;
#[path = "daemon/helpers.rs"]
mod helpers;
#[path = "daemon/stopping.rs"]
mod stopping;

use std::time::Duration;

use envmgr_tests::stack::{Backend, Options, eventually, example, terminate};

use end_to_end::both_queues_create_environments_end_to_end;
use helpers::{WAIT, s, send, shop};
use stopping::{
    kill_9_mid_message_then_restart_completes_it_once, sigterm_lets_the_message_in_flight_finish,
    sigterm_past_the_grace_period_releases_the_message_at_once,
};

async fn runtime_failing_twice_then_succeeding_creates_one_runtime(backend: Backend) {
    let stack = shop(
        "retry",
        Options {
            backend,
            ..Options::default()
        },
    );
    stack.runtime.fail_next(2);
    let mut daemon = stack.serve();
    send(&stack, "probot", &example("pull-request-opened.json"));

    eventually("a runtime after two 503s", WAIT, || async {
        stack.runtime.runtimes().len() == 1
    })
    .await;
    let requests = stack.runtime.requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests.iter().all(|(key, _)| *key == requests[0].0),
        "one idempotency key"
    );
    eventually("the message deleted", WAIT, || async {
        stack.messages_in(&stack.queue_name("probot")).await == 0
    })
    .await;
    assert_eq!(stack.environment_items().await.len(), 3);
    assert_eq!(stack.github.comments("acme/shop", 7).len(), 1);
    assert!(terminate(&mut daemon).success());
}

async fn a_permanently_bad_message_is_dead_lettered_with_its_reason(backend: Backend) {
    let stack = shop(
        "dlq",
        Options {
            backend,
            ..Options::default()
        },
    );
    let mut daemon = stack.serve();
    send(
        &stack,
        "api",
        "{\"version\": 1, \"kind\": \"create-environment\"",
    );

    let attributes = stack.dead_letter("api", WAIT).await;
    let reason = attributes["envmgr.reason"].as_str();
    assert!(reason.contains("not valid JSON"), "{reason}");
    assert_eq!(attributes["envmgr.sourceQueue"], "api");
    assert!(attributes.contains_key("envmgr.logicVersion"));
    eventually("deleted from its queue", WAIT, || async {
        stack.messages_in(&stack.queue_name("api")).await == 0
    })
    .await;
    assert!(stack.runtime.requests().is_empty());
    assert!(terminate(&mut daemon).success());
}

async fn a_trapping_guest_is_retried_then_dead_lettered_by_the_queue(backend: Backend) {
    let stack = shop(
        "trap",
        Options {
            backend,
            max_receive_count: 2,
            logic: Some(envmgr_tests::CHAOS_LOGIC),
            ..Options::default()
        },
    );
    let mut daemon = stack.serve();
    send(&stack, "api", "trap");
    let dead_letter = format!("{}-dlq", stack.queue_name("api"));
    eventually("the redrive policy dead-letters it", WAIT, || async {
        stack.messages_in(&dead_letter).await == 1
    })
    .await;
    assert_eq!(stack.messages_in(&stack.queue_name("api")).await, 0);
    // The host retried each of the two receives the queue allows; it did
    // not dead-letter the trap itself.
    let logs = stack.logs();
    let retries: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("will retry") && l.contains("the logic trapped"))
        .collect();
    assert_eq!(retries.len(), 2, "{logs}");
    assert!(retries[0].contains("receive_count=1"), "{}", retries[0]);
    assert!(retries[1].contains("receive_count=2"), "{}", retries[1]);
    assert!(!logs.contains("dead-lettered reason="), "{logs}");
    // The queue moved the original: it carries none of the metadata of a
    // copy the host makes.
    let dead = stack.dead_letters("api").await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, "trap");
    assert!(!dead[0].1.contains_key("envmgr.reason"), "{:?}", dead[0].1);
    assert!(terminate(&mut daemon).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_while_starting_up_is_an_orderly_exit() {
    let stack = shop(
        "early-term",
        Options {
            backend: Backend::Aws,
            cuttable: true,
            ..Options::default()
        },
    );
    // AWS unreachable: serve keeps trying to look its queues up.
    stack.outage.as_ref().unwrap().cut();
    let mut daemon = stack.serve();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(daemon.try_wait().unwrap().is_none(), "still starting");
    let status = terminate(&mut daemon);
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", stack.logs());
    assert!(
        stack.logs().contains("stopped before serving"),
        "{}",
        stack.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_survives_aws_being_unreachable_and_resumes() {
    let stack = shop(
        "outage",
        Options {
            backend: Backend::Aws,
            cuttable: true,
            ..Options::default()
        },
    );
    let outage = stack.outage.as_ref().unwrap();
    let mut daemon = stack.serve();
    eventually("the daemon serving", WAIT, || async {
        stack.logs().contains("serving")
    })
    .await;
    outage.cut();
    // A message arrives while the daemon cannot reach SQS (sent straight to moto).
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk().await);
    let url = sqs
        .get_queue_url()
        .queue_name(stack.queue_name("probot"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    sqs.send_message()
        .queue_url(url)
        .message_body(example("pull-request-opened.json"))
        .send()
        .await
        .unwrap();
    eventually("the daemon noticing", WAIT, || async {
        stack.logs().contains("receiving failed")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "the daemon is still running"
    );
    assert!(stack.runtime.requests().is_empty());

    outage.restore();
    eventually("the message handled after the outage", WAIT, || async {
        stack.runtime.runtimes().len() == 1
            && stack.messages_in(&stack.queue_name("probot")).await == 0
    })
    .await;
    assert!(terminate(&mut daemon).success());
}

async fn a_stale_request_loses_and_a_redelivery_changes_nothing(backend: Backend) {
    let stack = shop(
        "stale",
        Options {
            backend,
            ..Options::default()
        },
    );
    let mut daemon = stack.serve();
    let newer = example("pull-request-synchronize.json");
    send(&stack, "probot", &newer);
    eventually("the newer push applied", WAIT, || async {
        stack.runtime.runtimes().len() == 1
    })
    .await;
    // The older event arrives late, then the newer one is delivered again.
    send(&stack, "probot", &example("pull-request-opened.json"));
    send(&stack, "probot", &newer);
    eventually("both handled", WAIT, || async {
        stack.messages_in(&stack.queue_name("probot")).await == 0
    })
    .await;
    // The redelivery found its runtime on the record and asked nothing.
    assert_eq!(stack.runtime.requests().len(), 1);
    let items = stack.environment_items().await;
    assert_eq!(items.len(), 3);
    let newer_sha = "89e6c98d92887913cadf06b2adb97f26cde4849b";
    assert!(
        items.iter().all(|i| s(i, "sha") == newer_sha),
        "the newer push holds"
    );
    assert_eq!(
        stack.runtime.runtimes().len(),
        1,
        "the redelivery reused its key"
    );
    assert_eq!(stack.github.comments("acme/shop", 7).len(), 1);
    let deployments = stack.github.deployments("acme/shop");
    assert_eq!(
        deployments.len(),
        1,
        "none for the stale commit, one in all"
    );
    assert_eq!(deployments[0].deployment["sha"], newer_sha);
    assert!(stack.logs().contains("stale request"));
    assert!(terminate(&mut daemon).success());
}

/// Throughput against moto: `cargo test -p envmgr-tests --test daemon --
/// --ignored --nocapture throughput`. Not part of the suite: a figure, not a
/// pass/fail check.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement; run by hand"]
async fn throughput_against_moto() {
    const MESSAGES: usize = 60;
    let stack = shop("load", Options::default());
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk().await);
    let url = sqs
        .get_queue_url()
        .queue_name(stack.queue_name("api"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(10) {
        let entries = chunk
            .iter()
            .map(|i| {
                let body = example("api-production.json")
                    .replace("\"main\"", &format!("\"load/{i}\""))
                    .replace("\"production\"", "\"preview\"");
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .unwrap()
            })
            .collect();
        sqs.send_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
    }
    let started = std::time::Instant::now();
    let mut daemon = stack.serve();
    eventually(
        "every message handled",
        Duration::from_secs(300),
        || async { stack.runtime.runtimes().len() == MESSAGES },
    )
    .await;
    let elapsed = started.elapsed();
    println!(
        "{MESSAGES} create requests through envmgr serve against moto: {:.1} s, {:.1} messages/s",
        elapsed.as_secs_f64(),
        MESSAGES as f64 / elapsed.as_secs_f64()
    );
    assert!(terminate(&mut daemon).success());
}

async fn segment_down_never_fails_a_message(backend: Backend) {
    let stack = shop(
        "segment",
        Options {
            backend,
            ..Options::default()
        },
    );
    stack.segment.set_down(true);
    let mut daemon = stack.serve();
    send(&stack, "probot", &example("pull-request-opened.json"));
    eventually("the environment created all the same", WAIT, || async {
        stack.runtime.runtimes().len() == 1
            && stack.messages_in(&stack.queue_name("probot")).await == 0
    })
    .await;
    eventually("the lost batch logged", WAIT, || async {
        stack.logs().contains("segment batch dropped")
    })
    .await;
    assert!(stack.segment.events().is_empty());
    assert!(terminate(&mut daemon).success());
}

async fn a_runtime_refusal_is_dead_lettered_with_the_services_reason(backend: Backend) {
    let stack = shop(
        "refused",
        Options {
            backend,
            ..Options::default()
        },
    );
    stack.runtime.reject_next(
        422,
        "entrypoint src/server.ts does not exist at this commit",
    );
    let mut daemon = stack.serve();
    send(&stack, "probot", &example("pull-request-opened.json"));
    let dead = stack.dead_letter("probot", WAIT).await;
    let reason = &dead["envmgr.reason"];
    assert!(
        reason.contains("runtime service answered 422")
            && reason.contains("does not exist at this commit"),
        "the service's reason on the dead letter: {reason}"
    );
    assert_eq!(dead["envmgr.receiveCount"], "1", "dead-lettered at once");
    assert_eq!(dead["envmgr.sourceQueue"], "probot");
    // The record says why, too.
    let items = stack.environment_items().await;
    assert_eq!(items.len(), 3);
    for item in &items {
        assert_eq!(s(item, "status"), "failed");
        assert!(
            s(item, "failureReason").contains("does not exist at this commit"),
            "{item:?}"
        );
    }
    assert!(terminate(&mut daemon).success());
}

async fn a_github_rate_limit_is_retried_not_dead_lettered(backend: Backend) {
    let stack = shop(
        "ratelimit",
        Options {
            backend,
            ..Options::default()
        },
    );
    stack.github.rate_limit_next(1);
    let mut daemon = stack.serve();
    send(&stack, "probot", &example("pull-request-opened.json"));
    eventually("done on the retry", WAIT, || async {
        stack.runtime.runtimes().len() == 1
            && stack.messages_in(&stack.queue_name("probot")).await == 0
    })
    .await;
    assert_eq!(stack.github.comments("acme/shop", 7).len(), 1);
    let dead_letter = format!("{}-dlq", stack.queue_name("probot"));
    assert_eq!(stack.messages_in(&dead_letter).await, 0);
    assert!(stack.logs().contains("Throttled"), "logged as throttled");
    assert!(terminate(&mut daemon).success());
}

envmgr_tests::on_both_backends!(
    both_queues_create_environments_end_to_end,
    runtime_failing_twice_then_succeeding_creates_one_runtime,
    a_permanently_bad_message_is_dead_lettered_with_its_reason,
    sigterm_lets_the_message_in_flight_finish,
    a_trapping_guest_is_retried_then_dead_lettered_by_the_queue,
    kill_9_mid_message_then_restart_completes_it_once,
    sigterm_past_the_grace_period_releases_the_message_at_once,
    a_stale_request_loses_and_a_redelivery_changes_nothing,
    segment_down_never_fails_a_message,
    a_runtime_refusal_is_dead_lettered_with_the_services_reason,
    a_github_rate_limit_is_retried_not_dead_lettered,
);
