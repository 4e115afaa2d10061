//! Pull requests and environments (docs: "REST API endpoints for pull
//! requests", "List pull requests": `state` open by default, `head`
//! filtering by `user:ref-name`, newest first, paginated; "REST API
//! endpoints for deployment environments", "Delete an environment": the
//! name one URL-encoded path segment, 204, and an App needs Administration:
//! write).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{ADMINISTRATION_WRITE, PULL_REQUESTS_READ, authorize};
use super::comments::paginated;
use super::{FakeGitHub, github_error};

/// A pull request the fake holds: its head and whether it is open.
#[derive(Clone, Debug)]
pub struct FakePull {
    pub head_label: String,
    pub head_sha: String,
    pub open: bool,
}

#[derive(Deserialize)]
pub(crate) struct PullsQuery {
    state: Option<String>,
    head: Option<String>,
    per_page: Option<usize>,
    page: Option<usize>,
}

/// GET /repos/{owner}/{repo}/pulls
pub(crate) async fn list(
    State(fake): State<FakeGitHub>,
    Path((owner, repo)): Path<(String, String)>,
    Query(query): Query<PullsQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authorize(
        &fake,
        &headers,
        &owner,
        &repo,
        PULL_REQUESTS_READ,
        "list pull requests",
    ) {
        return refused;
    }
    let state = query.state.clone().unwrap_or_else(|| "open".into());
    if !["open", "closed", "all"].contains(&state.as_str()) {
        return github_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation Failed",
            "https://docs.github.com/rest/pulls/pulls#list-pull-requests",
        );
    }
    let full = format!("{owner}/{repo}").to_lowercase();
    let mut all: Vec<Value> = fake
        .lock()
        .pulls
        .iter()
        .filter(|((of, _), pull)| {
            *of == full
                && match state.as_str() {
                    "open" => pull.open,
                    "closed" => !pull.open,
                    _ => true,
                }
                && query.head.as_ref().is_none_or(|h| *h == pull.head_label)
        })
        .map(|((_, number), pull)| {
            json!({
                "number": number,
                "state": if pull.open { "open" } else { "closed" },
                "head": { "label": pull.head_label, "sha": pull.head_sha },
            })
        })
        .collect();
    // Newest first, as GitHub sorts by `created` descending by default.
    all.reverse();
    let mut kept = format!("state={state}&");
    if let Some(head) = &query.head {
        kept.push_str(&format!("head={}&", head.replace(':', "%3A")));
    }
    paginated(
        all,
        query.per_page,
        query.page,
        &headers,
        &format!("/repos/{owner}/{repo}/pulls"),
        &kept,
    )
}

/// DELETE /repos/{owner}/{repo}/environments/{environment_name}: the
/// environment and its deployments; 404 when there is none.
pub(crate) async fn delete_environment(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authorize(
        &fake,
        &headers,
        &owner,
        &repo,
        ADMINISTRATION_WRITE,
        "delete an environment",
    ) {
        return refused;
    }
    let full = format!("{owner}/{repo}").to_lowercase();
    let mut inner = fake.lock();
    let before = inner.deployments.len();
    inner
        .deployments
        .retain(|d| !(d.repository == full && d.environment() == name));
    let had = before != inner.deployments.len();
    if !had {
        return github_error(
            StatusCode::NOT_FOUND,
            "Not Found",
            "https://docs.github.com/rest/deployments/environments#delete-an-environment",
        );
    }
    inner.deleted_environments.push((full, name));
    StatusCode::NO_CONTENT.into_response()
}
