//! The `sealed` import: the guest's handles on plaintext it may pass on but
//! never read.

use wasmtime::component::Resource;

use crate::bindings::envmgr::environments::sealed::*;
use crate::boundary::Session;
use crate::capabilities::Error;
use crate::redact::Secret;

impl Host for Session {}

impl HostFutureSealedValue for Session {
    async fn subscribe(
        &mut self,
        handle: Resource<FutureSealedValue>,
    ) -> wasmtime::Result<Resource<wasmtime_wasi::p2::DynPollable>> {
        Session::subscribe(self, handle)
    }

    async fn get(
        &mut self,
        handle: Resource<FutureSealedValue>,
    ) -> wasmtime::Result<Option<Result<Resource<SealedValue>, Error>>> {
        match self.take_answer(&handle)? {
            None => Ok(None),
            Some(Ok(Ok((label, secret)))) => Ok(Some(Ok(self.seal(label, secret)?))),
            Some(Ok(Err(error)) | Err(error)) => Ok(Some(Err(error))),
        }
    }

    async fn drop(&mut self, handle: Resource<FutureSealedValue>) -> wasmtime::Result<()> {
        self.forget(handle)
    }
}

impl HostSealedValue for Session {
    async fn label(&mut self, handle: Resource<SealedValue>) -> wasmtime::Result<String> {
        Ok(self.table.get(&handle)?.label.clone())
    }

    async fn drop(&mut self, handle: Resource<SealedValue>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl Session {
    /// Put plaintext behind a new handle for the guest.
    pub(crate) fn seal(
        &mut self,
        label: String,
        secret: Secret,
    ) -> wasmtime::Result<Resource<SealedValue>> {
        // From now on no dependency text of this message may carry it.
        self.redactor.add(secret.expose());
        Ok(self.table.push(SealedValue { label, secret })?)
    }

    /// The label and plaintext behind a handle the guest passed back.
    pub(crate) fn unseal(
        &self,
        handle: &Resource<SealedValue>,
    ) -> wasmtime::Result<(String, Secret)> {
        let sealed = self.table.get(handle)?;
        Ok((sealed.label.clone(), sealed.secret.clone()))
    }
}
