//! KMS through aws-sdk-kms.

use std::collections::HashMap;
use tracing::Instrument as _;

use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;

use super::Kms;
use crate::aws::capability_error;
use crate::capabilities::{CapResult, ErrorCode, error};
use crate::redact::Secret;

pub struct AwsKms {
    client: aws_sdk_kms::Client,
    /// The key `encrypt` uses, and the only one `decrypt` accepts: a
    /// ciphertext under another key is refused (`IncorrectKeyException`,
    /// the message's fault) rather than decrypted with whatever key it
    /// names.
    key_id: String,
}

impl AwsKms {
    pub fn new(config: &aws_config::SdkConfig, key_id: &str) -> Self {
        Self {
            client: aws_sdk_kms::Client::new(config),
            key_id: key_id.to_string(),
        }
    }
}

#[async_trait]
impl Kms for AwsKms {
    async fn encrypt(&self, plaintext: &str, context: &[(String, String)]) -> CapResult<Vec<u8>> {
        let output = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(plaintext.as_bytes()))
            .set_encryption_context(Some(context.iter().cloned().collect::<HashMap<_, _>>()))
            .send()
            .instrument(crate::telemetry::spans::aws("KMS", "Encrypt"))
            .await
            .map_err(|e| capability_error("kms Encrypt", &e))?;
        output
            .ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| error(ErrorCode::Unavailable, "kms Encrypt returned no ciphertext"))
    }

    async fn decrypt(&self, ciphertext: &[u8], context: &[(String, String)]) -> CapResult<Secret> {
        let output = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(ciphertext))
            .set_encryption_context(Some(context.iter().cloned().collect::<HashMap<_, _>>()))
            .send()
            .instrument(crate::telemetry::spans::aws("KMS", "Decrypt"))
            .await
            .map_err(|e| capability_error("kms Decrypt", &e))?;
        let plaintext = output
            .plaintext
            .ok_or_else(|| error(ErrorCode::Unavailable, "kms Decrypt returned no plaintext"))?;
        String::from_utf8(plaintext.into_inner())
            .map(Secret::new)
            .map_err(|_| error(ErrorCode::Invalid, "the secret is not UTF-8 text"))
    }
}
