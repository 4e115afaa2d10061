//! The requests of `kms`, `keys`, `analytics`, `runtime` and `requests`: one or
//! two calls each.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Request;
use crate::bindings::envmgr::environments::analytics::TrackEvent;
use crate::bindings::envmgr::environments::runtime::{CreateRequest, DeleteRequest};
use crate::bindings::json::Recordable;
use crate::calls::Call;

pub struct Decrypt<'a> {
    pub ciphertext: &'a [u8],
    pub context: &'a [(String, String)],
    pub label: &'a str,
}

impl Request for Decrypt<'_> {
    const CALL: Call = Call::KmsDecrypt;
    fn text(&self) -> String {
        format!(
            "<{} bytes> context={:?} label={}",
            self.ciphertext.len(),
            self.context,
            self.label
        )
    }
    /// The ciphertext by its digest: the tape finds the answer by it, and
    /// needs no copy of what only KMS can read.
    fn json(&self) -> Value {
        let context: BTreeMap<&str, &str> = self
            .context
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        json!({
            "ciphertext-sha256": crate::support::hex_sha256(self.ciphertext),
            "encryption-context": context,
            "label": self.label,
        })
    }
}

pub struct GenerateKey<'a> {
    pub app_id: &'a str,
    pub environment_id: &'a str,
    pub request_version: &'a str,
}

impl Request for GenerateKey<'_> {
    const CALL: Call = Call::KeysGenerate;
    fn text(&self) -> String {
        format!(
            "app={} env={} version={}",
            self.app_id, self.environment_id, self.request_version
        )
    }
    fn json(&self) -> Value {
        json!({
            "app-id": self.app_id,
            "environment-id": self.environment_id,
            "request-version": self.request_version,
        })
    }
}

pub struct VerifyReport<'a> {
    pub jws: &'a str,
    pub public_jwk: &'a str,
}

impl Request for VerifyReport<'_> {
    const CALL: Call = Call::KeysVerifyReport;
    fn text(&self) -> String {
        format!("<{} bytes> key={}", self.jws.len(), self.public_jwk)
    }
    fn json(&self) -> Value {
        json!({ "jws": self.jws, "public-jwk": self.public_jwk })
    }
}

pub struct Track<'a>(pub &'a TrackEvent);

impl Request for Track<'_> {
    const CALL: Call = Call::AnalyticsTrack;
    fn text(&self) -> String {
        let event = self.0;
        format!(
            "{} user={} properties={} id={}",
            event.event, event.user_id, event.properties_json, event.message_id
        )
    }
    fn json(&self) -> Value {
        let event = self.0;
        json!({
            "event": event.event,
            "user-id": event.user_id,
            "properties-json": event.properties_json,
            "message-id": event.message_id,
        })
    }
}

/// The runtime's create, its sealed values by their labels only.
pub struct CreateRuntime<'a> {
    pub request: &'a CreateRequest,
    pub installation_token: Option<&'a str>,
    /// (name, label) of each secret.
    pub secrets: Vec<(&'a str, &'a str)>,
    pub signing_key: Option<&'a str>,
}

impl Request for CreateRuntime<'_> {
    const CALL: Call = Call::RuntimeCreate;
    fn text(&self) -> String {
        let label =
            |sealed: Option<&str>| sealed.map_or_else(|| "none".into(), |l| format!("<{l}>"));
        let secrets: Vec<String> = self
            .secrets
            .iter()
            .map(|(name, label)| format!("{name}=<{label}>"))
            .collect();
        let r = self.request;
        format!(
            "key={} env={} ({}) {}@{} {} version={} entrypoint={} token={} secrets=[{}] signing-key={}",
            r.idempotency_key,
            r.environment_id,
            r.environment_type,
            r.repository,
            r.branch,
            r.sha,
            r.request_version,
            r.entrypoint,
            label(self.installation_token),
            secrets.join(", "),
            label(self.signing_key),
        )
    }
    fn json(&self) -> Value {
        let sealed = |label: Option<&str>| label.map(|label| json!({ "sealed": label }));
        let r = self.request;
        json!({
            "idempotency-key": r.idempotency_key,
            "app-id": r.app_id,
            "environment-id": r.environment_id,
            "environment-type": r.environment_type,
            "repository": r.repository,
            "branch": r.branch,
            "sha": r.sha,
            "request-version": r.request_version,
            "entrypoint": r.entrypoint,
            "installation-token": sealed(self.installation_token),
            "secrets": self
                .secrets
                .iter()
                .map(|(name, label)| json!({ "name": name, "value": { "sealed": label } }))
                .collect::<Vec<_>>(),
            "signing-key": sealed(self.signing_key),
        })
    }
}

/// The runtime's delete: nothing sealed in it.
pub struct DeleteRuntime<'a>(pub &'a DeleteRequest);

impl Request for DeleteRuntime<'_> {
    const CALL: Call = Call::RuntimeDelete;
    fn text(&self) -> String {
        let r = self.0;
        format!(
            "key={} env={} ({}) version={} reason={}",
            r.idempotency_key, r.environment_id, r.environment_type, r.request_version, r.reason
        )
    }
    fn json(&self) -> Value {
        self.0.record()
    }
}

/// A request put on the `api` queue.
pub struct SendRequest<'a>(pub &'a str);

impl Request for SendRequest<'_> {
    const CALL: Call = Call::RequestsSend;
    fn text(&self) -> String {
        self.0.to_string()
    }
    fn json(&self) -> Value {
        json!({ "body": self.0 })
    }
}
