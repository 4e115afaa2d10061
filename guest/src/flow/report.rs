//! The status-report flow: a runtime's report of its environment (ready,
//! or failed) checked, stored, and applied to the record, the pull-request
//! comment and the GitHub deployment.
//!
//! `report.rs` at the crate's root has the report's rules; this is the
//! order in which they are met. A report may come while the create that
//! requested its runtime still holds the environment, so it is stored
//! first and applied by whoever records the runtime last: this flow once
//! the runtime is on the record, else the create, which merges it.

use super::github;
use super::{Halt, Message};
use crate::apps;
use crate::capabilities::{Capabilities, Item, WriteError};
use crate::environment::Environment;
use crate::item::{get_s, get_u64};
use crate::lease::{self, Claim, Lease, Partition, Refused, Stop};
use crate::outcome::{Failure, Outcome};
use crate::report::{self, Report};

/// A runtime's status report (`report.rs` has the rules): checked against
/// the environment's key, stored, and applied once the create is recorded.
pub(super) fn status_report<C: Capabilities>(
    caps: &mut C,
    message: &Message,
    jws: &str,
) -> Result<Outcome, Failure> {
    let (environment_id, version) = report::unverified(jws)?;
    let Partition {
        record,
        report: stored,
        ..
    } = lease::read_all(caps, &environment_id)?;
    let Some(record) = record else {
        return Err(report::refused(&format!(
            "environment {environment_id} does not exist"
        )));
    };
    let held = get_s(&record, "requestVersion").unwrap_or("");
    if version.as_str() < held {
        return Ok(Outcome::Skipped(format!(
            "status report for request {version} of environment {environment_id}, \
             which holds newer request {held}"
        )));
    }
    if version.as_str() > held {
        return Err(report::refused(&format!(
            "environment {environment_id} never had request {version}"
        )));
    }
    let env = Environment::read(&record).ok_or_else(|| {
        report::refused(&format!(
            "the record of environment {environment_id} is not one envmgr wrote"
        ))
    })?;
    let Some(key) = &env.signing_key else {
        return Err(report::refused(&format!(
            "environment {environment_id} has no signing key for request {version} \
             (its logic made none): no report of it can be checked"
        )));
    };
    let claims = caps
        .keys_verify_report(jws, &key.public_jwk)
        .map_err(|error| report::not_verified(&environment_id, &error))?;
    let mut report = report::checked(&claims, &environment_id, &version, message.sent_at_ms)?;
    // A URL the environment may not have is dropped before anything keeps
    // it (the stored report, the record), not only before it is shown.
    report.url = github::report_url(caps, &env, &report);
    if applied(&record) >= report.seq {
        return Ok(Outcome::Skipped(format!(
            "status report {} of environment {environment_id}: report {} is applied already",
            report.seq,
            applied(&record)
        )));
    }
    store(caps, &report, stored.as_ref(), &version)?;
    apply_once_recorded(caps, message, &env, &report, &environment_id, &version)
}

/// The newest report on the record. Applied means on the record
/// (`reportSeq`), not only stored: a report stored while the create held
/// the environment is applied later.
fn applied(record: &Item) -> u64 {
    get_u64(record, "reportSeq").unwrap_or(0)
}

/// Store the report, unless the environment holds it or a later one.
fn store<C: Capabilities>(
    caps: &mut C,
    report: &Report,
    stored: Option<&Item>,
    version: &str,
) -> Result<(), Failure> {
    let stored_already =
        Report::stored(stored, version).is_some_and(|newest| newest.seq >= report.seq);
    if stored_already {
        return Ok(());
    }
    match caps.db_transact_write(&[report.write()]) {
        // A later one stored first: applied below, with it.
        Ok(()) | Err(WriteError::ConditionFailed(_)) => Ok(()),
        Err(WriteError::Failed(error)) => Err(Failure::at("store the status report", &error)),
    }
}

/// Apply the stored report holding the environment, once the create has
/// recorded the runtime.
///
/// Read again: a create that recorded its runtime since the first read did
/// so without this report (its check found none stored), so it is applied
/// here; a create that has not yet finds it stored and merges it.
fn apply_once_recorded<C: Capabilities>(
    caps: &mut C,
    message: &Message,
    env: &Environment,
    report: &Report,
    environment_id: &str,
    version: &str,
) -> Result<Outcome, Failure> {
    let Partition {
        record,
        lease: seen,
        ..
    } = lease::read_all(caps, environment_id)?;
    let record = record
        .ok_or_else(|| report::refused(&format!("environment {environment_id} does not exist")))?;
    if get_s(&record, "requestVersion") != Some(version) {
        return Ok(Outcome::Skipped(format!(
            "status report for request {version} of environment {environment_id}, \
             which moved on to a newer request"
        )));
    }
    if get_s(&record, "runtimeId").is_none_or(str::is_empty) {
        return Ok(Outcome::Done(format!(
            "status report {} ({}) of environment {environment_id} stored; the create under way shows it",
            report.seq,
            report.state.status()
        )));
    }
    if applied(&record) >= report.seq {
        return Ok(Outcome::Skipped(format!(
            "status report {} of environment {environment_id}: the create merged it",
            report.seq
        )));
    }
    let claim = Claim {
        environment_id: &env.id,
        version,
        token: &message.delivery_token,
        seen,
        record_writes: None,
    };
    lease::hold(caps, claim, |caps, lease| apply_report(caps, env, lease))
}

/// Holding the lease: the newest stored report of the record's request on
/// the record, the pull-request comment and the GitHub deployment.
fn apply_report<C: Capabilities>(
    caps: &mut C,
    env: &Environment,
    lease: &mut Lease,
) -> Result<Outcome, Halt> {
    let Partition {
        record,
        report: stored,
        ..
    } = lease::read_all(caps, &env.id)?;
    let held = record.as_ref().and_then(|r| get_s(r, "requestVersion"));
    if held != Some(env.request_version.as_str()) {
        return Err(Halt::Stop(Stop::Stale {
            newer: held.unwrap_or("(none)").to_string(),
        }));
    }
    let Some(report) = Report::stored(stored.as_ref(), &env.request_version) else {
        return Err(Failure::retryable(format!(
            "the status report of environment {} is gone",
            env.id
        ))
        .into());
    };
    if record.as_ref().map_or(0, applied) < report.seq {
        record_report(caps, env, lease, &report)?;
    }
    // The pull request and the deployment show it; GitHub refusing for
    // good costs them, not the report.
    show_report(caps, env, lease, &report)?;
    Ok(Outcome::Done(format!(
        "environment {} is {} (status report {})",
        env.id,
        report.state.status(),
        report.seq
    )))
}

/// Put the report on the record, in one transaction with the lease's
/// renewal: only while this delivery holds the environment, and the record
/// is still at the report's request.
fn record_report<C: Capabilities>(
    caps: &mut C,
    env: &Environment,
    lease: &mut Lease,
    report: &Report,
) -> Result<(), Halt> {
    let at = caps.now_ms();
    match lease.write_holding(caps, at, env.reported(report, at)) {
        Ok(()) => Ok(()),
        Err(Refused::Lease) => Err(Halt::Stop(lease.why_lost(caps)?)),
        Err(Refused::Writes(_)) => Err(Halt::Stop(Stop::Stale {
            newer: "(a newer request)".to_string(),
        })),
        Err(Refused::Failed(error)) => Err(Failure::at("record the status report", &error).into()),
    }
}

/// Show the report on the pull-request comment and the GitHub deployment.
fn show_report<C: Capabilities>(
    caps: &mut C,
    env: &Environment,
    lease: &mut Lease,
    report: &Report,
) -> Result<(), Halt> {
    let app_name = apps::read(caps, &env.app_id)
        .map(|app| app.name)
        .unwrap_or_else(|_| env.app_id.clone());
    let preview = github::preview_url(caps, env);
    let presented = github::presented(caps, env, Some(report), preview);
    let shown = github::show_comment(caps, env, &app_name, lease, presented);
    let log_url = github::unless_refused(caps, shown)?.link();
    github::show_deployment(caps, env, lease, |caps| {
        github::deployment_status(caps, env, report, log_url)
    })?;
    Ok(())
}
