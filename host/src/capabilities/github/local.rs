//! GitHub recorded in the embedded database: comments are kept as they
//! would appear on the pull request, installation tokens are issued (random,
//! valid for nothing) and their issue recorded without the value. Any
//! installation id is accepted: there is no GitHub App to check against.

use async_trait::async_trait;
use rusqlite::{OptionalExtension as _, params};

use super::{Comment, GitHub, Repository};
use crate::capabilities::sealed::Secret;
use crate::capabilities::{CapResult, ErrorCode, error};
use crate::local::{Store, now_ms, random_hex, unavailable};

pub struct LocalGitHub {
    store: Store,
}

impl LocalGitHub {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn full_name(repo: &Repository) -> String {
    format!("{}/{}", repo.owner, repo.name).to_ascii_lowercase()
}

fn html_url(repository: &str, issue: u64, id: u64) -> String {
    format!("local://github/{repository}/pull/{issue}#issuecomment-{id}")
}

/// A recorded comment, for `show` and tests.
#[derive(Clone, Debug)]
pub struct RecordedComment {
    pub id: u64,
    pub repository: String,
    pub issue: u64,
    pub body: String,
}

/// Every comment in the database, oldest first.
pub fn comments(store: &Store) -> anyhow::Result<Vec<RecordedComment>> {
    store.read(|connection| {
        let mut statement = connection
            .prepare("SELECT id, repository, issue, body FROM github_comments ORDER BY id")?;
        statement
            .query_map([], |row| {
                Ok(RecordedComment {
                    id: row.get::<_, i64>(0)? as u64,
                    repository: row.get(1)?,
                    issue: row.get::<_, i64>(2)? as u64,
                    body: row.get(3)?,
                })
            })?
            .collect()
    })
}

/// How many installation tokens were issued per repository.
pub fn tokens_issued(store: &Store) -> anyhow::Result<Vec<(String, u64)>> {
    store.read(|connection| {
        let mut statement = connection.prepare(
            "SELECT repository, COUNT(*) FROM github_tokens GROUP BY repository ORDER BY repository",
        )?;
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?
            .collect()
    })
}

#[async_trait]
impl GitHub for LocalGitHub {
    async fn authenticate(&self, _installation_id: u64) -> CapResult<()> {
        Ok(())
    }

    async fn list_comments(
        &self,
        _installation_id: u64,
        repo: &Repository,
        issue_number: u64,
        marker: &str,
    ) -> CapResult<Vec<Comment>> {
        let repository = full_name(repo);
        let marker = marker.to_string();
        let rows: Vec<(i64, String)> = self
            .store
            .run(move |connection| {
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
        _installation_id: u64,
        repo: &Repository,
        issue_number: u64,
        body: &str,
    ) -> CapResult<Comment> {
        let repository = full_name(repo);
        let text = body.to_string();
        let stored = repository.clone();
        let id = self
            .store
            .run(move |connection| {
                let now = now_ms();
                connection.execute(
                    "INSERT INTO github_comments (repository, issue, body, created_at_ms, updated_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?4)",
                    params![stored, issue_number as i64, text, now],
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
        _installation_id: u64,
        repo: &Repository,
        comment_id: u64,
        body: &str,
    ) -> CapResult<Comment> {
        let repository = full_name(repo);
        let text = body.to_string();
        let stored = repository.clone();
        let issue = self
            .store
            .run(move |connection| {
                connection.execute(
                    "UPDATE github_comments SET body = ?3, updated_at_ms = ?4
                     WHERE id = ?1 AND repository = ?2",
                    params![comment_id as i64, stored, text, now_ms()],
                )?;
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
        _installation_id: u64,
        repo: &Repository,
        comment_id: u64,
    ) -> CapResult<()> {
        let repository = full_name(repo);
        self.store
            .run(move |connection| {
                connection.execute(
                    "DELETE FROM github_comments WHERE id = ?1 AND repository = ?2",
                    params![comment_id as i64, repository],
                )
            })
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn create_installation_token(
        &self,
        installation_id: u64,
        repo: &Repository,
    ) -> CapResult<Secret> {
        let repository = full_name(repo);
        self.store
            .run(move |connection| {
                connection.execute(
                    "INSERT INTO github_tokens (installation, repository, issued_at_ms)
                     VALUES (?1, ?2, ?3)",
                    params![installation_id as i64, repository, now_ms()],
                )
            })
            .await
            .map_err(unavailable)?;
        Ok(Secret::new(format!("ghs_local_{}", random_hex(18))))
    }
}
