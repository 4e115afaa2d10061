//! A fault of the host is not a fault of the message.
//!
//! Error codes alone cannot tell a deployment's fault from a message's: KMS
//! access denied also comes from a ciphertext under another key, DynamoDB
//! access denied can be per item, a GitHub 403 can be one suspended
//! installation. So a backend that sees an error that *may* be the
//! deployment's (a missing table or queue, access denied on our own table or
//! key, the App's key refused, the Runtime Service refusing our token)
//! raises a [`suspicion`](suspect) for the message it serves, and the daemon
//! then runs [probes](probes) that do not depend on any message: a read of
//! a fixed key in each table, a decrypt of a probe ciphertext `init` stored,
//! the App's `GET /app`, the Runtime Service's health call, each queue's
//! attributes. Only a failed probe makes the host **unhealthy**: the
//! message is retried whatever the logic returned (the canary judge ignores
//! it), receiving pauses, the log says once what is wrong and which key to
//! fix, and probes go on with a capped backoff until
//! [`GOOD_PROBES_TO_RESUME`] pass in a row.

pub mod probes;

use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{error, info, warn};

pub use probes::{Probes, Problem};

/// Probes in a row that must pass before receiving resumes.
pub const GOOD_PROBES_TO_RESUME: u32 = 3;
/// The first wait between probes while unhealthy; it doubles up to
/// [`PROBE_BACKOFF_MAX`].
const PROBE_BACKOFF_START: Duration = Duration::from_millis(500);
const PROBE_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// What a backend saw that may be the deployment's fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suspicion {
    /// `dynamodb`, `kms`, `sqs`, `github`, `runtime`.
    pub dependency: &'static str,
    pub what: String,
}

/// What one message's run carries: the suspicions raised, and the health
/// that confirms them.
pub struct Watch {
    suspicions: Mutex<Vec<Suspicion>>,
    health: Option<Arc<Health>>,
}

tokio::task_local! {
    static WATCH: Arc<Watch>;
}

/// Note that the current message's last error may be the deployment's
/// fault. Outside a message (a command, a probe) it is a no-op.
pub fn suspect(dependency: &'static str, what: impl Into<String>) {
    let suspicion = Suspicion {
        dependency,
        what: what.into(),
    };
    let _ = WATCH.try_with(|watch| {
        watch
            .suspicions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(suspicion)
    });
}

/// How many suspicions the current message raised so far.
pub fn raised() -> usize {
    WATCH
        .try_with(|watch| {
            watch
                .suspicions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len()
        })
        .unwrap_or(0)
}

/// After a call that raised a suspicion: probe (or join the round under
/// way). The problems if the host is unhealthy, None if it is healthy or
/// nothing watches this run (the mock host, commands).
pub async fn confirm() -> Option<Vec<Problem>> {
    let health = WATCH
        .try_with(|watch| watch.health.clone())
        .ok()
        .flatten()?;
    if health.check().await {
        None
    } else {
        Some(health.problems())
    }
}

/// What watches the current message (None outside one): handed to a call
/// the message started, which runs on a task of its own.
pub fn current_watch() -> Option<Arc<Watch>> {
    WATCH.try_with(Arc::clone).ok()
}

/// Run `work` under `watch` (the message that started it), if any.
pub async fn within<F: Future>(watch: Option<Arc<Watch>>, work: F) -> F::Output {
    match watch {
        Some(watch) => WATCH.scope(watch, work).await,
        None => work.await,
    }
}

/// Run `work` (one message), its suspicions confirmed by `health`;
/// returns them with the output.
pub async fn watched<F: Future>(
    health: Option<Arc<Health>>,
    work: F,
) -> (F::Output, Vec<Suspicion>) {
    let watch = Arc::new(Watch {
        suspicions: Mutex::default(),
        health,
    });
    let output = WATCH.scope(watch.clone(), work).await;
    let suspicions =
        std::mem::take(&mut *watch.suspicions.lock().unwrap_or_else(|p| p.into_inner()));
    (output, suspicions)
}

/// The host's health: healthy, or paused on problems found by probes.
pub struct Health {
    probes: Probes,
    state: RwLock<State>,
    /// One probe round at a time; when the last one ended. Askers who
    /// waited for a round take its verdict.
    round: tokio::sync::Mutex<Option<Instant>>,
    healthy: watch::Sender<bool>,
    /// Total time spent unhealthy before the current spell.
    paused_before: Mutex<Duration>,
}

#[derive(Clone, Debug)]
enum State {
    Healthy,
    Unhealthy {
        since: Instant,
        problems: Vec<Problem>,
    },
}

impl Health {
    pub fn new(probes: Probes) -> Arc<Self> {
        let (healthy, _) = watch::channel(true);
        Arc::new(Self {
            probes,
            state: RwLock::new(State::Healthy),
            round: tokio::sync::Mutex::new(None),
            healthy,
            paused_before: Mutex::default(),
        })
    }

    /// What is probed (queues are added once connected).
    pub fn probes(&self) -> &Probes {
        &self.probes
    }

    pub fn is_healthy(&self) -> bool {
        matches!(
            *self.state.read().unwrap_or_else(|p| p.into_inner()),
            State::Healthy
        )
    }

    /// What is wrong now (empty when healthy).
    pub fn problems(&self) -> Vec<Problem> {
        match &*self.state.read().unwrap_or_else(|p| p.into_inner()) {
            State::Healthy => Vec::new(),
            State::Unhealthy { problems, .. } => problems.clone(),
        }
    }

    /// Seconds spent unhealthy since the process started.
    pub fn paused_seconds(&self) -> f64 {
        let before = *self.paused_before.lock().unwrap_or_else(|p| p.into_inner());
        let current = match &*self.state.read().unwrap_or_else(|p| p.into_inner()) {
            State::Healthy => Duration::ZERO,
            State::Unhealthy { since, .. } => since.elapsed(),
        };
        (before + current).as_secs_f64()
    }

    /// Probe now (or join the round under way) and return whether the host
    /// is healthy afterwards. Called when a message raised a suspicion, and
    /// at start.
    pub async fn check(self: &Arc<Self>) -> bool {
        let asked = Instant::now();
        let mut round = self.round.lock().await;
        if round.is_some_and(|ended| ended >= asked) {
            return self.is_healthy();
        }
        let problems = self.probes.run().await;
        *round = Some(Instant::now());
        drop(round);
        if problems.is_empty() {
            // Recovery is the prober's to declare, after good rounds in a
            // row; one good probe is not enough.
            return self.is_healthy();
        }
        self.fall_ill(problems);
        false
    }

    /// Record the problems; on the way from healthy, pause and start probing
    /// for recovery.
    fn fall_ill(self: &Arc<Self>, problems: Vec<Problem>) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        match &mut *state {
            State::Healthy => {
                error!(
                    problems = %Problem::list(&problems),
                    "host unhealthy: receiving paused; messages are retried, none is dead-lettered for this"
                );
                *state = State::Unhealthy {
                    since: Instant::now(),
                    problems,
                };
                drop(state);
                self.healthy.send_replace(false);
                tokio::spawn(self.clone().recover());
            }
            State::Unhealthy {
                problems: known, ..
            } => {
                if *known != problems {
                    error!(problems = %Problem::list(&problems), "host still unhealthy, now for this");
                    *known = problems;
                }
            }
        }
    }

    /// Probe with a capped backoff until enough rounds in a row pass.
    async fn recover(self: Arc<Self>) {
        let mut wait = PROBE_BACKOFF_START;
        let mut good = 0;
        loop {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(PROBE_BACKOFF_MAX);
            let problems = {
                let mut round = self.round.lock().await;
                let problems = self.probes.run().await;
                *round = Some(Instant::now());
                problems
            };
            if problems.is_empty() {
                good += 1;
                if good >= GOOD_PROBES_TO_RESUME {
                    self.get_well();
                    return;
                }
                // Healthy probes come quickly one after the other.
                wait = PROBE_BACKOFF_START;
            } else {
                good = 0;
                self.fall_ill(problems);
            }
        }
    }

    fn get_well(&self) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if let State::Unhealthy { since, .. } = &*state {
            let spell = since.elapsed();
            *self.paused_before.lock().unwrap_or_else(|p| p.into_inner()) += spell;
            info!(paused = %crate::support::seconds(spell), "host healthy again: receiving resumes");
        }
        *state = State::Healthy;
        drop(state);
        self.healthy.send_replace(true);
    }

    /// Wait while the host is unhealthy (or until `stop`).
    pub async fn wait_healthy(&self, stop: &mut watch::Receiver<bool>) {
        let mut healthy = self.healthy.subscribe();
        loop {
            if *healthy.borrow_and_update() || *stop.borrow() {
                return;
            }
            tokio::select! {
                changed = healthy.changed() => if changed.is_err() { return },
                _ = stop.changed() => return,
            }
        }
    }

    /// At start: probe, and if something is wrong say so and wait for it
    /// to be fixed (receiving nothing meanwhile) — or for `abandon`.
    pub async fn until_ready(self: &Arc<Self>, abandon: impl Future<Output = ()>) -> bool {
        if self.check().await {
            return true;
        }
        warn!("not ready: waiting for the problems above to be fixed");
        let mut healthy = self.healthy.subscribe();
        tokio::pin!(abandon);
        loop {
            if *healthy.borrow_and_update() {
                return true;
            }
            tokio::select! {
                changed = healthy.changed() => if changed.is_err() { return false },
                _ = &mut abandon => return false,
            }
        }
    }
}
