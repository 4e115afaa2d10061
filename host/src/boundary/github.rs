//! The `github` import: the app installation's comment, deployments and
//! statuses; an installation token comes back sealed.

use wasmtime::component::Resource;

use crate::bindings::envmgr::environments::github::*;
use crate::bindings::resources::{FutureSealedValue, SealedValue};
use crate::boundary::Session;
use crate::calls::Call;
use crate::calls::values;
use crate::capabilities::github::*;
use crate::capabilities::{CapResult, Error};
use serde_json::json;

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
