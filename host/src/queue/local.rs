//! Queues in the embedded database, with SQS's contract: visibility
//! timeout, receive count, and the redrive to the dead-letter queue after
//! `max_receive_count` receives. Messages survive a restart: one in flight
//! when the process died comes back when its visibility timeout ends.
//!
//! Durability per operation ([`Durability`]): a message sent, and what the
//! `dlq` commands do, is on the disk before the call returns; the consumer's
//! receives, deletes, visibility changes, deferrals and dead-letter copies
//! survive a crash of the process, and a power loss may undo the last of
//! them, which makes a message come back (a delete is never kept without
//! what was committed before it).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::params;

use super::{
    Attribute, DeadLetter, Deferral, MAX_DELAY, METADATA_ATTRIBUTE, Metadata, Queue, QueueState,
    Received, ReceivedDeadLetter,
};
use crate::bindings::Message;
use crate::config::Queue as QueueSettings;
use crate::local::{Durability, Store};
use crate::support::{now_ms, random_hex};

mod attributes;
mod inspect;

use attributes::{decode_attributes, encode_attributes};
pub use inspect::{StoredMessage, depth, messages};

/// How often a long poll looks again (another process may have sent). A
/// look is a read, which never waits for a writer: cheap enough to be often.
/// How often an empty queue looks again when nothing wakes it: a commit
/// to the file (by any process) wakes it where the file is watched, so
/// there the look is only a safety net.
const POLL_EVERY: Duration = Duration::from_millis(25);
const POLL_EVERY_WATCHED: Duration = Duration::from_millis(250);
/// After a wake-up the queue looks again 1, 2, 4 and 8 ms later, then
/// listens for the next change.
const SETTLED_AFTER: Duration = Duration::from_millis(8);

pub struct LocalQueue {
    store: Store,
    logical: String,
    settings: QueueSettings,
}

impl LocalQueue {
    pub fn new(store: Store, logical: &str, settings: &QueueSettings) -> Self {
        Self {
            store,
            logical: logical.to_string(),
            settings: settings.clone(),
        }
    }

    #[cfg(test)]
    fn store_for_tests(&self) -> &Store {
        &self.store
    }

    /// Take up to `max` visible messages: hide each for the visibility
    /// timeout under a fresh receipt, or move it to the dead-letter queue if
    /// it was received `max_receive_count` times already (SQS's redrive).
    async fn take(&self, max: usize) -> rusqlite::Result<Vec<Received>> {
        let queue = self.settings.name.clone();
        let dead_letter = self.settings.dead_letter_name();
        let max_receives = i64::from(self.settings.max_receive_count);
        let visibility_ms = i64::from(self.settings.visibility_timeout_seconds) * 1_000;
        let logical = self.logical.clone();
        self.store
            .write(Durability::SurvivesCrash, move |tx| {
                let now = now_ms();
                let mut received = Vec::new();
                for row in visible(tx, &queue, now, max)? {
                    let receive_count = row.receive_count;
                    if receive_count >= max_receives {
                        tx.prepare_cached("UPDATE messages SET queue = ?2, receipt = NULL, visible_at_ms = ?3
                             WHERE seq = ?1")?.execute(params![row.seq, dead_letter, now],
                        )?;
                        tracing::warn!(queue = %logical, message_id = %row.id, receive_count, "received too often: moved to the dead-letter queue");
                        continue;
                    }
                    let receipt = hide(tx, row.seq, now + visibility_ms)?;
                    let (attributes, metadata) = decode_attributes(&row.attributes);
                    received.push(Received {
                        message: Message {
                            id: row.id,
                            source_queue: logical.clone(),
                            body: row.body,
                            attributes: super::text_attributes(&attributes),
                            receive_count: (receive_count + 1) as u32,
                            sent_at_ms: row.sent_at_ms as u64,
                            delivery_token: random_hex(16),
                            deferrals: metadata.unwrap_or_default().deferrals,
                        },
                        receipt,
                        attributes,
                        trace_header: None,
                    });
                }
                Ok(received)
            })
            .await
    }
}

/// When the next message of a queue is visible, as a long poll needs to know.
enum NextVisible {
    Now,
    In(Duration),
    /// The queue is empty.
    Never,
}

impl LocalQueue {
    /// A read: whether a message is visible, or how long until one is.
    async fn next_visible(&self) -> rusqlite::Result<NextVisible> {
        let queue = self.settings.name.clone();
        let earliest: Option<i64> = self
            .store
            .query(move |connection| {
                connection
                    .prepare_cached("SELECT MIN(visible_at_ms) FROM messages WHERE queue = ?1")?
                    .query_row([queue], |row| row.get(0))
            })
            .await?;
        let now = now_ms();
        Ok(match earliest {
            None => NextVisible::Never,
            Some(at) if at <= now => NextVisible::Now,
            Some(at) => NextVisible::In(Duration::from_millis((at - now) as u64)),
        })
    }
}

/// A visible message as stored.
struct Row {
    seq: i64,
    id: String,
    body: String,
    /// The stored attributes (JSON), envmgr's metadata among them.
    attributes: String,
    sent_at_ms: i64,
    receive_count: i64,
}

/// Up to `max` messages of `queue` visible at `now`, the longest waiting
/// first.
fn visible(
    tx: &rusqlite::Connection,
    queue: &str,
    now: i64,
    max: usize,
) -> rusqlite::Result<Vec<Row>> {
    tx.prepare_cached(
        "SELECT seq, id, body, attributes, sent_at_ms, receive_count
         FROM messages WHERE queue = ?1 AND visible_at_ms <= ?2
         ORDER BY visible_at_ms, seq LIMIT ?3",
    )?
    .query_map(params![queue, now, max as i64], |row| {
        Ok(Row {
            seq: row.get(0)?,
            id: row.get(1)?,
            body: row.get(2)?,
            attributes: row.get(3)?,
            sent_at_ms: row.get(4)?,
            receive_count: row.get(5)?,
        })
    })?
    .collect()
}

/// Receive one message: counted, hidden until `until_ms` under a fresh
/// receipt, which is returned.
fn hide(tx: &rusqlite::Connection, seq: i64, until_ms: i64) -> rusqlite::Result<String> {
    let receipt = random_hex(16);
    tx.prepare_cached(
        "UPDATE messages SET receive_count = receive_count + 1, receipt = ?2,
         visible_at_ms = ?3 WHERE seq = ?1",
    )?
    .execute(params![seq, receipt, until_ms])?;
    Ok(receipt)
}

/// Put a message on `queue` in one statement.
async fn enqueue(
    store: &Store,
    durability: Durability,
    queue: String,
    body: String,
    attributes: Vec<(String, Attribute)>,
) -> anyhow::Result<String> {
    let attributes = encode_attributes(&attributes);
    Ok(store
        .write(durability, move |connection| {
            insert(connection, &queue, &body, &attributes, Duration::ZERO)
        })
        .await?)
}

/// Drop the dead letters of `queue` older than [`DEAD_LETTER_RETENTION`]
/// (as SQS drops them past the retention `init` sets): pruned whenever a
/// dead letter is added or the dead letters are read.
fn prune_dead_letters(connection: &rusqlite::Connection, queue: &str) -> rusqlite::Result<()> {
    let oldest = now_ms() - super::DEAD_LETTER_RETENTION.as_millis() as i64;
    connection
        .execute(
            "DELETE FROM messages WHERE queue = ?1 AND sent_at_ms < ?2",
            rusqlite::params![queue, oldest],
        )
        .map(drop)
}

/// A message put on `queue` inside the caller's transaction (e.g. the local
/// Runtime Service's status report, sent with the runtime it records),
/// hidden for `delay` (SQS's `DelaySeconds`), its new id returned.
pub fn enqueue_in(
    connection: &rusqlite::Connection,
    queue: &str,
    body: &str,
    delay: Duration,
) -> rusqlite::Result<String> {
    insert(connection, queue, body, &encode_attributes(&[]), delay)
}

/// A message hidden for `delay` from when it is sent (SQS's `DelaySeconds`).
fn insert(
    connection: &rusqlite::Connection,
    queue: &str,
    body: &str,
    attributes: &str,
    delay: Duration,
) -> rusqlite::Result<String> {
    let id = message_id();
    let sent = now_ms();
    let visible = sent.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
    connection
        .prepare_cached(
            "INSERT INTO messages (id, queue, body, attributes, sent_at_ms, visible_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![id, queue, body, attributes, sent, visible])?;
    Ok(id)
}

/// A UUID-shaped random id, like SQS's.
fn message_id() -> String {
    let hex = random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[async_trait]
impl Queue for LocalQueue {
    /// Long polling: a read looks for a visible message, and only then a
    /// write takes it, so an empty queue costs no write lock. Between looks
    /// it waits for the file to change (a commit by any process, where the
    /// file is watched), a hidden message's time to come, or the poll
    /// interval ([`POLL_EVERY`], [`POLL_EVERY_WATCHED`]).
    async fn receive(&self, max: usize) -> anyhow::Result<Vec<Received>> {
        let deadline = Instant::now() + Duration::from_secs(self.settings.wait_seconds as u64);
        let changes = self.store.changes();
        let poll = if changes.watched() {
            POLL_EVERY_WATCHED
        } else {
            POLL_EVERY
        };
        // After a wake-up, looks again soon, then less soon: the WAL file
        // changes as a commit is written, a moment before it is visible to
        // readers (after its flush and the index update). Wake-ups are
        // bounded to one per settling (~15 ms) however busy the file is.
        let mut settling: Option<Duration> = None;
        loop {
            // Listening before looking: a commit between the look and the
            // wait still wakes it.
            let changed = changes.notify().notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let wait = match self.next_visible().await? {
                NextVisible::Now => {
                    let received = self.take(max.clamp(1, 10)).await?;
                    if !received.is_empty() {
                        return Ok(received);
                    }
                    // Another consumer took them first.
                    poll
                }
                NextVisible::In(wait) => wait.min(poll),
                NextVisible::Never => poll,
            };
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            match settling {
                // Settling: the looks are timed, and the file's further
                // changes (every commit of a busy daemon) wake no one.
                Some(soon) => {
                    settling = (soon < SETTLED_AFTER).then_some(soon * 2);
                    tokio::time::sleep(wait.min(soon).min(deadline - now)).await;
                }
                None => tokio::select! {
                    () = &mut changed => settling = Some(Duration::from_millis(1)),
                    () = tokio::time::sleep(wait.min(deadline - now)) => {}
                },
            }
        }
    }

    async fn change_visibility(&self, receipt: &str, seconds: i32) -> anyhow::Result<()> {
        let receipt = receipt.to_string();
        let seconds = i64::from(seconds.clamp(0, 43_200));
        let changed = self
            .store
            .write(Durability::SurvivesCrash, move |connection| {
                connection
                    .prepare_cached("UPDATE messages SET visible_at_ms = ?2 WHERE receipt = ?1")?
                    .execute(params![receipt, now_ms() + seconds * 1_000])
            })
            .await?;
        if changed == 0 {
            anyhow::bail!(
                "the receipt is no longer valid: the message was deleted or received again"
            );
        }
        Ok(())
    }

    async fn delete(&self, receipts: &[String]) {
        let receipts = receipts.to_vec();
        let result = self
            .store
            .write(Durability::SurvivesCrash, move |tx| {
                let mut stale = 0;
                for receipt in &receipts {
                    let mut statement =
                        tx.prepare_cached("DELETE FROM messages WHERE receipt = ?1")?;
                    if statement.execute([receipt])? == 0 {
                        stale += 1;
                    }
                }
                Ok(stale)
            })
            .await;
        match result {
            Ok(0) => {}
            Ok(stale) => {
                tracing::warn!(
                    stale,
                    "delete found receipts no longer valid; those messages will return"
                )
            }
            Err(e) => tracing::warn!(error = %e, "delete failed; the messages will return"),
        }
    }

    async fn dead_letter(&self, received: &Received, why: &DeadLetter<'_>) -> anyhow::Result<()> {
        let attributes = encode_attributes(&why.attributes(received, now_ms().max(0) as u64));
        let queue = self.settings.dead_letter_name();
        let body = received.message.body.clone();
        Ok(self
            .store
            .write(Durability::SurvivesCrash, move |connection| {
                prune_dead_letters(connection, &queue)?;
                insert(connection, &queue, &body, &attributes, Duration::ZERO).map(drop)
            })
            .await?)
    }

    async fn send_with_attributes(
        &self,
        body: &str,
        attributes: &[(String, Attribute)],
    ) -> anyhow::Result<String> {
        super::check_size(body, attributes, self.settings.max_message_bytes)?;
        enqueue(
            &self.store,
            Durability::SurvivesPowerLoss,
            self.settings.name.clone(),
            body.to_string(),
            attributes.to_vec(),
        )
        .await
    }

    async fn send(&self, body: &str) -> anyhow::Result<String> {
        super::check_size(body, &[], self.settings.max_message_bytes)?;
        enqueue(
            &self.store,
            Durability::SurvivesPowerLoss,
            self.settings.name.clone(),
            body.to_string(),
            Vec::new(),
        )
        .await
    }

    /// Hide the message until then and give back the receive it used: a
    /// deferral does not spend the receive budget.
    async fn defer(&self, received: &Received, delay: Duration) -> anyhow::Result<Deferral> {
        let receipt = received.receipt.clone();
        let mut attributes = received.attributes.clone();
        let metadata = Metadata {
            deferrals: received.message.deferrals + 1,
            ..Metadata::default()
        };
        attributes.push((
            METADATA_ATTRIBUTE.to_string(),
            Attribute::text("String", metadata.to_text()),
        ));
        let attributes = encode_attributes(&attributes);
        let delay_ms = delay.min(MAX_DELAY).as_millis() as i64;
        let changed = self
            .store
            .write(Durability::SurvivesCrash, move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE messages SET visible_at_ms = ?2, receipt = NULL,
                     receive_count = MAX(receive_count - 1, 0), attributes = ?3
                     WHERE receipt = ?1",
                    )?
                    .execute(params![receipt, now_ms() + delay_ms, attributes])
            })
            .await?;
        if changed == 0 {
            anyhow::bail!(
                "the receipt is no longer valid: the message was deleted or received again"
            );
        }
        Ok(Deferral::InPlace)
    }

    /// Like a receive from SQS: each visible dead letter hidden under a
    /// fresh receipt, its receive counted. A dead-letter queue has no
    /// redrive of its own.
    async fn receive_dead_letters(
        &self,
        max: usize,
        hide_for: Duration,
    ) -> anyhow::Result<Vec<ReceivedDeadLetter>> {
        let queue = self.settings.dead_letter_name();
        let hide_ms = hide_for.as_millis() as i64;
        let max = max.clamp(1, 10);
        Ok(self
            .store
            .write(Durability::SurvivesPowerLoss, move |tx| {
                let now = now_ms();
                prune_dead_letters(tx, &queue)?;
                let mut received = Vec::new();
                for row in visible(tx, &queue, now, max)? {
                    let receipt = hide(tx, row.seq, now + hide_ms)?;
                    let (attributes, metadata) = decode_attributes(&row.attributes);
                    received.push(ReceivedDeadLetter {
                        id: row.id,
                        receipt,
                        body: row.body,
                        attributes,
                        metadata,
                        sent_at_ms: row.sent_at_ms.max(0) as u64,
                    });
                }
                Ok(received)
            })
            .await?)
    }

    async fn release_dead_letters(&self, receipts: &[String]) -> Vec<(String, String)> {
        self.by_receipt(receipts, ByReceipt::Release).await
    }

    async fn delete_dead_letters(&self, receipts: &[String]) -> Vec<(String, String)> {
        self.by_receipt(receipts, ByReceipt::Delete).await
    }

    /// From the database: in flight is received and hidden, delayed is
    /// hidden without a receipt (a deferred message); the oldest age is
    /// that of the earliest sent message still on the queue.
    async fn state(&self) -> anyhow::Result<QueueState> {
        let queue = self.settings.name.clone();
        let dead_letter = self.settings.dead_letter_name();
        Ok(self
            .store
            .query(move |connection| {
                let now = now_ms();
                let (visible, in_flight, delayed, oldest_sent_ms) = connection
                    .prepare_cached(
                        "SELECT
                       COUNT(*) FILTER (WHERE visible_at_ms <= ?2),
                       COUNT(*) FILTER (WHERE visible_at_ms > ?2 AND receipt IS NOT NULL),
                       COUNT(*) FILTER (WHERE visible_at_ms > ?2 AND receipt IS NULL),
                       MIN(sent_at_ms)
                     FROM messages WHERE queue = ?1",
                    )?
                    .query_row(params![queue, now], |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, i64>(1)?,
                            row.get::<_, i64>(2)?,
                            row.get::<_, Option<i64>>(3)?,
                        ))
                    })?;
                let dead_letters: i64 = connection
                    .prepare_cached("SELECT COUNT(*) FROM messages WHERE queue = ?1")?
                    .query_row([dead_letter], |row| row.get(0))?;
                Ok(QueueState {
                    visible: visible as u64,
                    in_flight: in_flight as u64,
                    delayed: delayed as u64,
                    dead_letters: dead_letters as u64,
                    oldest_age: oldest_sent_ms
                        .map(|sent| Duration::from_millis(now.saturating_sub(sent).max(0) as u64)),
                })
            })
            .await?)
    }
}

/// What to do with received dead letters.
#[derive(Clone, Copy)]
enum ByReceipt {
    /// Visible at once.
    Release,
    Delete,
}

impl LocalQueue {
    /// Release or delete each received message in one transaction; returns
    /// the receipts that matched no message, with why.
    async fn by_receipt(&self, receipts: &[String], action: ByReceipt) -> Vec<(String, String)> {
        let receipts = receipts.to_vec();
        let all = receipts.clone();
        let result = self
            .store
            .write(Durability::SurvivesPowerLoss, move |tx| {
                let now = now_ms();
                let mut stale = Vec::new();
                for receipt in receipts {
                    let changed = match action {
                        ByReceipt::Release => tx
                            .prepare_cached(
                                "UPDATE messages SET visible_at_ms = ?2, receipt = NULL
                             WHERE receipt = ?1",
                            )?
                            .execute(params![receipt, now])?,
                        ByReceipt::Delete => tx
                            .prepare_cached("DELETE FROM messages WHERE receipt = ?1")?
                            .execute([&receipt])?,
                    };
                    if changed == 0 {
                        stale.push((
                            receipt,
                            "the receipt is no longer valid: the message was deleted or \
                             received again"
                                .to_string(),
                        ));
                    }
                }
                Ok(stale)
            })
            .await;
        match result {
            Ok(stale) => stale,
            Err(e) => all.into_iter().map(|r| (r, e.to_string())).collect(),
        }
    }
}

/// Put a message with attributes of any type on a queue by its name, as a
/// producer would (tests, tools): no size check, no configured queue needed.
pub async fn enqueue_with_attributes(
    store: &Store,
    queue: &str,
    body: &str,
    attributes: &[(String, Attribute)],
) -> anyhow::Result<String> {
    enqueue(
        store,
        Durability::SurvivesPowerLoss,
        queue.to_string(),
        body.to_string(),
        attributes.to_vec(),
    )
    .await
}

#[cfg(test)]
mod tests;
