//! GitHub recorded in the embedded database: comments are kept as they
//! would appear on the pull request, deployments and their statuses as the
//! environments page would list them, installation tokens are issued
//! (random, valid for nothing) and their issue recorded without the value.
//! Any installation id is accepted: there is no GitHub App to check against
//! (but the mock host's: [`LocalGitHub::installed_only`]).
//! What it records is the consumer's: it survives a crash of the process
//! ([`Durability::SurvivesCrash`]).

mod records;

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use rusqlite::{OptionalExtension as _, params};

use super::{
    Comment, Deployment, DeploymentState, DeploymentStatus, GitHub, NewDeployment,
    NewDeploymentStatus, PullRequest, Repository, state_name,
};
use crate::capabilities::{CapResult, ErrorCode, error};
use crate::local::{Durability, Store, unavailable};
use crate::redact::Secret;
use records::statuses_of;
pub use records::{RecordedComment, RecordedDeployment, comments, deployments, tokens_issued};

pub struct LocalGitHub {
    store: Store,
    /// The mock host's App ([`LocalGitHub::installed_only`]); none for
    /// `serve`'s local GitHub.
    app: Option<Mutex<App>>,
}

/// The GitHub App the mock host plays: the installations it was added to
/// (a call for any other is `not-found`, as GitHub answers for an App not
/// installed there), and every token it issued, the values kept in memory
/// for a test to look for.
#[derive(Default)]
struct App {
    installations: BTreeSet<u64>,
    tokens: Vec<Secret>,
}

fn lock(app: &Mutex<App>) -> MutexGuard<'_, App> {
    app.lock().unwrap_or_else(|p| p.into_inner())
}

impl LocalGitHub {
    /// Any installation is taken; no token value is kept.
    pub fn new(store: Store) -> Self {
        Self { store, app: None }
    }

    /// The mock host's: installed on no installation until
    /// [`add_installation`](Self::add_installation), and keeping the
    /// tokens it issues ([`issued_tokens`](Self::issued_tokens)).
    pub fn installed_only(store: Store) -> Self {
        Self {
            store,
            app: Some(Mutex::default()),
        }
    }

    /// `not-found` for an installation the App is not installed on.
    fn installed(&self, installation_id: u64) -> CapResult<()> {
        match &self.app {
            Some(app) if !lock(app).installations.contains(&installation_id) => Err(error(
                ErrorCode::NotFound,
                format!("installation {installation_id} not found"),
            )),
            _ => Ok(()),
        }
    }
}

fn full_name(repo: &Repository) -> String {
    format!("{}/{}", repo.owner, repo.name).to_ascii_lowercase()
}

fn html_url(repository: &str, issue: u64, id: u64) -> String {
    format!("local://github/{repository}/pull/{issue}#issuecomment-{id}")
}

fn deployment_exists(
    connection: &rusqlite::Connection,
    repository: &str,
    deployment_id: u64,
) -> rusqlite::Result<bool> {
    connection
        .query_row(
            "SELECT 1 FROM github_deployments WHERE id = ?1 AND repository = ?2",
            params![deployment_id as i64, repository],
            |_| Ok(()),
        )
        .optional()
        .map(|found| found.is_some())
}

fn deployment_not_found(deployment_id: u64) -> crate::capabilities::Error {
    error(
        ErrorCode::NotFound,
        format!("deployment {deployment_id} not found"),
    )
}

#[async_trait]
impl GitHub for LocalGitHub {
    async fn authenticate(&self, installation_id: u64) -> CapResult<()> {
        self.installed(installation_id)
    }

    async fn list_comments(
        &self,
        installation_id: u64,
        repo: &Repository,
        issue_number: u64,
        marker: &str,
    ) -> CapResult<Vec<Comment>> {
        self.installed(installation_id)?;
        let repository = full_name(repo);
        let marker = marker.to_string();
        let rows: Vec<(i64, String)> = self
            .store
            .query(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT id, body FROM github_comments
                     WHERE repository = ?1 AND issue = ?2 AND instr(body, ?3) > 0 ORDER BY id",
                )?;
                statement
                    .query_map(params![repository, issue_number as i64, marker], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?
                    .collect()
            })
            .await
            .map_err(unavailable)?;
        let repository = full_name(repo);
        Ok(rows
            .into_iter()
            .map(|(id, body)| Comment {
                id: id as u64,
                body,
                html_url: html_url(&repository, issue_number, id as u64),
            })
            .collect())
    }

    async fn create_comment(
        &self,
        installation_id: u64,
        repo: &Repository,
        issue_number: u64,
        body: &str,
    ) -> CapResult<Comment> {
        self.installed(installation_id)?;
        let now = self.store.now_ms();
        let repository = full_name(repo);
        let text = body.to_string();
        let stored = repository.clone();
        let id = self
            .store
            .write(Durability::SurvivesCrash, move |connection| {
                connection.prepare_cached("INSERT INTO github_comments (repository, issue, body, created_at_ms, updated_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?4)")?.execute(params![stored, issue_number as i64, text, now],
                )?;
                Ok(connection.last_insert_rowid() as u64)
            })
            .await
            .map_err(unavailable)?;
        tracing::info!(%repository, issue = issue_number, comment = id, "github (local): comment created");
        Ok(Comment {
            id,
            body: body.to_string(),
            html_url: html_url(&repository, issue_number, id),
        })
    }

    async fn update_comment(
        &self,
        installation_id: u64,
        repo: &Repository,
        comment_id: u64,
        body: &str,
    ) -> CapResult<Comment> {
        self.installed(installation_id)?;
        let now = self.store.now_ms();
        let repository = full_name(repo);
        let text = body.to_string();
        let stored = repository.clone();
        let issue = self
            .store
            .write(Durability::SurvivesCrash, move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE github_comments SET body = ?3, updated_at_ms = ?4
                     WHERE id = ?1 AND repository = ?2",
                    )?
                    .execute(params![comment_id as i64, stored, text, now])?;
                connection
                    .query_row(
                        "SELECT issue FROM github_comments WHERE id = ?1 AND repository = ?2",
                        params![comment_id as i64, stored],
                        |row| row.get::<_, i64>(0),
                    )
                    .optional()
            })
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                error(
                    ErrorCode::NotFound,
                    format!("comment {comment_id} not found"),
                )
            })? as u64;
        tracing::info!(%repository, issue, comment = comment_id, "github (local): comment updated");
        Ok(Comment {
            id: comment_id,
            body: body.to_string(),
            html_url: html_url(&repository, issue, comment_id),
        })
    }

    async fn delete_comment(
        &self,
        installation_id: u64,
        repo: &Repository,
        comment_id: u64,
    ) -> CapResult<()> {
        self.installed(installation_id)?;
        let repository = full_name(repo);
        self.store
            .write(Durability::SurvivesCrash, move |connection| {
                connection
                    .prepare_cached(
                        "DELETE FROM github_comments WHERE id = ?1 AND repository = ?2",
                    )?
                    .execute(params![comment_id as i64, repository])
            })
            .await
            .map_err(unavailable)?;
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
        self.installed(installation_id)?;
        let repository = full_name(repo);
        let (sha, environment, task) = (sha.to_string(), environment.to_string(), task.to_string());
        self.store
            .query(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT id, sha, environment, task, payload FROM github_deployments
                     WHERE repository = ?1 AND sha = ?2 AND environment = ?3 AND task = ?4
                     ORDER BY id",
                )?;
                statement
                    .query_map(params![repository, sha, environment, task], |row| {
                        Ok(Deployment {
                            id: row.get::<_, i64>(0)? as u64,
                            sha: row.get(1)?,
                            environment: row.get(2)?,
                            task: row.get(3)?,
                            payload_json: row.get(4)?,
                        })
                    })?
                    .collect()
            })
            .await
            .map_err(unavailable)
    }

    async fn create_deployment(
        &self,
        installation_id: u64,
        repo: &Repository,
        new: &NewDeployment,
    ) -> CapResult<Deployment> {
        self.installed(installation_id)?;
        let now = self.store.now_ms();
        let payload = serde_json::from_str::<serde_json::Value>(&new.payload_json);
        if !matches!(payload, Ok(serde_json::Value::Object(_))) {
            return Err(error(
                ErrorCode::Invalid,
                "the deployment payload must be a JSON object",
            ));
        }
        let repository = full_name(repo);
        let stored = new.clone();
        let id = self
            .store
            .write(Durability::SurvivesCrash, move |connection| {
                connection.prepare_cached("INSERT INTO github_deployments (repository, sha, environment, task, payload,
                         description, transient_environment, production_environment, created_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")?.execute(params![
                        repository,
                        stored.sha,
                        stored.environment,
                        stored.task,
                        stored.payload_json,
                        stored.description,
                        stored.transient_environment,
                        stored.production_environment,
                        now
                    ],
                )?;
                Ok(connection.last_insert_rowid() as u64)
            })
            .await
            .map_err(unavailable)?;
        tracing::info!(repository = %full_name(repo), environment = %new.environment, sha = %new.sha, deployment = id, "github (local): deployment created");
        Ok(Deployment {
            id,
            sha: new.sha.clone(),
            environment: new.environment.clone(),
            task: new.task.clone(),
            payload_json: new.payload_json.clone(),
        })
    }

    async fn list_deployment_statuses(
        &self,
        installation_id: u64,
        repo: &Repository,
        deployment_id: u64,
    ) -> CapResult<Vec<DeploymentStatus>> {
        self.installed(installation_id)?;
        let repository = full_name(repo);
        self.store
            .query(move |connection| {
                if !deployment_exists(connection, &repository, deployment_id)? {
                    return Ok(None);
                }
                statuses_of(connection, deployment_id).map(Some)
            })
            .await
            .map_err(unavailable)?
            .ok_or_else(|| deployment_not_found(deployment_id))
    }

    async fn create_deployment_status(
        &self,
        installation_id: u64,
        repo: &Repository,
        deployment_id: u64,
        new: &NewDeploymentStatus,
    ) -> CapResult<DeploymentStatus> {
        self.installed(installation_id)?;
        let now = self.store.now_ms();
        if new.description.chars().count() > 140 {
            return Err(error(
                ErrorCode::Invalid,
                "a deployment status description has at most 140 characters",
            ));
        }
        let repository = full_name(repo);
        let stored = new.clone();
        let id = self
            .store
            // One transaction holding the write lock: no other process
            // commits between this read and the write.
            .write(Durability::SurvivesCrash, move |transaction| {
                if !deployment_exists(transaction, &repository, deployment_id)? {
                    return Ok(None);
                }
                transaction
                    .prepare_cached(
                        "INSERT INTO github_deployment_statuses
                         (deployment, state, description, environment_url, log_url, created_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![
                        deployment_id as i64,
                        state_name(stored.state),
                        stored.description,
                        stored.environment_url,
                        stored.log_url,
                        now
                    ])?;
                Ok(Some(transaction.last_insert_rowid() as u64))
            })
            .await
            .map_err(unavailable)?
            .ok_or_else(|| deployment_not_found(deployment_id))?;
        tracing::info!(repository = %full_name(repo), deployment = deployment_id, state = state_name(new.state), "github (local): deployment status");
        Ok(DeploymentStatus {
            id,
            state: new.state,
            description: new.description.clone(),
            environment_url: new.environment_url.clone(),
            log_url: new.log_url.clone(),
        })
    }

    async fn list_open_pull_requests(
        &self,
        installation_id: u64,
        repo: &Repository,
        head: &str,
    ) -> CapResult<Vec<PullRequest>> {
        self.installed(installation_id)?;
        self.open_pull_requests(repo, head).await
    }

    async fn delete_environment(
        &self,
        installation_id: u64,
        repo: &Repository,
        name: &str,
    ) -> CapResult<()> {
        self.installed(installation_id)?;
        self.remove_environment(repo, name).await
    }

    async fn delete_deployment(
        &self,
        installation_id: u64,
        repo: &Repository,
        deployment_id: u64,
    ) -> CapResult<()> {
        self.installed(installation_id)?;
        let repository = full_name(repo);
        let refused = self
            .store
            // One transaction holding the write lock: no other process
            // commits between these reads and the writes.
            .write(Durability::SurvivesCrash, move |transaction| {
                if !deployment_exists(transaction, &repository, deployment_id)? {
                    return Ok(false);
                }
                // As GitHub: "If the repository has more than one
                // deployment, you can only delete inactive deployments."
                // Whether another exists, not how many: a count read every
                // deployment the repository ever had.
                let others: bool = transaction.prepare_cached("SELECT EXISTS (SELECT 1 FROM github_deployments WHERE repository = ?1 AND id != ?2)")?.query_row(params![repository, deployment_id as i64],
                    |row| row.get(0),
                )?;
                let state = statuses_of(transaction, deployment_id)?
                    .last()
                    .map(|s| s.state);
                let retired = state == Some(DeploymentState::Inactive);
                if others && !retired {
                    return Ok(true);
                }
                transaction.prepare_cached("DELETE FROM github_deployment_statuses WHERE deployment = ?1")?.execute(params![deployment_id as i64],
                )?;
                transaction.prepare_cached("DELETE FROM github_deployments WHERE id = ?1")?.execute(params![deployment_id as i64],
                )?;
                Ok(false)
            })
            .await
            .map_err(unavailable)?;
        if refused {
            return Err(error(
                ErrorCode::Invalid,
                format!("deployment {deployment_id} is active: give it an inactive status first"),
            ));
        }
        Ok(())
    }

    async fn create_installation_token(
        &self,
        installation_id: u64,
        repo: &Repository,
    ) -> CapResult<Secret> {
        self.installed(installation_id)?;
        let repository = full_name(repo);
        let now = self.store.now_ms();
        self.store
            .write(Durability::SurvivesCrash, move |connection| {
                connection
                    .prepare_cached(
                        "INSERT INTO github_tokens (installation, repository, issued_at_ms)
                     VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![installation_id as i64, repository, now])
            })
            .await
            .map_err(unavailable)?;
        let token = Secret::new(format!("ghs_local_{}", self.store.random_hex(18)));
        if let Some(app) = &self.app {
            lock(app).tokens.push(token.clone());
        }
        Ok(token)
    }
}

mod pulls;
#[cfg(test)]
mod tests;
