//! The create-environment flow, top to bottom.
//!
//! Every step is idempotent, so the host can deliver a message again at any
//! point: the environment id is stable per (app, branch), the record is
//! written under a version condition, the comment is found by its marker, the
//! GitHub deployment by its task and payload, and the runtime call and
//! analytics event carry a key derived from the request.

use crate::apps::{self, App};
use crate::capabilities::{
    Capabilities, Comment, LogLevel, RuntimeRequest, TrackEvent, WriteError,
};
use crate::comment::{self, Status};
use crate::deployment::{self, Target};
use crate::environment::{self, Environment, STATUS_CREATING};
use crate::item::get_s;
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

    // 2. Write the environment: three items in one conditional transaction.
    // A redelivery of the request the record already holds writes nothing,
    // so what later steps recorded (runtime, url) stays.
    let mut env = Environment::new(&app, &request, withheld);
    env.logic_version = caps.config(LOGIC_VERSION);
    let now = caps.now_ms();
    let held = caps
        .db_get(environment::TABLE, &environment::primary_key(&env.id))
        .map_err(failed("read the environment"))?;
    let held_version = held.as_ref().and_then(|item| get_s(item, "requestVersion"));
    if held_version.is_some_and(|v| v > env.request_version.as_str()) {
        return Ok(Outcome::Skipped(stale_reason(&env, held_version)));
    }
    if held_version != Some(env.request_version.as_str()) {
        match caps.db_transact_write(&env.writes(STATUS_CREATING, now)) {
            Ok(()) => {}
            Err(WriteError::ConditionFailed(_)) => {
                // A newer request got there between the read and the write.
                let current = caps
                    .db_get(environment::TABLE, &environment::primary_key(&env.id))
                    .map_err(failed("read the environment after a refused write"))?;
                let version = current.as_ref().and_then(|i| get_s(i, "requestVersion"));
                return Ok(Outcome::Skipped(stale_reason(&env, version)));
            }
            Err(WriteError::Failed(error)) => {
                return Err(Failure::at("write the environment", &error));
            }
        }
    }

    // On a redelivery the record knows the runtime's URL already.
    let known_url = held
        .as_ref()
        .filter(|_| held_version == Some(env.request_version.as_str()))
        .and_then(|item| get_s(item, "url"))
        .map(str::to_string);
    let provisioned = provision(caps, &request, &app, &env, now, known_url);
    if let Err(failure) = &provisioned
        && failure.kind == FailureKind::Permanent
    {
        // Retrying cannot help: say why on the record, for people and the UI,
        // and show it on the pull request.
        let at = caps.now_ms();
        match caps.db_transact_write(&env.failed(&failure.reason, at)) {
            Ok(()) => {
                let comment = match show_on_pull_request(
                    caps,
                    &request,
                    &app,
                    &env,
                    Status::Failed,
                    at,
                    None,
                ) {
                    Ok(comment) => comment,
                    Err(not_shown) => {
                        caps.log(
                            LogLevel::Warn,
                            "comment",
                            &format!(
                                "could not show the failure on the pull request: {}",
                                not_shown.reason
                            ),
                        );
                        None
                    }
                };
                let log_url = comment.map(|c| c.html_url);
                if let Err(not_shown) = show_failure_on_deployment(caps, &request, &env, log_url) {
                    caps.log(
                        LogLevel::Warn,
                        "deployment",
                        &format!(
                            "could not show the failure on the GitHub deployment: {}",
                            not_shown.reason
                        ),
                    );
                }
            }
            // A newer request owns the environment, and its comment.
            Err(WriteError::ConditionFailed(_)) => caps.log(
                LogLevel::Info,
                "environment",
                &format!(
                    "environment {} moved on to a newer request; not marked failed",
                    env.id
                ),
            ),
            Err(WriteError::Failed(error)) => caps.log(
                LogLevel::Warn,
                "environment",
                &format!("could not mark environment {} failed: {error}", env.id),
            ),
        }
    }
    provisioned
}

/// Steps 3 to 10, once the environment record is written.
fn provision<C: Capabilities>(
    caps: &mut C,
    request: &CreateRequest,
    app: &App,
    env: &Environment,
    now: u64,
    known_url: Option<String>,
) -> Result<Outcome, Failure> {
    // 3. The secrets of the environment type, decrypted into sealed handles.
    // Not even read for code the app does not trust with them.
    let trusted = env.secrets_withheld.is_empty();
    let secrets = if trusted {
        secrets::load(caps, &app.id, env.environment_type, &env.id)?
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

    // 5. The pull-request comment, created or updated in place.
    let shown_url = preview_url(caps, env).or(known_url);
    let mut comment = show_on_pull_request(
        caps,
        request,
        app,
        env,
        Status::Deploying,
        now,
        shown_url.clone(),
    )?;

    // 6. The GitHub deployment of this commit to the environment, found or
    // created. Without one (GitHub refused for good) the flow goes on.
    let github = deployment_target(request, env);
    let deployment = deployment::ensure(caps, &github)?;

    // 7. An installation token for the runtime, scoped to the repository.
    // It can push there, so untrusted code gets none either.
    let token = if trusted {
        let token = caps
            .github_create_installation_token(request.installation_id, &request.repository)
            .map_err(failed("create an installation token for the runtime"))?;
        Some(token)
    } else {
        None
    };

    // 8. Analytics: never fails the flow.
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

    // 9. The Runtime Service creates (or finds, by key) the runtime.
    let created = caps
        .runtime_create(&RuntimeRequest {
            idempotency_key: env.idempotency_key(),
            app_id: env.app_id.clone(),
            environment_id: env.id.clone(),
            environment_type: env.environment_type.as_str().to_string(),
            repository: env.repository.clone(),
            branch: env.branch.clone(),
            sha: env.sha.clone(),
            entrypoint: env.entrypoint.clone(),
            installation_token: token.as_ref(),
            secrets: secrets
                .iter()
                .map(|(name, value)| (name.clone(), value))
                .collect(),
        })
        .map_err(failed("create the runtime"))?;

    let finished = caps.now_ms();
    let writes = env.runtime_requested(&created.runtime_id, created.url.as_deref(), finished);
    match caps.db_transact_write(&writes) {
        Ok(()) => {}
        Err(WriteError::ConditionFailed(_)) => caps.log(
            LogLevel::Info,
            "environment",
            &format!(
                "environment {} moved on to a newer request while this one ran",
                env.id
            ),
        ),
        Err(WriteError::Failed(error)) => {
            return Err(Failure::at("record the runtime on the environment", &error));
        }
    }

    // Without a configured preview URL the comment links the runtime's,
    // once the runtime is asked for (a redelivery shows it from the start).
    let best_url = preview_url(caps, env).or_else(|| created.url.clone());
    if comment.is_some() && best_url != shown_url {
        comment = show_on_pull_request(caps, request, app, env, Status::Deploying, now, best_url)?;
    }

    // 10. The deployment is in progress, at the runtime's URL (else the
    // comment's): GitHub's "View deployment". A redelivery finds it so and
    // adds nothing.
    if let Some(deployment_id) = deployment {
        let url = created.url.clone().or_else(|| preview_url(caps, env));
        let status = deployment::in_progress(&created.runtime_id, url, comment.map(|c| c.html_url));
        deployment::report(caps, &github, deployment_id, &status)?;
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

/// Create or update the pull-request comment, when the request has a pull
/// request; returns it.
fn show_on_pull_request<C: Capabilities>(
    caps: &mut C,
    request: &CreateRequest,
    app: &App,
    env: &Environment,
    status: Status,
    at: u64,
    url: Option<String>,
) -> Result<Option<Comment>, Failure> {
    let Some(pull_request) = &request.pull_request else {
        return Ok(None);
    };
    let logic_version = caps.config(LOGIC_VERSION);
    let body = comment::render(&comment::View {
        environment: env,
        app_name: &app.name,
        status,
        url: url.as_deref(),
        updated_at_ms: at,
        logic_version: logic_version.as_deref(),
    });
    let comment = comment::upsert(
        caps,
        request.installation_id,
        &request.repository,
        pull_request.number,
        &app.id,
        &body,
    )?;
    Ok(Some(comment))
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

/// Mark the commit's GitHub deployment failed (made now if the failure came
/// before it was), linking to the comment when there is one.
fn show_failure_on_deployment<C: Capabilities>(
    caps: &mut C,
    request: &CreateRequest,
    env: &Environment,
    log_url: Option<String>,
) -> Result<(), Failure> {
    let github = deployment_target(request, env);
    if let Some(deployment_id) = deployment::ensure(caps, &github)? {
        deployment::report(
            caps,
            &github,
            deployment_id,
            &deployment::failure(env, log_url),
        )?;
    }
    Ok(())
}

/// Why the request does not apply: a newer one holds the environment.
fn stale_reason(env: &Environment, held: Option<&str>) -> String {
    format!(
        "stale request: environment {} already holds request {}, newer than {}",
        env.id,
        held.unwrap_or("(unknown)"),
        env.request_version
    )
}
