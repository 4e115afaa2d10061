//! GitHub as the app installation: authentication, the pull-request comment,
//! deployments and their statuses, installation tokens for the runtime.

pub mod app;
pub mod local;
pub mod mock;

use async_trait::async_trait;
use wasmtime::component::Resource;

use crate::bindings::envmgr::environments::github::Host;
pub use crate::bindings::envmgr::environments::github::{
    Comment, Deployment, DeploymentState, DeploymentStatus, NewDeployment, NewDeploymentStatus,
    Repository,
};
use crate::capabilities::sealed::{FutureSealedValue, SealedValue, Secret};
use crate::capabilities::{CapResult, Error};
use crate::engine::Session;
use crate::observe::Call;
use crate::record::values;
use serde_json::json;

/// A GitHub backend (octocrab against api.github.com or Enterprise, the
/// embedded recorder, or the in-memory mock).
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
}

fn show(repo: &Repository) -> String {
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

impl Host for Session {
    async fn authenticate(&mut self, installation_id: u64) -> wasmtime::Result<CapResult<()>> {
        let b = self.backends.clone();
        Ok(self
            .invoke(
                Call::GithubAuthenticate,
                || format!("installation={installation_id}"),
                self.typed(|| json!({ "installation-id": installation_id })),
                b.github.authenticate(installation_id),
            )
            .await)
    }

    async fn list_comments(
        &mut self,
        installation_id: u64,
        repo: Repository,
        issue_number: u64,
        marker: String,
    ) -> wasmtime::Result<CapResult<Vec<Comment>>> {
        let b = self.backends.clone();
        Ok(self
            .invoke(
                Call::GithubListComments,
                || format!("{}#{issue_number} marker={marker:?}", show(&repo)),
                self.typed(|| json!({ "installation-id": installation_id, "repo": values::repository(&repo), "issue-number": issue_number, "marker": marker })),
                b.github
                    .list_comments(installation_id, &repo, issue_number, &marker),
            )
            .await)
    }

    async fn create_comment(
        &mut self,
        installation_id: u64,
        repo: Repository,
        issue_number: u64,
        body: String,
    ) -> wasmtime::Result<CapResult<Comment>> {
        let b = self.backends.clone();
        Ok(self
            .invoke(
                Call::GithubCreateComment,
                || format!("{}#{issue_number} body={body:?}", show(&repo)),
                self.typed(|| json!({ "installation-id": installation_id, "repo": values::repository(&repo), "issue-number": issue_number, "body": body })),
                b.github
                    .create_comment(installation_id, &repo, issue_number, &body),
            )
            .await)
    }

    async fn update_comment(
        &mut self,
        installation_id: u64,
        repo: Repository,
        comment_id: u64,
        body: String,
    ) -> wasmtime::Result<CapResult<Comment>> {
        let b = self.backends.clone();
        Ok(self
            .invoke(
                Call::GithubUpdateComment,
                || format!("{} comment={comment_id} body={body:?}", show(&repo)),
                self.typed(|| json!({ "installation-id": installation_id, "repo": values::repository(&repo), "comment-id": comment_id, "body": body })),
                b.github
                    .update_comment(installation_id, &repo, comment_id, &body),
            )
            .await)
    }

    async fn delete_comment(
        &mut self,
        installation_id: u64,
        repo: Repository,
        comment_id: u64,
    ) -> wasmtime::Result<CapResult<()>> {
        let b = self.backends.clone();
        Ok(self
            .invoke(
                Call::GithubDeleteComment,
                || format!("{} comment={comment_id}", show(&repo)),
                self.typed(|| json!({ "installation-id": installation_id, "repo": values::repository(&repo), "comment-id": comment_id })),
                b.github.delete_comment(installation_id, &repo, comment_id),
            )
            .await)
    }

    async fn find_deployments(
        &mut self,
        installation_id: u64,
        repo: Repository,
        sha: String,
        environment: String,
        task: String,
    ) -> wasmtime::Result<CapResult<Vec<Deployment>>> {
        let b = self.backends.clone();
        Ok(self
            .invoke(
                Call::GithubFindDeployments,
                || {
                    format!(
                        "{} sha={sha} environment={environment:?} task={task:?}",
                        show(&repo)
                    )
                },
                self.typed(|| json!({ "installation-id": installation_id, "repo": values::repository(&repo), "sha": sha, "environment": environment, "task": task })),
                b.github
                    .find_deployments(installation_id, &repo, &sha, &environment, &task),
            )
            .await)
    }

    async fn create_deployment(
        &mut self,
        installation_id: u64,
        repo: Repository,
        deployment: NewDeployment,
    ) -> wasmtime::Result<CapResult<Deployment>> {
        let b = self.backends.clone();
        Ok(self.invoke(
            Call::GithubCreateDeployment,
            || {
                format!(
                    "{} sha={} environment={:?} task={:?} payload={} transient={} production={}",
                    show(&repo),
                    deployment.sha,
                    deployment.environment,
                    deployment.task,
                    deployment.payload_json,
                    deployment.transient_environment,
                    deployment.production_environment
                )
            },
            self.typed(|| json!({ "installation-id": installation_id, "repo": values::repository(&repo), "deployment": values::new_deployment(&deployment) })),
            b.github
                .create_deployment(installation_id, &repo, &deployment),
        )
        .await)
    }

    async fn list_deployment_statuses(
        &mut self,
        installation_id: u64,
        repo: Repository,
        deployment_id: u64,
    ) -> wasmtime::Result<CapResult<Vec<DeploymentStatus>>> {
        let b = self.backends.clone();
        Ok(self
            .invoke(
                Call::GithubListDeploymentStatuses,
                || format!("{} deployment={deployment_id}", show(&repo)),
                self.typed(|| json!({ "installation-id": installation_id, "repo": values::repository(&repo), "deployment-id": deployment_id })),
                b.github
                    .list_deployment_statuses(installation_id, &repo, deployment_id),
            )
            .await)
    }

    async fn create_deployment_status(
        &mut self,
        installation_id: u64,
        repo: Repository,
        deployment_id: u64,
        status: NewDeploymentStatus,
    ) -> wasmtime::Result<CapResult<DeploymentStatus>> {
        let b = self.backends.clone();
        Ok(self.invoke(
            Call::GithubCreateDeploymentStatus,
            || {
                format!(
                    "{} deployment={deployment_id} state={} description={:?} environment_url={:?} log_url={:?}",
                    show(&repo),
                    state_name(status.state),
                    status.description,
                    status.environment_url,
                    status.log_url
                )
            },
            self.typed(|| json!({ "installation-id": installation_id, "repo": values::repository(&repo), "deployment-id": deployment_id, "status": values::new_deployment_status(&status) })),
            b.github
                .create_deployment_status(installation_id, &repo, deployment_id, &status),
        )
        .await)
    }

    async fn delete_deployment(
        &mut self,
        installation_id: u64,
        repo: Repository,
        deployment_id: u64,
    ) -> wasmtime::Result<CapResult<()>> {
        let b = self.backends.clone();
        Ok(self
            .invoke(
                Call::GithubDeleteDeployment,
                || format!("{} deployment={deployment_id}", show(&repo)),
                self.typed(|| json!({ "installation-id": installation_id, "repo": values::repository(&repo), "deployment-id": deployment_id })),
                b.github
                    .delete_deployment(installation_id, &repo, deployment_id),
            )
            .await)
    }

    async fn create_installation_token(
        &mut self,
        installation_id: u64,
        repo: Repository,
    ) -> wasmtime::Result<Result<Resource<SealedValue>, Error>> {
        let b = self.backends.clone();
        let token = self
            .invoke(
                Call::GithubCreateInstallationToken,
                || format!("installation={installation_id} repo={}", show(&repo)),
                self.typed(|| json!({ "installation-id": installation_id, "repo": values::repository(&repo) })),
                b.github.create_installation_token(installation_id, &repo),
            )
            .await;
        match token {
            Ok(secret) => Ok(Ok(
                self.seal(format!("github-token:{}", show(&repo)), secret)?
            )),
            Err(error) => Ok(Err(error)),
        }
    }

    async fn start_create_installation_token(
        &mut self,
        installation_id: u64,
        repo: Repository,
    ) -> wasmtime::Result<Resource<FutureSealedValue>> {
        let b = self.backends.clone();
        let label = format!("github-token:{}", show(&repo));
        let request = format!("installation={installation_id} repo={}", show(&repo));
        let typed = self.typed(
            || json!({ "installation-id": installation_id, "repo": values::repository(&repo) }),
        );
        let call = self.invoke(
            Call::GithubCreateInstallationToken,
            || request,
            typed,
            async move {
                b.github
                    .create_installation_token(installation_id, &repo)
                    .await
            },
        );
        self.start(async move { call.await.map(|secret| (label, secret)) })
            .await
    }
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
