//! The create-environment flow, top to bottom.
//!
//! Every step is idempotent, so the host can deliver a message again at any
//! point: the environment id is stable per (app, branch), the record is
//! written under a version condition, the comment is found by its marker, and
//! the runtime call and analytics event carry a key derived from the request.

use crate::apps::{self, App};
use crate::capabilities::{Capabilities, LogLevel, RuntimeRequest, TrackEvent, WriteError};
use crate::comment;
use crate::environment::{self, Environment, STATUS_CREATING};
use crate::item::get_s;
use crate::outcome::{Failure, FailureKind, Outcome, failed};
use crate::request::{self, BadInput, CreateRequest, Parsed};
use crate::secrets;

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

pub fn handle<C: Capabilities>(caps: &mut C, message: &Message) -> Result<Outcome, Failure> {
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

    // 2. Write the environment: three items in one conditional transaction.
    // A redelivery of the request the record already holds writes nothing,
    // so what later steps recorded (runtime, url) stays.
    let env = Environment::new(&app, &request);
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

    let provisioned = provision(caps, &request, &app, &env, now);
    if let Err(failure) = &provisioned
        && failure.kind == FailureKind::Permanent
    {
        // Retrying cannot help: say why on the record, for people and the UI.
        let at = caps.now_ms();
        if let Err(error) = caps.db_transact_write(&env.failed(&failure.reason, at)) {
            caps.log(
                LogLevel::Warn,
                "environment",
                &format!("could not mark environment {} failed: {error:?}", env.id),
            );
        }
    }
    provisioned
}

/// Steps 3 to 8, once the environment record is written.
fn provision<C: Capabilities>(
    caps: &mut C,
    request: &CreateRequest,
    app: &App,
    env: &Environment,
    now: u64,
) -> Result<Outcome, Failure> {
    // 3. The secrets of the environment type, decrypted into sealed handles.
    let secrets = secrets::load(caps, &app.id, env.environment_type, &env.id)?;

    // 5. The pull-request comment, created or updated in place.
    let url = caps
        .config(PREVIEW_URL_TEMPLATE)
        .map(|template| template.replace("{environment}", &env.id));
    if let Some(pull_request) = &request.pull_request {
        let body = comment::render(&comment::View {
            environment: env,
            app_name: &app.name,
            status: "🔄 Deploying",
            url: url.as_deref(),
            updated_at_ms: now,
        });
        comment::upsert(
            caps,
            request.installation_id,
            &request.repository,
            pull_request.number,
            &app.id,
            &body,
        )?;
    }

    // 6. An installation token for the runtime, scoped to the repository.
    let token = caps
        .github_create_installation_token(request.installation_id, &request.repository)
        .map_err(failed("create an installation token for the runtime"))?;

    // 7. Analytics: never fails the flow.
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

    // 8. The Runtime Service creates (or finds, by key) the runtime.
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
            installation_token: Some(&token),
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

    Ok(Outcome::Done(format!(
        "environment {} ({} {}) at {}: runtime {}",
        env.id,
        env.environment_type.as_str(),
        env.branch,
        env.sha,
        created.runtime_id
    )))
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
