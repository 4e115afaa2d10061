//! A KMS in memory: AES-256-GCM under a fixed key, the encryption context
//! bound as associated data, so a wrong context fails like real KMS does.

use std::sync::atomic::{AtomicU64, Ordering};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::{Kms, canonical_context};
use crate::capabilities::sealed::Secret;
use crate::capabilities::{CapResult, ErrorCode, error};

const MAGIC: &[u8] = b"mockkms1";
const NONCE_LEN: usize = 12;

pub struct MockKms {
    cipher: Aes256Gcm,
    /// Nonces from a counter: unique, and reproducible run to run.
    next_nonce: AtomicU64,
}

impl Default for MockKms {
    fn default() -> Self {
        let key = Sha256::digest(b"envmgr mock kms key");
        Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
            next_nonce: AtomicU64::new(1),
        }
    }
}

impl MockKms {
    /// What `envmgr secret set` does against real KMS: encrypt under a context.
    pub fn encrypt(&self, plaintext: &str, context: &[(String, String)]) -> Vec<u8> {
        let counter = self.next_nonce.fetch_add(1, Ordering::SeqCst);
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&counter.to_be_bytes());
        let aad = canonical_context(context);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of a short secret cannot fail");
        [MAGIC, &nonce, &sealed].concat()
    }
}

#[async_trait]
impl Kms for MockKms {
    async fn decrypt(&self, ciphertext: &[u8], context: &[(String, String)]) -> CapResult<Secret> {
        let invalid = || {
            error(
                ErrorCode::Denied,
                "InvalidCiphertextException: the ciphertext or its encryption context is wrong",
            )
        };
        let body = ciphertext.strip_prefix(MAGIC).ok_or_else(invalid)?;
        if body.len() < NONCE_LEN {
            return Err(invalid());
        }
        let (nonce, sealed) = body.split_at(NONCE_LEN);
        let aad = canonical_context(context);
        let plaintext = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| invalid())?;
        String::from_utf8(plaintext)
            .map(Secret::new)
            .map_err(|_| error(ErrorCode::Invalid, "the secret is not UTF-8 text"))
    }
}
