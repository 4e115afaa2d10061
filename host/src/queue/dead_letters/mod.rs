//! `envmgr dlq`: look at the dead letters of the configured queues, move
//! them back once the cause is fixed, or delete them — on either backend,
//! through the [`Queue`] trait.
//!
//! SQS has no way to read a queue without receiving from it, so every
//! command receives the dead letters (each hidden for [`HIDE_WHILE_WORKING`]
//! meanwhile) until nothing more comes, at most [`RECEIVE_BOUND`] of them,
//! and then makes the ones it leaves where they are visible again at once.
//! SQS may return a message twice in one pass (it is at-least-once, and a
//! pass longer than the hiding time sees messages again): the pass keeps
//! one per message id, with its latest receipt. Run one `dlq` command at a
//! time: the dead letters one holds are hidden from another.
//!
//! SQS's own redrive (the message-move task) is not used: it cannot pick
//! messages by id, knows no origin for a copy envmgr made itself (the
//! source is in envmgr's metadata), and moto does not implement it.

mod print;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::{Attribute, AttributeData, Metadata, Queue, ReceivedDeadLetter};
use crate::config::{Queue as QueueSettings, Settings};
use crate::platform::Platform;

/// The most dead letters one pass receives from a dead-letter queue.
pub const RECEIVE_BOUND: usize = 1_000;
/// How long a received dead letter stays hidden if the command dies before
/// making it visible again, deleting or moving it.
pub const HIDE_WHILE_WORKING: Duration = Duration::from_secs(30);
/// The characters of a reason `dlq list` shows.
const LISTED_REASON_CHARS: usize = 100;
/// The digits of a logic version `dlq list` shows.
const LISTED_VERSION_DIGITS: usize = 12;

/// The attributes envmgr put on a dead-letter copy before its metadata was
/// one JSON attribute; still read (and never redriven) so dead letters from
/// before an upgrade are listed with their reason.
const LEGACY_ATTRIBUTES: [&str; 5] = [
    "envmgr-reason",
    "envmgr-source-queue",
    "envmgr-message-id",
    "envmgr-logic-version",
    "envmgr-receive-count",
];

/// A configured queue, whose dead-letter queue the commands work on.
pub struct Source {
    /// Its name in the config (`probot`, `api`).
    pub logical: String,
    pub settings: QueueSettings,
    pub queue: Arc<dyn Queue>,
}

/// A dead letter, received.
#[derive(Clone, Debug)]
pub struct Letter {
    /// Its id in the dead-letter queue.
    pub id: String,
    pub body: String,
    /// The producer's attributes (what a redrive sends back).
    pub attributes: Vec<(String, Attribute)>,
    /// envmgr's metadata: why and from where it was dead-lettered. None for
    /// a message the queue's redrive policy moved (too many receives), or
    /// one whose ten attributes left no room.
    pub metadata: Option<Metadata>,
    /// When the dead-letter queue got it (see [`ReceivedDeadLetter`]).
    pub sent_at_ms: u64,
    receipt: String,
}

impl Letter {
    fn from_received(received: ReceivedDeadLetter) -> Self {
        let mut attributes = received.attributes;
        let metadata = received.metadata.or_else(|| legacy_metadata(&attributes));
        attributes.retain(|(name, _)| !LEGACY_ATTRIBUTES.contains(&name.as_str()));
        Self {
            id: received.id,
            body: received.body,
            attributes,
            metadata,
            sent_at_ms: received.sent_at_ms,
            receipt: received.receipt,
        }
    }

    /// When it became a dead letter: when envmgr dead-lettered it, or for a
    /// message the redrive policy moved, when it was first sent (SQS and
    /// the local queue keep that time).
    pub fn dead_since_ms(&self) -> u64 {
        self.metadata
            .as_ref()
            .and_then(|m| m.dead_lettered_at)
            .unwrap_or(self.sent_at_ms)
    }

    /// What a redrive sends back: the producer's attributes, and the
    /// sealed original send time when envmgr's copy carried one (so a
    /// status report redriven counts from when it was first sent; the
    /// seal, made by `serve`, is copied as it is).
    fn redriven_attributes(&self) -> Vec<(String, Attribute)> {
        let mut attributes = self.attributes.clone();
        let sealed = self
            .metadata
            .as_ref()
            .and_then(|m| Some((m.sent_at?, m.sent_at_seal.clone()?)));
        if let Some((sent_at, seal)) = sealed
            && attributes.len() < super::MAX_ATTRIBUTES
        {
            let metadata = Metadata {
                sent_at: Some(sent_at),
                sent_at_seal: Some(seal),
                ..Metadata::default()
            };
            attributes.push((
                super::METADATA_ATTRIBUTE.to_string(),
                Attribute::text("String", metadata.to_text()),
            ));
        }
        attributes
    }

    pub fn age(&self, now_ms: u64) -> Duration {
        Duration::from_millis(now_ms.saturating_sub(self.dead_since_ms()))
    }

    /// The id of the message it is a copy of, if envmgr recorded one.
    pub fn original_id(&self) -> Option<&str> {
        self.metadata.as_ref().and_then(|m| m.message_id.as_deref())
    }

    fn reason(&self) -> Option<&str> {
        self.metadata.as_ref().and_then(|m| m.reason.as_deref())
    }
}

/// The metadata of a dead letter from before the one `envmgr` attribute.
fn legacy_metadata(attributes: &[(String, Attribute)]) -> Option<Metadata> {
    let text = |name: &str| {
        attributes.iter().find_map(|(n, a)| match &a.value {
            AttributeData::Text(t) if n == name => Some(t.clone()),
            _ => None,
        })
    };
    let reason = text("envmgr-reason")?;
    Some(Metadata {
        reason: Some(reason),
        source_queue: text("envmgr-source-queue"),
        message_id: text("envmgr-message-id"),
        logic_version: text("envmgr-logic-version"),
        receive_count: text("envmgr-receive-count").and_then(|n| n.parse().ok()),
        ..Metadata::default()
    })
}

/// The dead letters of one dead-letter queue, as one pass found them.
pub struct Listing {
    /// The configured queue it belongs to.
    pub queue: String,
    pub dead_letter_queue: String,
    /// Oldest first.
    pub letters: Vec<Letter>,
    /// The pass stopped at [`RECEIVE_BOUND`]: there may be more.
    pub bounded: bool,
}

/// Which dead letters to move back.
pub enum Selection<'a> {
    All,
    /// By id in the dead-letter queue, or the original message's id.
    Ids(&'a [String]),
}

/// What a redrive did.
#[derive(Default)]
pub struct RedriveReport {
    /// (dead letter id, queue it went to, its new id there).
    pub moved: Vec<(String, String, String)>,
    /// Sent back but still in the dead-letter queue (the delete failed): it
    /// would be sent again by another redrive. (dead letter id, why)
    pub not_removed: Vec<(String, String)>,
    /// Left in the dead-letter queue because the send failed. (id, why)
    pub failed: Vec<(String, String)>,
    /// Ids asked for that no dead letter has.
    pub not_found: Vec<String>,
    /// A dead-letter queue held more than one pass takes: run it again.
    pub bounded: bool,
}

/// Every configured queue with its dead-letter queue.
pub struct DeadLetters {
    sources: Vec<Source>,
}

impl DeadLetters {
    /// Connect every configured queue (with SQS: look up each queue and its
    /// dead-letter queue).
    pub async fn connect(platform: &Platform, settings: &Settings) -> anyhow::Result<Self> {
        let mut sources = Vec::new();
        for (logical, queue_settings) in &settings.queues {
            sources.push(Source {
                logical: logical.clone(),
                settings: queue_settings.clone(),
                queue: platform.queue(settings, logical).await?,
            });
        }
        Ok(Self::new(sources))
    }

    pub fn new(sources: Vec<Source>) -> Self {
        Self { sources }
    }

    /// The queues to work on: `only` (a configured name), or all of them,
    /// each dead-letter queue once (queues may share one).
    fn walk(&self, only: Option<&str>) -> anyhow::Result<Vec<&Source>> {
        if let Some(name) = only {
            let source = self
                .sources
                .iter()
                .find(|s| s.logical == name)
                .with_context(|| {
                    format!(
                        "no queue `{name}` in the config (have: {})",
                        self.sources
                            .iter()
                            .map(|s| s.logical.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            return Ok(vec![source]);
        }
        let mut seen = Vec::new();
        Ok(self
            .sources
            .iter()
            .filter(|s| {
                let dead_letter_queue = s.settings.dead_letter_name();
                let first = !seen.contains(&dead_letter_queue);
                seen.push(dead_letter_queue);
                first
            })
            .collect())
    }

    /// Where a dead letter of `holder`'s dead-letter queue goes back to: the
    /// source queue envmgr recorded, when that one is configured with the
    /// same dead-letter queue; else `holder`.
    fn origin<'a>(&'a self, holder: &'a Source, letter: &Letter) -> &'a Source {
        let recorded = letter
            .metadata
            .as_ref()
            .and_then(|m| m.source_queue.as_deref());
        self.sources
            .iter()
            .find(|s| {
                Some(s.logical.as_str()) == recorded
                    && s.settings.dead_letter_name() == holder.settings.dead_letter_name()
            })
            .unwrap_or(holder)
    }

    /// Every dead letter (at most [`RECEIVE_BOUND`] per dead-letter queue),
    /// left where it is.
    pub async fn list(&self, only: Option<&str>) -> anyhow::Result<Vec<Listing>> {
        let mut listings = Vec::new();
        for source in self.walk(only)? {
            let (mut letters, bounded) = receive_all(source).await?;
            release(source, &letters).await;
            letters.sort_by_key(|l| (l.dead_since_ms(), l.id.clone()));
            listings.push(Listing {
                queue: source.logical.clone(),
                dead_letter_queue: source.settings.dead_letter_name(),
                letters,
                bounded,
            });
        }
        Ok(listings)
    }

    /// The dead letter with this id (its own, or the original message's),
    /// left where it is.
    pub async fn find(&self, id: &str, only: Option<&str>) -> anyhow::Result<(Listing, Letter)> {
        let listings = self.list(only).await?;
        let mut by_original = Vec::new();
        for listing in &listings {
            for letter in &listing.letters {
                if letter.id == id {
                    return Ok((empty_like(listing), letter.clone()));
                }
                if letter.original_id() == Some(id) {
                    by_original.push((listing, letter));
                }
            }
        }
        match by_original.as_slice() {
            [(listing, letter)] => Ok((empty_like(listing), (*letter).clone())),
            [] => anyhow::bail!(
                "no dead letter {id} in {}{}",
                listings
                    .iter()
                    .map(|l| format!("{} ({} dead letters)", l.dead_letter_queue, l.letters.len()))
                    .collect::<Vec<_>>()
                    .join(", "),
                if listings.iter().any(|l| l.bounded) {
                    format!(" (only the first {RECEIVE_BOUND} of each were looked at)")
                } else {
                    String::new()
                }
            ),
            several => anyhow::bail!(
                "{id} was dead-lettered {} times; name one of the dead letters by its own id: {}",
                several.len(),
                several
                    .iter()
                    .map(|(_, l)| l.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Send the selected dead letters back to their queue with the
    /// producer's attributes (envmgr's metadata left off but the sealed
    /// original send time: each starts over, with a fresh receive budget),
    /// then delete them from the dead-letter queue. A dead letter whose send fails stays where it is.
    pub async fn redrive(
        &self,
        only: Option<&str>,
        selection: Selection<'_>,
    ) -> anyhow::Result<RedriveReport> {
        let mut report = RedriveReport::default();
        let mut found: Vec<&str> = Vec::new();
        for holder in self.walk(only)? {
            let (letters, bounded) = receive_all(holder).await?;
            report.bounded |= bounded;
            let (chosen, others): (Vec<Letter>, Vec<Letter>) =
                letters.into_iter().partition(|letter| match &selection {
                    Selection::All => true,
                    Selection::Ids(ids) => ids.iter().any(|id| {
                        let hit = letter.id == *id || letter.original_id() == Some(id.as_str());
                        if hit {
                            found.push(id);
                        }
                        hit
                    }),
                });
            release(holder, &others).await;
            let mut sent = Vec::new();
            let mut unsent = Vec::new();
            for letter in chosen {
                let origin = self.origin(holder, &letter);
                match origin
                    .queue
                    .send_with_attributes(&letter.body, &letter.redriven_attributes())
                    .await
                {
                    Ok(new_id) => sent.push((letter, origin.logical.clone(), new_id)),
                    Err(e) => {
                        report.failed.push((letter.id.clone(), format!("{e:#}")));
                        unsent.push(letter);
                    }
                }
            }
            release(holder, &unsent).await;
            let receipts: Vec<String> = sent.iter().map(|(l, _, _)| l.receipt.clone()).collect();
            let not_deleted: HashMap<String, String> = holder
                .queue
                .delete_dead_letters(&receipts)
                .await
                .into_iter()
                .collect();
            for (letter, to, new_id) in sent {
                if let Some(why) = not_deleted.get(&letter.receipt) {
                    report.not_removed.push((letter.id.clone(), why.clone()));
                }
                report.moved.push((letter.id, to, new_id));
            }
        }
        if let Selection::Ids(ids) = selection {
            report.not_found = ids
                .iter()
                .filter(|id| !found.contains(&id.as_str()))
                .cloned()
                .collect();
        }
        Ok(report)
    }

    /// How many dead letters each dead-letter queue holds (SQS: its
    /// approximate counts).
    pub async fn count(&self, only: Option<&str>) -> anyhow::Result<Vec<(String, String, u64)>> {
        let mut counts = Vec::new();
        for source in self.walk(only)? {
            let state = source.queue.state().await?;
            counts.push((
                source.logical.clone(),
                source.settings.dead_letter_name(),
                state.dead_letters,
            ));
        }
        Ok(counts)
    }

    /// Delete every dead letter: receive and delete until nothing more
    /// comes. Returns (queue, dead-letter queue, deleted) per queue.
    pub async fn purge(&self, only: Option<&str>) -> anyhow::Result<Vec<(String, String, u64)>> {
        let mut purged = Vec::new();
        let mut failures = Vec::new();
        for source in self.walk(only)? {
            let mut deleted = 0u64;
            loop {
                let batch = source
                    .queue
                    .receive_dead_letters(10, HIDE_WHILE_WORKING)
                    .await?;
                if batch.is_empty() {
                    break;
                }
                let receipts: Vec<String> = batch.iter().map(|r| r.receipt.clone()).collect();
                let failed = source.queue.delete_dead_letters(&receipts).await;
                deleted += (receipts.len() - failed.len()) as u64;
                let none_deleted = failed.len() == receipts.len();
                failures.extend(failed.into_iter().map(|(_, why)| why));
                if none_deleted {
                    // Deleting does not work here (e.g. no permission):
                    // stop rather than hide every dead letter in turn.
                    break;
                }
            }
            purged.push((
                source.logical.clone(),
                source.settings.dead_letter_name(),
                deleted,
            ));
        }
        if let Some(why) = failures.first() {
            anyhow::bail!(
                "deleted {} dead letters; {} could not be deleted ({why}); they are visible again \
                 within {} s",
                purged.iter().map(|(_, _, n)| n).sum::<u64>(),
                failures.len(),
                HIDE_WHILE_WORKING.as_secs()
            );
        }
        Ok(purged)
    }
}

/// What `list` and `show` say for a dead letter without envmgr's reason.
const NO_REASON: &str = "(none recorded: moved by the queue's redrive policy after too many \
                         receives, or its ten attributes left no room)";

fn empty_like(listing: &Listing) -> Listing {
    Listing {
        queue: listing.queue.clone(),
        dead_letter_queue: listing.dead_letter_queue.clone(),
        letters: Vec::new(),
        bounded: listing.bounded,
    }
}

/// One pass over a dead-letter queue: receive until nothing more comes or
/// [`RECEIVE_BOUND`] messages came, one per message id (the latest receipt
/// wins). On an error, what was received is made visible again first.
async fn receive_all(source: &Source) -> anyhow::Result<(Vec<Letter>, bool)> {
    let mut letters: Vec<Letter> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut received = 0;
    while received < RECEIVE_BOUND {
        let batch = match source
            .queue
            .receive_dead_letters((RECEIVE_BOUND - received).min(10), HIDE_WHILE_WORKING)
            .await
        {
            Ok(batch) => batch,
            Err(e) => {
                release(source, &letters).await;
                return Err(e.context(format!(
                    "receiving from {}",
                    source.settings.dead_letter_name()
                )));
            }
        };
        if batch.is_empty() {
            return Ok((letters, false));
        }
        received += batch.len();
        for message in batch {
            let letter = Letter::from_received(message);
            match index.get(&letter.id) {
                Some(&at) => letters[at].receipt = letter.receipt,
                None => {
                    index.insert(letter.id.clone(), letters.len());
                    letters.push(letter);
                }
            }
        }
    }
    Ok((letters, true))
}

/// Make these received dead letters visible again at once; one that cannot
/// be returns when its hiding time ends.
async fn release(source: &Source, letters: &[Letter]) {
    if letters.is_empty() {
        return;
    }
    let receipts: Vec<String> = letters.iter().map(|l| l.receipt.clone()).collect();
    let failed = source.queue.release_dead_letters(&receipts).await;
    if let Some((_, why)) = failed.first() {
        tracing::warn!(
            queue = %source.settings.dead_letter_name(),
            count = failed.len(),
            error = %why,
            "could not make dead letters visible again; they return within {} s",
            HIDE_WHILE_WORKING.as_secs()
        );
    }
}

fn now_ms() -> u64 {
    crate::support::now_ms().max(0) as u64
}

#[cfg(test)]
mod tests;
