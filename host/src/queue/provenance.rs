//! When a message was first sent, across the copies envmgr makes of it.
//!
//! A runtime's status report is judged against when it was sent (it must
//! not have expired by then). SQS gives every copy a new `SentTimestamp`,
//! and envmgr makes copies of its own: a deferral and a put-back after a
//! host fault (a delayed copy, since SQS cannot delay a received message),
//! and a dead letter and its `dlq redrive`. So a report sent on time would
//! be refused after a few minutes of copies. The local queue keeps the
//! original time in place; on SQS envmgr carries it on its copies, in its
//! metadata attribute (`sentAt`), sealed (`sentAtSeal`: HMAC-SHA256 over the
//! body's digest and the time).
//!
//! The seal's key is one every host has and no producer: derived (SHA-256,
//! with a label of its own) from the GitHub App's private key, which every
//! host of the aws backend is configured with. A time a producer wrote
//! itself, or one whose seal does not match (another App key, after a
//! rotation), is not taken: the copy's own send time is, as before — it
//! can only shorten a report's life, never lengthen it.

use aws_lc_rs::hmac;
use sha2::{Digest as _, Sha256};

/// Seals and checks the original send time of envmgr's copies.
pub struct Provenance {
    key: hmac::Key,
}

impl std::fmt::Debug for Provenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Provenance(<key>)")
    }
}

/// Kept apart from every other use of the App key.
const LABEL: &[u8] = b"envmgr: the original send time of a copy, v1\n";

impl Provenance {
    /// The key derived from a secret every host shares (the App's key).
    pub fn from_shared_secret(secret: &[u8]) -> Self {
        let derived = Sha256::new()
            .chain_update(LABEL)
            .chain_update(secret)
            .finalize();
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &derived),
        }
    }

    fn signed(body: &str, sent_at_ms: u64) -> Vec<u8> {
        let mut signed = Sha256::digest(body.as_bytes()).to_vec();
        signed.extend_from_slice(&sent_at_ms.to_be_bytes());
        signed
    }

    /// The seal of `sent_at_ms` on a copy of `body`, in hex.
    pub fn seal(&self, body: &str, sent_at_ms: u64) -> String {
        hex::encode(hmac::sign(&self.key, &Self::signed(body, sent_at_ms)).as_ref())
    }

    /// Whether `seal` is this key's seal of `sent_at_ms` on `body`
    /// (compared in constant time).
    pub fn verify(&self, body: &str, sent_at_ms: u64, seal: &str) -> bool {
        let Ok(tag) = hex::decode(seal) else {
            return false;
        };
        hmac::verify(&self.key, &Self::signed(body, sent_at_ms), &tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_holds_for_its_body_and_time_under_its_key_only() {
        let hosts = Provenance::from_shared_secret(b"-----BEGIN RSA PRIVATE KEY-----\nA");
        let seal = hosts.seal("{\"report\":\"x\"}", 1_800_000_000_000);
        assert!(hosts.verify("{\"report\":\"x\"}", 1_800_000_000_000, &seal));
        assert!(!hosts.verify("{\"report\":\"x\"}", 1_800_000_000_001, &seal));
        assert!(!hosts.verify("{\"report\":\"y\"}", 1_800_000_000_000, &seal));
        let other = Provenance::from_shared_secret(b"another key");
        assert!(!other.verify("{\"report\":\"x\"}", 1_800_000_000_000, &seal));
        assert!(!hosts.verify("{\"report\":\"x\"}", 1_800_000_000_000, "not hex"));
    }
}
