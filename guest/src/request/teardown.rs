//! What ends an environment, as the flow needs it (`flow/teardown.rs`):
//! which environment, why, and where the delete stands among the
//! environment's requests.
//!
//! A delete's version is the version it follows with `#delete` appended
//! (`1795863600000#3f78…#delete`): compared byte by byte, as every request
//! version is, it sorts after that version and before any later request, so
//! a push or a reopen after the delete wins over it, and it wins over
//! everything before.

use super::{AppRef, EnvironmentType, PullRequest};
use crate::capabilities::Repository;

/// Appended to the version a delete follows.
pub const DELETE_SUFFIX: &str = "#delete";

/// Why an environment ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    PullRequestClosed,
    PullRequestMerged,
    BranchDeleted,
    /// The platform API asked.
    Api,
    /// No request for `[previews] max_idle_days`.
    Idle,
}

impl Reason {
    /// As the Runtime Service, the record and Segment name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PullRequestClosed => "pull-request-closed",
            Self::PullRequestMerged => "pull-request-merged",
            Self::BranchDeleted => "branch-deleted",
            Self::Api => "api",
            Self::Idle => "idle",
        }
    }

    /// Every reason, as [`as_str`](Self::as_str) names them.
    pub const ALL: [Reason; 5] = [
        Self::PullRequestClosed,
        Self::PullRequestMerged,
        Self::BranchDeleted,
        Self::Api,
        Self::Idle,
    ];

    /// The reason `name` names.
    pub fn named(name: &str) -> Option<Reason> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == name)
    }
}

/// Where a delete stands among the environment's requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Order {
    /// At a time of its own (a closed pull request's `updated_at`, the
    /// API's `requestedAt`): it follows every request made up to then, at
    /// `sha` when it names one (else the record's commit).
    At { ms: u64, sha: Option<String> },
    /// With no time of its own (a deleted branch): it follows the request
    /// the environment holds when it is handled, and only if that request
    /// was made before the event was sent (the message's send time) and,
    /// when `sha` is known, is at that commit (the branch's last). So it
    /// can never outrank a later push.
    Seen { sha: Option<String> },
    /// Exactly the request at this version (the sweep's, the API's
    /// `ifRequestVersion`): nothing if the environment moved on.
    IfAt(String),
}

/// Everything the teardown flow needs to end one environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteRequest {
    pub app: AppRef,
    pub environment_type: EnvironmentType,
    /// The repository, when the message names it (a webhook); else the
    /// app's.
    pub repository: Option<Repository>,
    pub branch: String,
    /// The pull request that closed.
    pub pull_request: Option<PullRequest>,
    pub installation_id: Option<u64>,
    /// Segment user id of whoever caused it.
    pub requester: String,
    pub reason: Reason,
    pub order: Order,
    /// A pull-request or branch event: production is never deleted by one.
    pub from_webhook: bool,
    /// The pull request's head as GitHub's `head` filter names it
    /// (`owner:branch`): another open pull request there keeps the preview.
    /// None: not asked (a deleted fork's branch, a branch event).
    pub head: Option<String>,
}

#[cfg(test)]
mod tests;
