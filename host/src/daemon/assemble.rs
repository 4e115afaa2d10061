//! Wiring `serve`: from a config to a [`Daemon`] ready to run — the
//! platform and its services, the health probes, the admin endpoint, the
//! logic versions, the queues, the recorder and the chores beside them —
//! waiting out what is not reachable yet. `envmgr serve` and `envmgr demo`
//! both start here.

use std::sync::Arc;
use std::time::Duration;

use crate::boundary::Backends;
use crate::calls::Observer;
use crate::capabilities::analytics::segment::SegmentAnalytics;
use crate::capabilities::config::Config;
use crate::config::Settings;
use crate::daemon::endpoint::Admin;
use crate::daemon::{Daemon, Finished};
use crate::engine::Engine;
use crate::health::{Health, Probes, probes};
use crate::logic::cache::NativeCache;
use crate::logic::serving::Versions;
use crate::platform::Platform;
use crate::record::recorder::Recorder;
use crate::redact::Credentials;

/// How long `serve` waits between tries to reach SQS at start.
const STARTUP_RETRY: Duration = Duration::from_secs(2);

/// A daemon ready to run, and what must stop after it.
pub struct Assembled {
    pub daemon: Daemon,
    pub platform: Arc<Platform>,
    segment: Option<Arc<SegmentAnalytics>>,
    /// The recorder's worker: it stores what is queued once serving ends.
    recording: Option<tokio::task::JoinHandle<()>>,
}

impl Assembled {
    /// Serve until `shutdown`, then flush what the services buffer (Segment).
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let served = self.daemon.run(shutdown).await;
        // The daemon (and with it the recorder's queue) is gone: the worker
        // stores what is left, for a while.
        if let Some(worker) = self.recording
            && tokio::time::timeout(RECORDING_FLUSH, worker).await.is_err()
        {
            tracing::warn!("recordings still queued at shutdown were dropped");
        }
        if let Some(segment) = self.segment {
            segment.flush_and_stop().await;
        }
        served
    }
}

/// Connect the backends the settings name and load the logic: `pinned`, or
/// what the shared pointer names. None when `abandon` fired while waiting
/// for SQS to become reachable.
pub async fn assemble(
    settings: &Settings,
    pinned: Option<&[u8]>,
    finished: Option<tokio::sync::mpsc::UnboundedSender<Finished>>,
    abandon: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Option<Assembled>> {
    let credentials = Credentials::default();
    let platform = Arc::new(Platform::connect_registering(settings, &credentials).await?);
    if let Some(store) = platform.store() {
        tracing::info!(database = %store.path().display(), "local backend");
    }
    // Resolved now, so a dependency's first answer cannot quote them
    // unknown; the SDK's refreshes register themselves.
    if let Some(provider) = platform.sdk().and_then(|sdk| sdk.credentials_provider()) {
        use aws_credential_types::provider::ProvideCredentials as _;
        let _ = provider.provide_credentials().await;
    }
    let services = platform.services(settings, &credentials)?;
    let provenance = services.provenance.clone();
    let rotation = services.rotation.clone();
    let requests = Arc::new(crate::daemon::requests::ToApiQueue::default());
    let backends = Arc::new(backends(
        settings,
        &platform,
        &services,
        requests.clone(),
        credentials,
    ));
    let health = Health::new(Probes::new(probes::Deployment {
        table_names: settings.tables.mapping().to_vec(),
        tables: platform.tables.clone(),
        logic_table: &settings.tables.logic,
        logic_tables: platform.logic_tables(),
        kms: platform.kms.clone(),
        kms_key_id: &settings.kms.key_id,
        github: backends.github.clone(),
        runtime: backends.runtime.clone(),
        credentials: backends.credentials.clone(),
    }));
    let admin = match settings.admin.listen {
        Some(listen) => Some(Admin::start(listen, health.clone(), backends.github.clone()).await?),
        None => None,
    };
    let engine = Arc::new(Engine::new(settings.limits())?);
    tokio::pin!(abandon);
    // Nothing is loaded or received before the deployment is sound: a
    // missing table or a refused key is said once, with the fix, and waited
    // out.
    if !health.until_ready(&mut abandon).await {
        return Ok(None);
    }
    let versions = match pinned {
        Some(component) => {
            let logic = engine.load(component)?;
            Versions::pinned(logic, settings.logic.clone(), Some(platform.registry()))
        }
        // The pointer's table may not be reachable yet either: wait.
        None => {
            let follow = || {
                let cache = NativeCache::new(settings.logic_cache_dir(), engine.clone());
                Versions::follow(platform.registry(), cache, settings.logic.clone())
            };
            let said = |e: &anyhow::Error| tracing::warn!(error = %format!("{e:#}"), "logic versions not loadable; retrying");
            match until_reachable(follow, said, &mut abandon).await {
                Some(versions) => versions,
                None => return Ok(None),
            }
        }
    };

    let connecting = Connecting {
        settings,
        platform: &platform,
        provenance,
        health: &health,
        requests: &requests,
    };
    let Some(queues) = connecting.queues(&mut abandon).await else {
        return Ok(None);
    };
    let mut chores = chores(settings, &platform, pinned.is_none(), &engine, rotation)?;
    chores.extend(sweep(settings, &platform, &queues, &versions));
    let (recorder, recording) = match settings.record.enabled {
        true => {
            let (recorder, worker) = Recorder::start(
                platform.recordings(settings)?,
                engine.clone(),
                versions.clone(),
                versions.host_id().to_string(),
            );
            (Some(recorder), Some(worker))
        }
        false => (None, None),
    };
    Ok(Some(Assembled {
        daemon: Daemon {
            engine,
            versions,
            backends,
            health,
            queues,
            grace: Duration::from_secs(settings.shutdown.grace_seconds),
            finished,
            admin,
            recorder,
            chores,
        },
        platform,
        segment: services.segment,
        recording,
    }))
}

/// The backends behind the logic's calls: `platform`'s tables and key,
/// `services`, its requests for later going to `requests`.
pub fn backends(
    settings: &Settings,
    platform: &Platform,
    services: &crate::platform::Services,
    requests: Arc<dyn crate::capabilities::requests::Requests>,
    credentials: Credentials,
) -> Backends {
    Backends {
        github: services.github.clone(),
        dynamodb: platform.consumer_tables.clone(),
        kms: platform.kms.clone(),
        analytics: services.analytics.clone(),
        runtime: services.runtime.clone(),
        requests,
        config: Arc::new(Config::new(settings.logic_config_values())),
        observer: Observer::default(),
        clock: None,
        credentials,
    }
}

/// What connecting the queues needs.
struct Connecting<'a> {
    settings: &'a Settings,
    platform: &'a Platform,
    provenance: Option<Arc<crate::queue::provenance::Provenance>>,
    health: &'a Health,
    requests: &'a crate::daemon::requests::ToApiQueue,
}

impl Connecting<'_> {
    /// Every configured queue, waiting for each to be reachable (a restart
    /// of the endpoint); `api` also takes the logic's requests. None when
    /// `abandon` fired first.
    async fn queues(
        &self,
        abandon: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Option<Vec<(String, crate::config::Queue, Arc<dyn crate::queue::Queue>)>> {
        let Connecting {
            settings,
            platform,
            health,
            requests,
            ..
        } = self;
        let mut queues = Vec::new();
        for (logical, queue_settings) in &settings.queues {
            let connect = || platform.sealing_queue(settings, logical, self.provenance.clone());
            let said = |e: &anyhow::Error| tracing::warn!(queue = %logical, error = %e, "queue not reachable; retrying");
            let queue = until_reachable(connect, said, abandon).await?;
            health.probes().add_queue(logical, queue.clone());
            if logical == "api" {
                requests.connect(queue.clone());
            }
            queues.push((logical.clone(), queue_settings.clone(), queue));
        }
        Some(queues)
    }
}

/// What `serve` runs beside its queues: the credential files' watch, the
/// logic table's and native cache's retention (when following the
/// pointer), the local backend's log retention.
fn chores(
    settings: &Settings,
    platform: &Platform,
    following: bool,
    engine: &Arc<Engine>,
    rotation: Arc<crate::rotation::Rotation>,
) -> anyhow::Result<Vec<crate::daemon::Chore>> {
    use futures::FutureExt as _;
    let mut chores: Vec<crate::daemon::Chore> =
        vec![Box::new(move |stop| rotation.run(stop).boxed())];
    if following && settings.logic.gc_every_seconds > 0 {
        let periodic = crate::logic::retention::Periodic {
            every: Duration::from_secs(settings.logic.gc_every_seconds),
            registry: platform.registry(),
            recordings: platform.recordings(settings)?,
            cache: NativeCache::new(settings.logic_cache_dir(), engine.clone()),
            keep_installed: Duration::from_secs(settings.logic.keep_installed_hours * 3_600),
        };
        chores.push(Box::new(move |stop| periodic.run(stop).boxed()));
    }
    if let Some(store) = platform.store().cloned() {
        let keep = Duration::from_secs(settings.local.retention_days * 86_400);
        chores.push(Box::new(move |stop| {
            crate::local::logs::prune_every(store, keep, stop).boxed()
        }));
    }
    Ok(chores)
}

/// The previews' sweep (`[previews] sweep_every_seconds`), when there is
/// an `api` queue to send it on.
fn sweep(
    settings: &Settings,
    platform: &Platform,
    queues: &[(String, crate::config::Queue, Arc<dyn crate::queue::Queue>)],
    versions: &Arc<Versions>,
) -> Option<crate::daemon::Chore> {
    use futures::FutureExt as _;
    let every = settings.previews.sweep_every_seconds;
    let (_, _, api) = queues.iter().find(|(logical, _, _)| logical == "api")?;
    let sweep = crate::daemon::sweep::Sweep {
        every: Duration::from_secs(every),
        logic: platform.logic_tables(),
        tables: platform.consumer_tables.clone(),
        api: api.clone(),
        host_id: versions.host_id().to_string(),
        versions: Some(versions.clone()),
    };
    (every > 0).then(|| -> crate::daemon::Chore { Box::new(move |stop| sweep.run(stop).boxed()) })
}

/// `attempt` until it succeeds, each failure `said` and waited on for
/// [`STARTUP_RETRY`]; none if `abandon` comes first.
async fn until_reachable<T, Attempt>(
    mut attempt: impl FnMut() -> Attempt,
    said: impl Fn(&anyhow::Error),
    abandon: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Option<T>
where
    Attempt: std::future::Future<Output = anyhow::Result<T>>,
{
    loop {
        match attempt().await {
            Ok(reached) => return Some(reached),
            Err(e) => {
                said(&e);
                tokio::select! {
                    _ = tokio::time::sleep(STARTUP_RETRY) => {}
                    _ = abandon.as_mut() => return None,
                }
            }
        }
    }
}

/// How long the recorder may take to store what is queued at shutdown.
const RECORDING_FLUSH: Duration = Duration::from_secs(5);
