//! What the flows show on GitHub: the pull-request comment and the GitHub
//! deployment, as the environment stands.
//!
//! The create flow shows the environment while it provisions it, the report
//! flow when the runtime reports on it, and a failed request shows that it
//! failed. They must show it the same way, or the comment would change with
//! nothing having happened. So how the environment is presented (its
//! status, its URL, since when), which URL of a runtime's may be shown, and
//! where the comment and the deployment go are decided here, and the flows
//! hand the result to `comment.rs` and `deployment.rs`.

use super::{Halt, LOGIC_VERSION, PREVIEW_URL_TEMPLATE, REPORT_URL_HOSTS};
use crate::capabilities::{Capabilities, LogLevel, NewDeploymentStatus, Repository};
use crate::comment::{self, Shown, Status};
use crate::deployment::{self, Target};
use crate::environment::Environment;
use crate::lease::{Lease, Stop};
use crate::outcome::FailureKind;
use crate::report::{self, Report};

/// How the pull request presents the environment.
pub(super) struct Presented<'a> {
    /// How far it got.
    pub status: Status<'a>,
    /// Where it answers, or where to read more about its failure.
    pub url: Option<String>,
    /// Since when it is so (the comment's "Updated").
    pub since_ms: u64,
}

/// Deploying (at `fallback_url`), or as the runtime reported it, with its
/// URL when the URL is one the environment may have (`report-url-hosts`).
///
/// Since the request's time while deploying, the time the runtime reported
/// once it did (never before the request). Both come with the request and
/// the report, not from a clock, so a redelivery renders the same comment
/// and leaves it alone.
pub(super) fn presented<'a, C: Capabilities>(
    caps: &mut C,
    env: &Environment,
    report: Option<&'a Report>,
    fallback_url: Option<String>,
) -> Presented<'a> {
    let Some(report) = report else {
        return Presented {
            status: Status::Deploying,
            url: fallback_url,
            since_ms: env.requested_at_ms,
        };
    };
    let url = report_url(caps, env, report);
    let since_ms = report.issued_at_ms.max(env.requested_at_ms);
    match report.state {
        report::State::Ready => Presented {
            status: Status::Ready,
            url: url.or(fallback_url),
            since_ms,
        },
        report::State::Failed => Presented {
            status: Status::Failed(Some(&report.category)),
            url,
            since_ms,
        },
    }
}

/// The report's URL, if the environment may have it.
pub(super) fn report_url<C: Capabilities>(
    caps: &mut C,
    env: &Environment,
    report: &Report,
) -> Option<String> {
    let url = report.url.clone()?;
    let template = caps.config(PREVIEW_URL_TEMPLATE);
    let hosts = caps.config(REPORT_URL_HOSTS);
    if report::url_allowed(&url, hosts.as_deref(), template.as_deref(), &env.id) {
        Some(url)
    } else {
        caps.log(
            LogLevel::Warn,
            "report",
            &format!(
                "the status report of environment {} names a URL it may not have; not shown",
                env.id
            ),
        );
        None
    }
}

/// The configured preview URL of the environment, if any.
pub(super) fn preview_url<C: Capabilities>(caps: &mut C, env: &Environment) -> Option<String> {
    caps.config(PREVIEW_URL_TEMPLATE)
        .map(|template| template.replace("{environment}", &env.id))
}

/// Create or update the pull-request comment, when the environment has a
/// pull request; returns it.
pub(super) fn show_comment<C: Capabilities>(
    caps: &mut C,
    env: &Environment,
    app_name: &str,
    lease: &mut Lease,
    presented: Presented<'_>,
) -> Result<Option<Shown>, Halt> {
    let Some(pull_request) = env.pull_request else {
        return Ok(None);
    };
    let logic_version = caps.config(LOGIC_VERSION);
    let body = comment::render(&comment::View {
        environment: env,
        app_name,
        status: presented.status,
        url: presented.url.as_deref(),
        updated_at_ms: presented.since_ms,
        logic_version: logic_version.as_deref(),
    });
    let shown = comment::upsert(
        caps,
        env.installation_id,
        &repository_of(env),
        pull_request,
        &env.app_id,
        &body,
        &mut lease.github,
    )?;
    Ok(Some(shown))
}

/// What became of the pull-request comment.
pub(super) enum Commented {
    Shown(Shown),
    /// The environment has no pull request.
    NoPullRequest,
    /// GitHub refused it for good.
    Refused,
}

impl Commented {
    /// Where the comment is: the deployment's link to read more.
    pub(super) fn link(self) -> Option<String> {
        match self {
            Self::Shown(shown) => Some(shown.html_url),
            Self::NoPullRequest | Self::Refused => None,
        }
    }
}

/// A comment GitHub refuses for good does not fail the environment: it is
/// logged, and the next request tries again. Any other failure, and the
/// lease's verdict, end the flow.
pub(super) fn unless_refused<C: Capabilities>(
    caps: &mut C,
    shown: Result<Option<Shown>, Halt>,
) -> Result<Commented, Halt> {
    match shown {
        Ok(Some(shown)) => Ok(Commented::Shown(shown)),
        Ok(None) => Ok(Commented::NoPullRequest),
        Err(Halt::Fail(failure)) if failure.kind == FailureKind::Permanent => {
            caps.log(
                LogLevel::Warn,
                "comment",
                &format!("the pull-request comment is not shown: {}", failure.reason),
            );
            Ok(Commented::Refused)
        }
        Err(halt) => Err(halt),
    }
}

/// The GitHub deployment of the environment's commit, found or created
/// (what earlier requests left on GitHub retired first), given the status
/// `status` makes once it is there. A status already saying the same is
/// not repeated; GitHub refusing the deployment for good is logged, and the
/// flow goes on without it.
pub(super) fn show_deployment<C: Capabilities>(
    caps: &mut C,
    env: &Environment,
    lease: &mut Lease,
    status: impl FnOnce(&mut C) -> NewDeploymentStatus,
) -> Result<(), Stop> {
    let repo = repository_of(env);
    let target = Target {
        installation_id: env.installation_id,
        repo: &repo,
        environment: env,
    };
    if let Some(ensured) = deployment::ensure(caps, &target, lease)? {
        let status = status(caps);
        deployment::report(caps, &target, ensured, &status, lease)?;
    }
    Ok(())
}

/// The deployment status a report gives: ready at its URL (else the
/// preview's), or failed with a link to read more.
pub(super) fn deployment_status<C: Capabilities>(
    caps: &mut C,
    env: &Environment,
    report: &Report,
    log_url: Option<String>,
) -> NewDeploymentStatus {
    let url = report_url(caps, env, report);
    match report.state {
        report::State::Ready => deployment::ready(url.or_else(|| preview_url(caps, env)), log_url),
        report::State::Failed => deployment::failed(&report.category, url.or(log_url)),
    }
}

/// The environment's repository as GitHub names it.
pub(super) fn repository_of(env: &Environment) -> Repository {
    let (owner, name) = env
        .repository
        .split_once('/')
        .unwrap_or(("", &env.repository));
    Repository {
        owner: owner.to_string(),
        name: name.to_string(),
    }
}
