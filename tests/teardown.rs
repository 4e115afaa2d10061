//! A preview ends when its pull request does (docs/data-model.md, "The end
//! of an environment"): closed or merged, its branch deleted, the platform
//! API's delete, idle expiry. In the mock host: the order a delete takes
//! among creates, what it leaves (a tombstone, an inactive deployment, a
//! comment saying why), and what it never touches.

#[path = "teardown/helpers.rs"]
mod helpers;

use envmgr::mock::MockHost;
use envmgr_tests::*;
use serde_json::json;

use helpers::{
    BRANCH, CLOSED_AT, OPENED_AT, REOPENED_AT, canonical, deleted_events, deliver, done, env_id,
    github_open, has_number, host, lease_item, open, push_deleted, shop, skipped, sweep,
};

#[tokio::test]
async fn closing_a_pull_request_removes_the_preview_everywhere_once() {
    let host = host();
    open(&host).await;
    assert_eq!(host.runtime.live().unwrap().len(), 1);
    let closed = pull_request_event("closed", 7, BRANCH, SHA_1, CLOSED_AT);
    let removed = done(&deliver(&host, "probot", &closed).await);
    assert!(
        removed.contains("deleted (pull-request-closed)"),
        "{removed}"
    );
    let runtime = host.runtime.runtimes().unwrap()[0].runtime_id.clone();
    assert!(
        removed.contains(&format!("runtimes removed: {runtime}")),
        "{removed}"
    );
    // The runtime is gone, the deployment inactive, the comment says why.
    assert!(host.runtime.live().unwrap().is_empty());
    let deployments = host.github.deployments(REPO).unwrap();
    assert_eq!(deployments.len(), 1);
    assert_eq!(
        deployments[0].state(),
        Some(envmgr::capabilities::github::DeploymentState::Inactive)
    );
    let comments = host.github.comments(REPO, 7).unwrap();
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0].body.contains("🗑️ Removed"),
        "{}",
        comments[0].body
    );
    assert!(comments[0].body.contains("the pull request was closed"));
    assert!(comments[0].body.contains("Reopen the pull request"));
    assert_eq!(deleted_events(&host), 1);
    // A tombstone: deleted at the delete's version, expiring by `purgeAt`
    // (seconds), the signing key dropped; the lease item expires with it.
    let record = canonical(&host, BRANCH);
    assert_eq!(attr(&record, "status"), Some("deleted"));
    assert_eq!(
        attr(&record, "requestVersion"),
        Some(format!("1795865400000#{SHA_1}#delete").as_str())
    );
    assert_eq!(attr(&record, "deleteReason"), Some("pull-request-closed"));
    assert!(has_number(&record, "purgeAt"));
    assert!(
        !has_number(&lease_item(&host, BRANCH), "expiresAt")
            || has_number(&lease_item(&host, BRANCH), "purgeAt")
    );
    let purge_at: u64 = record
        .iter()
        .find_map(|(n, v)| match v {
            envmgr::capabilities::dynamodb::AttributeValue::N(s) if n == "purgeAt" => {
                s.parse().ok()
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(purge_at, host.clock.now_ms() / 1_000 + 30 * 86_400);
    assert!(
        records(&host)
            .iter()
            .all(|i| attr(i, "status") == Some("deleted"))
    );
    // Again (a redelivery, a duplicate): nothing twice.
    let again = skipped(&deliver(&host, "probot", &closed).await);
    assert!(again.contains("deleted already"), "{again}");
    assert_eq!(deleted_events(&host), 1);
    assert_eq!(host.github.comments(REPO, 7).unwrap().len(), 1);
}

#[tokio::test]
async fn a_merged_pull_request_says_merged_and_offers_no_way_back() {
    let host = host();
    open(&host).await;
    let mut merged: serde_json::Value =
        serde_json::from_str(&pull_request_event("closed", 7, BRANCH, SHA_1, CLOSED_AT)).unwrap();
    merged["payload"]["pull_request"]["merged"] = json!(true);
    done(&deliver(&host, "probot", &merged.to_string()).await);
    assert_eq!(
        attr(&canonical(&host, BRANCH), "deleteReason"),
        Some("pull-request-merged")
    );
    let body = &host.github.comments(REPO, 7).unwrap()[0].body;
    assert!(
        body.contains("the pull request was merged") && !body.contains("Reopen"),
        "{body}"
    );
}

#[tokio::test]
async fn a_reopen_is_newer_than_the_close_and_brings_the_preview_back() {
    let host = host();
    open(&host).await;
    done(
        &deliver(
            &host,
            "probot",
            &pull_request_event("closed", 7, BRANCH, SHA_1, CLOSED_AT),
        )
        .await,
    );
    let reopened = done(
        &deliver(
            &host,
            "probot",
            &pull_request_event("reopened", 7, BRANCH, SHA_1, REOPENED_AT),
        )
        .await,
    );
    assert!(reopened.contains("runtime"), "{reopened}");
    assert_eq!(host.runtime.calls().len(), 2, "a runtime created anew");
    assert_eq!(host.runtime.live().unwrap().len(), 1);
    let record = canonical(&host, BRANCH);
    assert_eq!(attr(&record, "status"), Some("runtime-requested"));
    assert!(
        !has_number(&record, "purgeAt"),
        "the record no longer expires"
    );
    assert!(
        !has_number(&lease_item(&host, BRANCH), "purgeAt"),
        "nor does its lease"
    );
    // One comment, saying it deploys again.
    let comments = host.github.comments(REPO, 7).unwrap();
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0].body.contains("Deploying"),
        "{}",
        comments[0].body
    );
}

#[tokio::test]
async fn an_older_create_after_the_delete_changes_nothing() {
    let host = host();
    let opened = pull_request_event("opened", 7, BRANCH, SHA_1, OPENED_AT);
    done(&deliver(&host, "probot", &opened).await);
    done(
        &deliver(
            &host,
            "probot",
            &pull_request_event("closed", 7, BRANCH, SHA_1, CLOSED_AT),
        )
        .await,
    );
    // A redriven dead letter of the opened event, days later.
    let stale = skipped(&deliver(&host, "probot", &opened).await);
    assert!(stale.starts_with("stale request"), "{stale}");
    assert_eq!(host.runtime.calls().len(), 1);
    assert_eq!(attr(&canonical(&host, BRANCH), "status"), Some("deleted"));
}

#[tokio::test]
async fn a_close_that_comes_before_its_open_leaves_a_tombstone_the_open_cannot_pass() {
    let host = host();
    let closed = done(
        &deliver(
            &host,
            "probot",
            &pull_request_event("closed", 7, BRANCH, SHA_1, CLOSED_AT),
        )
        .await,
    );
    assert!(closed.contains("tombstone"), "{closed}");
    let stale = skipped(
        &deliver(
            &host,
            "probot",
            &pull_request_event("opened", 7, BRANCH, SHA_1, OPENED_AT),
        )
        .await,
    );
    assert!(stale.starts_with("stale request"), "{stale}");
    assert!(host.runtime.calls().is_empty());
    assert!(host.github.comments(REPO, 7).unwrap().is_empty());
}

#[tokio::test]
async fn another_open_pull_request_on_the_branch_keeps_the_preview_and_takes_the_comment() {
    let host = host();
    open(&host).await;
    let (repo, head) = (shop(), format!("acme:{BRANCH}"));
    for number in [7, 9] {
        let opened = host.github.open_pull_request(&repo, number, &head, SHA_1);
        opened.await.unwrap();
    }
    host.github.close_pull_request(&repo, 7).await.unwrap();
    let kept = done(
        &deliver(
            &host,
            "probot",
            &pull_request_event("closed", 7, BRANCH, SHA_1, CLOSED_AT),
        )
        .await,
    );
    assert!(kept.contains("stays") && kept.contains("#9"), "{kept}");
    assert_eq!(host.runtime.live().unwrap().len(), 1, "the runtime stays");
    assert_eq!(attr(&canonical(&host, BRANCH), "pullRequest"), Some("9"));
    assert!(
        host.github.comments(REPO, 7).unwrap()[0]
            .body
            .contains("Moved to #9")
    );
    let moved = host.github.comments(REPO, 9).unwrap();
    assert_eq!(moved.len(), 1);
    assert!(moved[0].body.contains("Deploying"), "{}", moved[0].body);
    assert_eq!(deleted_events(&host), 0);
}

#[tokio::test]
async fn a_deleted_branch_removes_its_preview_once_for_both_of_githubs_events() {
    let host = host();
    open(&host).await;
    let removed = done(&deliver(&host, "probot", &branch_deleted_event(BRANCH)).await);
    assert!(removed.contains("branch-deleted"), "{removed}");
    let version = format!("1795863600000#{SHA_1}#delete");
    assert_eq!(
        attr(&canonical(&host, BRANCH), "requestVersion"),
        Some(version.as_str())
    );
    // GitHub's push for the same deletion asks for the same delete.
    let again = skipped(&deliver(&host, "probot", &push_deleted(BRANCH, SHA_1)).await);
    assert!(again.contains("deleted already"), "{again}");
    assert_eq!(deleted_events(&host), 1);
}

#[tokio::test]
async fn a_branch_deletion_never_outranks_a_request_made_after_it() {
    let host = host();
    open(&host).await;
    // Sent before the environment's request was made (it reached envmgr late).
    let mut late = host.message("probot", &branch_deleted_event(BRANCH));
    late.sent_at_ms = 1_795_863_600_000 - 60_000;
    let why = skipped(&host.deliver(&late).await);
    assert!(why.contains("made after the branch was deleted"), "{why}");
    // A push deletion of another commit than the one deployed.
    let why = skipped(&deliver(&host, "probot", &push_deleted(BRANCH, SHA_2)).await);
    assert!(why.contains("not the deleted branch's last"), "{why}");
    assert_eq!(host.runtime.live().unwrap().len(), 1);
}

#[tokio::test]
async fn production_is_deleted_only_through_the_platform_api() {
    let host = host();
    done(
        &deliver(
            &host,
            "api",
            &api_request("production", "main", SHA_1, OPENED_AT),
        )
        .await,
    );
    let why = skipped(&deliver(&host, "probot", &branch_deleted_event("main")).await);
    assert!(why.contains("production"), "{why}");
    let delete = json!({
        "version": 1, "kind": "delete-environment", "appId": APP_ID,
        "environmentType": "production", "branch": "main", "requester": "user_123",
        "requestedAt": CLOSED_AT,
    });
    let removed = done(&deliver(&host, "api", &delete.to_string()).await);
    assert!(
        removed.contains("production main") && removed.contains("(api)"),
        "{removed}"
    );
    assert!(host.runtime.live().unwrap().is_empty());
}

#[tokio::test]
async fn an_idle_preview_is_swept_and_a_fresh_one_is_left() {
    let host = host();
    open(&host).await;
    host.clock
        .advance(std::time::Duration::from_secs(13 * 86_400));
    let fresh_at = "2026-12-11T09:00:00Z";
    done(
        &deliver(
            &host,
            "probot",
            &pull_request_event("opened", 8, "fresh", SHA_2, fresh_at),
        )
        .await,
    );
    host.clock
        .advance(std::time::Duration::from_secs(2 * 86_400));
    // Pull request 8 is open on GitHub; 7 was never closed, only idle.
    github_open(&host, 7, &format!("acme:{BRANCH}"), SHA_1).await;
    github_open(&host, 8, "acme:fresh", SHA_2).await;
    let (swept, sent) = sweep(&host).await;
    assert!(
        swept.contains("1 delete(s) sent to api: feature/login (idle)"),
        "{swept}"
    );
    assert_eq!(sent.len(), 1, "{sent:?}");
    // The sweep only sent: the delete runs as its own request.
    assert_eq!(
        attr(&canonical(&host, BRANCH), "status"),
        Some("runtime-requested")
    );
    let removed = done(&deliver(&host, "api", &sent[0]).await);
    assert!(removed.contains("(idle)"), "{removed}");
    assert_eq!(
        attr(&canonical(&host, BRANCH), "deleteReason"),
        Some("idle")
    );
    assert_eq!(
        attr(&canonical(&host, "fresh"), "status"),
        Some("runtime-requested")
    );
    let body = &host.github.comments(REPO, 7).unwrap()[0].body;
    assert!(body.contains("Push a commit"), "{body}");
    // The next sweep finds nothing due; the same delete again does nothing.
    let (again, none) = sweep(&host).await;
    assert!(again.contains("0 delete(s) sent"), "{again}");
    assert!(none.is_empty());
    let twice = skipped(&deliver(&host, "api", &sent[0]).await);
    assert!(twice.contains("deleted already"), "{twice}");
}

/// A delete the sweep sent, then a push before it is handled: the push is
/// newer than the request the delete names, so the delete does nothing.
#[tokio::test]
async fn a_push_while_the_sweep_runs_wins_over_its_delete() {
    let host = host();
    open(&host).await;
    host.clock
        .advance(std::time::Duration::from_secs(15 * 86_400));
    let (_, sent) = sweep(&host).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let pushed_at = "2026-12-14T09:00:00Z";
    let push = pull_request_event("synchronize", 7, BRANCH, SHA_2, pushed_at);
    done(&deliver(&host, "probot", &push).await);
    let moved_on = skipped(&deliver(&host, "api", &sent[0]).await);
    assert!(moved_on.contains("moved on"), "{moved_on}");
    assert_ne!(attr(&canonical(&host, BRANCH), "status"), Some("deleted"));
    assert_eq!(host.runtime.live().unwrap().len(), 2);
}

/// Versions side by side: a logic version from before teardown (contract
/// 0.3.0, during a canary or after a rollback) acknowledges `closed` as
/// "does not deploy", so nothing ends the preview then. The next sweep
/// finds its pull request no longer open on GitHub and sends its delete.
#[tokio::test]
async fn a_close_an_older_logic_skipped_is_caught_by_the_sweep() {
    let host = host();
    open(&host).await;
    let older = std::sync::Arc::new(host.engine().load(EARLIER_PATCH_LOGIC).unwrap());
    let old_host = host.peer(older);
    let closed = pull_request_event("closed", 7, BRANCH, SHA_1, CLOSED_AT);
    let ignored = skipped(&deliver(&old_host, "probot", &closed).await);
    assert!(ignored.contains("does not deploy"), "{ignored}");
    assert_eq!(host.runtime.live().unwrap().len(), 1);
    // GitHub lists open pull requests, 7 not among them.
    github_open(&host, 9, "acme:other", SHA_2).await;
    let (swept, sent) = sweep(&host).await;
    assert!(
        swept.contains("feature/login (pull-request-closed)"),
        "{swept}"
    );
    assert_eq!(sent.len(), 1, "{sent:?}");
    done(&deliver(&host, "api", &sent[0]).await);
    assert!(host.runtime.live().unwrap().is_empty());
    assert_eq!(
        attr(&canonical(&host, BRANCH), "deleteReason"),
        Some("pull-request-closed")
    );
    // Open again on GitHub (a reopen the old version handled): kept.
    let reopened = pull_request_event("reopened", 7, BRANCH, SHA_1, REOPENED_AT);
    done(&deliver(&host, "probot", &reopened).await);
    github_open(&host, 7, &format!("acme:{BRANCH}"), SHA_1).await;
    let (kept, none) = sweep(&host).await;
    assert!(kept.contains("0 delete(s) sent"), "{kept}");
    assert!(none.is_empty());
}

/// A create whose lease ran out just as it called the Runtime Service (a
/// host paused, its call still to be made), and a close taking the
/// environment meanwhile: the delete removes what the environment has,
/// moves the service's fence, and the late create is refused (409) — it
/// never brings the preview back; its next delivery is stale.
#[tokio::test]
async fn a_create_still_on_its_way_when_the_delete_takes_the_environment_is_refused() {
    use envmgr::calls::{Call, Hit};
    let host = std::sync::Arc::new(host());
    let (peer, clock) = (host.clone(), host.clock.clone());
    host.faults.interleave(
        Call::RuntimeCreate,
        Hit::Nth(1),
        std::sync::Arc::new(move || {
            let (peer, clock) = (peer.clone(), clock.clone());
            Box::pin(async move {
                clock.advance(std::time::Duration::from_millis(
                    envmgr::mock::LEASE_TTL_MS + 1_000,
                ));
                let closed = pull_request_event("closed", 7, BRANCH, SHA_1, CLOSED_AT);
                let removed = peer.deliver(&peer.message("probot", &closed)).await;
                assert!(done(&removed).contains("deleted"), "{:?}", removed.result);
            })
        }),
    );
    let opened = pull_request_event("opened", 7, BRANCH, SHA_1, OPENED_AT);
    let late = host.deliver(&host.message("probot", &opened)).await;
    match &late.result {
        Ok(Err(failure)) => assert!(failure.reason.contains("superseded"), "{}", failure.reason),
        other => panic!("expected the late create refused, got {other:?}"),
    }
    assert!(
        host.runtime.live().unwrap().is_empty(),
        "no runtime came back"
    );
    assert_eq!(attr(&canonical(&host, BRANCH), "status"), Some("deleted"));
    let again = skipped(&deliver(&host, "probot", &opened).await);
    assert!(again.starts_with("stale request"), "{again}");
}

/// The runtime's status report on the request the delete followed, arriving
/// after the delete: skipped, the tombstone and the comment as they were.
#[tokio::test]
async fn a_report_after_the_delete_changes_nothing() {
    let host = host();
    open(&host).await;
    let key = host.runtime.calls()[0]
        .signing_key
        .as_ref()
        .expect("a signing key")
        .expose()
        .to_string();
    let closed = pull_request_event("closed", 7, BRANCH, SHA_1, CLOSED_AT);
    done(&deliver(&host, "probot", &closed).await);
    let now = host.clock.now_ms() / 1_000;
    let claims = json!({
        "sub": env_id(BRANCH), "ver": format!("1795863600000#{SHA_1}"), "state": "ready",
        "url": format!("https://{}.preview.test", env_id(BRANCH)),
        "iat": now, "exp": now + 300, "jti": "after-the-delete", "seq": 1,
    });
    let report = envmgr::capabilities::keys::sign_report(&key, &claims).unwrap();
    let body = json!({ "version": 1, "kind": "runtime-status", "report": report });
    let why = skipped(&deliver(&host, "api", &body.to_string()).await);
    assert!(why.contains("which holds newer request"), "{why}");
    assert_eq!(attr(&canonical(&host, BRANCH), "status"), Some("deleted"));
    let comment = &host.github.comments(REPO, 7).unwrap()[0].body;
    assert!(comment.contains("🗑️ Removed"), "{comment}");
}

/// With `[previews] delete_github_environment` (the host's config key), the
/// GitHub environment `preview/{branch}` goes with the preview, and its
/// deployments with it; without, GitHub keeps it, its deployment inactive.
#[tokio::test]
async fn the_github_environment_goes_too_only_when_the_operator_allows_it() {
    let (engine, logic) = shared_logic();
    let mut values = envmgr::mock::default_config().values().clone();
    values.insert("delete-github-environment".into(), "true".into());
    let host = MockHost::new(
        engine,
        logic,
        envmgr::capabilities::config::Config::new(values),
    );
    seed_app(&host, APP_ID, APP_NAME, REPO);
    host.github.add_installation(INSTALLATION);
    open(&host).await;
    let closed = pull_request_event("closed", 7, BRANCH, SHA_1, CLOSED_AT);
    done(&deliver(&host, "probot", &closed).await);
    assert_eq!(
        host.github.deleted_environments(&shop()).unwrap(),
        [format!("preview/{BRANCH}")]
    );
    assert!(host.github.deployments(REPO).unwrap().is_empty());
    // The default: kept.
    let host = self::host();
    open(&host).await;
    done(&deliver(&host, "probot", &closed).await);
    assert!(
        host.github
            .deleted_environments(&shop())
            .unwrap()
            .is_empty()
    );
    assert_eq!(host.github.deployments(REPO).unwrap().len(), 1);
}
