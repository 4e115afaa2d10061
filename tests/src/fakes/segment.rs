//! A fake Segment HTTP Tracking API (`/v1/batch`) that judges requests as
//! Segment does: Basic auth with the write key as user, a JSON body with a
//! `batch` array, at most 500 KB a request and 32 KB an event (400
//! otherwise). Segment answers 200 to every other request but drops events
//! it cannot accept; the fake records those apart ([`FakeSegment::dropped`]):
//! an unknown `type`, neither `userId` nor `anonymousId`, a `track` without
//! `event`, no `messageId` (envmgr promises one, so Segment can drop
//! repeats). A `messageId` seen before is dropped as a duplicate.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::http::{Credential, authorization, declares_json};

pub const WRITE_KEY: &str = "segment-test-write-key";
/// Segment's limit per batch request.
pub const BATCH_LIMIT: usize = 500 * 1024;
/// Segment's limit per event.
pub const EVENT_LIMIT: usize = 32 * 1024;
const TYPES: [&str; 6] = ["identify", "track", "page", "screen", "group", "alias"];

#[derive(Default)]
struct Inner {
    events: Vec<Value>,
    /// (event, why) of every event Segment would not accept.
    dropped: Vec<(Value, String)>,
    /// Requests refused (400, 401), with why.
    refused: Vec<String>,
    message_ids: BTreeSet<String>,
    requests: usize,
}

#[derive(Clone, Default)]
pub struct FakeSegment {
    inner: Arc<Mutex<Inner>>,
    down: Arc<AtomicBool>,
    /// Answer batches 400 quoting the request back (auth header included).
    echo: Arc<Mutex<Option<super::Echo>>>,
}

impl FakeSegment {
    pub fn start() -> (Self, String) {
        let fake = Self::default();
        let router = Router::new()
            .route("/v1/batch", post(batch))
            .with_state(fake.clone());
        let address = super::serve(router);
        (fake, format!("http://{address}"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answer every batch with 500 until told otherwise.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Answer every batch 400 with the request quoted back, until `None`.
    pub fn echo(&self, how: Option<super::Echo>) {
        *self.echo.lock().unwrap_or_else(|p| p.into_inner()) = how;
    }

    /// Every event accepted, in order.
    pub fn events(&self) -> Vec<Value> {
        self.lock().events.clone()
    }

    /// Events Segment would have dropped, with why.
    pub fn dropped(&self) -> Vec<(Value, String)> {
        self.lock().dropped.clone()
    }

    /// Requests refused, with why.
    pub fn refused(&self) -> Vec<String> {
        self.lock().refused.clone()
    }

    /// Batch requests answered 200.
    pub fn requests(&self) -> usize {
        self.lock().requests
    }
}

/// Why Segment would not accept `event`, if it would not.
fn unacceptable(event: &Value) -> Option<String> {
    let kind = event["type"].as_str().unwrap_or("");
    if !TYPES.contains(&kind) {
        return Some(format!("`type` `{kind}` is not one of {TYPES:?}"));
    }
    let identified = ["userId", "anonymousId"]
        .iter()
        .any(|k| event[*k].as_str().is_some_and(|v| !v.is_empty()));
    if !identified {
        return Some("neither `userId` nor `anonymousId`".into());
    }
    if kind == "track" && event["event"].as_str().is_none_or(str::is_empty) {
        return Some("a track call without `event`".into());
    }
    if event["messageId"].as_str().is_none_or(str::is_empty) {
        return Some("no `messageId`".into());
    }
    if event.get("properties").is_some_and(|p| !p.is_object()) {
        return Some("`properties` is not an object".into());
    }
    None
}

async fn batch(
    State(fake): State<FakeSegment>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, Json<Value>) {
    if fake.down.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({})));
    }
    let echo = *fake.echo.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(how) = echo {
        let authorization = authorization(&headers).unwrap_or("");
        let request = format!(
            "Authorization: {authorization}\n{}",
            String::from_utf8_lossy(&body)
        );
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({ "success": false, "message": format!("bad batch: {}", how.encode(&request)) }),
            ),
        );
    }
    let refuse = |status: StatusCode, why: String| {
        fake.lock().refused.push(why.clone());
        (status, Json(json!({ "success": false, "message": why })))
    };
    let user = match Credential::of(&headers) {
        Some(Credential::Basic { user, .. }) => Some(user),
        _ => None,
    };
    if user.as_deref() != Some(WRITE_KEY) {
        return refuse(StatusCode::UNAUTHORIZED, "invalid write key".into());
    }
    if body.len() > BATCH_LIMIT {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("the batch has {} bytes, more than 500 KB", body.len()),
        );
    }
    let json_content = declares_json(&headers);
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let Some(events) = parsed
        .as_ref()
        .filter(|_| json_content)
        .and_then(|b| b.get("batch"))
        .and_then(Value::as_array)
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "not a JSON object with a `batch` array".into(),
        );
    };
    if let Some(large) = events.iter().find(|e| e.to_string().len() > EVENT_LIMIT) {
        let size = large.to_string().len();
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("an event has {size} bytes, more than 32 KB"),
        );
    }
    let mut inner = fake.lock();
    inner.requests += 1;
    for event in events {
        if let Some(why) = unacceptable(event) {
            inner.dropped.push((event.clone(), why));
            continue;
        }
        let id = event["messageId"].as_str().unwrap_or_default().to_string();
        if !inner.message_ids.insert(id.clone()) {
            inner
                .dropped
                .push((event.clone(), format!("duplicate messageId {id}")));
            continue;
        }
        inner.events.push(event.clone());
    }
    (StatusCode::OK, Json(json!({ "success": true })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(url: &str, body: String) -> u16 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            reqwest::Client::new()
                .post(format!("{url}/v1/batch"))
                .basic_auth(WRITE_KEY, Some(""))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    }

    fn track(message_id: &str) -> Value {
        json!({ "type": "track", "event": "e", "userId": "u", "messageId": message_id, "properties": {} })
    }

    #[test]
    fn segment_accepts_what_its_documentation_accepts() {
        let (fake, url) = FakeSegment::start();
        let batch = |events: Vec<Value>| json!({ "batch": events }).to_string();
        assert_eq!(post(&url, batch(vec![track("1"), track("1")])), 200);
        assert_eq!(fake.events().len(), 1, "the repeat is dropped");
        let mut anonymous = track("2");
        anonymous.as_object_mut().unwrap().remove("userId");
        let mut nameless = track("3");
        nameless["event"] = "".into();
        let mut untyped = track("4");
        untyped["type"] = "log".into();
        let mut unkeyed = track("5");
        unkeyed.as_object_mut().unwrap().remove("messageId");
        assert_eq!(
            post(&url, batch(vec![anonymous, nameless, untyped, unkeyed])),
            200
        );
        let why: Vec<String> = fake.dropped().into_iter().map(|(_, why)| why).collect();
        assert_eq!(why.len(), 5, "{why:?}");
        assert!(why[1].contains("userId") && why[2].contains("event") && why[3].contains("type"));

        let mut big = track("6");
        big["properties"]["x"] = "x".repeat(EVENT_LIMIT).into();
        assert_eq!(post(&url, batch(vec![big])), 400);
        let many: Vec<Value> = (0..40)
            .map(|i| {
                let mut e = track(&format!("m{i}"));
                e["properties"]["x"] = "x".repeat(15_000).into();
                e
            })
            .collect();
        assert_eq!(post(&url, batch(many)), 400, "more than 500 KB");
        assert_eq!(post(&url, "[]".into()), 400);
        assert_eq!(fake.refused().len(), 3);
    }
}
