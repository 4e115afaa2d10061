//! A fake Segment: records `/v1/batch` requests made with the write key.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

pub const WRITE_KEY: &str = "segment-test-write-key";

#[derive(Clone, Default)]
pub struct FakeSegment {
    events: Arc<Mutex<Vec<Value>>>,
    down: Arc<std::sync::atomic::AtomicBool>,
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

    /// Answer every batch with 500 until told otherwise.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every event received, in order.
    pub fn events(&self) -> Vec<Value> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

async fn batch(
    State(fake): State<FakeSegment>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    use base64_check::basic_user;
    if fake.down.load(std::sync::atomic::Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    if basic_user(&headers).as_deref() != Some(WRITE_KEY) {
        return StatusCode::UNAUTHORIZED;
    }
    let Some(batch) = body.get("batch").and_then(|b| b.as_array()) else {
        return StatusCode::BAD_REQUEST;
    };
    fake.events
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(batch.iter().cloned());
    StatusCode::OK
}

/// The user of HTTP basic auth, decoded by hand (the fake needs nothing more).
mod base64_check {
    use axum::http::HeaderMap;

    pub fn basic_user(headers: &HeaderMap) -> Option<String> {
        let value = headers.get("authorization")?.to_str().ok()?;
        let encoded = value.strip_prefix("Basic ")?;
        let decoded = decode(encoded)?;
        let text = String::from_utf8(decoded).ok()?;
        Some(text.split(':').next()?.to_string())
    }

    fn decode(text: &str) -> Option<Vec<u8>> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut bits = 0u32;
        let mut count = 0;
        let mut out = Vec::new();
        for byte in text.bytes().filter(|b| *b != b'=') {
            let value = ALPHABET.iter().position(|a| *a == byte)? as u32;
            bits = (bits << 6) | value;
            count += 6;
            if count >= 8 {
                count -= 8;
                out.push((bits >> count) as u8);
                bits &= (1 << count) - 1;
            }
        }
        Some(out)
    }
}
