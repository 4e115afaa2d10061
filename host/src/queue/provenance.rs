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
//! itself, or one whose seal does not match, is not taken: the copy's own
//! send time is, as before — it can only shorten a report's life, never
//! lengthen it. When a host's App key rotates (`crate::rotation`) it seals
//! with the new key and still takes seals of the one before, so copies
//! made before the rotation keep their time; a host restarted with the new
//! key only knows the new one.

use aws_lc_rs::hmac;
use sha2::{Digest as _, Sha256};

/// Seals and checks the original send time of envmgr's copies.
pub struct Provenance {
    /// The newest first: seals are made with it, checked against both.
    keys: std::sync::RwLock<Vec<hmac::Key>>,
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
        Self {
            keys: std::sync::RwLock::new(vec![derive(secret)]),
        }
    }

    /// Seal with a key derived from `secret` from now on; seals of the key
    /// before it still hold (bound: two keys).
    pub fn rotate(&self, secret: &[u8]) {
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        keys.insert(0, derive(secret));
        keys.truncate(2);
    }

    fn keys(&self) -> std::sync::RwLockReadGuard<'_, Vec<hmac::Key>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    fn signed(body: &str, sent_at_ms: u64) -> Vec<u8> {
        let mut signed = Sha256::digest(body.as_bytes()).to_vec();
        signed.extend_from_slice(&sent_at_ms.to_be_bytes());
        signed
    }

    /// The seal of `sent_at_ms` on a copy of `body`, in hex.
    pub fn seal(&self, body: &str, sent_at_ms: u64) -> String {
        hex::encode(hmac::sign(&self.keys()[0], &Self::signed(body, sent_at_ms)).as_ref())
    }

    /// Whether `seal` is this key's seal of `sent_at_ms` on `body`
    /// (compared in constant time).
    pub fn verify(&self, body: &str, sent_at_ms: u64, seal: &str) -> bool {
        let Ok(tag) = hex::decode(seal) else {
            return false;
        };
        let signed = Self::signed(body, sent_at_ms);
        self.keys()
            .iter()
            .any(|key| hmac::verify(key, &signed, &tag).is_ok())
    }
}

fn derive(secret: &[u8]) -> hmac::Key {
    let derived = Sha256::new()
        .chain_update(LABEL)
        .chain_update(secret)
        .finalize();
    hmac::Key::new(hmac::HMAC_SHA256, &derived)
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

    #[test]
    fn after_a_rotation_seals_of_the_key_before_still_hold_and_no_older() {
        let hosts = Provenance::from_shared_secret(b"first");
        let first = hosts.seal("b", 1);
        hosts.rotate(b"second");
        let second = hosts.seal("b", 1);
        assert_ne!(first, second, "sealed with the new key");
        assert!(hosts.verify("b", 1, &first) && hosts.verify("b", 1, &second));
        hosts.rotate(b"third");
        assert!(!hosts.verify("b", 1, &first), "two keys at most");
        assert!(hosts.verify("b", 1, &second));
    }
}
