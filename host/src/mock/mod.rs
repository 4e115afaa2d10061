//! The mock host: runs a logic component exactly as the daemon does (same
//! engine, limits and WIT boundary) against in-memory capabilities, with a
//! manual clock, scripted faults and a transcript of every call.
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
use crate::capabilities::analytics::mock::MockAnalytics;
use crate::capabilities::config::Config;
use crate::capabilities::dynamodb::mock::MockTables;
use crate::capabilities::github::mock::MockGitHub;
use crate::capabilities::kms::mock::MockKms;
use crate::capabilities::runtime::mock::MockRuntime;
use crate::engine::{Engine, Handled, Limits, Logic, RunError};

/// The logical tables the mock host knows.
pub const TABLES: [&str; 3] = ["environments", "secrets", "apps"];

/// The mock clock starts at 2026-11-28T12:00:00Z.
pub const START_MS: u64 = 1_795_867_200_000;

/// The lease the mock host gives (`lease-ttl-ms`), as `serve` by default.
pub const LEASE_TTL_MS: u64 = 75_000;

/// What the mock host passes as `preview-url-template` unless told otherwise.
pub const PREVIEW_URL_TEMPLATE: &str = "https://{environment}.preview.test";

pub struct MockHost {
    engine: Arc<Engine>,
    logic: Arc<Logic>,
    backends: Arc<Backends>,
    transcript: Transcript,
    pub tables: Arc<MockTables>,
    pub github: Arc<MockGitHub>,
    pub kms: Arc<MockKms>,
    pub analytics: Arc<MockAnalytics>,
    pub runtime: Arc<MockRuntime>,
    pub clock: ManualClock,
    pub faults: Faults,
    /// Deliveries made so far (shared with peers): each gets a token of
    /// its own.
    deliveries: Arc<std::sync::atomic::AtomicU64>,
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
    pub fn new(engine: Arc<Engine>, logic: Arc<Logic>, config: Config) -> Self {
        let tables = Arc::new(MockTables::new(&TABLES));
        let github = Arc::new(MockGitHub::default());
        let kms = Arc::new(MockKms::default());
        let analytics = Arc::new(MockAnalytics::default());
        let runtime = Arc::new(MockRuntime::default());
        let clock = ManualClock::at_ms(START_MS);
        let faults = Faults::default();
        let transcript = Transcript::default();
        let backends = Arc::new(Backends {
            github: github.clone(),
            dynamodb: tables.clone(),
            kms: kms.clone(),
            analytics: analytics.clone(),
            runtime: runtime.clone(),
            config: Arc::new(config),
            observer: Observer {
                transcript: Some(transcript.clone()),
                faults: Some(faults.clone()),
                in_flight: Some(CallsInFlight::default()),
                ..Observer::default()
            },
            clock: Some(clock.clone()),
            credentials: crate::redact::Credentials::default(),
        });
        Self {
            engine,
            logic,
            backends,
            transcript,
            tables,
            github,
            kms,
            analytics,
            runtime,
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
            tables: self.tables.clone(),
            github: self.github.clone(),
            kms: self.kms.clone(),
            analytics: self.analytics.clone(),
            runtime: self.runtime.clone(),
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
