//! What the failure tests read off a delivery and a mock host: the failure
//! and its kind, the deployments' states, nothing touched.

use envmgr::capabilities::github::DeploymentState;
use envmgr::mock::{Delivery, MockHost};
use envmgr::{FailureKind, Outcome};
use envmgr_tests::*;

pub(crate) fn failure(delivery: &Delivery) -> (FailureKind, String) {
    match &delivery.result {
        Ok(Err(failure)) => (failure.kind, failure.reason.clone()),
        other => panic!("expected a failure, got {other:?}"),
    }
}

pub(crate) fn permanent(delivery: &Delivery) -> String {
    let (kind, reason) = failure(delivery);
    assert_eq!(kind, FailureKind::Permanent, "{reason}");
    reason
}

pub(crate) fn retryable(delivery: &Delivery) -> String {
    let (kind, reason) = failure(delivery);
    assert_eq!(kind, FailureKind::Retryable, "{reason}");
    reason
}

pub(crate) fn assert_done(delivery: &Delivery) {
    assert!(
        matches!(delivery.result, Ok(Ok(Outcome::Done(_)))),
        "{:?}",
        delivery.result
    );
}

/// The states of each GitHub deployment's statuses, oldest first.
pub(crate) fn deployment_states(host: &MockHost) -> Vec<Vec<DeploymentState>> {
    host.github
        .deployments(REPO)
        .unwrap()
        .iter()
        .map(|d| d.statuses.iter().map(|s| s.state).collect())
        .collect()
}

pub(crate) fn opened() -> String {
    pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z")
}

/// Nothing was written and nothing was created.
pub(crate) fn untouched(host: &MockHost) {
    assert!(records(host).is_empty());
    assert!(host.runtime.calls().is_empty());
    assert!(host.github.comments(REPO, 7).unwrap().is_empty());
}
