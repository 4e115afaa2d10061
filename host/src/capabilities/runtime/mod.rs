//! The Runtime Service: creates the runtime that runs an environment. The
//! only place sealed values are opened: the backend sends their plaintext.

pub mod http;
pub mod local;

use async_trait::async_trait;

pub use crate::bindings::envmgr::environments::runtime::Created;

use crate::capabilities::{CapResult, ErrorCode};
use crate::redact::Secret;

/// The create call as a backend sends it, secrets in plaintext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeRequest {
    pub idempotency_key: String,
    pub app_id: String,
    pub environment_id: String,
    pub environment_type: String,
    pub repository: String,
    pub branch: String,
    pub sha: String,
    /// The fencing token (empty only from logic of contract 0.1, which
    /// hosts no longer run).
    pub request_version: String,
    pub entrypoint: String,
    pub installation_token: Option<Secret>,
    pub secrets: Vec<(String, Secret)>,
    /// The environment's private signing key for this request (a JWK), for
    /// the runtime's status reports; none from a logic version of contract
    /// 0.2.
    pub signing_key: Option<Secret>,
}

impl RuntimeRequest {
    /// The JSON body of `POST /v1/runtimes`, each secret (and the token) as
    /// `show` makes it: the plaintext to send, or a mask to record.
    pub fn body(&self, show: impl Fn(&Secret) -> &str) -> serde_json::Value {
        let secrets: serde_json::Map<String, serde_json::Value> = self
            .secrets
            .iter()
            .map(|(name, value)| (name.clone(), show(value).into()))
            .collect();
        let mut body = serde_json::json!({
            "appId": self.app_id,
            "environmentId": self.environment_id,
            "environmentType": self.environment_type,
            "repository": self.repository,
            "branch": self.branch,
            "sha": self.sha,
            "entrypoint": self.entrypoint,
            "installationToken": self.installation_token.as_ref().map(&show),
            "secrets": secrets,
            // The JWK as an object; a mask (for a record) as the string it is.
            "signingKey": self.signing_key.as_ref().map(|key| {
                let shown = show(key);
                serde_json::from_str::<serde_json::Value>(shown)
                    .ok()
                    .filter(serde_json::Value::is_object)
                    .unwrap_or_else(|| shown.into())
            }),
        });
        if !self.request_version.is_empty() {
            body["requestVersion"] = self.request_version.as_str().into();
        }
        body
    }
}

/// The delete call (`POST /v1/runtime-deletions`) is the WIT's own request:
/// nothing in it is sealed. Every runtime of the environment created at an
/// older request version goes, and the service refuses any create older
/// than this from then on.
pub use crate::bindings::envmgr::environments::runtime::DeleteRequest as RuntimeDelete;

impl RuntimeDelete {
    /// The JSON body of `POST /v1/runtime-deletions`: nothing secret.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "appId": self.app_id,
            "environmentId": self.environment_id,
            "environmentType": self.environment_type,
            "requestVersion": self.request_version,
            "reason": self.reason,
        })
    }
}

/// A runtime the service runs, as its optional list call
/// (`GET /v1/runtimes`) says: what `envmgr sweep --orphans` compares with
/// the environments' records.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    pub runtime_id: String,
    pub app_id: String,
    pub environment_id: String,
    pub environment_type: String,
    /// The request version it was created at.
    pub request_version: String,
}

/// The most runtimes a list is read to (a page of 100 at a time): a
/// service answering without end cannot hold the command forever.
pub const MOST_LISTED: usize = 100_000;

#[async_trait]
pub trait Runtime: Send + Sync {
    /// One runtime per idempotency key, however often this is called.
    async fn create(&self, request: &RuntimeRequest) -> CapResult<Created>;
    /// The ids of the runtimes this delete removed (the same answer for a
    /// repeat of its key); `not-found` when the service offers no deletes,
    /// `conflict` when it accepted a newer create first.
    async fn delete(&self, request: &RuntimeDelete) -> CapResult<Vec<String>>;
    /// Every runtime the service runs (no logic calls this: an operator's
    /// reconciliation); `not-found` when the service offers no list.
    async fn list(&self) -> CapResult<Vec<Listed>> {
        Err(crate::capabilities::error(
            ErrorCode::NotFound,
            "this Runtime Service offers no list of runtimes",
        ))
    }
    /// Whether the service takes the host's token, asked of no message
    /// (the health probe). In-process backends cannot be refused.
    async fn probe(&self) -> CapResult<()> {
        Ok(())
    }
}

// The runtime's id and URL go into the record, the comment and the
// deployment status: a service echoing the request must not put a secret
// there.
impl crate::redact::Scrub for Created {
    fn scrub(self, redactor: &crate::redact::Redactor) -> Self {
        Created {
            runtime_id: crate::redact::cut(
                &redactor.scrub_value(&self.runtime_id),
                crate::redact::MAX_TEXT_CHARS,
            ),
            url: self
                .url
                .map(|u| crate::redact::cut(&redactor.scrub_value(&u), 2_048)),
        }
    }
}
