//! The teardown tests' host, events and readings: the Shop app and the
//! preview of pull request 7, deliveries and their outcomes, an
//! environment's items, a deleted branch's push, the sweep.

use envmgr::Outcome;
use envmgr::mock::{Delivery, MockHost};
use envmgr_guest::environment::environment_id;
use envmgr_tests::*;
use serde_json::json;

pub(crate) const BRANCH: &str = "feature/login";
pub(crate) const OPENED_AT: &str = "2026-11-28T11:00:00Z";
pub(crate) const CLOSED_AT: &str = "2026-11-28T11:30:00Z";
pub(crate) const REOPENED_AT: &str = "2026-11-28T11:45:00Z";

pub(crate) fn host() -> MockHost {
    let host = seeded_host();
    set_secret(&host, APP_ID, "global", "DATABASE_URL", "postgres://db");
    host
}

pub(crate) fn env_id(branch: &str) -> String {
    environment_id(APP_ID, branch)
}

fn outcome(delivery: &Delivery) -> &Outcome {
    match &delivery.result {
        Ok(Ok(outcome)) => outcome,
        other => panic!("expected an outcome, got {other:?}"),
    }
}

pub(crate) fn done(delivery: &Delivery) -> String {
    match outcome(delivery) {
        Outcome::Done(text) => text.clone(),
        other => panic!("expected done, got {other:?}"),
    }
}

pub(crate) fn skipped(delivery: &Delivery) -> String {
    match outcome(delivery) {
        Outcome::Skipped(text) => text.clone(),
        other => panic!("expected skipped, got {other:?}"),
    }
}

/// Pull request 7 opened on [`BRANCH`], and its preview made.
pub(crate) async fn open(host: &MockHost) {
    let opened = pull_request_event("opened", 7, BRANCH, SHA_1, OPENED_AT);
    done(&deliver(host, "probot", &opened).await);
}

pub(crate) async fn deliver(host: &MockHost, queue: &str, body: &str) -> Delivery {
    host.deliver(&host.message(queue, body)).await
}

/// The item `sk` of the environment on `branch`'s partition.
fn item(host: &MockHost, branch: &str, sk: &str) -> envmgr::capabilities::dynamodb::Item {
    let pk = format!("ENVIRONMENT#{}", env_id(branch));
    host.tables
        .scan("environments")
        .unwrap()
        .into_iter()
        .find(|item| attr(item, "pk") == Some(pk.as_str()) && attr(item, "sk") == Some(sk))
        .unwrap_or_else(|| panic!("no item {pk} / {sk}"))
}

/// The canonical item of the environment on `branch`.
pub(crate) fn canonical(host: &MockHost, branch: &str) -> envmgr::capabilities::dynamodb::Item {
    item(host, branch, "#")
}

pub(crate) fn lease_item(host: &MockHost, branch: &str) -> envmgr::capabilities::dynamodb::Item {
    item(host, branch, "LEASE")
}

pub(crate) fn shop() -> envmgr::capabilities::github::Repository {
    envmgr::capabilities::github::Repository {
        owner: "acme".into(),
        name: "shop".into(),
    }
}

pub(crate) fn has_number(item: &envmgr::capabilities::dynamodb::Item, name: &str) -> bool {
    item.iter().any(|(n, v)| {
        n == name && matches!(v, envmgr::capabilities::dynamodb::AttributeValue::N(_))
    })
}

pub(crate) fn deleted_events(host: &MockHost) -> usize {
    host.analytics
        .events()
        .unwrap()
        .iter()
        .filter(|e| e.event == "cloud_environment_deleted")
        .count()
}

pub(crate) fn push_deleted(branch: &str, before: &str) -> String {
    json!({
        "id": "e1a2b3c4-0000-11ef-8e3c-000000000002",
        "name": "push",
        "payload": {
            "ref": format!("refs/heads/{branch}"), "before": before,
            "after": "0000000000000000000000000000000000000000", "deleted": true,
            "repository": { "full_name": REPO, "name": "shop", "owner": { "login": "acme" } },
            "installation": { "id": INSTALLATION },
        },
    })
    .to_string()
}

/// Pull request `number` open on GitHub with its head at `head`.
pub(crate) async fn github_open(host: &MockHost, number: u64, head: &str, sha: &str) {
    host.github
        .open_pull_request(&shop(), number, head, sha)
        .await
        .unwrap();
}

/// The app's sweep, as `serve` sends it: what the logic answered, and the
/// deletes it sent to the `api` queue.
pub(crate) async fn sweep(host: &MockHost) -> (String, Vec<String>) {
    let sweep = json!({ "version": 1, "kind": "sweep", "appId": APP_ID }).to_string();
    let swept = done(&deliver(host, "api", &sweep).await);
    (swept, host.requests.take())
}
