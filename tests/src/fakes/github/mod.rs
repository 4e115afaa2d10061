//! A fake GitHub API that refuses what GitHub refuses.
//!
//! - **Authentication** (`auth.rs`): the App JWT is checked as GitHub checks
//!   it (RS256 with the test key, `iss` = the app id, at most ten minutes
//!   between `iat` and `exp`, not expired); installation tokens exist only
//!   for installations the test registered, expire (`set_token_ttl`), are
//!   bound to their installation, the repositories and the permissions they
//!   were minted for, and are refused out of scope the way GitHub does: an
//!   unknown or expired token 401, a repository the token cannot see 404, a
//!   permission it lacks 403.
//! - **Comments** (`comments.rs`) and **deployments** (`deployments.rs`):
//!   request shapes checked against the REST documentation (media type,
//!   fields, types, lengths, states), every refusal recorded in
//!   [`FakeGitHub::rejected`].
//! - **Every route** (`middleware.rs`):
//!   `Accept: application/vnd.github+json`, rate-limit headers per
//!   installation, an ETag on list answers with 304 for a matching
//!   `If-None-Match` (not counted, as GitHub does not count them), scripted
//!   failures (429, secondary and primary rate limits, any status) and
//!   latency, and a log of every request with its timing.
//!
//! `tests/src/fakes/README.md` lists each rule with the documentation it
//! follows.

// A refusal is the HTTP answer itself: handlers return `Result<_, Response>`.
#![allow(clippy::result_large_err)]

mod auth;
mod comments;
mod deployments;
mod middleware;
mod pulls;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use serde_json::{Value, json};

use super::http::Credential;

pub use auth::{Installation, Mint};
pub use deployments::FakeDeployment;

pub const APP_ID: u64 = 31_337;
pub const PRIVATE_KEY: &str = include_str!("../../../fixtures/github-app-test-key.pem");
pub const PUBLIC_KEY: &str = include_str!("../../../fixtures/github-app-test-key.pub.pem");
/// A second key of the App, for rotating to.
pub const PRIVATE_KEY_2: &str = include_str!("../../../fixtures/github-app-test-key-2.pem");
pub const PUBLIC_KEY_2: &str = include_str!("../../../fixtures/github-app-test-key-2.pub.pem");

/// The media type GitHub's REST documentation asks for.
pub const MEDIA_TYPE: &str = "application/vnd.github+json";
/// REST API versions GitHub answers (`X-GitHub-Api-Version`); any other is
/// a 400.
pub const API_VERSIONS: [&str; 2] = ["2022-11-28", "2026-03-10"];
/// Requests an installation may make per hour (GitHub's floor for an App).
pub const RATE_LIMIT: u64 = 5_000;
/// The longest comment body GitHub stores.
pub const COMMENT_LIMIT: usize = 65_536;

/// Each route the fake serves, for scripted failures and the request log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Route {
    AccessToken,
    GetApp,
    ListComments,
    CreateComment,
    UpdateComment,
    DeleteComment,
    ListDeployments,
    CreateDeployment,
    DeleteDeployment,
    ListStatuses,
    CreateStatus,
    ListPulls,
    DeleteEnvironment,
}

impl Route {
    fn of(method: &Method, path: &str) -> Option<Self> {
        Some(match (method.as_str(), path) {
            ("POST", "/app/installations/{id}/access_tokens") => Self::AccessToken,
            ("GET", "/app") => Self::GetApp,
            ("GET", "/repos/{owner}/{repo}/issues/{number}/comments") => Self::ListComments,
            ("POST", "/repos/{owner}/{repo}/issues/{number}/comments") => Self::CreateComment,
            ("PATCH", "/repos/{owner}/{repo}/issues/comments/{id}") => Self::UpdateComment,
            ("DELETE", "/repos/{owner}/{repo}/issues/comments/{id}") => Self::DeleteComment,
            ("GET", "/repos/{owner}/{repo}/deployments") => Self::ListDeployments,
            ("POST", "/repos/{owner}/{repo}/deployments") => Self::CreateDeployment,
            ("DELETE", "/repos/{owner}/{repo}/deployments/{id}") => Self::DeleteDeployment,
            ("GET", "/repos/{owner}/{repo}/deployments/{id}/statuses") => Self::ListStatuses,
            ("POST", "/repos/{owner}/{repo}/deployments/{id}/statuses") => Self::CreateStatus,
            ("GET", "/repos/{owner}/{repo}/pulls") => Self::ListPulls,
            ("DELETE", "/repos/{owner}/{repo}/environments/{name}") => Self::DeleteEnvironment,
            _ => return None,
        })
    }

    /// Whether the request changes something (GitHub asks integrations to
    /// space these out).
    pub fn is_write(self) -> bool {
        !matches!(
            self,
            Self::GetApp | Self::ListComments | Self::ListDeployments | Self::ListStatuses
        )
    }
}

/// A failure to answer instead of the real thing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// 429 with `Retry-After`.
    TooManyRequests { retry_after_seconds: u64 },
    /// GitHub's secondary rate limit: 403 with `Retry-After`.
    SecondaryRateLimit { retry_after_seconds: u64 },
    /// The primary rate limit: 403, `x-ratelimit-remaining: 0` and the reset
    /// time in `x-ratelimit-reset`, no `Retry-After`.
    PrimaryRateLimit { reset_in_seconds: u64 },
    /// Any other status with GitHub's error body (401, 403, 404, 409, 410,
    /// 500, 502, 503, ...).
    Status(u16),
    /// The request quoted back in the error message (its `Authorization`
    /// header, the installation token, included), with this status.
    Echo { status: u16, how: super::Echo },
    /// The HTML page GitHub's edge answers with this status (a 502 when
    /// the API behind it did not answer), not GitHub's JSON.
    HtmlPage(u16),
    /// The request carried out, and then answered with this status (the
    /// answer lost on its way back: a comment made, and a 502).
    AfterDoing(u16),
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Logged {
    pub route: Option<Route>,
    pub method: String,
    pub path: String,
    /// The installation whose token made it (None: the App JWT or no token).
    pub installation: Option<u64>,
    pub status: u16,
    /// Whether it counts against the installation's rate limit (a 304 does not).
    pub counted: bool,
    pub api_version: Option<String>,
    pub started: Instant,
    pub finished: Instant,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    installations: BTreeMap<u64, Installation>,
    tokens: BTreeMap<String, auth::Token>,
    mints: Vec<Mint>,
    token_ttl: Option<Duration>,
    jwt_checks: u64,
    /// The App's key deleted from its settings: every JWT refused.
    app_key_deleted: bool,
    /// The App's public keys; none set: [`PUBLIC_KEY`] alone.
    app_keys: Option<Vec<&'static str>>,
    /// (owner/repo lower-cased, issue) of every issue or pull request.
    issues: BTreeSet<(String, u64)>,
    /// (owner/repo lower-cased, sha) of every commit.
    commits: BTreeSet<(String, String)>,
    /// (owner/repo lower-cased, issue) → comments, oldest first.
    comments: BTreeMap<(String, u64), Vec<Value>>,
    deployments: Vec<FakeDeployment>,
    /// (owner/repo lower-cased, number) → a pull request's head.
    pulls: BTreeMap<(String, u64), pulls::FakePull>,
    /// (owner/repo lower-cased, name) of every environment deleted.
    deleted_environments: Vec<(String, String)>,
    rejected: Vec<String>,
    /// Failures to answer, per route, in order.
    faults: BTreeMap<Route, Vec<Failure>>,
    log: Vec<Logged>,
    latency: Duration,
    /// Requests counted per installation in the current hour.
    used: BTreeMap<u64, u64>,
}

#[derive(Clone, Default)]
pub struct FakeGitHub {
    inner: Arc<Mutex<Inner>>,
}

impl FakeGitHub {
    /// Start it; returns the fake and its base URL. No installation exists
    /// until [`FakeGitHub::add_installation`].
    pub fn start() -> (Self, String) {
        let fake = Self::default();
        let router = Router::new()
            .route("/app", get(auth::get_app))
            .route(
                "/app/installations/{id}/access_tokens",
                post(auth::access_token),
            )
            .route(
                "/repos/{owner}/{repo}/issues/{number}/comments",
                post(comments::create).get(comments::list),
            )
            .route(
                "/repos/{owner}/{repo}/issues/comments/{id}",
                patch(comments::update).delete(comments::delete),
            )
            .route(
                "/repos/{owner}/{repo}/deployments",
                post(deployments::create).get(deployments::list),
            )
            .route(
                "/repos/{owner}/{repo}/deployments/{id}",
                delete(deployments::delete),
            )
            .route(
                "/repos/{owner}/{repo}/deployments/{id}/statuses",
                post(deployments::create_status).get(deployments::list_statuses),
            )
            .route("/repos/{owner}/{repo}/pulls", get(pulls::list))
            .route(
                "/repos/{owner}/{repo}/environments/{name}",
                delete(pulls::delete_environment),
            )
            .route_layer(axum::middleware::from_fn_with_state(
                fake.clone(),
                middleware::every_request,
            ))
            .fallback(|| async {
                github_error(
                    StatusCode::NOT_FOUND,
                    "Not Found",
                    "https://docs.github.com/rest",
                )
            })
            .with_state(fake.clone());
        let address = super::serve(router);
        (fake, format!("http://{address}"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    // --- What exists on this GitHub ---------------------------------------

    /// Install the App on `account` (an owner login), on every repository
    /// of the account (`repositories: None`) or only the named ones, with
    /// these permissions (`issues` → `write`, ...).
    pub fn add_installation(&self, installation: Installation) {
        self.lock()
            .installations
            .insert(installation.id, installation);
    }

    /// An issue or pull request (`owner/repo`, number) comments may go on.
    pub fn add_pull_request(&self, repo: &str, number: u64) {
        self.lock().issues.insert((repo.to_lowercase(), number));
    }

    /// Pull request `number` open with its head at `head_label`
    /// (`owner:branch`) and `head_sha`, as "List pull requests" shows it.
    pub fn open_pull_request(&self, repo: &str, number: u64, head_label: &str, head_sha: &str) {
        let mut inner = self.lock();
        inner.issues.insert((repo.to_lowercase(), number));
        inner.pulls.insert(
            (repo.to_lowercase(), number),
            pulls::FakePull {
                head_label: head_label.to_string(),
                head_sha: head_sha.to_string(),
                open: true,
            },
        );
    }

    /// Close pull request `number`.
    pub fn close_pull_request(&self, repo: &str, number: u64) {
        if let Some(pull) = self.lock().pulls.get_mut(&(repo.to_lowercase(), number)) {
            pull.open = false;
        }
    }

    /// (owner/repo, name) of every environment deleted, in order.
    pub fn deleted_environments(&self) -> Vec<(String, String)> {
        self.lock().deleted_environments.clone()
    }

    /// A commit a deployment may name.
    pub fn add_commit(&self, repo: &str, sha: &str) {
        self.lock()
            .commits
            .insert((repo.to_lowercase(), sha.to_string()));
    }

    /// A comment written by a person (no App), as GitHub lists it.
    pub fn add_human_comment(&self, repo: &str, issue: u64, login: &str, body: &str) -> u64 {
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = 9_000 + inner.next_id;
        let (owner, name) = repo.split_once('/').expect("owner/repo");
        let comment = comments::json(owner, name, issue, id, body, Some(login));
        inner
            .comments
            .entry((repo.to_lowercase(), issue))
            .or_default()
            .push(comment);
        id
    }

    /// How long an installation token lives (GitHub: one hour).
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.lock().token_ttl = Some(ttl);
    }

    /// Delete (true) or restore (false) the App's public key, as an owner
    /// does in the App's settings when rotating it: while deleted, every
    /// JWT is refused with 401, as GitHub refuses one signed by an unknown
    /// key.
    pub fn delete_app_key(&self, deleted: bool) {
        self.lock().app_key_deleted = deleted;
    }

    /// The App's keys (public halves), as its settings list them: GitHub
    /// takes a JWT signed by any of them, so an owner adds the new key,
    /// moves the hosts to it, then deletes the old one.
    pub fn set_app_keys(&self, public_keys: &[&'static str]) {
        self.lock().app_keys = Some(public_keys.to_vec());
    }

    /// Hold every request this long before answering.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Answer the next `times` requests of `route` with `failure`.
    pub fn fail_next(&self, route: Route, times: u32, failure: Failure) {
        let mut inner = self.lock();
        let queue = inner.faults.entry(route).or_default();
        queue.extend(std::iter::repeat_n(failure, times as usize));
    }

    /// Refuse the next `times` comment creations as GitHub's secondary
    /// rate limit does: 403, `retry-after: 1`.
    pub fn rate_limit_next(&self, times: u32) {
        self.fail_next(
            Route::CreateComment,
            times,
            Failure::SecondaryRateLimit {
                retry_after_seconds: 1,
            },
        );
    }

    // --- What the fake holds ----------------------------------------------

    /// Comment bodies on an issue, oldest first.
    pub fn comments(&self, repo: &str, issue: u64) -> Vec<String> {
        self.comment_objects(repo, issue)
            .iter()
            .map(|c| c["body"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// Comments on an issue as GitHub answers them, oldest first.
    pub fn comment_objects(&self, repo: &str, issue: u64) -> Vec<Value> {
        self.lock()
            .comments
            .get(&(repo.to_lowercase(), issue))
            .cloned()
            .unwrap_or_default()
    }

    /// The deployments in a repository (`owner/repo`), oldest first.
    pub fn deployments(&self, repo: &str) -> Vec<FakeDeployment> {
        let repo = repo.to_lowercase();
        self.lock()
            .deployments
            .iter()
            .filter(|d| d.repository == repo)
            .cloned()
            .collect()
    }

    /// Every installation token handed out.
    pub fn tokens(&self) -> Vec<String> {
        self.lock().tokens.keys().cloned().collect()
    }

    /// Every token minted, in order, with what it was scoped to.
    pub fn mints(&self) -> Vec<Mint> {
        self.lock().mints.clone()
    }

    /// Requests refused, with why (bad JWT, bad token, bad request).
    pub fn rejected(&self) -> Vec<String> {
        self.lock().rejected.clone()
    }

    /// How many App JWTs were checked (one per token minted or refused).
    pub fn jwt_checks(&self) -> u64 {
        self.lock().jwt_checks
    }

    /// Every request, in the order they were answered.
    pub fn requests(&self) -> Vec<Logged> {
        self.lock().log.clone()
    }
}

/// GitHub's error body.
pub(crate) fn github_error(status: StatusCode, message: &str, documentation: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "message": message,
            "documentation_url": documentation,
            "status": status.as_u16().to_string(),
        })),
    )
        .into_response()
}

/// A refusal GitHub would answer, recorded so a test can assert none
/// happened (or that one did).
pub(crate) fn refuse(fake: &FakeGitHub, status: StatusCode, why: String) -> Response {
    fake.lock().rejected.push(why.clone());
    github_error(status, &why, "https://docs.github.com/rest")
}

/// A user or organization as GitHub embeds it (`simple-user` in the
/// OpenAPI description: every field required there).
pub(crate) fn user_json(login: &str, id: u64, kind: &str) -> Value {
    let api = format!("https://api.github.com/users/{login}");
    json!({
        "login": login,
        "id": id,
        "node_id": format!("U_fake{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "",
        "url": api,
        "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("{api}/followers"),
        "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"),
        "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"),
        "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"),
        "type": kind,
        "site_admin": false
    })
}

/// The App's bot user.
pub(crate) fn bot_json() -> Value {
    user_json("envmgr[bot]", 1, "Bot")
}

/// A request body: None when empty; GitHub's 400 when it is not JSON.
pub(crate) fn json_body(bytes: &[u8]) -> Result<Option<Value>, Response> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes).map(Some).map_err(|_| {
        github_error(
            StatusCode::BAD_REQUEST,
            "Problems parsing JSON",
            "https://docs.github.com/rest",
        )
    })
}

/// The bearer token or `token` credential of a request.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    Credential::of(headers)?.token().map(str::to_string)
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// RFC 3339 in UTC, as GitHub writes timestamps.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::from(at))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a formattable time")
}
