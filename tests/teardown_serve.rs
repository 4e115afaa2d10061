//! A preview ends when its pull request does, through the real binary on
//! both backends (`serve` with GitHub, the Runtime Service and Segment as
//! the tests' HTTP fakes): every reason a preview ends, in the order GitHub
//! may deliver them, the sweep across two `serve` processes, `envmgr sweep
//! --dry-run` and `--orphans`. The mock host's tests (`tests/teardown.rs`)
//! hold the orderings one delivery at a time.

use std::collections::BTreeMap;
use std::time::Duration;

use envmgr_tests::*;
use serde_json::{Value, json};

/// Whether an item of the stack's environments has `status` `wanted`.
fn has_status<'a>(
    stack: &'a stack::Stack,
    wanted: &'a str,
) -> impl FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + 'a>> {
    move || {
        Box::pin(async move {
            stack
                .environment_items()
                .await
                .iter()
                .any(|i| i.get("status").map(String::as_str) == Some(wanted))
        })
    }
}

/// Through the real binary, on both backends: a pull request opened, its
/// runtime ready, then closed: the Runtime Service deletes the runtime (by
/// environment and version), the deployment goes inactive, the comment
/// says removed, the record is a tombstone with `purgeAt`, and nothing is
/// dead-lettered. A redriven copy of the opened event, older than the
/// close, changes nothing.
async fn closing_a_pull_request_through_serve_removes_the_preview(backend: stack::Backend) {
    let stack = stack::Stack::new(
        "teardown",
        env!("CARGO_BIN_EXE_envmgr-under-test"),
        stack::Options {
            backend,
            ..stack::Options::default()
        },
    );
    stack.seed_shop("postgres://shop@db/shop", "sk_test_teardown");
    stack.runtime_reports(std::time::Duration::from_millis(200), "ready");
    let mut daemon = stack.serve();
    let wait = std::time::Duration::from_secs(60);
    let status = |wanted: &'static str| has_status(&stack, wanted);
    stack.send("probot", &stack::example("pull-request-opened.json"));
    stack::eventually("the environment ready", wait, status("ready")).await;
    stack.send("probot", &stack::example("pull-request-closed.json"));
    stack::eventually("the environment deleted", wait, status("deleted")).await;
    let deletions = stack.runtime.deletions();
    assert_eq!(deletions.len(), 1, "{deletions:?}");
    assert_eq!(deletions[0].2.len(), 1, "the runtime removed");
    assert!(stack.runtime.live().is_empty());
    assert_eq!(deletions[0].1["reason"], "pull-request-closed");
    assert!(
        stack.runtime.refused().is_empty(),
        "{:?}",
        stack.runtime.refused()
    );
    let deployments = stack.github.deployments("acme/shop");
    assert_eq!(deployments[0].state(), Some("inactive"));
    let comment = stack.github.comments("acme/shop", 7);
    assert!(comment[0].contains("🗑️ Removed"), "{}", comment[0]);
    let items = stack.environment_items().await;
    assert!(items.iter().all(|i| i.contains_key("purgeAt")), "{items:?}");
    // A copy of the opened event, older than the close: skipped.
    stack.send("probot", &stack::example("pull-request-opened.json"));
    stack::eventually("the old create handled", wait, || async {
        stack.logs().matches("stale request").count() >= 1
    })
    .await;
    assert_eq!(stack.runtime.requests().len(), 1, "no second create");
    assert!(stack.dead_letters("probot").await.is_empty());
    assert!(stack::terminate(&mut daemon).success());
    if backend == stack::Backend::Aws {
        // `init` turned DynamoDB's TTL on for the tombstones' `purgeAt`.
        let client = aws_sdk_dynamodb::Client::new(&stack.sdk().await);
        let ttl = client
            .describe_time_to_live()
            .table_name(format!("{}-environments", stack.prefix))
            .send()
            .await
            .expect("DescribeTimeToLive");
        let description = ttl.time_to_live_description().expect("a TTL description");
        assert_eq!(
            description.attribute_name(),
            Some("purgeAt"),
            "{description:?}"
        );
    }
}

/// A Runtime Service that does not offer deletes: the close is
/// dead-lettered saying so, the record stays `deleting`; once the service
/// deletes, the sweep (as `serve` sends it, one message per app) finishes
/// what stopped. On both backends, through the binary.
async fn a_delete_the_service_refused_is_finished_by_the_sweep(backend: stack::Backend) {
    let stack = stack::Stack::new(
        "teardown-sweep",
        env!("CARGO_BIN_EXE_envmgr-under-test"),
        stack::Options {
            backend,
            ..stack::Options::default()
        },
    );
    stack.seed_shop("postgres://shop@db/shop", "sk_test_teardown");
    let mut daemon = stack.serve();
    let wait = std::time::Duration::from_secs(60);
    let status = |wanted: &'static str| has_status(&stack, wanted);
    stack.send("probot", &stack::example("pull-request-opened.json"));
    stack::eventually("the runtime requested", wait, status("runtime-requested")).await;
    stack.runtime.deletes_answer(Some(501));
    stack.send("probot", &stack::example("pull-request-closed.json"));
    stack::eventually("the close dead-lettered", wait, || async {
        stack.dead_letters("probot").await.len() == 1
    })
    .await;
    let letters = stack.dead_letters("probot").await;
    let reason = letters[0]
        .1
        .get("envmgr.reason")
        .cloned()
        .unwrap_or_default();
    assert!(reason.contains("does not offer deletes"), "{reason}");
    assert!(status("deleting")().await, "the record says a delete began");
    stack.runtime.deletes_answer(None);
    // `envmgr sweep`, as `serve` does it every period.
    stack.ok(&["sweep"]);
    stack::eventually("the sweep finished the delete", wait, status("deleted")).await;
    assert!(stack.runtime.live().is_empty());
    assert_eq!(
        stack.github.deployments("acme/shop")[0].state(),
        Some("inactive")
    );
    assert!(stack::terminate(&mut daemon).success());
}

const WAIT: Duration = Duration::from_secs(60);

/// The canonical record of the environment on `branch`, if any.
async fn record(stack: &stack::Stack, branch: &str) -> Option<BTreeMap<String, String>> {
    stack.environment_items().await.into_iter().find(|item| {
        item.get("branch").map(String::as_str) == Some(branch)
            && item.get("sk").map(String::as_str) == Some("#")
    })
}

async fn status_of(stack: &stack::Stack, branch: &str) -> Option<String> {
    record(stack, branch)
        .await
        .and_then(|r| r.get("status").cloned())
}

/// Wait until the environment on `branch` is at `wanted`.
async fn until_status(stack: &stack::Stack, branch: &str, wanted: &str) {
    let what = format!("{branch} {wanted}");
    stack::eventually(&what, WAIT, || async {
        status_of(stack, branch).await.as_deref() == Some(wanted)
    })
    .await;
}

/// A pull request's event on `branch`, optionally merged.
fn event(action: &str, number: u64, branch: &str, sha: &str, at: &str, merged: bool) -> String {
    let mut event: Value =
        serde_json::from_str(&pull_request_event(action, number, branch, sha, at))
            .expect("an event");
    event["payload"]["pull_request"]["merged"] = merged.into();
    if action == "closed" {
        event["payload"]["pull_request"]["state"] = "closed".into();
    }
    event.to_string()
}

/// The runtimes created and deleted for the environment on `branch`.
fn runtime_calls(stack: &stack::Stack, branch: &str) -> (usize, usize) {
    let id = envmgr_guest::environment::environment_id(APP_ID, branch);
    let creates = stack
        .runtime
        .requests()
        .iter()
        .filter(|(_, body)| body["environmentId"] == id.as_str())
        .map(|(key, _)| key.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let deletes = stack
        .runtime
        .deletions()
        .iter()
        .filter(|(_, body, _)| body["environmentId"] == id.as_str())
        .count();
    (creates, deletes)
}

/// The request times the scenarios order their events by.
const T1: &str = "2026-11-28T11:00:00Z";
const T2: &str = "2026-11-28T11:30:00Z";
const T3: &str = "2026-11-28T11:45:00Z";
const T4: &str = "2026-11-28T12:00:00Z";

/// Every way a preview ends, through one `serve`: closed then reopened then
/// closed again; merged; its branch deleted; one of two pull requests on
/// one head branch closed (the preview stays, the comment moves); a close
/// delivered before its open, and again (a tombstone, no runtime, nothing
/// twice); production untouched by a branch's deletion. Nothing is
/// dead-lettered.
async fn previews_end_for_every_reason_through_serve(backend: stack::Backend) {
    let stack = stack::Stack::new(
        "teardown-reasons",
        env!("CARGO_BIN_EXE_envmgr-under-test"),
        stack::Options {
            backend,
            ..stack::Options::default()
        },
    );
    stack.seed_shop("postgres://shop@db/shop", "sk_test_teardown");
    for number in 21..=27 {
        stack.github.add_pull_request(REPO, number);
    }
    let mut daemon = stack.serve();
    end_a_preview_closed_reopened_and_closed_again(&stack).await;
    end_a_merged_preview(&stack).await;
    end_a_preview_whose_branch_is_deleted(&stack).await;
    keep_a_preview_two_pull_requests_share(&stack).await;
    tombstone_a_preview_closed_before_opened(&stack).await;
    keep_production_when_main_is_deleted(&stack).await;
    assert!(stack.dead_letters("probot").await.is_empty());
    assert!(stack.dead_letters("api").await.is_empty());
    assert!(
        stack.runtime.refused().is_empty(),
        "{:?}",
        stack.runtime.refused()
    );
    assert!(stack::terminate(&mut daemon).success());
}

/// Closed, reopened, closed: two creates, two deletes, nothing live.
async fn end_a_preview_closed_reopened_and_closed_again(stack: &stack::Stack) {
    stack.send("probot", &event("opened", 21, "again", SHA_1, T1, false));
    until_status(stack, "again", "runtime-requested").await;
    stack.send("probot", &event("closed", 21, "again", SHA_1, T2, false));
    until_status(stack, "again", "deleted").await;
    stack.send("probot", &event("reopened", 21, "again", SHA_1, T3, false));
    until_status(stack, "again", "runtime-requested").await;
    stack.send("probot", &event("closed", 21, "again", SHA_1, T4, false));
    until_status(stack, "again", "deleted").await;
    assert_eq!(runtime_calls(stack, "again"), (2, 2));
    assert!(stack.runtime.live().is_empty());
}

/// Merged: deleted for that reason.
async fn end_a_merged_preview(stack: &stack::Stack) {
    stack.send("probot", &event("opened", 22, "merged", SHA_1, T1, false));
    until_status(stack, "merged", "runtime-requested").await;
    stack.send("probot", &event("closed", 22, "merged", SHA_1, T2, true));
    until_status(stack, "merged", "deleted").await;
    let merged = record(stack, "merged").await.unwrap();
    assert_eq!(merged["deleteReason"], "pull-request-merged");
}

/// The branch deleted: the preview deleted for that reason.
async fn end_a_preview_whose_branch_is_deleted(stack: &stack::Stack) {
    stack.send("probot", &event("opened", 23, "gone", SHA_1, T1, false));
    until_status(stack, "gone", "runtime-requested").await;
    stack.send("probot", &branch_deleted_event("gone"));
    until_status(stack, "gone", "deleted").await;
    assert_eq!(
        record(stack, "gone").await.unwrap()["deleteReason"],
        "branch-deleted"
    );
}

/// Two pull requests on one head branch; one closes: the preview stays,
/// the comment moves.
async fn keep_a_preview_two_pull_requests_share(stack: &stack::Stack) {
    for number in [24, 25] {
        stack
            .github
            .open_pull_request(REPO, number, "acme:shared", SHA_1);
        stack.send(
            "probot",
            &event("opened", number, "shared", SHA_1, T1, false),
        );
    }
    until_status(stack, "shared", "runtime-requested").await;
    stack.github.close_pull_request(REPO, 24);
    stack.send("probot", &event("closed", 24, "shared", SHA_1, T2, false));
    stack::eventually("the comment moved to #25", WAIT, || async {
        stack
            .github
            .comments(REPO, 24)
            .iter()
            .any(|c| c.contains("#25"))
    })
    .await;
    assert_eq!(
        status_of(stack, "shared").await.as_deref(),
        Some("runtime-requested")
    );
    assert_eq!(
        runtime_calls(stack, "shared").1,
        0,
        "the shared preview stays"
    );
}

/// A close before its open, and the close again: a tombstone, no
/// runtime, nothing twice.
async fn tombstone_a_preview_closed_before_opened(stack: &stack::Stack) {
    stack.send("probot", &event("closed", 26, "late", SHA_1, T2, false));
    until_status(stack, "late", "deleted").await;
    stack.send("probot", &event("opened", 26, "late", SHA_1, T1, false));
    stack.send("probot", &event("closed", 26, "late", SHA_1, T2, false));
    stack::eventually(
        "the late open and the second close handled",
        WAIT,
        || async {
            let logs = stack.logs();
            logs.contains("stale request") && logs.contains("deleted already")
        },
    )
    .await;
    assert_eq!(status_of(stack, "late").await.as_deref(), Some("deleted"));
    assert_eq!(
        runtime_calls(stack, "late").0,
        0,
        "the older open never ran"
    );
}

/// Production, through the platform API; a deleted `main` branch on
/// GitHub leaves it.
async fn keep_production_when_main_is_deleted(stack: &stack::Stack) {
    let production = json!({
        "version": 1, "kind": "create-environment", "appId": APP_ID,
        "environmentType": "production", "repository": REPO, "branch": "main",
        "sha": SHA_2, "installationId": INSTALLATION, "requester": "user_123",
        "requestedAt": T1,
    });
    stack.send("api", &production.to_string());
    until_status(stack, "main", "runtime-requested").await;
    stack.send("probot", &branch_deleted_event("main"));
    stack::eventually("the branch deletion handled", WAIT, || async {
        stack
            .logs()
            .contains("is deleted only through the platform API")
    })
    .await;
    assert_eq!(
        status_of(stack, "main").await.as_deref(),
        Some("runtime-requested")
    );
    assert_eq!(runtime_calls(stack, "main"), (1, 0));
}

/// The sweep, through the binary: `sweep --dry-run` names the idle previews
/// and changes nothing; two `serve` processes sweeping every second end
/// each idle preview once (one delete each at the Runtime Service) and
/// leave the fresh one; a Runtime Service that lost those deletes leaves
/// orphans, which `sweep --orphans` lists and `--yes` removes.
async fn the_sweep_ends_idle_previews_once_across_two_serves(backend: stack::Backend) {
    let stack = stack::Stack::new(
        "teardown-sweep2",
        env!("CARGO_BIN_EXE_envmgr-under-test"),
        stack::Options {
            backend,
            extra_config: "[previews]\nmax_idle_days = 1\nsweep_every_seconds = 0\n".into(),
            ..stack::Options::default()
        },
    );
    stack.seed_shop("postgres://shop@db/shop", "sk_test_teardown");
    let old = "2026-11-28T11:00:00Z";
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("now as RFC 3339");
    for (number, branch, at) in [
        (31, "idle-a", old),
        (32, "idle-b", old),
        (33, "fresh", &now),
    ] {
        stack
            .github
            .open_pull_request(REPO, number, &format!("acme:{branch}"), SHA_1);
        stack.send("probot", &event("opened", number, branch, SHA_1, at, false));
    }
    let mut first = stack.serve();
    for branch in ["idle-a", "idle-b", "fresh"] {
        until_status(&stack, branch, "runtime-requested").await;
    }
    assert!(stack::terminate(&mut first).success());
    let dry = String::from_utf8_lossy(&stack.ok(&["sweep", "--dry-run"]).stdout).to_string();
    assert_eq!(dry.matches("would send to api").count(), 2, "{dry}");
    assert!(
        dry.contains("idle-a") && dry.contains("idle-b") && !dry.contains("fresh"),
        "{dry}"
    );
    assert!(dry.contains("nothing was sent"), "{dry}");
    assert_eq!(
        status_of(&stack, "idle-a").await.as_deref(),
        Some("runtime-requested")
    );
    stack.runtime.lose_deletes(true);
    let every_second = [("ENVMGR__PREVIEWS__SWEEP_EVERY_SECONDS", "1")];
    let (mut one, _) = stack.serve_with(&every_second);
    let (mut two, _) = stack.serve_with(&every_second);
    until_status(&stack, "idle-a", "deleted").await;
    until_status(&stack, "idle-b", "deleted").await;
    // More sweeps pass; none ends anything twice.
    stack::eventually("three more sweeps", WAIT, || async {
        stack.logs().matches("sweep sent").count() >= 4
    })
    .await;
    assert!(stack::terminate(&mut one).success());
    assert!(stack::terminate(&mut two).success());
    assert_eq!(runtime_calls(&stack, "idle-a").1, 1);
    assert_eq!(runtime_calls(&stack, "idle-b").1, 1);
    assert_eq!(
        status_of(&stack, "fresh").await.as_deref(),
        Some("runtime-requested")
    );
    assert!(stack.dead_letters("api").await.is_empty());
    // The service kept both runtimes: orphans.
    assert_eq!(stack.runtime.live().len(), 3);
    let listed = String::from_utf8_lossy(&stack.ok(&["sweep", "--orphans"]).stdout).to_string();
    assert!(
        listed.contains("2 orphaned runtime(s); --yes deletes them"),
        "{listed}"
    );
    assert_eq!(
        listed.matches("environment deleted at").count(),
        2,
        "{listed}"
    );
    assert_eq!(stack.runtime.live().len(), 3, "listing deletes nothing");
    stack.runtime.lose_deletes(false);
    let removed =
        String::from_utf8_lossy(&stack.ok(&["sweep", "--orphans", "--yes"]).stdout).to_string();
    assert!(
        removed.contains("2 orphaned runtime(s) deleted"),
        "{removed}"
    );
    assert_eq!(
        stack.runtime.live().len(),
        1,
        "the fresh preview's runtime stays"
    );
    let again = String::from_utf8_lossy(&stack.ok(&["sweep", "--orphans"]).stdout).to_string();
    assert!(again.contains("no orphaned runtimes"), "{again}");
}

/// Send `signal` (`STOP`, `CONT`) to a `serve`.
fn signal(child: &std::process::Child, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
}

/// A delete while the runtime's create is still on the wire from another
/// host: host A's create reaches the Runtime Service and waits there; A is
/// paused (its lease runs out); host B takes the close and deletes — by
/// environment and version, moving the service's fence. The create the
/// service then answers is older than the delete: refused (409), never a
/// runtime. A, resumed, brings nothing back.
async fn a_delete_while_a_create_is_on_the_wire_from_another_host_wins(backend: stack::Backend) {
    let stack = stack::Stack::new(
        "teardown-wire",
        env!("CARGO_BIN_EXE_envmgr-under-test"),
        stack::Options {
            backend,
            ..stack::Options::default()
        },
    );
    stack.seed_shop("postgres://shop@db/shop", "sk_test_teardown");
    stack.runtime.hold();
    let mut a = stack.serve();
    stack.send("probot", &stack::example("pull-request-opened.json"));
    stack::eventually("A's create at the service", WAIT, || async {
        stack.runtime.most_in_flight() >= 1
    })
    .await;
    signal(&a, "STOP");
    let mut b = stack.serve();
    stack.send("probot", &stack::example("pull-request-closed.json"));
    until_status(&stack, "feature/login", "deleted").await;
    stack.runtime.release();
    stack::eventually("the create older than the delete refused", WAIT, || async {
        !stack.runtime.superseded().is_empty()
    })
    .await;
    signal(&a, "CONT");
    // Whatever A's delivery makes of the refusal, the preview stays gone.
    stack::eventually("the opened event settled", WAIT, || async {
        stack.logs().contains("stale request")
    })
    .await;
    assert!(
        stack.runtime.live().is_empty(),
        "{:?}",
        stack.runtime.live()
    );
    assert_eq!(
        status_of(&stack, "feature/login").await.as_deref(),
        Some("deleted")
    );
    assert!(stack.dead_letters("probot").await.is_empty());
    assert!(stack::terminate(&mut a).success());
    assert!(stack::terminate(&mut b).success());
}

/// The runtime's status report, signed and sent by the Runtime Service
/// after the preview was deleted: ignored (the record holds the newer
/// delete), the comment still says removed.
async fn a_report_after_the_delete_is_ignored(backend: stack::Backend) {
    let stack = stack::Stack::new(
        "teardown-report",
        env!("CARGO_BIN_EXE_envmgr-under-test"),
        stack::Options {
            backend,
            ..stack::Options::default()
        },
    );
    stack.seed_shop("postgres://shop@db/shop", "sk_test_teardown");
    stack.runtime_reports(Duration::from_secs(3), "ready");
    let mut daemon = stack.serve();
    stack.send("probot", &stack::example("pull-request-opened.json"));
    until_status(&stack, "feature/login", "runtime-requested").await;
    stack.send("probot", &stack::example("pull-request-closed.json"));
    until_status(&stack, "feature/login", "deleted").await;
    stack::eventually("the late report handled", WAIT, || async {
        stack.logs().contains("which holds newer request")
    })
    .await;
    assert_eq!(
        status_of(&stack, "feature/login").await.as_deref(),
        Some("deleted")
    );
    let comment = stack.github.comments(REPO, 7);
    assert!(comment[0].contains("🗑️ Removed"), "{}", comment[0]);
    assert!(stack.dead_letters("api").await.is_empty());
    assert!(stack::terminate(&mut daemon).success());
}

/// A host serving a logic version from before teardown (contract 0.3.0,
/// which would dead-letter a `sweep` message) sends no sweep, and says so.
async fn no_sweep_is_sent_while_the_logic_does_not_sweep(backend: stack::Backend) {
    let stack = stack::Stack::new(
        "teardown-nosweep",
        env!("CARGO_BIN_EXE_envmgr-under-test"),
        stack::Options {
            backend,
            logic: Some(EARLIER_PATCH_LOGIC),
            ..stack::Options::default()
        },
    );
    stack.seed_shop("postgres://shop@db/shop", "sk_test_teardown");
    let (mut daemon, _) = stack.serve_with(&[("ENVMGR__PREVIEWS__SWEEP_EVERY_SECONDS", "1")]);
    stack::eventually("the sweep skipped twice", WAIT, || async {
        stack
            .logs()
            .matches("the active logic version does not sweep")
            .count()
            >= 2
    })
    .await;
    assert!(!stack.logs().contains("sweep sent"));
    assert!(stack::terminate(&mut daemon).success());
    assert!(stack.dead_letters("api").await.is_empty());
}

envmgr_tests::on_both_backends!(
    closing_a_pull_request_through_serve_removes_the_preview,
    a_delete_the_service_refused_is_finished_by_the_sweep,
    previews_end_for_every_reason_through_serve,
    the_sweep_ends_idle_previews_once_across_two_serves,
    a_delete_while_a_create_is_on_the_wire_from_another_host_wins,
    no_sweep_is_sent_while_the_logic_does_not_sweep,
    a_report_after_the_delete_is_ignored,
);
