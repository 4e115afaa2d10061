//! A fake GitHub API: checks the App JWT (RS256, signed with the test key,
//! `iss` = the app id), issues installation tokens, and keeps issue comments.
//! Requests follow GitHub's REST shapes (paths, methods, status codes).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use axum::{Json, Router};
use serde_json::{Value, json};

pub const APP_ID: u64 = 31_337;
pub const PRIVATE_KEY: &str = include_str!("../../fixtures/github-app-test-key.pem");
const PUBLIC_KEY: &str = include_str!("../../fixtures/github-app-test-key.pub.pem");

#[derive(Default)]
struct State_ {
    next_id: u64,
    /// token → (installation, repositories it is scoped to)
    tokens: BTreeMap<String, (u64, Option<Vec<String>>)>,
    /// (owner/repo, issue) → comments
    comments: BTreeMap<(String, u64), Vec<Value>>,
    jwt_checks: u64,
    rejected: Vec<String>,
    /// Answer the next n comment creations with a secondary rate limit.
    rate_limit_next: u32,
}

#[derive(Clone, Default)]
pub struct FakeGitHub {
    state: Arc<Mutex<State_>>,
}

impl FakeGitHub {
    /// Start it; returns the fake and its base URL.
    pub fn start() -> (Self, String) {
        let fake = Self::default();
        let router = Router::new()
            .route("/app/installations/{id}/access_tokens", post(access_token))
            .route(
                "/repos/{owner}/{repo}/issues/{number}/comments",
                post(create_comment).get(list_comments),
            )
            .route(
                "/repos/{owner}/{repo}/issues/comments/{id}",
                patch(update_comment).delete(delete_comment),
            )
            .with_state(fake.clone());
        let address = super::serve(router);
        (fake, format!("http://{address}"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State_> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Comment bodies on an issue, oldest first.
    pub fn comments(&self, repo: &str, issue: u64) -> Vec<String> {
        self.lock()
            .comments
            .get(&(repo.to_string(), issue))
            .map(|c| {
                c.iter()
                    .map(|c| c["body"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Refuse the next `times` comment creations as GitHub's secondary
    /// rate limit does: 403, `retry-after`, no requests left.
    pub fn rate_limit_next(&self, times: u32) {
        self.lock().rate_limit_next = times;
    }

    /// Every installation token handed out.
    pub fn tokens(&self) -> Vec<String> {
        self.lock().tokens.keys().cloned().collect()
    }

    /// Requests refused, with why (bad JWT, bad token).
    pub fn rejected(&self) -> Vec<String> {
        self.lock().rejected.clone()
    }

    pub fn jwt_checks(&self) -> u64 {
        self.lock().jwt_checks
    }
}

fn refuse(fake: &FakeGitHub, why: String) -> Response {
    fake.lock().rejected.push(why.clone());
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "message": why, "documentation_url": "https://docs.github.com/rest" })),
    )
        .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("token "))
        .map(str::to_string)
}

#[derive(serde::Deserialize)]
struct Claims {
    /// GitHub takes the app id as a number or a string.
    iss: serde_json::Value,
}

/// POST /app/installations/{installation_id}/access_tokens
async fn access_token(
    State(fake): State<FakeGitHub>,
    Path(installation): Path<u64>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    let Some(jwt) = bearer(&headers) else {
        return refuse(&fake, "access_tokens without a JWT".into());
    };
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).expect("test key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // `iss` is checked below: GitHub (and octocrab) use a number there.
    validation.set_required_spec_claims(&["exp", "iat"]);
    match jsonwebtoken::decode::<Claims>(&jwt, &key, &validation) {
        Ok(data) if data.claims.iss == APP_ID || data.claims.iss == APP_ID.to_string().as_str() => {
        }
        Ok(data) => return refuse(&fake, format!("JWT for app {}", data.claims.iss)),
        Err(e) => return refuse(&fake, format!("bad JWT: {e}")),
    }
    let repositories = body.and_then(|Json(b)| {
        b.get("repositories").and_then(|r| r.as_array()).map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
    });
    let mut state = fake.lock();
    state.jwt_checks += 1;
    state.next_id += 1;
    let token = format!("ghs_fake{installation}x{}", state.next_id);
    state
        .tokens
        .insert(token.clone(), (installation, repositories.clone()));
    let expires = "2099-01-01T00:00:00Z";
    (
        StatusCode::CREATED,
        Json(json!({
            "token": token,
            "expires_at": expires,
            "permissions": { "issues": "write", "contents": "read" },
            "repository_selection": if repositories.is_some() { "selected" } else { "all" },
        })),
    )
        .into_response()
}

/// None when the installation token is one this fake issued; otherwise the
/// refusal to answer with.
fn unauthorized(fake: &FakeGitHub, headers: &HeaderMap) -> Option<Response> {
    let token = bearer(headers).unwrap_or_default();
    if fake.lock().tokens.contains_key(&token) {
        None
    } else {
        Some(refuse(
            fake,
            format!("unknown installation token `{token}`"),
        ))
    }
}

fn comment_json(owner: &str, repo: &str, issue: u64, id: u64, body: &str) -> Value {
    json!({
        "id": id,
        "node_id": format!("IC_fake{id}"),
        "url": format!("https://api.github.com/repos/{owner}/{repo}/issues/comments/{id}"),
        "html_url": format!("https://github.com/{owner}/{repo}/pull/{issue}#issuecomment-{id}"),
        "issue_url": format!("https://api.github.com/repos/{owner}/{repo}/issues/{issue}"),
        "body": body,
        "user": { "login": "envmgr[bot]", "id": 1, "type": "Bot" },
        "performed_via_github_app": { "id": APP_ID, "slug": "envmgr", "name": "envmgr" },
        "created_at": "2026-11-28T12:00:00Z",
        "updated_at": "2026-11-28T12:00:00Z",
        "author_association": "NONE"
    })
}

/// POST /repos/{owner}/{repo}/issues/{issue_number}/comments
async fn create_comment(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refused) = unauthorized(&fake, &headers) {
        return refused;
    }
    let Some(text) = body.get("body").and_then(|b| b.as_str()) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"message": "body is required"})),
        )
            .into_response();
    };
    let mut state = fake.lock();
    if state.rate_limit_next > 0 {
        state.rate_limit_next -= 1;
        let mut response = (
            StatusCode::FORBIDDEN,
            Json(json!({
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
            })),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert("retry-after", "1".parse().expect("header"));
        headers.insert("x-ratelimit-remaining", "0".parse().expect("header"));
        return response;
    }
    state.next_id += 1;
    let comment = comment_json(&owner, &repo, number, 9_000 + state.next_id, text);
    state
        .comments
        .entry((format!("{owner}/{repo}"), number))
        .or_default()
        .push(comment.clone());
    (StatusCode::CREATED, Json(comment)).into_response()
}

#[derive(serde::Deserialize)]
struct PageQuery {
    per_page: Option<usize>,
    page: Option<usize>,
}

/// GET /repos/{owner}/{repo}/issues/{issue_number}/comments
async fn list_comments(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = unauthorized(&fake, &headers) {
        return refused;
    }
    let per_page = query.per_page.unwrap_or(30).clamp(1, 100);
    let page = query.page.unwrap_or(1).max(1);
    let all = fake
        .lock()
        .comments
        .get(&(format!("{owner}/{repo}"), number))
        .cloned()
        .unwrap_or_default();
    let items: Vec<Value> = all
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    let mut response = Json(items).into_response();
    if page * per_page < all.len() {
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let link = format!(
            "<http://{host}/repos/{owner}/{repo}/issues/{number}/comments?per_page={per_page}&page={}>; rel=\"next\"",
            page + 1
        );
        response
            .headers_mut()
            .insert("link", link.parse().expect("a valid header"));
    }
    response
}

/// PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}
async fn update_comment(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refused) = unauthorized(&fake, &headers) {
        return refused;
    }
    let text = body
        .get("body")
        .and_then(|b| b.as_str())
        .unwrap_or("")
        .to_string();
    let mut state = fake.lock();
    let full = format!("{owner}/{repo}");
    for ((r, _), comments) in state.comments.iter_mut() {
        if *r != full {
            continue;
        }
        if let Some(comment) = comments.iter_mut().find(|c| c["id"] == id) {
            comment["body"] = Value::String(text);
            return Json(comment.clone()).into_response();
        }
    }
    (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response()
}

/// DELETE /repos/{owner}/{repo}/issues/comments/{comment_id}
async fn delete_comment(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = unauthorized(&fake, &headers) {
        return refused;
    }
    let mut state = fake.lock();
    let full = format!("{owner}/{repo}");
    let mut found = false;
    for ((r, _), comments) in state.comments.iter_mut() {
        if *r == full {
            let before = comments.len();
            comments.retain(|c| c["id"] != id);
            found |= comments.len() != before;
        }
    }
    if found {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response()
    }
}
