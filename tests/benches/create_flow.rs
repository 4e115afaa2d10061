//! The create flow natively (the guest crate through its capability trait)
//! and as the component in the engine, against the same backends (the mock
//! host's: the local ones over a database in memory, so both figures
//! include their SQLite work), and the difference: what the sandbox costs
//! per message.
//!
//! `cargo bench -p envmgr-tests --bench create_flow`
//!
//! Both paths handle a redelivery of one pull-request event: the flow a
//! redelivery runs (2 app reads, auth, the record and lease read, the lease
//! taken and released; no GitHub, KMS or runtime call: everything is on the
//! record). Neither records a transcript. After criterion's figures it
//! prints medians of its own interleaved run of both paths and their
//! difference, and the floor: a component of the same world that returns
//! at once (the chaos guest), instantiated and dropped the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use envmgr::Message;
use envmgr::boundary::Backends;
use envmgr::calls::Observer;
use envmgr::mock::MockHost;
use envmgr_tests::native::Native;
use envmgr_tests::*;

struct Setup {
    host: MockHost,
    /// The host's backends without transcript or faults.
    backends: Arc<Backends>,
    message: Message,
    runtime: tokio::runtime::Runtime,
}

fn setup() -> Setup {
    let host = seeded_host();
    set_secret(&host, APP_ID, "global", "DATABASE_URL", "postgres://db");
    set_secret(&host, APP_ID, "preview", "API_KEY", "key-123");
    let backends = Arc::new(Backends {
        observer: Observer::default(),
        ..(**host.backends()).clone()
    });
    let body = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z");
    let message = host.message("probot", &body);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime");
    let setup = Setup {
        host,
        backends,
        message,
        runtime,
    };
    // First delivery creates everything; the measured ones are redeliveries.
    assert!(component_once(&setup).is_ok());
    setup
}

fn native_once(setup: &Setup, message: &envmgr_guest::Message) {
    let mut caps = Native {
        backends: &setup.backends,
        now_ms: setup.host.clock.now_ms(),
    };
    let outcome = envmgr_guest::handle(&mut caps, message);
    assert!(
        matches!(outcome, Ok(envmgr_guest::Outcome::Done(_))),
        "{outcome:?}"
    );
}

fn component_once(setup: &Setup) -> Result<(), String> {
    let run = setup
        .host
        .engine()
        .run(setup.host.logic(), setup.backends.clone(), &setup.message);
    match setup.runtime.block_on(run) {
        Ok(Ok(envmgr::Outcome::Done(_))) => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

fn create_flow(c: &mut Criterion) {
    let setup = setup();
    let guest_message = guest_message(&setup.message);
    let mut group = c.benchmark_group("create_flow");
    group.bench_function("native", |b| b.iter(|| native_once(&setup, &guest_message)));
    group.bench_function("component", |b| {
        b.iter(|| component_once(&setup).expect("component run"))
    });
    group.finish();

    // The fixed cost: a message rejected at once (instantiate, one call
    // with no host calls, tear down) against the same natively.
    let bad = setup.host.message("api", "{\"kind\": 1}");
    let bad_guest = envmgr_tests::guest_message(&bad);
    let mut group = c.benchmark_group("rejected_message");
    group.bench_function("native", |b| {
        b.iter(|| {
            let mut caps = Native {
                backends: &setup.backends,
                now_ms: 0,
            };
            envmgr_guest::handle(&mut caps, &bad_guest).expect_err("bad input")
        })
    });
    group.bench_function("component", |b| {
        b.iter(|| {
            let run = setup
                .host
                .engine()
                .run(setup.host.logic(), setup.backends.clone(), &bad);
            setup
                .runtime
                .block_on(run)
                .expect("runs")
                .expect_err("bad input")
        })
    });
    group.finish();
}

/// Interleaved runs of both paths, so drift hits both alike; medians.
fn overhead_summary() {
    let setup = setup();
    let guest_message = guest_message(&setup.message);
    let rounds = 3_000;
    let (mut native, mut component) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..200 {
        native_once(&setup, &guest_message);
        component_once(&setup).expect("component run");
    }
    for _ in 0..rounds {
        let started = Instant::now();
        native_once(&setup, &guest_message);
        native.push(started.elapsed());
        let started = Instant::now();
        component_once(&setup).expect("component run");
        component.push(started.elapsed());
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (n, c) = (median(&mut native), median(&mut component));
    let floor = floor(&setup);
    println!(
        "create_flow medians over {rounds} interleaved runs: native {:.1} µs, component {:.1} µs, \
         sandbox overhead {:.1} µs per message; floor (a component that returns at once) {:.1} µs",
        n.as_secs_f64() * 1e6,
        c.as_secs_f64() * 1e6,
        (c.as_secs_f64() - n.as_secs_f64()) * 1e6,
        floor.as_secs_f64() * 1e6
    );
}

/// The sandbox's least cost per message: a component of the same world
/// that calls nothing and returns at once, in a store of its own.
fn floor(setup: &Setup) -> Duration {
    let logic = setup
        .host
        .engine()
        .load(envmgr_tests::CHAOS_LOGIC)
        .expect("the chaos guest loads");
    let message = setup.host.message("api", "noop");
    let once = || {
        let run = setup
            .host
            .engine()
            .run(&logic, setup.backends.clone(), &message);
        match setup.runtime.block_on(run) {
            Ok(Ok(envmgr::Outcome::Done(_))) => {}
            other => panic!("{other:?}"),
        }
    };
    for _ in 0..200 {
        once();
    }
    let mut runs: Vec<Duration> = (0..3_000)
        .map(|_| {
            let started = Instant::now();
            once();
            started.elapsed()
        })
        .collect();
    runs.sort();
    runs[runs.len() / 2]
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = create_flow
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    overhead_summary();
}
