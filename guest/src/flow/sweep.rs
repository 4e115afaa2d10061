//! The sweep of one app's previews (the host sends one `sweep` message per
//! app every `[previews] sweep_every_seconds`, from one host at a time):
//! a preview with no request for `preview-max-idle-days` ends, its comment
//! saying how to bring it back; a delete that stopped (`deleting`: a crash,
//! a Runtime Service that was down) is finished.
//!
//! The app's index items (`APP#{app} / ENVIRONMENT#{id}`, written with
//! every record write) are read a page at a time; each preview to end goes
//! through the teardown flow as a delete of exactly the request it was seen
//! at, so a push while the sweep runs wins. At most [`MOST_PER_SWEEP`]
//! environments are acted on per message (one message's deadline); the
//! next sweep takes the rest. What could not be done now (another delivery
//! holds the environment, a dependency is down) is left to the next sweep.

use super::Message;
use super::teardown::{self, MAX_IDLE_DAYS};
use crate::apps;
use crate::capabilities::{Capabilities, Item, LogLevel, Query};
use crate::environment::{STATUS_DELETED, STATUS_DELETING, TABLE};
use crate::item::{get_s, get_u64};
use crate::outcome::{Failure, Outcome, failed};
use crate::request::{AppRef, DELETE_SUFFIX, DeleteRequest, EnvironmentType, Order, Reason};

/// Without the config key: two weeks.
const DEFAULT_MAX_IDLE_DAYS: u64 = 14;
/// Environments one sweep message acts on, at most.
pub const MOST_PER_SWEEP: usize = 10;

/// Sweep app `app_id`'s previews.
pub(super) fn sweep<C: Capabilities>(
    caps: &mut C,
    message: &Message,
    app_id: &str,
) -> Result<Outcome, Failure> {
    let app = apps::read(caps, app_id)?;
    let idle_days = caps
        .config(MAX_IDLE_DAYS)
        .and_then(|days| days.parse::<u64>().ok())
        .unwrap_or(DEFAULT_MAX_IDLE_DAYS);
    let now = caps.now_ms();
    let idle_before = (idle_days > 0).then(|| now.saturating_sub(idle_days * 86_400_000));
    let due = due(caps, &app.id, idle_before)?;
    let (mut ended, mut left) = (0, Vec::new());
    for (branch, request) in due.iter().take(MOST_PER_SWEEP) {
        match teardown::teardown(caps, message, request.clone()) {
            Ok(Outcome::Done(_)) => ended += 1,
            Ok(Outcome::Skipped(why)) => left.push(format!("{branch}: {why}")),
            Ok(Outcome::Deferred { reason, .. }) => left.push(format!("{branch}: {reason}")),
            Err(failure) => {
                caps.log(
                    LogLevel::Warn,
                    "sweep",
                    &format!(
                        "preview {branch} of app {app_id} not removed: {}",
                        failure.reason
                    ),
                );
                left.push(format!("{branch}: {}", failure.reason));
            }
        }
    }
    let more = due.len().saturating_sub(MOST_PER_SWEEP);
    let mut done = format!(
        "swept app {app_id}: {ended} of {} due ended",
        due.len().min(MOST_PER_SWEEP)
    );
    if !left.is_empty() {
        done.push_str(&format!(
            " ({} left to the next sweep: {})",
            left.len(),
            left.join("; ")
        ));
    }
    if more > 0 {
        done.push_str(&format!("; {more} more for the next sweep"));
    }
    Ok(Outcome::Done(done))
}

/// The app's previews to end, oldest request first: idle ones (when
/// `idle_before` is set) and stopped deletes.
fn due<C: Capabilities>(
    caps: &mut C,
    app_id: &str,
    idle_before: Option<u64>,
) -> Result<Vec<(String, DeleteRequest)>, Failure> {
    let mut due = Vec::new();
    let mut start_after = None;
    loop {
        let page = caps
            .db_query(&Query {
                table: TABLE.to_string(),
                partition: format!("APP#{app_id}"),
                sort_prefix: Some("ENVIRONMENT#".to_string()),
                limit: Some(100),
                start_after: start_after.take(),
            })
            .map_err(failed("read the app's environments"))?;
        due.extend(
            page.items
                .iter()
                .filter_map(|item| to_end(item, app_id, idle_before)),
        );
        match page.next {
            Some(next) => start_after = Some(next),
            None => break,
        }
    }
    due.sort_by_key(|(_, request)| match &request.order {
        Order::IfAt(version) => version.clone(),
        _ => String::new(),
    });
    Ok(due)
}

/// The delete one index item calls for, if any.
fn to_end(item: &Item, app_id: &str, idle_before: Option<u64>) -> Option<(String, DeleteRequest)> {
    if get_s(item, "environmentType") != Some(EnvironmentType::Preview.as_str()) {
        return None;
    }
    let status = get_s(item, "status")?;
    let version = get_s(item, "requestVersion")?;
    let following = version.strip_suffix(DELETE_SUFFIX).unwrap_or(version);
    let reason = match status {
        STATUS_DELETED => return None,
        STATUS_DELETING => reason_named(get_s(item, "deleteReason").unwrap_or("")),
        _ if get_u64(item, "requestedAt")
            .zip(idle_before)
            .is_some_and(|(at, before)| at < before) =>
        {
            Reason::Idle
        }
        _ => return None,
    };
    let branch = get_s(item, "branch")?.to_string();
    Some((
        branch.clone(),
        DeleteRequest {
            app: AppRef::Id(app_id.to_string()),
            environment_type: EnvironmentType::Preview,
            repository: None,
            branch,
            pull_request: None,
            installation_id: None,
            requester: "envmgr:sweep".to_string(),
            reason,
            order: Order::IfAt(following.to_string()),
            from_webhook: false,
            head: None,
        },
    ))
}

fn reason_named(name: &str) -> Reason {
    [
        Reason::PullRequestClosed,
        Reason::PullRequestMerged,
        Reason::BranchDeleted,
        Reason::Api,
        Reason::Idle,
    ]
    .into_iter()
    .find(|reason| reason.as_str() == name)
    .unwrap_or(Reason::Api)
}
