//! GitHub's branch events that end a preview: `delete` (a branch, not a
//! tag) and a `push` that deleted its branch (`deleted: true`). GitHub
//! sends both for one deletion; they ask for the same delete (one version),
//! so the second does nothing twice. Neither carries a time: each deletes
//! only the request the environment holds when it is handled, made before
//! the event was sent (and, for the push, at the branch's last commit).

use serde::Deserialize;

use super::super::{AppRef, BadInput, EnvironmentType, Malformed, Parsed, typed, validate_branch};
use super::{InstallationPayload, RepositoryPayload, UserPayload, WebhookEvent};
use crate::capabilities::Repository;
use crate::request::teardown::{DeleteRequest, Order, Reason};

#[derive(Deserialize)]
struct BranchEvent {
    #[serde(rename = "ref")]
    reference: String,
    /// `delete` only: `branch` or `tag`.
    ref_type: Option<String>,
    /// `push` only: the branch's last commit before the push.
    before: Option<String>,
    repository: RepositoryPayload,
    installation: Option<InstallationPayload>,
    sender: Option<UserPayload>,
}

/// A push: only whether it deleted its branch is read first, so the pushes
/// that deploy nothing (every other one) cost one small parse.
#[derive(Deserialize)]
struct Pushed {
    #[serde(default)]
    deleted: bool,
}

/// A `delete` or `push` event: a delete request for the branch's preview
/// when it deleted a branch, else ignored with the reason.
pub(super) fn parse(event: &WebhookEvent) -> Result<Parsed, BadInput> {
    let payload = event.payload.get();
    let malformed = |e: Malformed| {
        BadInput(format!(
            "malformed {} payload (delivery {}): {e}",
            event.name, event.id
        ))
    };
    if event.name == "push" && !typed::<Pushed>(payload).map_err(malformed)?.deleted {
        return Ok(Parsed::Ignored(format!(
            "push (delivery {}) deploys nothing; pull requests do",
            event.id
        )));
    }
    let branch_event: BranchEvent = typed(payload).map_err(malformed)?;
    let branch = match (event.name.as_str(), branch_event.ref_type.as_deref()) {
        ("delete", Some("branch")) => branch_event.reference.clone(),
        ("delete", other) => {
            return Ok(Parsed::Ignored(format!(
                "delete of a {} (delivery {}): only a branch has a preview",
                other.unwrap_or("ref"),
                event.id
            )));
        }
        _ => match branch_event.reference.strip_prefix("refs/heads/") {
            Some(branch) => branch.to_string(),
            None => {
                return Ok(Parsed::Ignored(format!(
                    "push deleting {} (delivery {}): only a branch has a preview",
                    branch_event.reference, event.id
                )));
            }
        },
    };
    validate_branch(&branch, "ref")?;
    let installation_id = branch_event.installation.map(|i| i.id).ok_or_else(|| {
        BadInput(format!(
            "{} payload (delivery {}) has no installation: the event must come from the GitHub App",
            event.name, event.id
        ))
    })?;
    let repo = &branch_event.repository;
    let request = DeleteRequest {
        app: AppRef::Repository,
        environment_type: EnvironmentType::Preview,
        repository: Some(Repository {
            owner: repo.owner.login.clone(),
            name: repo.name.clone(),
        }),
        branch,
        pull_request: None,
        installation_id: Some(installation_id),
        requester: branch_event
            .sender
            .map(|s| format!("github:{}", s.login))
            .unwrap_or_default(),
        reason: Reason::BranchDeleted,
        order: Order::Seen {
            sha: branch_event
                .before
                .filter(|sha| sha.len() == 40 && sha != &"0".repeat(40)),
        },
        from_webhook: true,
        head: None,
    };
    Ok(Parsed::Delete(Box::new(request)))
}
