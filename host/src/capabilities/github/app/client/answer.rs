//! GitHub's answer, read whole, and what it means in the contract's terms.

use std::sync::Arc;
use std::time::SystemTime;

use http::header::LINK;
use http::{HeaderMap, StatusCode};
use octocrab::{FromResponse, OctoBody};
use serde::de::DeserializeOwned;

use super::super::json::ErrorBody;
use super::super::limiter;
use super::super::tokens::{MintAnswer, Minted};
use super::millis_up;
use crate::capabilities::{CapResult, Error, ErrorCode, error};

/// GitHub's answer, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Arc<str>,
}

impl Answer {
    /// The answer if it is a success; GitHub's refusal in the contract's
    /// terms otherwise.
    pub fn success(self, what: &str) -> CapResult<Self> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(self.error(what))
        }
    }

    /// The body as `T`.
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> CapResult<T> {
        serde_json::from_str(&self.body).map_err(|e| {
            error(
                ErrorCode::Unavailable,
                format!("github {what}: the answer did not parse: {e}"),
            )
        })
    }

    /// GitHub's `message` of a refusal; empty for a success.
    pub fn message(&self) -> String {
        if !(self.status.is_client_error() || self.status.is_server_error()) {
            return String::new();
        }
        serde_json::from_str::<ErrorBody>(&self.body)
            .ok()
            .and_then(|b| b.message)
            .unwrap_or_else(|| {
                let text = self.body.trim();
                if text.is_empty() {
                    self.status.canonical_reason().unwrap_or("").to_string()
                } else {
                    // Bounded and marked where cut: the host boundary
                    // redacts (the cut's tail too), then cuts to 500.
                    crate::redact::cut_for_redaction(text, 64 << 10)
                }
            })
    }

    /// The answer in the contract's terms: rate limits (429, 403 with none
    /// left or saying so) `throttled` with the wait GitHub asked, 401/403
    /// `denied`, 404/410 `not-found`, 409 `conflict`, 5xx `unavailable`,
    /// the rest `invalid`.
    pub fn error(&self, what: &str) -> Error {
        let message = self.message();
        let code = match self.status.as_u16() {
            404 | 410 => ErrorCode::NotFound,
            429 => ErrorCode::Throttled,
            403 if limiter::rate_limited(self.status, &self.headers, &message) => {
                ErrorCode::Throttled
            }
            401 | 403 => ErrorCode::Denied,
            409 => ErrorCode::Conflict,
            s if s >= 500 => ErrorCode::Unavailable,
            _ => ErrorCode::Invalid,
        };
        let retry_after_ms =
            limiter::wait_asked(self.status, &self.headers, &message, SystemTime::now())
                .map(|wait| millis_up(wait.wait));
        Error {
            code,
            message: format!("github {what}: {} {message}", self.status.as_u16()),
            retry_after_ms,
        }
    }

    /// The items of a list page and the path and query of the next page,
    /// if any. Only the path and query of GitHub's link: the token goes
    /// only to the configured base URL (GitHub Enterprise, tests).
    pub async fn page<T: DeserializeOwned>(
        self,
        what: &str,
    ) -> CapResult<(Vec<T>, Option<String>)> {
        let unreadable = |e: &dyn std::error::Error| {
            error(
                ErrorCode::Unavailable,
                format!(
                    "github {what}: the page did not parse: {}",
                    crate::support::error_chain(e)
                ),
            )
        };
        let mut response = http::Response::builder().status(self.status);
        if let Some(link) = self.headers.get(LINK) {
            response = response.header(LINK, link);
        }
        let response = response
            .body(OctoBody::from(self.body.to_string()))
            .map_err(|e| unreadable(&e))?;
        let page = octocrab::Page::<T>::from_response(response)
            .await
            .map_err(|e| unreadable(&e))?;
        let next = page
            .next
            .as_ref()
            .and_then(|next| next.path_and_query())
            .map(|p| p.as_str().to_string());
        Ok((page.items, next))
    }
}

/// The token minted in a `201` answer.
pub fn minted(answer: Answer, what: &str) -> CapResult<Minted> {
    let answer = answer.success(what)?;
    let minted: MintAnswer = answer.json(what)?;
    Ok(Minted::from_answer(minted, SystemTime::now()))
}
