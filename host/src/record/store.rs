//! Recordings on the deployment's own backend, through the same
//! [`Tables`] as everything else: a table in the database file (local) or
//! the DynamoDB table `init` creates (aws), never mapped for the logic.
//!
//! | pk | sk | what |
//! |---|---|---|
//! | `REC#{hour}` | `{handled ms}#{message id}#{receive count}#{chunk}` | `data`: the recording as gzip'd JSON, cut in chunks under DynamoDB's 400 KB item limit; `chunks`, `messageId`, `logic`, `expiresAt` |
//! | `SHADOWED#{version}` | `{handled ms}#{message id}#{receive count}` | a shadow run that differed or failed: `verdict`, `explained`, `expiresAt` |
//! | `SHADOWCOUNT#{version}` | `{host}` | one host's shadow verdicts so far: `identical`, `differs`, `fails`, `notReplayable`, `seenAt` |
//! | `HANDLER` | `{version}` | a version handled recordings still kept: `handledAt`, `expiresAt` (see [`super::handlers`]) |
//!
//! `{hour}` is hours since the Unix epoch: a time range is a run of
//! partitions. Bounded by time on both backends: `expiresAt` (seconds) is
//! DynamoDB's TTL attribute (`init` turns TTL on), and since TTL deletion is
//! lazy every read skips what has expired. The local table is also pruned,
//! oldest first, to `max_entries`.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;

use crate::capabilities::Describe as _;
use crate::capabilities::dynamodb::fields::{n, number, s, text};
use crate::capabilities::dynamodb::{
    AttributeValue, Condition, Item, PutItem, Tables, UpdateItem, Write,
};
use crate::config::Record as Settings;
use crate::record::Recording;
use crate::record::replay::Tally;

pub use super::packed::{pack, unpack};

/// The logical table.
pub const TABLE: &str = crate::config::RECORDINGS_TABLE;
/// Well under DynamoDB's 400 KB item limit with the other attributes.
const CHUNK_BYTES: usize = 300 << 10;
/// DynamoDB's limits on one transaction: 100 writes, 4 MB.
const MAX_WRITES: usize = 100;
const MAX_TRANSACTION_BYTES: usize = 3 << 20;
pub(super) const HOUR_MS: u64 = 3_600_000;

/// Which recordings to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// The newest n.
    Last(usize),
    /// Everything handled since this time (ms since the epoch).
    Since(u64),
    /// The newest delivery of each of these messages.
    Messages(Vec<String>),
}

/// A shadow run kept for `logic replay --shadow-report`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShadowResult {
    pub message: String,
    pub handled_at_ms: u64,
    pub verdict: String,
    pub explained: String,
}

/// The newest delivery of each of `ids` among `recordings`, oldest first;
/// or the ids no recording has, joined for a message.
pub fn newest_of_each(
    recordings: Vec<Recording>,
    ids: &[String],
) -> Result<Vec<Recording>, String> {
    let mut newest_of: BTreeMap<String, Recording> = BTreeMap::new();
    for recording in recordings {
        if !ids.contains(&recording.message.id) {
            continue;
        }
        match newest_of.get(&recording.message.id) {
            Some(kept) if kept.handled_at_ms > recording.handled_at_ms => {}
            _ => {
                newest_of.insert(recording.message.id.clone(), recording);
            }
        }
    }
    let missing: Vec<&str> = ids
        .iter()
        .filter(|id| !newest_of.contains_key(*id))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(missing.join(", "));
    }
    let mut chosen: Vec<Recording> = newest_of.into_values().collect();
    chosen.sort_by_key(|r| r.handled_at_ms);
    Ok(chosen)
}

#[derive(Clone)]
pub struct Recordings {
    pub(super) tables: Arc<dyn Tables>,
    /// The database file, where the table is pruned to `max_entries`.
    local: Option<(crate::local::Store, String)>,
    pub(super) settings: Settings,
}

fn data(item: &Item) -> Option<&[u8]> {
    item.iter().find_map(|(n, v)| match v {
        AttributeValue::B(b) if n == "data" => Some(b.as_slice()),
        _ => None,
    })
}

fn failed(what: &str) -> impl Fn(crate::capabilities::Error) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!("{what}: {}", e.describe())
}

impl Recordings {
    pub fn new(
        tables: Arc<dyn Tables>,
        local: Option<(crate::local::Store, String)>,
        settings: Settings,
    ) -> Self {
        Self {
            tables,
            local,
            settings,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub(super) fn expires_at_s(&self, from_ms: u64) -> u64 {
        from_ms / 1_000 + self.settings.retention_hours * 3_600
    }

    /// The writes that store one recording: its chunks.
    fn writes(&self, recording: &Recording) -> anyhow::Result<(Vec<Write>, usize)> {
        let packed = pack(recording)?;
        let chunks: Vec<&[u8]> = packed.chunks(CHUNK_BYTES).collect();
        let pk = format!("REC#{:08}", recording.handled_at_ms / HOUR_MS);
        let base = format!(
            "{:013}#{}#{}",
            recording.handled_at_ms, recording.message.id, recording.message.receive_count
        );
        let writes: Vec<Write> = chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| {
                Write::Put(PutItem {
                    table: TABLE.into(),
                    item: vec![
                        s("pk", &pk),
                        s("sk", format!("{base}#{i:03}")),
                        ("data".into(), AttributeValue::B(chunk.to_vec())),
                        n("chunks", chunks.len() as u64),
                        s("messageId", &recording.message.id),
                        s("logic", &recording.logic),
                        n("expiresAt", self.expires_at_s(recording.handled_at_ms)),
                    ],
                    condition: Condition::None,
                })
            })
            .collect();
        // DynamoDB takes at most 100 writes and 4 MB a transaction, and a
        // recording is stored whole in one.
        if writes.len() > MAX_WRITES || packed.len() > MAX_TRANSACTION_BYTES {
            anyhow::bail!(
                "a recording of {} bytes compressed is too large to keep (at most {} bytes)",
                packed.len(),
                MAX_TRANSACTION_BYTES
            );
        }
        Ok((writes, packed.len()))
    }

    /// Store one recording (one write of all its chunks); its compressed
    /// size.
    pub async fn put(&self, recording: &Recording) -> anyhow::Result<usize> {
        let stored = self.put_all(&[recording]).await;
        stored.into_iter().next().unwrap_or(Ok(0))
    }

    /// Store several, as few transactions as fit (each recording whole in
    /// one); per recording, its compressed size or why it was not stored.
    pub async fn put_all(&self, recordings: &[&Recording]) -> Vec<anyhow::Result<usize>> {
        let mut results: Vec<anyhow::Result<usize>> = Vec::with_capacity(recordings.len());
        let mut batch: Vec<Write> = Vec::new();
        let mut batch_bytes = 0;
        // Indices in `results` of the recordings in the batch.
        let mut members: Vec<usize> = Vec::new();
        for recording in recordings {
            match self.writes(recording) {
                Ok((writes, bytes)) => {
                    if batch.len() + writes.len() > MAX_WRITES
                        || batch_bytes + bytes > MAX_TRANSACTION_BYTES
                    {
                        self.commit(&mut batch, &mut members, &mut results).await;
                        batch_bytes = 0;
                    }
                    batch.extend(writes);
                    batch_bytes += bytes;
                    members.push(results.len());
                    results.push(Ok(bytes));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        self.commit(&mut batch, &mut members, &mut results).await;
        results
    }

    async fn commit(
        &self,
        batch: &mut Vec<Write>,
        members: &mut Vec<usize>,
        results: &mut [anyhow::Result<usize>],
    ) {
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.tables.transact_write(batch).await {
            for i in members.iter() {
                results[*i] = Err(anyhow::anyhow!("storing a recording: {}", e.describe()));
            }
        }
        batch.clear();
        members.clear();
    }

    pub(super) async fn partition(&self, pk: &str) -> anyhow::Result<Vec<Item>> {
        crate::capabilities::dynamodb::fields::partition(self.tables.as_ref(), TABLE, pk)
            .await
            .map_err(failed("reading recordings"))
    }

    /// The recordings of one hour, oldest first; expired and incomplete ones
    /// (being pruned, or half-written by a crash) left out.
    async fn hour(&self, hour: u64, now_ms: u64) -> anyhow::Result<Vec<Recording>> {
        let items = self.partition(&format!("REC#{hour:08}")).await?;
        let mut recordings = Vec::new();
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut current: Option<String> = None;
        for item in &items {
            if number(item, "expiresAt").is_some_and(|at| at * 1_000 <= now_ms) {
                continue;
            }
            let sk = text(item, "sk").unwrap_or_default();
            let sk = sk.as_str();
            let Some((base, _chunk)) = sk.rsplit_once('#') else {
                continue;
            };
            if current.as_deref() != Some(base) {
                parts.clear();
                current = Some(base.to_string());
            }
            parts.extend(data(item));
            if number(item, "chunks").is_some_and(|c| c as usize == parts.len()) {
                let packed = parts.concat();
                match unpack(&packed) {
                    Ok(recording) => recordings.push(recording),
                    Err(e) => {
                        tracing::warn!(recording = %base, error = %e, "skipping a recording that does not read")
                    }
                }
                parts.clear();
            }
        }
        Ok(recordings)
    }

    /// The chosen recordings, oldest first.
    pub async fn select(
        &self,
        selection: &Selection,
        now_ms: u64,
    ) -> anyhow::Result<Vec<Recording>> {
        let newest = now_ms / HOUR_MS;
        let oldest = now_ms.saturating_sub(self.settings.retention_hours * HOUR_MS) / HOUR_MS;
        let mut chosen = Vec::new();
        match selection {
            Selection::Last(count) => {
                for hour in (oldest..=newest).rev() {
                    let mut recordings = self.hour(hour, now_ms).await?;
                    recordings.append(&mut chosen);
                    chosen = recordings;
                    if chosen.len() >= *count {
                        break;
                    }
                }
                let excess = chosen.len().saturating_sub(*count);
                chosen.drain(..excess);
            }
            Selection::Since(since_ms) => {
                for hour in (since_ms / HOUR_MS).max(oldest)..=newest {
                    chosen.extend(
                        self.hour(hour, now_ms)
                            .await?
                            .into_iter()
                            .filter(|r| r.handled_at_ms >= *since_ms),
                    );
                }
            }
            Selection::Messages(ids) => {
                for hour in oldest..=newest {
                    chosen.extend(
                        self.hour(hour, now_ms)
                            .await?
                            .into_iter()
                            .filter(|r| ids.contains(&r.message.id)),
                    );
                }
                chosen = newest_of_each(chosen, ids).map_err(|missing| {
                    anyhow::anyhow!(
                        "no recording of {missing} within the last {} hours",
                        self.settings.retention_hours
                    )
                })?;
            }
        }
        Ok(chosen)
    }

    /// Local only: drop what expired and, past `max_entries`, the oldest.
    /// By key alone (a recording's key begins with when it was handled):
    /// no item is read. Returns how many items went.
    pub async fn prune(&self, now_ms: u64) -> anyhow::Result<usize> {
        let Some((store, physical)) = &self.local else {
            return Ok(0);
        };
        let physical = physical.clone();
        let keep = self.settings.max_entries as i64;
        let oldest_kept = now_ms.saturating_sub(self.settings.retention_hours * HOUR_MS);
        let partition = format!("REC#{:08}", oldest_kept / HOUR_MS);
        let sort = format!("{oldest_kept:013}");
        let removed = store
            .write(crate::local::Durability::SurvivesCrash, move |connection| {
                // `;` sorts after the digits and `#`: REC#…/SHADOWED#… only.
                let expired = connection.execute(
                    "DELETE FROM items WHERE tbl = ?1 AND pk >= 'REC#' AND pk < 'REC;'
                       AND (pk < ?2 OR (pk = ?2 AND sk < ?3))",
                    rusqlite::params![physical, partition, sort],
                )? + connection.execute(
                    "DELETE FROM items WHERE tbl = ?1 AND pk >= 'SHADOWED#' AND pk < 'SHADOWED;'
                       AND sk < ?2",
                    rusqlite::params![physical, sort],
                )? + connection.execute(
                    // One item per host and version, one per handler: few,
                    // read here.
                    "DELETE FROM items WHERE tbl = ?1
                       AND ((pk >= 'SHADOWCOUNT#' AND pk < 'SHADOWCOUNT;') OR pk = 'HANDLER')
                       AND CAST(json_extract(item, '$.expiresAt.N') AS INTEGER) <= ?2",
                    rusqlite::params![physical, now_ms / 1_000],
                )?;
                let stored: i64 = connection.query_row(
                    "SELECT COUNT(*) FROM items WHERE tbl = ?1 AND pk >= 'REC#' AND pk < 'REC;'",
                    [&physical],
                    |row| row.get(0),
                )?;
                let excess = (stored - keep).max(0);
                let oldest = connection.execute(
                    "DELETE FROM items WHERE tbl = ?1 AND (pk, sk) IN (
                       SELECT pk, sk FROM items WHERE tbl = ?1 AND pk >= 'REC#' AND pk < 'REC;'
                       ORDER BY pk, sk LIMIT ?2)",
                    rusqlite::params![physical, excess],
                )?;
                Ok(expired + oldest)
            })
            .await
            .context("pruning recordings")?;
        Ok(removed)
    }

    /// Keep a shadow run that differed or failed.
    pub async fn put_shadow_result(
        &self,
        version: &str,
        recording: &Recording,
        verdict: &str,
        explained: &str,
    ) -> anyhow::Result<()> {
        let item = vec![
            s("pk", format!("SHADOWED#{version}")),
            s(
                "sk",
                format!(
                    "{:013}#{}#{}",
                    recording.handled_at_ms, recording.message.id, recording.message.receive_count
                ),
            ),
            s("messageId", &recording.message.id),
            s("verdict", verdict),
            s("explained", crate::redact::cut(explained, 20_000)),
            n("handledAt", recording.handled_at_ms),
            n("expiresAt", self.expires_at_s(recording.handled_at_ms)),
        ];
        self.put_item(item, "storing a shadow result").await
    }

    /// Put one item, unconditionally.
    pub(super) async fn put_item(&self, item: Item, what: &str) -> anyhow::Result<()> {
        self.tables
            .transact_write(&[Write::Put(PutItem {
                table: TABLE.into(),
                item,
                condition: Condition::None,
            })])
            .await
            .map_err(|e| anyhow::anyhow!("{what}: {}", e.describe()))
    }

    /// The kept shadow runs of a version, oldest first.
    pub async fn shadow_results(
        &self,
        version: &str,
        now_ms: u64,
    ) -> anyhow::Result<Vec<ShadowResult>> {
        Ok(self
            .partition(&format!("SHADOWED#{version}"))
            .await?
            .iter()
            .filter(|item| number(item, "expiresAt").is_none_or(|at| at * 1_000 > now_ms))
            .map(|item| ShadowResult {
                message: text(item, "messageId").unwrap_or_default(),
                handled_at_ms: number(item, "handledAt").unwrap_or(0),
                verdict: text(item, "verdict").unwrap_or_default(),
                explained: text(item, "explained").unwrap_or_default(),
            })
            .collect())
    }

    /// One host's shadow verdicts for a version so far (the host's own
    /// item: hosts never write each other's).
    pub async fn put_shadow_counts(
        &self,
        version: &str,
        host: &str,
        tally: &Tally,
        now_ms: u64,
    ) -> anyhow::Result<()> {
        let update = UpdateItem {
            table: TABLE.into(),
            key: vec![s("pk", format!("SHADOWCOUNT#{version}")), s("sk", host)],
            set: vec![
                n("identical", tally.identical as u64),
                n("differs", tally.differs as u64),
                n("fails", tally.fails as u64),
                n("notReplayable", tally.not_replayable as u64),
                n("seenAt", now_ms),
                // A host that stopped leaves its counts for as long as a
                // recording is kept, then they go (TTL; local: prune).
                n("expiresAt", self.expires_at_s(now_ms)),
            ],
            condition: Condition::None,
        };
        self.tables
            .update(&update)
            .await
            .map_err(|e| anyhow::anyhow!("storing shadow counts: {}", e.describe()))
    }

    /// A version's shadow verdicts summed over every host that counted
    /// within the retention.
    /// `host`: that host's alone (what it counted before it dropped its
    /// tally, to go on from).
    pub async fn shadow_counts(
        &self,
        version: &str,
        host: Option<&str>,
        now_ms: u64,
    ) -> anyhow::Result<Tally> {
        let mut tally = Tally::default();
        for item in self.partition(&format!("SHADOWCOUNT#{version}")).await? {
            if number(&item, "expiresAt").is_some_and(|at| at * 1_000 <= now_ms)
                || host.is_some_and(|host| text(&item, "sk").as_deref() != Some(host))
            {
                continue;
            }
            let count = |name: &str| number(&item, name).unwrap_or(0) as usize;
            tally.identical += count("identical");
            tally.differs += count("differs");
            tally.fails += count("fails");
            tally.not_replayable += count("notReplayable");
        }
        Ok(tally)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::tape::Taped;
    use crate::record::RecordedMessage;

    fn delivery(id: &str, receive_count: u32, handled_at_ms: u64) -> Recording {
        Recording {
            format: crate::record::FORMAT,
            build: String::new(),
            logic: String::new(),
            contract: String::new(),
            queue: "probot".to_string(),
            message: RecordedMessage {
                id: id.to_string(),
                source_queue: String::new(),
                body: String::new(),
                attributes: Vec::new(),
                receive_count,
                sent_at_ms: 0,
                delivery_token: String::new(),
                deferrals: 0,
            },
            config: Default::default(),
            handled_at_ms,
            outcome: String::new(),
            taped: Taped::default(),
        }
    }

    #[test]
    fn messages_named_are_their_newest_deliveries_and_every_one_must_be_there() {
        // The newest neither first nor last in the list.
        let all = vec![
            delivery("m-1", 1, 200),
            delivery("m-2", 1, 100),
            delivery("m-1", 3, 400),
            delivery("m-3", 1, 500),
            delivery("m-1", 2, 300),
        ];
        let ids = vec!["m-1".to_string(), "m-2".to_string()];
        let chosen = newest_of_each(all.clone(), &ids).unwrap();
        assert_eq!(
            chosen.iter().map(Recording::name).collect::<Vec<_>>(),
            ["m-2#1", "m-1#3"]
        );
        let ids = vec!["m-1".to_string(), "m-9".to_string(), "m-8".to_string()];
        assert_eq!(newest_of_each(all, &ids).unwrap_err(), "m-9, m-8");
    }

    /// DynamoDB refuses a transaction over 4 MB: a recording that does not
    /// fit in one is refused with its size, and nothing of it is written.
    #[tokio::test]
    async fn a_recording_too_large_for_one_transaction_is_refused_whole() {
        let tables = Arc::new(
            crate::capabilities::dynamodb::local::LocalTables::in_memory(&[TABLE]).unwrap(),
        );
        let recordings = Recordings::new(tables.clone(), None, Settings::default());
        let mut large = delivery("m-1", 1, 1_795_867_200_000);
        // 8 MB of hex that does not repeat: about 4 MB gzip'd.
        let mut state: u64 = 1;
        large.message.body = (0..1_000_000)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                format!("{state:016x}")
            })
            .collect::<String>()
            .chars()
            .take(8 << 20)
            .collect();
        let refused = recordings.put(&large).await.unwrap_err().to_string();
        assert!(refused.contains("too large to keep"), "{refused}");
        assert!(tables.scan(TABLE).unwrap().is_empty());

        let small = delivery("m-2", 1, 1_795_867_200_000);
        assert!(recordings.put(&small).await.is_ok());
        assert!(!tables.scan(TABLE).unwrap().is_empty());
    }
}
