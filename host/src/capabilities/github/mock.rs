//! In-memory GitHub: installations, comments with ids, deployments with
//! their statuses, tokens.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    Comment, Deployment, DeploymentState, DeploymentStatus, GitHub, NewDeployment,
    NewDeploymentStatus, PullRequest, Repository,
};
use crate::capabilities::{CapResult, ErrorCode, error};
use crate::redact::Secret;

#[derive(Default)]
struct State {
    installations: BTreeSet<u64>,
    /// (owner/name, issue number) → comments, oldest first.
    comments: BTreeMap<(String, u64), Vec<Comment>>,
    next_comment_id: u64,
    /// Every deployment, oldest first.
    deployments: Vec<MockDeployment>,
    next_deployment_id: u64,
    next_status_id: u64,
    tokens_issued: Vec<(u64, String, Secret)>,
    /// (owner/name, head) → the open pull requests there.
    open_pull_requests: BTreeMap<(String, String), Vec<PullRequest>>,
    /// (owner/name, environment) deleted, in order.
    deleted_environments: Vec<(String, String)>,
}

/// A deployment as the mock keeps it: what was asked, and its statuses.
#[derive(Clone, Debug)]
pub struct MockDeployment {
    /// `owner/name`, lower-cased.
    pub repository: String,
    pub deployment: Deployment,
    pub description: String,
    pub transient_environment: bool,
    pub production_environment: bool,
    /// Oldest first.
    pub statuses: Vec<DeploymentStatus>,
}

impl MockDeployment {
    /// The state of its newest status.
    pub fn state(&self) -> Option<DeploymentState> {
        self.statuses.last().map(|s| s.state)
    }
}

#[derive(Default)]
pub struct MockGitHub {
    state: Mutex<State>,
}

fn key(repo: &Repository) -> String {
    format!("{}/{}", repo.owner, repo.name).to_ascii_lowercase()
}

impl MockGitHub {
    /// Open pull request `number` on `head` (`owner:branch`) of `repo`.
    pub fn open_pull_request(&self, repo: &str, head: &str, number: u64, head_sha: &str) {
        let mut state = self.lock();
        let open = state
            .open_pull_requests
            .entry((repo.to_ascii_lowercase(), head.to_string()))
            .or_default();
        open.retain(|p| p.number != number);
        open.push(PullRequest {
            number,
            head_sha: head_sha.to_string(),
        });
        open.sort_by_key(|p| p.number);
    }

    /// Close pull request `number` of `repo`.
    pub fn close_pull_request(&self, repo: &str, number: u64) {
        let repo = repo.to_ascii_lowercase();
        for ((of, _), open) in self.lock().open_pull_requests.iter_mut() {
            if *of == repo {
                open.retain(|p| p.number != number);
            }
        }
    }

    /// (owner/name, environment) of every environment deleted, in order.
    pub fn deleted_environments(&self) -> Vec<(String, String)> {
        self.lock().deleted_environments.clone()
    }

    /// Make an installation known; calls for any other id get `not-found`.
    pub fn add_installation(&self, installation_id: u64) {
        self.lock().installations.insert(installation_id);
    }

    /// The comments on an issue, oldest first.
    pub fn comments(&self, repo: &str, issue_number: u64) -> Vec<Comment> {
        self.lock()
            .comments
            .get(&(repo.to_ascii_lowercase(), issue_number))
            .cloned()
            .unwrap_or_default()
    }

    /// Every comment: (owner/name, issue number, comment).
    pub fn all_comments(&self) -> Vec<(String, u64, Comment)> {
        self.lock()
            .comments
            .iter()
            .flat_map(|((repo, issue), comments)| {
                comments.iter().map(|c| (repo.clone(), *issue, c.clone()))
            })
            .collect()
    }

    /// Delete a comment behind the guest's back, as a person might.
    pub fn remove_comment(&self, comment_id: u64) {
        for comments in self.lock().comments.values_mut() {
            comments.retain(|c| c.id != comment_id);
        }
    }

    /// The deployments in a repository, oldest first.
    pub fn deployments(&self, repo: &str) -> Vec<MockDeployment> {
        let repo = repo.to_ascii_lowercase();
        self.lock()
            .deployments
            .iter()
            .filter(|d| d.repository == repo)
            .cloned()
            .collect()
    }

    /// Every token plaintext handed out, for checking none leaked.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.lock()
            .tokens_issued
            .iter()
            .map(|(_, _, token)| token.expose().to_string())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn deployment<'a>(
        state: &'a mut State,
        repo: &Repository,
        deployment_id: u64,
    ) -> CapResult<&'a mut MockDeployment> {
        let repo = key(repo);
        state
            .deployments
            .iter_mut()
            .find(|d| d.repository == repo && d.deployment.id == deployment_id)
            .ok_or_else(|| {
                error(
                    ErrorCode::NotFound,
                    format!("deployment {deployment_id} not found"),
                )
            })
    }

    fn check_installation(state: &State, installation_id: u64) -> CapResult<()> {
        if state.installations.contains(&installation_id) {
            Ok(())
        } else {
            Err(error(
                ErrorCode::NotFound,
                format!("installation {installation_id} not found"),
            ))
        }
    }
}

#[async_trait]
impl GitHub for MockGitHub {
    async fn authenticate(&self, installation_id: u64) -> CapResult<()> {
        Self::check_installation(&self.lock(), installation_id)
    }

    async fn list_comments(
        &self,
        installation_id: u64,
        repo: &Repository,
        issue_number: u64,
        marker: &str,
    ) -> CapResult<Vec<Comment>> {
        let state = self.lock();
        Self::check_installation(&state, installation_id)?;
        Ok(state
            .comments
            .get(&(key(repo), issue_number))
            .map(|all| {
                all.iter()
                    .filter(|c| c.body.contains(marker))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn create_comment(
        &self,
        installation_id: u64,
        repo: &Repository,
        issue_number: u64,
        body: &str,
    ) -> CapResult<Comment> {
        let mut state = self.lock();
        Self::check_installation(&state, installation_id)?;
        state.next_comment_id += 1;
        let id = 1000 + state.next_comment_id;
        let comment = Comment {
            id,
            body: body.to_string(),
            html_url: format!(
                "https://github.test/{}/pull/{issue_number}#issuecomment-{id}",
                key(repo)
            ),
        };
        state
            .comments
            .entry((key(repo), issue_number))
            .or_default()
            .push(comment.clone());
        Ok(comment)
    }

    async fn update_comment(
        &self,
        installation_id: u64,
        repo: &Repository,
        comment_id: u64,
        body: &str,
    ) -> CapResult<Comment> {
        let mut state = self.lock();
        Self::check_installation(&state, installation_id)?;
        let repo = key(repo);
        state
            .comments
            .iter_mut()
            .filter(|((r, _), _)| *r == repo)
            .flat_map(|(_, comments)| comments.iter_mut())
            .find(|c| c.id == comment_id)
            .map(|comment| {
                comment.body = body.to_string();
                comment.clone()
            })
            .ok_or_else(|| {
                error(
                    ErrorCode::NotFound,
                    format!("comment {comment_id} not found"),
                )
            })
    }

    async fn delete_comment(
        &self,
        installation_id: u64,
        repo: &Repository,
        comment_id: u64,
    ) -> CapResult<()> {
        let mut state = self.lock();
        Self::check_installation(&state, installation_id)?;
        let repo = key(repo);
        for ((r, _), comments) in state.comments.iter_mut() {
            if *r == repo {
                comments.retain(|c| c.id != comment_id);
            }
        }
        Ok(())
    }

    async fn find_deployments(
        &self,
        installation_id: u64,
        repo: &Repository,
        sha: &str,
        environment: &str,
        task: &str,
    ) -> CapResult<Vec<Deployment>> {
        let state = self.lock();
        Self::check_installation(&state, installation_id)?;
        let repo = key(repo);
        Ok(state
            .deployments
            .iter()
            .filter(|d| d.repository == repo)
            .map(|d| &d.deployment)
            .filter(|d| d.sha == sha && d.environment == environment && d.task == task)
            .cloned()
            .collect())
    }

    async fn create_deployment(
        &self,
        installation_id: u64,
        repo: &Repository,
        new: &NewDeployment,
    ) -> CapResult<Deployment> {
        let mut state = self.lock();
        Self::check_installation(&state, installation_id)?;
        let payload = serde_json::from_str::<serde_json::Value>(&new.payload_json);
        if !matches!(payload, Ok(serde_json::Value::Object(_))) {
            return Err(error(
                ErrorCode::Invalid,
                "the deployment payload must be a JSON object",
            ));
        }
        state.next_deployment_id += 1;
        let deployment = Deployment {
            id: 5000 + state.next_deployment_id,
            sha: new.sha.clone(),
            environment: new.environment.clone(),
            task: new.task.clone(),
            payload_json: new.payload_json.clone(),
        };
        state.deployments.push(MockDeployment {
            repository: key(repo),
            deployment: deployment.clone(),
            description: new.description.clone(),
            transient_environment: new.transient_environment,
            production_environment: new.production_environment,
            statuses: Vec::new(),
        });
        Ok(deployment)
    }

    async fn list_deployment_statuses(
        &self,
        installation_id: u64,
        repo: &Repository,
        deployment_id: u64,
    ) -> CapResult<Vec<DeploymentStatus>> {
        let mut state = self.lock();
        Self::check_installation(&state, installation_id)?;
        Ok(Self::deployment(&mut state, repo, deployment_id)?
            .statuses
            .clone())
    }

    async fn create_deployment_status(
        &self,
        installation_id: u64,
        repo: &Repository,
        deployment_id: u64,
        new: &NewDeploymentStatus,
    ) -> CapResult<DeploymentStatus> {
        let mut state = self.lock();
        Self::check_installation(&state, installation_id)?;
        if new.description.chars().count() > 140 {
            return Err(error(
                ErrorCode::Invalid,
                "a deployment status description has at most 140 characters",
            ));
        }
        state.next_status_id += 1;
        let status = DeploymentStatus {
            id: 7000 + state.next_status_id,
            state: new.state,
            description: new.description.clone(),
            environment_url: new.environment_url.clone(),
            log_url: new.log_url.clone(),
        };
        Self::deployment(&mut state, repo, deployment_id)?
            .statuses
            .push(status.clone());
        Ok(status)
    }

    async fn list_open_pull_requests(
        &self,
        installation_id: u64,
        repo: &Repository,
        head: &str,
    ) -> CapResult<Vec<PullRequest>> {
        let state = self.lock();
        Self::check_installation(&state, installation_id)?;
        Ok(state
            .open_pull_requests
            .get(&(key(repo), head.to_string()))
            .cloned()
            .unwrap_or_default())
    }

    /// As GitHub: the environment's deployments go with it.
    async fn delete_environment(
        &self,
        installation_id: u64,
        repo: &Repository,
        name: &str,
    ) -> CapResult<()> {
        let mut state = self.lock();
        Self::check_installation(&state, installation_id)?;
        let repo = key(repo);
        state
            .deployments
            .retain(|d| !(d.repository == repo && d.deployment.environment == name));
        state.deleted_environments.push((repo, name.to_string()));
        Ok(())
    }

    async fn delete_deployment(
        &self,
        installation_id: u64,
        repo: &Repository,
        deployment_id: u64,
    ) -> CapResult<()> {
        let mut state = self.lock();
        Self::check_installation(&state, installation_id)?;
        let repo = key(repo);
        let in_repo = state
            .deployments
            .iter()
            .filter(|d| d.repository == repo)
            .count();
        let Some(at) = state
            .deployments
            .iter()
            .position(|d| d.repository == repo && d.deployment.id == deployment_id)
        else {
            return Ok(());
        };
        // As GitHub: with other deployments around, only an inactive one goes.
        let retired = state.deployments[at].state() == Some(DeploymentState::Inactive);
        if in_repo > 1 && !retired {
            return Err(error(
                ErrorCode::Invalid,
                "We cannot delete an active deployment unless it is the only deployment in a given environment.",
            ));
        }
        state.deployments.remove(at);
        Ok(())
    }

    async fn create_installation_token(
        &self,
        installation_id: u64,
        repo: &Repository,
    ) -> CapResult<Secret> {
        let mut state = self.lock();
        Self::check_installation(&state, installation_id)?;
        let token = Secret::new(format!(
            "ghs_mock{installation_id}x{}",
            state.tokens_issued.len() + 1
        ));
        state
            .tokens_issued
            .push((installation_id, key(repo), token.clone()));
        Ok(token)
    }
}
