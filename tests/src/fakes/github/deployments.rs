//! Deployments and deployment statuses (docs: "REST API endpoints for
//! deployments", "... for deployment statuses"): fields and their types
//! checked, `ref` must name a commit of the repository, environment names
//! at most 255 characters, descriptions at most 140, `auto_inactive`
//! applied, and only an inactive deployment deleted while others exist.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{DEPLOYMENTS_READ, DEPLOYMENTS_WRITE, authorize};
use super::comments::{PageQuery, paginated};
use super::{APP_ID, FakeGitHub, github_error, refuse, rfc3339};

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
/// GitHub's longest environment name.
const ENVIRONMENT_NAME_LIMIT: usize = 255;
/// GitHub's longest status description.
const DESCRIPTION_LIMIT: usize = 140;

/// A deployment the fake holds.
#[derive(Clone, Debug)]
pub struct FakeDeployment {
    /// `owner/repo`, lower-cased.
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

    pub fn environment(&self) -> &str {
        self.deployment["environment"].as_str().unwrap_or("")
    }

    pub fn sha(&self) -> &str {
        self.deployment["sha"].as_str().unwrap_or("")
    }
}

/// A documented body parameter: its name, its type check, the type's name.
type Field = (&'static str, fn(&Value) -> bool, &'static str);

/// Each present key must have its documented type; no other key may appear.
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

fn not_found() -> Response {
    github_error(
        StatusCode::NOT_FOUND,
        "Not Found",
        "https://docs.github.com/rest/deployments/deployments",
    )
}

/// POST /repos/{owner}/{repo}/deployments
pub(crate) async fn create(
    State(fake): State<FakeGitHub>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let what = "create deployment";
    if let Err(refused) = authorize(&fake, &headers, &owner, &repo, DEPLOYMENTS_WRITE, what) {
        return refused;
    }
    let body = match super::json_body(&body) {
        Ok(body) => body.unwrap_or(Value::Null),
        Err(refused) => return refused,
    };
    let invalid = |why: String| {
        refuse(
            &fake,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{what}: {why}"),
        )
    };
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
        return invalid(why);
    }
    let Some(reference) = body["ref"].as_str().filter(|r| !r.is_empty()) else {
        return invalid("`ref` is required".into());
    };
    let full = format!("{owner}/{repo}").to_lowercase();
    if !fake
        .lock()
        .commits
        .contains(&(full.clone(), reference.to_string()))
    {
        return invalid(format!("No ref found for: {reference}"));
    }
    let environment = body["environment"]
        .as_str()
        .unwrap_or("production")
        .to_string();
    if environment.chars().count() > ENVIRONMENT_NAME_LIMIT {
        return invalid(format!(
            "environment name is too long (maximum is {ENVIRONMENT_NAME_LIMIT} characters)"
        ));
    }
    // What GitHub would do without these: merge the default branch into the
    // ref (a commit in the user's repository), or wait for every commit
    // status context to succeed.
    if body["auto_merge"] != json!(false) {
        return refuse(
            &fake,
            StatusCode::CONFLICT,
            format!(
                "{what}: auto_merge is not false, GitHub would merge the default branch into {reference}"
            ),
        );
    }
    if body.get("required_contexts").is_none() {
        return refuse(
            &fake,
            StatusCode::CONFLICT,
            format!("{what}: without required_contexts GitHub checks every commit status context"),
        );
    }
    let mut inner = fake.lock();
    inner.next_id += 1;
    let id = 1_000_000 + inner.next_id;
    let now = rfc3339(std::time::SystemTime::now());
    let deployment = json!({
        "url": format!("https://api.github.com/repos/{owner}/{repo}/deployments/{id}"),
        "id": id,
        "node_id": format!("DE_fake{id}"),
        "sha": reference,
        "ref": reference,
        "task": body["task"].as_str().unwrap_or("deploy"),
        "payload": body.get("payload").cloned().unwrap_or_else(|| json!({})),
        "original_environment": environment,
        "environment": environment,
        "description": body["description"].as_str(),
        "creator": super::bot_json(),
        "created_at": now,
        "updated_at": now,
        "statuses_url": format!("https://api.github.com/repos/{owner}/{repo}/deployments/{id}/statuses"),
        "repository_url": format!("https://api.github.com/repos/{owner}/{repo}"),
        "transient_environment": body["transient_environment"].as_bool().unwrap_or(false),
        "production_environment": body["production_environment"]
            .as_bool()
            .unwrap_or(environment == "production"),
        "performed_via_github_app": { "id": APP_ID, "slug": "envmgr", "name": "envmgr" }
    });
    inner.deployments.push(FakeDeployment {
        repository: full,
        deployment: deployment.clone(),
        statuses: Vec::new(),
    });
    (StatusCode::CREATED, Json(deployment)).into_response()
}

#[derive(serde::Deserialize)]
pub(crate) struct DeploymentQuery {
    sha: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<String>,
    task: Option<String>,
    environment: Option<String>,
    per_page: Option<usize>,
    page: Option<usize>,
}

/// GET /repos/{owner}/{repo}/deployments (newest first, as GitHub lists them)
pub(crate) async fn list(
    State(fake): State<FakeGitHub>,
    Path((owner, repo)): Path<(String, String)>,
    Query(query): Query<DeploymentQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authorize(
        &fake,
        &headers,
        &owner,
        &repo,
        DEPLOYMENTS_READ,
        "list deployments",
    ) {
        return refused;
    }
    let full = format!("{owner}/{repo}").to_lowercase();
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
        &format!("/repos/{owner}/{repo}/deployments"),
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

/// DELETE /repos/{owner}/{repo}/deployments/{deployment_id}: "If the
/// repository has more than one deployment, you can only delete inactive
/// deployments."
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
        DEPLOYMENTS_WRITE,
        "delete deployment",
    ) {
        return refused;
    }
    let full = format!("{owner}/{repo}").to_lowercase();
    let refusal = {
        let mut inner = fake.lock();
        let in_repo = inner
            .deployments
            .iter()
            .filter(|d| d.repository == full)
            .count();
        let Some(at) = inner
            .deployments
            .iter()
            .position(|d| d.repository == full && d.id() == id)
        else {
            drop(inner);
            return not_found();
        };
        if in_repo > 1 && inner.deployments[at].state() != Some("inactive") {
            Some(format!(
                "delete deployment {id}: We cannot delete an active deployment unless it is the only deployment in a given environment."
            ))
        } else {
            inner.deployments.remove(at);
            None
        }
    };
    match refusal {
        Some(why) => refuse(&fake, StatusCode::UNPROCESSABLE_ENTITY, why),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// POST /repos/{owner}/{repo}/deployments/{deployment_id}/statuses
pub(crate) async fn create_status(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let what = "create deployment status";
    if let Err(refused) = authorize(&fake, &headers, &owner, &repo, DEPLOYMENTS_WRITE, what) {
        return refused;
    }
    let body = match super::json_body(&body) {
        Ok(body) => body.unwrap_or(Value::Null),
        Err(refused) => return refused,
    };
    let invalid = |why: String| {
        refuse(
            &fake,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{what}: {why}"),
        )
    };
    let (status_state, description) = match valid_status(&body) {
        Ok(valid) => valid,
        Err(why) => return invalid(why),
    };
    let auto_inactive = body["auto_inactive"].as_bool().unwrap_or(true);
    let full = format!("{owner}/{repo}").to_lowercase();
    let mut inner = fake.lock();
    inner.next_id += 1;
    let status_id = 2_000_000 + inner.next_id;
    let Some(at) = inner
        .deployments
        .iter()
        .position(|d| d.repository == full && d.id() == id)
    else {
        drop(inner);
        return not_found();
    };
    let environment = body["environment"]
        .as_str()
        .unwrap_or_else(|| inner.deployments[at].environment())
        .to_string();
    let log_url = body["log_url"]
        .as_str()
        .or(body["target_url"].as_str())
        .unwrap_or("")
        .to_string();
    let now = rfc3339(std::time::SystemTime::now());
    let status = |status_id: u64,
                  state: &str,
                  description: &str,
                  log_url: &str,
                  environment_url: &str| {
        json!({
            "url": format!("https://api.github.com/repos/{owner}/{repo}/deployments/{id}/statuses/{status_id}"),
            "id": status_id,
            "node_id": format!("DES_fake{status_id}"),
            "state": state,
            "creator": super::bot_json(),
            "description": description,
            "environment": environment,
            "target_url": log_url,
            "log_url": log_url,
            "environment_url": environment_url,
            "created_at": now,
            "updated_at": now,
            "deployment_url": format!("https://api.github.com/repos/{owner}/{repo}/deployments/{id}"),
            "repository_url": format!("https://api.github.com/repos/{owner}/{repo}"),
            "performed_via_github_app": { "id": APP_ID, "slug": "envmgr", "name": "envmgr" }
        })
    };
    let created = status(
        status_id,
        status_state,
        description,
        &log_url,
        body["environment_url"].as_str().unwrap_or(""),
    );
    inner.deployments[at].statuses.push(created.clone());
    // auto_inactive: "Adds a new inactive status to all prior non-transient,
    // non-production environment deployments with the same repository and
    // environment name as the created status's deployment. An inactive
    // status is only added to deployments that had a success state."
    if status_state == "success" && auto_inactive {
        let retire = retired_by_success(&inner.deployments, &full, &environment, id);
        for i in retire {
            inner.next_id += 1;
            let retired_id = 2_000_000 + inner.next_id;
            let other_id = inner.deployments[i].id();
            let mut inactive = status(retired_id, "inactive", "", "", "");
            inactive["deployment_url"] =
                format!("https://api.github.com/repos/{owner}/{repo}/deployments/{other_id}")
                    .into();
            inner.deployments[i].statuses.push(inactive);
        }
    }
    (StatusCode::CREATED, Json(created)).into_response()
}

/// A deployment status's body checked as GitHub checks it: its state and
/// description, or why it is refused.
fn valid_status(body: &Value) -> Result<(&str, &str), String> {
    let fields: &[Field] = &[
        ("state", string, "a string"),
        ("target_url", string, "a string"),
        ("log_url", string, "a string"),
        ("description", string, "a string"),
        ("environment", string, "a string"),
        ("environment_url", string, "a string"),
        ("auto_inactive", boolean, "a boolean"),
    ];
    check_fields(body, fields)?;
    let Some(status_state) = body["state"].as_str() else {
        return Err("`state` is required".into());
    };
    if !STATES.contains(&status_state) {
        return Err(format!("`state` `{status_state}` is not one of {STATES:?}"));
    }
    let description = body["description"].as_str().unwrap_or("");
    if description.chars().count() > DESCRIPTION_LIMIT {
        return Err(format!(
            "the description has more than {DESCRIPTION_LIMIT} characters: {description}"
        ));
    }
    Ok((status_state, description))
}

/// The deployments a success status with auto_inactive retires: prior ones
/// to the same environment of the repository, neither transient nor
/// production, whose state is success.
fn retired_by_success(
    deployments: &[FakeDeployment],
    full: &str,
    environment: &str,
    id: u64,
) -> Vec<usize> {
    let mut retire = Vec::new();
    for (i, other) in deployments.iter().enumerate() {
        let prior = other.id() < id;
        let eligible = other.repository == full
            && other.environment() == environment
            && prior
            && other.deployment["transient_environment"] != json!(true)
            && other.deployment["production_environment"] != json!(true)
            && other.state() == Some("success");
        if eligible {
            retire.push(i);
        }
    }
    retire
}

/// GET /repos/{owner}/{repo}/deployments/{deployment_id}/statuses (newest
/// first, as GitHub lists them)
pub(crate) async fn list_statuses(
    State(fake): State<FakeGitHub>,
    Path((owner, repo, id)): Path<(String, String, u64)>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authorize(
        &fake,
        &headers,
        &owner,
        &repo,
        DEPLOYMENTS_READ,
        "list deployment statuses",
    ) {
        return refused;
    }
    let full = format!("{owner}/{repo}").to_lowercase();
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
            &format!("/repos/{owner}/{repo}/deployments/{id}/statuses"),
            "",
        ),
        None => not_found(),
    }
}
