//! The requests of `kms`, `keys`, `analytics`, `runtime` and `requests`: one or
//! two calls each.

use super::Request;
use crate::bindings::envmgr::environments::analytics::TrackEvent;
use crate::bindings::envmgr::environments::runtime::{CreateRequest, DeleteRequest};
use crate::bindings::json::{Object, Recordable, write_named, write_str};
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
    fn write_json(&self, out: &mut Vec<u8>) {
        Object::new(out)
            .field(
                "ciphertext-sha256",
                &crate::support::hex_sha256(self.ciphertext),
            )
            // A map of the pairs: by name, a name given twice with its last
            // value.
            .with("encryption-context", |out| {
                let _ = write_named(self.context, out, |value, out| {
                    write_str(value, out);
                    Ok::<(), ()>(())
                });
            })
            .field("label", self.label)
            .end();
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
    fn write_json(&self, out: &mut Vec<u8>) {
        Object::new(out)
            .field("app-id", self.app_id)
            .field("environment-id", self.environment_id)
            .field("request-version", self.request_version)
            .end();
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
    fn write_json(&self, out: &mut Vec<u8>) {
        Object::new(out)
            .field("jws", self.jws)
            .field("public-jwk", self.public_jwk)
            .end();
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
    fn write_json(&self, out: &mut Vec<u8>) {
        let event = self.0;
        Object::new(out)
            .field("event", &event.event)
            .field("message-id", &event.message_id)
            .field("properties-json", &event.properties_json)
            .field("user-id", &event.user_id)
            .end();
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
    fn write_json(&self, out: &mut Vec<u8>) {
        let sealed = |label: &str, out: &mut Vec<u8>| Object::new(out).field("sealed", label).end();
        let maybe_sealed = |label: Option<&str>, out: &mut Vec<u8>| match label {
            Some(label) => sealed(label, out),
            None => out.extend_from_slice(b"null"),
        };
        let r = self.request;
        Object::new(out)
            .field("app-id", &r.app_id)
            .field("branch", &r.branch)
            .field("entrypoint", &r.entrypoint)
            .field("environment-id", &r.environment_id)
            .field("environment-type", &r.environment_type)
            .field("idempotency-key", &r.idempotency_key)
            .with("installation-token", |out| {
                maybe_sealed(self.installation_token, out)
            })
            .field("repository", &r.repository)
            .field("request-version", &r.request_version)
            .with("secrets", |out| {
                out.push(b'[');
                for (i, (name, label)) in self.secrets.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    Object::new(out)
                        .field("name", *name)
                        .with("value", |out| sealed(label, out))
                        .end();
                }
                out.push(b']');
            })
            .field("sha", &r.sha)
            .with("signing-key", |out| maybe_sealed(self.signing_key, out))
            .end();
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
    fn write_json(&self, out: &mut Vec<u8>) {
        self.0.write_json(out);
    }
}

/// A request put on the `api` queue.
pub struct SendRequest<'a>(pub &'a str);

impl Request for SendRequest<'_> {
    const CALL: Call = Call::RequestsSend;
    fn text(&self) -> String {
        self.0.to_string()
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        Object::new(out).field("body", self.0).end();
    }
}
