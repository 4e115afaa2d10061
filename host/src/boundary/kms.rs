//! The `kms` import: an environment type's secrets decrypted into sealed
//! values the guest can pass on but never read.

use wasmtime::component::Resource;

use crate::bindings::envmgr::environments::kms::*;
use crate::bindings::resources::{FutureSealedValue, SealedValue};
use crate::boundary::Session;
use crate::calls::requests::others::Decrypt;
use crate::capabilities::Error;
use crate::capabilities::kms::*;

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
                self.describe(&Decrypt {
                    ciphertext: &ciphertext,
                    context: &encryption_context,
                    label: &label,
                }),
                async {
                    b.kms
                        .decrypt(&as_written(&ciphertext), &encryption_context)
                        .await
                },
            )
            .await;
        match plaintext {
            Ok(secret) => Ok(Ok(self.seal(label, secret)?)),
            Err(error) => Ok(Err(error)),
        }
    }

    async fn start_decrypt(
        &mut self,
        ciphertext: Vec<u8>,
        encryption_context: Vec<(String, String)>,
        label: String,
    ) -> wasmtime::Result<Resource<FutureSealedValue>> {
        let b = self.backends.clone();
        let described = self.describe(&Decrypt {
            ciphertext: &ciphertext,
            context: &encryption_context,
            label: &label,
        });
        let call = self.invoke(described, async move {
            b.kms
                .decrypt(&as_written(&ciphertext), &encryption_context)
                .await
        });
        self.start(async move { call.await.map(|secret| (label, secret)) })
            .await
    }
}
