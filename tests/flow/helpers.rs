//! What the flow tests read off a delivery and a mock host: outcomes, calls,
//! records, deployments, the runtime's secrets; and the hosts and events
//! they start from.

use envmgr::Outcome;
use envmgr::calls::Call;
use envmgr::capabilities::dynamodb::AttributeValue;
use envmgr::capabilities::github::local::RecordedDeployment;
use envmgr::capabilities::github::{DeploymentState, Repository};
use envmgr::mock::{Delivery, MockHost};
use envmgr_tests::*;

pub(crate) fn done(delivery: &Delivery) -> String {
    match &delivery.result {
        Ok(Ok(Outcome::Done(what))) => what.clone(),
        other => panic!("expected done, got {other:?}\n{:#?}", delivery.transcript),
    }
}

pub(crate) fn skipped(delivery: &Delivery) -> String {
    match &delivery.result {
        Ok(Ok(Outcome::Skipped(why))) => why.clone(),
        other => panic!("expected skipped, got {other:?}"),
    }
}

pub(crate) fn calls(delivery: &Delivery) -> Vec<Call> {
    delivery
        .transcript
        .iter()
        .map(|e| e.call)
        .filter(|c| !matches!(c, Call::Log | Call::ConfigGet))
        .collect()
}

pub(crate) fn seed_secrets(host: &MockHost) {
    set_secret(
        host,
        APP_ID,
        "global",
        "DATABASE_URL",
        "postgres://global-db",
    );
    set_secret(host, APP_ID, "global", "LOG_LEVEL", "info");
    set_secret(
        host,
        APP_ID,
        "preview",
        "DATABASE_URL",
        "postgres://preview-db",
    );
    set_secret(
        host,
        APP_ID,
        "production",
        "DATABASE_URL",
        "postgres://prod-db",
    );
    set_secret(host, APP_ID, "production", "STRIPE_KEY", "sk_live_123");
}

/// The seeded host with secrets and these settings on the app record.
pub(crate) fn host_with_app_settings(attributes: Vec<(&str, AttributeValue)>) -> MockHost {
    let host = seeded_host();
    seed_secrets(&host);
    set_app_attributes(&host, attributes);
    host
}

pub(crate) fn trusted_authors(logins: &[&str]) -> (&'static str, AttributeValue) {
    (
        "trustedAuthors",
        AttributeValue::Ss(logins.iter().map(|l| l.to_string()).collect()),
    )
}

/// An `opened` event for pull request 9, whose head branch is `main` of
/// `mallory/shop`, a fork.
pub(crate) fn fork_event() -> String {
    let mut event: serde_json::Value = serde_json::from_str(&pull_request_event(
        "opened",
        9,
        "main",
        SHA_1,
        "2026-11-28T11:00:00Z",
    ))
    .unwrap();
    let pull_request = &mut event["payload"]["pull_request"];
    pull_request["user"]["login"] = "mallory".into();
    pull_request["head"]["repo"]["full_name"] = "mallory/shop".into();
    pull_request["head"]["repo"]["owner"]["login"] = "mallory".into();
    event.to_string()
}

/// `secretsWithheld` of every environment item (all three must agree).
pub(crate) fn secrets_withheld(host: &MockHost) -> Option<String> {
    let items = records(host);
    let values: Vec<Option<&str>> = items.iter().map(|i| attr(i, "secretsWithheld")).collect();
    assert!(values.iter().all(|v| *v == values[0]), "{values:?}");
    values[0].map(str::to_string)
}

/// The runtime got no secret and no token, and none was even asked for.
pub(crate) fn assert_nothing_secret(host: &MockHost, delivery: &Delivery) {
    let made = calls(delivery);
    for call in [Call::KmsDecrypt, Call::GithubCreateInstallationToken] {
        assert!(!made.contains(&call), "{call} in {made:?}");
    }
    let secrets_read = delivery
        .transcript
        .iter()
        .any(|e| e.call == Call::DynamodbQuery && e.request.starts_with("secrets "));
    assert!(!secrets_read, "the secrets were read");
    let runtime = &host.runtime.calls()[0];
    assert!(runtime.secrets.is_empty());
    assert!(runtime.installation_token.is_none());
    assert!(host.github.issued_tokens().is_empty());
}

/// The runtime got the app's two preview secrets and a token, and the
/// comment on `pull_request` withholds nothing.
pub(crate) fn assert_trusted(host: &MockHost, pull_request: u64) {
    assert_eq!(secrets_sent(host, 0).len(), 2);
    assert!(host.runtime.calls()[0].installation_token.is_some());
    assert_eq!(secrets_withheld(host), None);
    let comment = &host.github.comments(REPO, pull_request).unwrap()[0].body;
    assert!(!comment.contains("Secrets withheld"), "{comment}");
}

/// `REPO` as the GitHub capability names it.
pub(crate) fn acme_shop() -> Repository {
    let (owner, name) = REPO.split_once('/').expect("owner/name");
    Repository {
        owner: owner.into(),
        name: name.into(),
    }
}

/// The repository's GitHub deployments, oldest first.
pub(crate) fn deployments(host: &MockHost) -> Vec<RecordedDeployment> {
    host.github.deployments(REPO).unwrap()
}

/// The id of the one runtime the host's Runtime Service recorded.
pub(crate) fn runtime_id(host: &MockHost) -> String {
    let runtimes = host.runtime.runtimes().unwrap();
    assert_eq!(runtimes.len(), 1, "{runtimes:?}");
    runtimes[0].runtime_id.clone()
}

/// The states of a deployment's statuses, oldest first.
pub(crate) fn states(deployment: &RecordedDeployment) -> Vec<DeploymentState> {
    deployment.statuses.iter().map(|s| s.state).collect()
}

/// How often `delivery` made `call`.
pub(crate) fn count(delivery: &Delivery, call: Call) -> usize {
    calls(delivery).iter().filter(|c| **c == call).count()
}

pub(crate) fn secrets_sent(host: &MockHost, call: usize) -> Vec<(String, String)> {
    host.runtime.calls()[call]
        .secrets
        .iter()
        .map(|(name, value)| (name.clone(), value.expose().to_string()))
        .collect()
}
