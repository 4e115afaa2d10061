//! After the ack: recorded messages go through a bounded queue to one
//! worker that stores them and, while a shadow version is set, runs it
//! beside the version that handled each one. The message's path only takes
//! the tape and hands it over (`try_send`): when the queue is full the
//! recording is dropped and counted, and nothing ever waits for it.
//!
//! | step | where | on failure |
//! |---|---|---|
//! | tape calls, clock, random | the message's run | — (in memory) |
//! | hand over | after the message's disposition | queue full: dropped, counted, logged at debug |
//! | store | the worker, up to 32 recordings gathered over 100 ms in one transaction | counted as failed, warned at most once a minute; the message is long done |
//! | prune (local) | the worker, every 256 stores, by key | warned |
//! | shadow run | the worker, in the mock host against the recording | counted as its verdict; differing and failing runs kept for `--shadow-report` |

use std::collections::BTreeMap;
use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::bindings::Message;
use crate::calls::tape::Tape;
use crate::config::Record as Settings;
use crate::engine::{Engine, Logic};
use crate::logic::serving::Versions;
use crate::logic::short;
use crate::record::Recording;
use crate::record::replay::{Expectations, Replaying, Tally, Verdict};
use crate::record::store::Recordings;

/// Stores between two prunes of the local table.
const PRUNE_EVERY: u64 = 256;
/// The most recordings stored together (one transaction, one commit).
const BATCH: usize = 32;
/// How long the first recording of a batch waits for more: nothing waits
/// for a recording, and each commit of one or two recordings cost a
/// hand-off to the database's writer, its pages written and flushed again
/// (docs/performance.md). Bound: at most [`BATCH`] recordings held this
/// long, besides the queue's [`Settings::queue`].
const GATHER: Duration = Duration::from_millis(100);
/// How often a store that keeps failing is said in the log.
const SAY_FAILURES_EVERY: Duration = Duration::from_secs(60);
/// How often a host writes its shadow counts to the shared store.
const COUNTS_EVERY: Duration = Duration::from_secs(2);

/// A handled message on its way to the store.
pub struct Handled {
    pub recording: Recording,
    /// The version that handled it (a shadow runs beside it).
    pub logic: Arc<Logic>,
}

pub struct Recorder {
    settings: Settings,
    sender: mpsc::Sender<Handled>,
}

/// Whether this delivery is in the sample: by its delivery token, so the
/// share holds over any mix of messages.
fn sampled(settings: &Settings, message: &Message) -> bool {
    if settings.sample >= 1.0 {
        return true;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    message.delivery_token.hash(&mut hasher);
    (hasher.finish() as f64 / u64::MAX as f64) < settings.sample
}

impl Recorder {
    /// The recorder and its worker; the worker ends once every sender is
    /// gone and the queue is empty.
    pub fn start(
        recordings: Recordings,
        engine: Arc<Engine>,
        versions: Arc<Versions>,
        host: String,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let settings = recordings.settings().clone();
        let (sender, receiver) = mpsc::channel(settings.queue);
        let worker = Worker {
            recordings,
            engine,
            versions,
            host,
            stored: 0,
            unstored: 0,
            unstored_said: None,
            expected: Expectations::default(),
            tallies: BTreeMap::new(),
            marked: Default::default(),
            counts_written: Instant::now(),
        };
        let handle = tokio::spawn(worker.run(receiver));
        (Arc::new(Self { settings, sender }), handle)
    }

    /// A tape for this message, if it is recorded.
    pub fn tape(&self, message: &Message) -> Option<Tape> {
        (self.settings.enabled && sampled(&self.settings, message)).then(Tape::default)
    }

    /// Hand a handled message over; never waits.
    pub fn submit(&self, handled: Handled) {
        if handled.recording.taped.overflowed {
            crate::metrics::recording("dropped", 0);
            debug!(
                why = "more calls or clock reads than a recording keeps",
                "recording dropped"
            );
            return;
        }
        if let Err(e) = self.sender.try_send(handled) {
            crate::metrics::recording("dropped", 0);
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "the recording queue is full",
                mpsc::error::TrySendError::Closed(_) => "the recorder stopped",
            };
            debug!(why, "recording dropped");
        }
    }
}

struct Worker {
    recordings: Recordings,
    engine: Arc<Engine>,
    versions: Arc<Versions>,
    host: String,
    stored: u64,
    /// Recordings not stored since the failure was last said, and when.
    unstored: u64,
    unstored_said: Option<Instant>,
    expected: Expectations,
    /// Shadow verdicts per version since this host started, for the
    /// versions the pointer names (see `write_counts`).
    tallies: BTreeMap<String, (Tally, bool)>,
    counts_written: Instant,
    /// The handlers marked lately (`logic gc` keeps what they name).
    marked: crate::record::handlers::Marked,
}

/// `first` and what comes after it within [`GATHER`], up to [`BATCH`]; less
/// when the queue closes (the host is stopping: nothing is held back).
async fn gather<T>(first: T, receiver: &mut mpsc::Receiver<T>) -> Vec<T> {
    let until = tokio::time::Instant::now() + GATHER;
    let mut batch = vec![first];
    while batch.len() < BATCH {
        match tokio::time::timeout_at(until, receiver.recv()).await {
            Ok(Some(next)) => batch.push(next),
            Ok(None) | Err(_) => break,
        }
    }
    batch
}

impl Worker {
    async fn run(mut self, mut receiver: mpsc::Receiver<Handled>) {
        // From before the first recording, so every one stored is marked;
        // apart, so a slow store never holds up the queue.
        let (recordings, since) = (self.recordings.clone(), now_ms());
        tokio::spawn(async move {
            if let Err(e) = recordings.marks_begin(since).await {
                warn!(error = %format!("{e:#}"), "recording's handler not marked");
            }
        });
        loop {
            // Idle, the counts are still written: the last of a burst too.
            match tokio::time::timeout(COUNTS_EVERY, receiver.recv()).await {
                Ok(Some(first)) => {
                    let batch = gather(first, &mut receiver).await;
                    self.store(&batch).await;
                    for handled in &batch {
                        self.shadow(handled).await;
                    }
                }
                Ok(None) => break,
                Err(_idle) => {}
            }
            if self.counts_written.elapsed() >= COUNTS_EVERY {
                self.write_counts().await;
            }
        }
        self.write_counts().await;
    }

    async fn store(&mut self, batch: &[Handled]) {
        let recordings: Vec<&Recording> = batch.iter().map(|h| &h.recording).collect();
        let results = self.recordings.put_all(&recordings).await;
        let mut handlers = std::collections::BTreeSet::new();
        for (recording, result) in recordings.iter().zip(results) {
            match result {
                Ok(bytes) => {
                    handlers.insert(recording.logic.as_str());
                    crate::metrics::recording("stored", bytes);
                    self.stored += 1;
                    if self.stored % PRUNE_EVERY == 1
                        && let Err(e) = self.recordings.prune(now_ms()).await
                    {
                        warn!(error = %format!("{e:#}"), "recordings not pruned");
                    }
                }
                Err(e) => {
                    crate::metrics::recording("failed", 0);
                    // A missing table fails every message: said once a
                    // minute, with how many since (the metric counts all).
                    self.unstored += 1;
                    if self
                        .unstored_said
                        .is_none_or(|said| said.elapsed() >= SAY_FAILURES_EVERY)
                    {
                        warn!(
                            message_id = %recording.message.id,
                            error = %format!("{e:#}"),
                            failed = self.unstored,
                            "recording not stored"
                        );
                        self.unstored_said = Some(Instant::now());
                        self.unstored = 0;
                    }
                }
            }
        }
        for version in handlers {
            if self.marked.due(version, now_ms()) {
                self.mark(version).await;
            }
        }
    }

    /// Mark `version` as the handler of recordings kept from now.
    async fn mark(&mut self, version: &str) {
        if let Err(e) = self.recordings.mark_handler(version, now_ms()).await {
            self.marked.unmark(version);
            warn!(error = %format!("{e:#}"), "recording's handler not marked");
        }
    }

    async fn shadow(&mut self, handled: &Handled) {
        let Some(shadow) = self.versions.current().shadow.clone() else {
            return;
        };
        if shadow.id == handled.logic.id {
            return;
        }
        let replaying = Replaying {
            engine: &self.engine,
            expected: &self.expected,
        };
        let verdict = replaying
            .verdict(&handled.recording, &handled.logic, &shadow)
            .await;
        crate::metrics::shadow_run(short(&shadow.id), verdict.label());
        if let Some((tally, dirty)) = self.tally_of(&shadow.id).await {
            tally.add(&verdict);
            *dirty = true;
        }
        if !matches!(verdict, Verdict::Identical { .. }) {
            info!(
                message_id = %handled.recording.message.id,
                shadow = short(&shadow.id),
                verdict = verdict.name(),
                "shadow run"
            );
            let kept = self
                .recordings
                .put_shadow_result(
                    &shadow.id,
                    &handled.recording,
                    verdict.name(),
                    &verdict.explained(),
                )
                .await;
            if let Err(e) = kept {
                warn!(error = %format!("{e:#}"), "shadow result not stored");
            }
        }
    }

    /// This host's tally of `version`: a version shadowed again after its
    /// tally was dropped goes on from its stored counts, never back. None
    /// when they cannot be read (counting from zero would write smaller
    /// counts over them): the run is counted in `/metrics` only.
    async fn tally_of(&mut self, version: &str) -> Option<&mut (Tally, bool)> {
        if !self.tallies.contains_key(version) {
            let stored = self
                .recordings
                .shadow_counts(version, Some(&self.host), now_ms())
                .await;
            match stored {
                Ok(stored) => {
                    self.tallies.insert(version.to_string(), (stored, false));
                }
                Err(e) => {
                    warn!(error = %format!("{e:#}"), "shadow counts not stored");
                    return None;
                }
            }
        }
        self.tallies.get_mut(version)
    }

    async fn write_counts(&mut self) {
        self.counts_written = Instant::now();
        for version in self.marked.take_pending(now_ms()) {
            self.mark(&version).await;
        }
        for (version, (tally, dirty)) in &mut self.tallies {
            if !*dirty {
                continue;
            }
            match self
                .recordings
                .put_shadow_counts(version, &self.host, tally, now_ms())
                .await
            {
                Ok(()) => *dirty = false,
                Err(e) => warn!(error = %format!("{e:#}"), "shadow counts not stored"),
            }
        }
        // Bound: the versions the pointer names; a tally is dropped only
        // once it is stored.
        let serving = self.versions.current();
        self.tallies
            .retain(|version, (_, dirty)| *dirty || serving.names(version));
    }
}

fn now_ms() -> u64 {
    crate::support::now_ms().max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_batch_gathers_what_comes_within_its_time_and_no_more() {
        let (sender, mut receiver) = mpsc::channel(BATCH * 2);
        let late = tokio::spawn(async move {
            tokio::time::sleep(GATHER / 2).await;
            sender.send(2).await.unwrap();
            tokio::time::sleep(GATHER).await;
            sender.send(3).await.unwrap();
            sender
        });
        assert_eq!(gather(1, &mut receiver).await, [1, 2]);
        let sender = late.await.unwrap();
        assert_eq!(
            gather(receiver.recv().await.unwrap(), &mut receiver).await,
            [3]
        );

        // Full: stored at once; closed: nothing is held back.
        for n in 0..BATCH + 1 {
            sender.send(n).await.unwrap();
        }
        let began = tokio::time::Instant::now();
        let first = receiver.recv().await.unwrap();
        assert_eq!(gather(first, &mut receiver).await.len(), BATCH);
        assert_eq!(began.elapsed(), Duration::ZERO);
        drop(sender);
        let last = receiver.recv().await.unwrap();
        assert_eq!(gather(last, &mut receiver).await, [BATCH]);
        assert_eq!(began.elapsed(), Duration::ZERO);
    }
}
