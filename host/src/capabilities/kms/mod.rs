//! KMS decryption under an encryption context. Plaintext is sealed at once.

pub mod aead;
pub mod aws;
pub mod either;
pub mod local;

use std::borrow::Cow;
use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::capabilities::CapResult;
use crate::redact::Secret;

/// A KMS (aws-sdk-kms, or the embedded local key).
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

/// The ciphertext an item holds, as KMS made it. AWS CLI v1 stores a `B`
/// value written as JSON as its base64 text (v2 decodes it first), so an
/// operator following the docs with v1 stores the letters. Such a value is
/// all base64 letters, which a KMS ciphertext (its first byte is a version
/// number) or envmgr's local one (a random nonce first) never is: it is
/// read as what it encodes.
pub fn as_written(ciphertext: &[u8]) -> Cow<'_, [u8]> {
    use base64::Engine as _;
    let letters = ciphertext.len().is_multiple_of(4)
        && ciphertext
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if letters
        && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(ciphertext)
        && decoded.len() >= *crate::catalog::rules::CIPHERTEXT_BYTES.start()
    {
        return Cow::Owned(decoded);
    }
    Cow::Borrowed(ciphertext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ciphertext_stored_as_base64_text_is_read_as_its_bytes() {
        use base64::Engine as _;
        // KMS ciphertexts begin with version bytes 01 02 02 00.
        let blob: Vec<u8> = [1u8, 2, 2, 0].into_iter().chain(0..60).collect();
        assert_eq!(as_written(&blob).as_ref(), blob.as_slice());
        let text = base64::engine::general_purpose::STANDARD.encode(&blob);
        assert_eq!(as_written(text.as_bytes()).as_ref(), blob.as_slice());
        // Too short to be a ciphertext once decoded: left as it is.
        assert_eq!(as_written(b"QUJD").as_ref(), b"QUJD");
    }
}
