//! One delivery: the message run on its logic version, then what the
//! result means for it on the queue (the table in [the daemon's
//! docs](super)).

use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use super::deleter::Deleter;
use super::lease;
use super::{Daemon, Disposition, Finished};
use crate::bindings::envmgr::environments::types as wit;
use crate::bindings::{Failure, FailureKind, Outcome};
use crate::calls::tape::Tape;
use crate::config::Queue as QueueSettings;
use crate::engine::{Logic, RunError};
use crate::health::Problem;
use crate::logic::serving::Ending;
use crate::queue::{DeadLetter, Deferral, Queue, Received};
use crate::record::Recording;
use crate::record::recorder::Handled;
use crate::support::seconds;

/// The daemon's: a delivery's events are the ones operators alert on
/// (docs/reference/log-events.md), under the target the rest of the daemon's have.
const TARGET: &str = "envmgr::daemon";

/// How long a message that met an unhealthy host waits before it is
/// visible again: long enough not to spin, short enough for a healthy host
/// (the fault may be this host's own config) to take it soon.
const HOST_FAULT_WAIT: Duration = Duration::from_secs(5);

impl Daemon {
    /// Run one message and carry out what its result means.
    pub(super) async fn handle(
        &self,
        index: usize,
        logic: &Arc<Logic>,
        received: &Received,
        deleter: &Deleter,
    ) -> Disposition {
        let (logical, settings, queue) = &self.queues[index];
        let delivery = Delivery {
            logical,
            settings,
            queue,
            logic,
            received,
            deleter,
        };
        let tape = self
            .recorder
            .as_ref()
            .and_then(|r| r.tape(&received.message));
        let result = self.run_leased(&delivery, tape.as_ref()).await;
        let host_fault = self.host_fault(&result);
        let ending = match host_fault {
            Some(_) => Ending::HostFault,
            None => ending(&result),
        };
        self.versions.record(&logic.id, ending);
        let summary = crate::engine::summary(&result);
        let disposition = match host_fault {
            Some(problems) => delivery.put_back_for_host_fault(&problems, &summary).await,
            None => delivery.dispose(&result, &summary).await,
        };
        delivery.settle(disposition).await;
        self.report(&delivery, tape, summary, disposition);
        disposition
    }

    /// Run the message, its lease renewed meanwhile, its calls taped when it
    /// is recorded.
    async fn run_leased(
        &self,
        delivery: &Delivery<'_>,
        tape: Option<&Tape>,
    ) -> Result<crate::Handled, RunError> {
        // Renewal stops when the guard drops: at the end, on a panic, or when
        // the drain aborts this task.
        let _lease = lease::extend_while_running(
            delivery.queue.clone(),
            delivery.received.receipt.clone(),
            delivery.settings.visibility_timeout_seconds,
        );
        let backends = match tape {
            Some(tape) => Arc::new(self.backends.taped(tape.clone())),
            None => self.backends.clone(),
        };
        let (result, _suspicions) = crate::health::watched(
            Some(self.health.clone()),
            self.engine
                .run(delivery.logic, backends, &delivery.received.message),
        )
        .await;
        result
    }

    /// The host's problems, when the run failed while the host is unhealthy:
    /// whatever the logic made of it, the failure is then the host's (the
    /// canary judge ignores it).
    fn host_fault(&self, result: &Result<crate::Handled, RunError>) -> Option<Vec<Problem>> {
        let succeeded = matches!(
            result,
            Ok(Ok(Outcome::Done(_)
                | Outcome::Skipped(_)
                | Outcome::Deferred(_)))
        );
        (!succeeded && !self.health.is_healthy()).then(|| self.health.problems())
    }

    /// Acknowledged: the recording goes its own way, never waited for, and
    /// whoever watches is told how the message ended.
    fn report(
        &self,
        delivery: &Delivery<'_>,
        tape: Option<Tape>,
        summary: String,
        disposition: Disposition,
    ) {
        let (logical, logic) = (delivery.logical, delivery.logic);
        let message = &delivery.received.message;
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
                queue: logical.to_string(),
                message_id: message.id.clone(),
                disposition,
                logic_version: logic.id.clone(),
                summary,
            });
        }
    }
}

/// One delivery of a message being handled, and the queue it came from.
struct Delivery<'a> {
    logical: &'a str,
    settings: &'a QueueSettings,
    queue: &'a Arc<dyn Queue>,
    logic: &'a Arc<Logic>,
    received: &'a Received,
    deleter: &'a Deleter,
}

impl Delivery<'_> {
    /// What the logic's result means for the message: the table in the
    /// daemon's docs, but for a host fault.
    async fn dispose(
        &self,
        result: &Result<crate::Handled, RunError>,
        summary: &str,
    ) -> Disposition {
        let message = &self.received.message;
        match result {
            Ok(Ok(Outcome::Deferred(deferral)))
                if message.deferrals >= self.settings.max_deferrals =>
            {
                self.retry(
                    &format!(
                        "deferred {} times, the most `max_deferrals` allows: {}",
                        message.deferrals, deferral.reason
                    ),
                    None,
                )
            }
            Ok(Ok(Outcome::Deferred(deferral))) => self.defer(deferral).await,
            Ok(Ok(outcome)) => {
                info!(target: TARGET, outcome = %summary, "handled");
                let done = match outcome {
                    Outcome::Done(text) => Some(text.as_str()),
                    _ => None,
                };
                let now = crate::support::now_ms().max(0) as u64;
                let sent_at = message.sent_at_ms;
                crate::telemetry::slo::finished(self.logical, &message.body, sent_at, done, now);
                Disposition::Deleted
            }
            Ok(Err(failure)) if failure.kind == FailureKind::Permanent => {
                self.dead_letter(failure).await
            }
            Ok(Err(failure)) => self.retry(&failure.reason, asked_wait(failure)),
            Err(run_error) => self.retry(&run_error.to_string(), None),
        }
    }

    /// Back on the queue until the time the logic named, its receive not
    /// counted.
    async fn defer(&self, deferral: &wit::Deferral) -> Disposition {
        let wait = Duration::from_millis(
            deferral
                .until_ms
                .saturating_sub(crate::support::now_ms().max(0) as u64),
        )
        .clamp(Duration::from_secs(1), crate::queue::MAX_DELAY);
        match self.queue.defer(self.received, wait).await {
            Ok(how) => {
                let shown = match how {
                    Deferral::Copied => "Copied",
                    Deferral::InPlace => "InPlace",
                    Deferral::Hidden => "Hidden",
                };
                info!(target: TARGET, reason = %deferral.reason, wait = %seconds(wait), how = shown, "deferred");
                if how == Deferral::Copied {
                    self.deleter.delete(&self.received.receipt).await;
                }
                Disposition::Deferred(wait)
            }
            Err(e) => {
                warn!(target: TARGET, error = %e, "could not defer; retrying instead");
                self.retry(&deferral.reason, None)
            }
        }
    }

    /// To the dead-letter queue with the reason; retried when that queue
    /// cannot be reached.
    async fn dead_letter(&self, failure: &Failure) -> Disposition {
        let reason = &failure.reason;
        let why = DeadLetter {
            reason,
            source_queue: self.logical,
            logic_version: &self.logic.id,
            sent: None,
        };
        match self.queue.dead_letter(self.received, &why).await {
            Ok(()) => {
                warn!(target: TARGET, %reason, "dead-lettered");
                Disposition::DeadLettered
            }
            Err(e) => {
                error!(target: TARGET, error = %e, "could not dead-letter; retrying instead");
                self.retry("the dead-letter queue is unreachable", asked_wait(failure))
            }
        }
    }

    /// Visible again after the queue's backoff, or later if a dependency
    /// asked for a longer wait.
    fn retry(&self, why: &str, asked: Option<Duration>) -> Disposition {
        let backoff = self
            .settings
            .backoff(self.received.message.receive_count)
            .max(asked.unwrap_or_default());
        warn!(target: TARGET, reason = %why, retry_in = %seconds(backoff), "will retry");
        Disposition::Retry(backoff)
    }

    /// A message that failed while the host is unhealthy goes back on the
    /// queue without spending a receive (a delayed copy, as a deferral is),
    /// so that however long the deployment is broken, no message reaches the
    /// dead-letter queue for it.
    async fn put_back_for_host_fault(&self, problems: &[Problem], summary: &str) -> Disposition {
        warn!(
            target: TARGET,
            reason = %format!("the host is unhealthy ({}): {summary}", Problem::list(problems)),
            retry_in = %seconds(HOST_FAULT_WAIT),
            host_fault = true,
            "will retry"
        );
        match self.queue.defer(self.received, HOST_FAULT_WAIT).await {
            Ok(how) => {
                if how == Deferral::Copied {
                    self.deleter.delete(&self.received.receipt).await;
                }
                Disposition::Deferred(HOST_FAULT_WAIT)
            }
            Err(e) => {
                warn!(target: TARGET, error = %format!("{e:#}"), "could not put back without spending a receive");
                Disposition::Retry(HOST_FAULT_WAIT)
            }
        }
    }

    /// Carry the disposition out on the queue: a delete, or the backoff
    /// (a deferral was carried out when it was decided).
    async fn settle(&self, disposition: Disposition) {
        let receipt = self.received.receipt.as_str();
        match disposition {
            Disposition::Deleted | Disposition::DeadLettered => self.deleter.delete(receipt).await,
            Disposition::Deferred(_) => {}
            Disposition::Retry(backoff) => {
                let seconds = i32::try_from(backoff.as_secs()).unwrap_or(43_200);
                if let Err(e) = self.queue.change_visibility(receipt, seconds).await {
                    warn!(target: TARGET, error = %e, "could not set the backoff; the message returns after its lease");
                }
            }
        }
    }
}

/// The wait a failure asked for before it is tried again.
fn asked_wait(failure: &Failure) -> Option<Duration> {
    failure.retry_after_ms.map(Duration::from_millis)
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
