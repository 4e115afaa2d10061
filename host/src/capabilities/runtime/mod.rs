//! The Runtime Service: creates the runtime that runs an environment. The
//! only place sealed values are opened: the backend sends their plaintext.

pub mod http;
pub mod local;
pub mod mock;

use async_trait::async_trait;

pub use crate::bindings::envmgr::environments::runtime::Created;
use wasmtime::component::Resource;

use crate::bindings::envmgr::environments::runtime::{CreateRequest, Host, HostFutureCreated};
use crate::capabilities::CapResult;
use crate::capabilities::pending::Pending;
use crate::capabilities::sealed::Secret;
use crate::engine::Session;
use crate::observe::Call;

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

#[async_trait]
pub trait Runtime: Send + Sync {
    /// One runtime per idempotency key, however often this is called.
    async fn create(&self, request: &RuntimeRequest) -> CapResult<Created>;
    /// Whether the service takes the host's token, asked of no message
    /// (the health probe). In-process backends cannot be refused.
    async fn probe(&self) -> CapResult<()> {
        Ok(())
    }
}

/// A `create` the guest started.
pub type FutureCreated = Pending<CapResult<Created>>;

impl Session {
    /// The guest's request with its sealed values opened, and how the
    /// transcript shows it (labels, never plaintext).
    fn runtime_request(
        &self,
        request: &CreateRequest,
    ) -> wasmtime::Result<(RuntimeRequest, String, Option<serde_json::Value>)> {
        let installation_token = request
            .installation_token
            .as_ref()
            .map(|handle| self.unseal(handle))
            .transpose()?;
        let secrets = request
            .secrets
            .iter()
            .map(|secret| Ok((secret.name.clone(), self.unseal(&secret.value)?)))
            .collect::<wasmtime::Result<Vec<_>>>()?;
        let signing_key = request
            .signing_key
            .as_ref()
            .map(|handle| self.unseal(handle))
            .transpose()?;
        let label = |sealed: &Option<(String, Secret)>| {
            sealed
                .as_ref()
                .map(|(label, _)| format!("<{label}>"))
                .unwrap_or_else(|| "none".into())
        };
        let shown_secrets: Vec<String> = secrets
            .iter()
            .map(|(name, (label, _))| format!("{name}=<{label}>"))
            .collect();
        let shown = format!(
            "key={} env={} ({}) {}@{} {} version={} entrypoint={} token={} secrets=[{}] signing-key={}",
            request.idempotency_key,
            request.environment_id,
            request.environment_type,
            request.repository,
            request.branch,
            request.sha,
            request.request_version,
            request.entrypoint,
            label(&installation_token),
            shown_secrets.join(", "),
            label(&signing_key),
        );
        // The recording's form: every field, sealed values by their labels.
        let typed = self.typed(|| {
            let sealed = |sealed: &Option<(String, Secret)>| {
                sealed
                    .as_ref()
                    .map(|(label, _)| serde_json::json!({ "sealed": label }))
            };
            serde_json::json!({
                "idempotency-key": request.idempotency_key,
                "app-id": request.app_id,
                "environment-id": request.environment_id,
                "environment-type": request.environment_type,
                "repository": request.repository,
                "branch": request.branch,
                "sha": request.sha,
                "request-version": request.request_version,
                "entrypoint": request.entrypoint,
                "installation-token": sealed(&installation_token),
                "secrets": secrets
                    .iter()
                    .map(|(name, (label, _))| serde_json::json!({ "name": name, "value": { "sealed": label } }))
                    .collect::<Vec<_>>(),
                "signing-key": sealed(&signing_key),
            })
        });
        let plain = RuntimeRequest {
            idempotency_key: request.idempotency_key.clone(),
            app_id: request.app_id.clone(),
            environment_id: request.environment_id.clone(),
            environment_type: request.environment_type.clone(),
            repository: request.repository.clone(),
            branch: request.branch.clone(),
            sha: request.sha.clone(),
            request_version: request.request_version.clone(),
            entrypoint: request.entrypoint.clone(),
            installation_token: installation_token.map(|(_, secret)| secret),
            secrets: secrets
                .into_iter()
                .map(|(name, (_, secret))| (name, secret))
                .collect(),
            signing_key: signing_key.map(|(_, secret)| secret),
        };
        Ok((plain, shown, typed))
    }
}

impl Host for Session {
    async fn create(&mut self, request: CreateRequest) -> wasmtime::Result<CapResult<Created>> {
        let (plain, shown, typed) = self.runtime_request(&request)?;
        let b = self.backends.clone();
        Ok(self
            .invoke(
                Call::RuntimeCreate,
                || shown,
                typed,
                b.runtime.create(&plain),
            )
            .await)
    }

    async fn start_create(
        &mut self,
        request: CreateRequest,
    ) -> wasmtime::Result<Resource<FutureCreated>> {
        let (plain, shown, typed) = self.runtime_request(&request)?;
        let b = self.backends.clone();
        let call = self.invoke(Call::RuntimeCreate, || shown, typed, async move {
            b.runtime.create(&plain).await
        });
        self.start(call).await
    }
}

impl HostFutureCreated for Session {
    async fn subscribe(
        &mut self,
        handle: Resource<FutureCreated>,
    ) -> wasmtime::Result<Resource<wasmtime_wasi::p2::DynPollable>> {
        Session::subscribe(self, handle)
    }

    async fn get(
        &mut self,
        handle: Resource<FutureCreated>,
    ) -> wasmtime::Result<Option<CapResult<Created>>> {
        Ok(self
            .take_answer(&handle)?
            .map(|answer| answer.unwrap_or_else(Err)))
    }

    async fn drop(&mut self, handle: Resource<FutureCreated>) -> wasmtime::Result<()> {
        self.forget(handle)
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
