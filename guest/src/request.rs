//! The two message kinds, turned into one create request.
//!
//! 1. A GitHub webhook delivery in Probot's shape, from the probot queue:
//!    `{ "id": <delivery id>, "name": "pull_request", "payload": {...} }`
//!    (`request/webhook.rs`).
//! 2. A versioned create request from the platform API, from the api queue:
//!    `{ "version": 1, "kind": "create-environment", ... }`
//!    (`request/api.rs`).
//!
//! The kind is told by the body's shape, not by the queue it came on, so a
//! misrouted message is still understood. What both must meet (the
//! documented limits, a commit id, a branch name) is checked here.
//! docs/messages.md has examples.

mod api;
mod teardown;
mod webhook;

pub use teardown::{DELETE_SUFFIX, DeleteRequest, Order, Reason};

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::capabilities::Repository;

/// Where the environment's app comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppRef {
    /// The platform API names the app.
    Id(String),
    /// A webhook names the repository; the app is found by its full name.
    Repository,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvironmentType {
    Preview,
    Production,
}

impl EnvironmentType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Preview => "preview",
            Self::Production => "production",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    pub title: String,
}

/// Everything the flow needs to ensure one environment exists at one commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateRequest {
    pub app: AppRef,
    pub environment_type: EnvironmentType,
    pub repository: Repository,
    /// The branch the environment follows. For a pull request from a fork it
    /// is `fork-owner:branch`, so a fork's `main` never lands on ours.
    pub branch: String,
    pub sha: String,
    pub pull_request: Option<PullRequest>,
    pub installation_id: u64,
    /// None: the app's default entrypoint.
    pub entrypoint: Option<String>,
    /// Segment user id of whoever caused the request.
    pub requester: String,
    /// When the request was made; orders requests for one environment.
    pub requested_at_ms: u64,
    /// Who wrote the code to deploy, as far as envmgr can tell: decides
    /// whether it gets the app's secrets and a GitHub token (`trust.rs`).
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The platform API, which authorized the request itself.
    Platform,
    /// A pull-request event from GitHub: code anyone with an account may have
    /// written.
    PullRequest {
        /// `pull_request.user.login`; None when the event lacks it.
        author: Option<String>,
        /// The head branch is in another repository, or in a deleted one.
        from_fork: bool,
    },
}

/// What a message asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Create(Box<CreateRequest>),
    /// An environment to end (`teardown.rs`).
    Delete(Box<DeleteRequest>),
    /// An app's previews to look over: one delete is sent to the `api`
    /// queue per preview to end (`flow/sweep.rs`). The host's sweep sends
    /// one per app.
    Sweep(String),
    /// A runtime's status report: the compact JWS (docs/messages.md).
    Report(String),
    /// A well-formed message the flow does not act on, with the reason.
    Ignored(String),
}

/// Why a message cannot be understood: always permanent.
#[derive(Debug, PartialEq, Eq)]
pub struct BadInput(pub String);

pub fn parse(body: &str) -> Result<Parsed, BadInput> {
    webhook::at_once(body).unwrap_or_else(|| careful(body))
}

/// Every message kind, with an error that names the problem: the shape
/// first, then the kind's own parse.
fn careful(body: &str) -> Result<Parsed, BadInput> {
    // A first pass that allocates nothing tells the kind by which keys exist.
    let shape: Shape = typed(body).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let at = if path == "." {
            String::new()
        } else {
            format!(" at `{path}`")
        };
        if !body.trim_start().starts_with('{') {
            // One JSON value of another kind, or not JSON at all: say which.
            match serde_json::from_str::<IgnoredAny>(body) {
                Ok(_) => BadInput("the message body must be a JSON object".to_string()),
                Err(e) => BadInput(format!("the message body is not valid JSON: {e}")),
            }
        } else if inner.to_string().starts_with("number out of range") {
            BadInput(format!(
                "the message body has a number too large to hold{at}: {inner}"
            ))
        } else if inner.to_string().starts_with("duplicate field") {
            BadInput(format!("the message body names a field twice{at}: {inner}"))
        } else {
            match inner.classify() {
                serde_json::error::Category::Data => {
                    BadInput(format!("the message body is not acceptable{at}: {inner}"))
                }
                _ => BadInput(format!("the message body is not valid JSON: {inner}")),
            }
        }
    })?;
    if shape.payload.is_some() && shape.name.is_some() {
        webhook::parse(body)
    } else if shape.kind.is_some() {
        api::parse(body, shape.version)
    } else {
        Err(BadInput(
            "unknown message kind: expected a Probot webhook event \
             {\"id\", \"name\", \"payload\"} or a platform API request \
             {\"version\", \"kind\", ...}"
                .to_string(),
        ))
    }
}

/// Which top-level keys a body has.
#[derive(Deserialize)]
struct Shape {
    name: Option<IgnoredAny>,
    payload: Option<IgnoredAny>,
    kind: Option<IgnoredAny>,
    version: Option<serde_json::Value>,
}

/// Deserialize `json` as one JSON value and nothing after it, naming the
/// field that is wrong (`pull_request.head: missing field \`sha\``), not
/// only what was expected; text after the value is refused with where it
/// starts (`trailing characters at line 1 column 12`).
fn typed<'de, T: Deserialize<'de>>(json: &'de str) -> Result<T, Malformed> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(Malformed::At)?;
    deserializer.end().map_err(Malformed::Trailing)?;
    Ok(value)
}

/// Why [`typed`] refused a text.
enum Malformed {
    /// At this field.
    At(serde_path_to_error::Error<serde_json::Error>),
    /// Text after the value.
    Trailing(serde_json::Error),
}

impl Malformed {
    /// The field's path (`.` for the whole text).
    fn path(&self) -> String {
        match self {
            Malformed::At(e) => e.path().to_string(),
            Malformed::Trailing(_) => ".".to_string(),
        }
    }

    fn into_inner(self) -> serde_json::Error {
        match self {
            Malformed::At(e) => e.into_inner(),
            Malformed::Trailing(e) => e,
        }
    }
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::At(e) => e.fmt(f),
            Malformed::Trailing(e) => e.fmt(f),
        }
    }
}

/// The documented limits (docs/messages.md, "Limits"): GitHub's for names,
/// and what the record, the Runtime Service contract and Segment take. A
/// request outside them is refused with the field named, never cut.
pub const ENTRYPOINT_LIMIT: usize = 1_024;
pub const REQUESTER_LIMIT: usize = 255;
pub const TITLE_LIMIT: usize = 1_024;
pub const APP_ID_LIMIT: usize = 64;

/// What each checked field is called in the message it came from: a refusal
/// names the field as the producer wrote it (`sender.login`, not the
/// request's `requester`).
struct FieldNames {
    owner: &'static str,
    name: &'static str,
    app_id: &'static str,
    entrypoint: &'static str,
    requester: &'static str,
    title: &'static str,
    sha: &'static str,
    branch: &'static str,
}

fn within_limits(request: &CreateRequest, names: &FieldNames) -> Result<(), BadInput> {
    let owner = &request.repository.owner;
    let name = &request.repository.name;
    if !(1..=39).contains(&owner.len())
        || !owner.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(BadInput(format!(
            "{}: repository owner `{owner}` is not a GitHub login (letters, digits and -, at most 39)",
            names.owner
        )));
    }
    if !(1..=100).contains(&name.len())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(BadInput(format!(
            "{}: repository name `{name}` is not a GitHub repository name (letters, digits, -, _ and ., at most 100)",
            names.name
        )));
    }
    if let AppRef::Id(id) = &request.app
        && (id.len() > APP_ID_LIMIT
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(BadInput(format!(
            "{} `{id}` is not an app id (letters, digits, -, _ and ., at most {APP_ID_LIMIT})",
            names.app_id
        )));
    }
    let too_long = |field: &str, value: &str, limit: usize| {
        (value.chars().count() > limit).then(|| {
            BadInput(format!(
                "{field} has {} characters, more than {limit}",
                value.chars().count()
            ))
        })
    };
    // The requester is stored with what envmgr adds (`github:`): the limit
    // holds for what is stored, the refusal speaks of what was sent.
    let sent = requester_as_sent(request);
    let added = request.requester.chars().count() - sent.chars().count();
    let checks = [
        request
            .entrypoint
            .as_deref()
            .and_then(|e| too_long(names.entrypoint, e, ENTRYPOINT_LIMIT)),
        too_long(names.requester, sent, REQUESTER_LIMIT - added),
        request
            .pull_request
            .as_ref()
            .and_then(|p| too_long(names.title, &p.title, TITLE_LIMIT)),
    ];
    match checks.into_iter().flatten().next() {
        Some(refused) => Err(refused),
        None => Ok(()),
    }
}

/// The requester as the message carried it (a webhook's `sender.login`
/// without the `github:` the request adds).
fn requester_as_sent(request: &CreateRequest) -> &str {
    match request.origin {
        Origin::PullRequest { .. } => request
            .requester
            .strip_prefix("github:")
            .unwrap_or(&request.requester),
        Origin::Platform => &request.requester,
    }
}

fn parse_repository(full_name: &str) -> Result<Repository, BadInput> {
    match full_name.split_once('/') {
        Some((owner, name)) if !owner.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(Repository {
                owner: owner.to_string(),
                name: name.to_string(),
            })
        }
        _ => Err(BadInput(format!(
            "repository `{full_name}` is not of the form owner/name"
        ))),
    }
}

fn validate_sha(sha: &str, field: &str) -> Result<String, BadInput> {
    let valid = sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit());
    if valid {
        Ok(sha.to_ascii_lowercase())
    } else {
        Err(BadInput(format!(
            "{field} `{sha}` is not a full 40-character commit id"
        )))
    }
}

fn validate_branch(branch: &str, field: &str) -> Result<(), BadInput> {
    let valid = !branch.is_empty()
        && branch.len() <= 255
        && !branch.chars().any(|c| c.is_control() || c == ' ');
    if valid {
        Ok(())
    } else {
        Err(BadInput(format!(
            "{field} `{branch}` is not a valid branch name"
        )))
    }
}

#[cfg(test)]
mod tests;
