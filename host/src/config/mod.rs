//! The daemon's configuration: one TOML file, then environment variables.
//!
//! `ENVMGR__SECTION__KEY=value` overrides `[section] key` (any depth; keys
//! lower-cased, `-` and `_` as written), e.g. `ENVMGR__AWS__ENDPOINT_URL`.
//! Secrets are never in the file itself: each is read from a `*_file` path or
//! from its own environment variable, and never logged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::aws::Aws;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::engine::Limits;

mod previews;
mod queues;
mod validate;
pub use previews::{PREVIEW_CONFIG_KEYS, Previews};
pub use queues::Queue;
use queues::{default_queues, merge_queues};

/// The logical name the host's recordings table goes by (mapped to the
/// physical one by `[tables] recordings`).
pub const RECORDINGS_TABLE: &str = "recordings";

/// Prefix of override variables.
const OVERRIDE_PREFIX: &str = "ENVMGR__";

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where the queues, tables and KMS key live: `local` (one embedded
    /// database file, the default) or `aws`.
    #[serde(default)]
    pub backend: Backend,
    #[serde(default)]
    pub local: Local,
    #[serde(default)]
    pub aws: Aws,
    #[serde(default)]
    pub tables: Tables,
    #[serde(default)]
    pub kms: Kms,
    #[serde(default = "default_queues")]
    pub queues: BTreeMap<String, Queue>,
    pub github: Option<GitHub>,
    pub segment: Option<Segment>,
    pub runtime: Option<Runtime>,
    #[serde(default)]
    pub limits: LimitSettings,
    #[serde(default)]
    pub lease: LeaseSettings,
    #[serde(default)]
    pub previews: Previews,
    /// Read-only values for the logic (`wasi:config`), e.g.
    /// `preview-url-template`.
    #[serde(default)]
    pub logic_config: BTreeMap<String, String>,
    #[serde(default)]
    pub shutdown: Shutdown,
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub logic: LogicSettings,
    #[serde(default)]
    pub admin: Admin,
    #[serde(default)]
    pub record: Record,
    #[serde(default)]
    pub telemetry: Telemetry,
}

/// Traces over OTLP (`host/src/telemetry/`): off unless an endpoint is set
/// here or in the standard `OTEL_EXPORTER_OTLP_*` variables.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    /// The collector's OTLP/HTTP base URL, e.g. `http://localhost:4318`
    /// (`/v1/traces` is appended); wins over `OTEL_EXPORTER_OTLP_ENDPOINT`.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
}

/// Recording handled messages for `envmgr logic replay` and shadow runs
/// (`host/src/record/`). Recordings hold what messages carry (titles,
/// logins, repository names): kept briefly by default.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Record {
    /// Off: nothing is recorded (and no shadow runs).
    pub enabled: bool,
    /// The share of messages recorded, 0.0 to 1.0. A shadow version runs
    /// on these only.
    pub sample: f64,
    /// How long a recording is kept (DynamoDB TTL on aws).
    pub retention_hours: u64,
    /// Local backend: at most this many stored items (one per message
    /// unless its recording passes 300 KB compressed); the oldest go first.
    pub max_entries: u64,
    /// Recordings waiting to be stored; past this they are dropped and
    /// counted, never waited for.
    pub queue: usize,
}

impl Default for Record {
    fn default() -> Self {
        Self {
            enabled: true,
            sample: 1.0,
            retention_hours: 72,
            max_entries: 10_000,
            queue: 256,
        }
    }
}

/// Logic versions: where native code is cached, how often hosts look at the
/// shared pointer, and when a canary is rolled back.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogicSettings {
    /// Native code of installed versions; `{local.data_dir}/logic-cache`
    /// when unset.
    pub cache_dir: Option<PathBuf>,
    /// How often a running host reads the active pointer.
    pub poll_ms: u64,
    /// The canary's recent messages judged (and the active version's).
    pub canary_window: usize,
    /// Messages the canary must have handled before it is judged.
    pub canary_min_messages: usize,
    /// Roll back when the canary's failure rate exceeds the active
    /// version's by more than this (0.2 = 20 percentage points).
    pub canary_margin: f64,
    /// How often `serve` removes versions nobody needs, expired heartbeats
    /// and stale native code (`logic gc`); 0: never.
    pub gc_every_seconds: u64,
    /// A version installed this recently is kept even if nothing names it
    /// (installed now, activated later).
    pub keep_installed_hours: u64,
}

impl Default for LogicSettings {
    fn default() -> Self {
        Self {
            cache_dir: None,
            poll_ms: 250,
            canary_window: 50,
            canary_min_messages: 10,
            canary_margin: 0.2,
            gc_every_seconds: 3_600,
            keep_installed_hours: 24,
        }
    }
}

/// The daemon's admin endpoint (`/metrics`, `/status`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// e.g. `127.0.0.1:9464`; no endpoint when unset.
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Queues, tables and the KMS key in `local.data_dir`; GitHub, Segment
    /// and the Runtime Service recorded there unless configured.
    #[default]
    Local,
    /// SQS, DynamoDB and KMS; GitHub and the Runtime Service must be
    /// configured.
    Aws,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Local {
    /// The directory of the database file (`envmgr.db`).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// How long `serve` keeps the records of calls the local backend logs
    /// (tokens issued, analytics events, runtime requests); at least 14.
    #[serde(default = "default_retention_days")]
    pub retention_days: u64,
}

impl Default for Local {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            retention_days: default_retention_days(),
        }
    }
}

fn default_retention_days() -> u64 {
    30
}

fn default_data_dir() -> PathBuf {
    PathBuf::from(".envmgr")
}

/// Logical table name → physical DynamoDB table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tables {
    pub environments: String,
    pub secrets: String,
    pub apps: String,
    /// The host's own: logic versions and the active pointer. Never mapped
    /// for the logic, so no logic version can move the pointer.
    pub logic: String,
    /// The host's own: recorded messages (`[record]`), never mapped for the
    /// logic.
    pub recordings: String,
}

impl Default for Tables {
    fn default() -> Self {
        Self {
            environments: "envmgr-environments".into(),
            secrets: "envmgr-secrets".into(),
            apps: "envmgr-apps".into(),
            logic: "envmgr-logic".into(),
            recordings: "envmgr-recordings".into(),
        }
    }
}

impl Tables {
    /// (logical, physical) pairs of the tables the logic may use.
    pub fn mapping(&self) -> [(&'static str, &str); 3] {
        [
            ("environments", &self.environments),
            ("secrets", &self.secrets),
            ("apps", &self.apps),
        ]
    }

    /// The host's logic-version table, alone.
    pub fn logic_mapping(&self) -> [(&'static str, &str); 1] {
        [("logic", &self.logic)]
    }

    /// The host's recordings table, alone.
    pub fn recordings_mapping(&self) -> [(&'static str, &str); 1] {
        [(RECORDINGS_TABLE, &self.recordings)]
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kms {
    /// The key secrets are encrypted with (`envmgr secret set`, `init`).
    pub key_id: String,
    /// Keys being moved from (`envmgr secrets re-encrypt`): a host also
    /// decrypts what they made, and encrypts under `key_id` only.
    #[serde(default)]
    pub previous_key_ids: Vec<String>,
}

impl Default for Kms {
    fn default() -> Self {
        Self {
            key_id: "alias/envmgr".into(),
            previous_key_ids: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitHub {
    pub app_id: u64,
    /// PEM file of the App's private key; or the env var
    /// `ENVMGR_GITHUB_PRIVATE_KEY` holding the PEM itself.
    pub private_key_file: Option<PathBuf>,
    #[serde(default = "default_github_url")]
    pub api_url: String,
    /// Permission → `read`/`write` of the token the runtime gets (scoped
    /// to the one repository too).
    #[serde(default = "crate::capabilities::github::app::default_runtime_token_permissions")]
    pub runtime_token_permissions: BTreeMap<String, String>,
    /// Least time between two mutative requests of one installation.
    #[serde(default)]
    pub write_spacing_ms: u64,
    /// Longest a request waits when GitHub asks to wait; past it the call
    /// fails as throttled.
    #[serde(default = "default_github_max_wait_ms")]
    pub max_wait_ms: u64,
}

fn default_github_url() -> String {
    "https://api.github.com".into()
}
fn default_github_max_wait_ms() -> u64 {
    crate::capabilities::github::app::DEFAULT_MAX_WAIT_MS
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// File holding the write key; or the env var `ENVMGR_SEGMENT_WRITE_KEY`.
    pub write_key_file: Option<PathBuf>,
    #[serde(default = "default_segment_url")]
    pub url: String,
    /// Events per `/v1/batch` request.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Longest an event waits for its batch.
    #[serde(default = "default_flush_ms")]
    pub flush_interval_ms: u64,
    /// Events held at most; more are dropped (and counted).
    #[serde(default = "default_buffer")]
    pub buffer: usize,
}

fn default_segment_url() -> String {
    "https://api.segment.io".into()
}
fn default_batch() -> usize {
    100
}
fn default_flush_ms() -> u64 {
    2_000
}
fn default_buffer() -> usize {
    10_000
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runtime {
    pub url: String,
    /// File holding the bearer token; or the env var `ENVMGR_RUNTIME_TOKEN`.
    pub token_file: Option<PathBuf>,
    #[serde(default = "default_runtime_timeout")]
    pub timeout_ms: u64,
    /// Extra tries within one message for 5xx and timeouts.
    #[serde(default = "default_runtime_retries")]
    pub retries: u32,
}

fn default_runtime_timeout() -> u64 {
    10_000
}
fn default_runtime_retries() -> u32 {
    2
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    #[serde(default = "default_memory_mib")]
    pub memory_mib: usize,
    #[serde(default = "default_deadline")]
    pub deadline_seconds: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            memory_mib: default_memory_mib(),
            deadline_seconds: default_deadline(),
        }
    }
}

fn default_memory_mib() -> usize {
    64
}
fn default_deadline() -> u64 {
    60
}

/// The per-environment lease (docs/data-model.md): one delivery at a time
/// works on an environment.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaseSettings {
    /// How long a lease lasts after its holder last renewed it: a crashed
    /// holder's environment is free again after this.
    pub ttl_seconds: u64,
    /// How far apart the clocks of two hosts may be.
    pub clock_skew_seconds: u64,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        Self {
            ttl_seconds: 75,
            clock_skew_seconds: 5,
        }
    }
}

/// Config keys of `wasi:config` the host sets itself; `[logic_config]`
/// may not.
pub const HOST_CONFIG_KEYS: [&str; 5] = [
    "logic-version",
    "lease-ttl-ms",
    previews::PREVIEW_CONFIG_KEYS[0],
    previews::PREVIEW_CONFIG_KEYS[1],
    previews::PREVIEW_CONFIG_KEYS[2],
];

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shutdown {
    /// How long in-flight messages may finish after SIGTERM/SIGINT.
    #[serde(default = "default_grace")]
    pub grace_seconds: u64,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self {
            grace_seconds: default_grace(),
        }
    }
}

fn default_grace() -> u64 {
    30
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    #[serde(default)]
    pub format: LogFormat,
}

impl Settings {
    /// Read `path` (if given), apply `ENVMGR__` overrides from `env`, and
    /// validate every section. Errors name the offending key.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        Self::load_for(path, env, Uses::Everything)
    }

    /// [`load`](Self::load), validating only what a command `uses`: a
    /// queue setting `serve` would refuse does not stop `add-app`.
    pub fn load_for(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        uses: Uses,
    ) -> anyhow::Result<Self> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                text.parse::<toml::Table>()
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            if let Some(path) = name.strip_prefix(OVERRIDE_PREFIX) {
                set_path(&mut table, path, &value)
                    .with_context(|| format!("environment variable {name}"))?;
            }
        }
        merge_queues(&mut table)?;
        let settings: Settings = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| anyhow::anyhow!("config key `{}`: {}", e.path(), e.inner().message()))?;
        match uses {
            Uses::Stores => {}
            Uses::Queues => settings.validate_queues()?,
            Uses::Logic => settings.validate_serving()?,
            Uses::Everything => {
                settings.validate_queues()?;
                settings.validate_serving()?;
            }
        }
        Ok(settings)
    }

    /// Where native code of logic versions is cached.
    pub fn logic_cache_dir(&self) -> PathBuf {
        self.logic
            .cache_dir
            .clone()
            .unwrap_or_else(|| self.local.data_dir.join("logic-cache"))
    }

    /// What the logic reads through `wasi:config`: the operator's values and
    /// the host's own (the lease's length).
    pub fn logic_config_values(&self) -> BTreeMap<String, String> {
        let mut values = self.logic_config.clone();
        values.insert(
            "lease-ttl-ms".to_string(),
            (self.lease.ttl_seconds * 1_000).to_string(),
        );
        values.extend(self.previews.config_values());
        values
    }

    /// The engine limits; concurrency covers every queue's in-flight bound,
    /// and one more instance for the recorder's shadow runs (one at a time),
    /// so that a shadow never takes a live message's instance.
    pub fn limits(&self) -> Limits {
        let in_flight: usize = self.queues.values().map(|q| q.max_in_flight).sum();
        let concurrency = in_flight + usize::from(self.record.enabled);
        Limits {
            memory_bytes: self.limits.memory_mib << 20,
            deadline: Duration::from_secs(self.limits.deadline_seconds),
            concurrency: u32::try_from(concurrency).unwrap_or(u32::MAX),
        }
    }
}

/// Read a secret from its file, or else from its environment variable.
pub fn read_secret(file: Option<&Path>, env_var: &str, what: &str) -> anyhow::Result<String> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading the {what} from {}", file.display()))?;
        return Ok(text.trim().to_string());
    }
    std::env::var(env_var)
        .map(|v| v.trim().to_string())
        .map_err(|_| {
            anyhow::anyhow!("the {what} is not set: give a file in the config or set {env_var}")
        })
}

/// What a command uses of the configuration, and so validates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uses {
    /// The tables and the key only (`add-app`, `set-secret`, `show`).
    Stores,
    /// And the queues (`send`, `dlq`).
    Queues,
    /// And what running logic takes, without consuming queues (`logic`,
    /// `record`).
    Logic,
    /// Everything (`serve`, `init`, `demo`).
    Everything,
}

/// `AWS__ENDPOINT_URL` = `x` → table["aws"]["endpoint_url"] = x.
fn set_path(table: &mut toml::Table, path: &str, value: &str) -> anyhow::Result<()> {
    let keys: Vec<String> = path.split("__").map(|k| k.to_ascii_lowercase()).collect();
    if keys.iter().any(String::is_empty) {
        bail!("`{path}` has an empty key");
    }
    let (last, parents) = keys.split_last().expect("split yields one key at least");
    let mut current = table;
    for key in parents {
        let entry = current
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| anyhow::anyhow!("`{key}` is not a table"))?;
    }
    // Numbers, booleans and arrays (`["alias/old"]`) as such; everything
    // else as a string.
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_table())
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    current.insert(last.clone(), parsed);
    Ok(())
}

#[cfg(test)]
mod tests;
