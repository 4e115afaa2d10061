//! The Runtime Service over HTTP (reqwest): `POST {url}/v1/runtimes` and
//! `POST {url}/v1/runtime-deletions` with a bearer token and the guest's
//! idempotency key as `Idempotency-Key`. 5xx
//! answers and timeouts are retried within the call, then `unavailable`;
//! 4xx answers are permanent with the service's reason (429 and 409 excepted).
//! A 401 or 403 may be the host's token, not the message: it raises a
//! suspicion, and the health probe (`GET {url}/v1/health` with the token)
//! decides.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::{Created, Listed, Runtime, RuntimeDelete, RuntimeRequest};
use crate::capabilities::{CapResult, Error, ErrorCode, error};
use crate::redact::Secret;

pub struct HttpRuntime {
    client: reqwest::Client,
    endpoint: String,
    deletions: String,
    health: String,
    /// Rotates: `use_token` (see `crate::rotation`).
    token: crate::rotation::Current<String>,
    retries: u32,
}

/// Which of the service's calls.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    Create,
    Delete,
}

/// One page of `GET /v1/runtimes`.
#[derive(Deserialize)]
struct ListedPage {
    runtimes: Vec<Listed>,
    /// The cursor of the next page (`after`); none on the last.
    next: Option<String>,
}

#[derive(Deserialize)]
struct DeletedBody {
    deleted: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatedBody {
    runtime_id: String,
    url: Option<String>,
}

impl HttpRuntime {
    pub fn new(url: &str, token: String, timeout: Duration, retries: u32) -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder().timeout(timeout).build()?,
            endpoint: format!("{}/v1/runtimes", url.trim_end_matches('/')),
            deletions: format!("{}/v1/runtime-deletions", url.trim_end_matches('/')),
            health: format!("{}/v1/health", url.trim_end_matches('/')),
            token: crate::rotation::Current::new(token),
            retries,
        })
    }

    /// Send this token from the next request on (a rotation).
    pub fn use_token(&self, token: &str) {
        self.token.set(token.to_string());
    }

    /// One POST of `body` under `key`; the 2xx answer's body, or the
    /// error the status means. Where the call may be `optional`, the
    /// answers of a service without it (404, 405 not for POST, 501 not
    /// implemented) are all `not-found`, and not retried.
    async fn post(&self, call: Call, body: &serde_json::Value, key: &str) -> CapResult<String> {
        let endpoint = match call {
            Call::Create => &self.endpoint,
            Call::Delete => &self.deletions,
        };
        let template = match call {
            Call::Create => "/v1/runtimes",
            Call::Delete => "/v1/runtime-deletions",
        };
        let request = self
            .client
            .post(endpoint)
            .bearer_auth(self.token.get().as_str())
            .header("Idempotency-Key", key)
            .json(body);
        let response = crate::telemetry::http::send(request, template)
            .await
            .map_err(|e| {
                error(
                    ErrorCode::Unavailable,
                    format!("runtime service: {}", crate::support::error_chain(&e)),
                )
            })?;
        let status = response.status().as_u16();
        let retry_after_ms = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|s| s * 1000);
        let text = bounded_text(response).await;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let code = match status {
            429 => ErrorCode::Throttled,
            409 => ErrorCode::Conflict,
            401 | 403 => {
                crate::health::suspect(
                    "runtime",
                    format!("the Runtime Service answered {status} to the host's token"),
                );
                ErrorCode::Denied
            }
            404 => ErrorCode::NotFound,
            405 | 501 if call == Call::Delete => ErrorCode::NotFound,
            s if s >= 500 => ErrorCode::Unavailable,
            _ => ErrorCode::Invalid,
        };
        let text = match (code, call) {
            (ErrorCode::NotFound, Call::Delete) => {
                format!("the service does not offer deletes: {text}")
            }
            _ => text,
        };
        // The host boundary redacts every secret in it (and the tail a cut
        // may have left the start of one in), then cuts it to 500 characters.
        Err(Error {
            code,
            message: format!("runtime service answered {status}: {text}"),
            retry_after_ms,
        })
    }

    /// `post`, its 5xx answers and timeouts retried within the call.
    async fn post_retried(
        &self,
        call: Call,
        body: &serde_json::Value,
        key: &str,
    ) -> CapResult<String> {
        let mut attempt = 0;
        loop {
            match self.post(call, body, key).await {
                Err(e) if e.code == ErrorCode::Unavailable && attempt < self.retries => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                result => return result,
            }
        }
    }
}

/// A 2xx answer's body as `T`: unreadable is the service's fault, retried.
fn read<T: serde::de::DeserializeOwned>(text: &str) -> CapResult<T> {
    serde_json::from_str(text).map_err(|e| {
        error(
            ErrorCode::Unavailable,
            format!("runtime service answered with an unreadable body: {e}"),
        )
    })
}

/// The most of an answer's body read: a created runtime's answer is small,
/// and a refusal's reason is shown cut to 500 characters anyway.
const MOST_BODY_BYTES: usize = 64 << 10;

/// The body, at most [`MOST_BODY_BYTES`] of it read; a longer one is cut
/// and marked for the redactor ([`crate::redact::cut_for_redaction`]).
async fn bounded_text(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    let mut cut = false;
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MOST_BODY_BYTES + 1 - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() > MOST_BODY_BYTES {
            cut = true;
            break;
        }
    }
    let text = String::from_utf8_lossy(&body);
    if cut {
        crate::redact::cut_for_redaction(&text, MOST_BODY_BYTES)
    } else {
        text.into_owned()
    }
}

#[async_trait]
impl Runtime for HttpRuntime {
    async fn create(&self, request: &RuntimeRequest) -> CapResult<Created> {
        let body = request.body(Secret::expose);
        let text = self
            .post_retried(Call::Create, &body, &request.idempotency_key)
            .await?;
        let created: CreatedBody = read(&text)?;
        Ok(Created {
            runtime_id: created.runtime_id,
            url: created.url,
        })
    }

    /// `POST {url}/v1/runtime-deletions`. A service that does not offer
    /// the call (404, 405, 501) is told apart: `not-found`, said so.
    async fn delete(&self, request: &RuntimeDelete) -> CapResult<Vec<String>> {
        let text = self
            .post_retried(Call::Delete, &request.body(), &request.idempotency_key)
            .await?;
        let deleted: DeletedBody = read(&text)?;
        Ok(deleted.deleted)
    }

    /// `GET {url}/v1/runtimes` with the token, page after page (`next`);
    /// 404, 405 and 501 say the service offers no list (`not-found`).
    async fn list(&self) -> CapResult<Vec<Listed>> {
        let mut listed = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut request = self
                .client
                .get(&self.endpoint)
                .bearer_auth(self.token.get().as_str())
                .query(&[("limit", "100")]);
            if let Some(cursor) = &after {
                request = request.query(&[("after", cursor.as_str())]);
            }
            let response = crate::telemetry::http::send(request, "/v1/runtimes")
                .await
                .map_err(|e| {
                    let why = crate::support::error_chain(&e);
                    error(ErrorCode::Unavailable, format!("listing runtimes: {why}"))
                })?;
            let status = response.status().as_u16();
            let code = match status {
                200..=299 => None,
                404 | 405 | 501 => Some(ErrorCode::NotFound),
                401 | 403 => Some(ErrorCode::Denied),
                _ => Some(ErrorCode::Unavailable),
            };
            let text = bounded_text(response).await;
            if let Some(code) = code {
                let answer = format!("runtime service list answered {status}: {text}");
                return Err(error(code, answer));
            }
            let page: ListedPage = read(&text)?;
            listed.extend(page.runtimes);
            match page.next {
                Some(next)
                    if listed.len() < super::MOST_LISTED && after.as_ref() != Some(&next) =>
                {
                    after = Some(next)
                }
                _ => return Ok(listed),
            }
        }
    }

    /// `GET {url}/v1/health` with the token. A service that does not offer
    /// the call passes — 404 (no such route), 405 (not for GET) and 501
    /// (the method is not implemented: what some frameworks answer for a
    /// route they lack): only a refusal of the token, another error or no
    /// answer fail.
    async fn probe(&self) -> CapResult<()> {
        let request = self
            .client
            .get(&self.health)
            .bearer_auth(self.token.get().as_str());
        let response = crate::telemetry::http::send(request, "/v1/health")
            .await
            .map_err(|e| {
                error(
                    ErrorCode::Unavailable,
                    format!(
                        "runtime service health: {}",
                        crate::support::error_chain(&e)
                    ),
                )
            })?;
        let status = response.status().as_u16();
        let code = match status {
            200..=299 | 404 | 405 | 501 => return Ok(()),
            401 | 403 => ErrorCode::Denied,
            _ => ErrorCode::Unavailable,
        };
        let text = bounded_text(response).await;
        Err(error(
            code,
            format!("runtime service health answered {status}: {text}"),
        ))
    }
}
