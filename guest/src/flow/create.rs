//! The create-environment flow, top to bottom: a create request becomes an
//! environment at its commit, with a runtime, a pull-request comment and a
//! GitHub deployment.
//!
//! Everything that can refuse the request (the app, the repository, the
//! installation, a stale version) is checked, and everything it needs is
//! read, before its first write; what is written is written holding the
//! environment's lease (`lease.rs`). The runtime's part, requesting it and
//! recording its answer, is `create/runtime.rs`.

mod runtime;

use super::github::{self, Commented};
use super::{Halt, LOGIC_VERSION, Message};
use crate::apps::{self, App};
use crate::capabilities::{Capabilities, Item, LogLevel, RuntimeCreated};
use crate::comment::Status;
use crate::deployment;
use crate::environment::{Environment, STATUS_CREATING, StoredKey};
use crate::item::{get_b, get_s};
use crate::lease::{self, Claim, Lease, Partition, Refused};
use crate::outcome::{Failure, FailureKind, Outcome, failed};
use crate::report::Report;
use crate::request::CreateRequest;
use crate::secrets;
use crate::trust;
use runtime::{Runtime, Signing};

/// Handle a create request.
pub(super) fn create<C: Capabilities>(
    caps: &mut C,
    message: &Message,
    request: CreateRequest,
) -> Result<Outcome, Failure> {
    // The app record (the seed's step 4) comes first: an unknown app must be
    // refused before anything is written, and a webhook only names the repo.
    let app = app_of(caps, &request)?;

    // 1. Authenticate to GitHub as the app's installation.
    caps.github_authenticate(request.installation_id)
        .map_err(failed("authenticate as the GitHub App installation"))?;

    // Code from a fork, or by an author the app does not trust, runs without
    // the app's secrets and a GitHub token; the record says why.
    let withheld = trust::withheld(&app, &request.origin);
    let mut env = Environment::new(&app, &request, withheld);
    env.logic_version = caps.config(LOGIC_VERSION);

    // 2. The environment's record and lease, in one read. A request older
    // than the one the record holds has nothing to do.
    let Partition {
        record,
        lease: seen,
        report,
    } = lease::read_all(caps, &env.id)?;
    let held_version = record
        .as_ref()
        .and_then(|item| get_s(item, "requestVersion"));
    if let Some(held) = held_version.filter(|held| *held > env.request_version.as_str()) {
        return Ok(Outcome::Skipped(lease::stale_reason(
            &env.id,
            &env.request_version,
            held,
        )));
    }
    let recorded = Recorded::of(record.as_ref(), report.as_ref(), &env);

    // The secrets that apply, read before anything is written (decrypted
    // later): an item that breaks the rules is skipped and noted on the
    // record, not fatal for every request of the app. Not even read for code
    // the app does not trust with them, nor once the runtime has them.
    let chosen = if env.secrets_withheld.is_empty() && recorded.runtime.is_none() {
        secrets::choose(caps, &app.id, env.environment_type, &env.id)?
    } else {
        secrets::Chosen::default()
    };
    env.secrets_skipped = chosen.skipped.clone();
    let signing = signing_key(caps, &mut env, &recorded)?;

    // 3. Take the environment; a record not yet at this request is written
    // in the same transaction (three items, conditional on their version),
    // and so is a signing key made for a record that has none.
    let record_writes = if !recorded.exists {
        Some(env.writes(STATUS_CREATING, caps.now_ms(), held_version))
    } else if matches!(signing, Signing::Made(_)) {
        env.signing_key_update().map(|write| vec![write])
    } else {
        None
    };
    let claim = Claim {
        environment_id: &env.id,
        version: &env.request_version,
        token: &message.delivery_token,
        seen,
        record_writes,
    };
    let prepared = Prepared {
        recorded,
        secrets: chosen.secrets,
        signing,
    };
    lease::hold(caps, claim, |caps, lease| {
        let provisioned = provision(caps, &request, &app, &env, lease, prepared);
        if let Err(Halt::Fail(failure)) = &provisioned
            && failure.kind == FailureKind::Permanent
        {
            mark_failed(caps, &app, &env, lease, failure);
        }
        provisioned
    })
}

/// The request's app, which must be the app of the request's repository.
fn app_of<C: Capabilities>(caps: &mut C, request: &CreateRequest) -> Result<App, Failure> {
    let app = apps::resolve(caps, request)?;
    if !app
        .repository
        .eq_ignore_ascii_case(&request.repository.to_string())
    {
        return Err(Failure::permanent(format!(
            "repository {} is not the repository of app {} ({})",
            request.repository, app.id, app.repository
        )));
    }
    Ok(app)
}

/// What the record holds of the request being handled.
#[derive(Default)]
struct Recorded {
    /// The record is at this request.
    exists: bool,
    /// The runtime was requested and recorded.
    runtime: Option<RuntimeCreated>,
    /// The request's signing key.
    key: Option<StoredKey>,
    /// The runtime's newest report on this request.
    report: Option<Report>,
}

impl Recorded {
    /// What `record` already holds of `env`'s request (a redelivery), and
    /// what the runtime reported of it already.
    fn of(record: Option<&Item>, report: Option<&Item>, env: &Environment) -> Self {
        let at_this_request =
            |item: &&Item| get_s(item, "requestVersion") == Some(env.request_version.as_str());
        Self {
            report: Report::stored(report, &env.request_version),
            ..record
                .filter(at_this_request)
                .map(Recorded::read)
                .unwrap_or_default()
        }
    }

    fn read(item: &Item) -> Self {
        // Requested, and maybe reported on since (ready, failed): the runtime
        // id stays on the record either way.
        let runtime = get_s(item, "runtimeId")
            .filter(|id| !id.is_empty())
            .map(|id| RuntimeCreated {
                runtime_id: id.to_string(),
                url: get_s(item, "url").map(str::to_string),
            });
        let key = match (
            get_s(item, "publicKey"),
            get_b(item, "signingKeyCiphertext"),
        ) {
            (Some(public_jwk), Some(ciphertext)) => Some(StoredKey {
                public_jwk: public_jwk.to_string(),
                ciphertext: ciphertext.to_vec(),
            }),
            _ => None,
        };
        Self {
            exists: true,
            runtime,
            key,
            report: None,
        }
    }
}

/// The request's signing key, which the runtime signs its status reports
/// with: the record's, or made now and stored with the record before the
/// runtime ever gets it (a redelivery hands it the same key). None needed
/// once the runtime is on the record.
fn signing_key<C: Capabilities>(
    caps: &mut C,
    env: &mut Environment,
    recorded: &Recorded,
) -> Result<Signing<C::Sealed>, Failure> {
    if recorded.runtime.is_some() {
        return Ok(Signing::NotNeeded);
    }
    if let Some(stored) = recorded.key.clone() {
        env.signing_key = Some(stored.clone());
        return Ok(Signing::Stored(stored));
    }
    let made = caps
        .keys_generate(&env.app_id, &env.id, &env.request_version)
        .map_err(failed("make the environment's signing key"))?;
    env.signing_key = Some(StoredKey {
        public_jwk: made.public_jwk,
        ciphertext: made.ciphertext,
    });
    Ok(Signing::Made(made.private_key))
}

/// What the create read and made before taking the environment, for the
/// steps that hold it.
struct Prepared<S> {
    recorded: Recorded,
    /// The secrets that apply, as stored (sealed).
    secrets: Vec<secrets::Stored>,
    signing: Signing<S>,
}

/// Steps 4 to 8, holding the environment's lease. Ordered by what the
/// developer waits for: the runtime first, then the pull-request comment,
/// then the GitHub deployment (GitHub takes one request at a time per
/// installation, so the order of its requests is the order things show).
fn provision<C: Capabilities>(
    caps: &mut C,
    request: &CreateRequest,
    app: &App,
    env: &Environment,
    lease: &mut Lease,
    prepared: Prepared<C::Sealed>,
) -> Result<Outcome, Halt> {
    if !env.secrets_withheld.is_empty() {
        caps.log(
            LogLevel::Info,
            "secrets",
            &format!(
                "environment {} gets no secrets and no token: {}",
                env.id,
                trust::codes(&env.secrets_withheld)
            ),
        );
    }

    // 4. The runtime, unless this request's is on the record already (a
    // redelivery): started, so the comment goes on while it is created.
    let Prepared {
        recorded,
        secrets,
        signing,
    } = prepared;
    let runtime = match recorded.runtime {
        Some(created) => Runtime::Recorded(created),
        None => Runtime::Requested(runtime::start(
            caps, request, &app.id, env, lease, secrets, signing,
        )?),
    };

    // 5. The pull-request comment.
    let Provisioned {
        runtime: created,
        report,
        comment,
    } = show_while_created(caps, &app.name, env, lease, runtime, recorded.report)?;
    let comment_refused = matches!(comment, Commented::Refused);

    // 6. Analytics, once there is a runtime: never fails the flow.
    super::track(
        caps,
        "cloud_environment_created",
        &request.requester,
        env,
        &[],
    );

    // 7. The GitHub deployment of this commit, in progress at the runtime's
    // URL (else the preview's): GitHub's "View deployment"; or as the
    // runtime reported. GitHub refusing it for good does not fail the
    // environment.
    let log_url = comment.link();
    github::show_deployment(caps, env, lease, |caps| match &report {
        None => {
            let url = created
                .url
                .clone()
                .or_else(|| github::preview_url(caps, env));
            deployment::in_progress(&created.runtime_id, url, log_url)
        }
        Some(report) => github::deployment_status(caps, env, report, log_url),
    })?;

    Ok(Outcome::Done(done(
        env,
        &created,
        report.as_ref(),
        comment_refused,
    )))
}

/// The runtime as recorded, what it reported already, and the comment
/// shown meanwhile.
struct Provisioned {
    runtime: RuntimeCreated,
    report: Option<Report>,
    comment: Commented,
}

/// The runtime's answer, and the comment, created or updated in place (the
/// fence before the runtime call fences it too). With a configured preview
/// URL the comment goes out while the runtime is being created; without
/// one it waits for the runtime's URL, so the first comment already links
/// it. It shows what the runtime reported, if it did already.
///
/// The runtime is requested by then: a comment GitHub refuses for good
/// does not fail the environment.
fn show_while_created<C: Capabilities>(
    caps: &mut C,
    app_name: &str,
    env: &Environment,
    lease: &mut Lease,
    runtime: Runtime,
    recorded_report: Option<Report>,
) -> Result<Provisioned, Halt> {
    let preview = github::preview_url(caps, env);
    let (created, report, shown) = match runtime {
        Runtime::Recorded(created) => {
            let report = recorded_report;
            let fallback = preview.or_else(|| created.url.clone());
            let presented = github::presented(caps, env, report.as_ref(), fallback);
            let shown = github::show_comment(caps, env, app_name, lease, presented);
            (created, report, shown)
        }
        Runtime::Requested(started) if preview.is_some() => {
            let deploying = github::presented(caps, env, None, preview.clone());
            let shown = github::show_comment(caps, env, app_name, lease, deploying);
            let (created, report) = runtime::created(caps, env, lease, started)?;
            let shown = match &report {
                // The runtime reported before the create was recorded.
                Some(report) => {
                    let presented = github::presented(caps, env, Some(report), preview);
                    github::show_comment(caps, env, app_name, lease, presented)
                }
                None => shown,
            };
            (created, report, shown)
        }
        Runtime::Requested(started) => {
            let (created, report) = runtime::created(caps, env, lease, started)?;
            let fallback = created.url.clone();
            let presented = github::presented(caps, env, report.as_ref(), fallback);
            let shown = github::show_comment(caps, env, app_name, lease, presented);
            (created, report, shown)
        }
    };
    Ok(Provisioned {
        runtime: created,
        report,
        comment: github::unless_refused(caps, shown)?,
    })
}

/// The outcome's words: the environment, its runtime, what the runtime
/// reported, and what the environment goes without.
fn done(
    env: &Environment,
    runtime: &RuntimeCreated,
    report: Option<&Report>,
    comment_refused: bool,
) -> String {
    let mut done = format!(
        "environment {} ({} {}) at {}: runtime {}",
        env.id,
        env.environment_type.as_str(),
        env.branch,
        env.sha,
        runtime.runtime_id
    );
    if let Some(report) = report {
        done.push_str(&format!(
            ", {} (report {})",
            report.state.status(),
            report.seq
        ));
    }
    if !env.secrets_withheld.is_empty() {
        let reasons = trust::codes(&env.secrets_withheld);
        done.push_str(&format!(" without secrets ({reasons})"));
    }
    if comment_refused {
        done.push_str("; no pull-request comment (GitHub refused it)");
    }
    done
}

/// After a permanent failure: say why on the record, for people and the UI,
/// and show it on the pull request and the deployment. Best effort: the
/// failure itself goes to the dead-letter queue whatever happens here.
fn mark_failed<C: Capabilities>(
    caps: &mut C,
    app: &App,
    env: &Environment,
    lease: &mut Lease,
    failure: &Failure,
) {
    let at = caps.now_ms();
    match lease.write_holding(caps, at, env.failed(&failure.reason, at)) {
        Ok(()) => {}
        // A newer request owns the environment, and its comment.
        Err(Refused::Lease | Refused::Writes(_)) => {
            caps.log(
                LogLevel::Info,
                "environment",
                &format!(
                    "environment {} moved on to a newer request; not marked failed",
                    env.id
                ),
            );
            return;
        }
        Err(Refused::Failed(error)) => {
            caps.log(
                LogLevel::Warn,
                "environment",
                &format!("could not mark environment {} failed: {error}", env.id),
            );
            return;
        }
    }
    let failed = github::Presented {
        status: Status::Failed(None),
        url: None,
        since_ms: at,
    };
    let comment = match github::show_comment(caps, env, &app.name, lease, failed) {
        Ok(comment) => comment,
        Err(not_shown) => {
            caps.log(
                LogLevel::Warn,
                "comment",
                &format!(
                    "could not show the failure on the pull request: {}",
                    not_shown.reason()
                ),
            );
            None
        }
    };
    let log_url = comment.map(|c| c.html_url);
    let status = |_: &mut C| deployment::failure(env, log_url);
    if let Err(not_shown) = github::show_deployment(caps, env, lease, status) {
        caps.log(
            LogLevel::Warn,
            "deployment",
            &format!(
                "could not show the failure on the GitHub deployment: {}",
                Halt::from(not_shown).reason()
            ),
        );
    }
}
