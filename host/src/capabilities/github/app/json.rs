//! The fields envmgr reads of GitHub's answers.

use serde::Deserialize;

use super::super::{Comment, Deployment, DeploymentStatus, PullRequest, state_named};
use crate::capabilities::{Error, ErrorCode, error};

/// A comment.
#[derive(Deserialize)]
pub struct IssueComment {
    id: u64,
    #[serde(default)]
    body: Option<String>,
    html_url: String,
    /// Set on comments an App made; only this app's count as envmgr's.
    #[serde(default)]
    performed_via_github_app: Option<AppRef>,
}

#[derive(Deserialize)]
struct AppRef {
    id: u64,
}

impl IssueComment {
    /// Whether App `app_id` made it (a person quoting envmgr's marker does
    /// not make their comment envmgr's).
    pub fn made_by(&self, app_id: u64) -> bool {
        self.performed_via_github_app.as_ref().map(|a| a.id) == Some(app_id)
    }
}

impl From<IssueComment> for Comment {
    fn from(c: IssueComment) -> Self {
        Comment {
            id: c.id,
            body: c.body.unwrap_or_default(),
            html_url: c.html_url,
        }
    }
}

/// A deployment.
#[derive(Deserialize)]
pub struct DeploymentJson {
    id: u64,
    sha: String,
    environment: String,
    task: String,
    /// An object, or the text it was created with.
    #[serde(default)]
    payload: serde_json::Value,
}

impl From<DeploymentJson> for Deployment {
    fn from(d: DeploymentJson) -> Self {
        Deployment {
            id: d.id,
            sha: d.sha,
            environment: d.environment,
            task: d.task,
            payload_json: match d.payload {
                serde_json::Value::Null => "{}".to_string(),
                serde_json::Value::String(text) => text,
                object => object.to_string(),
            },
        }
    }
}

/// A deployment status.
#[derive(Deserialize)]
pub struct DeploymentStatusJson {
    id: u64,
    state: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    environment_url: Option<String>,
    #[serde(default)]
    log_url: Option<String>,
}

impl TryFrom<DeploymentStatusJson> for DeploymentStatus {
    type Error = Error;

    fn try_from(s: DeploymentStatusJson) -> Result<Self, Error> {
        let state = state_named(&s.state).ok_or_else(|| {
            error(
                ErrorCode::Unavailable,
                format!("github answered an unknown deployment state `{}`", s.state),
            )
        })?;
        // GitHub answers "" for a URL never set.
        let url = |u: Option<String>| u.filter(|u| !u.is_empty());
        Ok(DeploymentStatus {
            id: s.id,
            state,
            description: s.description.unwrap_or_default(),
            environment_url: url(s.environment_url),
            log_url: url(s.log_url),
        })
    }
}

/// GitHub's error body (the field envmgr reads).
#[derive(Deserialize)]
pub struct ErrorBody {
    pub message: Option<String>,
}

/// A pull request, as "List pull requests" gives it.
#[derive(Deserialize)]
pub struct PullRequestJson {
    number: u64,
    head: HeadJson,
}

#[derive(Deserialize)]
struct HeadJson {
    sha: String,
}

impl From<PullRequestJson> for PullRequest {
    fn from(p: PullRequestJson) -> Self {
        PullRequest {
            number: p.number,
            head_sha: p.head.sha,
        }
    }
}
