//! `envmgr serve` end to end: the real binary with fake GitHub, Segment and
//! Runtime servers, all on 127.0.0.1, and its queues, tables and KMS key on
//! each backend — moto (SQS, DynamoDB, KMS) and the local database file.
//! Every scenario runs on both (`aws::` and `local::` at the bottom).

use std::collections::BTreeMap;
use std::time::Duration;

use envmgr_tests::stack::{Backend, Options, Stack, eventually, example, terminate};

const BINARY: &str = env!("CARGO_BIN_EXE_envmgr-under-test");
const WAIT: Duration = Duration::from_secs(60);

const DATABASE_URL: &str = "postgres://shop:s3cr3t-hunter2@db.internal/shop";
const STRIPE_KEY: &str = "sk_test_51HxQ2bGvTnV8sTuvWxYz";

/// A stack with the Shop app (acme/shop, as in docs/examples) and secrets.
fn shop(name: &str, options: Options) -> Stack {
    let stack = Stack::new(name, BINARY, options);
    stack.seed_shop(DATABASE_URL, STRIPE_KEY);
    stack
}

fn send(stack: &Stack, queue: &str, body: &str) {
    stack.send(queue, body);
}

fn s<'a>(item: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    item.get(name).map(String::as_str).unwrap_or("")
}

async fn both_queues_create_environments_end_to_end(backend: Backend) {
    let stack = shop(
        "e2e",
        Options {
            backend,
            ..Options::default()
        },
    );
    // init is idempotent: a second run finds everything in place.
    let again = String::from_utf8(stack.ok(&["init"]).stdout).unwrap();
    match backend {
        Backend::Aws => assert!(
            again.contains("exists") && !again.contains("created"),
            "{again}"
        ),
        Backend::Local => assert!(again.contains("ready"), "{again}"),
    }
    let mut daemon = stack.serve();
    send(&stack, "probot", &example("pull-request-opened.json"));
    send(&stack, "api", &example("api-production.json"));

    eventually("two runtimes", WAIT, || async {
        stack.runtime.runtimes().len() == 2
    })
    .await;
    eventually("six records marked runtime-requested", WAIT, || async {
        let items = stack.environment_items().await;
        items.len() == 6 && items.iter().all(|i| s(i, "status") == "runtime-requested")
    })
    .await;
    eventually("the analytics batch", WAIT, || async {
        stack.segment.events().len() >= 2
    })
    .await;
    eventually("both GitHub deployments in progress", WAIT, || async {
        let deployments = stack.github.deployments("acme/shop");
        deployments.len() == 2 && deployments.iter().all(|d| d.state() == Some("in_progress"))
    })
    .await;

    // Only the fake runtime saw plaintext: the decrypted secrets and a real
    // installation token minted by the fake GitHub after a verified JWT.
    let requests = stack.runtime.requests();
    let preview = requests
        .iter()
        .map(|(_, body)| body)
        .find(|b| b["environmentType"] == "preview")
        .expect("a preview runtime");
    assert_eq!(preview["secrets"]["DATABASE_URL"], DATABASE_URL);
    assert_eq!(preview["secrets"]["STRIPE_KEY"], STRIPE_KEY);
    assert_eq!(preview["branch"], "feature/login");
    let token = preview["installationToken"].as_str().unwrap().to_string();
    assert!(stack.github.tokens().contains(&token));
    let production = requests
        .iter()
        .map(|(_, body)| body)
        .find(|b| b["environmentType"] == "production")
        .expect("a production runtime");
    assert!(
        production["secrets"].get("STRIPE_KEY").is_none(),
        "preview secret kept out of production"
    );
    assert!(stack.github.jwt_checks() > 0);
    assert!(
        stack.github.rejected().is_empty(),
        "{:?}",
        stack.github.rejected()
    );
    // The installation's own token was minted once and kept; the runtime's
    // for the one repository with contents: read only, per runtime; every
    // request named the API version.
    let mints = stack.github.mints();
    assert_eq!(
        mints.iter().filter(|m| m.repositories.is_none()).count(),
        1,
        "{mints:?}"
    );
    let runtime_mints: Vec<_> = mints.iter().filter(|m| m.repositories.is_some()).collect();
    assert_eq!(
        runtime_mints.len(),
        2,
        "one per runtime: preview and production"
    );
    for mint in runtime_mints {
        assert_eq!(
            mint.repositories.as_deref(),
            Some(&["shop".to_string()][..])
        );
        let permissions: Vec<(&str, &str)> = mint
            .permissions
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(permissions, [("contents", "read")]);
    }
    assert!(
        stack
            .github
            .requests()
            .iter()
            .all(|r| r.api_version.as_deref() == Some("2022-11-28"))
    );
    // The other fakes judged every request as their services would.
    assert!(
        stack.runtime.refused().is_empty(),
        "{:?}",
        stack.runtime.refused()
    );
    assert!(
        stack.segment.refused().is_empty(),
        "{:?}",
        stack.segment.refused()
    );
    assert!(
        stack.segment.dropped().is_empty(),
        "{:?}",
        stack.segment.dropped()
    );

    let comments = stack.github.comments("acme/shop", 7);
    assert_eq!(comments.len(), 1);
    assert!(comments[0].contains("<!-- envmgr:comment app=app_shop -->"));

    // One GitHub deployment per environment, at its commit, in progress at
    // the URL the runtime answered: the pull request's "View deployment".
    let deployments = stack.github.deployments("acme/shop");
    let deployed = |environment: &str| {
        let matching: Vec<_> = deployments
            .iter()
            .filter(|d| d.deployment["environment"] == environment)
            .collect();
        assert_eq!(matching.len(), 1, "one deployment to {environment}");
        matching[0].clone()
    };
    for (deployment, runtime, sha, transient) in [
        (
            deployed("preview/feature/login"),
            preview,
            "3f786850e387550fdab836ed7e6dc881de23001b",
            true,
        ),
        (
            deployed("production"),
            production,
            "9c1e0e5d3f0b4b1c8a7e6d5c4b3a291807f6e5d4",
            false,
        ),
    ] {
        let d = &deployment.deployment;
        assert_eq!(d["sha"], sha);
        assert_eq!(d["task"], "deploy:envmgr");
        assert_eq!(d["transient_environment"], transient);
        assert_eq!(d["production_environment"], !transient);
        assert_eq!(d["payload"]["environmentId"], runtime["environmentId"]);
        assert_eq!(deployment.statuses.len(), 1, "{:?}", deployment.statuses);
        let status = &deployment.statuses[0];
        assert_eq!(status["state"], "in_progress");
        let url = format!(
            "https://{}.runtime.test",
            runtime["environmentId"].as_str().unwrap()
        );
        assert_eq!(status["environment_url"], url.as_str());
    }
    let preview_status = &deployed("preview/feature/login").statuses[0];
    let log_url = preview_status["log_url"].as_str().unwrap();
    assert!(
        log_url.starts_with("https://github.com/acme/shop/pull/7#issuecomment-"),
        "the comment: {log_url}"
    );

    let events = stack.segment.events();
    assert!(
        events
            .iter()
            .all(|e| e["event"] == "cloud_environment_created")
    );
    assert!(
        events
            .iter()
            .any(|e| e["properties"]["type"] == "production")
    );

    assert_eq!(stack.messages_in(&stack.queue_name("probot")).await, 0);
    assert_eq!(stack.messages_in(&stack.queue_name("api")).await, 0);

    let status = terminate(&mut daemon);
    assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
    let logs = stack.logs();
    for secret in [DATABASE_URL, STRIPE_KEY, &token] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
    for comment in comments {
        assert!(!comment.contains(DATABASE_URL) && !comment.contains(&token));
    }
}

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

async fn sigterm_lets_the_message_in_flight_finish(backend: Backend) {
    let stack = shop(
        "drain",
        Options {
            backend,
            ..Options::default()
        },
    );
    stack.runtime.delay(Duration::from_secs(3));
    let mut daemon = stack.serve();
    send(&stack, "probot", &example("pull-request-opened.json"));
    eventually("the runtime call under way", WAIT, || async {
        !stack.runtime.requests().is_empty()
    })
    .await;
    let status = terminate(&mut daemon);
    assert!(status.success(), "{status:?}");
    assert_eq!(stack.runtime.runtimes().len(), 1, "the call finished");
    assert_eq!(
        stack.messages_in(&stack.queue_name("probot")).await,
        0,
        "and was deleted"
    );
    assert!(stack.logs().contains("drained"));
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

async fn kill_9_mid_message_then_restart_completes_it_once(backend: Backend) {
    let stack = shop(
        "crash",
        Options {
            backend,
            ..Options::default()
        },
    );
    // Both messages are killed at the runtime call: their records written,
    // their comment and deployments made, their leases held.
    stack.runtime.hold();
    let mut daemon = stack.serve();
    send(&stack, "probot", &example("pull-request-opened.json"));
    send(&stack, "api", &example("api-production.json"));
    eventually("both runtime calls under way", WAIT, || async {
        let requests = stack.runtime.requests();
        let environments: std::collections::BTreeSet<_> = requests
            .iter()
            .map(|(_, b)| b["environmentId"].to_string())
            .collect();
        environments.len() == 2
    })
    .await;
    daemon.kill().expect("kill -9");
    daemon.wait().unwrap();
    stack.runtime.release();

    let mut restarted = stack.serve();
    // moto's queue counts can read 0 for a moment while the message is in
    // flight: wait for the runtimes as well.
    eventually("both done after their leases ran out", WAIT, || async {
        stack.runtime.runtimes().len() == 2
            && stack.messages_in(&stack.queue_name("probot")).await == 0
            && stack.messages_in(&stack.queue_name("api")).await == 0
    })
    .await;
    assert!(terminate(&mut restarted).success());

    // Each environment asked for one runtime, under one key, however
    // often it was sent.
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, body) in stack.runtime.requests() {
        let environment = body["environmentId"].as_str().unwrap().to_string();
        keys.entry(environment).or_default().push(key);
    }
    assert_eq!(keys.len(), 2, "{keys:?}");
    for sent in keys.values() {
        assert!(sent.iter().all(|k| *k == sent[0]), "{keys:?}");
    }
    let runtimes = stack.runtime.runtimes();
    // Every record item at its runtime, every lease released.
    let table = stack.environment_table().await;
    let records: Vec<_> = table
        .iter()
        .filter(|i| s(i, "entity") == "environment")
        .collect();
    assert_eq!(records.len(), 6, "three items per environment");
    for item in &records {
        assert_eq!(s(item, "status"), "runtime-requested", "{item:?}");
        let key = &keys[s(item, "environmentId")][0];
        assert_eq!(s(item, "runtimeId"), runtimes[key], "{item:?}");
    }
    let leases: Vec<_> = table.iter().filter(|i| s(i, "entity") == "lease").collect();
    assert_eq!(leases.len(), 2);
    for lease in leases {
        assert_eq!(
            (s(lease, "holder"), s(lease, "expiresAt")),
            ("", "0"),
            "{lease:?}"
        );
    }
    // One comment, one deployment per environment, in progress once at
    // its runtime's URL.
    assert_eq!(stack.github.comments("acme/shop", 7).len(), 1);
    let deployments = stack.github.deployments("acme/shop");
    assert_eq!(deployments.len(), 2);
    for deployment in &deployments {
        let states: Vec<_> = deployment
            .statuses
            .iter()
            .map(|s| s["state"].clone())
            .collect();
        assert_eq!(states, ["in_progress"], "{deployment:?}");
        let environment = deployment.deployment["payload"]["environmentId"]
            .as_str()
            .unwrap();
        assert_eq!(
            deployment.statuses[0]["environment_url"],
            format!("https://{environment}.runtime.test").as_str()
        );
    }
    for queue in ["probot", "api"] {
        assert!(stack.dead_letters(queue).await.is_empty(), "{queue}");
    }
    assert!(
        stack.runtime.refused().is_empty(),
        "{:?}",
        stack.runtime.refused()
    );
    assert!(
        stack.github.rejected().is_empty(),
        "{:?}",
        stack.github.rejected()
    );
}

/// Past `[shutdown] grace_seconds` the message in flight is aborted and
/// made visible at once (visibility 0), and the log does not claim a drain.
async fn sigterm_past_the_grace_period_releases_the_message_at_once(backend: Backend) {
    let stack = shop(
        "abort",
        Options {
            backend,
            grace_seconds: 1,
            // Without the release it would stay hidden this long.
            visibility_seconds: 60,
            // Only the grace period ends the held call.
            deadline_seconds: 30,
            env: vec![("ENVMGR__RUNTIME__TIMEOUT_MS".into(), "30000".into())],
            ..Options::default()
        },
    );
    stack.runtime.hold();
    let mut daemon = stack.serve();
    send(&stack, "probot", &example("pull-request-opened.json"));
    eventually("the runtime call under way", WAIT, || async {
        stack.runtime.requests().len() == 1
    })
    .await;
    let status = terminate(&mut daemon);
    assert!(status.success(), "{status:?}");
    assert_eq!(
        stack.depths(&stack.queue_name("probot")).await,
        (1, 0),
        "visible again at once"
    );
    stack.runtime.release();
    let logs = stack.logs();
    assert!(logs.contains("released unfinished message"), "{logs}");
    assert!(
        logs.contains(
            "grace period over: unfinished messages aborted and released; bye released=1"
        ),
        "{logs}"
    );
    assert!(!logs.contains("drained"), "{logs}");
    assert!(stack.runtime.runtimes().is_empty());
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
