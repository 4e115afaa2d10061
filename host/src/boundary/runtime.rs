//! The `runtime` import: the Runtime Service's create, with the sealed values
//! it names unsealed only here, on their way out.

use wasmtime::component::Resource;

use crate::bindings::envmgr::environments::runtime::*;
use crate::boundary::Session;
use crate::boundary::started::answer;
use crate::calls::requests::Described;
use crate::calls::requests::others::{CreateRuntime, DeleteRuntime};
use crate::capabilities::CapResult;
use crate::capabilities::runtime::*;
use crate::redact::Secret;

impl Session {
    /// The guest's create request with its sealed values unsealed for the
    /// backend, and described for the call path by their labels only.
    fn runtime_request(
        &self,
        request: &CreateRequest,
    ) -> wasmtime::Result<(RuntimeRequest, Described)> {
        let unseal = |handle: &Option<_>| handle.as_ref().map(|h| self.unseal(h)).transpose();
        let installation_token = unseal(&request.installation_token)?;
        let signing_key = unseal(&request.signing_key)?;
        let secrets = request
            .secrets
            .iter()
            .map(|secret| Ok((secret.name.clone(), self.unseal(&secret.value)?)))
            .collect::<wasmtime::Result<Vec<(String, (String, Secret))>>>()?;
        let described = self.describe(&CreateRuntime {
            request,
            installation_token: label(&installation_token),
            secrets: secrets
                .iter()
                .map(|(name, (label, _))| (name.as_str(), label.as_str()))
                .collect(),
            signing_key: label(&signing_key),
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
        Ok((plain, described))
    }
}

/// A sealed value's label, for the transcript and the tape.
fn label(sealed: &Option<(String, Secret)>) -> Option<&str> {
    sealed.as_ref().map(|(label, _)| label.as_str())
}

impl Host for Session {
    async fn delete(&mut self, request: DeleteRequest) -> wasmtime::Result<CapResult<Vec<String>>> {
        let b = self.backends.clone();
        Ok(self
            .invoke(
                self.describe(&DeleteRuntime(&request)),
                b.runtime.delete(&request),
            )
            .await)
    }

    async fn create(&mut self, request: CreateRequest) -> wasmtime::Result<CapResult<Created>> {
        let (plain, described) = self.runtime_request(&request)?;
        let b = self.backends.clone();
        Ok(self.invoke(described, b.runtime.create(&plain)).await)
    }

    async fn start_create(
        &mut self,
        request: CreateRequest,
    ) -> wasmtime::Result<Resource<FutureCreated>> {
        let (plain, described) = self.runtime_request(&request)?;
        let b = self.backends.clone();
        let call = self.invoke(described, async move { b.runtime.create(&plain).await });
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
        Ok(answer(self.take_answer(&handle)?))
    }

    async fn drop(&mut self, handle: Resource<FutureCreated>) -> wasmtime::Result<()> {
        self.forget(handle)
    }
}
