//! The cipher of the KMS keys envmgr holds itself (the local key, which the
//! mock host's is too): AES-256-GCM with the encryption context bound as associated data,
//! so a ciphertext opens only under the context it was sealed with — what
//! real KMS enforces.
//!
//! Ciphertext layout: `magic (8 bytes) | nonce (12) | sealed (plaintext + 16-byte tag)`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};

use super::canonical_context;
use crate::capabilities::{CapResult, ErrorCode, error};
use crate::redact::Secret;

pub const NONCE_LEN: usize = 12;

pub struct ContextKey {
    cipher: Aes256Gcm,
    /// Tells this key's ciphertexts apart from any other format.
    magic: &'static [u8; 8],
}

impl ContextKey {
    pub fn new(key: &[u8; 32], magic: &'static [u8; 8]) -> Self {
        Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)),
            magic,
        }
    }

    /// Seal `plaintext` under `context`. `nonce` must never repeat for a key.
    pub fn seal(
        &self,
        nonce: [u8; NONCE_LEN],
        plaintext: &[u8],
        context: &[(String, String)],
    ) -> Vec<u8> {
        let aad = canonical_context(context);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of a short secret cannot fail");
        [self.magic.as_slice(), &nonce, &sealed].concat()
    }

    /// Open a ciphertext; `denied` when it is not this key's or the context
    /// differs.
    pub fn open(&self, ciphertext: &[u8], context: &[(String, String)]) -> CapResult<Secret> {
        let invalid = || {
            error(
                ErrorCode::Denied,
                "InvalidCiphertextException: the ciphertext or its encryption context is wrong",
            )
        };
        let body = ciphertext
            .strip_prefix(self.magic.as_slice())
            .ok_or_else(invalid)?;
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
