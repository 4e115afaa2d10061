//! What stays in the logic table and the native-code cache, and what goes:
//! `envmgr logic gc`, and `serve` every `logic.gc_every_seconds`.
//!
//! A version is kept while it is the builtin one, active, the canary, the
//! shadow, in the rollback history, the handler of a recording still
//! within `[record] retention_hours` (replaying it runs the handler; while
//! recordings older than the handler marks are kept, every version is), or
//! installed within `logic.keep_installed_hours` (installed to be
//! activated later); every other version's item and component chunks go
//! (~0.6 MB each). Removal races no activation: see [`Registry::remove`].
//! The same pass finishes removals a crash interrupted, deletes expired
//! heartbeats, and prunes this machine's native-code cache to the versions
//! the pointer names.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::logic::cache::{NativeCache, Pruned};
use crate::logic::registry::{Conflict, Registry};
use crate::logic::{Pointer, VersionInfo, short};
use crate::record::store::Recordings;

/// Why a version stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    Builtin,
    Active,
    Canary,
    Shadow,
    RollbackHistory,
    HandledRecordings,
    /// Kept recordings older than the handler marks may name it.
    UnmarkedRecordings,
    InstalledLately,
}

impl Kept {
    pub fn name(self) -> &'static str {
        match self {
            Kept::Builtin => "builtin",
            Kept::Active => "active",
            Kept::Canary => "canary",
            Kept::Shadow => "shadow",
            Kept::RollbackHistory => "in the rollback history",
            Kept::HandledRecordings => "handled recordings still kept",
            Kept::UnmarkedRecordings => "recordings older than the handler marks are still kept",
            Kept::InstalledLately => "installed lately",
        }
    }
}

/// What one pass decided and did.
#[derive(Debug, Default)]
pub struct Collected {
    pub kept: Vec<(VersionInfo, Kept)>,
    /// Removed (or, in a dry run, to be removed).
    pub removed: Vec<VersionInfo>,
    pub hosts_forgotten: usize,
    pub removals_finished: usize,
    pub native: Pruned,
}

/// What decides.
pub struct Rules<'a> {
    pub builtin: &'a str,
    pub pointer: Option<&'a Pointer>,
    /// None: some kept recording's handler is not known.
    pub handlers: Option<&'a BTreeSet<String>>,
    pub keep_installed_ms: u64,
    pub now_ms: u64,
}

impl Rules<'_> {
    /// Why `version` stays, or none: it goes.
    pub fn keeps(&self, version: &VersionInfo) -> Option<Kept> {
        let id = &version.id;
        let pointer = self.pointer;
        if id == self.builtin {
            Some(Kept::Builtin)
        } else if pointer.is_some_and(|p| &p.active == id) {
            Some(Kept::Active)
        } else if pointer.is_some_and(|p| p.canary.as_ref().is_some_and(|c| &c.version == id)) {
            Some(Kept::Canary)
        } else if pointer.is_some_and(|p| p.shadow.as_ref() == Some(id)) {
            Some(Kept::Shadow)
        } else if pointer.is_some_and(|p| p.history.contains(id)) {
            Some(Kept::RollbackHistory)
        } else if self.handlers.is_some_and(|h| h.contains(id)) {
            Some(Kept::HandledRecordings)
        } else if self.handlers.is_none() {
            Some(Kept::UnmarkedRecordings)
        } else if self.now_ms.saturating_sub(version.installed_at_ms) < self.keep_installed_ms {
            Some(Kept::InstalledLately)
        } else {
            None
        }
    }
}

/// The versions whose native code a host may load: the builtin one and
/// those the pointer names.
pub fn loadable(builtin: &str, pointer: Option<&Pointer>) -> BTreeSet<String> {
    let mut ids = BTreeSet::from([builtin.to_string()]);
    if let Some(p) = pointer {
        ids.insert(p.active.clone());
        ids.extend(p.canary.as_ref().map(|c| c.version.clone()));
        ids.extend(p.shadow.clone());
        ids.extend(p.history.iter().cloned());
    }
    ids
}

/// One pass; with `dry_run` nothing is removed.
pub async fn collect(
    registry: &Registry,
    recordings: &Recordings,
    cache: Option<&NativeCache>,
    keep_installed: Duration,
    now_ms: u64,
    dry_run: bool,
) -> anyhow::Result<Collected> {
    let mut collected = Collected::default();
    if !dry_run {
        collected.removals_finished = registry.finish_removals().await?;
    }
    let pointer = registry.pointer().await?;
    let handlers: Option<BTreeSet<String>> = recordings
        .handlers(now_ms)
        .await?
        .map(|h| h.into_iter().collect());
    let rules = Rules {
        builtin: registry.builtin_id(),
        pointer: pointer.as_ref(),
        handlers: handlers.as_ref(),
        keep_installed_ms: keep_installed.as_millis() as u64,
        now_ms,
    };
    for version in registry.versions().await? {
        match rules.keeps(&version) {
            Some(why) => collected.kept.push((version, why)),
            None if dry_run => collected.removed.push(version),
            None => match registry.remove(&version, pointer.as_ref()).await {
                Ok(()) => collected.removed.push(version),
                // The pointer moved: what it names now is judged next time.
                Err(e) if e.is::<Conflict>() => break,
                Err(e) => return Err(e),
            },
        }
    }
    if !dry_run {
        collected.hosts_forgotten = registry.forget_gone_hosts(now_ms).await?;
        if let Some(cache) = cache {
            collected.native = cache
                .prune(&loadable(registry.builtin_id(), pointer.as_ref()))
                .await?;
        }
    }
    Ok(collected)
}

/// `serve`'s pass every `every`.
pub struct Periodic {
    pub every: Duration,
    pub registry: Registry,
    pub recordings: Recordings,
    pub cache: NativeCache,
    pub keep_installed: Duration,
}

impl Periodic {
    /// Until `stop`; the first pass after a random part of `every` (a fleet
    /// started together does not collect at once; two passes at once are
    /// safe, only wasted).
    pub async fn run(self, stop: watch::Receiver<bool>) {
        crate::support::periodically(self.every, stop, || async {
            let now = crate::support::now_ms().max(0) as u64;
            let pass = collect(
                &self.registry,
                &self.recordings,
                Some(&self.cache),
                self.keep_installed,
                now,
                false,
            );
            match pass.await {
                Ok(collected) => said(&collected),
                Err(e) => {
                    warn!(error = %format!("{e:#}"), "logic retention did not run; trying again later")
                }
            }
        })
        .await;
    }
}

fn said(collected: &Collected) {
    let removed: Vec<&str> = collected.removed.iter().map(|v| short(&v.id)).collect();
    info!(
        removed = %removed.join(","),
        kept = collected.kept.len(),
        hosts_forgotten = collected.hosts_forgotten,
        native_files_removed = collected.native.files,
        native_bytes_removed = collected.native.bytes,
        "logic retention ran"
    );
}
