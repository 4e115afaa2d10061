//! In-memory GitHub: installations, comments with ids, tokens.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Comment, GitHub, Repository};
use crate::capabilities::sealed::Secret;
use crate::capabilities::{CapResult, ErrorCode, error};

#[derive(Default)]
struct State {
    installations: BTreeSet<u64>,
    /// (owner/name, issue number) → comments, oldest first.
    comments: BTreeMap<(String, u64), Vec<Comment>>,
    next_comment_id: u64,
    tokens_issued: Vec<(u64, String, Secret)>,
}

#[derive(Default)]
pub struct MockGitHub {
    state: Mutex<State>,
}

fn key(repo: &Repository) -> String {
    format!("{}/{}", repo.owner, repo.name).to_ascii_lowercase()
}

impl MockGitHub {
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
