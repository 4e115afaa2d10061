//! What the local GitHub recorded, read back: for `envmgr show`, and the
//! mock host's tests (which also add its installations and edit a comment
//! behind the logic's back, as a person might).

use rusqlite::params;

use super::{LocalGitHub, html_url, lock};
use crate::capabilities::github::{
    Comment, Deployment, DeploymentState, DeploymentStatus, state_named,
};
use crate::local::{Durability, Store};

impl LocalGitHub {
    /// Install the mock host's App on `installation_id`
    /// ([`installed_only`](LocalGitHub::installed_only)); `serve`'s local
    /// GitHub takes every installation already.
    pub fn add_installation(&self, installation_id: u64) {
        if let Some(app) = &self.app {
            lock(app).installations.insert(installation_id);
        }
    }

    /// Every installation token handed out, for a test to look for; none
    /// but the mock host's App keeps their values.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.app.as_ref().map_or_else(Vec::new, |app| {
            lock(app)
                .tokens
                .iter()
                .map(|token| token.expose().to_string())
                .collect()
        })
    }

    /// The comments on issue `issue` of `repository` (`owner/name`),
    /// oldest first, as GitHub lists them.
    pub fn comments(&self, repository: &str, issue: u64) -> anyhow::Result<Vec<Comment>> {
        let repository = repository.to_ascii_lowercase();
        Ok(comments(&self.store)?
            .into_iter()
            .filter(|c| c.repository == repository && c.issue == issue)
            .map(|c| Comment {
                id: c.id,
                html_url: html_url(&c.repository, c.issue, c.id),
                body: c.body,
            })
            .collect())
    }

    /// Delete a comment behind the logic's back, as a person might.
    pub fn remove_comment(&self, comment_id: u64) -> anyhow::Result<()> {
        self.store
            .write_now(Durability::SurvivesCrash, move |connection| {
                connection.execute(
                    "DELETE FROM github_comments WHERE id = ?1",
                    params![comment_id as i64],
                )
            })?;
        Ok(())
    }

    /// The deployments of `repository` (`owner/name`), oldest first, with
    /// their statuses.
    pub fn deployments(&self, repository: &str) -> anyhow::Result<Vec<RecordedDeployment>> {
        let repository = repository.to_ascii_lowercase();
        let mut all = deployments(&self.store)?;
        all.retain(|d| d.repository == repository);
        Ok(all)
    }
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

/// A recorded deployment with its statuses, for `show` and tests.
#[derive(Clone, Debug)]
pub struct RecordedDeployment {
    /// `owner/name`, lower-cased.
    pub repository: String,
    /// As GitHub answers for it (`payload_json` as sent).
    pub deployment: Deployment,
    pub description: String,
    pub transient_environment: bool,
    pub production_environment: bool,
    /// Oldest first.
    pub statuses: Vec<DeploymentStatus>,
}

impl RecordedDeployment {
    /// The state of its newest status.
    pub fn state(&self) -> Option<DeploymentState> {
        self.statuses.last().map(|s| s.state)
    }
}

/// Every deployment in the database, oldest first, with its statuses.
pub fn deployments(store: &Store) -> anyhow::Result<Vec<RecordedDeployment>> {
    store.read(|connection| {
        let mut statement = connection.prepare(
            "SELECT id, repository, sha, environment, task, payload, description,
                    transient_environment, production_environment
             FROM github_deployments ORDER BY id",
        )?;
        let mut all = statement
            .query_map([], |row| {
                Ok(RecordedDeployment {
                    repository: row.get(1)?,
                    deployment: Deployment {
                        id: row.get::<_, i64>(0)? as u64,
                        sha: row.get(2)?,
                        environment: row.get(3)?,
                        task: row.get(4)?,
                        payload_json: row.get(5)?,
                    },
                    description: row.get(6)?,
                    transient_environment: row.get(7)?,
                    production_environment: row.get(8)?,
                    statuses: Vec::new(),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for deployment in &mut all {
            deployment.statuses = statuses_of(connection, deployment.deployment.id)?;
        }
        Ok(all)
    })
}

pub(super) fn statuses_of(
    connection: &rusqlite::Connection,
    deployment: u64,
) -> rusqlite::Result<Vec<DeploymentStatus>> {
    let mut statement = connection.prepare_cached(
        "SELECT id, state, description, environment_url, log_url
         FROM github_deployment_statuses WHERE deployment = ?1 ORDER BY id",
    )?;
    statement
        .query_map(params![deployment as i64], |row| {
            let state: String = row.get(1)?;
            Ok(DeploymentStatus {
                id: row.get::<_, i64>(0)? as u64,
                // Only this backend writes the column, from a state's name.
                state: state_named(&state).unwrap_or(DeploymentState::Error),
                description: row.get(2)?,
                environment_url: row.get(3)?,
                log_url: row.get(4)?,
            })
        })?
        .collect()
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
