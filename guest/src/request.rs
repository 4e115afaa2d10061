//! The two message kinds, turned into one create request.
//!
//! 1. A GitHub webhook delivery in Probot's shape, from the probot queue:
//!    `{ "id": <delivery id>, "name": "pull_request", "payload": {...} }`.
//! 2. A versioned create request from the platform API, from the api queue:
//!    `{ "version": 1, "kind": "create-environment", ... }`.
//!
//! The kind is told by the body's shape, not by the queue it came on, so a
//! misrouted message is still understood. docs/messages.md has examples.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use crate::capabilities::Repository;
use crate::time::parse_rfc3339_ms;

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
    /// A runtime's status report: the compact JWS (docs/messages.md).
    Report(String),
    /// A well-formed message the flow does not act on, with the reason.
    Ignored(String),
}

/// Why a message cannot be understood: always permanent.
#[derive(Debug, PartialEq, Eq)]
pub struct BadInput(pub String);

pub fn parse(body: &str) -> Result<Parsed, BadInput> {
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
        parse_webhook(body)
    } else if shape.kind.is_some() {
        parse_api(body, shape.version)
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

// ---------------------------------------------------------------------------
// Probot webhook events

#[derive(Deserialize)]
struct WebhookEvent {
    id: String,
    name: String,
    payload: Box<RawValue>,
}

/// Only the action, so events that do not deploy are not parsed further.
#[derive(Deserialize)]
struct Action {
    action: Option<String>,
}

#[derive(Deserialize)]
struct PullRequestEvent {
    pull_request: PullRequestPayload,
    repository: RepositoryPayload,
    installation: Option<InstallationPayload>,
    sender: Option<UserPayload>,
}

#[derive(Deserialize)]
struct PullRequestPayload {
    number: u64,
    title: String,
    updated_at: String,
    /// The author; optional so an event without it still deploys, untrusted
    /// when the app names its trusted authors.
    user: Option<UserPayload>,
    head: RefPayload,
}

#[derive(Deserialize)]
struct RefPayload {
    #[serde(rename = "ref")]
    branch: String,
    sha: String,
    /// Null when the fork was deleted.
    repo: Option<RepositoryPayload>,
}

#[derive(Deserialize)]
struct RepositoryPayload {
    full_name: String,
    name: String,
    owner: UserPayload,
}

#[derive(Deserialize)]
struct UserPayload {
    login: String,
}

#[derive(Deserialize)]
struct InstallationPayload {
    id: u64,
}

/// Pull-request actions after which the head commit should be deployed.
const DEPLOYING_ACTIONS: [&str; 4] = ["opened", "reopened", "synchronize", "ready_for_review"];

fn parse_webhook(body: &str) -> Result<Parsed, BadInput> {
    let event: WebhookEvent =
        typed(body).map_err(|e| BadInput(format!("malformed Probot webhook event: {e}")))?;
    if event.name != "pull_request" {
        return Ok(Parsed::Ignored(format!(
            "webhook event `{}` (delivery {}) is not handled; only pull_request is",
            event.name, event.id
        )));
    }
    if !event.payload.get().trim_start().starts_with('{') {
        return Err(BadInput(format!(
            "the webhook event's `payload` (delivery {}) must be a JSON object",
            event.id
        )));
    }
    let action = serde_json::from_str::<Action>(event.payload.get())
        .ok()
        .and_then(|a| a.action)
        .unwrap_or_default();
    if !DEPLOYING_ACTIONS.contains(&action.as_str()) {
        return Ok(Parsed::Ignored(format!(
            "pull_request action `{action}` (delivery {}) does not deploy; \
             only {} do",
            event.id,
            DEPLOYING_ACTIONS.join(", ")
        )));
    }
    let payload: PullRequestEvent = typed(event.payload.get()).map_err(|e| {
        BadInput(format!(
            "malformed pull_request payload (delivery {}): {e}",
            event.id
        ))
    })?;
    let pr = payload.pull_request;
    let installation_id = payload.installation.map(|i| i.id).ok_or_else(|| {
        BadInput(format!(
            "pull_request payload (delivery {}) has no installation: \
             the event must come from the GitHub App",
            event.id
        ))
    })?;
    let base = &payload.repository;
    // A fork's branch is named after its owner, so a fork's `main` never
    // lands on the base repository's `main` environment.
    let (branch, from_fork) = match &pr.head.repo {
        Some(head) if head.full_name.eq_ignore_ascii_case(&base.full_name) => {
            (pr.head.branch.clone(), false)
        }
        Some(head) => (format!("{}:{}", head.owner.login, pr.head.branch), true),
        None => (format!("deleted-fork:{}", pr.head.branch), true),
    };
    let requested_at_ms = parse_rfc3339_ms(&pr.updated_at).ok_or_else(|| {
        BadInput(format!(
            "pull_request.updated_at `{}` is not an RFC 3339 time",
            pr.updated_at
        ))
    })?;
    let request = CreateRequest {
        app: AppRef::Repository,
        environment_type: EnvironmentType::Preview,
        repository: Repository {
            owner: base.owner.login.clone(),
            name: base.name.clone(),
        },
        branch,
        sha: validate_sha(&pr.head.sha, WEBHOOK_FIELDS.sha)?,
        pull_request: Some(PullRequest {
            number: pr.number,
            title: pr.title,
        }),
        installation_id,
        entrypoint: None,
        requester: payload
            .sender
            .map(|s| format!("github:{}", s.login))
            .unwrap_or_default(),
        requested_at_ms,
        origin: Origin::PullRequest {
            author: pr.user.map(|user| user.login),
            from_fork,
        },
    };
    validate_branch(&request.branch, WEBHOOK_FIELDS.branch)?;
    within_limits(&request, &WEBHOOK_FIELDS)?;
    Ok(Parsed::Create(Box::new(request)))
}

// ---------------------------------------------------------------------------
// Platform API requests

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ApiRequest {
    version: u32,
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

fn parse_api(body: &str, version: Option<serde_json::Value>) -> Result<Parsed, BadInput> {
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
    let api: ApiRequest =
        typed(body).map_err(|e| BadInput(format!("malformed API request: {e}")))?;
    debug_assert_eq!(api.version, API_VERSION);
    if api.kind != "create-environment" {
        return Err(BadInput(format!(
            "unknown API request kind `{}`; this logic handles `create-environment` and `runtime-status`",
            api.kind
        )));
    }
    let environment_type = match api.environment_type.as_str() {
        "preview" => EnvironmentType::Preview,
        "production" => EnvironmentType::Production,
        other => {
            return Err(BadInput(format!(
                "environmentType `{other}` is not one of preview, production"
            )));
        }
    };
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

const WEBHOOK_FIELDS: FieldNames = FieldNames {
    owner: "repository.owner.login",
    name: "repository.name",
    app_id: "appId",
    entrypoint: "entrypoint",
    requester: "sender.login",
    title: "pull_request.title",
    sha: "pull_request.head.sha",
    branch: "pull_request.head.ref",
};

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
mod tests {
    use super::*;

    /// A minimal `opened` event; `head_repo` is the head's `full_name`, or
    /// None for a deleted fork.
    fn event(author: Option<&str>, head_repo: Option<&str>) -> String {
        let repo = |full_name: &str| {
            let (owner, name) = full_name.split_once('/').unwrap();
            serde_json::json!({ "full_name": full_name, "name": name, "owner": { "login": owner } })
        };
        let mut pull_request = serde_json::json!({
            "number": 7,
            "title": "Add login page",
            "updated_at": "2026-11-28T11:00:00Z",
            "head": {
                "ref": "main",
                "sha": "3f786850e387550fdab836ed7e6dc881de23001b",
                "repo": head_repo.map(repo),
            },
        });
        if let Some(login) = author {
            pull_request["user"] = serde_json::json!({ "login": login });
        }
        serde_json::json!({
            "id": "delivery-1",
            "name": "pull_request",
            "payload": {
                "action": "opened",
                "pull_request": pull_request,
                "repository": repo("acme/shop"),
                "installation": { "id": 4242 },
            },
        })
        .to_string()
    }

    fn refused(body: &str) -> String {
        match parse(body) {
            Err(BadInput(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn reasons_name_the_real_problem() {
        let why = refused(r#"{"kind": "create-environment", "kind": "x"}"#);
        assert!(
            why.contains("names a field twice") && why.contains("kind"),
            "{why}"
        );
        let big = format!(
            r#"{{"kind": "create-environment", "version": {}}}"#,
            "9".repeat(1000)
        );
        let why = refused(&big);
        assert!(
            why.contains("number too large") && why.contains("version"),
            "{why}"
        );
        assert!(refused("[1, 2]").contains("must be a JSON object"));
        let api = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut body = serde_json::json!({
                "version": 1, "kind": "create-environment", "appId": "app_shop",
                "environmentType": "preview", "repository": "acme/shop", "branch": "b",
                "sha": "3f786850e387550fdab836ed7e6dc881de23001b", "installationId": 1,
                "requester": "u", "requestedAt": "2026-11-28T11:00:00Z"
            });
            edit(&mut body);
            refused(&body.to_string())
        };
        assert!(
            api(&|b| b["entrypoint"] = "e".repeat(1_025).into()).starts_with("entrypoint has 1025")
        );
        assert!(api(&|b| b["requester"] = "r".repeat(256).into()).starts_with("requester has"));
        assert!(api(&|b| b["appId"] = "x-->".into()).contains("appId `x-->`"));
        assert!(api(&|b| b["repository"] = "ac me/shop".into()).starts_with("repository: "));
        assert!(refused("{ nope").contains("not valid JSON"));
        for payload in ["\"text\"", "42", "[]"] {
            let body = format!(r#"{{"id": "d1", "name": "pull_request", "payload": {payload}}}"#);
            let why = refused(&body);
            assert!(
                why.contains("`payload`") && why.contains("JSON object"),
                "{payload}: {why}"
            );
        }
    }

    #[test]
    fn one_json_value_or_a_refusal_saying_where_parsing_stopped() {
        let body = event(None, Some("acme/shop"));
        for trailing in [" xyz", "{}", " {\"id\": 2}", "]"] {
            let why = refused(&format!("{body}{trailing}"));
            assert!(
                why.contains("not valid JSON") && why.contains("trailing characters at line 1"),
                "{trailing}: {why}"
            );
        }
        let why = refused("xyz");
        assert!(
            why.contains("not valid JSON") && why.contains("line 1 column 1"),
            "{why}"
        );
        // Whitespace after the value is part of one JSON text.
        assert!(parse(&format!("{body} \n")).is_ok());
    }

    #[test]
    fn a_webhook_refusal_names_the_field_as_the_event_has_it() {
        let changed = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut body: serde_json::Value =
                serde_json::from_str(&event(None, Some("acme/shop"))).unwrap();
            edit(&mut body["payload"]);
            refused(&body.to_string())
        };
        let why = changed(&|p| p["sender"] = serde_json::json!({ "login": "l".repeat(300) }));
        assert!(why.starts_with("sender.login has 300 characters"), "{why}");
        let why = changed(&|p| p["pull_request"]["title"] = "t".repeat(1_100).into());
        assert!(why.starts_with("pull_request.title has 1100"), "{why}");
        let why = changed(&|p| p["pull_request"]["head"]["sha"] = "abc".into());
        assert!(why.starts_with("pull_request.head.sha `abc`"), "{why}");
        let why = changed(&|p| p["pull_request"]["head"]["ref"] = "a b".into());
        assert!(why.starts_with("pull_request.head.ref `a b`"), "{why}");
        let why = changed(&|p| p["repository"]["owner"]["login"] = "ac me".into());
        assert!(why.starts_with("repository.owner.login: "), "{why}");
    }

    fn create(body: &str) -> CreateRequest {
        match parse(body) {
            Ok(Parsed::Create(request)) => *request,
            other => panic!("expected a create request, got {other:?}"),
        }
    }

    #[test]
    fn a_webhook_names_its_author_and_whether_it_comes_from_a_fork() {
        let own = create(&event(Some("octocat"), Some("ACME/Shop")));
        assert_eq!(own.branch, "main");
        assert_eq!(
            own.origin,
            Origin::PullRequest {
                author: Some("octocat".into()),
                from_fork: false
            }
        );

        let fork = create(&event(Some("mallory"), Some("mallory/shop")));
        assert_eq!(fork.branch, "mallory:main");
        assert_eq!(
            fork.origin,
            Origin::PullRequest {
                author: Some("mallory".into()),
                from_fork: true
            }
        );

        let deleted = create(&event(None, None));
        assert_eq!(deleted.branch, "deleted-fork:main");
        assert_eq!(
            deleted.origin,
            Origin::PullRequest {
                author: None,
                from_fork: true
            }
        );
    }

    #[test]
    fn an_api_request_comes_from_the_platform() {
        let body = serde_json::json!({
            "version": 1,
            "kind": "create-environment",
            "appId": "app_shop",
            "environmentType": "preview",
            "repository": "acme/shop",
            "branch": "main",
            "sha": "3f786850e387550fdab836ed7e6dc881de23001b",
            "installationId": 4242,
            "requester": "user_123",
            "requestedAt": "2026-11-28T11:00:00Z",
        });
        assert_eq!(create(&body.to_string()).origin, Origin::Platform);
    }
}
