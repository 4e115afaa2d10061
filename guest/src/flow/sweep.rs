//! The sweep of one app's previews (the host sends one `sweep` message per
//! app every `[previews] sweep_every_seconds`, from one host at a time):
//! it finds the previews to end and sends one delete request per preview
//! to the `api` queue (`requests.send`), so each runs through the same
//! queue, lease and dead-letter path as every other request.
//!
//! A preview ends when it had no request for `preview-max-idle-days`, when
//! a delete of it stopped (`deleting`: a crash, a Runtime Service that was
//! down), and when its pull request is no longer open though no delete
//! came — a `closed` event another logic version acknowledged without
//! tearing down (during a canary or a rollback to a version from before
//! teardown), or one GitHub never delivered. The last takes one GitHub call
//! per app (its repository's open pull requests, every page), not one per
//! preview.
//!
//! The app's index items (`APP#{app} / ENVIRONMENT#{id}`, written with
//! every record write) are read a page at a time. Each delete names the
//! exact request the preview was seen at (`ifRequestVersion`), so a push
//! while the sweep runs wins, and two sweeps sending the same delete end
//! the preview once. At most [`MOST_PER_SWEEP`] deletes per message; the
//! next sweep sends the rest. Nothing here writes: the sweep only reads and
//! sends, which is what lets `envmgr sweep --dry-run` run it as it is.

use super::teardown::MAX_IDLE_DAYS;
use crate::apps::{self, App};
use crate::capabilities::{Capabilities, ErrorCode, Item, LogLevel, Query, Repository};
use crate::environment::{STATUS_DELETED, STATUS_DELETING, TABLE};
use crate::item::{get_s, get_u64};
use crate::outcome::{Failure, Outcome, failed};
use crate::request::{DELETE_SUFFIX, EnvironmentType, Reason};

/// Without the config key: two weeks.
const DEFAULT_MAX_IDLE_DAYS: u64 = 14;
/// Deletes one sweep message sends, at most (the host allows 100).
pub const MOST_PER_SWEEP: usize = 50;
/// Who the sweep's deletes say asked.
pub const SWEEP_REQUESTER: &str = "envmgr:sweep";

/// One preview as its index item shows it.
struct Preview {
    branch: String,
    status: String,
    /// The request it holds (a delete's with `#delete`).
    version: String,
    requested_at_ms: Option<u64>,
    pull_request: Option<u64>,
    installation_id: Option<u64>,
    delete_reason: Option<Reason>,
}

/// A preview to end, and why.
struct Due {
    branch: String,
    /// The request the delete follows (without `#delete`).
    following: String,
    reason: Reason,
}

/// Sweep app `app_id`'s previews.
pub(super) fn sweep<C: Capabilities>(caps: &mut C, app_id: &str) -> Result<Outcome, Failure> {
    let app = apps::read(caps, app_id)?;
    let idle_days = caps
        .config(MAX_IDLE_DAYS)
        .and_then(|days| days.parse::<u64>().ok())
        .unwrap_or(DEFAULT_MAX_IDLE_DAYS);
    let now = caps.now_ms();
    let idle_before = (idle_days > 0).then(|| now.saturating_sub(idle_days * 86_400_000));
    let previews = previews(caps, &app.id)?;
    let mut due: Vec<Due> = previews
        .iter()
        .filter_map(|preview| preview.due(idle_before))
        .collect();
    due.extend(closed_unseen(caps, &app, &previews, &due)?);
    due.sort_by(|a, b| a.following.cmp(&b.following));
    let mut sent = Vec::new();
    for preview in due.iter().take(MOST_PER_SWEEP) {
        let body = delete_body(&app.id, preview);
        caps.requests_send(&body)
            .map_err(failed("send a preview's delete to the api queue"))?;
        sent.push(format!("{} ({})", preview.branch, preview.reason.as_str()));
    }
    let mut done = format!(
        "swept app {app_id}: {} delete(s) sent to api{}",
        sent.len(),
        match sent.is_empty() {
            true => String::new(),
            false => format!(": {}", sent.join(", ")),
        }
    );
    if due.len() > MOST_PER_SWEEP {
        let more = due.len() - MOST_PER_SWEEP;
        done.push_str(&format!("; {more} more for the next sweep"));
    }
    Ok(Outcome::Done(done))
}

impl Preview {
    fn read(item: &Item) -> Option<Preview> {
        if get_s(item, "environmentType") != Some(EnvironmentType::Preview.as_str()) {
            return None;
        }
        Some(Preview {
            branch: get_s(item, "branch")?.to_string(),
            status: get_s(item, "status")?.to_string(),
            version: get_s(item, "requestVersion")?.to_string(),
            requested_at_ms: get_u64(item, "requestedAt"),
            pull_request: get_u64(item, "pullRequest"),
            installation_id: get_u64(item, "installationId").filter(|id| *id != 0),
            delete_reason: get_s(item, "deleteReason").and_then(Reason::named),
        })
    }

    fn live(&self) -> bool {
        self.status != STATUS_DELETED && self.status != STATUS_DELETING
    }

    fn ending(&self, reason: Reason) -> Due {
        let following = self.version.strip_suffix(DELETE_SUFFIX);
        Due {
            branch: self.branch.clone(),
            following: following.unwrap_or(&self.version).to_string(),
            reason,
        }
    }

    /// Idle, or a delete that stopped.
    fn due(&self, idle_before: Option<u64>) -> Option<Due> {
        if self.status == STATUS_DELETING {
            return Some(self.ending(self.delete_reason.unwrap_or(Reason::Api)));
        }
        let idle = self
            .requested_at_ms
            .zip(idle_before)
            .is_some_and(|(at, before)| at < before);
        (self.live() && idle).then(|| self.ending(Reason::Idle))
    }
}

/// The app's previews, every page of its index: as many as the app has
/// environments, live ones and tombstones until their `purgeAt` (a few
/// hundred bytes each; one app's, for one message).
fn previews<C: Capabilities>(caps: &mut C, app_id: &str) -> Result<Vec<Preview>, Failure> {
    let mut previews = Vec::new();
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
        previews.extend(page.items.iter().filter_map(Preview::read));
        match page.next {
            Some(next) => start_after = Some(next),
            None => return Ok(previews),
        }
    }
}

/// Live previews (not already due) whose pull request is not open any more:
/// one list of the repository's open pull requests (as many as are open;
/// the host reads every page). An App without Pull
/// requests: read, or a repository GitHub no longer shows, leaves them to
/// idle expiry (said in the log); any other failure retries the sweep.
fn closed_unseen<C: Capabilities>(
    caps: &mut C,
    app: &App,
    previews: &[Preview],
    due: &[Due],
) -> Result<Vec<Due>, Failure> {
    let with_pull_request: Vec<&Preview> = previews
        .iter()
        .filter(|p| p.live() && p.pull_request.is_some())
        .filter(|p| !due.iter().any(|d| d.branch == p.branch))
        .collect();
    let Some(installation_id) = with_pull_request.iter().find_map(|p| p.installation_id) else {
        return Ok(Vec::new());
    };
    let (owner, name) = app.repository.split_once('/').unwrap_or(("", ""));
    let repo = Repository {
        owner: owner.to_string(),
        name: name.to_string(),
    };
    let open = match caps.github_list_open_pull_requests(installation_id, &repo, "") {
        Ok(open) => open,
        Err(error) if matches!(error.code, ErrorCode::Denied | ErrorCode::NotFound) => {
            caps.log(
                LogLevel::Warn,
                "sweep",
                &format!(
                    "cannot list {}'s open pull requests; previews whose pull request \
                     closed unseen end when idle (the App needs Pull requests: read): {error}",
                    app.repository
                ),
            );
            return Ok(Vec::new());
        }
        Err(error) => return Err(failed("list the repository's open pull requests")(error)),
    };
    Ok(with_pull_request
        .into_iter()
        .filter(|p| !open.iter().any(|pull| Some(pull.number) == p.pull_request))
        .map(|p| p.ending(Reason::PullRequestClosed))
        .collect())
}

/// The platform API delete of one preview at exactly the request it was
/// seen at (`docs/messages.md`).
fn delete_body(app_id: &str, due: &Due) -> String {
    serde_json::json!({
        "version": 1,
        "kind": "delete-environment",
        "appId": app_id,
        "environmentType": EnvironmentType::Preview.as_str(),
        "branch": due.branch,
        "requester": SWEEP_REQUESTER,
        "ifRequestVersion": due.following,
        "reason": due.reason.as_str(),
    })
    .to_string()
}
