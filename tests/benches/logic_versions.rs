//! What activating a logic version costs a running host.
//!
//! `cargo bench -p envmgr-tests --bench logic_versions`
//!
//! - `compile`: compiling the builtin component and linking it against the
//!   contract (what a host without cached native code does);
//! - `load_precompiled`: the same from its native code in memory;
//! - `cache_load`: from the cache file (read, checksum, deserialize, link);
//! - `swap`: a running host's whole swap after the pointer moved, on the
//!   local backend with the native code cached — read the pointer, load
//!   the version, swap (what `logic.poll_ms` adds to, at most).

use std::sync::Arc;

use criterion::{Criterion, criterion_group};
use envmgr::config::{LogicSettings, Settings};
use envmgr::engine::{Engine, Limits};
use envmgr::logic::cache::NativeCache;
use envmgr::logic::serving::Versions;
use envmgr::logic::{activated, rolled_back};
use envmgr::platform::Platform;
use envmgr::support::hex_sha256;
use envmgr_tests::variant;

fn benches(c: &mut Criterion) {
    let engine = Arc::new(Engine::new(Limits::default()).expect("engine"));
    let component = envmgr::BUILTIN_LOGIC;
    let id = hex_sha256(component);
    let artifact = engine.precompile(component).expect("precompile");

    let mut group = c.benchmark_group("logic_versions");
    group.sample_size(10);
    group.bench_function("compile", |b| {
        b.iter(|| engine.load(component).expect("compile"))
    });
    group.bench_function("load_precompiled", |b| {
        // SAFETY: made by this engine above.
        b.iter(|| unsafe { engine.load_precompiled(&id, &artifact) }.expect("load"))
    });

    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    let dir = std::env::temp_dir().join(format!("envmgr-bench-{}", std::process::id()));
    let cache = NativeCache::new(dir.join("cache"), engine.clone());
    runtime
        .block_on(cache.compile(component.to_vec()))
        .expect("cache the builtin");
    group.bench_function("cache_load", |b| {
        b.iter(|| runtime.block_on(cache.load(&id)).expect("cached"))
    });

    // A host following the pointer in a local database; v2 installed and
    // cached; each iteration moves the pointer and lets the host swap.
    let settings = Settings::load(
        None,
        [(
            "ENVMGR__LOCAL__DATA_DIR".to_string(),
            dir.join("data").display().to_string(),
        )],
    )
    .expect("settings");
    let v2 = variant(component, "bench");
    let v2_id = hex_sha256(&v2);
    let (registry, versions) = runtime.block_on(async {
        let platform = Platform::connect(&settings).await.expect("local backend");
        let registry = platform.registry();
        registry
            .store(&v2_id, None, &v2, envmgr::contract::CURRENT, 0)
            .await
            .expect("store v2");
        let cache = NativeCache::new(dir.join("cache"), engine.clone());
        cache.compile(v2.clone()).await.expect("cache v2");
        let versions = Versions::follow(registry.clone(), cache, LogicSettings::default())
            .await
            .expect("follow");
        (registry, versions)
    });
    group.bench_function("swap", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let current = registry.pointer().await.expect("pointer");
                let next = match &current {
                    Some(p) if p.active == v2_id => rolled_back(p, "bench", 0).expect("back"),
                    _ => activated(current.as_ref(), registry.builtin_id(), &v2_id, None, 0)
                        .expect("activate"),
                };
                registry.swap(current.as_ref(), &next).await.expect("swap");
                versions.refresh().await.expect("refresh");
                assert_eq!(versions.current().active.id, next.active);
            })
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(logic_versions, benches);

fn main() {
    logic_versions();
    Criterion::default().configure_from_args().final_summary();
}
