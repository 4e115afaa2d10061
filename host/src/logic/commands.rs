//! `envmgr logic …`: the operator's side of logic versions.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use crate::config::Settings;
use crate::engine::Engine;
use crate::logic::cache::NativeCache;
use crate::logic::registry::{Conflict, Registry};
use crate::logic::serving::HOST_GONE_AFTER;
use crate::logic::{Pointer, VersionInfo, activated, install, promoted, rolled_back, short};
use crate::platform::Platform;

fn now_ms() -> u64 {
    crate::support::now_ms().max(0) as u64
}

/// What `install` printed.
pub async fn install(
    platform: &Platform,
    settings: &Settings,
    file: &Path,
    tag: Option<&str>,
    replay: Option<(usize, crate::record::replay::FailOn)>,
) -> anyhow::Result<()> {
    let component = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    if tag.is_some_and(|t| t.is_empty() || t.contains(',') || t == crate::logic::BUILTIN_TAG) {
        anyhow::bail!("a tag is a non-empty name without commas, other than `builtin`");
    }
    let engine = Arc::new(Engine::new(settings.limits())?);
    let cache = NativeCache::new(settings.logic_cache_dir(), engine);
    let registry = platform.registry();
    // A version has one tag: installing it again keeps the one it has,
    // and another is refused rather than silently replacing it.
    let id = crate::support::hex_sha256(&component);
    let installed_as = registry
        .versions()
        .await?
        .into_iter()
        .find(|v| v.id == id)
        .and_then(|v| v.tag);
    let tag = match (tag, installed_as.as_deref()) {
        (Some(given), Some(had)) if given != had => anyhow::bail!(
            "logic {} is installed already with the tag `{had}`; a version has one tag (install it again without --tag, or with --tag {had})",
            short(&id)
        ),
        (None, Some(had)) => Some(had),
        (given, _) => given,
    };
    if let Some(tag) = tag
        && let Ok(existing) = registry.resolve(tag).await
        && existing.id != id
    {
        anyhow::bail!("the tag `{tag}` already names {}", existing.id);
    }
    // Recorded traffic first: a version refused by it is never stored.
    let replayed = match replay {
        Some((last, fail_on)) => {
            let logic = Arc::new(cache.engine().load(&component)?);
            let said = crate::record::commands::install_check(
                settings,
                platform,
                cache.engine(),
                logic,
                last,
                fail_on,
            )
            .await
            .map_err(|e| {
                anyhow::anyhow!("refused {}: {e:#}", crate::support::hex_sha256(&component))
            })?;
            format!("; {said}")
        }
        None => String::new(),
    };
    let installed = install::install(&registry, &cache, component, tag, now_ms()).await?;
    println!(
        "installed {}{} — world ok, compiled in {} ms and cached; self-check: {}{replayed}",
        installed.id,
        tag.map(|t| format!(" ({t})")).unwrap_or_default(),
        installed.compile_ms,
        installed.self_check
    );
    Ok(())
}

/// Read the pointer, change it, write it back if nobody moved it meanwhile.
/// No retry: after someone else's change (another operator, a host's
/// automatic rollback) the same command may mean something else, e.g. a
/// second `rollback` would go one version further back.
async fn change_pointer(
    registry: &Registry,
    change: impl Fn(Option<&Pointer>) -> anyhow::Result<Pointer>,
) -> anyhow::Result<Pointer> {
    let current = registry.pointer().await?;
    let next = change(current.as_ref())?;
    match registry.swap(current.as_ref(), &next).await {
        Ok(()) => Ok(next),
        Err(e) if e.is::<Conflict>() => anyhow::bail!(
            "the active pointer changed while this command ran; see `envmgr logic list` and run it again if still wanted"
        ),
        Err(e) => Err(e),
    }
}

pub async fn activate(
    platform: &Platform,
    settings: &Settings,
    name: &str,
    canary: Option<u8>,
) -> anyhow::Result<()> {
    let registry = platform.registry();
    let version = registry.resolve(name).await?;
    refuse_unless_every_host_runs(&registry, settings, &version).await?;
    let builtin = registry.builtin_id().to_string();
    let pointer = change_pointer(&registry, |current| {
        activated(current, &builtin, &version.id, canary, now_ms())
    })
    .await?;
    println!("{} (revision {})", pointer.reason, pointer.revision);
    Ok(())
}

/// `activate --shadow` (a version) and `stop-shadow` (none).
pub async fn shadow(
    platform: &Platform,
    settings: &Settings,
    name: Option<&str>,
) -> anyhow::Result<()> {
    let registry = platform.registry();
    let version = match name {
        Some(name) => {
            let version = registry.resolve(name).await?;
            refuse_unless_every_host_runs(&registry, settings, &version).await?;
            Some(version.id)
        }
        None => None,
    };
    if version.is_none() && registry.pointer().await?.and_then(|p| p.shadow).is_none() {
        anyhow::bail!("no shadow version is running (see `envmgr logic list`)");
    }
    if version.is_some() && !settings.record.enabled {
        println!("note: [record] enabled = false here: hosts with recording off run no shadow");
    }
    let builtin = registry.builtin_id().to_string();
    let pointer = change_pointer(&registry, |current| {
        crate::logic::shadowed(current, &builtin, version.as_deref(), now_ms())
    })
    .await?;
    println!("{} (revision {})", pointer.reason, pointer.revision);
    Ok(())
}

/// During a rolling upgrade some hosts link an older contract only: a
/// version built for a newer one must wait until they are upgraded (their
/// heartbeats say what they link).
async fn refuse_unless_every_host_runs(
    registry: &Registry,
    settings: &Settings,
    version: &VersionInfo,
) -> anyhow::Result<()> {
    let contract = match &version.contract {
        Some(contract) => contract.clone(),
        // Installed before versions recorded their contract: look.
        None => {
            let engine = Engine::new(settings.limits())?;
            let component = registry.component(&version.id).await?;
            engine.load(&component)?.contract.to_string()
        }
    };
    let now = now_ms();
    let gone_after = HOST_GONE_AFTER.as_millis() as u64;
    let unable: Vec<String> = registry
        .hosts(now)
        .await?
        .into_iter()
        .filter(|h| now.saturating_sub(h.seen_at_ms) < gone_after)
        // A host pinned with `serve --logic FILE` never runs what the
        // pointer names.
        .filter(|h| h.pinned.is_none())
        .filter(|h| !h.contracts.contains(&contract))
        .map(|h| {
            format!(
                "{} (envmgr {}, links {})",
                h.host,
                h.build,
                h.contracts.join(", ")
            )
        })
        .collect();
    if !unable.is_empty() {
        anyhow::bail!(
            "logic {} is built for contract {contract}, which these serving hosts cannot run: {}; upgrade them first (a host that stopped is forgotten after {} s)",
            short(&version.id),
            unable.join("; "),
            HOST_GONE_AFTER.as_secs()
        );
    }
    Ok(())
}

pub async fn promote(platform: &Platform) -> anyhow::Result<()> {
    let registry = platform.registry();
    let pointer = change_pointer(&registry, |current| {
        promoted(
            current.context("nothing was activated yet, so there is no canary")?,
            now_ms(),
        )
    })
    .await?;
    println!("{} (revision {})", pointer.reason, pointer.revision);
    Ok(())
}

pub async fn rollback(platform: &Platform) -> anyhow::Result<()> {
    let registry = platform.registry();
    let pointer = change_pointer(&registry, |current| {
        let current = current.context("nothing was activated yet; the builtin version serves")?;
        let reason = match &current.canary {
            Some(canary) => format!("rolled back canary {}", short(&canary.version)),
            None => format!("rolled back from {}", short(&current.active)),
        };
        rolled_back(current, &reason, now_ms())
    })
    .await?;
    println!(
        "{}; active {} (revision {})",
        pointer.reason,
        short(&pointer.active),
        pointer.revision
    );
    Ok(())
}

/// `logic list --json`: the installed versions with their roles, the
/// serving hosts, and the pointer.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listing {
    versions: Vec<ListedVersion>,
    hosts: Vec<ListedHost>,
    pointer: Option<ListedPointer>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ListedVersion {
    id: String,
    tag: Option<String>,
    size: u64,
    contract: Option<String>,
    /// None for the builtin version (it ships in the binary).
    installed_at: Option<String>,
    /// `active`, `canary 10%`, `previous`, `shadow`, `shadow runs: …`.
    roles: Vec<String>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ListedHost {
    host: String,
    build: String,
    links: Vec<String>,
    seen_at: String,
    #[serde(skip)]
    seen_at_ms: u64,
    /// The version a `serve --logic FILE` host runs whatever the pointer
    /// says; such a host is not counted when `activate` checks contracts.
    pinned: Option<String>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ListedPointer {
    revision: u64,
    changed_at: String,
    #[serde(skip)]
    changed_at_ms: u64,
    reason: String,
}

pub async fn list(platform: &Platform, settings: &Settings, json: bool) -> anyhow::Result<()> {
    let listing = listing(platform, settings).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&listing)?);
        return Ok(());
    }
    let now = now_ms();
    println!(
        "{:<64}  {:<12} {:>14}  {:<16} ROLES",
        "VERSION (sha256)", "TAG", "SIZE", "CONTRACT"
    );
    for version in &listing.versions {
        println!(
            "{}  {:<12} {:>8} bytes  contract {:<7} {}",
            version.id,
            version.tag.as_deref().unwrap_or("-"),
            version.size,
            version.contract.as_deref().unwrap_or("?"),
            version.roles.join(", ")
        );
    }
    for host in &listing.hosts {
        println!(
            "host {} (envmgr {}) links {}, {}seen {}",
            host.host,
            host.build,
            host.links.join(", "),
            host.pinned
                .as_deref()
                .map(|p| format!("pinned to {} by serve --logic, ", short(p)))
                .unwrap_or_default(),
            crate::support::when(host.seen_at_ms, now),
        );
    }
    match &listing.pointer {
        Some(pointer) => println!(
            "pointer revision {}, changed {}: {}",
            pointer.revision,
            crate::support::when(pointer.changed_at_ms, now),
            pointer.reason
        ),
        None => println!("nothing activated yet: the builtin version serves"),
    }
    Ok(())
}

async fn listing(platform: &Platform, settings: &Settings) -> anyhow::Result<Listing> {
    let registry = platform.registry();
    let recordings = platform.recordings(settings)?;
    let pointer = registry.pointer().await?;
    let active = pointer
        .as_ref()
        .map_or(registry.builtin_id().to_string(), |p| p.active.clone());
    let mut versions = Vec::new();
    for version in registry.versions().await? {
        let mut roles = Vec::new();
        if version.id == active {
            roles.push("active".to_string());
        }
        if let Some(canary) = pointer.as_ref().and_then(|p| p.canary.as_ref())
            && canary.version == version.id
        {
            roles.push(format!("canary {}%", canary.percent));
        }
        if pointer
            .as_ref()
            .is_some_and(|p| p.history.last() == Some(&version.id))
        {
            roles.push("previous".to_string());
        }
        if pointer
            .as_ref()
            .is_some_and(|p| p.shadow.as_ref() == Some(&version.id))
        {
            roles.push("shadow".to_string());
        }
        // Shadow verdicts over every host, for any version that had some.
        let tally = recordings
            .shadow_counts(&version.id, None, now_ms())
            .await?;
        if tally.total() > 0 {
            roles.push(format!("shadow runs: {tally}"));
        }
        versions.push(ListedVersion {
            installed_at: (version.installed_at_ms > 0)
                .then(|| crate::support::utc(version.installed_at_ms, false)),
            id: version.id,
            tag: version.tag,
            size: version.size,
            contract: version.contract,
            roles,
        });
    }
    let now = now_ms();
    let hosts = registry
        .hosts(now)
        .await?
        .into_iter()
        .filter(|host| now.saturating_sub(host.seen_at_ms) / 1_000 < HOST_GONE_AFTER.as_secs())
        .map(|host| ListedHost {
            seen_at: crate::support::utc(host.seen_at_ms, false),
            seen_at_ms: host.seen_at_ms,
            host: host.host,
            build: host.build,
            links: host.contracts,
            pinned: host.pinned,
        })
        .collect();
    Ok(Listing {
        versions,
        hosts,
        pointer: pointer.map(|p| ListedPointer {
            revision: p.revision,
            changed_at: crate::support::utc(p.changed_at_ms, true),
            changed_at_ms: p.changed_at_ms,
            reason: p.reason,
        }),
    })
}

/// `logic gc`: one retention pass (`logic::retention`), said line by line.
pub async fn gc(platform: &Platform, settings: &Settings, dry_run: bool) -> anyhow::Result<()> {
    let registry = platform.registry();
    let recordings = platform.recordings(settings)?;
    let cache = NativeCache::new(
        settings.logic_cache_dir(),
        std::sync::Arc::new(Engine::new(settings.limits())?),
    );
    let collected = crate::logic::retention::collect(
        &registry,
        &recordings,
        Some(&cache),
        std::time::Duration::from_secs(settings.logic.keep_installed_hours * 3_600),
        now_ms(),
        dry_run,
    )
    .await?;
    for (version, why) in &collected.kept {
        println!("kept {}  {}", short(&version.id), why.name());
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    for version in &collected.removed {
        println!(
            "{verb} {}  {} bytes, installed {}",
            short(&version.id),
            version.size,
            crate::support::when(version.installed_at_ms, now_ms())
        );
    }
    if !dry_run {
        println!(
            "{} interrupted removals finished, {} gone hosts' heartbeats removed, {} native-code files ({} bytes) removed",
            collected.removals_finished,
            collected.hosts_forgotten,
            collected.native.files,
            collected.native.bytes
        );
    }
    Ok(())
}
