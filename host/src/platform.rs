//! What a config connects to. `backend = "local"` (the default): queues,
//! tables and the KMS key in one embedded database file, and GitHub, Segment
//! and the Runtime Service recorded there unless their sections are
//! configured. `backend = "aws"`: SQS, DynamoDB and KMS, with GitHub and the
//! Runtime Service required. The logic and the daemon are the same either
//! way: switching is a config change.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::capabilities::analytics::Analytics;
use crate::capabilities::analytics::disabled::Disabled;
use crate::capabilities::analytics::local::LocalAnalytics;
use crate::capabilities::analytics::segment::{SegmentAnalytics, SegmentOptions};
use crate::capabilities::dynamodb::Tables;
use crate::capabilities::dynamodb::aws::AwsTables;
use crate::capabilities::dynamodb::local::LocalTables;
use crate::capabilities::github::GitHub;
use crate::capabilities::github::app::GitHubApp;
use crate::capabilities::github::local::LocalGitHub;
use crate::capabilities::kms::Kms;
use crate::capabilities::kms::aws::AwsKms;
use crate::capabilities::kms::local::LocalKms;
use crate::capabilities::runtime::Runtime;
use crate::capabilities::runtime::http::HttpRuntime;
use crate::capabilities::runtime::local::LocalRuntime;
use crate::config::{Backend, Settings, read_secret};
use crate::local::{Durability, Store};
use crate::logic::registry::Registry;
use crate::queue::Queue;
use crate::queue::local::LocalQueue;
use crate::queue::provenance::Provenance;
use crate::queue::sqs::SqsQueue;
use crate::redact::Credentials;
use crate::rotation::{Current, Rotation};

/// The data side of a deployment: tables, KMS and queues.
pub struct Platform {
    /// The tables the logic may use, as admin commands write them: on the
    /// local backend a write is on the disk before it returns.
    pub tables: Arc<dyn Tables>,
    /// The same tables as the logic writes them while serving: on the local
    /// backend a write survives a crash of the process, and a power loss
    /// may lose the last ones (the message then comes back; see
    /// docs/performance.md). On aws the same as `tables`.
    pub consumer_tables: Arc<dyn Tables>,
    pub kms: Arc<dyn Kms>,
    /// The host's own `logic` table: versions and the active pointer.
    logic_tables: Arc<dyn Tables>,
    /// The local recordings file, opened once per process: its store has a
    /// writer thread of its own (the recorder and the retention share it).
    recordings_store: std::sync::OnceLock<Store>,
    place: Place,
}

enum Place {
    Local(Store),
    Aws(Box<aws_config::SdkConfig>),
}

/// The services the logic calls out to.
/// The local backend's recordings, beside its database file.
pub const RECORDINGS_FILE: &str = "recordings.db";

pub struct Services {
    pub github: Arc<dyn GitHub>,
    pub analytics: Arc<dyn Analytics>,
    pub runtime: Arc<dyn Runtime>,
    /// Flushed on shutdown, when Segment is configured.
    pub segment: Option<Arc<SegmentAnalytics>>,
    /// Seals the original send time on the queues' copies: keyed from the
    /// GitHub App's private key, which every host has (none without one).
    pub provenance: Option<Arc<crate::queue::provenance::Provenance>>,
    /// The credential files `serve` re-reads when they change.
    pub rotation: Arc<Rotation>,
}

impl Platform {
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        Self::connect_registering(settings, &Credentials::default()).await
    }

    /// [`connect`](Self::connect), the AWS credentials the SDK resolves
    /// (at start and at each refresh) registered in `credentials`.
    pub async fn connect_registering(
        settings: &Settings,
        credentials: &Credentials,
    ) -> anyhow::Result<Self> {
        Ok(match settings.backend {
            Backend::Local => {
                let store = Store::open_dir(&settings.local.data_dir)?;
                Self {
                    tables: Arc::new(LocalTables::new(store.clone(), settings.tables.mapping())),
                    consumer_tables: Arc::new(
                        LocalTables::new(store.clone(), settings.tables.mapping())
                            .with_durability(Durability::SurvivesCrash),
                    ),
                    logic_tables: Arc::new(LocalTables::new(
                        store.clone(),
                        settings.tables.logic_mapping(),
                    )),
                    kms: Self::either_key(
                        Box::new(LocalKms::open(&store, &settings.kms.key_id).await?),
                        &settings.kms.previous_key_ids,
                        |id| {
                            let store = store.clone();
                            async move { Ok(Box::new(LocalKms::existing(&store, &id).await?) as _) }
                        },
                    )
                    .await?,
                    recordings_store: std::sync::OnceLock::new(),
                    place: Place::Local(store),
                }
            }
            Backend::Aws => {
                let sdk = crate::aws::sdk_config(&settings.aws, credentials).await;
                let tables: Arc<dyn Tables> =
                    Arc::new(AwsTables::new(&sdk, settings.tables.mapping()));
                Self {
                    consumer_tables: tables.clone(),
                    tables,
                    logic_tables: Arc::new(AwsTables::new(&sdk, settings.tables.logic_mapping())),
                    kms: Self::either_key(
                        Box::new(AwsKms::new(&sdk, &settings.kms.key_id)),
                        &settings.kms.previous_key_ids,
                        |id| {
                            let key: Box<dyn Kms> = Box::new(AwsKms::new(&sdk, &id));
                            async move { Ok(key) }
                        },
                    )
                    .await?,
                    recordings_store: std::sync::OnceLock::new(),
                    place: Place::Aws(Box::new(sdk)),
                }
            }
        })
    }

    /// The configured key, and the keys being moved from if any
    /// (`kms.previous_key_ids`: see `capabilities::kms::either`).
    async fn either_key<F, Fut>(
        current: Box<dyn Kms>,
        previous: &[String],
        open: F,
    ) -> anyhow::Result<Arc<dyn Kms>>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<Box<dyn Kms>>>,
    {
        if previous.is_empty() {
            return Ok(Arc::from(current));
        }
        let mut keys = Vec::new();
        for id in previous {
            keys.push(open(id.clone()).await?);
        }
        Ok(Arc::new(crate::capabilities::kms::either::EitherKey {
            current,
            previous: keys,
        }))
    }

    /// The key `key_id` alone (`secrets re-encrypt`: what is already under
    /// it).
    pub async fn key(&self, key_id: &str) -> anyhow::Result<Box<dyn Kms>> {
        Ok(match &self.place {
            Place::Local(store) => Box::new(LocalKms::existing(store, key_id).await?),
            Place::Aws(sdk) => Box::new(AwsKms::new(sdk, key_id)),
        })
    }

    /// The host's own `logic` table (never offered to the logic).
    pub fn logic_tables(&self) -> Arc<dyn Tables> {
        self.logic_tables.clone()
    }

    /// Recorded messages and shadow results (`[record]`): on the local
    /// backend a database file of their own beside the main one
    /// ([`RECORDINGS_FILE`]: writing them into the main file would wake
    /// every local queue's long poll after each message), on aws the
    /// recordings table `init` creates.
    pub fn recordings(
        &self,
        settings: &Settings,
    ) -> anyhow::Result<crate::record::store::Recordings> {
        use crate::record::store::Recordings;
        let mapping = settings.tables.recordings_mapping();
        Ok(match &self.place {
            Place::Local(store) => {
                let dir = store.path().parent().unwrap_or(std::path::Path::new("."));
                let own = match self.recordings_store.get() {
                    Some(own) => own.clone(),
                    None => {
                        let opened = Store::open(&dir.join(RECORDINGS_FILE))?;
                        self.recordings_store.get_or_init(|| opened).clone()
                    }
                };
                Recordings::new(
                    Arc::new(
                        LocalTables::new(own.clone(), mapping)
                            .with_durability(Durability::SurvivesCrash),
                    ),
                    Some((own, settings.tables.recordings.clone())),
                    settings.record.clone(),
                )
            }
            Place::Aws(sdk) => Recordings::new(
                Arc::new(AwsTables::new(sdk, mapping)),
                None,
                settings.record.clone(),
            ),
        })
    }

    /// Installed logic versions and the shared pointer.
    pub fn registry(&self) -> Registry {
        Registry::new(self.logic_tables.clone(), crate::BUILTIN_LOGIC)
    }

    /// The embedded database, with the local backend.
    pub fn store(&self) -> Option<&Store> {
        match &self.place {
            Place::Local(store) => Some(store),
            Place::Aws(_) => None,
        }
    }

    /// The embedded GitHub, when the deployment has no GitHub App and so
    /// plays GitHub itself (the local backend).
    pub fn embedded_github(&self, settings: &Settings) -> Option<LocalGitHub> {
        match (&settings.github, self.store()) {
            (None, Some(store)) => Some(LocalGitHub::new(store.clone())),
            _ => None,
        }
    }

    pub fn sdk(&self) -> Option<&aws_config::SdkConfig> {
        match &self.place {
            Place::Aws(sdk) => Some(sdk),
            Place::Local(_) => None,
        }
    }

    /// A configured queue by its logical name (`probot`, `api`). With SQS
    /// this looks the queue up, so it fails while SQS is unreachable.
    pub async fn queue(
        &self,
        settings: &Settings,
        logical: &str,
    ) -> anyhow::Result<Arc<dyn Queue>> {
        self.sealing_queue(settings, logical, None).await
    }

    /// [`queue`](Self::queue), its copies (SQS) carrying the original send
    /// time sealed by `provenance` (`serve`).
    pub async fn sealing_queue(
        &self,
        settings: &Settings,
        logical: &str,
        provenance: Option<Arc<crate::queue::provenance::Provenance>>,
    ) -> anyhow::Result<Arc<dyn Queue>> {
        let queue = settings.queues.get(logical).with_context(|| {
            format!(
                "no queue `{logical}` in the config (have: {})",
                settings
                    .queues
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        Ok(match &self.place {
            Place::Local(store) => Arc::new(LocalQueue::new(store.clone(), logical, queue)),
            Place::Aws(sdk) => Arc::new(
                SqsQueue::connect(aws_sdk_sqs::Client::new(sdk), logical, queue)
                    .await?
                    .with_provenance(provenance),
            ),
        })
    }

    /// GitHub, Segment and the Runtime Service as configured; with the local
    /// backend, the ones not configured are recorded in the database. Every
    /// secret read for them is registered in `credentials`, so no
    /// dependency's text can carry it back.
    pub fn services(
        &self,
        settings: &Settings,
        credentials: &Credentials,
    ) -> anyhow::Result<Services> {
        let store = self.store();
        for url in [
            settings.github.as_ref().map(|g| g.api_url.as_str()),
            settings.runtime.as_ref().map(|r| r.url.as_str()),
            settings.segment.as_ref().map(|s| s.url.as_str()),
            settings.aws.endpoint_url.as_deref(),
        ]
        .into_iter()
        .flatten()
        {
            credentials.register_url(url);
        }
        let rotation = Arc::new(Rotation::default());
        let mut provenance = None;
        let github: Arc<dyn GitHub> = match (&settings.github, store) {
            (Some(github), _) => {
                let (app, sealing) = self.github_app(github, credentials, &rotation)?;
                provenance = Some(sealing);
                app
            }
            (None, Some(store)) => Arc::new(LocalGitHub::new(store.clone())),
            (None, None) => anyhow::bail!(
                "config key `github`: the aws backend needs the GitHub App (app_id, private key)"
            ),
        };
        let runtime: Arc<dyn Runtime> = match (&settings.runtime, store) {
            (Some(runtime), _) => {
                let (file, variable) = (runtime.token_file.as_deref(), "ENVMGR_RUNTIME_TOKEN");
                let token = registered(
                    credentials,
                    read_secret(file, variable, "Runtime Service token")?,
                );
                let http = Arc::new(HttpRuntime::new(
                    &runtime.url,
                    token.clone(),
                    Duration::from_millis(runtime.timeout_ms),
                    runtime.retries,
                )?);
                if let Some(file) = file {
                    let (http, credentials) = (http.clone(), credentials.clone());
                    let apply = move |token: &str| {
                        credentials.register(token);
                        http.use_token(token);
                        Ok(())
                    };
                    rotation.watch("runtime token", file.into(), &token, Box::new(apply));
                }
                http
            }
            (None, Some(store)) => Arc::new(LocalRuntime::new(
                store.clone(),
                settings.queues.get("api").map(|queue| queue.name.clone()),
                settings.logic_config.get("preview-url-template").cloned(),
            )),
            (None, None) => {
                anyhow::bail!("config key `runtime`: the aws backend needs the Runtime Service url")
            }
        };
        let segment = match &settings.segment {
            Some(segment) => {
                let file = segment.write_key_file.as_deref();
                let key = registered(
                    credentials,
                    read_secret(file, "ENVMGR_SEGMENT_WRITE_KEY", "Segment write key")?,
                );
                let write_key = Arc::new(Current::new(key.clone()));
                if let Some(file) = file {
                    let (write_key, credentials) = (write_key.clone(), credentials.clone());
                    let apply = move |key: &str| {
                        credentials.register(key);
                        write_key.set(key.to_string());
                        Ok(())
                    };
                    rotation.watch("segment write key", file.into(), &key, Box::new(apply));
                }
                Some(Arc::new(SegmentAnalytics::start(SegmentOptions {
                    url: segment.url.clone(),
                    write_key,
                    batch_size: segment.batch_size,
                    flush_interval: Duration::from_millis(segment.flush_interval_ms),
                    buffer: segment.buffer,
                    credentials: credentials.clone(),
                })))
            }
            None => None,
        };
        let analytics: Arc<dyn Analytics> = match (&segment, store) {
            (Some(segment), _) => segment.clone(),
            (None, Some(store)) => Arc::new(LocalAnalytics::new(store.clone())),
            (None, None) => Arc::new(Disabled),
        };
        Ok(Services {
            github,
            analytics,
            runtime,
            segment,
            provenance,
            rotation,
        })
    }

    /// The GitHub App backend and the seal keyed from its private key, both
    /// following the key file when it changes.
    fn github_app(
        &self,
        github: &crate::config::GitHub,
        credentials: &Credentials,
        rotation: &Rotation,
    ) -> anyhow::Result<(Arc<dyn GitHub>, Arc<Provenance>)> {
        let file = github.private_key_file.as_deref();
        let private_key = read_secret(file, "ENVMGR_GITHUB_PRIVATE_KEY", "GitHub App private key")?;
        credentials.register_pem(&private_key);
        let provenance = Arc::new(Provenance::from_shared_secret(private_key.as_bytes()));
        let app = Arc::new(GitHubApp::new(
            github.app_id,
            &private_key,
            crate::capabilities::github::app::GitHubAppOptions {
                api_url: github.api_url.clone(),
                runtime_token_permissions: github.runtime_token_permissions.clone(),
                write_spacing: Duration::from_millis(github.write_spacing_ms),
                max_wait: Duration::from_millis(github.max_wait_ms),
                credentials: credentials.clone(),
            },
        )?);
        if let Some(file) = file {
            let (app, provenance, credentials) =
                (app.clone(), provenance.clone(), credentials.clone());
            let apply = move |pem: &str| {
                // Checked before anything learns of it or uses it.
                crate::capabilities::github::app::parse_private_key(pem)?;
                credentials.register_pem(pem);
                app.use_private_key(pem)?;
                provenance.rotate(pem.as_bytes());
                Ok(())
            };
            rotation.watch(
                "GitHub App private key",
                file.into(),
                &private_key,
                Box::new(apply),
            );
        }
        Ok((app, provenance))
    }
}

/// `secret`, once `credentials` knows it.
fn registered(credentials: &Credentials, secret: String) -> String {
    credentials.register(&secret);
    secret
}
