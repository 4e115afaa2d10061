//! One REST request as envmgr sends it: what it does, and who it goes as.

use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, IF_NONE_MATCH};
use http::{HeaderValue, Method};
use octocrab::OctoBody;
use secrecy::{ExposeSecret, SecretString};

/// One REST request.
pub struct ApiRequest {
    /// What it does, in errors and logs ("create comment").
    pub what: &'static str,
    pub method: Method,
    /// Path and query, relative to the API's base URL.
    pub path: String,
    /// JSON text.
    pub body: Option<String>,
}

impl ApiRequest {
    pub fn get(what: &'static str, path: String) -> Self {
        Self {
            what,
            method: Method::GET,
            path,
            body: None,
        }
    }

    pub fn delete(what: &'static str, path: String) -> Self {
        Self {
            what,
            method: Method::DELETE,
            path,
            body: None,
        }
    }

    pub fn with_json(
        what: &'static str,
        method: Method,
        path: String,
        body: &serde_json::Value,
    ) -> Self {
        Self {
            what,
            method,
            path,
            body: Some(body.to_string()),
        }
    }

    /// Whether it changes something: GitHub asks for these to be spaced.
    pub(super) fn is_write(&self) -> bool {
        matches!(
            self.method,
            Method::POST | Method::PATCH | Method::PUT | Method::DELETE
        )
    }
}

/// Who a request goes as: the installation (its token; counted against its
/// rate limit) or the App (its JWT; a token mint).
pub(super) enum Sender<'a> {
    Installation(&'a SecretString),
    App(&'a str),
}

impl Sender<'_> {
    fn authorization(&self) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
        let credential = match self {
            Sender::Installation(token) => token.expose_secret(),
            Sender::App(jwt) => jwt,
        };
        let mut value = HeaderValue::from_str(&format!("Bearer {credential}"))?;
        value.set_sensitive(true);
        Ok(value)
    }
}

pub(super) fn build(
    request: &ApiRequest,
    sender: &Sender<'_>,
    if_none_match: Option<&HeaderValue>,
) -> Result<http::Request<OctoBody>, http::Error> {
    // The client adds `Accept` and `X-GitHub-Api-Version` to every request.
    let mut builder = http::Request::builder()
        .method(request.method.clone())
        .uri(request.path.as_str())
        .header(AUTHORIZATION, sender.authorization()?);
    if let Some(etag) = if_none_match {
        builder = builder.header(IF_NONE_MATCH, etag);
    }
    match &request.body {
        Some(json) => builder
            .header(CONTENT_TYPE, "application/json")
            .body(OctoBody::from(json.clone())),
        None => builder.header(CONTENT_LENGTH, "0").body(OctoBody::empty()),
    }
}
