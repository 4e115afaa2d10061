//! The create-environment flow, top to bottom.
//!
//! Every step is idempotent, so the host can deliver a message again at any
//! point: the environment id is stable per (app, branch), the record is
//! written under a version condition, the comment is found by its marker, the
//! GitHub deployment by its task and payload, and the runtime call and
//! analytics event carry a key derived from the request.
//!
//! One delivery at a time works on an environment (`lease.rs`): it takes the
//! environment's lease before its first effect, renews it right before each
//! later one (a fence), and releases it at the end, whatever the outcome. An
//! older request meeting a newer one is skipped; a newer one meeting an
//! older holder waits (`deferred`), and the older one stops at its next
//! fence. So the newest request is the last to act, at the Runtime Service
//! and on GitHub.
//!
//! The runtime then reports back (`status_report`, below): signed with the
//! environment's key for the request, its report turns the environment
//! ready or failed, on the record, the comment and the deployment.

use crate::apps::{self, App};
use crate::capabilities::{
    CapResult, Capabilities, LogLevel, Repository, RuntimeCreated, RuntimeRequest, Started,
    TrackEvent, WriteError, key_context,
};
use crate::comment::{self, Shown, Status};
use crate::deployment::{self, Target};
use crate::environment::{Environment, STATUS_CREATING, StoredKey};
use crate::item::{get_b, get_s};
use crate::lease::{self, Claim, Lease, Partition, Stop};
use crate::outcome::{Failure, FailureKind, Outcome, failed};
use crate::report::{self, Report};
use crate::request::{self, BadInput, CreateRequest, Parsed};
use crate::secrets;
use crate::trust;

/// One queue message (WIT `types.message`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub source_queue: String,
    pub body: String,
    pub attributes: Vec<(String, String)>,
    pub receive_count: u32,
    pub sent_at_ms: u64,
    /// Unique to this delivery: the lease holder's name.
    pub delivery_token: String,
    /// How often this message was deferred before.
    pub deferrals: u32,
}

/// Config key: the preview URL, with `{environment}` standing for the id.
pub const PREVIEW_URL_TEMPLATE: &str = "preview-url-template";
/// A logic version built with the `fail-on-marker` feature fails every
/// message whose body contains this: a candidate that passes its self-check
/// yet fails in production, for testing canary rollback.
#[cfg(feature = "fail-on-marker")]
pub const FAIL_MARKER: &str = "envmgr-test-fail";

/// Config key: the version of this logic the host runs, for the comment.
pub const LOGIC_VERSION: &str = "logic-version";

/// Config key: the hosts a runtime's reported URL may have, comma-separated
/// (`*.example.com` for any subdomain). Unset: the host of the preview URL
/// (`preview-url-template`), else any https URL.
pub const REPORT_URL_HOSTS: &str = "report-url-hosts";

/// Why provisioning ended early: a failure, or the lease's verdict.
enum Halt {
    Fail(Failure),
    Stop(Stop),
}

impl From<Failure> for Halt {
    fn from(failure: Failure) -> Self {
        Self::Fail(failure)
    }
}

impl From<Stop> for Halt {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::Failed(failure) => Self::Fail(failure),
            stop => Self::Stop(stop),
        }
    }
}

impl From<Halt> for Stop {
    fn from(halt: Halt) -> Self {
        match halt {
            Halt::Fail(failure) => Self::Failed(failure),
            Halt::Stop(stop) => stop,
        }
    }
}

pub fn handle<C: Capabilities>(caps: &mut C, message: &Message) -> Result<Outcome, Failure> {
    #[cfg(feature = "fail-on-marker")]
    if message.body.contains(FAIL_MARKER) {
        return Err(Failure::permanent(
            "this build fails every request naming the test marker (feature fail-on-marker)",
        ));
    }
    let request = match request::parse(&message.body) {
        Ok(Parsed::Create(request)) => *request,
        Ok(Parsed::Report(jws)) => return status_report(caps, message, &jws),
        Ok(Parsed::Ignored(reason)) => return Ok(Outcome::Skipped(reason)),
        Err(BadInput(reason)) => return Err(Failure::permanent(reason)),
    };

    // The app record (the seed's step 4) comes first: an unknown app must be
    // refused before anything is written, and a webhook only names the repo.
    let app = apps::resolve(caps, &request)?;
    if !app
        .repository
        .eq_ignore_ascii_case(&request.repository.to_string())
    {
        return Err(Failure::permanent(format!(
            "repository {} is not the repository of app {} ({})",
            request.repository, app.id, app.repository
        )));
    }

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
        report: stored_report,
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
    // What the record already holds of this very request (a redelivery).
    let mut recorded = record
        .as_ref()
        .filter(|_| held_version == Some(env.request_version.as_str()))
        .map(Recorded::read)
        .unwrap_or_default();
    // And what the runtime reported of it already.
    recorded.report = Report::stored(stored_report.as_ref(), &env.request_version);

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

    // The request's signing key, which the runtime signs its status reports
    // with: the record's, or made now and stored with the record before the
    // runtime ever gets it (a redelivery hands it the same key). None needed
    // once the runtime is on the record.
    let signing = if recorded.runtime.is_some() {
        Signing::NotNeeded
    } else if let Some(stored) = recorded.key.clone() {
        env.signing_key = Some(stored.clone());
        Signing::Stored(stored)
    } else {
        let made = caps
            .keys_generate(&env.app_id, &env.id, &env.request_version)
            .map_err(failed("make the environment's signing key"))?;
        env.signing_key = Some(StoredKey {
            public_jwk: made.public_jwk,
            ciphertext: made.ciphertext,
        });
        Signing::Made(made.private_key)
    };

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
    lease::hold(caps, claim, |caps, lease| {
        let provisioned = provision(
            caps,
            &request,
            &app,
            &env,
            lease,
            recorded,
            chosen.secrets,
            signing,
        );
        if let Err(Halt::Fail(failure)) = &provisioned
            && failure.kind == FailureKind::Permanent
        {
            mark_failed(caps, &app, &env, lease, failure);
        }
        provisioned
    })
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

/// Where the runtime's signing key comes from.
enum Signing<S> {
    /// Made for this delivery: the private key, sealed.
    Made(S),
    /// On the record: decrypted for the runtime call.
    Stored(StoredKey),
    /// The runtime is on the record already.
    NotNeeded,
}

/// The runtime of this request: on the record, or being created.
enum Runtime {
    Recorded(RuntimeCreated),
    Requested(Started<CapResult<RuntimeCreated>>),
}

impl Recorded {
    fn read(item: &crate::capabilities::Item) -> Self {
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

/// Steps 4 to 8, holding the environment's lease. Ordered by what the
/// developer waits for: the runtime first, then the pull-request comment,
/// then the GitHub deployment (GitHub takes one request at a time per
/// installation, so the order of its requests is the order things show).
#[allow(clippy::too_many_arguments)]
fn provision<C: Capabilities>(
    caps: &mut C,
    request: &CreateRequest,
    app: &App,
    env: &Environment,
    lease: &mut Lease,
    recorded: Recorded,
    chosen: Vec<secrets::Stored>,
    signing: Signing<C::Sealed>,
) -> Result<Outcome, Halt> {
    let trusted = env.secrets_withheld.is_empty();
    if !trusted {
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
    let runtime = match recorded.runtime {
        Some(created) => Runtime::Recorded(created),
        None => Runtime::Requested(request_runtime(
            caps, request, app, env, lease, chosen, signing,
        )?),
    };

    // 5. The pull-request comment, created or updated in place (the fence
    // before the runtime call fences it too). With a configured preview URL
    // it goes out while the runtime is being created; without one it waits
    // for the runtime's URL, so the first comment already links it. It
    // shows what the runtime reported, if it did already.
    let preview = preview_url(caps, env);
    let (created, report, shown) = match runtime {
        Runtime::Recorded(created) => {
            let report = recorded.report;
            let fallback = preview.or_else(|| created.url.clone());
            let (status, url, since) = presented(caps, env, report.as_ref(), fallback);
            let shown = show_comment(caps, env, &app.name, lease, status, url, since);
            (created, report, shown)
        }
        Runtime::Requested(started) if preview.is_some() => {
            let shown = show_comment(
                caps,
                env,
                &app.name,
                lease,
                Status::Deploying,
                preview.clone(),
                env.requested_at_ms,
            );
            let (created, report) = runtime_created(caps, env, lease, started)?;
            let shown = match &report {
                // The runtime reported before the create was recorded.
                Some(report) => {
                    let (status, url, since) = presented(caps, env, Some(report), preview);
                    show_comment(caps, env, &app.name, lease, status, url, since)
                }
                None => shown,
            };
            (created, report, shown)
        }
        Runtime::Requested(started) => {
            let (created, report) = runtime_created(caps, env, lease, started)?;
            let (status, url, since) = presented(caps, env, report.as_ref(), created.url.clone());
            let shown = show_comment(caps, env, &app.name, lease, status, url, since);
            (created, report, shown)
        }
    };
    // The runtime is requested: a comment GitHub refuses for good does not
    // fail the environment. It is logged, and the next request tries again.
    let mut notes = Vec::new();
    let comment = match shown {
        Ok(comment) => comment,
        Err(Halt::Fail(failure)) if failure.kind == FailureKind::Permanent => {
            caps.log(
                LogLevel::Warn,
                "comment",
                &format!("the pull-request comment is not shown: {}", failure.reason),
            );
            notes.push("no pull-request comment (GitHub refused it)");
            None
        }
        Err(halt) => return Err(halt),
    };

    // 6. Analytics, once there is a runtime: never fails the flow.
    let event = TrackEvent {
        event: "cloud_environment_created".to_string(),
        user_id: request.requester.clone(),
        properties_json: serde_json::json!({
            "repo": env.repository,
            "branch": env.branch,
            "type": env.environment_type.as_str(),
            "environmentId": env.id,
        })
        .to_string(),
        message_id: format!("envmgr-{}", env.idempotency_key()),
    };
    if let Err(error) = caps.analytics_track(&event) {
        caps.log(
            LogLevel::Warn,
            "analytics",
            &format!("event not tracked: {error}"),
        );
    }

    // 7. The GitHub deployment of this commit, found or created (what
    // earlier requests left on GitHub retired first), in progress at the
    // runtime's URL (else the preview's): GitHub's "View deployment"; or
    // as the runtime reported. A status already saying the same is not
    // repeated; GitHub refusing the deployment for good does not fail the
    // environment.
    let repo = repository_of(env);
    let github = deployment_target(env, &repo);
    if let Some(ensured) = deployment::ensure(caps, &github, lease)? {
        let log_url = comment.map(|c| c.html_url);
        let status = match &report {
            None => {
                let url = created.url.clone().or_else(|| preview_url(caps, env));
                deployment::in_progress(&created.runtime_id, url, log_url)
            }
            Some(report) => deployment_status(caps, env, report, log_url),
        };
        deployment::report(caps, &github, ensured, &status, lease)?;
    }

    let mut done = format!(
        "environment {} ({} {}) at {}: runtime {}",
        env.id,
        env.environment_type.as_str(),
        env.branch,
        env.sha,
        created.runtime_id
    );
    if let Some(report) = &report {
        done.push_str(&format!(
            ", {} (report {})",
            report.state.status(),
            report.seq
        ));
    }
    if !trusted {
        let reasons = trust::codes(&env.secrets_withheld);
        done.push_str(&format!(" without secrets ({reasons})"));
    }
    for note in notes {
        done.push_str(&format!("; {note}"));
    }
    Ok(Outcome::Done(done))
}

/// Start the runtime's creation. Everything the call needs is asked for at
/// once: the repository-scoped token (the first GitHub request: the
/// developer waits for the runtime, and the runtime for it), the secrets,
/// the stored signing key. Untrusted code gets neither secrets nor a token.
fn request_runtime<C: Capabilities>(
    caps: &mut C,
    request: &CreateRequest,
    app: &App,
    env: &Environment,
    lease: &mut Lease,
    chosen: Vec<secrets::Stored>,
    signing: Signing<C::Sealed>,
) -> Result<Started<CapResult<RuntimeCreated>>, Halt> {
    let trusted = env.secrets_withheld.is_empty();
    let token = trusted.then(|| {
        caps.start_github_create_installation_token(request.installation_id, &request.repository)
    });
    let secrets = if trusted {
        secrets::start_decrypt(caps, &app.id, chosen)
    } else {
        secrets::Decrypting::none()
    };
    let key = match signing {
        Signing::Made(sealed) => Some(Started::ready(Ok(sealed))),
        Signing::Stored(stored) => Some(caps.start_kms_decrypt(
            &stored.ciphertext,
            &key_context(&env.app_id, &env.id, &env.request_version),
            &format!("signing-key:{}", env.id),
        )),
        Signing::NotNeeded => None,
    };
    let token = token
        .map(Started::wait)
        .transpose()
        .map_err(failed("create an installation token for the runtime"))?;
    let secrets = secrets.wait()?;
    let signing_key = key
        .map(Started::wait)
        .transpose()
        .map_err(failed("decrypt the environment's signing key"))?;
    lease.fence(caps)?;
    Ok(caps.start_runtime_create(&RuntimeRequest {
        idempotency_key: env.idempotency_key(),
        app_id: env.app_id.clone(),
        environment_id: env.id.clone(),
        environment_type: env.environment_type.as_str().to_string(),
        repository: env.repository.clone(),
        branch: env.branch.clone(),
        sha: env.sha.clone(),
        request_version: env.request_version.clone(),
        entrypoint: env.entrypoint.clone(),
        installation_token: token.as_ref(),
        secrets: secrets
            .iter()
            .map(|(name, value)| (name.clone(), value))
            .collect(),
        signing_key: signing_key.as_ref(),
    }))
}

/// The runtime's answer, recorded; with what the runtime reported already,
/// if it did (merged into the record).
fn runtime_created<C: Capabilities>(
    caps: &mut C,
    env: &Environment,
    lease: &mut Lease,
    started: Started<CapResult<RuntimeCreated>>,
) -> Result<(RuntimeCreated, Option<Report>), Halt> {
    let created = started.wait().map_err(failed("create the runtime"))?;
    let report = record_runtime(caps, env, lease, &created)?;
    Ok((created, report))
}

/// Record the runtime on all three items, in one transaction with the
/// lease's renewal: only while this delivery holds the environment. A
/// report the runtime sent before this (it is stored, not applied: the
/// create was under way) is merged: the record says ready or failed.
fn record_runtime<C: Capabilities>(
    caps: &mut C,
    env: &Environment,
    lease: &mut Lease,
    created: &RuntimeCreated,
) -> Result<Option<Report>, Halt> {
    let mut report = None;
    for _ in 0..2 {
        let now = caps.now_ms();
        let mut writes = env.runtime_requested(
            &created.runtime_id,
            created.url.as_deref(),
            report.as_ref(),
            now,
        );
        let report_check = match &report {
            Some(_) => None,
            None => {
                writes.push(report::none_for(&env.id, &env.request_version));
                Some(writes.len() as u32 - 1)
            }
        };
        let (renewal, rev) = lease.renewal(now);
        let lease_index = writes.len() as u32;
        writes.push(renewal);
        match caps.db_transact_write(&writes) {
            Ok(()) => {
                lease.committed(rev);
                return Ok(report);
            }
            Err(WriteError::ConditionFailed(failed)) if failed.contains(&lease_index) => {
                return Err(Halt::Stop(lease.why_lost(caps)?));
            }
            Err(WriteError::ConditionFailed(failed))
                if report_check.is_some_and(|check| failed == [check]) =>
            {
                let stored = lease::read_all(caps, &env.id)?.report;
                report = Report::stored(stored.as_ref(), &env.request_version);
                if report.is_none() {
                    return Err(Failure::retryable(format!(
                        "a status report of environment {} was stored and is gone",
                        env.id
                    ))
                    .into());
                }
            }
            Err(WriteError::ConditionFailed(_)) => {
                // The record moved on without the lease (a logic version that
                // does not take it, during an upgrade).
                let record = lease::read_all(caps, &env.id)?.record;
                let newer = record
                    .as_ref()
                    .and_then(|r| get_s(r, "requestVersion"))
                    .unwrap_or("(unknown)")
                    .to_string();
                return Err(Halt::Stop(Stop::Stale { newer }));
            }
            Err(WriteError::Failed(error)) => {
                return Err(Failure::at("record the runtime on the environment", &error).into());
            }
        }
    }
    Err(Failure::retryable(format!(
        "the status reports of environment {} kept changing while recording its runtime",
        env.id
    ))
    .into())
}

/// How the comment shows the environment: deploying (at `fallback_url`),
/// or as the runtime reported it, with its URL when the URL is one the
/// environment may have (`report-url-hosts`).
///
/// And since when it is so: the request's time while deploying, the time
/// the runtime reported once it did (never before the request). Both come
/// with the request and the report, not from a clock, so a redelivery
/// renders the same comment and leaves it alone.
fn presented<'a, C: Capabilities>(
    caps: &mut C,
    env: &Environment,
    report: Option<&'a Report>,
    fallback_url: Option<String>,
) -> (Status<'a>, Option<String>, u64) {
    match report {
        None => (Status::Deploying, fallback_url, env.requested_at_ms),
        Some(report) => {
            let url = report_url(caps, env, report);
            let since = report.issued_at_ms.max(env.requested_at_ms);
            match report.state {
                report::State::Ready => (Status::Ready, url.or(fallback_url), since),
                report::State::Failed => (Status::Failed(Some(&report.category)), url, since),
            }
        }
    }
}

/// The report's URL, if the environment may have it.
fn report_url<C: Capabilities>(caps: &mut C, env: &Environment, report: &Report) -> Option<String> {
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

/// The deployment status a report gives.
fn deployment_status<C: Capabilities>(
    caps: &mut C,
    env: &Environment,
    report: &Report,
    log_url: Option<String>,
) -> crate::capabilities::NewDeploymentStatus {
    let url = report_url(caps, env, report);
    match report.state {
        report::State::Ready => deployment::ready(url.or_else(|| preview_url(caps, env)), log_url),
        report::State::Failed => deployment::failed(&report.category, url.or(log_url)),
    }
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
    let mut writes = env.failed(&failure.reason, at);
    let (renewal, rev) = lease.renewal(at);
    writes.push(renewal);
    match caps.db_transact_write(&writes) {
        Ok(()) => lease.committed(rev),
        // A newer request owns the environment, and its comment.
        Err(WriteError::ConditionFailed(_)) => {
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
        Err(WriteError::Failed(error)) => {
            caps.log(
                LogLevel::Warn,
                "environment",
                &format!("could not mark environment {} failed: {error}", env.id),
            );
            return;
        }
    }
    let comment = match show_comment(caps, env, &app.name, lease, Status::Failed(None), None, at) {
        Ok(comment) => comment,
        Err(not_shown) => {
            caps.log(
                LogLevel::Warn,
                "comment",
                &format!(
                    "could not show the failure on the pull request: {}",
                    halt_reason(&not_shown)
                ),
            );
            None
        }
    };
    let repo = repository_of(env);
    let github = deployment_target(env, &repo);
    let log_url = comment.map(|c| c.html_url);
    let shown = deployment::ensure(caps, &github, lease).and_then(|ensured| match ensured {
        Some(ensured) => deployment::report(
            caps,
            &github,
            ensured,
            &deployment::failure(env, log_url),
            lease,
        )
        .map_err(Stop::Failed),
        None => Ok(()),
    });
    if let Err(not_shown) = shown {
        caps.log(
            LogLevel::Warn,
            "deployment",
            &format!(
                "could not show the failure on the GitHub deployment: {}",
                halt_reason(&Halt::from(not_shown))
            ),
        );
    }
}

fn halt_reason(halt: &Halt) -> String {
    match halt {
        Halt::Fail(failure) => failure.reason.clone(),
        Halt::Stop(Stop::Stale { newer }) => format!("a newer request {newer} took over"),
        Halt::Stop(Stop::Lost { reason, .. }) => reason.clone(),
        Halt::Stop(Stop::Failed(failure)) => failure.reason.clone(),
    }
}

/// Create or update the pull-request comment, when the environment has a
/// pull request; returns it. `since_ms`: when the status shown began (the
/// comment's "Updated").
fn show_comment<C: Capabilities>(
    caps: &mut C,
    env: &Environment,
    app_name: &str,
    lease: &mut Lease,
    status: Status<'_>,
    url: Option<String>,
    since_ms: u64,
) -> Result<Option<Shown>, Halt> {
    let Some(pull_request) = env.pull_request else {
        return Ok(None);
    };
    let logic_version = caps.config(LOGIC_VERSION);
    let body = comment::render(&comment::View {
        environment: env,
        app_name,
        status,
        url: url.as_deref(),
        updated_at_ms: since_ms,
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

/// The environment's repository as GitHub names it.
fn repository_of(env: &Environment) -> Repository {
    let (owner, name) = env
        .repository
        .split_once('/')
        .unwrap_or(("", &env.repository));
    Repository {
        owner: owner.to_string(),
        name: name.to_string(),
    }
}

/// The configured preview URL of the environment, if any.
fn preview_url<C: Capabilities>(caps: &mut C, env: &Environment) -> Option<String> {
    caps.config(PREVIEW_URL_TEMPLATE)
        .map(|template| template.replace("{environment}", &env.id))
}

/// Where the environment's GitHub deployments go.
fn deployment_target<'a>(env: &'a Environment, repo: &'a Repository) -> Target<'a> {
    Target {
        installation_id: env.installation_id,
        repo,
        environment: env,
    }
}

/// A runtime's status report (`report.rs` has the rules): checked against
/// the environment's key, stored, and applied once the create is recorded.
fn status_report<C: Capabilities>(
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
    report.url = report_url(caps, &env, &report);
    // Applied means on the record (`reportSeq`), not only stored: a report
    // stored while the create held the environment is applied later.
    let applied =
        |record: &crate::capabilities::Item| crate::item::get_u64(record, "reportSeq").unwrap_or(0);
    if applied(&record) >= report.seq {
        return Ok(Outcome::Skipped(format!(
            "status report {} of environment {environment_id}: report {} is applied already",
            report.seq,
            applied(&record)
        )));
    }
    let stored_already =
        Report::stored(stored.as_ref(), &version).is_some_and(|newest| newest.seq >= report.seq);
    if !stored_already {
        match caps.db_transact_write(&[report.write()]) {
            // A later one stored first: applied below, with it.
            Ok(()) | Err(WriteError::ConditionFailed(_)) => {}
            Err(WriteError::Failed(error)) => {
                return Err(Failure::at("store the status report", &error));
            }
        }
    }
    // Read again: a create that recorded its runtime since the first read
    // did so without this report (its check found none stored), so it is
    // applied here; a create that has not yet finds it stored and merges it.
    let Partition {
        record,
        lease: seen,
        ..
    } = lease::read_all(caps, &environment_id)?;
    let record = record
        .ok_or_else(|| report::refused(&format!("environment {environment_id} does not exist")))?;
    if get_s(&record, "requestVersion") != Some(version.as_str()) {
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
        version: &version,
        token: &message.delivery_token,
        seen,
        record_writes: None,
    };
    lease::hold(caps, claim, |caps, lease| apply_report(caps, &env, lease))
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
    let applied = record
        .as_ref()
        .and_then(|r| crate::item::get_u64(r, "reportSeq"))
        .unwrap_or(0);
    if applied < report.seq {
        let at = caps.now_ms();
        let mut writes = env.reported(&report, at);
        let (renewal, rev) = lease.renewal(at);
        let lease_index = writes.len() as u32;
        writes.push(renewal);
        match caps.db_transact_write(&writes) {
            Ok(()) => lease.committed(rev),
            Err(WriteError::ConditionFailed(failed)) if failed.contains(&lease_index) => {
                return Err(Halt::Stop(lease.why_lost(caps)?));
            }
            Err(WriteError::ConditionFailed(_)) => {
                return Err(Halt::Stop(Stop::Stale {
                    newer: "(a newer request)".to_string(),
                }));
            }
            Err(WriteError::Failed(error)) => {
                return Err(Failure::at("record the status report", &error).into());
            }
        }
    }

    // The pull request and the deployment show it; GitHub refusing for
    // good costs them, not the report.
    let app_name = crate::apps::read(caps, &env.app_id)
        .map(|app| app.name)
        .unwrap_or_else(|_| env.app_id.clone());
    let preview = preview_url(caps, env);
    let (status, url, since) = presented(caps, env, Some(&report), preview);
    let comment = match show_comment(caps, env, &app_name, lease, status, url, since) {
        Ok(comment) => comment,
        Err(Halt::Fail(failure)) if failure.kind == FailureKind::Permanent => {
            caps.log(
                LogLevel::Warn,
                "comment",
                &format!("the pull-request comment is not shown: {}", failure.reason),
            );
            None
        }
        Err(halt) => return Err(halt),
    };
    let repo = repository_of(env);
    let github = deployment_target(env, &repo);
    if let Some(ensured) = deployment::ensure(caps, &github, lease)? {
        let status = deployment_status(caps, env, &report, comment.map(|c| c.html_url));
        deployment::report(caps, &github, ensured, &status, lease)?;
    }
    Ok(Outcome::Done(format!(
        "environment {} is {} (status report {})",
        env.id,
        report.state.status(),
        report.seq
    )))
}
