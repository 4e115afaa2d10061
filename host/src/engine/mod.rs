//! The wasmtime engine that runs logic versions: pooling allocator, one
//! pre-linked `InstancePre` per logic version, one `Store` per message, an
//! epoch deadline and a memory limit. Nothing ambient is granted: WASI gets no
//! preopens, environment, arguments, stdio or sockets; only a clock and a
//! random source (both deterministic when the backends ask for it).

mod codegen;
mod limits;
mod shipped;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Enabled, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
    UpdateDeadline,
};
use wasmtime_wasi::WasiCtxBuilder;

pub use limits::Limits;

pub use crate::boundary::limiter::MemoryLimitExceeded;
use crate::boundary::limiter::MemoryLimiter;
use crate::boundary::{Backends, Session};
use crate::calls::clock::ManualClock;

use crate::bindings::{EnvironmentManagerPre, Failure, Message, Outcome};
use crate::contract;

/// How often the epoch advances; the deadline's resolution.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Core instances, memories and tables one guest component uses at most (a
/// Rust std guest: the main module plus the WASI adapter and its shims).
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const MEMORIES_PER_COMPONENT: u32 = 4;
const TABLES_PER_COMPONENT: u32 = 8;

/// Memory the pool keeps mapped between messages and resets with a memset
/// instead of returning to the kernel. Resetting the pages a message dirtied
/// is most of the fixed per-message cost: past this size the pool returns
/// pages with `madvise`, whose page faults and TLB shootdowns (IPIs to the
/// other cores) were half of a `perf` profile of an instance's life.
///
/// Where the kernel reports which pages a message dirtied (`PAGEMAP_SCAN`,
/// Linux 6.7 and later; wasmtime 48 asks only when told to, [`Engine::new`])
/// only those are reset; elsewhere the memory the guest made accessible is,
/// up to this size. Measured both ways with the create_flow bench
/// (`docs/performance.md`, "The sandbox"). Bound: this much per pool slot
/// (`[limits] concurrency` slots) stays resident between messages.
const KEEP_RESIDENT_BYTES: usize = 4 << 20;

/// Compiles logic versions and runs messages through them.
pub struct Engine {
    engine: wasmtime::Engine,
    linker: Linker<Session>,
    limits: Limits,
    _ticker: EpochTicker,
}

/// A compiled logic version, ready to instantiate.
pub struct Logic {
    /// sha256 of the component file, hex: the version's identity.
    pub id: String,
    /// The contract version it was built for (one of [`contract::LINKED`]).
    pub contract: &'static str,
    pre: Pre,
}

/// A logic version linked against the contract it was built for.
enum Pre {
    Current(EnvironmentManagerPre<Session>),
    Previous(contract::previous::bindings::EnvironmentManagerPre<Session>),
}

impl fmt::Debug for Logic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logic")
            .field("id", &self.id)
            .field("contract", &self.contract)
            .finish()
    }
}

/// Why a message did not run to a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// The deadline passed (an endless loop, or a host call that hung).
    Timeout(Duration),
    /// The guest tried to grow memory past the limit.
    MemoryExhausted(String),
    /// The guest trapped (a panic, an invalid handle, ...).
    Trap(String),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(limit) => write!(
                f,
                "the logic ran past its deadline of {}",
                crate::support::seconds(*limit)
            ),
            Self::MemoryExhausted(what) => write!(f, "the logic ran out of memory: {what}"),
            Self::Trap(what) => write!(f, "the logic trapped: {what}"),
        }
    }
}

impl std::error::Error for RunError {}

/// What the guest returned.
pub type Handled = Result<Outcome, Failure>;

/// How a run ended, as logs and commands say it: `done: …`, `skipped: …`,
/// `deferred: …`, `permanent failure: …`, `retryable failure: …`, or the
/// run error.
pub fn summary(result: &Result<Handled, RunError>) -> String {
    match result {
        Ok(Ok(Outcome::Done(what))) => format!("done: {what}"),
        Ok(Ok(Outcome::Skipped(why))) => format!("skipped: {why}"),
        Ok(Ok(Outcome::Deferred(deferral))) => format!("deferred: {}", deferral.reason),
        Ok(Err(failure)) => format!(
            "{} failure: {}",
            crate::bindings::kind_name(failure.kind),
            failure.reason
        ),
        Err(run_error) => run_error.to_string(),
    }
}

impl Engine {
    pub fn new(limits: Limits) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        let n = limits.concurrency.max(1);
        // Off unless asked for in wasmtime 48; `Auto` uses it where the
        // kernel has it (`KEEP_RESIDENT_BYTES`).
        pool.pagemap_scan(Enabled::Auto);
        pool.total_component_instances(n)
            .total_core_instances(n * CORE_INSTANCES_PER_COMPONENT)
            .total_memories(n * MEMORIES_PER_COMPONENT)
            .total_tables(n * TABLES_PER_COMPONENT)
            .total_stacks(n)
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
            .max_memories_per_component(MEMORIES_PER_COMPONENT)
            .max_tables_per_component(TABLES_PER_COMPONENT)
            .max_memory_size(limits.memory_bytes)
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(64 << 10);

        let mut config = Config::new();
        codegen::apply(&mut config).allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = wasmtime::Engine::new(&config)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        contract::add_current_to_linker(&mut linker)?;
        contract::previous::add_to_linker(&mut linker)?;

        let ticker = EpochTicker::start(&engine);
        Ok(Self {
            engine,
            linker,
            limits,
            _ticker: ticker,
        })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Compile a component and check it against the contract: it must
    /// export `handle` with the right type and import nothing the host does
    /// not provide. Costs tens of milliseconds; done once per version.
    pub fn load(&self, component: &[u8]) -> anyhow::Result<Logic> {
        let id = crate::support::hex_sha256(component);
        if let Some(logic) = self.load_shipped(&id) {
            return Ok(logic);
        }
        let compiled = Component::new(&self.engine, component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("logic {id} is not a valid component"))?;
        self.link(id, &compiled)
    }

    /// Logic `id` from the native code shipped in the binary
    /// ([`shipped`]), when it has some and wasmtime finds it fits this
    /// engine; `None` means compile.
    pub fn load_shipped(&self, id: &str) -> Option<Logic> {
        let artifact = shipped::native_code(id)?;
        // SAFETY: the build script made the artifact with this wasmtime
        // and `codegen`'s settings, and it is part of the binary;
        // `deserialize` checks the rest (settings, tunables, CPU features).
        match unsafe { self.load_precompiled(id, artifact) } {
            Ok(logic) => Some(logic),
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "the shipped native code of the builtin logic does not fit this engine; compiling it");
                None
            }
        }
    }

    /// Native code for a component, to cache: [`Engine::load_precompiled`]
    /// turns it back into a [`Logic`] in about a tenth of a millisecond.
    pub fn precompile(&self, component: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.engine
            .precompile_component(component)
            .map_err(anyhow::Error::from)
            .context("compiling the component to native code")
    }

    /// Load native code made by [`Engine::precompile`] for the component
    /// with sha256 `id`, and check it against the contract.
    ///
    /// # Safety
    ///
    /// `artifact` must come from `precompile` of an engine with the same
    /// [`compatibility_key`](Engine::compatibility_key) and must not have
    /// been tampered with: wasmtime runs its native code as it is.
    pub unsafe fn load_precompiled(&self, id: &str, artifact: &[u8]) -> anyhow::Result<Logic> {
        // SAFETY: the caller vouches for the artifact's origin.
        let compiled = unsafe { Component::deserialize(&self.engine, artifact) }
            .map_err(anyhow::Error::from)
            .with_context(|| format!("the cached native code of logic {id} does not load"))?;
        self.link(id.to_string(), &compiled)
    }

    /// Changes whenever this engine could not load native code another one
    /// made (wasmtime version, codegen settings, limits): part of the cache
    /// file name, so a stale artifact is never tried.
    pub fn compatibility_key(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        self.limits.memory_bytes.hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }

    fn link(&self, id: String, compiled: &Component) -> anyhow::Result<Logic> {
        let mismatch = || {
            format!(
                "logic {id} does not match the envmgr:environments world ({})",
                contract::LINKED.join(" or ")
            )
        };
        let linked = self
            .linker
            .instantiate_pre(compiled)
            .map_err(anyhow::Error::from)
            .with_context(mismatch)?;
        // Both worlds export the same `handle`, so a component of either
        // would type-check as the current one: the version it imports says
        // which it is.
        let imports_previous = compiled
            .component_type()
            .imports(&self.engine)
            .any(|(name, _)| contract::previous::is_its_import(name));
        // The patch of the current minor it was built for (what `logic
        // list` shows and a host's heartbeat is checked against).
        let patch = compiled
            .component_type()
            .imports(&self.engine)
            .find_map(|(name, _)| contract::current_minor_version_of(name))
            .unwrap_or(contract::CURRENT);
        let current = match imports_previous {
            false => EnvironmentManagerPre::new(linked.clone()).map_err(Some),
            true => Err(None),
        };
        let (contract, pre) = match current {
            Ok(pre) => (patch, Pre::Current(pre)),
            Err(current) => {
                match contract::previous::bindings::EnvironmentManagerPre::new(linked) {
                    Ok(pre) => (contract::previous::VERSION, Pre::Previous(pre)),
                    Err(previous) => {
                        let why = current.unwrap_or(previous);
                        return Err(anyhow::Error::from(why).context(mismatch()));
                    }
                }
            }
        };
        Ok(Logic { id, contract, pre })
    }

    /// Run one message in a fresh instance. Messages never share a store: a
    /// trap or timeout poisons nothing but its own message.
    pub async fn run(
        &self,
        logic: &Logic,
        backends: Arc<Backends>,
        message: &Message,
    ) -> Result<Handled, RunError> {
        self.run_as(logic, &logic.id, backends, message).await
    }

    /// [`run`](Self::run), the logic told it is version `version` (a
    /// replay gives both versions it compares the same name, so that what
    /// the logic derives from its name cannot differ).
    pub async fn run_as(
        &self,
        logic: &Logic,
        version: &str,
        backends: Arc<Backends>,
        message: &Message,
    ) -> Result<Handled, RunError> {
        let deadline = self.limits.deadline;
        let wasi = sandbox_wasi(&backends);
        let mut store = Store::new(
            &self.engine,
            Session {
                wasi,
                table: ResourceTable::new(),
                limiter: MemoryLimiter {
                    limit: self.limits.memory_bytes,
                },
                redactor: crate::redact::Redactor::new(backends.credentials.clone()),
                backends,
                logic_version: version.to_string(),
                deadline: std::time::Instant::now() + deadline,
                sends: 0,
            },
        );
        store.limiter(|session| &mut session.limiter);
        // Every tick the guest yields to tokio, so a busy guest never holds a
        // worker thread (other messages' leases and receives keep running);
        // past the deadline it is interrupted.
        let started = std::time::Instant::now();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if started.elapsed() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });

        let run = async {
            match &logic.pre {
                Pre::Current(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    instance.call_handle(&mut store, message).await
                }
                Pre::Previous(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    let message = contract::previous::message(message)?;
                    let handled = instance.call_handle(&mut store, &message).await?;
                    contract::previous::handled(handled)
                }
            }
        };
        // The epoch deadline stops guest code; this stops a hung host call.
        match tokio::time::timeout(deadline + EPOCH_TICK * 2, run).await {
            Ok(Ok(handled)) => Ok(handled),
            Ok(Err(error)) => Err(classify(error, deadline)),
            Err(_) => Err(RunError::Timeout(deadline)),
        }
    }
}

fn classify(error: wasmtime::Error, deadline: Duration) -> RunError {
    if let Some(exceeded) = error.downcast_ref::<MemoryLimitExceeded>() {
        return RunError::MemoryExhausted(exceeded.to_string());
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => RunError::Timeout(deadline),
        _ => RunError::Trap(format!("{error:#}")),
    }
}

/// WASI with nothing ambient: no files, environment, arguments, stdio or
/// network. Clock and randomness are the system's, or deterministic when the
/// backends carry a manual clock (the mock host).
fn sandbox_wasi(backends: &Backends) -> wasmtime_wasi::WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    builder
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    if let Some(clock) = &backends.clock {
        builder
            .wall_clock(clock.clone())
            .monotonic_clock(clock.clone())
            .secure_random(wasmtime_wasi::Deterministic::new(vec![7, 13, 42, 99]))
            .insecure_random(wasmtime_wasi::Deterministic::new(vec![3, 5, 8, 21]))
            .insecure_random_seed(0x0e17_a5e3);
    }
    use crate::calls::tape::{ReplayedClock, ReplayedRandom, SystemClock, TapedClock, TapedRandom};
    if let Some(replayer) = &backends.observer.replay {
        builder
            .wall_clock(ReplayedClock {
                replayer: replayer.clone(),
                otherwise_ms: backends.clock.as_ref().map_or(0, ManualClock::now_ms),
            })
            .secure_random(ReplayedRandom(replayer.clone()));
    } else if let Some(tape) = &backends.observer.tape {
        let tape = tape.clone();
        match &backends.clock {
            Some(clock) => builder.wall_clock(TapedClock {
                inner: clock.clone(),
                tape: tape.clone(),
            }),
            None => builder.wall_clock(TapedClock {
                inner: SystemClock,
                tape: tape.clone(),
            }),
        };
        if backends.clock.is_none() {
            builder.secure_random(TapedRandom(tape));
        }
    }
    builder.build()
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is gone.
struct EpochTicker;

impl EpochTicker {
    fn start(engine: &wasmtime::Engine) -> Self {
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("envmgr-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .expect("spawning the epoch thread");
        Self
    }
}
