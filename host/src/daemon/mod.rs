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
pub mod endpoint;
mod lease;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{Instrument as _, error, info, info_span, warn};

use crate::bindings::{FailureKind, Outcome};
use crate::boundary::Backends;
use crate::config::Queue as QueueSettings;
use crate::engine::{Engine, Logic, RunError};
use crate::health::{Health, Problem};
use crate::logic::serving::{Ending, Versions};
use crate::queue::{DeadLetter, Deferral, Queue, Received};
use crate::record::Recording;
use crate::record::recorder::{Handled, Recorder};
use crate::support::seconds;
use deleter::Deleter;

/// A queue receives at most ten messages per call (SQS's limit).
const MAX_BATCH: usize = 10;
/// How long a message that met an unhealthy host waits before it is
/// visible again: long enough not to spin, short enough for a healthy host
/// (the fault may be this host's own config) to take it soon.
const HOST_FAULT_WAIT: Duration = Duration::from_secs(5);

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
type InFlight = Arc<Mutex<HashMap<String, String>>>;

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
        let in_flight: InFlight = Arc::default();
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
                    let pause = Duration::from_millis((250u64 << failures.min(5)).min(5_000));
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
                let receipt = received.receipt.clone();
                // The version is fixed here: a swap while the message runs
                // does not change it.
                let logic = self.versions.pick(&received.message.id);
                in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(receipt.clone(), received.message.id.clone());
                let daemon = self.clone();
                let in_flight = in_flight.clone();
                let deleter = deleter.clone();
                let span = info_span!(
                    "message",
                    queue = %logical,
                    message_id = %received.message.id,
                    receive_count = received.message.receive_count,
                    logic = %crate::logic::short(&logic.id),
                );
                work.spawn(
                    async move {
                        info!(deferrals = received.message.deferrals, "received");
                        let disposition = daemon.handle(index, &logic, &received, &deleter).await;
                        info!(%disposition, "message finished");
                        in_flight
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&receipt);
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
            // Reap finished tasks so the set does not grow.
            while work.try_join_next().is_some() {}
        }

        // Drain: in-flight messages may finish within the grace period.
        let drained = tokio::time::timeout(self.grace, async {
            while work.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !drained {
            work.abort_all();
            while work.join_next().await.is_some() {}
        }
        let left: Vec<(String, String)> = in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
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
        deleter.flush_and_stop().await;
        released
    }

    /// Run one message and carry out what its result means.
    async fn handle(
        &self,
        index: usize,
        logic: &Arc<Logic>,
        received: &Received,
        deleter: &Deleter,
    ) -> Disposition {
        let (logical, settings, queue) = &self.queues[index];
        let message = &received.message;
        let receipt = received.receipt.as_str();
        // Renewal stops when the guard drops: at the end, on a panic, or when
        // the drain aborts this task.
        let _lease = lease::extend_while_running(
            queue.clone(),
            receipt.to_string(),
            settings.visibility_timeout_seconds,
        );
        let tape = self.recorder.as_ref().and_then(|r| r.tape(message));
        let backends = match &tape {
            Some(tape) => Arc::new(self.backends.taped(tape.clone())),
            None => self.backends.clone(),
        };
        let (result, _suspicions) = crate::health::watched(
            Some(self.health.clone()),
            self.engine.run(logic, backends, message),
        )
        .await;
        drop(_lease);
        let succeeded = matches!(
            &result,
            Ok(Ok(Outcome::Done(_)
                | Outcome::Skipped(_)
                | Outcome::Deferred(_)))
        );
        // Whatever the logic made of it, a failure while the host is
        // unhealthy is the host's (the canary judge ignores it).
        let host_fault = (!succeeded && !self.health.is_healthy()).then(|| self.health.problems());
        let ending = match host_fault {
            Some(_) => Ending::HostFault,
            None => ending(&result),
        };
        self.versions.record(&logic.id, ending);

        let retry_after = match &result {
            Ok(Err(failure)) => failure.retry_after_ms.map(Duration::from_millis),
            _ => None,
        };
        let retry = |why: &str| {
            // The queue's backoff, or longer if a dependency asked for it.
            let backoff = settings
                .backoff(message.receive_count)
                .max(retry_after.unwrap_or_default());
            warn!(reason = %why, retry_in = %seconds(backoff), "will retry");
            backoff
        };
        let summary = crate::engine::summary(&result);
        let disposition = match &result {
            _ if host_fault.is_some() => {
                let problems = host_fault.as_deref().unwrap_or_default();
                self.put_back_for_host_fault(queue.as_ref(), received, deleter, problems, &summary)
                    .await
            }
            Ok(Ok(Outcome::Deferred(deferral))) if message.deferrals >= settings.max_deferrals => {
                Disposition::Retry(retry(&format!(
                    "deferred {} times, the most `max_deferrals` allows: {}",
                    message.deferrals, deferral.reason
                )))
            }
            Ok(Ok(Outcome::Deferred(deferral))) => {
                let wait = Duration::from_millis(
                    deferral
                        .until_ms
                        .saturating_sub(crate::support::now_ms().max(0) as u64),
                )
                .clamp(Duration::from_secs(1), crate::queue::MAX_DELAY);
                match queue.defer(received, wait).await {
                    Ok(how) => {
                        let shown = match how {
                            Deferral::Copied => "Copied",
                            Deferral::InPlace => "InPlace",
                            Deferral::Hidden => "Hidden",
                        };
                        info!(reason = %deferral.reason, wait = %seconds(wait), how = shown, "deferred");
                        if how == Deferral::Copied {
                            deleter.delete(receipt).await;
                        }
                        Disposition::Deferred(wait)
                    }
                    Err(e) => {
                        warn!(error = %e, "could not defer; retrying instead");
                        Disposition::Retry(retry(&deferral.reason))
                    }
                }
            }
            Ok(Ok(_)) => {
                info!(outcome = %summary, "handled");
                Disposition::Deleted
            }
            Ok(Err(failure)) if failure.kind == FailureKind::Permanent => {
                let reason = failure.reason.clone();
                let why = DeadLetter {
                    reason: &reason,
                    source_queue: logical,
                    logic_version: &logic.id,
                    sent: None,
                };
                match queue.dead_letter(received, &why).await {
                    Ok(()) => {
                        warn!(%reason, "dead-lettered");
                        Disposition::DeadLettered
                    }
                    Err(e) => {
                        error!(error = %e, "could not dead-letter; retrying instead");
                        Disposition::Retry(retry("the dead-letter queue is unreachable"))
                    }
                }
            }
            Ok(Err(failure)) => Disposition::Retry(retry(&failure.reason)),
            Err(run_error) => Disposition::Retry(retry(&run_error.to_string())),
        };
        match disposition {
            Disposition::Deleted | Disposition::DeadLettered => deleter.delete(receipt).await,
            Disposition::Deferred(_) => {}
            Disposition::Retry(backoff) => {
                let seconds = i32::try_from(backoff.as_secs()).unwrap_or(43_200);
                if let Err(e) = queue.change_visibility(receipt, seconds).await {
                    warn!(error = %e, "could not set the backoff; the message returns after its lease");
                }
            }
        }
        // Acknowledged: the recording goes its own way, never waited for.
        if let (Some(recorder), Some(tape)) = (&self.recorder, tape) {
            recorder.submit(Handled {
                recording: Recording::of(
                    logic,
                    logical,
                    message,
                    &self.backends.config,
                    crate::support::now_ms().max(0) as u64,
                    summary.clone(),
                    tape.taken(),
                ),
                logic: logic.clone(),
            });
        }
        if let Some(finished) = &self.finished {
            let _ = finished.send(Finished {
                queue: logical.clone(),
                message_id: message.id.clone(),
                disposition,
                logic_version: logic.id.clone(),
                summary,
            });
        }
        disposition
    }
}

impl Daemon {
    /// A message that failed while the host is unhealthy goes back on the
    /// queue without spending a receive (a delayed copy, as a deferral is),
    /// so that however long the deployment is broken, no message reaches the
    /// dead-letter queue for it.
    async fn put_back_for_host_fault(
        &self,
        queue: &dyn Queue,
        received: &Received,
        deleter: &Deleter,
        problems: &[Problem],
        summary: &str,
    ) -> Disposition {
        warn!(
            reason = %format!("the host is unhealthy ({}): {summary}", Problem::list(problems)),
            retry_in = %seconds(HOST_FAULT_WAIT),
            host_fault = true,
            "will retry"
        );
        match queue.defer(received, HOST_FAULT_WAIT).await {
            Ok(how) => {
                if how == Deferral::Copied {
                    deleter.delete(&received.receipt).await;
                }
                Disposition::Deferred(HOST_FAULT_WAIT)
            }
            Err(e) => {
                warn!(error = %format!("{e:#}"), "could not put back without spending a receive");
                Disposition::Retry(HOST_FAULT_WAIT)
            }
        }
    }
}

/// How a run ended, for the per-version counts.
fn ending(result: &Result<crate::Handled, RunError>) -> Ending {
    match result {
        Ok(Ok(Outcome::Done(_))) => Ending::Done,
        Ok(Ok(Outcome::Skipped(_))) => Ending::Skipped,
        Ok(Ok(Outcome::Deferred(_))) => Ending::Deferred,
        Ok(Err(failure)) if failure.kind == FailureKind::Permanent => Ending::Permanent,
        Ok(Err(_)) => Ending::Retryable,
        Err(RunError::Trap(_)) => Ending::Trap,
        Err(RunError::Timeout(_)) => Ending::Timeout,
        Err(RunError::MemoryExhausted(_)) => Ending::Memory,
    }
}
