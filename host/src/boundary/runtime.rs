//! The `runtime` import: the Runtime Service's create, with the sealed values
//! it names unsealed only here, on their way out.

use wasmtime::component::Resource;

use crate::bindings::envmgr::environments::runtime::*;
use crate::boundary::Session;
use crate::calls::Call;
use crate::capabilities::CapResult;
use crate::capabilities::runtime::*;
use crate::redact::Secret;

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
