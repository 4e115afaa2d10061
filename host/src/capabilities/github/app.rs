//! GitHub through octocrab, as a GitHub App: the App's key signs a JWT that
//! is exchanged for an installation token; octocrab caches that token per
//! installation client until shortly before it expires, and this backend
//! keeps one client per installation.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use octocrab::Octocrab;
use octocrab::models::{AppId, InstallationId};
use serde::Deserialize;

use super::{
    Comment, Deployment, DeploymentStatus, GitHub, NewDeployment, NewDeploymentStatus, Repository,
    state_name, state_named,
};
use crate::capabilities::sealed::Secret;
use crate::capabilities::{CapResult, Error, ErrorCode, error};

/// Comments, deployments or statuses per page when listing (GitHub's maximum).
const PER_PAGE: u32 = 100;
/// The media type GitHub's REST documentation asks for.
const MEDIA_TYPE: &str = "application/vnd.github+json";

pub struct GitHubApp {
    app_id: u64,
    app: Octocrab,
    installations: Mutex<HashMap<u64, Octocrab>>,
}

/// The fields envmgr reads of a comment.
#[derive(Deserialize)]
struct IssueComment {
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

impl From<IssueComment> for Comment {
    fn from(c: IssueComment) -> Self {
        Comment {
            id: c.id,
            body: c.body.unwrap_or_default(),
            html_url: c.html_url,
        }
    }
}

/// The fields envmgr reads of a deployment.
#[derive(Deserialize)]
struct DeploymentJson {
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

/// The fields envmgr reads of a deployment status.
#[derive(Deserialize)]
struct DeploymentStatusJson {
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

impl GitHubApp {
    /// `api_url`: https://api.github.com, a GitHub Enterprise API, or a test server.
    pub fn new(app_id: u64, private_key_pem: &str, api_url: &str) -> anyhow::Result<Self> {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("the GitHub App private key is not an RSA PEM: {e}"))?;
        // Installation clients share this one's headers.
        let app = Octocrab::builder()
            .base_uri(api_url)?
            .add_header(reqwest::header::ACCEPT, MEDIA_TYPE.to_string())
            .app(AppId(app_id), key)
            .build()?;
        Ok(Self {
            app_id,
            app,
            installations: Mutex::new(HashMap::new()),
        })
    }

    /// The client for an installation; it holds the cached token.
    fn installation(&self, installation_id: u64) -> CapResult<Octocrab> {
        let mut clients = self.installations.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(&installation_id) {
            return Ok(client.clone());
        }
        let client = self
            .app
            .installation(InstallationId(installation_id))
            .map_err(|e| github_error("installation client", e))?;
        clients.insert(installation_id, client.clone());
        Ok(client)
    }

    /// An installation client whose token is known to be valid.
    async fn authenticated(&self, installation_id: u64) -> CapResult<Octocrab> {
        let client = self.installation(installation_id)?;
        client
            .installation_token()
            .await
            .map_err(|e| github_error("installation token", e))?;
        Ok(client)
    }
}

fn repo_path(repo: &Repository) -> String {
    format!("/repos/{}/{}", repo.owner, repo.name)
}

/// The route of the next page, if any (its link carries the query). Only
/// the path and query of the link: octocrab sends the token only to its
/// own base URL (GitHub Enterprise, tests).
fn next_page<T>(page: &octocrab::Page<T>) -> Option<String> {
    page.next
        .as_ref()
        .and_then(|next| next.path_and_query())
        .map(|p| p.as_str().to_string())
}

/// GitHub's answer in the contract's terms. Rate limits (429, or 403 with
/// no requests left) are `throttled` with the time to wait.
fn github_error(what: &str, e: octocrab::Error) -> Error {
    match &e {
        octocrab::Error::GitHub { source, .. } => {
            let status = source.status_code.as_u16();
            let header = |name: &str| {
                source
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let out_of_requests = header("x-ratelimit-remaining").as_deref() == Some("0")
                || source.message.to_ascii_lowercase().contains("rate limit");
            let code = match status {
                404 | 410 => ErrorCode::NotFound,
                429 => ErrorCode::Throttled,
                403 if out_of_requests => ErrorCode::Throttled,
                401 | 403 => ErrorCode::Denied,
                409 => ErrorCode::Conflict,
                s if s >= 500 => ErrorCode::Unavailable,
                _ => ErrorCode::Invalid,
            };
            let retry_after_ms = header("retry-after")
                .and_then(|s| s.parse::<u64>().ok())
                .map(|s| s * 1000)
                .or_else(|| {
                    let reset = source.rate_limit_reset?;
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .ok()?
                        .as_secs();
                    (code == ErrorCode::Throttled).then(|| reset.saturating_sub(now) * 1000)
                });
            Error {
                code,
                message: format!("github {what}: {status} {}", source.message),
                retry_after_ms,
            }
        }
        // No answer, or one that did not parse: may pass.
        other => error(
            ErrorCode::Unavailable,
            format!("github {what}: {}", crate::aws::error_chain(other)),
        ),
    }
}

#[async_trait]
impl GitHub for GitHubApp {
    async fn authenticate(&self, installation_id: u64) -> CapResult<()> {
        self.authenticated(installation_id).await.map(drop)
    }

    async fn list_comments(
        &self,
        installation_id: u64,
        repo: &Repository,
        issue_number: u64,
        marker: &str,
    ) -> CapResult<Vec<Comment>> {
        let client = self.authenticated(installation_id).await?;
        let route = format!(
            "{}/issues/{issue_number}/comments?per_page={PER_PAGE}",
            repo_path(repo)
        );
        let mut found = Vec::new();
        let mut route = Some(route);
        while let Some(current) = route.take() {
            let mut page: octocrab::Page<IssueComment> = client
                .get(current, None::<&()>)
                .await
                .map_err(|e| github_error("list comments", e))?;
            found.extend(
                std::mem::take(&mut page.items)
                    .into_iter()
                    // A person quoting the marker does not make their
                    // comment ours.
                    .filter(|c| {
                        c.performed_via_github_app.as_ref().map(|a| a.id) == Some(self.app_id)
                    })
                    .map(Comment::from)
                    .filter(|c| c.body.contains(marker)),
            );
            route = next_page(&page);
        }
        Ok(found)
    }

    async fn create_comment(
        &self,
        installation_id: u64,
        repo: &Repository,
        issue_number: u64,
        body: &str,
    ) -> CapResult<Comment> {
        let client = self.authenticated(installation_id).await?;
        let route = format!("{}/issues/{issue_number}/comments", repo_path(repo));
        client
            .post::<_, IssueComment>(route, Some(&serde_json::json!({ "body": body })))
            .await
            .map(Comment::from)
            .map_err(|e| github_error("create comment", e))
    }

    async fn update_comment(
        &self,
        installation_id: u64,
        repo: &Repository,
        comment_id: u64,
        body: &str,
    ) -> CapResult<Comment> {
        let client = self.authenticated(installation_id).await?;
        let route = format!("{}/issues/comments/{comment_id}", repo_path(repo));
        client
            .patch::<IssueComment, _, _>(route, Some(&serde_json::json!({ "body": body })))
            .await
            .map(Comment::from)
            .map_err(|e| github_error("update comment", e))
    }

    async fn delete_comment(
        &self,
        installation_id: u64,
        repo: &Repository,
        comment_id: u64,
    ) -> CapResult<()> {
        let client = self.authenticated(installation_id).await?;
        let route = format!("{}/issues/comments/{comment_id}", repo_path(repo));
        let response = client
            ._delete(route, None::<&()>)
            .await
            .map_err(|e| github_error("delete comment", e))?;
        if response.status().as_u16() == 404 {
            return Ok(());
        }
        octocrab::map_github_error(response)
            .await
            .map(drop)
            .map_err(|e| github_error("delete comment", e))
    }

    async fn find_deployments(
        &self,
        installation_id: u64,
        repo: &Repository,
        sha: &str,
        environment: &str,
        task: &str,
    ) -> CapResult<Vec<Deployment>> {
        let client = self.authenticated(installation_id).await?;
        let query = [
            ("sha", sha.to_string()),
            ("environment", environment.to_string()),
            ("task", task.to_string()),
            ("per_page", PER_PAGE.to_string()),
        ];
        let list = |e| github_error("list deployments", e);
        let mut page: octocrab::Page<DeploymentJson> = client
            .get(format!("{}/deployments", repo_path(repo)), Some(&query))
            .await
            .map_err(list)?;
        let mut found: Vec<Deployment> = Vec::new();
        loop {
            found.extend(
                std::mem::take(&mut page.items)
                    .into_iter()
                    .map(Deployment::from),
            );
            let Some(next) = next_page(&page) else { break };
            page = client.get(next, None::<&()>).await.map_err(list)?;
        }
        // GitHub lists the newest first.
        found.sort_by_key(|d| d.id);
        Ok(found)
    }

    async fn create_deployment(
        &self,
        installation_id: u64,
        repo: &Repository,
        new: &NewDeployment,
    ) -> CapResult<Deployment> {
        let payload: serde_json::Value = serde_json::from_str(&new.payload_json)
            .ok()
            .filter(serde_json::Value::is_object)
            .ok_or_else(|| {
                error(
                    ErrorCode::Invalid,
                    "the deployment payload must be a JSON object",
                )
            })?;
        let client = self.authenticated(installation_id).await?;
        let body = serde_json::json!({
            "ref": new.sha,
            "task": new.task,
            // Never merge the default branch into the user's branch, never
            // wait for (or refuse over) commit statuses: see the WIT.
            "auto_merge": false,
            "required_contexts": [],
            "payload": payload,
            "environment": new.environment,
            "description": new.description,
            "transient_environment": new.transient_environment,
            "production_environment": new.production_environment,
        });
        client
            .post::<_, DeploymentJson>(format!("{}/deployments", repo_path(repo)), Some(&body))
            .await
            .map(Deployment::from)
            .map_err(|e| github_error("create deployment", e))
    }

    async fn list_deployment_statuses(
        &self,
        installation_id: u64,
        repo: &Repository,
        deployment_id: u64,
    ) -> CapResult<Vec<DeploymentStatus>> {
        let client = self.authenticated(installation_id).await?;
        let first = format!(
            "{}/deployments/{deployment_id}/statuses?per_page={PER_PAGE}",
            repo_path(repo)
        );
        let mut found = Vec::new();
        let mut route = Some(first);
        while let Some(current) = route.take() {
            let mut page: octocrab::Page<DeploymentStatusJson> = client
                .get(current, None::<&()>)
                .await
                .map_err(|e| github_error("list deployment statuses", e))?;
            for status in std::mem::take(&mut page.items) {
                found.push(DeploymentStatus::try_from(status)?);
            }
            route = next_page(&page);
        }
        // GitHub lists the newest first; its order is not documented.
        found.sort_by_key(|s: &DeploymentStatus| s.id);
        Ok(found)
    }

    async fn create_deployment_status(
        &self,
        installation_id: u64,
        repo: &Repository,
        deployment_id: u64,
        status: &NewDeploymentStatus,
    ) -> CapResult<DeploymentStatus> {
        let client = self.authenticated(installation_id).await?;
        let mut body = serde_json::json!({
            "state": state_name(status.state),
            "description": status.description,
        });
        // Absent rather than null: GitHub takes strings there.
        if let Some(url) = &status.environment_url {
            body["environment_url"] = url.as_str().into();
        }
        if let Some(url) = &status.log_url {
            body["log_url"] = url.as_str().into();
        }
        let route = format!("{}/deployments/{deployment_id}/statuses", repo_path(repo));
        let created: DeploymentStatusJson = client
            .post(route, Some(&body))
            .await
            .map_err(|e| github_error("create deployment status", e))?;
        DeploymentStatus::try_from(created)
    }

    async fn delete_deployment(
        &self,
        installation_id: u64,
        repo: &Repository,
        deployment_id: u64,
    ) -> CapResult<()> {
        let client = self.authenticated(installation_id).await?;
        let route = format!("{}/deployments/{deployment_id}", repo_path(repo));
        let response = client
            ._delete(route, None::<&()>)
            .await
            .map_err(|e| github_error("delete deployment", e))?;
        if response.status().as_u16() == 404 {
            return Ok(());
        }
        octocrab::map_github_error(response)
            .await
            .map(drop)
            .map_err(|e| github_error("delete deployment", e))
    }

    async fn create_installation_token(
        &self,
        installation_id: u64,
        repo: &Repository,
    ) -> CapResult<Secret> {
        // A client of its own, so the token is scoped to this one repository
        // and minted fresh rather than taken from the shared cache.
        let scoped = self
            .app
            .installation_builder(InstallationId(installation_id))
            .repositories(vec![repo.name.clone()])
            .build()
            .map_err(|e| github_error("installation token", e))?;
        let token = scoped
            .installation_token()
            .await
            .map_err(|e| github_error("installation token", e))?;
        use secrecy::ExposeSecret;
        Ok(Secret::new(token.expose_secret()))
    }
}
