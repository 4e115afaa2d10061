//! The teardown flow: an environment ends when its pull request closes,
//! its branch is deleted, the platform API asks, or it sat idle
//! (`request/teardown.rs` says what asks and how a delete is ordered).
//!
//! A delete is a request like a create: it has a version (the one it
//! follows, with `#delete`), it takes the environment's lease in the same
//! protocol, and the newest request wins. A delete newer than the record
//! takes it; a create newer than the delete (a reopen, a later push) takes
//! it back. Every step is idempotent, so a redelivery resumes where the
//! last one stopped and does nothing twice:
//!
//! 1. the record goes to `deleting` at the delete's version, with the lease;
//! 2. the Runtime Service deletes the environment's runtimes older than the
//!    delete (by environment and version, not by the one runtime the record
//!    names: a create still on the wire from another host may have made
//!    one), and refuses older creates from then on;
//! 3. the GitHub deployment goes `inactive` (GitHub shows a transient
//!    environment destroyed), and with `delete-github-environment` the
//!    GitHub environment goes too;
//! 4. the pull-request comment says the preview was removed, when, why,
//!    and how to bring it back;
//! 5. Segment gets `cloud_environment_deleted`;
//! 6. the record is a tombstone, `deleted`, until `purgeAt` (seconds; the
//!    table's time to live), long past the dead-letter queues' retention,
//!    so a redriven older create still finds the delete newer than itself.

mod moved;

use super::github::{self, Presented};
use super::{Halt, Message};
use crate::apps::{self, App};
use crate::capabilities::{Capabilities, LogLevel, RuntimeDelete};
use crate::comment::Status;
use crate::deployment;
use crate::environment::{Environment, STATUS_DELETED, environment_id, hex_digest};
use crate::item::get_s;
use crate::lease::{self, Claim, Lease, Partition, Refused};
use crate::outcome::{Failure, Outcome};
use crate::request::{DELETE_SUFFIX, DeleteRequest, EnvironmentType, Order, Reason};

/// Config key: days a deleted environment's tombstone is kept (its items'
/// `purgeAt`).
pub const TOMBSTONE_DAYS: &str = "tombstone-days";
/// Without the config key: past the 14 days a dead letter is kept, the
/// 4 days a message may wait on its queue first, and a margin.
const DEFAULT_TOMBSTONE_DAYS: u64 = 30;
/// Config key: `true` to delete the GitHub environment `preview/{branch}`
/// too (needs the App's Administration: write).
pub const DELETE_GITHUB_ENVIRONMENT: &str = "delete-github-environment";
/// Config key: days without a request after which a preview is removed.
pub const MAX_IDLE_DAYS: &str = "preview-max-idle-days";

/// Handle a delete request.
pub(super) fn teardown<C: Capabilities>(
    caps: &mut C,
    message: &Message,
    request: DeleteRequest,
) -> Result<Outcome, Failure> {
    let app = apps::resolve_ref(caps, &request.app, request.repository.as_ref())?;
    let id = environment_id(&app.id, &request.branch);
    let Partition {
        record,
        lease: seen,
        ..
    } = lease::read_all(caps, &id)?;
    let held = match &record {
        Some(item) => Some(Environment::read(item).ok_or_else(|| {
            Failure::permanent(format!(
                "the record of environment {id} is not one envmgr wrote"
            ))
        })?),
        None => None,
    };
    let status = record
        .as_ref()
        .and_then(|r| get_s(r, "status"))
        .unwrap_or("")
        .to_string();
    let url = record
        .as_ref()
        .and_then(|r| get_s(r, "url"))
        .map(str::to_string);
    let (version, from) = match decide(&request, &id, held.as_ref(), &status, message.sent_at_ms)? {
        Ok(decided) => decided,
        Err(skipped) => return Ok(Outcome::Skipped(skipped)),
    };
    let Some(mut env) = held else {
        return tombstone_only(caps, message, &request, &app, &id, &version, seen);
    };
    if let (Reason::PullRequestClosed | Reason::PullRequestMerged, Some(head)) =
        (request.reason, &request.head)
        && let Some(other) = moved::other_open(caps, &request, &env, head)?
    {
        let kept = moved::Kept {
            status: &status,
            url,
            other,
        };
        return moved::keep_for(caps, message, &app, env, seen, kept);
    }
    let now = caps.now_ms();
    let record_writes = from.map(|from| env.deleting(&from, &version, request.reason, now));
    env.request_version = version.clone();
    let claim = Claim {
        environment_id: &env.id,
        version: &version,
        token: &message.delivery_token,
        seen,
        record_writes,
    };
    lease::hold(caps, claim, |caps, lease| {
        remove(caps, &request, &app, &env, lease)
    })
}

/// The delete's version, and the version the record must still be at for
/// the delete to take it (None: it is at the delete already, a
/// redelivery); or why nothing is to be done.
type Decided = Result<(String, Option<String>), String>;

fn decide(
    request: &DeleteRequest,
    id: &str,
    held: Option<&Environment>,
    status: &str,
    sent_at_ms: u64,
) -> Result<Decided, Failure> {
    let Some(env) = held else {
        return Ok(match &request.order {
            Order::At { ms, sha } => {
                let sha = sha.clone().unwrap_or_else(|| "0".repeat(40));
                Ok((format!("{ms:013}#{sha}{DELETE_SUFFIX}"), None))
            }
            _ => Err(format!(
                "environment {id} does not exist; nothing to delete"
            )),
        });
    };
    if env.environment_type == EnvironmentType::Production && request.from_webhook {
        return Ok(Err(format!(
            "environment {id} is production: it is deleted only through the platform API"
        )));
    }
    if env.environment_type != request.environment_type {
        return Err(Failure::permanent(format!(
            "environment {id} is a {} environment, not {}",
            env.environment_type.as_str(),
            request.environment_type.as_str()
        )));
    }
    let current = env.request_version.as_str();
    let following = current.strip_suffix(DELETE_SUFFIX).unwrap_or(current);
    let version = match &request.order {
        Order::At { ms, sha } => {
            let sha = sha.as_deref().unwrap_or(&env.sha);
            format!("{ms:013}#{sha}{DELETE_SUFFIX}")
        }
        Order::Seen { sha } => {
            if env.requested_at_ms > sent_at_ms {
                return Ok(Err(format!(
                    "environment {id} holds request {current}, made after the branch was deleted"
                )));
            }
            if sha.as_deref().is_some_and(|sha| sha != env.sha) {
                return Ok(Err(format!(
                    "environment {id} is at commit {}, not the deleted branch's last",
                    env.sha
                )));
            }
            format!("{following}{DELETE_SUFFIX}")
        }
        Order::IfAt(expected) => {
            if expected != following {
                return Ok(Err(format!(
                    "environment {id} moved on to request {current} since {expected}"
                )));
            }
            format!("{following}{DELETE_SUFFIX}")
        }
    };
    if current > version.as_str() {
        return Ok(Err(lease::stale_reason(id, &version, current)));
    }
    if status == STATUS_DELETED {
        return Ok(Err(format!(
            "environment {id} is deleted already (request {current})"
        )));
    }
    let from = (current != version).then(|| current.to_string());
    Ok(Ok((version, from)))
}

/// No record: nothing of the environment was made, or it was purged. A
/// delete with a time of its own still leaves a tombstone, so a create
/// older than it that comes later (out of order, redriven) is refused, and
/// tells the Runtime Service, whose fence then refuses it too.
fn tombstone_only<C: Capabilities>(
    caps: &mut C,
    message: &Message,
    request: &DeleteRequest,
    app: &App,
    id: &str,
    version: &str,
    seen: lease::LeaseState,
) -> Result<Outcome, Failure> {
    let now = caps.now_ms();
    let purge_at_s = purge_at_s(caps, now);
    let tombstone = Environment::tombstone(app, request, id, version, now, purge_at_s);
    let claim = Claim {
        environment_id: id,
        version,
        token: &message.delivery_token,
        seen,
        record_writes: Some(vec![tombstone]),
    };
    lease::hold(caps, claim, |caps, lease| {
        lease.purge_at_s = Some(purge_at_s);
        let removed = delete_runtimes(caps, request, &app.id, id, version, lease)?;
        Ok::<_, Halt>(Outcome::Done(format!(
            "environment {id} ({} {}) never made: tombstone at request {version}{}",
            request.environment_type.as_str(),
            request.branch,
            runtimes_removed(&removed)
        )))
    })
}

/// Steps 2 to 6, holding the environment's lease.
fn remove<C: Capabilities>(
    caps: &mut C,
    request: &DeleteRequest,
    app: &App,
    env: &Environment,
    lease: &mut Lease,
) -> Result<Outcome, Halt> {
    let removed = delete_runtimes(caps, request, &app.id, &env.id, &env.request_version, lease)?;
    let at = caps.now_ms();
    let why = request.reason;
    if env.installation_id != 0 {
        github_removed(caps, app, env, lease, why, at)?;
    }
    let reason = request.reason.as_str();
    super::track(
        caps,
        "cloud_environment_deleted",
        &request.requester,
        env,
        &[("reason", reason)],
    );
    let purge_at_s = purge_at_s(caps, at);
    lease.purge_at_s = Some(purge_at_s);
    match lease.write_holding(caps, at, env.deleted(at, purge_at_s)) {
        Ok(()) => {}
        Err(Refused::Lease) => return Err(lease.why_lost(caps)?.into()),
        Err(Refused::Writes(_)) => {
            return Err(Halt::Fail(Failure::retryable(format!(
                "the record of environment {} changed while it was deleted",
                env.id
            ))));
        }
        Err(Refused::Failed(error)) => {
            return Err(Halt::Fail(Failure::at("record the deletion", &error)));
        }
    }
    Ok(Outcome::Done(format!(
        "environment {} ({} {}) deleted ({}){}",
        env.id,
        env.environment_type.as_str(),
        env.branch,
        why.as_str(),
        runtimes_removed(&removed)
    )))
}

/// The Runtime Service's delete, after a fence: the environment's runtimes
/// older than `version` go.
fn delete_runtimes<C: Capabilities>(
    caps: &mut C,
    request: &DeleteRequest,
    app_id: &str,
    environment_id: &str,
    version: &str,
    lease: &mut Lease,
) -> Result<Vec<String>, Halt> {
    lease.fence(caps)?;
    let delete = RuntimeDelete {
        idempotency_key: hex_digest(&[environment_id, version], 32),
        app_id: app_id.to_string(),
        environment_id: environment_id.to_string(),
        environment_type: request.environment_type.as_str().to_string(),
        request_version: version.to_string(),
        reason: request.reason.as_str().to_string(),
    };
    caps.runtime_delete(&delete).map_err(|error| {
        Halt::Fail(match error.code {
            crate::capabilities::ErrorCode::NotFound => Failure::permanent(format!(
                "the Runtime Service does not offer deletes: environment {environment_id} \
                 stays `deleting` until it does ({error})"
            )),
            _ => Failure::at("delete the environment's runtimes", &error),
        })
    })
}

fn runtimes_removed(removed: &[String]) -> String {
    match removed {
        [] => String::new(),
        removed => format!("; runtimes removed: {}", removed.join(", ")),
    }
}

/// Steps 3 and 4: the deployment inactive (and the GitHub environment
/// deleted, when the operator allows it), the comment saying so.
fn github_removed<C: Capabilities>(
    caps: &mut C,
    app: &App,
    env: &Environment,
    lease: &mut Lease,
    why: Reason,
    at: u64,
) -> Result<(), Halt> {
    let words = removal_words(caps, why);
    let repo = github::repository_of(env);
    let target = deployment::Target {
        installation_id: env.installation_id,
        repo: &repo,
        environment: env,
    };
    deployment::remove(caps, &target, lease, &words.why)?;
    let delete_environment = caps
        .config(DELETE_GITHUB_ENVIRONMENT)
        .is_some_and(|v| v == "true");
    if delete_environment && env.environment_type == EnvironmentType::Preview {
        let name = target.name();
        if let Err(error) = caps.github_delete_environment(env.installation_id, &repo, &name) {
            caps.log(
                LogLevel::Warn,
                "deployment",
                &format!("the GitHub environment {name} is not deleted: {error}"),
            );
        }
    }
    let removed = Presented {
        status: Status::Removed {
            why: &words.why,
            again: words.again,
        },
        url: None,
        since_ms: at,
    };
    let shown = github::show_comment(caps, env, &app.name, lease, removed);
    github::unless_refused(caps, shown)?;
    Ok(())
}

/// What the comment and the deployment say of a removal: why, and how to
/// bring it back ("" when nothing does).
struct Words {
    why: String,
    again: &'static str,
}

fn removal_words<C: Capabilities>(caps: &mut C, why: Reason) -> Words {
    let (why, again) = match why {
        Reason::PullRequestClosed => (
            "the pull request was closed".to_string(),
            "Reopen the pull request to deploy it again.",
        ),
        Reason::PullRequestMerged => ("the pull request was merged".to_string(), ""),
        Reason::BranchDeleted => (
            "the branch was deleted".to_string(),
            "Restore the branch and reopen the pull request to deploy it again.",
        ),
        Reason::Api => ("the platform removed it".to_string(), ""),
        Reason::Idle => {
            let days = caps
                .config(MAX_IDLE_DAYS)
                .filter(|days| days.parse::<u64>().is_ok_and(|days| days > 0));
            let idle = match days {
                Some(days) => format!("nothing was deployed to it for {days} days"),
                None => "nothing was deployed to it for a while".to_string(),
            };
            (idle, "Push a commit to the branch to deploy it again.")
        }
    };
    Words { why, again }
}

/// When the tombstone's items expire (seconds since the epoch, as
/// DynamoDB's time to live reads them).
fn purge_at_s<C: Capabilities>(caps: &mut C, now_ms: u64) -> u64 {
    let days = caps
        .config(TOMBSTONE_DAYS)
        .and_then(|days| days.parse::<u64>().ok())
        .unwrap_or(DEFAULT_TOMBSTONE_DAYS);
    now_ms / 1_000 + days * 86_400
}
