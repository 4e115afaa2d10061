//! Deletes (`POST /v1/runtime-deletions`), held to
//! docs/runtime-service/delete-runtime.schema.json: the runtimes of the
//! environment older than the delete go, and the fence moves to it. And the
//! optional list (`GET /v1/runtimes`) of the runtimes no delete removed,
//! [`LIST_PAGE`] at most per page whatever `limit` asks (a service may
//! answer fewer), so a client must follow `next`.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{FakeRuntime, admitted, answer, authorized, contract_errors, delete_validator, refuse};

/// Runtimes per page of the list, at most.
pub const LIST_PAGE: usize = 2;

#[derive(serde::Deserialize)]
pub(super) struct ListQuery {
    limit: Option<usize>,
    after: Option<String>,
}

/// GET /v1/runtimes: the live runtimes by id, a page at a time.
pub(super) async fn list(
    State(fake): State<FakeRuntime>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    if let Some(status) = fake.lock().deletes_offered {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_FOUND);
        return answer(status, "no such route");
    }
    if !authorized(&fake, &headers) {
        return answer(StatusCode::UNAUTHORIZED, "bad token");
    }
    let inner = fake.lock();
    let mut live: Vec<serde_json::Value> = inner
        .runtimes
        .values()
        .filter(|(_, id)| !inner.deleted.contains(id))
        .filter(|(_, id)| query.after.as_ref().is_none_or(|after| id > after))
        .map(|(body, id)| {
            json!({
                "runtimeId": id,
                "appId": body["appId"],
                "environmentId": body["environmentId"],
                "environmentType": body["environmentType"],
                "requestVersion": body["requestVersion"],
            })
        })
        .collect();
    live.sort_by(|a, b| a["runtimeId"].as_str().cmp(&b["runtimeId"].as_str()));
    let page = query.limit.unwrap_or(LIST_PAGE).clamp(1, LIST_PAGE);
    let next = (live.len() > page).then(|| live[page - 1]["runtimeId"].clone());
    live.truncate(page);
    Json(json!({ "runtimes": live, "next": next })).into_response()
}

/// POST /v1/runtime-deletions: the environment's runtimes older than the
/// delete go, the fence moves to it, a repeat of the key answers the same.
pub(super) async fn delete(
    State(fake): State<FakeRuntime>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(status) = fake.lock().deletes_offered {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_FOUND);
        return answer(status, "no such route");
    }
    let (key, body) = match admitted(&fake, &headers, &body) {
        Ok(admitted) => admitted,
        Err(refused) => return *refused,
    };
    if let Some(errors) = contract_errors(delete_validator(), &body) {
        return refuse(
            &fake,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the delete does not match the contract: {errors}"),
        );
    }
    let mut inner = fake.lock();
    if let Some((seen, removed)) = inner.deletions.get(&key) {
        if *seen != body {
            drop(inner);
            return refuse(
                &fake,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("Idempotency-Key {key} was used with a different request"),
            );
        }
        return (StatusCode::OK, Json(json!({ "deleted": removed }))).into_response();
    }
    let environment = body["environmentId"].as_str().unwrap_or("").to_string();
    let version = body["requestVersion"].as_str().unwrap_or("").to_string();
    let newest = inner.newest.get(&environment).cloned().unwrap_or_default();
    if version < newest {
        return answer(
            StatusCode::CONFLICT,
            &format!("superseded: request {newest} was accepted for this environment"),
        );
    }
    inner.newest.insert(environment.clone(), version.clone());
    let removed: Vec<String> = inner
        .runtimes
        .values()
        .filter(|(print, id)| {
            print["environmentId"] == environment.as_str()
                && print["requestVersion"]
                    .as_str()
                    .is_some_and(|v| v < version.as_str())
                && !inner.deleted.contains(id)
        })
        .map(|(_, id)| id.clone())
        .collect();
    if inner.losing_deletes {
        // A service that loses deletes: it says it removed them, and keeps
        // them running (what `envmgr sweep --orphans` is for).
        inner.deletions.insert(key, (body, removed.clone()));
        return (StatusCode::OK, Json(json!({ "deleted": removed }))).into_response();
    }
    inner.deleted.extend(removed.iter().cloned());
    inner.deletions.insert(key, (body, removed.clone()));
    (StatusCode::OK, Json(json!({ "deleted": removed }))).into_response()
}
