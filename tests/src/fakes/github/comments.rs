//! Issue comments (docs: "REST API endpoints for issue comments"): listed
//! with pagination, created, updated and deleted by an installation token
//! with Issues or Pull requests permission; a body is required and at most
//! 65,536 characters; people's comments carry no `performed_via_github_app`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{ISSUES_READ, ISSUES_WRITE, authorize};
use super::{APP_ID, COMMENT_LIMIT, FakeGitHub, github_error, refuse};

/// A comment as GitHub answers it. `person`: the login of a person who
/// wrote it; None for the App.
pub(crate) fn json(
    owner: &str,
    repo: &str,
    issue: u64,
    id: u64,
    body: &str,
    person: Option<&str>,
) -> Value {
    let (user, app) = match person {
        Some(login) => (super::user_json(login, 7_000 + id, "User"), Value::Null),
        None => (
            super::bot_json(),
            json!({ "id": APP_ID, "slug": "envmgr", "name": "envmgr" }),
        ),
    };
    json!({
        "id": id,
        "node_id": format!("IC_fake{id}"),
        "url": format!("https://api.github.com/repos/{owner}/{repo}/issues/comments/{id}"),
        "html_url": format!("https://github.com/{owner}/{repo}/pull/{issue}#issuecomment-{id}"),
        "issue_url": format!("https://api.github.com/repos/{owner}/{repo}/issues/{issue}"),
        "body": body,
        "user": user,
        "performed_via_github_app": app,
        "created_at": "2026-11-28T12:00:00Z",
        "updated_at": "2026-11-28T12:00:00Z",
        "author_association": if person.is_some() { "MEMBER" } else { "NONE" }
    })
}

/// The `body` of a create or update request, or GitHub's 422.
fn body_text(fake: &FakeGitHub, body: &Value, what: &str) -> Result<String, Response> {
    let Some(text) = body.get("body").and_then(Value::as_str) else {
        return Err(refuse(
            fake,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{what}: `body` is required and must be a string"),
        ));
    };
    if text.chars().count() > COMMENT_LIMIT {
        return Err(refuse(
            fake,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{what}: Body is too long (maximum is {COMMENT_LIMIT} characters)"),
        ));
    }
    if let Some(key) = body
        .as_object()
        .and_then(|o| o.keys().find(|k| k.as_str() != "body"))
    {
        return Err(refuse(
            fake,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{what}: `{key}` is not a documented parameter"),
        ));
    }
    Ok(text.to_string())
}

fn not_found() -> Response {
    github_error(
        StatusCode::NOT_FOUND,
        "Not Found",
        "https://docs.github.com/rest/issues/comments",
    )
}

/// POST /repos/{owner}/{repo}/issues/{issue_number}/comments
pub(crate) async fn create(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(refused) = authorize(
        &fake,
        &headers,
        &owner,
        &repo,
        ISSUES_WRITE,
        "create comment",
    ) {
        return refused;
    }
    let body = match super::json_body(&body) {
        Ok(body) => body.unwrap_or(Value::Null),
        Err(refused) => return refused,
    };
    let text = match body_text(&fake, &body, "create comment") {
        Ok(text) => text,
        Err(refused) => return refused,
    };
    let key = (format!("{owner}/{repo}").to_lowercase(), number);
    let mut inner = fake.lock();
    if !inner.issues.contains(&key) {
        drop(inner);
        return not_found();
    }
    inner.next_id += 1;
    let comment = json(&owner, &repo, number, 9_000 + inner.next_id, &text, None);
    inner.comments.entry(key).or_default().push(comment.clone());
    (StatusCode::CREATED, Json(comment)).into_response()
}

#[derive(serde::Deserialize)]
pub(crate) struct PageQuery {
    pub(crate) per_page: Option<usize>,
    pub(crate) page: Option<usize>,
}

/// GET /repos/{owner}/{repo}/issues/{issue_number}/comments (oldest first)
pub(crate) async fn list(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authorize(&fake, &headers, &owner, &repo, ISSUES_READ, "list comments") {
        return refused;
    }
    let key = (format!("{owner}/{repo}").to_lowercase(), number);
    let all = {
        let inner = fake.lock();
        if !inner.issues.contains(&key) {
            drop(inner);
            return not_found();
        }
        inner.comments.get(&key).cloned().unwrap_or_default()
    };
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
pub(crate) async fn update(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(refused) = authorize(
        &fake,
        &headers,
        &owner,
        &repo,
        ISSUES_WRITE,
        "update comment",
    ) {
        return refused;
    }
    let body = match super::json_body(&body) {
        Ok(body) => body.unwrap_or(Value::Null),
        Err(refused) => return refused,
    };
    let text = match body_text(&fake, &body, "update comment") {
        Ok(text) => text,
        Err(refused) => return refused,
    };
    let full = format!("{owner}/{repo}").to_lowercase();
    let mut inner = fake.lock();
    for ((r, _), comments) in inner.comments.iter_mut() {
        if *r != full {
            continue;
        }
        if let Some(comment) = comments.iter_mut().find(|c| c["id"] == id) {
            comment["body"] = Value::String(text);
            comment["updated_at"] = Value::String(super::rfc3339(std::time::SystemTime::now()));
            return Json(comment.clone()).into_response();
        }
    }
    drop(inner);
    not_found()
}

/// DELETE /repos/{owner}/{repo}/issues/comments/{comment_id}
pub(crate) async fn delete(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authorize(
        &fake,
        &headers,
        &owner,
        &repo,
        ISSUES_WRITE,
        "delete comment",
    ) {
        return refused;
    }
    let full = format!("{owner}/{repo}").to_lowercase();
    let mut inner = fake.lock();
    let mut found = false;
    for ((r, _), comments) in inner.comments.iter_mut() {
        if *r == full {
            let before = comments.len();
            comments.retain(|c| c["id"] != id);
            found |= comments.len() != before;
        }
    }
    drop(inner);
    if found {
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found()
    }
}

/// A page of `all` as GitHub serves it (30 per page unless asked, at most
/// 100), with a `link` to the next page that keeps the query.
pub(crate) fn paginated(
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
