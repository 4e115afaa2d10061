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

use crate::apps::{self, App};
use crate::capabilities::{
    Capabilities, LogLevel, RuntimeCreated, RuntimeRequest, TrackEvent, WriteError,
};
use crate::comment::{self, Shown, Status};
use crate::deployment::{self, Target};
use crate::environment::{Environment, STATUS_CREATING, STATUS_RUNTIME_REQUESTED};
use crate::item::get_s;
use crate::lease::{self, Contended, Lease, Stop};
use crate::outcome::{Failure, FailureKind, Outcome, failed};
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

pub fn handle<C: Capabilities>(caps: &mut C, message: &Message) -> Result<Outcome, Failure> {
    #[cfg(feature = "fail-on-marker")]
    if message.body.contains(FAIL_MARKER) {
        return Err(Failure::permanent(
            "this build fails every request naming the test marker (feature fail-on-marker)",
        ));
    }
    let request = match request::parse(&message.body) {
        Ok(Parsed::Create(request)) => *request,
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

    // The secrets that apply, read before anything is written (decrypted
    // later): an item that breaks the rules is skipped and noted on the
    // record, not fatal for every request of the app. Not even read for code
    // the app does not trust with them.
    let chosen = if env.secrets_withheld.is_empty() {
        secrets::choose(caps, &app.id, env.environment_type, &env.id)?
    } else {
        secrets::Chosen::default()
    };
    env.secrets_skipped = chosen.skipped.clone();

    // 2. The environment's record and lease, in one read. A request older
    // than the one the record holds has nothing to do.
    let (record, seen) = lease::read(caps, &env.id)?;
    let held_version = record
        .as_ref()
        .and_then(|item| get_s(item, "requestVersion"));
    if let Some(held) = held_version.filter(|held| *held > env.request_version.as_str()) {
        return Ok(Outcome::Skipped(stale_reason(&env, held)));
    }
    // What the record already holds of this very request (a redelivery).
    let recorded = record
        .as_ref()
        .filter(|_| held_version == Some(env.request_version.as_str()))
        .map(Recorded::read)
        .unwrap_or_default();

    // 3. Take the environment; a record not yet at this request is written
    // in the same transaction (three items, conditional on their version).
    let record_writes = (!recorded.exists).then(|| env.writes(STATUS_CREATING, caps.now_ms()));
    let ttl_ms = caps
        .config(lease::TTL_KEY)
        .and_then(|ttl| ttl.parse().ok())
        .unwrap_or(lease::DEFAULT_TTL_MS);
    let taken = lease::take(
        caps,
        &env.id,
        &env.request_version,
        &message.delivery_token,
        ttl_ms,
        seen,
        record_writes,
    )?;
    let mut lease = match taken {
        Ok(lease) => lease,
        Err(Contended::Stale { newer }) => return Ok(Outcome::Skipped(stale_reason(&env, &newer))),
        Err(Contended::Wait { until_ms, reason }) => {
            return Ok(Outcome::Deferred { until_ms, reason });
        }
    };

    let ended = match provision(
        caps,
        &request,
        &app,
        &env,
        &mut lease,
        recorded,
        chosen.secrets,
    ) {
        Ok(outcome) => Ok(outcome),
        Err(Halt::Stop(stop)) => stopped(&env, stop),
        Err(Halt::Fail(failure)) => {
            if failure.kind == FailureKind::Permanent {
                mark_failed(caps, &request, &app, &env, &mut lease, &failure);
            }
            Err(failure)
        }
    };
    // Whatever the outcome, the next delivery need not wait for the lease
    // to expire.
    if let Err(not_released) = lease.release(caps) {
        caps.log(
            LogLevel::Warn,
            "lease",
            &format!(
                "lease not released (it expires by itself): {}",
                not_released.reason
            ),
        );
    }
    ended
}

/// What the record holds of the request being handled.
#[derive(Default)]
struct Recorded {
    /// The record is at this request.
    exists: bool,
    /// The runtime was requested and recorded.
    runtime: Option<RuntimeCreated>,
}

impl Recorded {
    fn read(item: &crate::capabilities::Item) -> Self {
        let runtime = (get_s(item, "status") == Some(STATUS_RUNTIME_REQUESTED))
            .then(|| get_s(item, "runtimeId"))
            .flatten()
            .map(|id| RuntimeCreated {
                runtime_id: id.to_string(),
                url: get_s(item, "url").map(str::to_string),
            });
        Self {
            exists: true,
            runtime,
        }
    }
}

/// Steps 4 to 10, holding the environment's lease.
fn provision<C: Capabilities>(
    caps: &mut C,
    request: &CreateRequest,
    app: &App,
    env: &Environment,
    lease: &mut Lease,
    recorded: Recorded,
    chosen: Vec<secrets::Stored>,
) -> Result<Outcome, Halt> {
    // 4. The secrets of the environment type, decrypted into sealed handles.
    // Not even read for code the app does not trust with them.
    let trusted = env.secrets_withheld.is_empty();
    let secrets = if trusted {
        secrets::decrypt(caps, &app.id, chosen)?
    } else {
        caps.log(
            LogLevel::Info,
            "secrets",
            &format!(
                "environment {} gets no secrets and no token: {}",
                env.id,
                trust::codes(&env.secrets_withheld)
            ),
        );
        Vec::new()
    };

    // 5. The pull-request comment, created or updated in place (taking the
    // lease was this effect's fence).
    let known_url = recorded.runtime.as_ref().and_then(|r| r.url.clone());
    let shown_url = preview_url(caps, env).or(known_url);
    let mut comment = show_on_pull_request(
        caps,
        request,
        app,
        env,
        lease,
        Status::Deploying,
        shown_url.clone(),
    )?;

    // 6. The GitHub deployment of this commit, found or created; what earlier
    // requests left on GitHub is retired first. Without one (GitHub refused
    // for good) the flow goes on.
    let github = deployment_target(request, env);
    let deployment = deployment::ensure(caps, &github, lease)?;

    // 7. The runtime, unless this request's runtime is on the record already
    // (a redelivery): an installation token scoped to the repository (it can
    // reach the code, so untrusted code gets none), then the Runtime Service
    // creates (or finds, by key) the runtime, fenced by the request version.
    let created = match recorded.runtime {
        Some(created) => created,
        None => {
            let token = if trusted {
                let token = caps
                    .github_create_installation_token(request.installation_id, &request.repository)
                    .map_err(failed("create an installation token for the runtime"))?;
                Some(token)
            } else {
                None
            };
            lease.fence(caps)?;
            let created = caps
                .runtime_create(&RuntimeRequest {
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
                })
                .map_err(failed("create the runtime"))?;
            record_runtime(caps, env, lease, &created)?;
            created
        }
    };

    // 8. Analytics, once there is a runtime: never fails the flow.
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

    // 9. Without a configured preview URL the comment links the runtime's,
    // once the runtime is asked for (a redelivery shows it from the start).
    let best_url = preview_url(caps, env).or_else(|| created.url.clone());
    if comment.is_some() && best_url != shown_url {
        comment =
            show_on_pull_request(caps, request, app, env, lease, Status::Deploying, best_url)?;
    }

    // 10. The deployment is in progress, at the runtime's URL (else the
    // comment's): GitHub's "View deployment". A status already saying the
    // same is not repeated. (Recording the runtime renewed the lease: the
    // fence of steps 8 to 10.)
    if let Some(ensured) = deployment {
        let url = created.url.clone().or_else(|| preview_url(caps, env));
        let status = deployment::in_progress(&created.runtime_id, url, comment.map(|c| c.html_url));
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
    if !trusted {
        let reasons = trust::codes(&env.secrets_withheld);
        done.push_str(&format!(" without secrets ({reasons})"));
    }
    Ok(Outcome::Done(done))
}

/// Record the runtime on all three items, in one transaction with the
/// lease's renewal: only while this delivery holds the environment.
fn record_runtime<C: Capabilities>(
    caps: &mut C,
    env: &Environment,
    lease: &mut Lease,
    created: &RuntimeCreated,
) -> Result<(), Halt> {
    let now = caps.now_ms();
    let mut writes = env.runtime_requested(&created.runtime_id, created.url.as_deref(), now);
    let (renewal, rev) = lease.renewal(now);
    let lease_index = writes.len() as u32;
    writes.push(renewal);
    match caps.db_transact_write(&writes) {
        Ok(()) => {
            lease.committed(rev);
            Ok(())
        }
        Err(WriteError::ConditionFailed(failed)) if failed.contains(&lease_index) => {
            Err(Halt::Stop(lease.why_lost(caps)?))
        }
        Err(WriteError::ConditionFailed(_)) => {
            // The record moved on without the lease (a logic version that
            // does not take it, during an upgrade).
            let (record, _) = lease::read(caps, &env.id)?;
            let newer = record
                .as_ref()
                .and_then(|r| get_s(r, "requestVersion"))
                .unwrap_or("(unknown)")
                .to_string();
            Err(Halt::Stop(Stop::Stale { newer }))
        }
        Err(WriteError::Failed(error)) => {
            Err(Failure::at("record the runtime on the environment", &error).into())
        }
    }
}

/// After a permanent failure: say why on the record, for people and the UI,
/// and show it on the pull request and the deployment. Best effort: the
/// failure itself goes to the dead-letter queue whatever happens here.
fn mark_failed<C: Capabilities>(
    caps: &mut C,
    request: &CreateRequest,
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
    let comment = match show_on_pull_request(caps, request, app, env, lease, Status::Failed, None) {
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
    let github = deployment_target(request, env);
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

/// How a holder that had to stop ends.
fn stopped(env: &Environment, stop: Stop) -> Result<Outcome, Failure> {
    match stop {
        Stop::Stale { newer } => Ok(Outcome::Skipped(stale_reason(env, &newer))),
        Stop::Lost { until_ms, reason } => Ok(Outcome::Deferred { until_ms, reason }),
        Stop::Failed(failure) => Err(failure),
    }
}

/// Create or update the pull-request comment, when the request has a pull
/// request; returns it.
fn show_on_pull_request<C: Capabilities>(
    caps: &mut C,
    request: &CreateRequest,
    app: &App,
    env: &Environment,
    lease: &mut Lease,
    status: Status,
    url: Option<String>,
) -> Result<Option<Shown>, Halt> {
    let Some(pull_request) = &request.pull_request else {
        return Ok(None);
    };
    let logic_version = caps.config(LOGIC_VERSION);
    let body = comment::render(&comment::View {
        environment: env,
        app_name: &app.name,
        status,
        url: url.as_deref(),
        updated_at_ms: env.requested_at_ms,
        logic_version: logic_version.as_deref(),
    });
    let shown = comment::upsert(
        caps,
        request.installation_id,
        &request.repository,
        pull_request.number,
        &app.id,
        &body,
        &mut lease.github,
    )?;
    Ok(Some(shown))
}

/// The configured preview URL of the environment, if any.
fn preview_url<C: Capabilities>(caps: &mut C, env: &Environment) -> Option<String> {
    caps.config(PREVIEW_URL_TEMPLATE)
        .map(|template| template.replace("{environment}", &env.id))
}

/// Where the request's GitHub deployments go.
fn deployment_target<'a>(request: &'a CreateRequest, env: &'a Environment) -> Target<'a> {
    Target {
        installation_id: request.installation_id,
        repo: &request.repository,
        environment: env,
    }
}

/// Why the request does not apply: a newer one holds the environment.
fn stale_reason(env: &Environment, newer: &str) -> String {
    format!(
        "stale request: environment {} already holds request {}, newer than {}",
        env.id, newer, env.request_version
    )
}
