//! The component glue: the WIT export calls the flow, and every capability
//! call goes to its WIT import. Conversions only; no logic lives here.

use crate::bindings;
use bindings::envmgr::environments::{
    analytics, dynamodb as db, github as gh, keys, kms, requests, runtime, sealed, types,
};
use bindings::wasi::config::store as config;
use bindings::wasi::logging::logging;

use crate::capabilities::{
    CapResult, Capabilities, CapabilityError, Comment, Deployment, DeploymentStatus, ErrorCode,
    Item, LogLevel, NewDeployment, NewDeploymentStatus, Page, PullRequest, Query, Repository,
    RuntimeCreated, RuntimeDelete, RuntimeRequest, SigningKey, Started, TrackEvent, Update, Write,
    WriteError,
};
use crate::flow::{self, Message};
use crate::outcome::{FailureKind, Outcome};

struct Component;

impl bindings::Guest for Component {
    fn handle(message: types::Message) -> Result<types::Outcome, types::Failure> {
        let message = Message {
            id: message.id,
            source_queue: message.source_queue,
            body: message.body,
            attributes: message.attributes,
            receive_count: message.receive_count,
            sent_at_ms: message.sent_at_ms,
            delivery_token: message.delivery_token,
            deferrals: message.deferrals,
        };
        match flow::handle(&mut Imports, &message) {
            Ok(Outcome::Done(what)) => Ok(types::Outcome::Done(what)),
            Ok(Outcome::Skipped(why)) => Ok(types::Outcome::Skipped(why)),
            Ok(Outcome::Deferred { until_ms, reason }) => {
                Ok(types::Outcome::Deferred(types::Deferral {
                    until_ms,
                    reason,
                }))
            }
            Err(failure) => Err(types::Failure {
                kind: match failure.kind {
                    FailureKind::Retryable => types::FailureKind::Retryable,
                    FailureKind::Permanent => types::FailureKind::Permanent,
                },
                reason: failure.reason,
                retry_after_ms: failure.retry_after_ms,
            }),
        }
    }
}

bindings::export!(Component with_types_in bindings);

/// The capabilities as the host's WIT imports.
struct Imports;

impl Capabilities for Imports {
    type Sealed = sealed::SealedValue;

    fn now_ms(&mut self) -> u64 {
        // The host's wasi:clocks/wall-clock; deterministic in the mock host.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn config(&mut self, key: &str) -> Option<String> {
        config::get(key).ok().flatten()
    }

    fn log(&mut self, level: LogLevel, step: &str, message: &str) {
        let level = match level {
            LogLevel::Debug => logging::Level::Debug,
            LogLevel::Info => logging::Level::Info,
            LogLevel::Warn => logging::Level::Warn,
            LogLevel::Error => logging::Level::Error,
        };
        logging::log(level, step, message);
    }

    fn github_authenticate(&mut self, installation_id: u64) -> CapResult<()> {
        gh::authenticate(installation_id).map_err(error)
    }

    fn github_list_comments(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        issue_number: u64,
        marker: &str,
    ) -> CapResult<Vec<Comment>> {
        gh::list_comments(installation_id, repo, issue_number, marker).map_err(error)
    }

    fn github_create_comment(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        issue_number: u64,
        body: &str,
    ) -> CapResult<Comment> {
        gh::create_comment(installation_id, repo, issue_number, body).map_err(error)
    }

    fn github_update_comment(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        comment_id: u64,
        body: &str,
    ) -> CapResult<Comment> {
        gh::update_comment(installation_id, repo, comment_id, body).map_err(error)
    }

    fn github_delete_comment(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        comment_id: u64,
    ) -> CapResult<()> {
        gh::delete_comment(installation_id, repo, comment_id).map_err(error)
    }

    fn github_create_installation_token(
        &mut self,
        installation_id: u64,
        repo: &Repository,
    ) -> CapResult<Self::Sealed> {
        gh::create_installation_token(installation_id, repo).map_err(error)
    }

    fn github_find_deployments(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        sha: &str,
        environment: &str,
        task: &str,
    ) -> CapResult<Vec<Deployment>> {
        gh::find_deployments(installation_id, repo, sha, environment, task).map_err(error)
    }

    fn github_create_deployment(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        new: &NewDeployment,
    ) -> CapResult<Deployment> {
        gh::create_deployment(installation_id, repo, new).map_err(error)
    }

    fn github_list_deployment_statuses(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        deployment_id: u64,
    ) -> CapResult<Vec<DeploymentStatus>> {
        gh::list_deployment_statuses(installation_id, repo, deployment_id).map_err(error)
    }

    fn github_create_deployment_status(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        deployment_id: u64,
        status: &NewDeploymentStatus,
    ) -> CapResult<DeploymentStatus> {
        gh::create_deployment_status(installation_id, repo, deployment_id, status).map_err(error)
    }

    fn github_delete_deployment(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        deployment_id: u64,
    ) -> CapResult<()> {
        gh::delete_deployment(installation_id, repo, deployment_id).map_err(error)
    }

    fn github_list_open_pull_requests(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        head: &str,
    ) -> CapResult<Vec<PullRequest>> {
        gh::list_open_pull_requests(installation_id, repo, head).map_err(error)
    }

    fn github_delete_environment(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        name: &str,
    ) -> CapResult<()> {
        gh::delete_environment(installation_id, repo, name).map_err(error)
    }

    fn db_get(&mut self, table: &str, key: &Item) -> CapResult<Option<Item>> {
        db::get(table, key).map_err(error)
    }

    fn db_query(&mut self, query: &Query) -> CapResult<Page> {
        db::query(query).map_err(error)
    }

    fn db_transact_write(&mut self, writes: &[Write]) -> Result<(), WriteError> {
        db::transact_write(writes).map_err(write_error)
    }

    fn db_update(&mut self, update: &Update) -> Result<(), WriteError> {
        db::update(update).map_err(write_error)
    }

    fn kms_decrypt(
        &mut self,
        ciphertext: &[u8],
        context: &[(String, String)],
        label: &str,
    ) -> CapResult<Self::Sealed> {
        kms::decrypt(ciphertext, context, label).map_err(error)
    }

    fn analytics_track(&mut self, event: &TrackEvent) -> CapResult<()> {
        analytics::track(event).map_err(error)
    }

    fn runtime_create(
        &mut self,
        request: &RuntimeRequest<'_, Self::Sealed>,
    ) -> CapResult<RuntimeCreated> {
        runtime::create(&create_request(request)).map_err(error)
    }

    fn runtime_delete(&mut self, request: &RuntimeDelete) -> CapResult<Vec<String>> {
        runtime::delete(request).map_err(error)
    }

    fn requests_send(&mut self, body: &str) -> CapResult<String> {
        requests::send(body).map_err(error)
    }

    fn keys_generate(
        &mut self,
        app_id: &str,
        environment_id: &str,
        request_version: &str,
    ) -> CapResult<SigningKey<Self::Sealed>> {
        keys::generate(app_id, environment_id, request_version)
            .map(|key| SigningKey {
                public_jwk: key.public_jwk,
                private_key: key.private_key,
                ciphertext: key.ciphertext,
            })
            .map_err(error)
    }

    fn keys_verify_report(&mut self, jws: &str, public_jwk: &str) -> CapResult<String> {
        keys::verify_report(jws, public_jwk).map_err(error)
    }

    fn start_github_create_installation_token(
        &mut self,
        installation_id: u64,
        repo: &Repository,
    ) -> Started<CapResult<Self::Sealed>> {
        let future = gh::start_create_installation_token(installation_id, repo);
        Started::later(move || {
            future.subscribe().block();
            answer(future.get()).map_err(error)
        })
    }

    fn start_kms_decrypt(
        &mut self,
        ciphertext: &[u8],
        context: &[(String, String)],
        label: &str,
    ) -> Started<CapResult<Self::Sealed>> {
        let future = kms::start_decrypt(ciphertext, context, label);
        Started::later(move || {
            future.subscribe().block();
            answer(future.get()).map_err(error)
        })
    }

    fn start_db_get(&mut self, table: &str, key: &Item) -> Started<CapResult<Option<Item>>> {
        let future = db::start_get(table, key);
        Started::later(move || {
            future.subscribe().block();
            answer(future.get()).map_err(error)
        })
    }

    fn start_db_query(&mut self, query: &Query) -> Started<CapResult<Page>> {
        let future = db::start_query(query);
        Started::later(move || {
            future.subscribe().block();
            answer(future.get()).map_err(error)
        })
    }

    fn start_db_transact_write(&mut self, writes: &[Write]) -> Started<Result<(), WriteError>> {
        let future = db::start_transact_write(writes);
        Started::later(move || {
            future.subscribe().block();
            answer(future.get()).map_err(write_error)
        })
    }

    fn start_runtime_create(
        &mut self,
        request: &RuntimeRequest<'_, Self::Sealed>,
    ) -> Started<CapResult<RuntimeCreated>> {
        let future = runtime::start_create(&create_request(request));
        Started::later(move || {
            future.subscribe().block();
            answer(future.get()).map_err(error)
        })
    }
}

/// The answer of a started call whose pollable is ready: there, by the
/// contract (`none` would mean the host broke it).
fn answer<T>(ready: Option<T>) -> T {
    ready.expect("a started call's answer is there once its pollable is ready")
}

fn create_request<'a>(
    request: &'a RuntimeRequest<'a, sealed::SealedValue>,
) -> runtime::CreateRequest<'a> {
    runtime::CreateRequest {
        idempotency_key: request.idempotency_key.clone(),
        app_id: request.app_id.clone(),
        environment_id: request.environment_id.clone(),
        environment_type: request.environment_type.clone(),
        repository: request.repository.clone(),
        branch: request.branch.clone(),
        sha: request.sha.clone(),
        request_version: request.request_version.clone(),
        entrypoint: request.entrypoint.clone(),
        installation_token: request.installation_token,
        secrets: request
            .secrets
            .iter()
            .map(|(name, value)| runtime::Secret {
                name: name.clone(),
                value,
            })
            .collect(),
        signing_key: request.signing_key,
    }
}

fn error(e: types::Error) -> CapabilityError {
    CapabilityError {
        code: match e.code {
            types::ErrorCode::NotFound => ErrorCode::NotFound,
            types::ErrorCode::Denied => ErrorCode::Denied,
            types::ErrorCode::Invalid => ErrorCode::Invalid,
            types::ErrorCode::Conflict => ErrorCode::Conflict,
            types::ErrorCode::Throttled => ErrorCode::Throttled,
            types::ErrorCode::Unavailable => ErrorCode::Unavailable,
        },
        message: e.message,
        retry_after_ms: e.retry_after_ms,
    }
}

fn write_error(e: db::WriteError) -> WriteError {
    match e {
        db::WriteError::ConditionFailed(indices) => WriteError::ConditionFailed(indices),
        db::WriteError::Failed(e) => WriteError::Failed(error(e)),
    }
}
