//! A platform API message, from the api queue: a versioned create request
//! (`{ "version": 1, "kind": "create-environment", ... }`), a delete
//! (`"kind": "delete-environment"`), or a runtime's status report
//! (`"kind": "runtime-status"`).
//!
//! Apart from GitHub's webhook events (`webhook.rs`) because envmgr
//! defines this shape itself: it is versioned and strict (an unknown field
//! is refused), where an event is read leniently.

use serde::Deserialize;

use super::{
    AppRef, BadInput, CreateRequest, EnvironmentType, FieldNames, Origin, Parsed, PullRequest,
    parse_repository, typed, validate_branch, validate_sha, within_limits,
};
use crate::request::teardown::{DeleteRequest, Order, Reason};
use crate::time::parse_rfc3339_ms;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ApiRequest {
    version: u32,
    /// Read first (`parse`): a create's.
    #[allow(dead_code)]
    kind: String,
    app_id: String,
    environment_type: String,
    repository: String,
    branch: String,
    sha: String,
    pull_request: Option<ApiPullRequest>,
    installation_id: u64,
    entrypoint: Option<String>,
    requester: String,
    requested_at: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiPullRequest {
    number: u64,
    title: String,
}

/// The API request versions this logic understands.
const API_VERSION: u32 = 1;

/// A runtime's status report, as the Runtime Service puts it on the `api`
/// queue.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportEnvelope {
    #[allow(dead_code)]
    version: u32,
    #[allow(dead_code)]
    kind: String,
    report: String,
}

/// The longest report accepted: far more than a report needs, far less
/// than a queue message can hold.
const MAX_REPORT_BYTES: usize = 16 << 10;

/// A platform API request of `version`: a create request, or a runtime's
/// status report.
pub(super) fn parse(body: &str, version: Option<serde_json::Value>) -> Result<Parsed, BadInput> {
    if version.as_ref().and_then(|v| v.as_u64()) != Some(u64::from(API_VERSION)) {
        return Err(BadInput(format!(
            "API request version {} is not supported; this logic reads version {API_VERSION}",
            version.map_or_else(|| "(missing)".into(), |v| v.to_string())
        )));
    }
    #[derive(Deserialize)]
    struct Kind {
        kind: String,
    }
    let kind: Kind = typed(body).map_err(|e| BadInput(format!("malformed API request: {e}")))?;
    if kind.kind == "runtime-status" {
        let envelope: ReportEnvelope =
            typed(body).map_err(|e| BadInput(format!("malformed runtime status report: {e}")))?;
        if envelope.report.len() > MAX_REPORT_BYTES {
            return Err(BadInput(format!(
                "the runtime status report has {} bytes, more than {MAX_REPORT_BYTES}",
                envelope.report.len()
            )));
        }
        return Ok(Parsed::Report(envelope.report));
    }
    match kind.kind.as_str() {
        "create-environment" => {}
        "delete-environment" => return delete_request(body),
        "sweep" => {
            let sweep: Sweep =
                typed(body).map_err(|e| BadInput(format!("malformed sweep request: {e}")))?;
            return Ok(Parsed::Sweep(sweep.app_id));
        }
        other => {
            return Err(BadInput(format!(
                "unknown API request kind `{other}`; this logic handles `create-environment`, \
                 `delete-environment`, `sweep` and `runtime-status`"
            )));
        }
    }
    let api: ApiRequest =
        typed(body).map_err(|e| BadInput(format!("malformed API request: {e}")))?;
    debug_assert_eq!(api.version, API_VERSION);
    let environment_type = environment_type(&api.environment_type)?;
    let repository = parse_repository(&api.repository)?;
    if api.app_id.trim().is_empty() {
        return Err(BadInput("appId is empty".to_string()));
    }
    let requested_at_ms = parse_rfc3339_ms(&api.requested_at).ok_or_else(|| {
        BadInput(format!(
            "requestedAt `{}` is not an RFC 3339 time such as 2026-11-28T12:00:00Z",
            api.requested_at
        ))
    })?;
    if let Some(entrypoint) = &api.entrypoint
        && entrypoint.trim().is_empty()
    {
        return Err(BadInput(
            "entrypoint is empty; omit it to use the app's default".to_string(),
        ));
    }
    validate_branch(&api.branch, API_FIELDS.branch)?;
    let request = CreateRequest {
        app: AppRef::Id(api.app_id),
        environment_type,
        repository,
        branch: api.branch,
        sha: validate_sha(&api.sha, API_FIELDS.sha)?,
        pull_request: api.pull_request.map(|p| PullRequest {
            number: p.number,
            title: p.title,
        }),
        installation_id: api.installation_id,
        entrypoint: api.entrypoint,
        requester: api.requester,
        requested_at_ms,
        origin: Origin::Platform,
    };
    within_limits(&request, &API_FIELDS)?;
    Ok(Parsed::Create(Box::new(request)))
}

/// The checked fields as the API names them.
const API_FIELDS: FieldNames = FieldNames {
    owner: "repository",
    name: "repository",
    app_id: "appId",
    entrypoint: "entrypoint",
    requester: "requester",
    title: "pullRequest.title",
    sha: "sha",
    branch: "branch",
};

fn environment_type(named: &str) -> Result<EnvironmentType, BadInput> {
    match named {
        "preview" => Ok(EnvironmentType::Preview),
        "production" => Ok(EnvironmentType::Production),
        other => Err(BadInput(format!(
            "environmentType `{other}` is not one of preview, production"
        ))),
    }
}

/// The host's sweep of one app's previews (`"kind": "sweep"`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Sweep {
    #[allow(dead_code)]
    version: u32,
    #[allow(dead_code)]
    kind: String,
    app_id: String,
}

/// A platform API delete (`"kind": "delete-environment"`): strict as a
/// create is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ApiDelete {
    #[allow(dead_code)]
    version: u32,
    #[allow(dead_code)]
    kind: String,
    app_id: String,
    environment_type: String,
    branch: String,
    requester: String,
    /// When it was asked for: it follows every request made up to then.
    requested_at: Option<String>,
    /// Or: only the request at exactly this version (what the asker saw).
    if_request_version: Option<String>,
    /// `api` (the default); a sweep's say why it sent them (`idle`,
    /// `pull-request-closed`, or the reason of a delete it finishes).
    reason: Option<String>,
}

fn delete_request(body: &str) -> Result<Parsed, BadInput> {
    let api: ApiDelete =
        typed(body).map_err(|e| BadInput(format!("malformed API delete request: {e}")))?;
    let environment_type = environment_type(&api.environment_type)?;
    if api.app_id.trim().is_empty() {
        return Err(BadInput("appId is empty".to_string()));
    }
    validate_branch(&api.branch, API_FIELDS.branch)?;
    let order = match (&api.requested_at, api.if_request_version) {
        (Some(at), None) => Order::At {
            ms: parse_rfc3339_ms(at).ok_or_else(|| {
                BadInput(format!(
                    "requestedAt `{at}` is not an RFC 3339 time such as 2026-11-28T12:00:00Z"
                ))
            })?,
            sha: None,
        },
        (None, Some(version)) if is_request_version(&version) => Order::IfAt(version),
        (None, Some(version)) => {
            return Err(BadInput(format!(
                "ifRequestVersion `{version}` is not a request version \
                 ({{13-digit ms}}#{{40 hex digits}})"
            )));
        }
        _ => {
            return Err(BadInput(
                "a delete names exactly one of requestedAt and ifRequestVersion".to_string(),
            ));
        }
    };
    let reason = match api.reason.as_deref() {
        None => Reason::Api,
        Some(name) => Reason::named(name).ok_or_else(|| {
            let known: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
            BadInput(format!(
                "reason `{name}` is not one of {}",
                known.join(", ")
            ))
        })?,
    };
    Ok(Parsed::Delete(Box::new(DeleteRequest {
        app: AppRef::Id(api.app_id),
        environment_type,
        repository: None,
        branch: api.branch,
        pull_request: None,
        installation_id: None,
        requester: api.requester,
        reason,
        order,
        from_webhook: false,
        head: None,
    })))
}

/// `{13-digit ms}#{40 hex digits}`, as a create's version is written.
fn is_request_version(version: &str) -> bool {
    let (ms, sha) = version.split_at(version.len().min(13));
    ms.len() == 13
        && ms.bytes().all(|b| b.is_ascii_digit())
        && sha.len() == 41
        && sha.starts_with('#')
        && sha[1..]
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
