//! The local KMS key: 32 random bytes made on first use and kept in the
//! embedded database under the configured alias; AES-256-GCM with the
//! encryption context enforced (see [`super::aead`]). Its key and nonces
//! are the store's fresh bytes: random, or — a reproducible store in
//! memory, the mock host's — the same every run, so the same secrets make
//! the same ciphertexts.

use async_trait::async_trait;
use rusqlite::{OptionalExtension as _, params};

use super::Kms;
use super::aead::{ContextKey, NONCE_LEN};
use crate::capabilities::{CapResult, ErrorCode, error};
use crate::local::{Durability, Store};
use crate::redact::Secret;

pub struct LocalKms {
    key: ContextKey,
    /// Where nonces come from.
    store: Store,
}

impl LocalKms {
    /// The key named `alias`, which must exist (a key being moved from:
    /// a mistyped name must not become a new, empty key).
    pub async fn existing(store: &Store, alias: &str) -> anyhow::Result<Self> {
        match Self::lookup(store, alias).await? {
            Some(bytes) => Self::from_bytes(store, bytes),
            None => anyhow::bail!(
                "config key `kms.previous_key_ids`: the local database has no key `{alias}`"
            ),
        }
    }

    async fn lookup(store: &Store, alias: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let alias = alias.to_string();
        store
            .query(move |connection| {
                connection
                    .query_row(
                        "SELECT key FROM kms_keys WHERE alias = ?1",
                        [&alias],
                        |row| row.get(0),
                    )
                    .optional()
            })
            .await
            .map_err(anyhow::Error::from)
    }

    /// The key named `alias`, created if the database has none yet.
    pub async fn open(store: &Store, alias: &str) -> anyhow::Result<Self> {
        // Most opens find the key: read it without taking the write lock.
        if let Some(bytes) = Self::lookup(store, alias).await? {
            return Self::from_bytes(store, bytes);
        }
        let alias = alias.to_string();
        let mut fresh = [0u8; 32];
        store
            .fill_random(&mut fresh)
            .map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
        let now = store.now_ms();
        let bytes: Vec<u8> = store
            .write(Durability::SurvivesPowerLoss, move |tx| {
                tx.execute(
                    "INSERT OR IGNORE INTO kms_keys (alias, key, created_at_ms) VALUES (?1, ?2, ?3)",
                    params![alias, fresh.to_vec(), now],
                )?;
                tx.query_row(
                    "SELECT key FROM kms_keys WHERE alias = ?1",
                    [&alias],
                    |row| row.get(0),
                )
                .optional()
                .map(Option::unwrap_or_default)
            })
            .await?;
        Self::from_bytes(store, bytes)
    }

    fn from_bytes(store: &Store, bytes: Vec<u8>) -> anyhow::Result<Self> {
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("the local KMS key in the database is not 32 bytes"))?;
        Ok(Self {
            key: ContextKey::new(&key, b"envmgrk1"),
            store: store.clone(),
        })
    }

    /// Encrypt under `context`, here (what `envmgr set-secret` does, and a
    /// test seeding secrets): nothing to wait for.
    pub fn seal(&self, plaintext: &str, context: &[(String, String)]) -> CapResult<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        self.store
            .fill_random(&mut nonce)
            .map_err(|e| error(ErrorCode::Unavailable, format!("no OS randomness: {e}")))?;
        Ok(self.key.seal(nonce, plaintext.as_bytes(), context))
    }
}

#[async_trait]
impl Kms for LocalKms {
    async fn decrypt(&self, ciphertext: &[u8], context: &[(String, String)]) -> CapResult<Secret> {
        self.key.open(ciphertext, context)
    }

    async fn encrypt(&self, plaintext: &str, context: &[(String, String)]) -> CapResult<Vec<u8>> {
        self.seal(plaintext, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(scope: &str) -> Vec<(String, String)> {
        vec![
            ("envmgr:app".to_string(), "app_shop".to_string()),
            ("envmgr:scope".to_string(), scope.to_string()),
        ]
    }

    #[tokio::test]
    async fn the_key_persists_and_the_context_is_enforced() {
        let dir =
            std::env::temp_dir().join(format!("envmgr-kms-{}", crate::support::random_hex(6)));
        let store = Store::open_dir(&dir).unwrap();
        let kms = LocalKms::open(&store, "alias/envmgr").await.unwrap();
        let sealed = kms.encrypt("hunter2", &context("preview")).await.unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"), "not plaintext");

        // Reopened from the file: the same key opens it.
        drop(kms);
        let kms = LocalKms::open(&Store::open_dir(&dir).unwrap(), "alias/envmgr")
            .await
            .unwrap();
        let opened = kms.decrypt(&sealed, &context("preview")).await.unwrap();
        assert_eq!(opened.expose(), "hunter2");

        // A wrong context, a tampered ciphertext, another key: refused.
        let wrong = kms
            .decrypt(&sealed, &context("production"))
            .await
            .unwrap_err();
        assert_eq!(wrong.code, ErrorCode::Denied);
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(
            kms.decrypt(&tampered, &context("preview"))
                .await
                .unwrap_err()
                .code,
            ErrorCode::Denied
        );
        let other = LocalKms::open(&store, "alias/other").await.unwrap();
        assert_eq!(
            other
                .decrypt(&sealed, &context("preview"))
                .await
                .unwrap_err()
                .code,
            ErrorCode::Denied
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// In a reproducible store (the mock host's) the key and the nonces
    /// follow from the store's draws: two such stores seal the same secrets
    /// alike, and no nonce repeats.
    #[tokio::test]
    async fn a_reproducible_store_makes_the_same_ciphertexts_every_run() {
        let sealed = || async {
            let store = Store::reproducible(|| 1).unwrap();
            let kms = LocalKms::open(&store, "alias/envmgr").await.unwrap();
            let one = kms.seal("hunter2", &context("preview")).unwrap();
            let two = kms.seal("hunter2", &context("preview")).unwrap();
            (kms, one, two)
        };
        let (kms, one, two) = sealed().await;
        let (_, again, _) = sealed().await;
        assert_eq!(one, again);
        assert_ne!(one, two, "a fresh nonce each time");
        let opened = kms.decrypt(&two, &context("preview")).await.unwrap();
        assert_eq!(opened.expose(), "hunter2");
    }
}
