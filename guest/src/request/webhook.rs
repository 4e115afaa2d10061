//! A GitHub webhook delivery in Probot's shape, from the probot queue:
//! `{ "id": <delivery id>, "name": "pull_request", "payload": {...} }`.
//!
//! Apart from the platform API's requests (`api.rs`) because GitHub, not
//! envmgr, decides this shape: the payload is read only as far as a
//! deploying pull-request event needs, and what GitHub may leave out (the
//! author, the head repository of a deleted fork) is optional.

mod branch;

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::{
    AppRef, BadInput, CreateRequest, EnvironmentType, FieldNames, Origin, Parsed, PullRequest,
    typed, validate_branch, validate_sha, within_limits,
};
use crate::capabilities::Repository;
use crate::request::teardown::{DeleteRequest, Order, Reason};
use crate::time::parse_rfc3339_ms;

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
    /// Read here only by [`at_once`]; the careful path reads it alone
    /// first ([`Action`]).
    #[serde(default)]
    action: Option<String>,
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
    /// `closed` only: merged, or closed without.
    #[serde(default)]
    merged: bool,
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

/// The common delivery, a pull-request event that deploys or closes, read
/// in one pass where the careful path (`request::parse`, then [`parse`])
/// reads it four times: its shape, the delivery, the action, the event —
/// in the component the passes were a sixth of a create's time.
///
/// `None` wherever the careful path might decide otherwise or must word an
/// error: JSON it refuses, a duplicate field, an array where it wants an
/// object, another event or action, an action that is not a string. Both
/// read the same fields into the same types, so where this succeeds the
/// careful path reaches the same event and action, and the request is made
/// from them by the same code ([`request_of`]).
pub(super) fn at_once(body: &str) -> Option<Result<Parsed, BadInput>> {
    let mut deserializer = serde_json::Deserializer::from_str(body);
    let mut delivery: Delivery = object(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    let action = delivery.payload.action.take()?;
    let acts = action == "closed" || DEPLOYING_ACTIONS.contains(&action.as_str());
    (delivery.name == "pull_request" && acts)
        .then(|| request_of(&delivery.id, &action, delivery.payload))
}

/// A delivery as [`at_once`] reads it: [`WebhookEvent`] with its payload
/// typed, and the two fields the shape pass also reads (`request::Shape`),
/// so a body that pass refuses is refused here too.
#[derive(Deserialize)]
struct Delivery {
    id: String,
    name: String,
    #[serde(deserialize_with = "object")]
    payload: PullRequestEvent,
    #[serde(rename = "kind")]
    _kind: Option<IgnoredAny>,
    #[serde(rename = "version")]
    _version: Option<serde_json::Value>,
}

/// A struct read from a JSON object only: serde's derive also takes an
/// array of the fields in order, which the careful path refuses for the
/// delivery and its payload.
fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<T, D::Error> {
    struct Fields<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for Fields<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map))
        }
    }

    deserializer.deserialize_map(Fields(PhantomData))
}

/// A webhook delivery: a create request when its pull request should be
/// deployed, else ignored with the reason.
pub(super) fn parse(body: &str) -> Result<Parsed, BadInput> {
    let event: WebhookEvent =
        typed(body).map_err(|e| BadInput(format!("malformed Probot webhook event: {e}")))?;
    if !["pull_request", "delete", "push"].contains(&event.name.as_str()) {
        return Ok(Parsed::Ignored(format!(
            "webhook event `{}` (delivery {}) is not handled; only pull_request, delete and push are",
            event.name, event.id
        )));
    }
    if !event.payload.get().trim_start().starts_with('{') {
        return Err(BadInput(format!(
            "the webhook event's `payload` (delivery {}) must be a JSON object",
            event.id
        )));
    }
    if event.name != "pull_request" {
        return branch::parse(&event);
    }
    let action = serde_json::from_str::<Action>(event.payload.get())
        .ok()
        .and_then(|a| a.action)
        .unwrap_or_default();
    if action != "closed" && !DEPLOYING_ACTIONS.contains(&action.as_str()) {
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
    request_of(&event.id, &action, payload)
}

/// The request a deploying or closing pull-request event makes.
fn request_of(delivery: &str, action: &str, payload: PullRequestEvent) -> Result<Parsed, BadInput> {
    let pr = payload.pull_request;
    let installation_id = payload.installation.map(|i| i.id).ok_or_else(|| {
        BadInput(format!(
            "pull_request payload (delivery {}) has no installation: \
             the event must come from the GitHub App",
            delivery
        ))
    })?;
    let merged = pr.merged;
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
    // GitHub's `head` filter for the other open pull requests on the branch
    // (`owner:branch`); none to ask for a deleted fork's.
    let head_label = pr
        .head
        .repo
        .as_ref()
        .map(|head| format!("{}:{}", head.owner.login, pr.head.branch));
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
    if action == "closed" {
        return Ok(Parsed::Delete(Box::new(closed(
            request, merged, head_label,
        ))));
    }
    Ok(Parsed::Create(Box::new(request)))
}

/// A closed pull request's delete: at the time GitHub says it closed
/// (`updated_at`), at its head commit, so a reopen (later) wins over it.
fn closed(request: CreateRequest, merged: bool, head: Option<String>) -> DeleteRequest {
    DeleteRequest {
        app: request.app,
        environment_type: request.environment_type,
        repository: Some(request.repository),
        branch: request.branch,
        pull_request: request.pull_request,
        installation_id: Some(request.installation_id),
        requester: request.requester,
        reason: if merged {
            Reason::PullRequestMerged
        } else {
            Reason::PullRequestClosed
        },
        order: Order::At {
            ms: request.requested_at_ms,
            sha: Some(request.sha),
        },
        from_webhook: true,
        head,
    }
}

/// The checked fields as the event names them.
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
