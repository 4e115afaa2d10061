//! The embedded GitHub's pull requests and environments. It sees no
//! webhooks, so it knows of the pull requests someone opened on it (the
//! demo, tests: [`LocalGitHub::open_pull_request`]); a branch with none
//! known has no open pull request, as on a repository where it was closed.
//! Deleting an environment deletes its deployments and their statuses, as
//! GitHub does, and is remembered.

use rusqlite::params;

use super::{LocalGitHub, full_name};
use crate::capabilities::CapResult;
use crate::capabilities::github::{PullRequest, Repository};
use crate::local::{Durability, unavailable};

impl LocalGitHub {
    /// Open (or reopen) pull request `number` of `repo` with its head at
    /// `head` (`owner:branch`) and `head_sha`.
    pub async fn open_pull_request(
        &self,
        repo: &Repository,
        number: u64,
        head: &str,
        head_sha: &str,
    ) -> anyhow::Result<()> {
        let (repository, head, sha) = (full_name(repo), head.to_string(), head_sha.to_string());
        self.store
            .write(Durability::SurvivesCrash, move |tx| {
                tx.execute(
                    "INSERT INTO github_pull_requests (repository, number, head, head_sha, open)
                     VALUES (?1, ?2, ?3, ?4, 1)
                     ON CONFLICT (repository, number)
                     DO UPDATE SET head = ?3, head_sha = ?4, open = 1",
                    params![repository, number as i64, head, sha],
                )
            })
            .await?;
        Ok(())
    }

    /// Close pull request `number` of `repo`: forgotten (only open ones
    /// are listed, and the table stays as small as what is open).
    pub async fn close_pull_request(&self, repo: &Repository, number: u64) -> anyhow::Result<()> {
        let repository = full_name(repo);
        self.store
            .write(Durability::SurvivesCrash, move |tx| {
                tx.execute(
                    "DELETE FROM github_pull_requests WHERE repository = ?1 AND number = ?2",
                    params![repository, number as i64],
                )
            })
            .await?;
        Ok(())
    }

    /// What a `pull_request` webhook (or a platform API create naming a
    /// pull request) sent to the embedded GitHub's deployment (`envmgr
    /// send`) says of its pull request: on GitHub the
    /// pull request is open or closed before the event is sent, so the
    /// embedded GitHub holds it as the event describes it — or the sweep
    /// would find every preview's pull request missing, and end it. Any
    /// other body is not a pull request's event: nothing changes.
    pub async fn observe(&self, body: &str) -> anyhow::Result<()> {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(body) else {
            return Ok(());
        };
        // The webhook service's envelope (`{"id", "name", "payload"}`,
        // docs/messages.md) or the event alone.
        let event = message.get("payload").unwrap_or(&message);
        let text = |path: &str| event.pointer(path).and_then(|v| v.as_str());
        // A platform API create naming a pull request: open, as it says.
        if let ("create-environment", Some(repository), Some(branch), Some(sha), Some(number)) = (
            text("/kind").unwrap_or_default(),
            text("/repository"),
            text("/branch"),
            text("/sha"),
            event
                .pointer("/pullRequest/number")
                .and_then(|v| v.as_u64()),
        ) {
            let (owner, name) = repository.split_once('/').unwrap_or(("", repository));
            let repo = Repository {
                owner: owner.to_string(),
                name: name.to_string(),
            };
            let head = format!("{owner}:{branch}");
            return self.open_pull_request(&repo, number, &head, sha).await;
        }
        let (Some(action), Some(repository), Some(number)) = (
            text("/action"),
            text("/repository/full_name"),
            event
                .pointer("/pull_request/number")
                .and_then(|v| v.as_u64()),
        ) else {
            return Ok(());
        };
        let (owner, name) = repository.split_once('/').unwrap_or(("", repository));
        let repo = Repository {
            owner: owner.to_string(),
            name: name.to_string(),
        };
        match (
            action,
            text("/pull_request/head/label"),
            text("/pull_request/head/sha"),
        ) {
            ("closed", _, _) => self.close_pull_request(&repo, number).await,
            (_, Some(head), Some(sha)) => self.open_pull_request(&repo, number, head, sha).await,
            _ => Ok(()),
        }
    }

    /// The environments deleted from `repo`, by name.
    pub fn deleted_environments(&self, repo: &Repository) -> anyhow::Result<Vec<String>> {
        let repository = full_name(repo);
        self.store.read(|c| {
            c.prepare(
                "SELECT name FROM github_deleted_environments WHERE repository = ?1 ORDER BY name",
            )?
            .query_map([repository], |row| row.get(0))?
            .collect()
        })
    }

    pub(super) async fn open_pull_requests(
        &self,
        repo: &Repository,
        head: &str,
    ) -> CapResult<Vec<PullRequest>> {
        let (repository, head) = (full_name(repo), head.to_string());
        self.store
            .query(move |c| {
                c.prepare_cached(
                    "SELECT number, head_sha FROM github_pull_requests
                      WHERE repository = ?1 AND (?2 = '' OR head = ?2) AND open = 1
                      ORDER BY number",
                )?
                .query_map(params![repository, head], |row| {
                    Ok(PullRequest {
                        number: row.get::<_, i64>(0)? as u64,
                        head_sha: row.get(1)?,
                    })
                })?
                .collect()
            })
            .await
            .map_err(unavailable)
    }

    pub(super) async fn remove_environment(&self, repo: &Repository, name: &str) -> CapResult<()> {
        let (repository, environment) = (full_name(repo), name.to_string());
        let now = self.store.now_ms();
        let gone = self
            .store
            .write(Durability::SurvivesCrash, move |tx| {
                tx.execute(
                    "DELETE FROM github_deployment_statuses WHERE deployment IN
                       (SELECT id FROM github_deployments WHERE repository = ?1 AND environment = ?2)",
                    params![repository, environment],
                )?;
                let gone = tx.execute(
                    "DELETE FROM github_deployments WHERE repository = ?1 AND environment = ?2",
                    params![repository, environment],
                )?;
                tx.execute(
                    "INSERT INTO github_deleted_environments (repository, name, deleted_at_ms)
                     VALUES (?1, ?2, ?3)
                     ON CONFLICT (repository, name) DO UPDATE SET deleted_at_ms = ?3",
                    params![repository, environment, now],
                )?;
                Ok(gone)
            })
            .await
            .map_err(unavailable)?;
        tracing::info!(repository = %full_name(repo), environment = name, deployments = gone, "github (local): environment deleted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opened, then closed, then reopened as the webhooks say; a platform
    /// API create naming a pull request opens it; anything else changes
    /// nothing.
    async fn open(github: &LocalGitHub, repo: &Repository) -> Vec<u64> {
        let listed = github.open_pull_requests(repo, "").await.unwrap();
        listed.iter().map(|p| p.number).collect()
    }

    #[tokio::test]
    async fn the_embedded_github_holds_pull_requests_as_their_events_say() {
        let github = LocalGitHub::new(crate::local::Store::in_memory().unwrap());
        let repo = Repository {
            owner: "acme".into(),
            name: "shop".into(),
        };
        let event = |action: &str, number: u64| {
            serde_json::json!({ "id": "d1", "name": "pull_request", "payload": {
                "action": action, "number": number,
                "repository": { "full_name": "acme/shop" },
                "pull_request": { "number": number,
                    "head": { "label": "acme:feature", "sha": "1".repeat(40) } },
            }})
            .to_string()
        };
        github.observe(&event("opened", 7)).await.unwrap();
        assert_eq!(open(&github, &repo).await, [7]);
        github.observe(&event("closed", 7)).await.unwrap();
        assert!(open(&github, &repo).await.is_empty());
        github.observe(&event("reopened", 7)).await.unwrap();
        let create = serde_json::json!({
            "version": 1, "kind": "create-environment", "repository": "acme/shop",
            "branch": "other", "sha": "2".repeat(40), "pullRequest": { "number": 9 },
        });
        github.observe(&create.to_string()).await.unwrap();
        github.observe("not json").await.unwrap();
        github.observe(r#"{"kind":"sweep"}"#).await.unwrap();
        assert_eq!(open(&github, &repo).await, [7, 9]);
        let by_head = github
            .open_pull_requests(&repo, "acme:other")
            .await
            .unwrap();
        assert_eq!(by_head.len(), 1);
    }
}
