//! `envmgr secrets re-encrypt --to KEY`: every ciphertext envmgr keeps,
//! moved to another KMS key with no downtime (the runbook:
//! docs/guides/rotate-credentials.md, "Moving to a new KMS key").
//!
//! It moves each secret item's `ciphertext` (the `secrets` table), each
//! environment's `signingKeyCiphertext` (canonical items of the
//! `environments` table) and the KMS probe (the `logic` table). Each is
//! decrypted under its own encryption context with whichever configured
//! key made it (`kms.key_id`, `kms.previous_key_ids`), encrypted under KEY
//! with the same context, and written back only if the item still holds
//! the ciphertext read: a `set-secret` or a newer request meanwhile wins,
//! and it is already under the configured key. A ciphertext KEY already
//! decrypts is left alone, so a second run moves nothing, and an
//! interrupted one is finished by running it again. A ciphertext can come
//! back under the old key after the run (a create that read the record
//! before and writes it again after): run it until it moves nothing and
//! `envmgr_kms_previous_key_decrypts_total` stops growing, then drop the
//! old key. Plaintexts stay in `Secret`s and are never printed.
//!
//! KEY must be `kms.key_id`: the hosts that run this config then encrypt
//! new ciphertexts under it too and decrypt what this moves, so nothing is
//! left under a key about to go.

use anyhow::bail;

use crate::capabilities::dynamodb::fields::text;
use crate::capabilities::dynamodb::{
    AttributeCheck, AttributeValue, Condition, Item, Tables, UpdateItem, WriteError,
};
use crate::capabilities::kms::{Kms, as_written};
use crate::capabilities::{Describe as _, ErrorCode};
use crate::config::Settings;
use crate::platform::Platform;

/// What became of the ciphertexts of one kind.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Moved {
    pub moved: usize,
    /// Already under KEY.
    pub already: usize,
    /// Changed while this ran: written under the configured key meanwhile.
    pub changed: usize,
    /// No configured key decrypts it (`table pk sk: why`): it was broken
    /// before this ran; removing the old key will not make it worse, but
    /// look.
    pub unreadable: Vec<String>,
}

impl std::fmt::Display for Moved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} moved, {} already under the key, {} changed meanwhile, {} unreadable",
            self.moved,
            self.already,
            self.changed,
            self.unreadable.len()
        )
    }
}

/// One ciphertext where it lives.
struct Stored {
    table: &'static str,
    key: Item,
    attribute: &'static str,
    ciphertext: Vec<u8>,
    context: Vec<(String, String)>,
}

/// The secret items' ciphertexts.
fn secrets(items: Vec<Item>) -> impl Iterator<Item = Stored> {
    items.into_iter().filter_map(|item| {
        let pk = text(&item, "pk")?;
        let sk = text(&item, "sk")?;
        let app = pk.strip_prefix("APP#")?;
        let (scope, name) = sk.strip_prefix("SECRET#")?.rsplit_once('#')?;
        Some(Stored {
            context: crate::catalog::secret_context(app, scope, name),
            ciphertext: bytes(&item, "ciphertext")?,
            key: key_of(&pk, &sk),
            table: "secrets",
            attribute: "ciphertext",
        })
    })
}

/// The canonical environment items' signing keys.
fn signing_keys(items: Vec<Item>) -> impl Iterator<Item = Stored> {
    items.into_iter().filter_map(|item| {
        let pk = text(&item, "pk")?;
        if !pk.starts_with("ENVIRONMENT#") || text(&item, "sk")? != "#" {
            return None;
        }
        Some(Stored {
            context: crate::capabilities::keys::key_context(
                &text(&item, "appId")?,
                &text(&item, "environmentId")?,
                &text(&item, "requestVersion")?,
            ),
            ciphertext: bytes(&item, "signingKeyCiphertext")?,
            key: key_of(&pk, "#"),
            table: "environments",
            attribute: "signingKeyCiphertext",
        })
    })
}

fn bytes(item: &Item, name: &str) -> Option<Vec<u8>> {
    item.iter().find_map(|(n, v)| match v {
        AttributeValue::B(b) if n == name => Some(b.clone()),
        _ => None,
    })
}

fn key_of(pk: &str, sk: &str) -> Item {
    vec![
        ("pk".into(), AttributeValue::S(pk.into())),
        ("sk".into(), AttributeValue::S(sk.into())),
    ]
}

/// Move each of `stored` to `to`, decrypting with `from`.
async fn move_all(
    tables: &dyn Tables,
    from: &dyn Kms,
    to: &dyn Kms,
    stored: impl Iterator<Item = Stored>,
) -> anyhow::Result<Moved> {
    let mut moved = Moved::default();
    for one in stored {
        let ciphertext = as_written(&one.ciphertext).into_owned();
        // Only a refusal says which key made it; KMS unreachable or
        // throttled stops the run (run it again), never counts as broken.
        let stopped = |e: crate::capabilities::Error| {
            anyhow::anyhow!(
                "decrypting {} {}: {}",
                one.table,
                show_key(&one.key),
                e.describe()
            )
        };
        match to.decrypt(&ciphertext, &one.context).await {
            Ok(_) => {
                moved.already += 1;
                continue;
            }
            Err(e) if e.code != ErrorCode::Denied => return Err(stopped(e)),
            Err(_) => {}
        }
        let plaintext = match from.decrypt(&ciphertext, &one.context).await {
            Ok(plaintext) => plaintext,
            Err(e) if e.code != ErrorCode::Denied => return Err(stopped(e)),
            Err(e) => {
                moved.unreadable.push(format!(
                    "{} {}: {}",
                    one.table,
                    show_key(&one.key),
                    e.message
                ));
                continue;
            }
        };
        let next = to
            .encrypt(plaintext.expose(), &one.context)
            .await
            .map_err(|e| anyhow::anyhow!("encrypting under the new key: {}", e.describe()))?;
        let update = UpdateItem {
            table: one.table.into(),
            key: one.key.clone(),
            set: vec![(one.attribute.into(), AttributeValue::B(next))],
            condition: Condition::Equals(AttributeCheck {
                name: one.attribute.into(),
                value: AttributeValue::B(one.ciphertext.clone()),
            }),
        };
        match tables.update(&update).await {
            Ok(()) => moved.moved += 1,
            Err(WriteError::ConditionFailed(_)) => moved.changed += 1,
            Err(WriteError::Failed(e)) => {
                bail!(
                    "writing {} {}: {}",
                    one.table,
                    show_key(&one.key),
                    e.describe()
                )
            }
        }
    }
    Ok(moved)
}

fn show_key(key: &Item) -> String {
    key.iter()
        .filter_map(|(_, v)| match v {
            AttributeValue::S(s) => Some(s.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The command: moves, prints what it did, and fails if anything stayed
/// unreadable (then the old key must not go yet).
pub async fn re_encrypt(platform: &Platform, settings: &Settings, to: &str) -> anyhow::Result<()> {
    if to != settings.kms.key_id {
        bail!(
            "--to {to} is not `kms.key_id` ({}): set `kms.key_id = \"{to}\"` and `kms.previous_key_ids` to the key(s) being left, on every host first (docs/guides/rotate-credentials.md)",
            settings.kms.key_id
        );
    }
    let target = platform.key(to).await?;
    let tables = platform.tables.as_ref();
    let read = |table: &'static str| async move {
        tables
            .scan_all(table)
            .await
            .map_err(|e| anyhow::anyhow!("reading the {table} table: {}", e.describe()))
    };
    let secrets = move_all(
        tables,
        platform.kms.as_ref(),
        target.as_ref(),
        secrets(read("secrets").await?),
    )
    .await?;
    println!("secrets: {secrets}");
    let keys = move_all(
        tables,
        platform.kms.as_ref(),
        target.as_ref(),
        signing_keys(read("environments").await?),
    )
    .await?;
    println!("signing keys: {keys}");
    crate::admin::store_kms_probe(platform, settings).await?;
    let unreadable: Vec<&String> = secrets.unreadable.iter().chain(&keys.unreadable).collect();
    for item in &unreadable {
        println!("unreadable: {item}");
    }
    if !unreadable.is_empty() {
        bail!(
            "{} ciphertexts no configured key decrypts (listed above): keep the old key until they are set again",
            unreadable.len()
        );
    }
    Ok(())
}
