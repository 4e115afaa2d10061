//! A daemon stopped mid-message: SIGTERM lets it finish, SIGTERM past the
//! grace period releases it, `kill -9` leaves it for the restart to finish
//! once.

use std::collections::BTreeMap;
use std::time::Duration;

use envmgr_tests::stack::{Backend, Options, eventually, example, terminate};

use crate::helpers::{WAIT, s, send, shop};

pub(crate) async fn sigterm_lets_the_message_in_flight_finish(backend: Backend) {
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

pub(crate) async fn kill_9_mid_message_then_restart_completes_it_once(backend: Backend) {
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
pub(crate) async fn sigterm_past_the_grace_period_releases_the_message_at_once(backend: Backend) {
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
