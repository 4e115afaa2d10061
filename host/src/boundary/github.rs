//! The `github` import: the app installation's comment, deployments and
//! statuses; an installation token comes back sealed.

use wasmtime::component::Resource;

use crate::bindings::envmgr::environments::github::*;
use crate::bindings::resources::{FutureSealedValue, SealedValue};
use crate::boundary::Session;
use crate::calls::requests::github::*;
use crate::capabilities::github::*;
use crate::capabilities::{CapResult, Error};

impl Host for Session {
    async fn authenticate(&mut self, installation_id: u64) -> wasmtime::Result<CapResult<()>> {
        let b = self.backends.clone();
        Ok(self
            .invoke(
                self.describe(&Authenticate { installation_id }),
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
                self.describe(&ListComments {
                    installation_id,
                    repo: &repo,
                    issue_number,
                    marker: &marker,
                }),
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
                self.describe(&CreateComment {
                    installation_id,
                    repo: &repo,
                    issue_number,
                    body: &body,
                }),
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
                self.describe(&UpdateComment {
                    installation_id,
                    repo: &repo,
                    comment_id,
                    body: &body,
                }),
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
                self.describe(&DeleteComment {
                    installation_id,
                    repo: &repo,
                    id: comment_id,
                }),
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
                self.describe(&FindDeployments {
                    installation_id,
                    repo: &repo,
                    sha: &sha,
                    environment: &environment,
                    task: &task,
                }),
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
        Ok(self
            .invoke(
                self.describe(&CreateDeployment {
                    installation_id,
                    repo: &repo,
                    deployment: &deployment,
                }),
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
                self.describe(&ListDeploymentStatuses {
                    installation_id,
                    repo: &repo,
                    id: deployment_id,
                }),
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
        Ok(self
            .invoke(
                self.describe(&CreateDeploymentStatus {
                    installation_id,
                    repo: &repo,
                    deployment_id,
                    status: &status,
                }),
                b.github
                    .create_deployment_status(installation_id, &repo, deployment_id, &status),
            )
            .await)
    }

    async fn list_open_pull_requests(
        &mut self,
        installation_id: u64,
        repo: Repository,
        head: String,
    ) -> wasmtime::Result<CapResult<Vec<PullRequest>>> {
        let b = self.backends.clone();
        Ok(self
            .invoke(
                self.describe(&ListOpenPullRequests {
                    installation_id,
                    repo: &repo,
                    head: &head,
                }),
                b.github
                    .list_open_pull_requests(installation_id, &repo, &head),
            )
            .await)
    }

    async fn delete_environment(
        &mut self,
        installation_id: u64,
        repo: Repository,
        name: String,
    ) -> wasmtime::Result<CapResult<()>> {
        let b = self.backends.clone();
        Ok(self
            .invoke(
                self.describe(&DeleteEnvironment {
                    installation_id,
                    repo: &repo,
                    name: &name,
                }),
                b.github.delete_environment(installation_id, &repo, &name),
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
                self.describe(&DeleteDeployment {
                    installation_id,
                    repo: &repo,
                    id: deployment_id,
                }),
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
                self.describe(&CreateInstallationToken {
                    installation_id,
                    repo: &repo,
                }),
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
        let described = self.describe(&CreateInstallationToken {
            installation_id,
            repo: &repo,
        });
        let call = self.invoke(described, async move {
            b.github
                .create_installation_token(installation_id, &repo)
                .await
        });
        self.start(async move { call.await.map(|secret| (label, secret)) })
            .await
    }
}
