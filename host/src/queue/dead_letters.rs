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

    /// `dlq list`: a table for people, or a JSON array for tools.
    pub async fn print_list(&self, only: Option<&str>, json: bool) -> anyhow::Result<()> {
        let listings = self.list(only).await?;
        let now = now_ms();
        if json {
            let all: Vec<serde_json::Value> = listings
                .iter()
                .flat_map(|listing| {
                    listing
                        .letters
                        .iter()
                        .map(move |letter| letter_json(listing, letter, now))
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&all)?);
            return Ok(());
        }
        for listing in &listings {
            let count = listing.letters.len();
            println!(
                "{} ({}): {}{count} dead letter{}",
                listing.queue,
                listing.dead_letter_queue,
                if listing.bounded { "the first " } else { "" },
                if count == 1 { "" } else { "s" },
            );
            if count == 0 {
                continue;
            }
            println!(
                "  {:<36}  {:>8}  {:>8}  {:<12}  REASON",
                "ID", "AGE", "RECEIVES", "LOGIC"
            );
            for letter in &listing.letters {
                let metadata = letter.metadata.as_ref();
                println!(
                    "  {:<36}  {:>8}  {:>8}  {:<12}  {}",
                    printable(&letter.id, false),
                    age(letter.age(now)),
                    metadata
                        .and_then(|m| m.receive_count)
                        .map_or_else(|| "-".to_string(), |n| n.to_string()),
                    metadata
                        .and_then(|m| m.logic_version.as_deref())
                        .map_or_else(
                            || "-".to_string(),
                            |v| printable(
                                &v.chars().take(LISTED_VERSION_DIGITS).collect::<String>(),
                                false
                            )
                        ),
                    match letter.reason() {
                        Some(reason) => printable(&cut(reason, LISTED_REASON_CHARS), false),
                        None => NO_REASON.to_string(),
                    }
                );
            }
        }
        Ok(())
    }

    /// `dlq show ID`: every metadata field, the producer's attributes and
    /// the body (pretty when JSON).
    pub async fn print_show(&self, id: &str, only: Option<&str>, json: bool) -> anyhow::Result<()> {
        let (listing, letter) = self.find(id, only).await?;
        let now = now_ms();
        if json {
            let mut value = letter_json(&listing, &letter, now);
            value["attributes"] = attributes_json(&letter.attributes);
            value["body"] = serde_json::Value::String(letter.body.clone());
            println!("{}", serde_json::to_string_pretty(&value)?);
            return Ok(());
        }
        println!(
            "dead letter {} in {} (queue {})",
            printable(&letter.id, false),
            listing.dead_letter_queue,
            listing.queue
        );
        let field = |name: &str, value: String| println!("  {name:<18} {value}");
        match &letter.metadata {
            Some(metadata) => {
                let text = |v: &Option<String>| {
                    v.as_deref()
                        .map_or_else(|| "-".to_string(), |t| printable(t, false))
                };
                field("reason", text(&metadata.reason));
                field("source queue", text(&metadata.source_queue));
                field("original id", text(&metadata.message_id));
                field("logic version", text(&metadata.logic_version));
                field(
                    "receive count",
                    metadata
                        .receive_count
                        .map_or_else(|| "-".to_string(), |n| n.to_string()),
                );
                field("deferrals", metadata.deferrals.to_string());
                field(
                    "dead-lettered at",
                    metadata.dead_lettered_at.map_or_else(
                        || "-".to_string(),
                        |at| format!("{} ({} ago)", utc(at), age(letter.age(now))),
                    ),
                );
            }
            None => {
                field("reason", NO_REASON.to_string());
                field(
                    "sent at",
                    format!("{} ({} ago)", utc(letter.sent_at_ms), age(letter.age(now))),
                );
            }
        }
        println!("attributes ({})", letter.attributes.len());
        let width = letter
            .attributes
            .iter()
            .map(|(name, _)| name.len())
            .max()
            .unwrap_or(0);
        for (name, attribute) in &letter.attributes {
            let value = match &attribute.value {
                AttributeData::Text(text) => printable(text, false),
                AttributeData::Binary(blob) => {
                    format!("{} (base64 of {} bytes)", base64_of(blob), blob.len())
                }
            };
            println!(
                "  {:<width$}  {:<14}  {value}",
                printable(name, false),
                printable(&attribute.data_type, false)
            );
        }
        println!("body");
        let body = match serde_json::from_str::<serde_json::Value>(&letter.body) {
            Ok(parsed) => serde_json::to_string_pretty(&parsed)?,
            Err(_) => letter.body.clone(),
        };
        for line in printable(&body, true).lines() {
            println!("  {line}");
        }
        Ok(())
    }

    /// `dlq redrive`: how many moved, and why any did not.
    pub async fn print_redrive(
        &self,
        only: Option<&str>,
        selection: Selection<'_>,
    ) -> anyhow::Result<()> {
        let report = self.redrive(only, selection).await?;
        println!(
            "moved {} dead letter{} back",
            report.moved.len(),
            if report.moved.len() == 1 { "" } else { "s" }
        );
        for (id, queue, new_id) in &report.moved {
            println!("  {id} -> {queue} as {new_id}");
        }
        if report.bounded {
            println!(
                "a dead-letter queue holds more than the {RECEIVE_BOUND} one pass takes: run it again"
            );
        }
        let mut problems = Vec::new();
        for (id, why) in &report.failed {
            problems.push(format!(
                "{id}: not sent, left in the dead-letter queue: {why}"
            ));
        }
        for (id, why) in &report.not_removed {
            problems.push(format!(
                "{id}: sent back but not deleted from the dead-letter queue ({why}); purge or \
                 delete it before another redrive, which would send it again"
            ));
        }
        for id in &report.not_found {
            problems.push(format!("{id}: no such dead letter"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("{}", problems.join("\n"))
        }
    }

    /// `dlq purge`: refused without `yes`, saying how many there are.
    pub async fn print_purge(&self, only: Option<&str>, yes: bool) -> anyhow::Result<()> {
        if !yes {
            let counts = self.count(only).await?;
            let total: u64 = counts.iter().map(|(_, _, n)| n).sum();
            anyhow::bail!(
                "refused without --yes: there {} {total} dead letter{} ({}); nothing deleted",
                if total == 1 { "is" } else { "are" },
                if total == 1 { "" } else { "s" },
                counts
                    .iter()
                    .map(|(queue, dead_letter_queue, n)| format!(
                        "{queue}: {n} in {dead_letter_queue}"
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for (queue, dead_letter_queue, deleted) in self.purge(only).await? {
            println!(
                "{queue} ({dead_letter_queue}): deleted {deleted} dead letter{}",
                if deleted == 1 { "" } else { "s" }
            );
        }
        Ok(())
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

fn letter_json(listing: &Listing, letter: &Letter, now_ms: u64) -> serde_json::Value {
    serde_json::json!({
        "queue": listing.queue,
        "deadLetterQueue": listing.dead_letter_queue,
        "id": letter.id,
        "sentAtMs": letter.sent_at_ms,
        "ageMs": letter.age(now_ms).as_millis() as u64,
        "metadata": letter.metadata,
    })
}

/// Attributes as SQS names their parts: name → `{"dataType", "stringValue"}`
/// or `{"dataType", "binaryValue"}` (base64).
fn attributes_json(attributes: &[(String, Attribute)]) -> serde_json::Value {
    attributes
        .iter()
        .map(|(name, attribute)| {
            let value = match &attribute.value {
                AttributeData::Text(text) => {
                    serde_json::json!({ "dataType": attribute.data_type, "stringValue": text })
                }
                AttributeData::Binary(blob) => {
                    serde_json::json!({ "dataType": attribute.data_type, "binaryValue": base64_of(blob) })
                }
            };
            (name.clone(), value)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn base64_of(blob: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(blob)
}

fn now_ms() -> u64 {
    crate::support::now_ms().max(0) as u64
}

/// At most `limit` characters, with `…` when cut.
fn cut(text: &str, limit: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(limit).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// Text from a producer or a dependency, safe to print on a terminal:
/// control characters (line breaks too, unless `keep_lines`), bidi controls
/// and zero-width characters shown as `\u{..}` escapes instead of acting.
fn printable(text: &str, keep_lines: bool) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        let acts = c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}');
        if acts && !(keep_lines && (c == '\n' || c == '\t')) {
            shown.push_str(&c.escape_unicode().to_string());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// An age as people read it: `45s`, `12m 3s`, `5h 2m`, `3d 4h`.
fn age(age: Duration) -> String {
    let seconds = age.as_secs();
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3_600 => format!("{}m {}s", seconds / 60, seconds % 60),
        3_600..86_400 => format!("{}h {}m", seconds / 3_600, seconds % 3_600 / 60),
        _ => format!("{}d {}h", seconds / 86_400, seconds % 86_400 / 3_600),
    }
}

/// ms since the Unix epoch as an RFC 3339 UTC time (to the second).
fn utc(ms: u64) -> String {
    let seconds = ms / 1_000;
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3_600,
        of_day % 3_600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::queue::{DeadLetter, Deferral, QueueState, Received};

    #[test]
    fn times_and_ages_read_as_people_write_them() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_866_300_500), "2026-11-28T11:45:00Z");
        assert_eq!(age(Duration::from_secs(59)), "59s");
        assert_eq!(age(Duration::from_secs(3_599)), "59m 59s");
        assert_eq!(age(Duration::from_secs(7_260)), "2h 1m");
        assert_eq!(age(Duration::from_secs(3 * 86_400 + 4 * 3_600)), "3d 4h");
    }

    #[test]
    fn printed_text_cannot_steer_the_terminal() {
        assert_eq!(printable("a\u{1b}[2Jb", false), "a\\u{1b}[2Jb");
        assert_eq!(printable("x\u{202e}y\nz", false), "x\\u{202e}y\\u{a}z");
        assert_eq!(printable("{\n\t\"a\": 1\n}", true), "{\n\t\"a\": 1\n}");
        assert_eq!(cut("abcdef", 3), "abc…");
        assert_eq!(cut("abc", 3), "abc");
    }

    #[test]
    fn dead_letters_from_before_the_one_attribute_keep_their_reason() {
        let attributes = vec![
            (
                "envmgr-reason".to_string(),
                Attribute::text("String", "bad"),
            ),
            (
                "envmgr-source-queue".to_string(),
                Attribute::text("String", "api"),
            ),
            (
                "envmgr-message-id".to_string(),
                Attribute::text("String", "m1"),
            ),
            (
                "envmgr-logic-version".to_string(),
                Attribute::text("String", "abc"),
            ),
            (
                "envmgr-receive-count".to_string(),
                Attribute::text("String", "2"),
            ),
            ("traceparent".to_string(), Attribute::text("String", "00-1")),
        ];
        let letter = Letter::from_received(ReceivedDeadLetter {
            id: "d1".into(),
            receipt: "r".into(),
            body: "{}".into(),
            attributes,
            metadata: None,
            sent_at_ms: 7,
        });
        let metadata = letter.metadata.clone().unwrap();
        assert_eq!(metadata.reason.as_deref(), Some("bad"));
        assert_eq!(metadata.source_queue.as_deref(), Some("api"));
        assert_eq!(metadata.receive_count, Some(2));
        assert_eq!(letter.original_id(), Some("m1"));
        assert_eq!(letter.dead_since_ms(), 7);
        assert_eq!(
            letter.attributes,
            vec![("traceparent".to_string(), Attribute::text("String", "00-1"))],
            "only the producer's go back on a redrive"
        );
    }

    /// A dead-letter queue that, like SQS may, returns its first message a
    /// second time (under a new receipt) before saying it is empty.
    #[derive(Default)]
    struct Repeating {
        calls: Mutex<u32>,
        released: Mutex<Vec<String>>,
    }

    fn dead(id: &str, receipt: &str) -> ReceivedDeadLetter {
        ReceivedDeadLetter {
            id: id.into(),
            receipt: receipt.into(),
            body: "{}".into(),
            attributes: Vec::new(),
            metadata: None,
            sent_at_ms: 0,
        }
    }

    #[async_trait]
    impl Queue for Repeating {
        async fn receive_dead_letters(
            &self,
            _max: usize,
            _hide_for: Duration,
        ) -> anyhow::Result<Vec<ReceivedDeadLetter>> {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            Ok(match *calls {
                1 => vec![dead("a", "a-1"), dead("b", "b-1")],
                2 => vec![dead("a", "a-2")],
                _ => Vec::new(),
            })
        }
        async fn release_dead_letters(&self, receipts: &[String]) -> Vec<(String, String)> {
            self.released.lock().unwrap().extend_from_slice(receipts);
            Vec::new()
        }
        async fn receive(&self, _max: usize) -> anyhow::Result<Vec<Received>> {
            unreachable!("dlq commands receive dead letters only")
        }
        async fn change_visibility(&self, _receipt: &str, _seconds: i32) -> anyhow::Result<()> {
            unreachable!("dlq commands release dead letters only")
        }
        async fn delete(&self, _receipts: &[String]) {
            unreachable!("dlq commands delete dead letters only")
        }
        async fn dead_letter(&self, _: &Received, _: &DeadLetter<'_>) -> anyhow::Result<()> {
            unreachable!("dlq commands never dead-letter")
        }
        async fn send(&self, _body: &str) -> anyhow::Result<String> {
            unreachable!("a listing sends nothing")
        }
        async fn send_with_attributes(
            &self,
            _body: &str,
            _attributes: &[(String, Attribute)],
        ) -> anyhow::Result<String> {
            unreachable!("a listing sends nothing")
        }
        async fn defer(&self, _: &Received, _: Duration) -> anyhow::Result<Deferral> {
            unreachable!("dlq commands never defer")
        }
        async fn delete_dead_letters(&self, _receipts: &[String]) -> Vec<(String, String)> {
            unreachable!("a listing deletes nothing")
        }
        async fn state(&self) -> anyhow::Result<QueueState> {
            unreachable!("a listing within the bound needs no count")
        }
    }

    #[tokio::test]
    async fn a_dead_letter_whose_send_fails_stays_and_the_others_move() {
        use crate::local::Store;
        use crate::queue::local::{LocalQueue, enqueue_with_attributes, messages};
        use crate::support::random_hex;
        let dir = std::env::temp_dir().join(format!("envmgr-dlq-{}", random_hex(6)));
        let store = Store::open_dir(&dir).unwrap();
        let settings = QueueSettings {
            // 16 KiB less envmgr's 8 KiB reserve: at most 8 KiB a message.
            max_message_bytes: 16_384,
            ..QueueSettings::named("q")
        };
        let dead_letters = DeadLetters::new(vec![Source {
            logical: "api".into(),
            settings: settings.clone(),
            queue: Arc::new(LocalQueue::new(store.clone(), "api", &settings)),
        }]);
        let traceparent = vec![("traceparent".to_string(), Attribute::text("String", "00-1"))];
        let too_big = "x".repeat(9_000);
        enqueue_with_attributes(&store, "q-dlq", &too_big, &[])
            .await
            .unwrap();
        enqueue_with_attributes(&store, "q-dlq", "{}", &traceparent)
            .await
            .unwrap();

        let report = dead_letters.redrive(None, Selection::All).await.unwrap();
        assert_eq!(report.moved.len(), 1);
        assert_eq!(report.failed.len(), 1);
        assert!(
            report.failed[0].1.contains("at most 8192"),
            "{}",
            report.failed[0].1
        );
        assert!(report.not_removed.is_empty() && report.not_found.is_empty());
        let moved = messages(&store, "q").unwrap();
        assert_eq!(moved.len(), 1);
        assert_eq!(moved[0].typed_attributes, traceparent);
        assert!(moved[0].metadata.is_none(), "starts over");
        let left = dead_letters.list(None).await.unwrap();
        assert_eq!(left[0].letters.len(), 1, "visible again at once");
        assert_eq!(left[0].letters[0].body, too_big);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_message_returned_twice_is_listed_once_and_released_by_its_latest_receipt() {
        let queue = Arc::new(Repeating::default());
        let dead_letters = DeadLetters::new(vec![Source {
            logical: "api".into(),
            settings: QueueSettings::named("q"),
            queue: queue.clone(),
        }]);
        let listings = dead_letters.list(None).await.unwrap();
        let ids: Vec<&str> = listings[0].letters.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert!(!listings[0].bounded);
        let mut released = queue.released.lock().unwrap().clone();
        released.sort();
        assert_eq!(released, ["a-2", "b-1"]);
    }
}
