//! A fake GitHub API: checks the App JWT (RS256, signed with the test key,
//! `iss` = the app id), issues installation tokens, and keeps issue comments
//! and deployments with their statuses. Requests follow GitHub's REST shapes
//! (paths, methods, status codes); deployment requests are checked against
//! GitHub's REST documentation (media type, fields and their types, states)
//! and every departure is recorded in [`FakeGitHub::rejected`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, patch, post};
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
    /// Every deployment as GitHub answers it, with its repository
    /// (`owner/repo`) and its statuses (oldest first).
    deployments: Vec<FakeDeployment>,
    jwt_checks: u64,
    rejected: Vec<String>,
    /// Answer the next n comment creations with a secondary rate limit.
    rate_limit_next: u32,
}

/// A deployment the fake holds.
#[derive(Clone, Debug)]
pub struct FakeDeployment {
    /// `owner/repo`
    pub repository: String,
    /// The deployment as GitHub answers it.
    pub deployment: Value,
    /// Its statuses as GitHub answers them, oldest first.
    pub statuses: Vec<Value>,
}

impl FakeDeployment {
    pub fn id(&self) -> u64 {
        self.deployment["id"].as_u64().unwrap_or(0)
    }

    /// The state of the newest status.
    pub fn state(&self) -> Option<&str> {
        self.statuses.last().and_then(|s| s["state"].as_str())
    }
}

/// The media type GitHub's REST documentation asks for.
const MEDIA_TYPE: &str = "application/vnd.github+json";
/// Deployment status states, as the REST documentation lists them.
const STATES: [&str; 7] = [
    "error",
    "failure",
    "inactive",
    "in_progress",
    "queued",
    "pending",
    "success",
];

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
            .route(
                "/repos/{owner}/{repo}/deployments",
                post(create_deployment).get(list_deployments),
            )
            .route(
                "/repos/{owner}/{repo}/deployments/{id}",
                delete(delete_deployment),
            )
            .route(
                "/repos/{owner}/{repo}/deployments/{id}/statuses",
                post(create_deployment_status).get(list_deployment_statuses),
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

    /// The deployments in a repository (`owner/repo`), oldest first.
    pub fn deployments(&self, repo: &str) -> Vec<FakeDeployment> {
        self.lock()
            .deployments
            .iter()
            .filter(|d| d.repository == repo)
            .cloned()
            .collect()
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
            "permissions": { "issues": "write", "contents": "read", "deployments": "write" },
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
    let all = fake
        .lock()
        .comments
        .get(&(format!("{owner}/{repo}"), number))
        .cloned()
        .unwrap_or_default();
    paginated(
        all,
        query.per_page,
        query.page,
        &headers,
        &format!("/repos/{owner}/{repo}/issues/{number}/comments"),
        "",
    )
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

/// What GitHub answers a request it refuses: `status` with a message, and
/// the refusal recorded, so a test can assert none happened.
fn refuse_with(fake: &FakeGitHub, status: StatusCode, why: String) -> Response {
    fake.lock().rejected.push(why.clone());
    (
        status,
        Json(json!({ "message": why, "documentation_url": "https://docs.github.com/rest/deployments" })),
    )
        .into_response()
}

/// None when the request may go on: a token this fake issued and the media
/// type GitHub's REST documentation asks for.
fn refused_deployment_request(
    fake: &FakeGitHub,
    headers: &HeaderMap,
    what: &str,
) -> Option<Response> {
    if let Some(refused) = unauthorized(fake, headers) {
        return Some(refused);
    }
    let accept = headers
        .get_all("accept")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    if !accept.split(',').any(|media| media.trim() == MEDIA_TYPE) {
        return Some(refuse_with(
            fake,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("{what}: Accept `{accept}` is not `{MEDIA_TYPE}`"),
        ));
    }
    None
}

/// Check `body` against a documented parameter list: each present key must
/// have its type, and no other key may appear. Err(why) otherwise.
/// A documented body parameter: its name, its type check, the type's name.
type Field = (&'static str, fn(&Value) -> bool, &'static str);

fn check_fields(body: &Value, fields: &[Field]) -> Result<(), String> {
    let Some(object) = body.as_object() else {
        return Err(format!("the body is not a JSON object: {body}"));
    };
    for (key, value) in object {
        let Some((_, valid, kind)) = fields.iter().find(|(name, _, _)| name == key) else {
            return Err(format!("`{key}` is not a documented parameter"));
        };
        if !valid(value) {
            return Err(format!("`{key}` must be {kind}, got {value}"));
        }
    }
    Ok(())
}

fn string(v: &Value) -> bool {
    v.is_string()
}
fn boolean(v: &Value) -> bool {
    v.is_boolean()
}
fn string_or_null(v: &Value) -> bool {
    v.is_string() || v.is_null()
}
fn strings(v: &Value) -> bool {
    v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
}
fn object_or_string(v: &Value) -> bool {
    v.is_object() || v.is_string()
}

/// POST /repos/{owner}/{repo}/deployments
async fn create_deployment(
    State(fake): State<FakeGitHub>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refused) = refused_deployment_request(&fake, &headers, "create deployment") {
        return refused;
    }
    let fields: &[Field] = &[
        ("ref", string, "a string"),
        ("task", string, "a string"),
        ("auto_merge", boolean, "a boolean"),
        ("required_contexts", strings, "an array of strings"),
        ("payload", object_or_string, "an object or a string"),
        ("environment", string, "a string"),
        ("description", string_or_null, "a string or null"),
        ("transient_environment", boolean, "a boolean"),
        ("production_environment", boolean, "a boolean"),
    ];
    if let Err(why) = check_fields(&body, fields) {
        return refuse_with(
            &fake,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("create deployment: {why}"),
        );
    }
    let Some(reference) = body["ref"].as_str().filter(|r| !r.is_empty()) else {
        return refuse_with(
            &fake,
            StatusCode::UNPROCESSABLE_ENTITY,
            "create deployment: `ref` is required".into(),
        );
    };
    // What GitHub would do without these: merge the default branch into the
    // ref (a commit in the user's repository), or wait for every commit
    // status context to succeed.
    if body["auto_merge"] != json!(false) {
        return refuse_with(
            &fake,
            StatusCode::CONFLICT,
            format!(
                "create deployment: auto_merge is not false, GitHub would merge the default branch into {reference}"
            ),
        );
    }
    if body.get("required_contexts").is_none() {
        return refuse_with(
            &fake,
            StatusCode::CONFLICT,
            "create deployment: without required_contexts GitHub checks every commit status context".into(),
        );
    }
    let full = format!("{owner}/{repo}");
    let mut state = fake.lock();
    state.next_id += 1;
    let id = 1_000_000 + state.next_id;
    let environment = body["environment"]
        .as_str()
        .unwrap_or("production")
        .to_string();
    let is_sha = reference.len() == 40 && reference.chars().all(|c| c.is_ascii_hexdigit());
    let deployment = json!({
        "url": format!("https://api.github.com/repos/{full}/deployments/{id}"),
        "id": id,
        "node_id": format!("DE_fake{id}"),
        "sha": if is_sha { reference.to_string() } else { "0".repeat(40) },
        "ref": reference,
        "task": body["task"].as_str().unwrap_or("deploy"),
        "payload": body.get("payload").cloned().unwrap_or_else(|| json!({})),
        "original_environment": environment,
        "environment": environment,
        "description": body["description"].as_str().unwrap_or(""),
        "creator": { "login": "envmgr[bot]", "id": 1, "type": "Bot" },
        "created_at": "2026-11-28T12:00:00Z",
        "updated_at": "2026-11-28T12:00:00Z",
        "statuses_url": format!("https://api.github.com/repos/{full}/deployments/{id}/statuses"),
        "repository_url": format!("https://api.github.com/repos/{full}"),
        "transient_environment": body["transient_environment"].as_bool().unwrap_or(false),
        "production_environment": body["production_environment"]
            .as_bool()
            .unwrap_or(environment == "production"),
        "performed_via_github_app": { "id": APP_ID, "slug": "envmgr", "name": "envmgr" }
    });
    state.deployments.push(FakeDeployment {
        repository: full,
        deployment: deployment.clone(),
        statuses: Vec::new(),
    });
    (StatusCode::CREATED, Json(deployment)).into_response()
}

#[derive(serde::Deserialize)]
struct DeploymentQuery {
    sha: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<String>,
    task: Option<String>,
    environment: Option<String>,
    per_page: Option<usize>,
    page: Option<usize>,
}

/// A page of `all` as GitHub serves it, with a `link` to the next page.
fn paginated(
    all: Vec<Value>,
    per_page: Option<usize>,
    page: Option<usize>,
    headers: &HeaderMap,
    path: &str,
    query: &str,
) -> Response {
    let per_page = per_page.unwrap_or(30).clamp(1, 100);
    let page = page.unwrap_or(1).max(1);
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
            "<http://{host}{path}?{query}per_page={per_page}&page={}>; rel=\"next\"",
            page + 1
        );
        response
            .headers_mut()
            .insert("link", link.parse().expect("a valid header"));
    }
    response
}

/// GET /repos/{owner}/{repo}/deployments (newest first, as GitHub lists them)
async fn list_deployments(
    State(fake): State<FakeGitHub>,
    Path((owner, repo)): Path<(String, String)>,
    Query(query): Query<DeploymentQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refused_deployment_request(&fake, &headers, "list deployments") {
        return refused;
    }
    let full = format!("{owner}/{repo}");
    let matches = |field: &str, wanted: &Option<String>, d: &Value| {
        wanted
            .as_ref()
            .is_none_or(|w| d[field].as_str() == Some(w.as_str()))
    };
    let mut all: Vec<Value> = fake
        .lock()
        .deployments
        .iter()
        .filter(|d| d.repository == full)
        .map(|d| d.deployment.clone())
        .filter(|d| {
            matches("sha", &query.sha, d)
                && matches("ref", &query.reference, d)
                && matches("task", &query.task, d)
                && matches("environment", &query.environment, d)
        })
        .collect();
    all.reverse();
    let mut kept = String::new();
    for (name, value) in [
        ("sha", &query.sha),
        ("ref", &query.reference),
        ("task", &query.task),
        ("environment", &query.environment),
    ] {
        if let Some(value) = value {
            kept.push_str(&format!("{name}={}&", encode(value)));
        }
    }
    paginated(
        all,
        query.per_page,
        query.page,
        &headers,
        &format!("/repos/{full}/deployments"),
        &kept,
    )
}

/// Percent-encode a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// DELETE /repos/{owner}/{repo}/deployments/{deployment_id}
async fn delete_deployment(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refused_deployment_request(&fake, &headers, "delete deployment") {
        return refused;
    }
    let full = format!("{owner}/{repo}");
    let refusal = {
        let mut state = fake.lock();
        let in_repo = state
            .deployments
            .iter()
            .filter(|d| d.repository == full)
            .count();
        let Some(at) = state
            .deployments
            .iter()
            .position(|d| d.repository == full && d.id() == id)
        else {
            return (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response();
        };
        // GitHub deletes only inactive deployments when there are others.
        let retired = matches!(
            state.deployments[at].state(),
            Some("inactive" | "failure" | "error")
        );
        if in_repo > 1 && !retired {
            Some(format!("delete deployment {id}: it is still active"))
        } else {
            state.deployments.remove(at);
            None
        }
    };
    match refusal {
        Some(why) => refuse_with(&fake, StatusCode::UNPROCESSABLE_ENTITY, why),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// POST /repos/{owner}/{repo}/deployments/{deployment_id}/statuses
async fn create_deployment_status(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refused) = refused_deployment_request(&fake, &headers, "create deployment status") {
        return refused;
    }
    let fields: &[Field] = &[
        ("state", string, "a string"),
        ("target_url", string, "a string"),
        ("log_url", string, "a string"),
        ("description", string, "a string"),
        ("environment", string, "a string"),
        ("environment_url", string, "a string"),
        ("auto_inactive", boolean, "a boolean"),
    ];
    if let Err(why) = check_fields(&body, fields) {
        return refuse_with(
            &fake,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("create deployment status: {why}"),
        );
    }
    let Some(status_state) = body["state"].as_str() else {
        return refuse_with(
            &fake,
            StatusCode::UNPROCESSABLE_ENTITY,
            "create deployment status: `state` is required".into(),
        );
    };
    if !STATES.contains(&status_state) {
        return refuse_with(
            &fake,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("create deployment status: `state` `{status_state}` is not one of {STATES:?}"),
        );
    }
    let description = body["description"].as_str().unwrap_or("");
    if description.chars().count() > 140 {
        return refuse_with(
            &fake,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "create deployment status: the description has more than 140 characters: {description}"
            ),
        );
    }
    let full = format!("{owner}/{repo}");
    let mut state = fake.lock();
    state.next_id += 1;
    let status_id = 2_000_000 + state.next_id;
    let Some(deployment) = state
        .deployments
        .iter_mut()
        .find(|d| d.repository == full && d.id() == id)
    else {
        return (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response();
    };
    let log_url = body["log_url"]
        .as_str()
        .or(body["target_url"].as_str())
        .unwrap_or("");
    let status = json!({
        "url": format!("https://api.github.com/repos/{full}/deployments/{id}/statuses/{status_id}"),
        "id": status_id,
        "node_id": format!("DES_fake{status_id}"),
        "state": status_state,
        "creator": { "login": "envmgr[bot]", "id": 1, "type": "Bot" },
        "description": description,
        "environment": body["environment"].as_str().unwrap_or_else(|| deployment.deployment["environment"].as_str().unwrap_or("")),
        "target_url": log_url,
        "log_url": log_url,
        "environment_url": body["environment_url"].as_str().unwrap_or(""),
        "created_at": "2026-11-28T12:00:00Z",
        "updated_at": "2026-11-28T12:00:00Z",
        "deployment_url": format!("https://api.github.com/repos/{full}/deployments/{id}"),
        "repository_url": format!("https://api.github.com/repos/{full}"),
        "performed_via_github_app": { "id": APP_ID, "slug": "envmgr", "name": "envmgr" }
    });
    deployment.statuses.push(status.clone());
    (StatusCode::CREATED, Json(status)).into_response()
}

/// GET /repos/{owner}/{repo}/deployments/{deployment_id}/statuses (newest
/// first, as GitHub lists them)
async fn list_deployment_statuses(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refused_deployment_request(&fake, &headers, "list deployment statuses") {
        return refused;
    }
    let full = format!("{owner}/{repo}");
    let statuses = fake
        .lock()
        .deployments
        .iter()
        .find(|d| d.repository == full && d.id() == id)
        .map(|d| d.statuses.iter().rev().cloned().collect::<Vec<_>>());
    match statuses {
        Some(all) => paginated(
            all,
            query.per_page,
            query.page,
            &headers,
            &format!("/repos/{full}/deployments/{id}/statuses"),
            "",
        ),
        None => (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    const TOKEN: &str = "ghs_test";

    /// A fake with one installation token, and its address.
    fn fake() -> (FakeGitHub, String) {
        let (fake, url) = FakeGitHub::start();
        fake.lock()
            .tokens
            .insert(TOKEN.to_string(), (1, Some(vec!["shop".into()])));
        (fake, url.trim_start_matches("http://").to_string())
    }

    /// One HTTP/1.1 request; the status code and the body.
    fn request(
        address: &str,
        method: &str,
        path: &str,
        accept: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut stream = std::net::TcpStream::connect(address).expect("connect to the fake");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let accept = accept
            .map(|a| format!("Accept: {a}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\n\
             {accept}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response[9..12].parse().expect("a status code");
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    fn deployment(edit: impl FnOnce(&mut Value)) -> Value {
        let mut body = json!({
            "ref": "3f786850e387550fdab836ed7e6dc881de23001b",
            "task": "deploy:envmgr",
            "auto_merge": false,
            "required_contexts": [],
            "payload": { "environmentId": "env_1" },
            "environment": "preview/feature/login",
            "description": "envmgr preview",
            "transient_environment": true,
            "production_environment": false
        });
        edit(&mut body);
        body
    }

    #[test]
    fn deployment_requests_are_checked_against_the_rest_documentation() {
        let (fake, address) = fake();
        let path = "/repos/acme/shop/deployments";
        let post = |accept, body| request(&address, "POST", path, accept, Some(body));
        let json = Some(MEDIA_TYPE);

        let refusals: Vec<(Option<&str>, Value, u16, &str)> = vec![
            (None, deployment(|_| {}), 415, "Accept"),
            (Some("application/json"), deployment(|_| {}), 415, "Accept"),
            (
                json,
                deployment(|b| b["transient_environment"] = "yes".into()),
                422,
                "`transient_environment` must be a boolean",
            ),
            (
                json,
                deployment(|b| b["required_contexts"] = json!([1])),
                422,
                "`required_contexts` must be an array of strings",
            ),
            (
                json,
                deployment(|b| b["payload"] = json!(3)),
                422,
                "`payload` must be an object or a string",
            ),
            (
                json,
                deployment(|b| b["transient"] = true.into()),
                422,
                "`transient` is not a documented parameter",
            ),
            (
                json,
                deployment(|b| {
                    b.as_object_mut().unwrap().remove("ref");
                }),
                422,
                "`ref` is required",
            ),
            (
                json,
                deployment(|b| {
                    b.as_object_mut().unwrap().remove("auto_merge");
                }),
                409,
                "auto_merge",
            ),
            (
                json,
                deployment(|b| {
                    b.as_object_mut().unwrap().remove("required_contexts");
                }),
                409,
                "required_contexts",
            ),
        ];
        for (accept, body, status, why) in refusals {
            let before = fake.rejected().len();
            assert_eq!(post(accept, body.clone()).0, status, "{body}");
            let rejected = fake.rejected();
            assert_eq!(rejected.len(), before + 1, "{body}");
            assert!(rejected[before].contains(why), "{rejected:?} lacks {why}");
        }
        assert!(fake.deployments("acme/shop").is_empty());

        let (status, first) = post(json, deployment(|_| {}));
        assert_eq!(status, 201);
        let (_, second) = post(json, deployment(|_| {}));
        let statuses = |id: &Value| format!("{path}/{id}/statuses");
        for (body, why) in [
            (json!({ "state": "done" }), "`state` `done` is not one of"),
            (json!({ "description": "x" }), "`state` is required"),
            (
                json!({ "state": "in_progress", "environment_url": null }),
                "`environment_url` must be a string",
            ),
            (
                json!({ "state": "in_progress", "log_url": 7 }),
                "`log_url` must be a string",
            ),
            (
                json!({ "state": "failure", "description": "d".repeat(141) }),
                "more than 140 characters",
            ),
        ] {
            let (status, _) = request(&address, "POST", &statuses(&first["id"]), json, Some(body));
            assert_eq!(status, 422);
            assert!(fake.rejected().last().unwrap().contains(why), "{why}");
        }
        let in_progress = json!({
            "state": "in_progress",
            "description": "Runtime rt_1 requested",
            "environment_url": "https://env_1.runtime.test",
            "log_url": "https://github.com/acme/shop/pull/7#issuecomment-1"
        });
        let (status, created) = request(
            &address,
            "POST",
            &statuses(&first["id"]),
            json,
            Some(in_progress),
        );
        assert_eq!(status, 201);
        assert_eq!(created["environment_url"], "https://env_1.runtime.test");

        // Listed newest first, filtered by the documented query parameters.
        let query = format!(
            "{path}?sha=3f786850e387550fdab836ed7e6dc881de23001b&environment=preview%2Ffeature%2Flogin&task=deploy%3Aenvmgr"
        );
        let (status, listed) = request(&address, "GET", &query, json, None);
        assert_eq!(status, 200);
        let ids: Vec<&Value> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|d| &d["id"])
            .collect();
        assert_eq!(ids, [&second["id"], &first["id"]]);
        let (_, none) = request(&address, "GET", &format!("{path}?task=deploy"), json, None);
        assert_eq!(none, json!([]));

        // An active deployment is not deleted while there are others.
        let delete = |id: &Value| request(&address, "DELETE", &format!("{path}/{id}"), json, None);
        assert_eq!(delete(&first["id"]).0, 422);
        assert!(fake.rejected().last().unwrap().contains("still active"));
        let inactive = json!({ "state": "inactive", "description": "duplicate" });
        request(
            &address,
            "POST",
            &statuses(&second["id"]),
            json,
            Some(inactive),
        );
        assert_eq!(delete(&second["id"]).0, 204);
        assert_eq!(delete(&second["id"]).0, 404);
        assert_eq!(fake.deployments("acme/shop").len(), 1);
    }
}
