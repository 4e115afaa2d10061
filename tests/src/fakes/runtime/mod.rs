//! A fake Runtime Service that keeps the contract in docs/runtime-service.md:
//! the bearer token, an `Idempotency-Key`, a body valid against
//! docs/runtime-service/create-runtime.schema.json (the same file the docs
//! point at), one runtime per key, and a key reused with a different
//! request refused with 422 (the fingerprint leaves out the token and the
//! secret values, and keeps the signing key). Every request is recorded (only this fake sees plaintext
//! secrets); failures, throttling, conflicts and delays on command.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::http::{Credential, authorization, declares_json};

pub const TOKEN: &str = "runtime-test-token";

/// The request schemas of the contract, as the docs publish them.
const SCHEMA: &str = include_str!("../../../../docs/runtime-service/create-runtime.schema.json");
const DELETE_SCHEMA: &str =
    include_str!("../../../../docs/runtime-service/delete-runtime.schema.json");

fn compiled(schema: &str) -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(schema).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| compiled(SCHEMA))
}

fn delete_validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| compiled(DELETE_SCHEMA))
}

/// Where the service refuses a request: the schema's errors, joined.
fn contract_errors(validator: &jsonschema::Validator, body: &Value) -> Option<String> {
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at `{}`", e, e.instance_path()))
        .collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

/// What the next request is answered with instead of a runtime.
#[derive(Clone, Debug)]
enum Scripted {
    /// 503.
    Unavailable,
    /// A 4xx with this reason.
    Reject(u16, String),
    /// 429 with `Retry-After`.
    Throttle(u64),
    /// The whole request (headers and body) quoted back, with this status:
    /// a 2xx puts it in the runtime's URL and id.
    Echo(u16, super::Echo),
    /// One member of the body (a JSON pointer) quoted alone, raw.
    EchoMember(u16, String),
}

#[derive(Default)]
struct Inner {
    requests: Vec<(String, Value)>,
    /// The `traceparent` header of each create request, in order.
    traceparents: Vec<Option<String>>,
    /// When each create request arrived, in order.
    arrivals: Vec<std::time::Instant>,
    /// Key → (fingerprint, runtime id).
    runtimes: BTreeMap<String, (Value, String)>,
    scripted: Vec<Scripted>,
    /// Requests refused for breaking the contract, with why.
    refused: Vec<String>,
    /// Per environment, the newest request version accepted (the fence).
    newest: BTreeMap<String, String>,
    /// (environment, request version) of every create accepted, in order.
    accepted: Vec<(String, String)>,
    /// (environment, request version, newest) of every create refused as
    /// older than the newest accepted.
    superseded: Vec<(String, String, String)>,
    /// Deletes by key: (body, the runtime ids each removed).
    deletions: BTreeMap<String, (Value, Vec<String>)>,
    /// Runtime ids removed by a delete.
    deleted: std::collections::BTreeSet<String>,
    /// The delete route answers this status instead (a service without
    /// the call: 404, 405, 501).
    deletes_offered: Option<u16>,
    /// Deletes answered as done, their runtimes kept running.
    losing_deletes: bool,
    /// Hold every request this long before answering.
    delay: Duration,
    /// The host's token revoked: every call answered 401.
    token_revoked: bool,
    /// The tokens taken; none set: [`TOKEN`] alone.
    tokens: Option<Vec<String>>,
    /// Health calls answered.
    health_checks: u64,
    /// Every health call answered with this status instead (a service
    /// whose framework lacks the route, e.g. 501).
    health_status: Option<u16>,
    /// How this service reports on the runtimes it creates, if it does.
    reporting: Option<Reporting>,
    /// Creates past the schema check and not yet answered, and the most
    /// there ever were at once.
    in_flight: u32,
    most_in_flight: u32,
}

/// Puts a status report's body on the `api` queue (docs/messages.md).
/// Sends a report's body, with the `traceparent` the create came with (a
/// service returns it as a message attribute, `docs/runtime-service.md`).
pub type ReportSender = Arc<dyn Fn(String, Option<String>) + Send + Sync>;

#[derive(Clone)]
struct Reporting {
    after: Duration,
    state: String,
    send: ReportSender,
}

#[derive(Clone)]
pub struct FakeRuntime {
    inner: Arc<Mutex<Inner>>,
    /// True while creates are held: each waits, unanswered, until released.
    held: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            held: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }
}

impl FakeRuntime {
    pub fn start() -> (Self, String) {
        let fake = Self::default();
        let router = Router::new()
            .route("/v1/runtimes", post(create).get(deletions::list))
            .route("/v1/runtime-deletions", post(deletions::delete))
            .route("/v1/health", get(health))
            .with_state(fake.clone());
        let address = super::serve(router);
        (fake, format!("http://{address}"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answer the next `times` requests with 503.
    pub fn fail_next(&self, times: u32) {
        let mut inner = self.lock();
        inner
            .scripted
            .extend(std::iter::repeat_n(Scripted::Unavailable, times as usize));
    }

    /// Refuse the next request as the service would refuse a bad one.
    pub fn reject_next(&self, status: u16, reason: &str) {
        self.lock()
            .scripted
            .push(Scripted::Reject(status, reason.to_string()));
    }

    /// Quote the next request back (headers and body, secrets and token
    /// included) in an answer with `status`.
    pub fn echo_next(&self, status: u16, how: super::Echo) {
        self.lock().scripted.push(Scripted::Echo(status, how));
    }

    /// Quote one member of the next request's body (a JSON pointer, e.g.
    /// `/signingKey/d`) alone in an answer with `status`, as a validation
    /// error names the value it refused.
    pub fn echo_member_next(&self, status: u16, pointer: &str) {
        self.lock()
            .scripted
            .push(Scripted::EchoMember(status, pointer.to_string()));
    }

    /// Answer the next request 429 with `Retry-After: seconds`.
    pub fn throttle_next(&self, seconds: u64) {
        self.lock().scripted.push(Scripted::Throttle(seconds));
    }

    /// The tokens the service takes (a rotation: the new one added, the
    /// hosts moved to it, the old one dropped).
    pub fn set_tokens(&self, tokens: &[&str]) {
        self.lock().tokens = Some(tokens.iter().map(|t| t.to_string()).collect());
    }

    /// Revoke (true) or restore (false) the host's token: while revoked,
    /// every call is answered 401.
    pub fn revoke_token(&self, revoked: bool) {
        self.lock().token_revoked = revoked;
    }

    /// Report on every runtime created from now on, `after` answering the
    /// create, as a real Runtime Service does: a `state` report (`ready`,
    /// `failed`) signed with the request's signing key, put on the queue
    /// with `send`. A request without a key gets no report.
    pub fn report(&self, after: Duration, state: &str, send: ReportSender) {
        self.lock().reporting = Some(Reporting {
            after,
            state: state.to_string(),
            send,
        });
    }

    /// Answer every health call with `status` (None: as the contract says).
    pub fn health_answers(&self, status: Option<u16>) {
        self.lock().health_status = status;
    }

    /// How many health calls were answered.
    pub fn health_checks(&self) -> u64 {
        self.lock().health_checks
    }

    pub fn delay(&self, by: Duration) {
        self.lock().delay = by;
    }

    /// When each create request arrived (after its headers and body were
    /// checked), in order: the latency benchmark's "runtime requested".
    pub fn arrivals(&self) -> Vec<std::time::Instant> {
        self.lock().arrivals.clone()
    }

    /// Hold every create (recorded, unanswered) until [`release`]: a
    /// caller waits on an event the test controls, not on a duration.
    ///
    /// [`release`]: FakeRuntime::release
    pub fn hold(&self) {
        self.held.send_replace(true);
    }

    /// Answer the held creates and stop holding.
    pub fn release(&self) {
        self.held.send_replace(false);
    }

    /// The most creates the service was working on at once.
    pub fn most_in_flight(&self) -> u32 {
        self.lock().most_in_flight
    }

    /// The `traceparent` header of each create request (None: none sent).
    pub fn traceparents(&self) -> Vec<Option<String>> {
        self.lock().traceparents.clone()
    }

    /// (idempotency key, body) of every request, failed ones included.
    pub fn requests(&self) -> Vec<(String, Value)> {
        self.lock().requests.clone()
    }

    /// Runtimes created, by idempotency key.
    pub fn runtimes(&self) -> BTreeMap<String, String> {
        self.lock()
            .runtimes
            .iter()
            .map(|(key, (_, id))| (key.clone(), id.clone()))
            .collect()
    }

    /// (environment, request version) of every create accepted, in order.
    pub fn accepted(&self) -> Vec<(String, String)> {
        self.lock().accepted.clone()
    }

    /// (environment, request version, newest accepted then) of every create
    /// refused because a newer one was accepted before.
    pub fn superseded(&self) -> Vec<(String, String, String)> {
        self.lock().superseded.clone()
    }

    /// (idempotency key, body, runtime ids removed) of every delete
    /// accepted, by key.
    pub fn deletions(&self) -> Vec<(String, Value, Vec<String>)> {
        self.lock()
            .deletions
            .iter()
            .map(|(key, (body, removed))| (key.clone(), body.clone(), removed.clone()))
            .collect()
    }

    /// The runtimes not deleted, by idempotency key.
    pub fn live(&self) -> BTreeMap<String, String> {
        let inner = self.lock();
        inner
            .runtimes
            .iter()
            .filter(|(_, (_, id))| !inner.deleted.contains(id))
            .map(|(key, (_, id))| (key.clone(), id.clone()))
            .collect()
    }

    /// Answer deletes as done and keep their runtimes running (`true`), as a
    /// service with a bug would; or remove them as the contract says.
    pub fn lose_deletes(&self, losing: bool) {
        self.lock().losing_deletes = losing;
    }

    /// Answer every delete with `status` (a service without the call), or
    /// (None) as the contract says.
    pub fn deletes_answer(&self, status: Option<u16>) {
        self.lock().deletes_offered = status;
    }

    /// Requests refused for breaking the contract (schema, key reuse), with
    /// why: a test asserts there were none.
    pub fn refused(&self) -> Vec<String> {
        self.lock().refused.clone()
    }
}

/// The request without what legitimately changes between deliveries, as
/// docs/runtime-service.md says: the installation token and the secret
/// values. The signing key is part of it: every delivery of one request
/// hands the runtime the key stored with the record.
fn fingerprint(body: &Value) -> Value {
    let mut print = body.clone();
    if let Some(object) = print.as_object_mut() {
        object.remove("installationToken");
        if let Some(secrets) = object.get_mut("secrets").and_then(Value::as_object_mut) {
            for value in secrets.values_mut() {
                *value = Value::Null;
            }
        }
    }
    print
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "message": message }))).into_response()
}

/// Whether the request carries a token the service takes, not revoked.
pub(super) fn authorized(fake: &FakeRuntime, headers: &HeaderMap) -> bool {
    let presented = Credential::of(headers);
    let inner = fake.lock();
    let taken = inner
        .tokens
        .clone()
        .unwrap_or_else(|| vec![TOKEN.to_string()]);
    let bearer = match &presented {
        Some(Credential::Bearer(token)) => Some(token),
        _ => None,
    };
    bearer.is_some_and(|p| taken.iter().any(|t| p == t)) && !inner.token_revoked
}

/// GET /v1/health: 200 when the token is good (docs/runtime-service.md).
async fn health(State(fake): State<FakeRuntime>, headers: HeaderMap) -> Response {
    let status = {
        let mut inner = fake.lock();
        inner.health_checks += 1;
        inner.health_status
    };
    if let Some(status) = status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_IMPLEMENTED);
        return answer(status, "Unsupported method ('GET')");
    }
    if !authorized(&fake, &headers) {
        return answer(StatusCode::UNAUTHORIZED, "bad token");
    }
    (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response()
}

/// Refuse a request that breaks the contract, remembering why.
fn refuse(fake: &FakeRuntime, status: StatusCode, why: String) -> Response {
    fake.lock().refused.push(why.clone());
    answer(status, &why)
}

/// What every call checks first: the token, a JSON body, an
/// `Idempotency-Key`. The key and the body, or the answer refusing them.
fn admitted(
    fake: &FakeRuntime,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, Value), Box<Response>> {
    if !authorized(fake, headers) {
        return Err(Box::new(answer(StatusCode::UNAUTHORIZED, "bad token")));
    }
    if !declares_json(headers) {
        return Err(Box::new(refuse(
            fake,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json".into(),
        )));
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()));
    let Some(key) = key else {
        return Err(Box::new(refuse(
            fake,
            StatusCode::BAD_REQUEST,
            "Idempotency-Key is required (1 to 255 printable characters)".into(),
        )));
    };
    match serde_json::from_slice(body) {
        Ok(body) => Ok((key, body)),
        Err(e) => Err(Box::new(refuse(
            fake,
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        ))),
    }
}

/// What the service answers in place of a create, as a test scripted it.
fn scripted_answer(scripted: Scripted, headers: &HeaderMap, body: &Value) -> Response {
    match scripted {
        Scripted::Unavailable => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "runtime capacity exhausted",
        ),
        Scripted::Reject(status, reason) => answer(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            &reason,
        ),
        Scripted::Echo(status, how) => {
            let authorization = authorization(headers).unwrap_or("");
            // The header and the body each in the service's way
            // (a JSON layout or a Python repr needs the body alone).
            let quoted = format!(
                "{} {}",
                how.encode(&format!("Authorization: {authorization}")),
                how.encode(&body.to_string())
            );
            if (200..300).contains(&status) {
                return (
                    StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED),
                    Json(json!({
                        "runtimeId": format!("rt_{}", how.encode(&body.to_string())),
                        "url": format!("https://echo.runtime.test/?request={quoted}"),
                    })),
                )
                    .into_response();
            }
            answer(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                &format!("invalid request: {quoted}"),
            )
        }
        Scripted::EchoMember(status, pointer) => {
            let member = body.pointer(&pointer).cloned().unwrap_or_default();
            let member = member.as_str().map_or(member.to_string(), str::to_string);
            answer(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                &format!("{pointer}: invalid value '{member}'"),
            )
        }
        Scripted::Throttle(seconds) => {
            let mut response = answer(StatusCode::TOO_MANY_REQUESTS, "slow down");
            response
                .headers_mut()
                .insert("retry-after", seconds.to_string().parse().expect("header"));
            response
        }
    }
}

async fn create(
    State(fake): State<FakeRuntime>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (key, body) = match admitted(&fake, &headers, &body) {
        Ok(admitted) => admitted,
        Err(refused) => return *refused,
    };
    let refuse = |status: StatusCode, why: String| refuse(&fake, status, why);
    let traceparent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let delay = {
        let mut inner = fake.lock();
        inner.requests.push((key.clone(), body.clone()));
        inner.traceparents.push(traceparent.clone());
        inner.arrivals.push(std::time::Instant::now());
        if !inner.scripted.is_empty() {
            let scripted = inner.scripted.remove(0);
            drop(inner);
            return scripted_answer(scripted, &headers, &body);
        }
        inner.delay
    };
    if let Some(errors) = contract_errors(validator(), &body) {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the request does not match the contract: {errors}"),
        );
    }
    {
        let mut inner = fake.lock();
        inner.in_flight += 1;
        inner.most_in_flight = inner.most_in_flight.max(inner.in_flight);
    }
    // Counted out however the request ends (answered, or the caller gone).
    struct Leaving(FakeRuntime);
    impl Drop for Leaving {
        fn drop(&mut self) {
            self.0.lock().in_flight -= 1;
        }
    }
    let _leaving = Leaving(fake.clone());
    tokio::time::sleep(delay).await;
    let _ = fake.held.subscribe().wait_for(|held| !held).await;
    let print = fingerprint(&body);
    let mut inner = fake.lock();
    let environment = body["environmentId"].as_str().unwrap_or("").to_string();
    if let Some(version) = body["requestVersion"].as_str() {
        let newest = inner.newest.get(&environment).cloned().unwrap_or_default();
        if version < newest.as_str() {
            inner
                .superseded
                .push((environment, version.to_string(), newest.clone()));
            drop(inner);
            return answer(
                StatusCode::CONFLICT,
                &format!("superseded: request {newest} was accepted for this environment"),
            );
        }
        inner
            .newest
            .insert(environment.clone(), version.to_string());
        inner.accepted.push((environment, version.to_string()));
    }
    let number = inner.runtimes.len() + 1;
    let (status, id) = match inner.runtimes.get(&key) {
        Some((seen, _)) if *seen != print => {
            drop(inner);
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("Idempotency-Key {key} was used with a different request"),
            );
        }
        Some((_, id)) => (StatusCode::OK, id.clone()),
        None => {
            let id = format!("rt_{number}");
            inner.runtimes.insert(key, (print, id.clone()));
            if let Some(reporting) = inner.reporting.clone() {
                report::send_report(reporting, &body, traceparent.clone());
            }
            (StatusCode::CREATED, id)
        }
    };
    let environment = body["environmentId"].as_str().unwrap_or("env");
    (
        status,
        Json(json!({ "runtimeId": id, "url": format!("https://{environment}.runtime.test") })),
    )
        .into_response()
}

mod deletions;
mod report;
#[cfg(test)]
mod tests;
