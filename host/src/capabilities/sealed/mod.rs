//! Sealed values: secret plaintext stays in the host; the guest holds handles.

use std::fmt;

use wasmtime::component::Resource;

use crate::bindings::envmgr::environments::sealed::{Host, HostFutureSealedValue, HostSealedValue};
use crate::capabilities::pending::Pending;
use crate::capabilities::{CapResult, Error};
use crate::engine::Session;

/// Plaintext only the host may read. Debug output is redacted, so a secret
/// cannot reach a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(plaintext: impl Into<String>) -> Self {
        Self(plaintext.into())
    }

    /// The plaintext, for the backend that must send it (the runtime call).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// What the guest held of a sealed value was a handle: the recording keeps
/// that there was one, and a replay hands the guest a stand-in.
impl crate::record::values::Recordable for Secret {
    fn record(&self) -> serde_json::Value {
        serde_json::json!({ "sealed": true })
    }
    fn replayed(value: &serde_json::Value) -> Option<Self> {
        value
            .get("sealed")
            .map(|_| Secret::new("replayed sealed value"))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A secret a dependency hands back (a decrypted value, a minted token) is
/// not redacted, which would break it: it is made known to the message's
/// redactor the moment it arrives, before any later answer is scrubbed (a
/// started call may answer while another is still on its way, long before
/// the guest takes this one and it is sealed).
impl crate::redact::Scrub for Secret {
    fn scrub(self, redactor: &crate::redact::Redactor) -> Self {
        redactor.add(self.expose());
        self
    }
}

/// What a guest's `sealed-value` handle points at.
pub struct SealedValue {
    pub label: String,
    pub(crate) secret: Secret,
}

/// A token being minted or a secret being decrypted for the guest: its
/// label and plaintext, sealed when the guest takes it.
pub type FutureSealedValue = Pending<CapResult<(String, Secret)>>;

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
