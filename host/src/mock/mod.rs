//! The mock host: runs a logic component exactly as the daemon does (same
//! engine, limits and WIT boundary) against the local backends over a
//! database in memory (one per host, shared with its peers, gone with
//! them), with a manual clock, scripted faults and a transcript of every
//! call. The clock is the backends' "now" too, and what they would draw at
//! random they draw from a counter: a run makes the same keys, ciphertexts,
//! ids and tokens every time.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use envmgr::mock::MockHost;
//! let host = MockHost::load(envmgr::BUILTIN_LOGIC)?;
//! host.github.add_installation(42);
//! let delivery = host.deliver(&host.message("api", "{}")).await;
//! for call in &delivery.transcript {
//!     println!("{call}");
//! }
//! # Ok(()) }
//! ```

pub mod examples;
pub mod seed;

use std::sync::Arc;

use crate::bindings::Message;
use crate::boundary::Backends;
use crate::calls::clock::ManualClock;
use crate::calls::{CallsInFlight, Entry, Faults, Observer, Span, Transcript};
use crate::capabilities::analytics::local::LocalAnalytics;
use crate::capabilities::config::Config;
use crate::capabilities::dynamodb::local::LocalTables;
use crate::capabilities::github::local::LocalGitHub;
use crate::capabilities::kms::local::LocalKms;
use crate::capabilities::requests::Kept;
use crate::capabilities::runtime::local::LocalRuntime;
use crate::engine::{Engine, Handled, Limits, Logic, RunError};
use crate::local::Store;

/// The logical tables the mock host knows.
pub const TABLES: [&str; 3] = ["environments", "secrets", "apps"];

/// The mock clock starts at 2026-11-28T12:00:00Z.
pub const START_MS: u64 = 1_795_867_200_000;

/// The lease the mock host gives (`lease-ttl-ms`), as `serve` by default.
pub const LEASE_TTL_MS: u64 = 75_000;

/// What the mock host passes as `preview-url-template` unless told otherwise.
pub const PREVIEW_URL_TEMPLATE: &str = "https://{environment}.preview.test";

/// The alias of the mock host's KMS key.
pub const KMS_KEY: &str = "alias/envmgr-mock";

/// The local backends over one database in memory, as the mock host runs
/// them: the GitHub App installed where a test says
/// ([`LocalGitHub::add_installation`]), keeping the tokens it issues, and
/// the Runtime Service keeping every request it receives.
#[derive(Clone)]
pub struct InMemory {
    /// The database every backend below records in.
    pub store: Store,
    pub tables: Arc<LocalTables>,
    pub github: Arc<LocalGitHub>,
    pub kms: Arc<LocalKms>,
    pub analytics: Arc<LocalAnalytics>,
    pub runtime: Arc<LocalRuntime>,
    /// What the logic sent to the `api` queue (`requests.send`), kept.
    pub requests: Arc<Kept>,
}

impl InMemory {
    /// A new database in memory whose "now" is `clock`'s; the runtimes'
    /// URLs follow `config`'s `preview-url-template`, as `serve`'s do.
    pub fn open(clock: &ManualClock, config: &Config) -> anyhow::Result<Self> {
        let store = {
            let clock = clock.clone();
            Store::reproducible(move || clock.now_ms())?
        };
        // A store in memory answers at once: nothing to wait for here.
        let kms = futures::executor::block_on(LocalKms::open(&store, KMS_KEY))?;
        let url_template = config.get("preview-url-template").map(str::to_string);
        Ok(Self {
            tables: Arc::new(LocalTables::new(
                store.clone(),
                TABLES.map(|table| (table, table)),
            )),
            github: Arc::new(LocalGitHub::installed_only(store.clone())),
            kms: Arc::new(kms),
            analytics: Arc::new(LocalAnalytics::new(store.clone())),
            runtime: Arc::new(LocalRuntime::keeping_calls(store.clone(), url_template)),
            requests: Arc::new(Kept::default()),
            store,
        })
    }

    /// Them behind the boundary, with `config`, seen by `observer`, the
    /// guest on `clock`.
    pub fn backends(&self, config: Config, observer: Observer, clock: ManualClock) -> Backends {
        Backends {
            github: self.github.clone(),
            dynamodb: self.tables.clone(),
            kms: self.kms.clone(),
            analytics: self.analytics.clone(),
            runtime: self.runtime.clone(),
            requests: self.requests.clone(),
            config: Arc::new(config),
            observer,
            clock: Some(clock),
            credentials: crate::redact::Credentials::default(),
        }
    }
}

/// A mock host is its backends and more: `host.github`, `host.tables`, …
/// are its [`InMemory`] backends (shared with its peers: the database lives
/// as long as they do).
pub struct MockHost {
    engine: Arc<Engine>,
    logic: Arc<Logic>,
    backends: Arc<Backends>,
    transcript: Transcript,
    local: InMemory,
    pub clock: ManualClock,
    pub faults: Faults,
    /// Deliveries made so far (shared with peers): each gets a token of
    /// its own.
    deliveries: Arc<std::sync::atomic::AtomicU64>,
}

impl std::ops::Deref for MockHost {
    type Target = InMemory;

    fn deref(&self) -> &InMemory {
        &self.local
    }
}

/// One message's run: the result and every capability call it made.
#[derive(Debug)]
pub struct Delivery {
    pub result: Result<Handled, RunError>,
    pub transcript: Vec<Entry>,
    /// When each call ran, in the order they ended.
    pub spans: Vec<Span>,
}

impl MockHost {
    /// Compile `component` on a fresh engine with the default limits.
    pub fn load(component: &[u8]) -> anyhow::Result<Self> {
        let engine = Arc::new(Engine::new(Limits::default())?);
        let logic = Arc::new(engine.load(component)?);
        Ok(Self::new(engine, logic, default_config()))
    }

    /// A host on an engine and logic compiled once and shared, e.g. by the
    /// tests of one binary.
    ///
    /// Panics if SQLite cannot open a database in memory.
    pub fn new(engine: Arc<Engine>, logic: Arc<Logic>, config: Config) -> Self {
        let clock = ManualClock::at_ms(START_MS);
        let faults = Faults::default();
        let transcript = Transcript::default();
        let local = InMemory::open(&clock, &config).expect("a database in memory");
        let observer = Observer {
            transcript: Some(transcript.clone()),
            faults: Some(faults.clone()),
            in_flight: Some(CallsInFlight::default()),
            ..Observer::default()
        };
        let backends = Arc::new(local.backends(config, observer, clock.clone()));
        Self {
            engine,
            logic,
            backends,
            transcript,
            local,
            clock,
            faults,
            deliveries: Arc::default(),
        }
    }

    /// Another host on the same backends, clock, faults and transcript,
    /// running `logic`: two logic versions side by side, as during a canary
    /// or a swap.
    pub fn peer(&self, logic: Arc<Logic>) -> Self {
        Self {
            engine: self.engine.clone(),
            logic,
            backends: self.backends.clone(),
            transcript: self.transcript.clone(),
            local: self.local.clone(),
            clock: self.clock.clone(),
            faults: self.faults.clone(),
            deliveries: self.deliveries.clone(),
        }
    }

    pub fn logic(&self) -> &Logic {
        &self.logic
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The backends the logic runs against (with this host's observer).
    pub fn backends(&self) -> &Arc<Backends> {
        &self.backends
    }

    /// A first delivery of `body` on `queue`, sent now; each call is a
    /// delivery of its own (its own delivery token).
    pub fn message(&self, queue: &str, body: &str) -> Message {
        let delivery = self
            .deliveries
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        Message {
            id: format!(
                "mock-{}",
                &crate::support::hex_sha256(body.as_bytes())[..12]
            ),
            source_queue: queue.to_string(),
            body: body.to_string(),
            attributes: Vec::new(),
            receive_count: 1,
            sent_at_ms: self.clock.now_ms(),
            delivery_token: format!("mock-delivery-{delivery}"),
            deferrals: 0,
        }
    }

    /// Run one message through the logic, as the daemon would.
    ///
    /// Deliveries may nest (one run from a scripted [`Faults::interleave`]
    /// inside another's call): each transcript holds its own calls only.
    pub async fn deliver(&self, message: &Message) -> Delivery {
        let mark = self.transcript.mark();
        let result = self
            .engine
            .run(&self.logic, self.backends.clone(), message)
            .await;
        // A call the message started and never waited for still ends (none
        // is cancelled): its entry belongs to this delivery.
        if let Some(in_flight) = &self.backends.observer.in_flight {
            in_flight.idle().await;
        }
        let (transcript, spans) = self.transcript.take_from(mark);
        Delivery {
            result,
            transcript,
            spans,
        }
    }
}

impl MockHost {
    /// [`deliver`](Self::deliver), recorded as `serve` records a message:
    /// the run and its recording (handled now, by the mock clock).
    pub async fn deliver_recorded(
        &self,
        message: &Message,
    ) -> (Delivery, crate::record::Recording) {
        let tape = crate::calls::tape::Tape::default();
        let backends = Arc::new(self.backends.taped(tape.clone()));
        let mark = self.transcript.mark();
        let result = self.engine.run(&self.logic, backends, message).await;
        if let Some(in_flight) = &self.backends.observer.in_flight {
            in_flight.idle().await;
        }
        let (transcript, spans) = self.transcript.take_from(mark);
        let recording = crate::record::Recording::of(
            &self.logic,
            &message.source_queue,
            message,
            &self.backends.config,
            self.clock.now_ms(),
            crate::engine::summary(&result),
            tape.taken(),
        );
        let delivery = Delivery {
            result,
            transcript,
            spans,
        };
        (delivery, recording)
    }
}

/// The config the mock host gives the logic by default.
pub fn default_config() -> Config {
    Config::new([
        (
            "preview-url-template".to_string(),
            PREVIEW_URL_TEMPLATE.to_string(),
        ),
        ("lease-ttl-ms".to_string(), LEASE_TTL_MS.to_string()),
    ])
}
