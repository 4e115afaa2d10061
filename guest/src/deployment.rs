//! The GitHub deployment: one per environment and commit, in a GitHub
//! environment named after the envmgr environment, so the pull request shows
//! GitHub's own "View deployment" button and the repository's environments
//! page lists it. It is found again by its task and payload (so a lost id or
//! a redelivery never makes a second one), duplicates from concurrent
//! deliveries are retired, and its status follows the environment:
//! `in_progress` once the runtime is requested, `failure` once the request
//! failed for good.
//!
//! A deployment only mirrors the environment, which is the record's. So a
//! GitHub error that may pass (throttled, unavailable, conflict) fails the
//! step and the message is retried (every step is idempotent), while a
//! refusal (the App may not write deployments: `denied`; `invalid`;
//! `not-found`) is logged and the flow goes on without the deployment.

use serde_json::json;

use crate::capabilities::{
    CapResult, Capabilities, Deployment, DeploymentState, DeploymentStatus, ErrorCode, LogLevel,
    NewDeployment, NewDeploymentStatus, Repository,
};
use crate::environment::{Environment, hex_digest};
use crate::github_state::GitHubState;
use crate::lease::{Lease, Stop};
use crate::outcome::Failure;
use crate::request::EnvironmentType;

/// The task envmgr's deployments carry (GitHub's default is `deploy`), so
/// the repository's own deployments to the same environment are not ours.
pub const TASK: &str = "deploy:envmgr";
/// The GitHub environment of every production environment.
pub const PRODUCTION: &str = "production";
/// GitHub's longest environment name.
pub const ENVIRONMENT_NAME_LIMIT: usize = 255;
/// GitHub's longest deployment status description.
pub const DESCRIPTION_LIMIT: usize = 140;

/// Where the deployments of one environment go.
pub struct Target<'a> {
    pub installation_id: u64,
    pub repo: &'a Repository,
    pub environment: &'a Environment,
}

impl Target<'_> {
    pub fn name(&self) -> String {
        environment_name(
            self.environment.environment_type,
            &self.environment.branch,
            &self.environment.id,
        )
    }
}

/// The GitHub environment: `preview/{branch}` for a preview, `production`
/// for production. A name longer than GitHub allows keeps its start and
/// ends in `~{environment id}`, so it stays the branch's own.
pub fn environment_name(
    environment_type: EnvironmentType,
    branch: &str,
    environment_id: &str,
) -> String {
    match environment_type {
        EnvironmentType::Production => PRODUCTION.to_string(),
        EnvironmentType::Preview => {
            let name = format!("preview/{branch}");
            if name.chars().count() <= ENVIRONMENT_NAME_LIMIT {
                return name;
            }
            let suffix = format!("~{environment_id}");
            let kept: String = name
                .chars()
                .take(ENVIRONMENT_NAME_LIMIT - suffix.chars().count())
                .collect();
            format!("{kept}{suffix}")
        }
    }
}

/// The payload that marks a deployment as this environment's.
pub fn payload(app_id: &str, environment_id: &str, environment_type: EnvironmentType) -> String {
    json!({
        "appId": app_id,
        "environmentId": environment_id,
        "environmentType": environment_type.as_str(),
    })
    .to_string()
}

/// Whether envmgr made `deployment` for `environment`: its task, and the
/// environment id in its payload.
pub fn is_ours(deployment: &Deployment, environment: &Environment) -> bool {
    deployment.task == TASK
        && serde_json::from_str::<serde_json::Value>(&deployment.payload_json)
            .ok()
            .and_then(|payload| {
                payload
                    .get("environmentId")
                    .and_then(|id| id.as_str())
                    .map(|id| id == environment.id)
            })
            .unwrap_or(false)
}

/// The deployment to create for the environment's commit.
pub fn new_deployment(environment: &Environment) -> NewDeployment {
    let preview = environment.environment_type == EnvironmentType::Preview;
    NewDeployment {
        sha: environment.sha.clone(),
        environment: environment_name(
            environment.environment_type,
            &environment.branch,
            &environment.id,
        ),
        task: TASK.to_string(),
        payload_json: payload(
            &environment.app_id,
            &environment.id,
            environment.environment_type,
        ),
        description: clip(&format!(
            "envmgr {} environment {}",
            environment.environment_type.as_str(),
            environment.id
        )),
        transient_environment: preview,
        production_environment: !preview,
    }
}

/// The status once the Runtime Service accepted the create call.
pub fn in_progress(
    runtime_id: &str,
    environment_url: Option<String>,
    log_url: Option<String>,
) -> NewDeploymentStatus {
    // The runtime's id and URL are the Runtime Service's words: neutralised,
    // and a URL GitHub shows as "View deployment" only when safe to offer.
    NewDeploymentStatus {
        state: DeploymentState::InProgress,
        description: clip(&format!(
            "Runtime {} requested; starting",
            crate::display::neutralise(runtime_id)
        )),
        environment_url: environment_url
            .filter(|url| crate::display::link_target(url).as_deref() == Some(url.as_str())),
        log_url,
    }
}

/// The status once the runtime reported the environment up: GitHub shows
/// "View deployment" and retires the environment's older deployments.
pub fn ready(environment_url: Option<String>, log_url: Option<String>) -> NewDeploymentStatus {
    NewDeploymentStatus {
        state: DeploymentState::Success,
        description: "Ready".to_string(),
        environment_url: environment_url
            .filter(|url| crate::display::link_target(url).as_deref() == Some(url.as_str())),
        log_url,
    }
}

/// The status once the runtime reported that it failed: the category, not
/// the reason (which stays on the record).
pub fn failed(category: &str, log_url: Option<String>) -> NewDeploymentStatus {
    NewDeploymentStatus {
        state: DeploymentState::Failure,
        description: clip(&format!(
            "Failed ({}): the environment's record says why",
            crate::display::neutralise(category)
        )),
        environment_url: None,
        log_url,
    }
}

/// The status once the request failed for good. The reason stays on the
/// record (as with the comment): a deployment is shown to everyone who can
/// read the repository.
pub fn failure(environment: &Environment, log_url: Option<String>) -> NewDeploymentStatus {
    NewDeploymentStatus {
        state: DeploymentState::Failure,
        description: clip(&format!(
            "Failed: environment {} could not be created (its record says why)",
            environment.id
        )),
        environment_url: None,
        log_url,
    }
}

/// At most [`DESCRIPTION_LIMIT`] characters, cut with an ellipsis.
fn clip(text: &str) -> String {
    if text.chars().count() <= DESCRIPTION_LIMIT {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(DESCRIPTION_LIMIT - 1).collect();
    cut.push('…');
    cut
}

/// The deployment a request shows its state on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ensured {
    pub id: u64,
    /// Made by this delivery just now: it has no status yet.
    pub created: bool,
}

/// Retire what earlier requests left on GitHub, then find the environment's
/// deployment of its commit or create it. The lease item (`lease.github`)
/// says which deployment the last holder made, so it is retired exactly,
/// with no walk over the branch's history; before creating one, the commit
/// is recorded as pending (a fence), so a delivery that does not live to
/// record the new id leaves a trace the next one follows. None when GitHub
/// refused for good (logged).
pub fn ensure<C: Capabilities>(
    caps: &mut C,
    target: &Target<'_>,
    lease: &mut Lease,
) -> Result<Option<Ensured>, Stop> {
    let mine = target.environment.sha.clone();
    // A deployment of this commit can exist only if a holder marked it
    // pending (and did not live to record it), or the environment's history
    // is not all known; only then is it looked for.
    let maybe_made = lease.github.pending_sha.as_deref() == Some(mine.as_str())
        || !lease.github.history_complete;
    retire_previous(caps, target, &mut lease.github)?;
    if lease.github.deployment_sha.as_deref() == Some(mine.as_str())
        && let Some(id) = lease.github.deployment_id
    {
        return Ok(Some(Ensured { id, created: false }));
    }
    // A push back to a commit deployed before: its deployment shows the
    // state again (one deployment per environment and commit).
    if let Some(id) = lease.github.take_retired(&mine) {
        let github = &mut lease.github;
        github.deployment_id = Some(id);
        github.deployment_sha = Some(mine);
        github.deployment_status = None;
        return Ok(Some(Ensured { id, created: false }));
    }
    lease.github.pending_sha = Some(mine.clone());
    lease.fence(caps)?;
    let found = if maybe_made {
        find(caps, target, &mine, "find the GitHub deployment")?
    } else {
        Some(Vec::new())
    };
    let Some(found) = found else {
        lease.github.pending_sha = None;
        return Ok(None);
    };
    let ensured = match settle(caps, target, found)? {
        Some(kept) => Ensured {
            id: kept,
            created: false,
        },
        None => {
            let created = caps.github_create_deployment(
                target.installation_id,
                target.repo,
                &new_deployment(target.environment),
            );
            match tolerate(caps, "create the GitHub deployment", created)? {
                Some(created) => Ensured {
                    id: created.id,
                    created: true,
                },
                None => {
                    lease.github.pending_sha = None;
                    return Ok(None);
                }
            }
        }
    };
    let github = &mut lease.github;
    github.deployment_id = Some(ensured.id);
    github.deployment_sha = Some(mine);
    github.deployment_status = None;
    github.pending_sha = None;
    Ok(Some(ensured))
}

/// Mark `inactive` the deployment the last holder made for another commit,
/// and any a holder was about to make when it stopped: GitHub's own state
/// for a superseded deployment.
fn retire_previous<C: Capabilities>(
    caps: &mut C,
    target: &Target<'_>,
    github: &mut GitHubState,
) -> Result<(), Failure> {
    let mine = target.environment.sha.as_str();
    if let (Some(id), Some(sha)) = (github.deployment_id, github.deployment_sha.clone())
        && sha != mine
    {
        // A status recorded for it is one envmgr gave (never `inactive`):
        // no need to ask GitHub whether it is retired already.
        let known_active = github.deployment_status.is_some();
        if let Err(failed) = retire_superseded(caps, target, id, known_active) {
            // The status may have reached GitHub all the same: the next
            // holder asks before giving it again.
            github.deployment_status = None;
            return Err(failed);
        }
        github.remember_retired(&sha, id);
        github.deployment_id = None;
        github.deployment_sha = None;
        github.deployment_status = None;
    }
    if let Some(pending) = github.pending_sha.clone()
        && pending != mine
    {
        let step = "find a deployment an earlier request left";
        let strays = find(caps, target, &pending, step)?.unwrap_or_default();
        for stray in &strays {
            retire_superseded(caps, target, stray.id, false)?;
        }
        if let Some(kept) = strays.iter().map(|d| d.id).min() {
            github.remember_retired(&pending, kept);
        }
        github.pending_sha = None;
    }
    Ok(())
}

/// Give a superseded deployment an `inactive` status, unless it has one
/// (asked of GitHub unless it is `known_active`).
fn retire_superseded<C: Capabilities>(
    caps: &mut C,
    target: &Target<'_>,
    deployment_id: u64,
    known_active: bool,
) -> Result<(), Failure> {
    let description = clip(&format!(
        "Superseded by commit {} of environment {}",
        short(&target.environment.sha),
        target.environment.id
    ));
    give_inactive(caps, target, deployment_id, known_active, &description)
}

/// Give a deployment an `inactive` status saying `description`, unless it
/// has one (asked of GitHub unless it is `known_active`).
fn give_inactive<C: Capabilities>(
    caps: &mut C,
    target: &Target<'_>,
    deployment_id: u64,
    known_active: bool,
    description: &str,
) -> Result<(), Failure> {
    if !known_active {
        let step = "read a superseded GitHub deployment's status";
        let statuses = caps.github_list_deployment_statuses(
            target.installation_id,
            target.repo,
            deployment_id,
        );
        let statuses = match statuses {
            // Deleted by someone: nothing to retire.
            Err(error) if error.code == ErrorCode::NotFound => return Ok(()),
            other => tolerate(caps, step, other)?,
        };
        let Some(statuses) = statuses else {
            return Ok(());
        };
        let current = statuses.iter().max_by_key(|s| s.id);
        if current.is_some_and(|s| s.state == DeploymentState::Inactive) {
            return Ok(());
        }
    }
    let inactive = NewDeploymentStatus {
        state: DeploymentState::Inactive,
        description: description.to_string(),
        environment_url: None,
        log_url: None,
    };
    let marked = caps.github_create_deployment_status(
        target.installation_id,
        target.repo,
        deployment_id,
        &inactive,
    );
    match marked {
        Err(error) if error.code == ErrorCode::NotFound => Ok(()),
        marked => tolerate(caps, "retire a superseded GitHub deployment", marked).map(drop),
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

/// The environment's deployments of `sha`, as the guest recognises them.
/// None when GitHub refused for good (logged).
fn find<C: Capabilities>(
    caps: &mut C,
    target: &Target<'_>,
    sha: &str,
    step: &str,
) -> Result<Option<Vec<Deployment>>, Failure> {
    let found = caps.github_find_deployments(
        target.installation_id,
        target.repo,
        sha,
        &target.name(),
        TASK,
    );
    Ok(tolerate(caps, step, found)?.map(|all| {
        all.into_iter()
            .filter(|d| is_ours(d, target.environment))
            .collect()
    }))
}

/// Keep the oldest deployment, retire the others. None when there is none.
fn settle<C: Capabilities>(
    caps: &mut C,
    target: &Target<'_>,
    deployments: Vec<Deployment>,
) -> Result<Option<u64>, Failure> {
    let Some(oldest) = deployments.iter().map(|d| d.id).min() else {
        return Ok(None);
    };
    for duplicate in deployments.iter().filter(|d| d.id != oldest) {
        retire(caps, target, duplicate.id, oldest)?;
    }
    Ok(Some(oldest))
}

/// Delete a duplicate. GitHub deletes a deployment only once it is
/// inactive (unless it is the repository's only one), so it gets an
/// `inactive` status first.
fn retire<C: Capabilities>(
    caps: &mut C,
    target: &Target<'_>,
    duplicate: u64,
    kept: u64,
) -> Result<(), Failure> {
    let inactive = NewDeploymentStatus {
        state: DeploymentState::Inactive,
        description: clip(&format!(
            "Duplicate of deployment {kept} made by a concurrent delivery; removed"
        )),
        environment_url: None,
        log_url: None,
    };
    let marked = caps.github_create_deployment_status(
        target.installation_id,
        target.repo,
        duplicate,
        &inactive,
    );
    match marked {
        // Another delivery deleted it already.
        Err(error) if error.code == ErrorCode::NotFound => return Ok(()),
        marked => {
            if tolerate(caps, "retire a duplicate GitHub deployment", marked)?.is_none() {
                return Ok(());
            }
        }
    }
    let deleted = caps.github_delete_deployment(target.installation_id, target.repo, duplicate);
    tolerate(caps, "delete a duplicate GitHub deployment", deleted)?;
    Ok(())
}

/// Give the deployment `status`, unless it already says the same: the lease
/// item remembers a digest of the last status given, a deployment made just
/// now has none, and otherwise GitHub is asked.
pub fn report<C: Capabilities>(
    caps: &mut C,
    target: &Target<'_>,
    ensured: Ensured,
    status: &NewDeploymentStatus,
    lease: &mut Lease,
) -> Result<(), Failure> {
    let digest = status_digest(status);
    let github = &mut lease.github;
    let recorded = github.deployment_id == Some(ensured.id);
    if recorded && github.deployment_status.as_deref() == Some(digest.as_str()) {
        return Ok(());
    }
    if !ensured.created {
        let statuses =
            caps.github_list_deployment_statuses(target.installation_id, target.repo, ensured.id);
        let Some(statuses) = tolerate(caps, "read the GitHub deployment's status", statuses)?
        else {
            return Ok(());
        };
        let current = statuses.iter().max_by_key(|s| s.id);
        if current.is_some_and(|current| says(current, status)) {
            if recorded {
                lease.github.deployment_status = Some(digest);
            }
            return Ok(());
        }
    }
    let created = caps.github_create_deployment_status(
        target.installation_id,
        target.repo,
        ensured.id,
        status,
    );
    if tolerate(caps, "set the GitHub deployment status", created)?.is_some()
        && lease.github.deployment_id == Some(ensured.id)
    {
        lease.github.deployment_status = Some(digest);
    }
    Ok(())
}

/// A digest of what a status says.
fn status_digest(status: &NewDeploymentStatus) -> String {
    hex_digest(
        &[
            state_word(status.state),
            &status.description,
            status.environment_url.as_deref().unwrap_or(""),
            status.log_url.as_deref().unwrap_or(""),
        ],
        16,
    )
}

/// A state as the digest has always spelt it (the Rust name of the
/// guest's former mirror type): digests already stored stay comparable.
fn state_word(state: DeploymentState) -> &'static str {
    match state {
        DeploymentState::Error => "Error",
        DeploymentState::Failure => "Failure",
        DeploymentState::Inactive => "Inactive",
        DeploymentState::InProgress => "InProgress",
        DeploymentState::Queued => "Queued",
        DeploymentState::Pending => "Pending",
        DeploymentState::Success => "Success",
    }
}

/// Whether `current` already says what `wanted` would.
fn says(current: &DeploymentStatus, wanted: &NewDeploymentStatus) -> bool {
    current.state == wanted.state
        && current.description == wanted.description
        && current.environment_url == wanted.environment_url
        && current.log_url == wanted.log_url
}

/// A deployment call's result: an error that may pass fails the step (the
/// message is retried), a refusal is logged and the flow goes on without.
fn tolerate<C: Capabilities, T>(
    caps: &mut C,
    step: &str,
    result: CapResult<T>,
) -> Result<Option<T>, Failure> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) if error.is_transient() => Err(Failure::at(step, &error)),
        Err(error) => {
            caps.log(
                LogLevel::Warn,
                "deployment",
                &format!("{step}: {error}; going on without the GitHub deployment"),
            );
            Ok(None)
        }
    }
}

mod removal;
pub use removal::remove;
#[cfg(test)]
mod tests;
