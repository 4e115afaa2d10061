//! GitHub as the app installation: authentication, the pull-request comment,
//! deployments and their statuses, installation tokens for the runtime.

pub mod app;
pub mod local;

use async_trait::async_trait;

pub use crate::bindings::envmgr::environments::github::{
    Comment, Deployment, DeploymentState, DeploymentStatus, NewDeployment, NewDeploymentStatus,
    PullRequest, Repository,
};
use crate::capabilities::CapResult;
use crate::redact::Secret;

/// What `/metrics` shows of the installations' rate limits: a few numbers,
/// whatever the number of installations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimitSummary {
    /// Installations held in memory (used within the last hour).
    pub installations: u64,
    /// The fewest requests any of them may still make this hour.
    pub lowest_remaining: Option<u64>,
    /// How many have less than a tenth of their hourly limit left.
    pub low: u64,
}

/// A GitHub backend: octocrab against api.github.com or Enterprise, or the
/// embedded recorder.
#[async_trait]
pub trait GitHub: Send + Sync {
    /// Whether GitHub takes the App's own credentials, asked of no
    /// installation (the health probe). In-process backends cannot be
    /// refused.
    async fn probe(&self) -> CapResult<()> {
        Ok(())
    }
    /// The installations held and their rate-limit budget, as GitHub's
    /// last answers said (for `/metrics`: no series per installation).
    fn rate_limit_summary(&self) -> RateLimitSummary {
        RateLimitSummary::default()
    }
    async fn authenticate(&self, installation_id: u64) -> CapResult<()>;
    /// Comments on an issue whose body contains `marker`, oldest first.
    async fn list_comments(
        &self,
        installation_id: u64,
        repo: &Repository,
        issue_number: u64,
        marker: &str,
    ) -> CapResult<Vec<Comment>>;
    async fn create_comment(
        &self,
        installation_id: u64,
        repo: &Repository,
        issue_number: u64,
        body: &str,
    ) -> CapResult<Comment>;
    async fn update_comment(
        &self,
        installation_id: u64,
        repo: &Repository,
        comment_id: u64,
        body: &str,
    ) -> CapResult<Comment>;
    async fn delete_comment(
        &self,
        installation_id: u64,
        repo: &Repository,
        comment_id: u64,
    ) -> CapResult<()>;
    /// A token for one repository; the plaintext never reaches the guest.
    async fn create_installation_token(
        &self,
        installation_id: u64,
        repo: &Repository,
    ) -> CapResult<Secret>;
    /// Deployments of `sha` to `environment` with `task`, oldest first.
    async fn find_deployments(
        &self,
        installation_id: u64,
        repo: &Repository,
        sha: &str,
        environment: &str,
        task: &str,
    ) -> CapResult<Vec<Deployment>>;
    /// Sent with `auto_merge: false` and `required_contexts: []`, whatever
    /// the guest asks (see the WIT).
    async fn create_deployment(
        &self,
        installation_id: u64,
        repo: &Repository,
        deployment: &NewDeployment,
    ) -> CapResult<Deployment>;
    /// A deployment's statuses, oldest first.
    async fn list_deployment_statuses(
        &self,
        installation_id: u64,
        repo: &Repository,
        deployment_id: u64,
    ) -> CapResult<Vec<DeploymentStatus>>;
    async fn create_deployment_status(
        &self,
        installation_id: u64,
        repo: &Repository,
        deployment_id: u64,
        status: &NewDeploymentStatus,
    ) -> CapResult<DeploymentStatus>;
    /// A deployment already gone counts as deleted.
    async fn delete_deployment(
        &self,
        installation_id: u64,
        repo: &Repository,
        deployment_id: u64,
    ) -> CapResult<()>;
    /// Open pull requests whose head is `head` (`owner:branch`), oldest
    /// first.
    async fn list_open_pull_requests(
        &self,
        installation_id: u64,
        repo: &Repository,
        head: &str,
    ) -> CapResult<Vec<PullRequest>>;
    /// A GitHub environment already gone counts as deleted.
    async fn delete_environment(
        &self,
        installation_id: u64,
        repo: &Repository,
        name: &str,
    ) -> CapResult<()>;
}

pub(crate) fn show(repo: &Repository) -> String {
    format!("{}/{}", repo.owner, repo.name)
}

/// GitHub's name of a deployment state (the REST API's `state`).
pub fn state_name(state: DeploymentState) -> &'static str {
    match state {
        DeploymentState::Error => "error",
        DeploymentState::Failure => "failure",
        DeploymentState::Inactive => "inactive",
        DeploymentState::InProgress => "in_progress",
        DeploymentState::Queued => "queued",
        DeploymentState::Pending => "pending",
        DeploymentState::Success => "success",
    }
}

/// The state GitHub names `name`, if it is one.
pub fn state_named(name: &str) -> Option<DeploymentState> {
    Some(match name {
        "error" => DeploymentState::Error,
        "failure" => DeploymentState::Failure,
        "inactive" => DeploymentState::Inactive,
        "in_progress" => DeploymentState::InProgress,
        "queued" => DeploymentState::Queued,
        "pending" => DeploymentState::Pending,
        "success" => DeploymentState::Success,
        _ => return None,
    })
}

// What GitHub sends back goes on into comments, deployment statuses and
// logs: every text field is redacted.
impl crate::redact::Scrub for Comment {
    fn scrub(self, redactor: &crate::redact::Redactor) -> Self {
        Comment {
            id: self.id,
            body: redactor.scrub_value(&self.body),
            html_url: redactor.scrub_value(&self.html_url),
        }
    }
}

impl crate::redact::Scrub for Deployment {
    fn scrub(self, redactor: &crate::redact::Redactor) -> Self {
        Deployment {
            id: self.id,
            sha: redactor.scrub_value(&self.sha),
            environment: redactor.scrub_value(&self.environment),
            task: redactor.scrub_value(&self.task),
            payload_json: redactor.scrub_value(&self.payload_json),
        }
    }
}

impl crate::redact::Scrub for PullRequest {
    fn scrub(self, redactor: &crate::redact::Redactor) -> Self {
        PullRequest {
            number: self.number,
            head_sha: redactor.scrub_value(&self.head_sha),
        }
    }
}

impl crate::redact::Scrub for DeploymentStatus {
    fn scrub(self, redactor: &crate::redact::Redactor) -> Self {
        DeploymentStatus {
            id: self.id,
            state: self.state,
            description: redactor.scrub_value(&self.description),
            environment_url: self.environment_url.map(|u| redactor.scrub_value(&u)),
            log_url: self.log_url.map(|u| redactor.scrub_value(&u)),
        }
    }
}
