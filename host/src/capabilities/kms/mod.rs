//! KMS decryption under an encryption context. Plaintext is sealed at once.

pub mod aead;
pub mod aws;
pub mod local;
pub mod mock;

use std::collections::BTreeMap;

use async_trait::async_trait;
use wasmtime::component::Resource;

use crate::bindings::envmgr::environments::kms::Host;
use crate::capabilities::sealed::{SealedValue, Secret};
use crate::capabilities::{CapResult, Error};
use crate::engine::Session;
use crate::observe::Call;

/// A KMS (aws-sdk-kms, the embedded local key, or the mock).
#[async_trait]
pub trait Kms: Send + Sync {
    /// `denied` when the ciphertext is not ours or the context differs from
    /// the one it was encrypted under.
    async fn decrypt(&self, ciphertext: &[u8], context: &[(String, String)]) -> CapResult<Secret>;
    /// Encrypt a secret value under its context with the configured key
    /// (`envmgr set-secret`; never offered to the guest).
    async fn encrypt(&self, plaintext: &str, context: &[(String, String)]) -> CapResult<Vec<u8>>;
}

/// The context as one canonical byte string (sorted keys, JSON), for
/// backends that bind it as associated data themselves.
pub fn canonical_context(context: &[(String, String)]) -> Vec<u8> {
    let sorted: BTreeMap<&str, &str> = context
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    serde_json::to_vec(&sorted).unwrap_or_default()
}

impl Host for Session {
    async fn decrypt(
        &mut self,
        ciphertext: Vec<u8>,
        encryption_context: Vec<(String, String)>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<SealedValue>, Error>> {
        let b = self.backends.clone();
        let plaintext = self
            .invoke(
                Call::KmsDecrypt,
                || {
                    format!(
                        "<{} bytes> context={encryption_context:?} label={label}",
                        ciphertext.len()
                    )
                },
                b.kms.decrypt(&ciphertext, &encryption_context),
            )
            .await;
        match plaintext {
            Ok(secret) => Ok(Ok(self.seal(label, secret)?)),
            Err(error) => Ok(Err(error)),
        }
    }
}
