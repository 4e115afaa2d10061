//! A KMS in memory: a fixed key, the encryption context bound as associated
//! data, so a wrong context fails like real KMS does.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::Kms;
use super::aead::{ContextKey, NONCE_LEN};
use crate::capabilities::CapResult;
use crate::redact::Secret;

pub struct MockKms {
    key: ContextKey,
    /// Nonces from a counter: unique, and reproducible run to run.
    next_nonce: AtomicU64,
}

impl Default for MockKms {
    fn default() -> Self {
        let key: [u8; 32] = Sha256::digest(b"envmgr mock kms key").into();
        Self {
            key: ContextKey::new(&key, b"mockkms1"),
            next_nonce: AtomicU64::new(1),
        }
    }
}

impl MockKms {
    /// A key of its own, named `name` (another key id): a ciphertext of one
    /// is refused by another, as KMS refuses one made under another key.
    pub fn named(name: &str) -> Self {
        let key: [u8; 32] = Sha256::digest(format!("envmgr mock kms key {name}")).into();
        Self {
            key: ContextKey::new(&key, b"mockkms1"),
            next_nonce: AtomicU64::new(1),
        }
    }

    /// What `envmgr set-secret` does against real KMS: encrypt under a context.
    pub fn encrypt(&self, plaintext: &str, context: &[(String, String)]) -> Vec<u8> {
        let counter = self.next_nonce.fetch_add(1, Ordering::SeqCst);
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&counter.to_be_bytes());
        self.key.seal(nonce, plaintext.as_bytes(), context)
    }
}

#[async_trait]
impl Kms for MockKms {
    async fn decrypt(&self, ciphertext: &[u8], context: &[(String, String)]) -> CapResult<Secret> {
        self.key.open(ciphertext, context)
    }

    async fn encrypt(&self, plaintext: &str, context: &[(String, String)]) -> CapResult<Vec<u8>> {
        Ok(MockKms::encrypt(self, plaintext, context))
    }
}
