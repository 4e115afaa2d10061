//! GitHub as the app installation: authentication, the pull-request comment,
//! installation tokens for the runtime.

pub mod app;
pub mod local;
pub mod mock;

use async_trait::async_trait;
use wasmtime::component::Resource;

use crate::bindings::envmgr::environments::github::Host;
pub use crate::bindings::envmgr::environments::github::{Comment, Repository};
use crate::capabilities::sealed::{SealedValue, Secret};
use crate::capabilities::{CapResult, Error};
use crate::engine::Session;
use crate::observe::Call;

/// A GitHub backend (octocrab against api.github.com or Enterprise, the
/// embedded recorder, or the in-memory mock).
#[async_trait]
pub trait GitHub: Send + Sync {
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
}

fn show(repo: &Repository) -> String {
    format!("{}/{}", repo.owner, repo.name)
}

impl Host for Session {
    async fn authenticate(&mut self, installation_id: u64) -> wasmtime::Result<CapResult<()>> {
        let b = self.backends.clone();
        Ok(b.invoke(
            Call::GithubAuthenticate,
            || format!("installation={installation_id}"),
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
        Ok(b.invoke(
            Call::GithubListComments,
            || format!("{}#{issue_number} marker={marker:?}", show(&repo)),
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
        Ok(b.invoke(
            Call::GithubCreateComment,
            || format!("{}#{issue_number} body={body:?}", show(&repo)),
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
        Ok(b.invoke(
            Call::GithubUpdateComment,
            || format!("{} comment={comment_id} body={body:?}", show(&repo)),
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
        Ok(b.invoke(
            Call::GithubDeleteComment,
            || format!("{} comment={comment_id}", show(&repo)),
            b.github.delete_comment(installation_id, &repo, comment_id),
        )
        .await)
    }

    async fn create_installation_token(
        &mut self,
        installation_id: u64,
        repo: Repository,
    ) -> wasmtime::Result<Result<Resource<SealedValue>, Error>> {
        let b = self.backends.clone();
        let token = b
            .invoke(
                Call::GithubCreateInstallationToken,
                || format!("installation={installation_id} repo={}", show(&repo)),
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
}
