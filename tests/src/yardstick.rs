//! The benchmarks' yardstick: the create flow run natively (the guest crate
//! through its capability trait, no sandbox) against the mock host's
//! backends, timed in the same run as what is compared with it. Absolute
//! figures on shared machines swing ~2.5× between days
//! (`docs/performance.md`, "Why ratios"); a ratio to this, measured
//! minutes apart on the same machine, does not.
//!
//! Every path handles a redelivery of one pull-request event: the flow a
//! redelivery runs (2 app reads, auth, the record and lease read, the lease
//! taken and released; no GitHub, KMS or runtime call: everything is on the
//! record). None records a transcript. The floor is a component of the
//! same world that returns at once (the chaos guest), instantiated and
//! dropped the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use envmgr::Message;
use envmgr::boundary::Backends;
use envmgr::calls::Observer;
use envmgr::engine::Logic;
use envmgr::mock::MockHost;

use crate::native::Native;
use crate::*;

/// Runs before timing, to warm caches and the allocator.
const WARM_UP: usize = 200;

pub struct Yardstick {
    pub host: MockHost,
    /// The host's backends without transcript or faults.
    pub backends: Arc<Backends>,
    pub message: Message,
    guest_message: envmgr_guest::Message,
    /// `ENVMGR_BENCH_LOGIC`: another build of the logic (a guest variant)
    /// for the component path, against the same native flow.
    variant: Option<Logic>,
    floor_logic: Logic,
    floor_message: Message,
    runtime: tokio::runtime::Runtime,
}

/// Medians of one interleaved measurement.
#[derive(Clone, Copy, Debug)]
pub struct Medians {
    pub native: Duration,
    pub component: Duration,
    pub floor: Duration,
}

impl Default for Yardstick {
    fn default() -> Self {
        Self::new()
    }
}

impl Yardstick {
    pub fn new() -> Self {
        let host = seeded_host();
        set_secret(&host, APP_ID, "global", "DATABASE_URL", "postgres://db");
        set_secret(&host, APP_ID, "preview", "API_KEY", "key-123");
        let backends = Arc::new(Backends {
            observer: Observer::default(),
            ..(**host.backends()).clone()
        });
        let body = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z");
        let message = host.message("probot", &body);
        let floor_logic = host
            .engine()
            .load(CHAOS_LOGIC)
            .expect("the chaos guest loads");
        let floor_message = host.message("api", "noop");
        let variant = std::env::var_os("ENVMGR_BENCH_LOGIC").map(|path| {
            let component = std::fs::read(&path).expect("ENVMGR_BENCH_LOGIC names a component");
            host.engine().load(&component).expect("the variant loads")
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("tokio runtime");
        let yardstick = Self {
            guest_message: guest_message(&message),
            host,
            backends,
            message,
            variant,
            floor_logic,
            floor_message,
            runtime,
        };
        // The first delivery creates everything; the timed ones redeliver.
        yardstick.component_once().expect("the first delivery");
        yardstick
    }

    /// The flow natively, once.
    pub fn native_once(&self) {
        let mut caps = Native {
            backends: &self.backends,
            now_ms: self.host.clock.now_ms(),
        };
        let outcome = envmgr_guest::handle(&mut caps, &self.guest_message);
        assert!(
            matches!(outcome, Ok(envmgr_guest::Outcome::Done(_))),
            "{outcome:?}"
        );
    }

    /// The flow as the component in the engine, once.
    pub fn component_once(&self) -> Result<(), String> {
        let logic = self.variant.as_ref().unwrap_or(self.host.logic());
        self.run(logic, &self.message)
    }

    /// The component that returns at once, once.
    pub fn floor_once(&self) {
        self.run(&self.floor_logic, &self.floor_message)
            .expect("the floor component");
    }

    fn run(&self, logic: &Logic, message: &Message) -> Result<(), String> {
        let run = self
            .host
            .engine()
            .run(logic, self.backends.clone(), message);
        match self.runtime.block_on(run) {
            Ok(Ok(envmgr::Outcome::Done(_))) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    }

    /// The native flow's median over `rounds` (the drain's yardstick).
    pub fn native_median(&self, rounds: usize) -> Duration {
        for _ in 0..WARM_UP {
            self.native_once();
        }
        median((0..rounds).map(|_| timed(|| self.native_once())).collect())
    }

    /// The three paths in alternating blocks of [`BLOCK`] runs, `rounds` of
    /// each in all: drift over the run hits each alike, while each path
    /// runs warm. (Interleaved one run at a time, each path pays for the
    /// others: the native flow took 2× as long right after a component's
    /// run, the floor 2.5× after another component's — its instance takes
    /// a pool slot another module used last, and its memory is mapped
    /// again.)
    pub fn medians(&self, rounds: usize) -> Medians {
        let (mut native, mut component, mut floor) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds.div_ceil(BLOCK) {
            block(&mut native, || self.native_once());
            block(&mut component, || {
                self.component_once().expect("component run")
            });
            block(&mut floor, || self.floor_once());
        }
        Medians {
            native: median(native),
            component: median(component),
            floor: median(floor),
        }
    }
}

/// Runs of one path in a row; the first few of each block warm it.
const BLOCK: usize = 100;
const BLOCK_WARM_UP: usize = 10;

fn block(times: &mut Vec<Duration>, mut once: impl FnMut()) {
    for _ in 0..BLOCK_WARM_UP {
        once();
    }
    for _ in 0..BLOCK {
        times.push(timed(&mut once));
    }
}

fn timed(mut once: impl FnMut()) -> Duration {
    let started = Instant::now();
    once();
    started.elapsed()
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// A figure beside its target: `measured ≤ target` met or missed.
pub fn against(ratio: f64, target: f64) -> String {
    let verdict = if ratio <= target { "met" } else { "missed" };
    format!("{ratio:.1}× (target ≤ {target}×: {verdict})")
}
