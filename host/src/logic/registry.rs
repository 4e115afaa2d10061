//! Installed versions and the active pointer, as items in the host's
//! `logic` table (DynamoDB, or the local database file) through the same
//! [`Tables`] backends the logic uses — but a table never mapped for it.
//!
//! | pk | sk | what |
//! |---|---|---|
//! | `POINTER` | `#` | `active`, `canary`, `canaryPercent`, `shadow`, `history` (comma-separated), `revision`, `changedAt`, `reason` |
//! | `VERSION` | `{sha256}` | `tag`, `size`, `chunks`, `installedAt`, `contract` — written last: its presence means the version is complete |
//! | `COMPONENT#{sha256}` | `{0000}`… | `data`: the component in chunks under DynamoDB's item size limit |
//! | `HOST` | `{host id}` | a serving host's heartbeat: `contracts` it links (comma-separated), `seenAt`, `build`, `expiresAt` |
//! | `REMOVING` | `{sha256}` | a version `logic gc` is removing: `chunks` still to delete |
//!
//! Bounds: a heartbeat carries `expiresAt` (seconds, the table's TTL
//! attribute, as in the recordings table) [`HOST_KEPT`] after it was
//! written; readers skip expired ones and `logic gc` deletes them, so a
//! crashed host's item goes on both backends. Versions nobody needs are
//! removed by `logic gc` (`logic::retention`).

use std::sync::Arc;

use crate::capabilities::dynamodb::fields::{n, number, s, text};
use crate::capabilities::dynamodb::{
    AttributeCheck, AttributeValue, Condition, Item, KeyCondition, PutItem, Tables, Write,
    WriteError,
};
use crate::capabilities::{Describe as _, ErrorCode};
use crate::logic::{BUILTIN_TAG, Canary, Pointer, VersionInfo};
use crate::support::hex_sha256;

const TABLE: &str = "logic";
/// How long a heartbeat outlives its host: past [`HOST_GONE_AFTER`] a host
/// counts as gone; its item is kept a while longer for operators to see
/// in the table, then expires.
///
/// [`HOST_GONE_AFTER`]: crate::logic::serving::HOST_GONE_AFTER
pub const HOST_KEPT: std::time::Duration = std::time::Duration::from_secs(3_600);
/// Well under DynamoDB's 400 KB item limit.
const CHUNK_BYTES: usize = 256 << 10;
/// Chunks of one component at most: its version item is written with a
/// check of each, in one transaction of at most 100 writes (~24.75 MiB).
const MAX_CHUNKS: usize = 99;

/// Someone else changed the pointer since it was read.
#[derive(Debug)]
pub struct Conflict;

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the active pointer changed meanwhile; read it again")
    }
}

impl std::error::Error for Conflict {}

/// A version the pointer would name was removed (`logic gc`) meanwhile.
#[derive(Debug)]
pub struct Removed(pub String);

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "logic {} was removed (logic gc) meanwhile; install it again",
            crate::logic::short(&self.0)
        )
    }
}

impl std::error::Error for Removed {}

/// A serving host, as its last heartbeat says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostBeat {
    pub host: String,
    /// The contract versions it links (`0.2.0`, `0.1.0`, ...).
    pub contracts: Vec<String>,
    pub seen_at_ms: u64,
    /// The envmgr build it runs.
    pub build: String,
    /// The version it runs whatever the pointer says (`serve --logic
    /// FILE`); none when it follows the pointer.
    pub pinned: Option<String>,
}

#[derive(Clone)]
pub struct Registry {
    tables: Arc<dyn Tables>,
    builtin: &'static [u8],
    builtin_id: String,
}

fn key(pk: &str, sk: &str) -> Item {
    vec![s("pk", pk), s("sk", sk)]
}

/// The pointer is still at `seen` (none: absent).
fn unchanged(seen: Option<&Pointer>) -> Condition {
    match seen {
        Some(pointer) => Condition::Equals(AttributeCheck {
            name: "revision".into(),
            value: AttributeValue::N(pointer.revision.to_string()),
        }),
        None => Condition::ItemAbsent,
    }
}

/// Past its `expiresAt` (seconds; DynamoDB's TTL deletes lazily). A
/// heartbeat of a build before `expiresAt` ends [`HOST_KEPT`] after it was
/// seen.
fn expired(item: &Item, now_ms: u64) -> bool {
    let expires_at_ms = number(item, "expiresAt")
        .map(|at| at * 1_000)
        .or_else(|| Some(number(item, "seenAt")? + HOST_KEPT.as_millis() as u64));
    expires_at_ms.is_some_and(|at| at <= now_ms)
}

fn failed(what: &str) -> impl Fn(crate::capabilities::Error) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!("{what}: {}", e.describe())
}

impl Registry {
    /// `tables` must map the logical table `logic`; `builtin` is the
    /// component compiled into this host, installed without storage.
    pub fn new(tables: Arc<dyn Tables>, builtin: &'static [u8]) -> Self {
        Self {
            tables,
            builtin,
            builtin_id: hex_sha256(builtin),
        }
    }

    pub fn builtin_id(&self) -> &str {
        &self.builtin_id
    }

    /// Store a component (chunks first, the version item last), built for
    /// `contract`.
    pub async fn store(
        &self,
        id: &str,
        tag: Option<&str>,
        component: &[u8],
        contract: &str,
        now_ms: u64,
    ) -> anyhow::Result<()> {
        if id == self.builtin_id {
            return Ok(());
        }
        let chunks: Vec<&[u8]> = component.chunks(CHUNK_BYTES).collect();
        if chunks.len() > MAX_CHUNKS {
            anyhow::bail!(
                "a component of {} bytes is larger than the logic table holds ({} bytes)",
                component.len(),
                MAX_CHUNKS * CHUNK_BYTES
            );
        }
        let mut version = key("VERSION", id);
        version.extend([
            n("size", component.len() as u64),
            n("chunks", chunks.len() as u64),
            n("installedAt", now_ms),
            s("contract", contract),
        ]);
        if let Some(tag) = tag {
            version.push(s("tag", tag));
        }
        // The version item goes in only with every chunk present: a `logic
        // gc` removing the same version deletes chunks only while it is
        // absent (see `delete_chunks`), so one of the two gives way. Once
        // is enough unless another gc pass comes between.
        for _ in 0..3 {
            for (index, chunk) in chunks.iter().enumerate() {
                let mut item = key(&format!("COMPONENT#{id}"), &format!("{index:04}"));
                item.push(("data".into(), AttributeValue::B(chunk.to_vec())));
                self.put(item, Condition::None)
                    .await
                    .map_err(|e| anyhow::anyhow!("storing the component: {}", e.describe()))?;
            }
            let mut writes = vec![Write::Put(PutItem {
                table: TABLE.into(),
                item: version.clone(),
                condition: Condition::None,
            })];
            writes.extend((0..chunks.len()).map(|index| {
                Write::Check(KeyCondition {
                    table: TABLE.into(),
                    key: key(&format!("COMPONENT#{id}"), &format!("{index:04}")),
                    condition: Condition::ItemPresent,
                })
            }));
            match self.tables.transact_write(&writes).await {
                Ok(()) => return Ok(()),
                Err(WriteError::ConditionFailed(_)) => continue,
                Err(WriteError::Failed(e)) => {
                    anyhow::bail!("storing the version: {}", e.describe())
                }
            }
        }
        anyhow::bail!("logic gc removed the component while it was stored; install it again")
    }

    async fn put(&self, item: Item, condition: Condition) -> Result<(), WriteError> {
        self.tables
            .transact_write(&[Write::Put(PutItem {
                table: TABLE.into(),
                item,
                condition,
            })])
            .await
    }

    /// Every item of a partition, across pages.
    async fn partition(&self, pk: &str) -> anyhow::Result<Vec<Item>> {
        crate::capabilities::dynamodb::fields::partition(self.tables.as_ref(), TABLE, pk)
            .await
            .map_err(failed("reading the logic table"))
    }

    /// The installed versions, the builtin one first.
    pub async fn versions(&self) -> anyhow::Result<Vec<VersionInfo>> {
        let mut versions = vec![VersionInfo {
            id: self.builtin_id.clone(),
            tag: Some(BUILTIN_TAG.into()),
            size: self.builtin.len() as u64,
            installed_at_ms: 0,
            contract: Some(crate::contract::CURRENT.to_string()),
        }];
        for item in self.partition("VERSION").await? {
            let Some(id) = text(&item, "sk") else {
                continue;
            };
            if id == self.builtin_id {
                continue;
            }
            versions.push(VersionInfo {
                id,
                tag: text(&item, "tag"),
                size: number(&item, "size").unwrap_or(0),
                installed_at_ms: number(&item, "installedAt").unwrap_or(0),
                contract: text(&item, "contract"),
            });
        }
        Ok(versions)
    }

    /// A version named by its sha256, a unique prefix of it (6 digits at
    /// least) or its tag.
    pub async fn resolve(&self, name: &str) -> anyhow::Result<VersionInfo> {
        let versions = self.versions().await?;
        let matches: Vec<&VersionInfo> = versions
            .iter()
            .filter(|v| {
                v.tag.as_deref() == Some(name)
                    || (name.len() >= 6 && v.id.starts_with(&name.to_ascii_lowercase()))
            })
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => anyhow::bail!(
                "no installed logic version is named `{name}` (see `envmgr logic list`)"
            ),
            _ => anyhow::bail!("`{name}` names several versions; give more of the sha256"),
        }
    }

    /// The component bytes of an installed version, checked against its id.
    pub async fn component(&self, id: &str) -> anyhow::Result<Vec<u8>> {
        if id == self.builtin_id {
            return Ok(self.builtin.to_vec());
        }
        let mut bytes = Vec::new();
        for item in self.partition(&format!("COMPONENT#{id}")).await? {
            match item.into_iter().find(|(n, _)| n == "data") {
                Some((_, AttributeValue::B(data))) => bytes.extend(data),
                _ => anyhow::bail!("logic {id}: a stored chunk has no data"),
            }
        }
        if bytes.is_empty() {
            anyhow::bail!("logic {id} is not installed here");
        }
        if hex_sha256(&bytes) != id {
            anyhow::bail!("logic {id}: the stored component does not match its sha256");
        }
        Ok(bytes)
    }

    /// Say that host `host` serves now, linking `contracts`.
    pub async fn beat(&self, host: &str, contracts: &[&str], now_ms: u64) -> anyhow::Result<()> {
        self.beat_running(host, contracts, None, now_ms).await
    }

    /// [`beat`](Self::beat), for a host that runs version `pinned` whatever
    /// the pointer says (or follows the pointer, when none).
    pub async fn beat_running(
        &self,
        host: &str,
        contracts: &[&str],
        pinned: Option<&str>,
        now_ms: u64,
    ) -> anyhow::Result<()> {
        let mut item = key("HOST", host);
        if let Some(pinned) = pinned {
            item.push(s("pinned", pinned));
        }
        item.extend([
            s("contracts", contracts.join(",")),
            n("seenAt", now_ms),
            s("build", env!("CARGO_PKG_VERSION")),
            n("expiresAt", now_ms / 1_000 + HOST_KEPT.as_secs()),
        ]);
        self.put(item, Condition::None)
            .await
            .map_err(|e| anyhow::anyhow!("writing the host's heartbeat: {}", e.describe()))
    }

    /// A host that stops in order takes its heartbeat away.
    pub async fn forget_host(&self, host: &str) -> anyhow::Result<()> {
        self.tables
            .transact_write(&[Write::Delete(KeyCondition {
                table: TABLE.into(),
                key: key("HOST", host),
                condition: Condition::None,
            })])
            .await
            .map_err(|e| anyhow::anyhow!("removing the host's heartbeat: {}", e.describe()))
    }

    /// Every host's last heartbeat, but those expired.
    pub async fn hosts(&self, now_ms: u64) -> anyhow::Result<Vec<HostBeat>> {
        Ok(self
            .partition("HOST")
            .await?
            .into_iter()
            .filter(|item| !expired(item, now_ms))
            .filter_map(|item| {
                Some(HostBeat {
                    host: text(&item, "sk")?,
                    contracts: text(&item, "contracts")
                        .unwrap_or_default()
                        .split(',')
                        .filter(|c| !c.is_empty())
                        .map(str::to_string)
                        .collect(),
                    seen_at_ms: number(&item, "seenAt").unwrap_or(0),
                    build: text(&item, "build").unwrap_or_default(),
                    pinned: text(&item, "pinned"),
                })
            })
            .collect())
    }

    /// Delete expired heartbeats (crashed hosts'; TTL deletion on aws is
    /// lazy, and the local file has none). Each only if its host did not
    /// beat again meanwhile. Returns how many went.
    pub async fn forget_gone_hosts(&self, now_ms: u64) -> anyhow::Result<usize> {
        let mut forgotten = 0;
        for item in self.partition("HOST").await? {
            let (Some(host), Some(seen)) = (text(&item, "sk"), number(&item, "seenAt")) else {
                continue;
            };
            if !expired(&item, now_ms) {
                continue;
            }
            let deleted = self
                .tables
                .transact_write(&[Write::Delete(KeyCondition {
                    table: TABLE.into(),
                    key: key("HOST", &host),
                    condition: Condition::Equals(AttributeCheck {
                        name: "seenAt".into(),
                        value: AttributeValue::N(seen.to_string()),
                    }),
                })])
                .await;
            match deleted {
                Ok(()) => forgotten += 1,
                Err(WriteError::ConditionFailed(_)) => {}
                Err(WriteError::Failed(e)) => {
                    anyhow::bail!("removing a gone host's heartbeat: {}", e.describe())
                }
            }
        }
        Ok(forgotten)
    }

    /// Remove version `id`, unless the pointer moved since `seen` was read.
    /// Its version item goes in one transaction with a check of the
    /// pointer's revision, and [`Registry::swap`] checks that every version
    /// it names still has its item: an activation of `id` either lands
    /// first (this fails) or finds it gone (it fails). A `REMOVING` marker
    /// stands for the version until its chunks are deleted, so a crash
    /// half-way is finished by the next `logic gc`.
    pub async fn remove(
        &self,
        version: &VersionInfo,
        seen: Option<&Pointer>,
    ) -> anyhow::Result<()> {
        let chunks = version.size.div_ceil(CHUNK_BYTES as u64);
        let mut marker = key("REMOVING", &version.id);
        marker.push(n("chunks", chunks));
        let writes = [
            Write::Check(KeyCondition {
                table: TABLE.into(),
                key: key("POINTER", "#"),
                condition: unchanged(seen),
            }),
            // The version as read: one installed again since is kept.
            Write::Delete(KeyCondition {
                table: TABLE.into(),
                key: key("VERSION", &version.id),
                condition: Condition::Equals(AttributeCheck {
                    name: "installedAt".into(),
                    value: AttributeValue::N(version.installed_at_ms.to_string()),
                }),
            }),
            Write::Put(PutItem {
                table: TABLE.into(),
                item: marker,
                condition: Condition::None,
            }),
        ];
        match self.tables.transact_write(&writes).await {
            Ok(()) => {}
            Err(WriteError::ConditionFailed(_)) => return Err(Conflict.into()),
            Err(WriteError::Failed(e)) if e.code == ErrorCode::Conflict => {
                return Err(Conflict.into());
            }
            Err(WriteError::Failed(e)) => {
                anyhow::bail!("removing logic {}: {}", version.id, e.describe())
            }
        }
        self.delete_chunks(&version.id, chunks).await
    }

    /// Finish removals a crash interrupted; how many.
    pub async fn finish_removals(&self) -> anyhow::Result<usize> {
        let markers = self.partition("REMOVING").await?;
        for marker in &markers {
            if let Some(id) = text(marker, "sk") {
                self.delete_chunks(&id, number(marker, "chunks").unwrap_or(0))
                    .await?;
            }
        }
        Ok(markers.len())
    }

    /// The chunks by key (the count is known: no chunk is read), each batch
    /// only while the version item is absent — if `install` put it back
    /// meanwhile, its chunks stay (see `store`) — then the marker.
    async fn delete_chunks(&self, id: &str, chunks: u64) -> anyhow::Result<()> {
        let deletes: Vec<Write> = (0..chunks)
            .map(|index| {
                Write::Delete(KeyCondition {
                    table: TABLE.into(),
                    key: key(&format!("COMPONENT#{id}"), &format!("{index:04}")),
                    condition: Condition::None,
                })
            })
            .collect();
        // DynamoDB takes at most 100 writes a transaction: the check and 99.
        for batch in deletes.chunks(MAX_CHUNKS) {
            let mut writes = vec![Write::Check(KeyCondition {
                table: TABLE.into(),
                key: key("VERSION", id),
                condition: Condition::ItemAbsent,
            })];
            writes.extend_from_slice(batch);
            match self.tables.transact_write(&writes).await {
                Ok(()) => {}
                // Installed again: what is left is its.
                Err(WriteError::ConditionFailed(_)) => break,
                Err(WriteError::Failed(e)) => {
                    anyhow::bail!("removing logic {id}: {}", e.describe())
                }
            }
        }
        self.tables
            .transact_write(&[Write::Delete(KeyCondition {
                table: TABLE.into(),
                key: key("REMOVING", id),
                condition: Condition::None,
            })])
            .await
            .map_err(|e| anyhow::anyhow!("removing logic {id}: {}", e.describe()))
    }

    /// The active pointer; none before the first activation (the builtin
    /// version serves then).
    pub async fn pointer(&self) -> anyhow::Result<Option<Pointer>> {
        let item = self
            .tables
            .get(TABLE, &key("POINTER", "#"))
            .await
            .map_err(failed("reading the active pointer"))?;
        Ok(item.map(|item| Pointer {
            revision: number(&item, "revision").unwrap_or(0),
            active: text(&item, "active").unwrap_or_else(|| self.builtin_id.clone()),
            canary: text(&item, "canary").map(|version| Canary {
                version,
                percent: number(&item, "canaryPercent").unwrap_or(0).min(99) as u8,
            }),
            shadow: text(&item, "shadow"),
            history: text(&item, "history")
                .map(|h| {
                    h.split(',')
                        .filter(|v| !v.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            changed_at_ms: number(&item, "changedAt").unwrap_or(0),
            reason: text(&item, "reason").unwrap_or_default(),
        }))
    }

    /// Replace the pointer if it is still at `expected` (none: absent).
    pub async fn swap(&self, expected: Option<&Pointer>, next: &Pointer) -> anyhow::Result<()> {
        let mut item = key("POINTER", "#");
        item.extend([
            s("active", &next.active),
            s("history", next.history.join(",")),
            n("revision", next.revision),
            n("changedAt", next.changed_at_ms),
            s("reason", &next.reason),
        ]);
        if let Some(shadow) = &next.shadow {
            item.push(s("shadow", shadow));
        }
        if let Some(canary) = &next.canary {
            item.extend([
                s("canary", &canary.version),
                n("canaryPercent", u64::from(canary.percent)),
            ]);
        }
        let mut writes = vec![Write::Put(PutItem {
            table: TABLE.into(),
            item,
            condition: unchanged(expected),
        })];
        // Every version it serves is still installed (see `remove`).
        // Each once: a transaction may not touch one item twice (the
        // canary may also be the shadow, the active one too).
        let serves: Vec<&String> = std::iter::once(&next.active)
            .chain(next.canary.as_ref().map(|c| &c.version))
            .chain(&next.shadow)
            .filter(|id| **id != self.builtin_id)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        writes.extend(serves.iter().map(|id| {
            Write::Check(KeyCondition {
                table: TABLE.into(),
                key: key("VERSION", id),
                condition: Condition::ItemPresent,
            })
        }));
        match self.tables.transact_write(&writes).await {
            Ok(()) => Ok(()),
            Err(WriteError::ConditionFailed(failed)) => match failed.iter().find(|i| **i > 0) {
                Some(i) => Err(Removed(serves[*i as usize - 1].clone()).into()),
                None => Err(Conflict.into()),
            },
            Err(WriteError::Failed(e)) if e.code == ErrorCode::Conflict => Err(Conflict.into()),
            Err(WriteError::Failed(e)) => Err(anyhow::anyhow!(
                "writing the active pointer: {}",
                e.describe()
            )),
        }
    }
}
