//! The versions a running host serves: the active one and an optional
//! canary, swapped atomically when the shared pointer moves. Each message
//! takes the version current when it starts (an `Arc`) and finishes on it.
//!
//! Every outcome is counted per version. A canary's failure rate (permanent
//! failures, traps, timeouts, memory) over its recent messages is compared
//! with the active version's; past the margin, the host moves the pointer
//! back (compare-and-set, so a fleet rolls back once) and says why.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::config::LogicSettings;
use crate::engine::Logic;
use crate::logic::cache::{NativeCache, Unloadable};
pub use crate::logic::ending::Ending;
use crate::logic::registry::{Conflict, Registry};
use crate::logic::{Pointer, rolled_back, short};

mod status;
pub use status::{CanaryStatus, Status, SwapFigures};

/// How often a host says it is alive (and which contracts it links).
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// A heartbeat older than this is a host that is gone.
pub const HOST_GONE_AFTER: Duration = Duration::from_secs(60);

/// Said once per pointer revision that names a version this host cannot
/// run (an operator alerts on it).
fn cannot_run(pointer: &Pointer, e: &anyhow::Error, instead: &str) {
    error!(
        revision = pointer.revision,
        active = short(&pointer.active),
        error = %format!("{e:#}"),
        "the pointer names logic this host cannot run; {instead}"
    );
}

/// `{hostname}:{pid}:{random}`: unique per `serve` process.
fn host_id() -> String {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".to_string());
    format!(
        "{hostname}:{}:{}",
        std::process::id(),
        crate::support::random_hex(3)
    )
}

/// What serves now.
pub struct Serving {
    /// The pointer revision this reflects; none when pinned or before the
    /// first activation.
    pub revision: Option<u64>,
    pub active: Arc<Logic>,
    pub canary: Option<(Arc<Logic>, u8)>,
    /// Run beside on recorded traffic, applying nothing.
    pub shadow: Option<Arc<Logic>>,
    /// The pointer's rollback history (oldest first): with the versions
    /// above, what per-version figures are kept for.
    history: Vec<String>,
    /// When the pointer moved (its `changed_at`), for the swap figures.
    changed_at_ms: u64,
    first_message_logged: std::sync::atomic::AtomicBool,
}

/// Where versions come from.
enum Source {
    /// `serve --logic FILE`: one version, no pointer; the heartbeat says
    /// so when the registry is reachable.
    Pinned { registry: Option<Registry> },
    Registry {
        registry: Registry,
        cache: NativeCache,
    },
}

impl Serving {
    /// Whether the pointer this reflects names `version`: active, canary,
    /// shadow or in the rollback history. Per-version figures (counts,
    /// shadow tallies, their `/metrics` series) are kept for these only,
    /// so they stay bounded however many versions a deployment went
    /// through.
    pub fn names(&self, version: &str) -> bool {
        self.named().any(|id| id == version)
    }

    fn named(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.active.id)
            .chain(self.canary.as_ref().map(|(c, _)| &c.id))
            .chain(self.shadow.as_ref().map(|s| &s.id))
            .chain(&self.history)
    }
}

/// How long the figures of a version the pointer stopped naming are kept:
/// scrapes see a rolled-back canary's last counts before its series go.
pub const UNNAMED_KEPT: Duration = Duration::from_secs(600);

#[derive(Default)]
struct VersionStats {
    /// When the pointer stopped naming it (none while it does).
    unnamed_since: Option<Instant>,
    counts: BTreeMap<Ending, u64>,
    /// The last `window` endings, true for a failure.
    recent: VecDeque<bool>,
}

pub struct Versions {
    source: Source,
    /// A pointer revision naming a version this host cannot load: said once,
    /// not tried again.
    unloadable: Mutex<Option<u64>>,
    /// This host's name in the heartbeats.
    host_id: String,
    serving: RwLock<Arc<Serving>>,
    stats: Mutex<BTreeMap<String, VersionStats>>,
    policy: LogicSettings,
    /// The revision a rollback was already asked for (once per canary).
    rollback_requested: Mutex<Option<u64>>,
    last_swap: Mutex<Option<SwapFigures>>,
}

fn now_ms() -> u64 {
    crate::support::now_ms().max(0) as u64
}

impl Versions {
    /// One version, fixed for the life of the process; its heartbeats go
    /// to `registry`, so `logic list` shows the host and what it is pinned
    /// to.
    pub fn pinned(logic: Logic, policy: LogicSettings, registry: Option<Registry>) -> Arc<Self> {
        Arc::new(Self::with(
            Source::Pinned { registry },
            serving(None, logic, None, 0),
            policy,
        ))
    }

    /// Follow the shared pointer: load what it names now (the builtin
    /// version before any activation).
    pub async fn follow(
        registry: Registry,
        cache: NativeCache,
        policy: LogicSettings,
    ) -> anyhow::Result<Arc<Self>> {
        let pointer = registry.pointer().await?;
        let builtin = || async {
            let builtin = registry.builtin_id().to_string();
            let logic = cache
                .load_or_compile(&builtin, registry.component(&builtin))
                .await?;
            anyhow::Ok(serving(None, logic, None, 0))
        };
        let mut unloadable = None;
        let current = match &pointer {
            Some(pointer) => match load(&registry, &cache, pointer, None).await {
                Ok(current) => current,
                Err(e) if e.is::<Unloadable>() => {
                    // Waiting would not help: serve, and say what is wrong.
                    cannot_run(
                        pointer,
                        &e,
                        "serving the builtin version until the pointer changes",
                    );
                    unloadable = Some(pointer.revision);
                    builtin().await?
                }
                Err(e) => return Err(e),
            },
            None => builtin().await?,
        };
        // What a host loads at its start is no swap: the time since the
        // pointer moved is its downtime, not a swap's delay.
        current
            .first_message_logged
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let versions = Self::with(Source::Registry { registry, cache }, current, policy);
        *versions
            .unloadable
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = unloadable;
        Ok(Arc::new(versions))
    }

    fn with(source: Source, serving: Serving, policy: LogicSettings) -> Self {
        Self {
            source,
            unloadable: Mutex::default(),
            host_id: host_id(),
            serving: RwLock::new(Arc::new(serving)),
            stats: Mutex::default(),
            policy,
            rollback_requested: Mutex::default(),
            last_swap: Mutex::default(),
        }
    }

    /// This host's name in the heartbeats (and its shadow counts).
    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    pub fn current(&self) -> Arc<Serving> {
        self.serving
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The version a message runs on. The canary's share is chosen by the
    /// message id, so a redelivered message meets the same version.
    pub fn pick(&self, message_id: &str) -> Arc<Logic> {
        let serving = self.current();
        if !serving
            .first_message_logged
            .swap(true, std::sync::atomic::Ordering::Relaxed)
            && let Some(revision) = serving.revision
        {
            let after = now_ms().saturating_sub(serving.changed_at_ms);
            if let Some(figures) = self
                .last_swap
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
                .filter(|f| f.revision == revision)
            {
                figures.pointer_to_first_message_ms = Some(after);
            }
            info!(
                revision,
                pointer_to_first_message_ms = after,
                "first message on the new logic versions"
            );
        }
        match &serving.canary {
            Some((canary, percent)) => {
                let digest = Sha256::digest(message_id.as_bytes());
                let bucket = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) % 100;
                if bucket < u64::from(*percent) {
                    canary.clone()
                } else {
                    serving.active.clone()
                }
            }
            None => serving.active.clone(),
        }
    }

    /// Count how a message ended; judge the canary.
    pub fn record(self: &Arc<Self>, version: &str, ending: Ending) {
        let window = self.policy.canary_window;
        {
            let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            let entry = stats.entry(version.to_string()).or_default();
            *entry.counts.entry(ending).or_default() += 1;
            if !matches!(
                ending,
                Ending::Retryable | Ending::Deferred | Ending::HostFault
            ) {
                entry.recent.push_back(ending.is_failure());
                while entry.recent.len() > window {
                    entry.recent.pop_front();
                }
            }
        }
        let serving = self.current();
        let Some((canary, _)) = &serving.canary else {
            return;
        };
        if canary.id != version {
            return;
        }
        if let Some(reason) = self.judge(&canary.id, &serving.active.id) {
            let mut requested = self
                .rollback_requested
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if *requested == serving.revision {
                return;
            }
            *requested = serving.revision;
            let versions = self.clone();
            tokio::spawn(async move { versions.roll_back_canary(serving, reason).await });
        }
    }

    /// Why the canary must go, if it must.
    fn judge(&self, canary: &str, active: &str) -> Option<String> {
        let stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        let rate = |version: &str| {
            stats.get(version).map_or((0, 0, 0.0), |s| {
                let failures = s.recent.iter().filter(|f| **f).count();
                let n = s.recent.len();
                (
                    failures,
                    n,
                    if n == 0 {
                        0.0
                    } else {
                        failures as f64 / n as f64
                    },
                )
            })
        };
        let (canary_failures, canary_n, canary_rate) = rate(canary);
        if canary_n < self.policy.canary_min_messages {
            return None;
        }
        let (active_failures, active_n, active_rate) = rate(active);
        (canary_rate > active_rate + self.policy.canary_margin).then(|| {
            format!(
                "automatic rollback: canary {} failed {canary_failures} of its last {canary_n} messages ({:.0}%), active {} {active_failures} of {active_n} ({:.0}%); margin {:.0} points",
                short(canary),
                canary_rate * 100.0,
                short(active),
                active_rate * 100.0,
                self.policy.canary_margin * 100.0
            )
        })
    }

    async fn roll_back_canary(self: Arc<Self>, judged: Arc<Serving>, reason: String) {
        let Source::Registry { registry, .. } = &self.source else {
            return;
        };
        warn!(%reason, "rolling the canary back");
        let result = async {
            let Some(pointer) = registry.pointer().await? else {
                return Ok(());
            };
            let still_judged = Some(pointer.revision) == judged.revision
                && pointer.canary.as_ref().map(|c| c.version.as_str())
                    == judged.canary.as_ref().map(|(c, _)| c.id.as_str());
            if !still_judged {
                return Ok(());
            }
            registry
                .swap(Some(&pointer), &rolled_back(&pointer, &reason, now_ms())?)
                .await
        }
        .await;
        match result {
            Ok(()) => {}
            Err(e) if e.is::<Conflict>() => info!("the pointer moved meanwhile; following it"),
            Err(e) => {
                error!(error = %format!("{e:#}"), "could not roll the canary back; will judge again")
            }
        }
        *self
            .rollback_requested
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        if let Err(e) = self.refresh().await {
            warn!(error = %format!("{e:#}"), "reading the pointer after a rollback failed");
        }
    }

    /// Look at the pointer every `poll_ms` until `stop`, and say every
    /// [`HEARTBEAT`] which contracts this host links (so `logic activate`
    /// refuses a version some live host cannot run).
    pub async fn watch(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let (registry, pinned) = match &self.source {
            Source::Registry { registry, .. } => (registry, None),
            Source::Pinned {
                registry: Some(registry),
            } => (registry, Some(self.current().active.id.clone())),
            Source::Pinned { registry: None } => return,
        };
        let every = Duration::from_millis(self.policy.poll_ms);
        let mut last_beat: Option<Instant> = None;
        loop {
            if last_beat.is_none_or(|at| at.elapsed() >= HEARTBEAT) {
                last_beat = Some(Instant::now());
                if let Err(e) = registry
                    .beat_running(
                        &self.host_id,
                        &crate::contract::LINKED,
                        pinned.as_deref(),
                        now_ms(),
                    )
                    .await
                {
                    warn!(error = %format!("{e:#}"), "heartbeat not written");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => break,
            }
            if let Err(e) = self.refresh().await {
                warn!(error = %format!("{e:#}"), "following the logic pointer failed; serving what was loaded");
            }
        }
        if let Err(e) = registry.forget_host(&self.host_id).await {
            warn!(error = %format!("{e:#}"), "heartbeat not removed; it goes stale by itself");
        }
    }

    /// Swap to what the pointer names, if it moved.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let Source::Registry { registry, cache } = &self.source else {
            return Ok(());
        };
        let Some(pointer) = registry.pointer().await? else {
            return Ok(());
        };
        let current = self.current();
        let unloadable = *self.unloadable.lock().unwrap_or_else(|p| p.into_inner());
        if current.revision == Some(pointer.revision) || unloadable == Some(pointer.revision) {
            return Ok(());
        }
        let started = Instant::now();
        let next = match load(registry, cache, &pointer, Some(&current)).await {
            Ok(next) => next,
            Err(e) if e.is::<Unloadable>() => {
                cannot_run(
                    &pointer,
                    &e,
                    "serving what was loaded until the pointer changes",
                );
                *self.unloadable.lock().unwrap_or_else(|p| p.into_inner()) = Some(pointer.revision);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let load_ms = started.elapsed().as_millis() as u64;
        {
            let mut serving = self.serving.write().unwrap_or_else(|p| p.into_inner());
            // Two refreshes at once (the poll, a rollback): never go back.
            if serving.revision.is_some_and(|r| r >= pointer.revision) {
                return Ok(());
            }
            *serving = Arc::new(next);
        }
        self.forget_unnamed(UNNAMED_KEPT);
        let figures = SwapFigures {
            revision: pointer.revision,
            pointer_to_swap_ms: now_ms().saturating_sub(pointer.changed_at_ms),
            load_ms,
            pointer_to_first_message_ms: None,
        };
        info!(
            revision = pointer.revision,
            active = short(&pointer.active),
            canary = pointer.canary.as_ref().map(|c| format!("{} at {}%", short(&c.version), c.percent)),
            reason = %pointer.reason,
            pointer_to_swap_ms = figures.pointer_to_swap_ms,
            load_ms,
            "logic versions swapped"
        );
        *self.last_swap.lock().unwrap_or_else(|p| p.into_inner()) = Some(figures);
        Ok(())
    }

    /// Drop the figures of versions the pointer has not named for
    /// `kept_for` (their counters leave `/metrics`, as a restarted host's
    /// would). Bound: the versions the pointer names, and those it named
    /// within `kept_for`.
    pub fn forget_unnamed(&self, kept_for: Duration) {
        let serving = self.current();
        let now = Instant::now();
        self.stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|version, stats| {
                if serving.names(version) {
                    stats.unnamed_since = None;
                    return true;
                }
                now.duration_since(*stats.unnamed_since.get_or_insert(now)) < kept_for
            });
        crate::metrics::keep_shadow_runs_of(
            |short_id| serving.named().any(|id| short(id) == short_id),
            kept_for,
        );
    }
}

fn serving(
    revision: Option<u64>,
    active: Logic,
    canary: Option<(Logic, u8)>,
    changed_at_ms: u64,
) -> Serving {
    Serving {
        revision,
        active: Arc::new(active),
        canary: canary.map(|(logic, percent)| (Arc::new(logic), percent)),
        shadow: None,
        history: Vec::new(),
        changed_at_ms,
        first_message_logged: std::sync::atomic::AtomicBool::new(revision.is_none()),
    }
}

/// The versions a pointer names, reusing what `current` has loaded.
async fn load(
    registry: &Registry,
    cache: &NativeCache,
    pointer: &Pointer,
    current: Option<&Serving>,
) -> anyhow::Result<Serving> {
    let loaded = |id: &str| {
        current.and_then(|c| {
            std::iter::once(&c.active)
                .chain(c.canary.as_ref().map(|(l, _)| l))
                .chain(&c.shadow)
                .find(|l| l.id == id)
                .cloned()
        })
    };
    let get = |id: String| async move {
        match loaded(&id) {
            Some(logic) => Ok(logic),
            None => cache
                .load_or_compile(&id, registry.component(&id))
                .await
                .map(Arc::new),
        }
    };
    let active = get(pointer.active.clone()).await?;
    let canary = match &pointer.canary {
        Some(canary) => Some((get(canary.version.clone()).await?, canary.percent)),
        None => None,
    };
    let shadow = match &pointer.shadow {
        Some(shadow) => Some(get(shadow.clone()).await?),
        None => None,
    };
    Ok(Serving {
        revision: Some(pointer.revision),
        active,
        canary,
        shadow,
        history: pointer.history.clone(),
        changed_at_ms: pointer.changed_at_ms,
        first_message_logged: std::sync::atomic::AtomicBool::new(false),
    })
}
