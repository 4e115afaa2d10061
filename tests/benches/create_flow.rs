//! The create flow natively (the guest crate through its capability trait)
//! and as the component in the engine, against the same backends (the mock
//! host's: the local ones over a database in memory, so both figures
//! include their SQLite work), and the difference: what the sandbox costs
//! per message. The paths are `envmgr_tests::yardstick`'s.
//!
//! `cargo bench -p envmgr-tests --bench create_flow`
//!
//! After criterion's figures it prints medians of its own run of the native
//! flow, the component and the floor (a component that returns at once), in
//! alternating blocks, and the two sandbox ratios beside their targets: the
//! component ÷ native, and the floor ÷ native.
//!
//! `ENVMGR_BENCH_LOGIC=/path/to/component.wasm` runs another build of the
//! logic on the component path (a guest built with other linker settings,
//! one lever at a time), against the same native flow.

use std::time::Duration;

use criterion::{Criterion, criterion_group};
use envmgr_tests::native::Native;
use envmgr_tests::yardstick::{Yardstick, against};

/// The component's time over the native flow's, at most.
const COMPONENT_TARGET: f64 = 1.5;
/// The floor's time over the native flow's, at most.
const FLOOR_TARGET: f64 = 0.4;

fn create_flow(c: &mut Criterion) {
    let yardstick = Yardstick::new();
    let mut group = c.benchmark_group("create_flow");
    group.bench_function("native", |b| b.iter(|| yardstick.native_once()));
    group.bench_function("component", |b| {
        b.iter(|| yardstick.component_once().expect("component run"))
    });
    group.finish();

    // The fixed cost: a message rejected at once (instantiate, one call
    // with no host calls, tear down) against the same natively.
    let bad = yardstick.host.message("api", "{\"kind\": 1}");
    let bad_guest = envmgr_tests::guest_message(&bad);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime");
    let mut group = c.benchmark_group("rejected_message");
    group.bench_function("native", |b| {
        b.iter(|| {
            let mut caps = Native {
                backends: &yardstick.backends,
                now_ms: 0,
            };
            envmgr_guest::handle(&mut caps, &bad_guest).expect_err("bad input")
        })
    });
    group.bench_function("component", |b| {
        b.iter(|| {
            let run = yardstick.host.engine().run(
                yardstick.host.logic(),
                yardstick.backends.clone(),
                &bad,
            );
            runtime.block_on(run).expect("runs").expect_err("bad input")
        })
    });
    group.finish();
}

/// Interleaved runs of the three paths; medians and the ratios.
fn summary() {
    let rounds = 3_000;
    let medians = Yardstick::new().medians(rounds);
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let (native, component, floor) = (
        micros(medians.native),
        micros(medians.component),
        micros(medians.floor),
    );
    println!(
        "create_flow medians of {rounds} runs each, in alternating blocks: native {native:.1} µs (the \
         yardstick), component {component:.1} µs, floor (a component that returns at once) \
         {floor:.1} µs; sandbox overhead {:.1} µs per message",
        component - native
    );
    println!("| figure | measured | ratio to the native flow |");
    println!("|---|---|---|");
    println!(
        "| the create flow as the component | {component:.1} µs | {} |",
        against(component / native, COMPONENT_TARGET)
    );
    println!(
        "| the floor: a component that returns at once | {floor:.1} µs | {} |",
        against(floor / native, FLOOR_TARGET)
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = create_flow
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
