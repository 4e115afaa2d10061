//! A fake Runtime Service: one runtime per `Idempotency-Key`, every request
//! recorded (only this fake sees plaintext secrets), and failures or delays
//! on command.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

pub const TOKEN: &str = "runtime-test-token";

#[derive(Default)]
struct Inner {
    requests: Vec<(String, Value)>,
    runtimes: BTreeMap<String, String>,
    /// Answer the next n requests with 503.
    fail_next: u32,
    /// Answer the next request with this 4xx status and reason.
    reject_next: Option<(u16, String)>,
    /// Hold every request this long before answering.
    delay: Duration,
}

#[derive(Clone, Default)]
pub struct FakeRuntime {
    inner: Arc<Mutex<Inner>>,
}

impl FakeRuntime {
    pub fn start() -> (Self, String) {
        let fake = Self::default();
        let router = Router::new()
            .route("/v1/runtimes", post(create))
            .with_state(fake.clone());
        let address = super::serve(router);
        (fake, format!("http://{address}"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn fail_next(&self, times: u32) {
        self.lock().fail_next = times;
    }

    /// Refuse the next request as the service would refuse a bad one.
    pub fn reject_next(&self, status: u16, reason: &str) {
        self.lock().reject_next = Some((status, reason.to_string()));
    }

    pub fn delay(&self, by: Duration) {
        self.lock().delay = by;
    }

    /// (idempotency key, body) of every request, failed ones included.
    pub fn requests(&self) -> Vec<(String, Value)> {
        self.lock().requests.clone()
    }

    /// Runtimes created, by idempotency key.
    pub fn runtimes(&self) -> BTreeMap<String, String> {
        self.lock().runtimes.clone()
    }
}

async fn create(
    State(fake): State<FakeRuntime>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    if !authorized {
        return (StatusCode::UNAUTHORIZED, "bad token").into_response();
    }
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
    else {
        return (StatusCode::BAD_REQUEST, "Idempotency-Key is required").into_response();
    };
    let delay = {
        let mut inner = fake.lock();
        inner.requests.push((key.clone(), body.clone()));
        if let Some((status, reason)) = inner.reject_next.take() {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            return (status, Json(json!({ "message": reason }))).into_response();
        }
        if inner.fail_next > 0 {
            inner.fail_next -= 1;
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "runtime capacity exhausted",
            )
                .into_response();
        }
        inner.delay
    };
    tokio::time::sleep(delay).await;
    let mut inner = fake.lock();
    let number = inner.runtimes.len() + 1;
    let id = inner
        .runtimes
        .entry(key)
        .or_insert_with(|| format!("rt_{number}"))
        .clone();
    let environment = body["environmentId"].as_str().unwrap_or("env");
    (
        StatusCode::CREATED,
        Json(json!({ "runtimeId": id, "url": format!("https://{environment}.runtime.test") })),
    )
        .into_response()
}
