//! Moving secrets to a new KMS key without downtime: while
//! `kms.previous_key_ids` names the keys being moved from, a host encrypts
//! with `kms.key_id` and decrypts with whichever of them a ciphertext was
//! made under (`envmgr secrets re-encrypt` moves every stored ciphertext;
//! docs/guides/rotate-credentials.md has the runbook).
//!
//! KMS's Decrypt is given the key id it must use (a ciphertext made under
//! any other key is refused, `IncorrectKeyException`), so the keys are
//! tried in order — the configured key first — and a refusal (`denied`)
//! moves on to the next; any other failure (KMS unavailable, throttled)
//! is the answer at once. Bound: one Decrypt per configured key at most;
//! with no previous keys, exactly the one call it was before.

use async_trait::async_trait;

use super::Kms;
use crate::capabilities::{CapResult, ErrorCode};
use crate::redact::Secret;

pub struct EitherKey {
    /// `kms.key_id`: encrypts, and is tried first.
    pub current: Box<dyn Kms>,
    /// `kms.previous_key_ids`, in the order given.
    pub previous: Vec<Box<dyn Kms>>,
}

#[async_trait]
impl Kms for EitherKey {
    async fn decrypt(&self, ciphertext: &[u8], context: &[(String, String)]) -> CapResult<Secret> {
        let first = match self.current.decrypt(ciphertext, context).await {
            Err(e) if e.code == ErrorCode::Denied => e,
            answer => return answer,
        };
        for key in &self.previous {
            match key.decrypt(ciphertext, context).await {
                Err(e) if e.code == ErrorCode::Denied => continue,
                Ok(secret) => {
                    // What is still under a key being left, for the
                    // operator to see reach zero before dropping it.
                    crate::metrics::previous_key_decrypt();
                    return Ok(secret);
                }
                answer => return answer,
            }
        }
        // Refused under every key: the configured key's refusal says why.
        Err(first)
    }

    async fn encrypt(&self, plaintext: &str, context: &[(String, String)]) -> CapResult<Vec<u8>> {
        self.current.encrypt(plaintext, context).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::kms::local::LocalKms;
    use crate::local::Store;

    fn context() -> Vec<(String, String)> {
        vec![("envmgr:app".into(), "app".into())]
    }

    #[tokio::test]
    async fn a_ciphertext_of_either_key_decrypts_and_new_ones_use_the_current() {
        let store = Store::in_memory().unwrap();
        let old = LocalKms::open(&store, "alias/old").await.unwrap();
        let made_before = old.seal("s3cret", &context()).unwrap();
        let either = EitherKey {
            current: Box::new(LocalKms::open(&store, "alias/new").await.unwrap()),
            previous: vec![Box::new(old)],
        };
        let secret = either.decrypt(&made_before, &context()).await.unwrap();
        assert_eq!(secret.expose(), "s3cret");
        let made_now = either.encrypt("s3cret", &context()).await.unwrap();
        let current_only = EitherKey {
            current: either.current,
            previous: Vec::new(),
        };
        assert!(current_only.decrypt(&made_now, &context()).await.is_ok());
        let refused = current_only
            .decrypt(&made_before, &context())
            .await
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::Denied);
    }
}
