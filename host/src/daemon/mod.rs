//! `envmgr serve`: consume the queues and run every message through the
//! logic.
//!
//! Per queue: long polling and batch receive, at most `max_in_flight`
//! messages at once (no receive while full), the lease extended while a
//! message runs, finished messages deleted in batches. What the logic returns
//! decides the rest:
//!
//! | result | action |
//! |---|---|
//! | done, skipped | delete |
//! | deferred (another delivery holds the environment) | back on the queue until the logic's time, its receive not counted (SQS: a delayed copy, then the original deleted); past `max_deferrals` handled as a retryable failure |
//! | retryable failure, trap, timeout, memory | visible again after a backoff growing with the receive count; the queue's redrive policy dead-letters it after maxReceiveCount |
//! | permanent failure | sent to the dead-letter queue with the reason, then deleted |
//! | any failure while the host is unhealthy (a probe failed: see [`health`](crate::health)) | back on the queue like a deferral, its receive not counted: the deployment's fault is not the message's |
//!
//! While the host is unhealthy no queue receives; probes go on until the
//! dependencies answer again. Nothing is deleted unless done or
//! dead-lettered. Errors talking to the
//! queue never end a loop. On shutdown: stop receiving, let in-flight messages
//! finish within the grace period, make the rest visible at once.

pub mod assemble;
mod deleter;
mod delivery;
pub mod endpoint;
mod lease;
pub mod requests;
pub mod sweep;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{Instrument as _, error, info, info_span, warn};

use crate::boundary::Backends;
use crate::config::Queue as QueueSettings;
use crate::engine::Engine;
use crate::health::Health;
use crate::logic::serving::Versions;
use crate::queue::{Queue, Received};
use crate::record::recorder::Recorder;
use crate::support::seconds;
use deleter::Deleter;

/// A queue receives at most ten messages per call (SQS's limit).
const MAX_BATCH: usize = 10;

/// What one daemon runs.
pub struct Daemon {
    pub engine: Arc<Engine>,
    /// The logic versions served, following the shared pointer.
    pub versions: Arc<Versions>,
    pub backends: Arc<Backends>,
    /// Whether the deployment is sound; receiving pauses while not.
    pub health: Arc<Health>,
    /// (logical name, settings, queue) per queue.
    pub queues: Vec<(String, QueueSettings, Arc<dyn Queue>)>,
    pub grace: Duration,
    /// Told how each message ended (the demo, metrics); none in plain serve.
    pub finished: Option<mpsc::UnboundedSender<Finished>>,
    /// The admin endpoint (`/healthz`, `/readyz`, `/metrics`, `/status`),
    /// if configured: up since start-up.
    pub admin: Option<Arc<endpoint::Admin>>,
    /// Takes handled messages' recordings after the ack (`[record]`).
    pub recorder: Option<Arc<Recorder>>,
    /// Work beside the messages until the stop (retention passes), each
    /// given the stop signal.
    pub chores: Vec<Chore>,
}

/// A task the daemon runs beside its queues and stops with them.
pub type Chore =
    Box<dyn FnOnce(watch::Receiver<bool>) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// How one delivery of a message ended.
#[derive(Clone, Debug)]
pub struct Finished {
    pub queue: String,
    pub message_id: String,
    pub disposition: Disposition,
    /// The logic version it ran on.
    pub logic_version: String,
    /// The outcome or failure, as the logs show it.
    pub summary: String,
}

/// Messages being worked on: receipt handle → message id. Keyed by receipt,
/// since a duplicate delivery of one message has a receipt of its own.
#[derive(Clone, Default)]
struct InFlight(Arc<Mutex<HashMap<String, String>>>);

impl InFlight {
    fn enter(&self, receipt: &str, message_id: &str) {
        self.lock()
            .insert(receipt.to_string(), message_id.to_string());
    }

    fn leave(&self, receipt: &str) {
        self.lock().remove(receipt);
    }

    /// (receipt, message id) of every message that never left: those a
    /// drain cut short.
    fn take_all(&self) -> Vec<(String, String)> {
        self.lock().drain().collect()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the daemon did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Deleted,
    /// Put back for this long without counting a receive.
    Deferred(Duration),
    Retry(Duration),
    DeadLettered,
}

/// As the `disposition` log field shows it: `Deleted`, `Deferred(5s)`,
/// `Retry(1.5s)`, `DeadLettered`.
impl std::fmt::Display for Disposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Disposition::Deleted => f.write_str("Deleted"),
            Disposition::Deferred(wait) => write!(f, "Deferred({})", seconds(*wait)),
            Disposition::Retry(backoff) => write!(f, "Retry({})", seconds(*backoff)),
            Disposition::DeadLettered => f.write_str("DeadLettered"),
        }
    }
}

impl Daemon {
    /// Run until `shutdown` resolves, then drain.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        for chore in std::mem::take(&mut self.chores) {
            tokio::spawn(chore(stop_rx.clone()));
        }
        let daemon = Arc::new(self);
        if let Some(admin) = &daemon.admin {
            admin.serving(
                daemon.versions.clone(),
                daemon
                    .queues
                    .iter()
                    .map(|(logical, _, queue)| (logical.clone(), queue.clone()))
                    .collect(),
            );
        }
        tokio::spawn(daemon.versions.clone().watch(stop_rx.clone()));
        let mut loops = JoinSet::new();
        for index in 0..daemon.queues.len() {
            let daemon = daemon.clone();
            let stop = stop_rx.clone();
            loops.spawn(async move { daemon.consume(index, stop).await });
        }
        let serving = daemon.versions.current();
        info!(
            logic = %serving.active.id,
            canary = %serving.canary.as_ref().map_or_else(|| "none".to_string(), |(c, percent)| format!("{} at {percent}%", c.id)),
            queues = daemon.queues.len(),
            "serving"
        );
        // A queue loop ending early (a bug) stops the daemon the orderly way:
        // the other queues still drain, and the error is reported after.
        let mut failure = None;
        // Messages the grace period cut short, over every queue.
        let mut released = 0;
        tokio::select! {
            _ = shutdown => {}
            Some(ended) = loops.join_next() => {
                let outcome = match &ended {
                    Ok(n) => {
                        released += n;
                        "returned".to_string()
                    }
                    Err(e) => e.to_string(),
                };
                error!(%outcome, "a queue loop ended unexpectedly; stopping");
                failure = Some("a queue loop ended unexpectedly");
            }
        }
        info!(grace = %seconds(daemon.grace), "shutting down: no more receives, draining");
        if let Some(admin) = &daemon.admin {
            admin.set_phase(endpoint::Phase::Draining);
        }
        let _ = stop_tx.send(true);
        while let Some(result) = loops.join_next().await {
            match result {
                Ok(n) => released += n,
                Err(_) => failure = Some("a queue loop panicked"),
            }
        }
        if let Some(admin) = &daemon.admin {
            admin.set_phase(endpoint::Phase::Closed);
        }
        // "drained" only when every message in flight finished.
        if released == 0 {
            info!("drained; bye");
        } else {
            warn!(
                released,
                "grace period over: unfinished messages aborted and released; bye"
            );
        }
        match failure {
            Some(what) => Err(anyhow::anyhow!(what)),
            None => Ok(()),
        }
    }

    /// One queue's receive loop, then its drain; returns how many messages
    /// the grace period cut short.
    async fn consume(self: Arc<Self>, index: usize, mut stop: watch::Receiver<bool>) -> usize {
        let (logical, settings, queue) = &self.queues[index];
        let permits = Arc::new(Semaphore::new(settings.max_in_flight));
        let in_flight = InFlight::default();
        let deleter = Deleter::start(queue.clone());
        let mut work = JoinSet::new();
        let mut failures: u32 = 0;

        while !*stop.borrow() {
            // Nothing is received while the deployment is unsound.
            self.health.wait_healthy(&mut stop).await;
            if *stop.borrow() {
                break;
            }
            // Backpressure: wait for room before asking the queue for more.
            let first = tokio::select! {
                permit = permits.clone().acquire_owned() => permit.expect("never closed"),
                _ = stop.changed() => break,
            };
            let room = (permits.available_permits() + 1).min(MAX_BATCH);
            let received = tokio::select! {
                received = queue.receive(room) => received,
                _ = stop.changed() => break,
            };
            let messages = match received {
                Ok(messages) => {
                    failures = 0;
                    messages
                }
                Err(e) => {
                    failures += 1;
                    let pause = receive_backoff(failures);
                    warn!(queue = %logical, error = %format!("{e:#}"), retry_in = %seconds(pause), "receiving failed");
                    drop(first);
                    // A missing queue or refused access pauses the host
                    // with the reason; a blip passes the probes.
                    self.health.check().await;
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => continue,
                        _ = stop.changed() => break,
                    }
                }
            };
            let mut first = Some(first);
            for received in messages {
                let permit = match first.take() {
                    Some(permit) => permit,
                    None => permits.clone().acquire_owned().await.expect("never closed"),
                };
                let task = self
                    .clone()
                    .message_task(index, received, permit, &in_flight, &deleter);
                work.spawn(task);
            }
            // Reap finished tasks so the set does not grow.
            while work.try_join_next().is_some() {}
        }

        self.drain(work).await;
        let released = self.release(logical, queue.as_ref(), &in_flight).await;
        deleter.flush_and_stop().await;
        released
    }

    /// The task that handles one received message, in the message's span,
    /// holding `permit` until it finished.
    fn message_task(
        self: Arc<Self>,
        index: usize,
        received: Received,
        permit: OwnedSemaphorePermit,
        in_flight: &InFlight,
        deleter: &Deleter,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (logical, _, _) = &self.queues[index];
        let receipt = received.receipt.clone();
        // The version is fixed here: a swap while the message runs
        // does not change it.
        let logic = self.versions.pick(&received.message.id);
        in_flight.enter(&receipt, &received.message.id);
        let in_flight = in_flight.clone();
        let deleter = deleter.clone();
        let short = crate::logic::short(&logic.id);
        let (traced, ids) = crate::telemetry::message::start(
            &crate::telemetry::message::Received {
                queue: logical,
                id: &received.message.id,
                receive_count: received.message.receive_count,
                body: &received.message.body,
                attributes: crate::queue::text_attributes_of(&received.attributes),
                trace_header: received.trace_header.as_deref(),
            },
            short,
            logic.contract,
        );
        // The log's span, inside the exported one: log lines name the trace.
        let parent = match traced.is_none() {
            true => tracing::Span::current().id(),
            false => traced.id(),
        };
        let span = info_span!(
            parent: parent,
            "message",
            queue = %logical,
            message_id = %received.message.id,
            receive_count = received.message.receive_count,
            logic = %short,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        );
        let traced_end = traced.clone();
        if let Some((trace_id, span_id)) = ids {
            span.record("trace_id", tracing::field::display(trace_id));
            span.record("span_id", tracing::field::display(span_id));
        }
        async move {
            info!(deferrals = received.message.deferrals, "received");
            let disposition = self.handle(index, &logic, &received, &deleter).await;
            info!(%disposition, "message finished");
            let failed = matches!(disposition, Disposition::DeadLettered);
            crate::telemetry::message::finished(&traced_end, &disposition.to_string(), failed);
            in_flight.leave(&receipt);
            drop(permit);
        }
        .instrument(span)
        // Entered around the log's span: the current trace context while
        // the message runs, so its calls' spans are its children.
        .instrument(traced)
    }

    /// Let the messages in flight finish within the grace period; abort the
    /// rest.
    async fn drain(&self, mut work: JoinSet<()>) {
        let drained = tokio::time::timeout(self.grace, async {
            while work.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !drained {
            work.abort_all();
            while work.join_next().await.is_some() {}
        }
    }

    /// Make the messages a drain cut short visible again; how many there
    /// were.
    async fn release(&self, logical: &str, queue: &dyn Queue, in_flight: &InFlight) -> usize {
        let left = in_flight.take_all();
        let released = left.len();
        for (receipt, message_id) in left {
            // Someone else can take it at once instead of after the lease.
            match queue.change_visibility(&receipt, 0).await {
                Ok(()) => info!(queue = %logical, %message_id, "released unfinished message"),
                Err(e) => {
                    warn!(queue = %logical, %message_id, error = %e, "could not release; it returns after its lease")
                }
            }
        }
        released
    }
}

/// How long a queue loop pauses after its `failures`-th receive in a row
/// failed: 0.5 s doubling up to 5 s.
fn receive_backoff(failures: u32) -> Duration {
    Duration::from_millis((250u64 << failures.min(5)).min(5_000))
}
