//! GitHub through octocrab, as a GitHub App, spending as few requests as
//! GitHub allows and keeping to its rules for integrations:
//!
//! - one installation token per installation, minted with the App's JWT
//!   and kept until shortly before it expires, shared by every caller
//!   (`tokens.rs`); the runtime's token is minted per request, scoped to
//!   one repository and the configured permissions;
//! - one request at a time per installation, writes spaced, and a wait
//!   when an answer asks for one, within a bound (`limiter.rs`); octocrab's
//!   own retries are off, so nothing is sent again behind envmgr's back;
//! - list pages asked for conditionally, a `304` standing for the page
//!   read before (`conditional.rs`);
//! - every request with GitHub's media type and API version (`client.rs`).

mod client;
mod conditional;
mod installations;
mod json;
mod limiter;
mod retry;
mod tokens;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use http::header::{ACCEPT, HeaderName};
use http::{Method, StatusCode};
use octocrab::Octocrab;
use octocrab::service::middleware::retry::RetryConfig;
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;

use self::client::ApiRequest;
use self::json::{DeploymentJson, DeploymentStatusJson, IssueComment, PullRequestJson};
pub use self::limiter::{RateLimit, RequestCounts};
pub use self::tokens::{
    INSTALLATION_PERMISSIONS, RUNTIME_TOKEN_PERMISSIONS_KEY, check_runtime_token_permissions,
};
use super::{
    Comment, Deployment, DeploymentStatus, GitHub, NewDeployment, NewDeploymentStatus, PullRequest,
    Repository, state_name,
};
use crate::capabilities::{CapResult, ErrorCode, error};
use crate::redact::Secret;

/// Comments, deployments or statuses per page when listing (GitHub's maximum).
const PER_PAGE: u32 = 100;
/// The media type GitHub's REST documentation asks for.
const MEDIA_TYPE: &str = "application/vnd.github+json";
/// The REST API version envmgr is written against.
const API_VERSION: &str = "2022-11-28";
/// GitHub ends a request it takes more than 10 s over; these only bound a
/// connection that hangs, which would hold its installation's turn.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// `[github] max_wait_ms` when unset.
pub const DEFAULT_MAX_WAIT_MS: u64 = 2_000;

/// `[github] runtime_token_permissions` when unset: the runtime clones the
/// repository and needs nothing else.
pub fn default_runtime_token_permissions() -> BTreeMap<String, String> {
    BTreeMap::from([("contents".to_string(), "read".to_string())])
}

/// How the backend talks to GitHub (the `[github]` keys).
#[derive(Clone, Debug)]
pub struct GitHubAppOptions {
    /// https://api.github.com, a GitHub Enterprise API, or a test server.
    pub api_url: String,
    /// Permission → `read`/`write` of the runtime's token.
    pub runtime_token_permissions: BTreeMap<String, String>,
    /// Least time between one mutative request's answer and the next
    /// mutative request of the same installation.
    pub write_spacing: Duration,
    /// Longest one request waits when GitHub asks to wait; past it the call
    /// fails as `throttled` with the time to wait.
    pub max_wait: Duration,
    /// Every token minted and JWT signed is registered here, so no
    /// dependency's text can carry one back.
    pub credentials: crate::redact::Credentials,
}

impl GitHubAppOptions {
    /// The defaults of the `[github]` keys, against `api_url`.
    pub fn new(api_url: impl Into<String>) -> Self {
        Self {
            api_url: api_url.into(),
            runtime_token_permissions: default_runtime_token_permissions(),
            write_spacing: Duration::ZERO,
            max_wait: Duration::from_millis(DEFAULT_MAX_WAIT_MS),
            credentials: crate::redact::Credentials::default(),
        }
    }
}

/// An RSA private key in PEM, as GitHub gives an App's.
pub fn parse_private_key(pem: &str) -> anyhow::Result<jsonwebtoken::EncodingKey> {
    jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("the GitHub App private key is not an RSA PEM: {e}"))
}

pub struct GitHubApp {
    app_id: u64,
    /// Rotates: `use_private_key` (see `crate::rotation`).
    key: crate::rotation::Current<jsonwebtoken::EncodingKey>,
    http: Octocrab,
    runtime_token_permissions: BTreeMap<String, String>,
    write_spacing: Duration,
    max_wait: Duration,
    installations: installations::Installations,
    remembered: conditional::Remembered,
    credentials: crate::redact::Credentials,
}

impl GitHubApp {
    pub fn new(
        app_id: u64,
        private_key_pem: &str,
        options: GitHubAppOptions,
    ) -> anyhow::Result<Self> {
        check_runtime_token_permissions(&options.runtime_token_permissions)
            .map_err(anyhow::Error::msg)?;
        let key = crate::rotation::Current::new(parse_private_key(private_key_pem)?);
        // No authentication here: each request carries its installation's
        // token or the App's JWT, which this backend keeps itself.
        let http = Octocrab::builder()
            .base_uri(options.api_url.as_str())?
            // envmgr's limiter decides when a request goes again; octocrab's
            // would resend a 429 or 5xx at once, POSTs included.
            .add_retry_config(RetryConfig::None)
            .set_connect_timeout(Some(CONNECT_TIMEOUT))
            .set_read_timeout(Some(READ_TIMEOUT))
            .add_header(ACCEPT, MEDIA_TYPE.to_string())
            .add_header(
                HeaderName::from_static("x-github-api-version"),
                API_VERSION.to_string(),
            )
            .build()?;
        Ok(Self {
            app_id,
            key,
            http,
            runtime_token_permissions: options.runtime_token_permissions,
            write_spacing: options.write_spacing,
            max_wait: options.max_wait,
            installations: installations::Installations::default(),
            remembered: conditional::Remembered::new(
                conditional::CAPACITY,
                conditional::BUDGET_BYTES,
            ),
            credentials: options.credentials,
        })
    }

    /// Sign the App's JWTs with this key from now on (a rotation): tokens
    /// already minted stay good until they expire, as GitHub keeps them.
    pub fn use_private_key(&self, private_key_pem: &str) -> anyhow::Result<()> {
        self.key.set(parse_private_key(private_key_pem)?);
        Ok(())
    }

    /// The key the App's JWTs are signed with now.
    fn signing_key(&self) -> std::sync::Arc<jsonwebtoken::EncodingKey> {
        self.key.get()
    }

    /// The last rate-limit figures GitHub gave, per installation.
    pub fn rate_limits(&self) -> Vec<(u64, RateLimit)> {
        self.each_installation(|figures| figures.rate_limit)
            .into_iter()
            .filter_map(|(id, rate_limit)| Some((id, rate_limit?)))
            .collect()
    }

    /// Requests sent, counted by GitHub, and tokens minted, per installation.
    pub fn request_counts(&self) -> Vec<(u64, RequestCounts)> {
        self.each_installation(|figures| figures.counts)
    }

    /// Every page of a list, each asked for conditionally.
    async fn list_all<T: DeserializeOwned>(
        &self,
        installation_id: u64,
        what: &'static str,
        first: String,
    ) -> CapResult<Vec<T>> {
        let mut found = Vec::new();
        let mut next = Some(first);
        while let Some(path) = next.take() {
            let answer = self
                .send_conditional(installation_id, &ApiRequest::get(what, path))
                .await?
                .success(what)?;
            let (items, following) = answer.page::<T>(what).await?;
            found.extend(items);
            next = following;
        }
        Ok(found)
    }

    /// A `DELETE` where a 404 means already gone.
    async fn delete_gone_ok(
        &self,
        installation_id: u64,
        what: &'static str,
        path: String,
    ) -> CapResult<()> {
        let answer = self
            .send(installation_id, &ApiRequest::delete(what, path))
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        answer.success(what).map(drop)
    }
}

fn repo_path(repo: &Repository) -> String {
    format!("/repos/{}/{}", repo.owner, repo.name)
}

#[async_trait]
impl GitHub for GitHubApp {
    async fn probe(&self) -> CapResult<()> {
        self.probe_app().await
    }

    fn rate_limit_summary(&self) -> super::RateLimitSummary {
        let limits = self.rate_limits();
        super::RateLimitSummary {
            installations: self.installations.len() as u64,
            lowest_remaining: limits.iter().map(|(_, l)| l.remaining).min(),
            low: limits
                .iter()
                .filter(|(_, l)| l.limit.is_some_and(|limit| l.remaining * 10 < limit))
                .count() as u64,
        }
    }

    async fn authenticate(&self, installation_id: u64) -> CapResult<()> {
        self.ensure_token(installation_id).await
    }

    async fn list_comments(
        &self,
        installation_id: u64,
        repo: &Repository,
        issue_number: u64,
        marker: &str,
    ) -> CapResult<Vec<Comment>> {
        let first = format!(
            "{}/issues/{issue_number}/comments?per_page={PER_PAGE}",
            repo_path(repo)
        );
        let comments: Vec<IssueComment> = self
            .list_all(installation_id, "list comments", first)
            .await?;
        Ok(comments
            .into_iter()
            .filter(|c| c.made_by(self.app_id))
            .map(Comment::from)
            .filter(|c| c.body.contains(marker))
            .collect())
    }

    async fn create_comment(
        &self,
        installation_id: u64,
        repo: &Repository,
        issue_number: u64,
        body: &str,
    ) -> CapResult<Comment> {
        let what = "create comment";
        let path = format!("{}/issues/{issue_number}/comments", repo_path(repo));
        let request = ApiRequest::with_json(
            what,
            Method::POST,
            path.clone(),
            &serde_json::json!({ "body": body }),
        );
        retry::checked(
            || async {
                let answer = self.send(installation_id, &request).await?.success(what)?;
                answer.json::<IssueComment>(what).map(Comment::from)
            },
            // Made by the failed try: this App's comment with this body.
            || async {
                let first = format!("{path}?per_page={PER_PAGE}");
                let listed: Vec<IssueComment> = self
                    .list_all(installation_id, "list comments", first)
                    .await?;
                Ok(listed
                    .into_iter()
                    .filter(|c| c.made_by(self.app_id))
                    .map(Comment::from)
                    .find(|c| c.body == body))
            },
        )
        .await
    }

    async fn update_comment(
        &self,
        installation_id: u64,
        repo: &Repository,
        comment_id: u64,
        body: &str,
    ) -> CapResult<Comment> {
        let what = "update comment";
        let request = ApiRequest::with_json(
            what,
            Method::PATCH,
            format!("{}/issues/comments/{comment_id}", repo_path(repo)),
            &serde_json::json!({ "body": body }),
        );
        let answer = self.send(installation_id, &request).await?.success(what)?;
        answer.json::<IssueComment>(what).map(Comment::from)
    }

    async fn delete_comment(
        &self,
        installation_id: u64,
        repo: &Repository,
        comment_id: u64,
    ) -> CapResult<()> {
        let path = format!("{}/issues/comments/{comment_id}", repo_path(repo));
        self.delete_gone_ok(installation_id, "delete comment", path)
            .await
    }

    async fn find_deployments(
        &self,
        installation_id: u64,
        repo: &Repository,
        sha: &str,
        environment: &str,
        task: &str,
    ) -> CapResult<Vec<Deployment>> {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("sha", sha)
            .append_pair("environment", environment)
            .append_pair("task", task)
            .append_pair("per_page", &PER_PAGE.to_string())
            .finish();
        let first = format!("{}/deployments?{query}", repo_path(repo));
        let listed: Vec<DeploymentJson> = self
            .list_all(installation_id, "list deployments", first)
            .await?;
        let mut found: Vec<Deployment> = listed.into_iter().map(Deployment::from).collect();
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
        let what = "create deployment";
        let request = ApiRequest::with_json(
            what,
            Method::POST,
            format!("{}/deployments", repo_path(repo)),
            &body,
        );
        retry::checked(
            || async {
                let answer = self.send(installation_id, &request).await?.success(what)?;
                answer.json::<DeploymentJson>(what).map(Deployment::from)
            },
            // Made by the failed try: one for this commit, environment and
            // task with this payload.
            || async {
                let found = self
                    .find_deployments(installation_id, repo, &new.sha, &new.environment, &new.task)
                    .await?;
                Ok(found.into_iter().rev().find(|d| {
                    serde_json::from_str::<serde_json::Value>(&d.payload_json).ok()
                        == Some(payload.clone())
                }))
            },
        )
        .await
    }

    async fn list_deployment_statuses(
        &self,
        installation_id: u64,
        repo: &Repository,
        deployment_id: u64,
    ) -> CapResult<Vec<DeploymentStatus>> {
        let first = format!(
            "{}/deployments/{deployment_id}/statuses?per_page={PER_PAGE}",
            repo_path(repo)
        );
        let listed: Vec<DeploymentStatusJson> = self
            .list_all(installation_id, "list deployment statuses", first)
            .await?;
        let mut found = listed
            .into_iter()
            .map(DeploymentStatus::try_from)
            .collect::<CapResult<Vec<_>>>()?;
        // GitHub lists the newest first; its order is not documented.
        found.sort_by_key(|s| s.id);
        Ok(found)
    }

    async fn create_deployment_status(
        &self,
        installation_id: u64,
        repo: &Repository,
        deployment_id: u64,
        status: &NewDeploymentStatus,
    ) -> CapResult<DeploymentStatus> {
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
        let what = "create deployment status";
        let request = ApiRequest::with_json(
            what,
            Method::POST,
            format!("{}/deployments/{deployment_id}/statuses", repo_path(repo)),
            &body,
        );
        retry::checked(
            || async {
                let answer = self.send(installation_id, &request).await?.success(what)?;
                DeploymentStatus::try_from(answer.json::<DeploymentStatusJson>(what)?)
            },
            // Made by the failed try: the newest status saying the same.
            || async {
                let listed = self
                    .list_deployment_statuses(installation_id, repo, deployment_id)
                    .await?;
                Ok(listed.into_iter().next_back().filter(|s| {
                    s.state == status.state
                        && s.description == status.description
                        && s.environment_url == status.environment_url
                        && s.log_url == status.log_url
                }))
            },
        )
        .await
    }

    async fn delete_deployment(
        &self,
        installation_id: u64,
        repo: &Repository,
        deployment_id: u64,
    ) -> CapResult<()> {
        let path = format!("{}/deployments/{deployment_id}", repo_path(repo));
        self.delete_gone_ok(installation_id, "delete deployment", path)
            .await
    }

    /// `GET /repos/{owner}/{repo}/pulls?state=open&head=…`, every page (no
    /// `head` when it is empty: every open pull request).
    async fn list_open_pull_requests(
        &self,
        installation_id: u64,
        repo: &Repository,
        head: &str,
    ) -> CapResult<Vec<PullRequest>> {
        let query = {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("state", "open");
            if !head.is_empty() {
                query.append_pair("head", head);
            }
            query
                .append_pair("per_page", &PER_PAGE.to_string())
                .finish()
        };
        let first = format!("{}/pulls?{query}", repo_path(repo));
        let listed: Vec<PullRequestJson> = self
            .list_all(installation_id, "list pull requests", first)
            .await?;
        let mut found: Vec<PullRequest> = listed.into_iter().map(PullRequest::from).collect();
        // GitHub lists the newest first by default.
        found.sort_by_key(|p| p.number);
        Ok(found)
    }

    /// `DELETE /repos/{owner}/{repo}/environments/{name}`, the name one path
    /// segment (`preview/feature/login` has slashes).
    async fn delete_environment(
        &self,
        installation_id: u64,
        repo: &Repository,
        name: &str,
    ) -> CapResult<()> {
        let name = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
        let path = format!("{}/environments/{name}", repo_path(repo));
        self.delete_gone_ok(installation_id, "delete environment", path)
            .await
    }

    async fn create_installation_token(
        &self,
        installation_id: u64,
        repo: &Repository,
    ) -> CapResult<Secret> {
        // Minted fresh for each runtime, never the kept API token: scoped to
        // the one repository and only the configured permissions.
        let body = serde_json::json!({
            "repositories": [repo.name],
            "permissions": self.runtime_token_permissions,
        });
        let what = "installation token";
        let answer = self.mint_token(installation_id, &body).await?;
        if answer.status == StatusCode::UNPROCESSABLE_ENTITY
            && answer.message().to_ascii_lowercase().contains("permission")
        {
            let asked = self
                .runtime_token_permissions
                .iter()
                .map(|(name, level)| format!("{name}: {level}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(error(
                ErrorCode::Denied,
                format!(
                    "github {what}: the installation does not grant the permissions `{RUNTIME_TOKEN_PERMISSIONS_KEY}` asks for ({asked}): 422 {}; grant them to the App's installation or change the config key",
                    answer.message()
                ),
            ));
        }
        let minted = client::minted(answer, what)?;
        self.credentials
            .register_for(minted.secret.expose_secret(), minted.lifetime);
        Ok(Secret::new(minted.secret.expose_secret()))
    }
}
