//! The Runtime Service over HTTP (reqwest): `POST {url}/v1/runtimes` with a
//! bearer token and the guest's idempotency key as `Idempotency-Key`. 5xx
//! answers and timeouts are retried within the call, then `unavailable`;
//! 4xx answers are permanent with the service's reason (429 and 409 excepted).
//! A 401 or 403 may be the host's token, not the message: it raises a
//! suspicion, and the health probe (`GET {url}/v1/health` with the token)
//! decides.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::{Created, Runtime, RuntimeRequest};
use crate::capabilities::sealed::Secret;
use crate::capabilities::{CapResult, Error, ErrorCode, error};

pub struct HttpRuntime {
    client: reqwest::Client,
    endpoint: String,
    health: String,
    token: String,
    retries: u32,
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
            health: format!("{}/v1/health", url.trim_end_matches('/')),
            token,
            retries,
        })
    }

    async fn attempt(&self, body: &serde_json::Value, key: &str) -> CapResult<Created> {
        let response = self
            .client
            .post(&self.endpoint)
            .bearer_auth(&self.token)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
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
        let text = response.text().await.unwrap_or_default();
        if (200..300).contains(&status) {
            let created: CreatedBody = serde_json::from_str(&text).map_err(|e| {
                error(
                    ErrorCode::Unavailable,
                    format!("runtime service answered {status} with an unreadable body: {e}"),
                )
            })?;
            return Ok(Created {
                runtime_id: created.runtime_id,
                url: created.url,
            });
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
            s if s >= 500 => ErrorCode::Unavailable,
            _ => ErrorCode::Invalid,
        };
        // Whole (bounded): the host boundary redacts every secret in it,
        // then cuts it to 500 characters. Cut first, a secret could be left
        // half in, unrecognisable.
        let reason: String = text.chars().take(64 << 10).collect();
        Err(Error {
            code,
            message: format!("runtime service answered {status}: {reason}"),
            retry_after_ms,
        })
    }
}

#[async_trait]
impl Runtime for HttpRuntime {
    async fn create(&self, request: &RuntimeRequest) -> CapResult<Created> {
        let body = request.body(Secret::expose);
        let mut attempt = 0;
        loop {
            match self.attempt(&body, &request.idempotency_key).await {
                Err(e) if e.code == ErrorCode::Unavailable && attempt < self.retries => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                result => return result,
            }
        }
    }

    /// `GET {url}/v1/health` with the token. A service that does not offer
    /// the call (404, 405) passes: only a refusal of the token or no
    /// answer fail.
    async fn probe(&self) -> CapResult<()> {
        let response = self
            .client
            .get(&self.health)
            .bearer_auth(&self.token)
            .send()
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
            200..=299 | 404 | 405 => return Ok(()),
            401 | 403 => ErrorCode::Denied,
            _ => ErrorCode::Unavailable,
        };
        let text = response.text().await.unwrap_or_default();
        let reason: String = text.chars().take(64 << 10).collect();
        Err(error(
            code,
            format!("runtime service health answered {status}: {reason}"),
        ))
    }
}
