//! A pull request closed while another open pull request has the same head
//! branch: both deploy the same environment (one per app and branch), so
//! the preview stays, and its comment moves to the pull request still open.

use super::super::github::{self, Presented};
use super::super::{Halt, Message, PREVIEW_URL_TEMPLATE};
use crate::apps::App;
use crate::capabilities::{Capabilities, ErrorCode, LogLevel};
use crate::comment::Status;
use crate::environment::{Environment, STATUS_FAILED, STATUS_READY};
use crate::lease::{self, Claim, LeaseState};
use crate::outcome::{Failure, Outcome, failed};
use crate::request::DeleteRequest;

/// Another open pull request on the closed one's head, if there is one.
pub(super) fn other_open<C: Capabilities>(
    caps: &mut C,
    request: &DeleteRequest,
    env: &Environment,
    head: &str,
) -> Result<Option<u64>, Failure> {
    let closed = request.pull_request.as_ref().map(|p| p.number);
    let installation_id = request.installation_id.unwrap_or(env.installation_id);
    let listed =
        caps.github_list_open_pull_requests(installation_id, &github::repository_of(env), head);
    let open = match listed {
        Ok(open) => open,
        // An App without Pull requests: read (or a repository GitHub no
        // longer shows it): the closed pull request decides alone.
        Err(error) if matches!(error.code, ErrorCode::Denied | ErrorCode::NotFound) => {
            caps.log(
                LogLevel::Warn,
                "teardown",
                &format!(
                    "cannot tell whether another open pull request has branch {}; \
                     the preview is removed (the App needs Pull requests: read): {error}",
                    env.branch
                ),
            );
            return Ok(None);
        }
        Err(error) => return Err(failed("list the branch's open pull requests")(error)),
    };
    Ok(open
        .into_iter()
        .map(|pull| pull.number)
        .find(|number| Some(*number) != closed))
}

/// The pull request still open, and how the environment stands.
pub(super) struct Kept<'a> {
    pub status: &'a str,
    pub url: Option<String>,
    pub other: u64,
}

/// Keep the environment for pull request `other`: the record names it, the
/// closed pull request's comment says where it went, and `other` gets the
/// comment, showing the environment as it stands. Holds the lease at the
/// record's own request, so it changes no version.
pub(super) fn keep_for<C: Capabilities>(
    caps: &mut C,
    message: &Message,
    app: &App,
    mut env: Environment,
    seen: LeaseState,
    kept: Kept<'_>,
) -> Result<Outcome, Failure> {
    let Kept { status, url, other } = kept;
    if env.pull_request == Some(other) {
        return Ok(Outcome::Skipped(format!(
            "environment {} stays for pull request #{other}, which it shows already",
            env.id
        )));
    }
    let version = env.request_version.clone();
    let claim = Claim {
        environment_id: &env.id.clone(),
        version: &version,
        token: &message.delivery_token,
        seen,
        record_writes: Some(env.moved_to(other)),
    };
    lease::hold(caps, claim, |caps, lease| {
        let at = caps.now_ms();
        let moved = Presented {
            status: Status::Moved(other),
            url: None,
            since_ms: at,
        };
        let shown = github::show_comment(caps, &env, &app.name, lease, moved);
        github::unless_refused(caps, shown)?;
        env.pull_request = Some(other);
        let github_state = &mut lease.github;
        github_state.comment_id = None;
        github_state.comment_url = None;
        github_state.comment_digest = None;
        github_state.first_holder = false;
        let shown = Presented {
            status: match status {
                STATUS_READY => Status::Ready,
                STATUS_FAILED => Status::Failed(None),
                _ => Status::Deploying,
            },
            url: url.or_else(|| {
                caps.config(PREVIEW_URL_TEMPLATE)
                    .map(|template| template.replace("{environment}", &env.id))
            }),
            since_ms: env.requested_at_ms,
        };
        let shown = github::show_comment(caps, &env, &app.name, lease, shown);
        github::unless_refused(caps, shown)?;
        Ok::<_, Halt>(Outcome::Done(format!(
            "environment {} stays: pull request #{other} is open on its branch too; \
             the comment moved there",
            env.id
        )))
    })
}
