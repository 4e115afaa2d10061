//! The rules of logic versions that no single daemon run shows (docs/reference/contract.md,
//! "Logic versions"): the pointer is compare-and-set under concurrent
//! changes (on both backends), its history is capped, a host never swaps
//! back to an older revision, cached native code is checked before it runs,
//! and the canary judge (per-message stickiness, retryable failures left
//! out, `canary_margin`). In-process, on the host's own `Registry`,
//! `NativeCache` and `Versions`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use envmgr::capabilities::CapResult;
use envmgr::capabilities::dynamodb::local::LocalTables;
use envmgr::capabilities::dynamodb::{
    Item, Page, QueryRequest, Tables, UpdateItem, Write, WriteError,
};
use envmgr::config::LogicSettings;
use envmgr::logic::cache::NativeCache;
use envmgr::logic::registry::{Conflict, Registry};
use envmgr::logic::serving::{Ending, Versions};
use envmgr::logic::{Pointer, activated, rolled_back};
use envmgr::support::hex_sha256;
use envmgr_tests::stack::{Backend, Options, Stack};
use envmgr_tests::{builtin_id as builtin, scratch, shared_logic, variant};

const BINARY: &str = env!("CARGO_BIN_EXE_envmgr-under-test");

/// Every change reads the pointer, then writes it back only if nobody
/// moved it meanwhile: of eight hosts or operators changing it at once
/// from the same revision, one wins and seven are told.
async fn the_pointer_is_compare_and_set_under_concurrent_changes(backend: Backend) {
    let stack = Stack::new(
        "pointer-cas",
        BINARY,
        Options {
            backend,
            ..Options::default()
        },
    );
    let registry = Arc::new(stack.registry().await);
    let builtin = builtin();
    // A swap names installed versions only (`logic gc` may remove others).
    for name in (0..4)
        .map(|i| format!("first-{i}"))
        .chain((0..8).map(|i| format!("second-{i}")))
    {
        registry
            .store(&name, None, name.as_bytes(), "0.3.0", 1)
            .await
            .unwrap();
    }
    // The first activation is conditional on there being no pointer yet.
    let firsts = (0..4).map(|i| {
        let registry = registry.clone();
        let builtin = builtin.clone();
        tokio::spawn(async move {
            let next = activated(None, &builtin, &format!("first-{i}"), None, 1).unwrap();
            registry.swap(None, &next).await
        })
    });
    let won = futures_settle(firsts).await;
    assert_eq!(won, 1, "one first activation");
    let current = registry.pointer().await.unwrap().expect("a pointer");
    assert_eq!(current.revision, 1);

    let changes = (0..8).map(|i| {
        let (registry, current) = (registry.clone(), current.clone());
        let builtin = builtin.clone();
        tokio::spawn(async move {
            let next =
                activated(Some(&current), &builtin, &format!("second-{i}"), None, 2).unwrap();
            registry.swap(Some(&current), &next).await
        })
    });
    assert_eq!(
        futures_settle(changes).await,
        1,
        "one change from revision 1"
    );
    let after = registry.pointer().await.unwrap().unwrap();
    assert_eq!(after.revision, 2);
    assert!(after.active.starts_with("second-"), "{after:?}");
    assert_eq!(after.history, [builtin, current.active], "nothing lost");
}

/// Await every swap: how many succeeded; every other one must be a
/// `Conflict`.
async fn futures_settle(
    swaps: impl Iterator<Item = tokio::task::JoinHandle<anyhow::Result<()>>>,
) -> usize {
    let mut won = 0;
    for swap in swaps {
        match swap.await.unwrap() {
            Ok(()) => won += 1,
            Err(e) => assert!(e.is::<Conflict>(), "{e:#}"),
        }
    }
    won
}

envmgr_tests::on_both_backends!(the_pointer_is_compare_and_set_under_concurrent_changes);

#[test]
fn the_pointer_keeps_the_last_fifty_actives() {
    let mut pointer: Option<Pointer> = None;
    for i in 0..60 {
        pointer = Some(activated(pointer.as_ref(), "b", &format!("v{i}"), None, i).unwrap());
    }
    let pointer = pointer.unwrap();
    assert_eq!(pointer.active, "v59");
    // b, v0 … v58 were active before: the oldest ten are gone.
    let expected: Vec<String> = (9..59).map(|i| format!("v{i}")).collect();
    assert_eq!(pointer.history, expected);
    let back = rolled_back(&pointer, "rollback", 61).unwrap();
    assert_eq!(back.active, "v58");
}

/// The host's registry on in-memory tables.
fn registry_on(tables: Arc<dyn Tables>) -> Registry {
    Registry::new(tables, envmgr::BUILTIN_LOGIC)
}

fn memory() -> Arc<LocalTables> {
    Arc::new(LocalTables::in_memory(&["logic"]).unwrap())
}

fn cache(name: &str) -> NativeCache {
    NativeCache::new(scratch(name), shared_logic().0)
}

/// Tables that hold the reads of one partition until told to go on: a
/// load that is slow where the test wants it.
struct Gated {
    tables: Arc<LocalTables>,
    partition: String,
    reached: tokio::sync::Notify,
    open: tokio::sync::watch::Sender<bool>,
}

#[async_trait]
impl Tables for Gated {
    async fn get(&self, table: &str, key: &Item) -> CapResult<Option<Item>> {
        self.tables.get(table, key).await
    }
    async fn query(&self, request: &QueryRequest) -> CapResult<Page> {
        if request.partition == self.partition {
            self.reached.notify_one();
            let _ = self.open.subscribe().wait_for(|open| *open).await;
        }
        self.tables.query(request).await
    }
    async fn transact_write(&self, writes: &[Write]) -> Result<(), WriteError> {
        self.tables.transact_write(writes).await
    }
    async fn update(&self, request: &UpdateItem) -> Result<(), WriteError> {
        self.tables.update(request).await
    }
    async fn scan_all(&self, table: &str) -> CapResult<Vec<Item>> {
        self.tables.scan_all(table).await
    }
}

/// Two refreshes at once (the poll and a rollback): the one that read the
/// older pointer finishes loading last, and must not put it back.
#[tokio::test(flavor = "multi_thread")]
async fn a_host_never_swaps_back_to_an_older_revision() {
    let v2_bytes = variant(envmgr::BUILTIN_LOGIC, "never-back");
    let v2 = hex_sha256(&v2_bytes);
    let gated = Arc::new(Gated {
        tables: memory(),
        partition: format!("COMPONENT#{v2}"),
        reached: tokio::sync::Notify::new(),
        open: tokio::sync::watch::Sender::new(false),
    });
    let registry = registry_on(gated.clone());
    registry
        .store(&v2, None, &v2_bytes, "0.2.0", 1)
        .await
        .unwrap();
    let versions = Versions::follow(
        registry_on(gated.clone()),
        cache("never-back"),
        LogicSettings::default(),
    )
    .await
    .unwrap();
    assert_eq!(versions.current().active.id, builtin());

    // Revision 1 names v2, whose component is held on its way in.
    let first = activated(None, &builtin(), &v2, None, 1).unwrap();
    registry.swap(None, &first).await.unwrap();
    let slow = {
        let versions = versions.clone();
        tokio::spawn(async move { versions.refresh().await })
    };
    gated.reached.notified().await;
    // Meanwhile revision 2 goes back to the builtin version, loaded already.
    let second = rolled_back(&first, "rollback", 2).unwrap();
    registry.swap(Some(&first), &second).await.unwrap();
    versions.refresh().await.unwrap();
    assert_eq!(versions.current().revision, Some(2));
    // Revision 1's load finishes last.
    gated.open.send_replace(true);
    slow.await.unwrap().unwrap();
    let serving = versions.current();
    assert_eq!(serving.revision, Some(2), "went back to revision 1");
    assert_eq!(serving.active.id, builtin());
}

#[tokio::test(flavor = "multi_thread")]
async fn cached_native_code_that_changed_is_compiled_again_not_run() {
    let component = variant(envmgr::BUILTIN_LOGIC, "cache-checksum");
    let id = hex_sha256(&component);
    let dir = scratch("cache-checksum");
    let cache = NativeCache::new(dir.clone(), shared_logic().0);
    cache.compile(component.clone()).await.expect("compiled");
    assert!(cache.load(&id).await.is_some(), "cached");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .expect("the cached file");
    // One bit of the native code flipped, past the checksum (32 bytes) and
    // the object file's headers: wasmtime would load it as it is.
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    assert!(
        cache.load(&id).await.is_none(),
        "corrupt native code loaded"
    );
    // The next load compiles it again and caches it intact.
    let logic = cache
        .load_or_compile(&id, async { Ok(component) })
        .await
        .expect("compiled again");
    assert_eq!(logic.id, id);
    assert!(cache.load(&id).await.is_some(), "cached again");
}

/// A host following a pointer with `v2` as a canary at `percent`.
async fn canary_host(name: &str, percent: u8, policy: LogicSettings) -> (Arc<Versions>, Registry) {
    let tables = memory();
    let registry = registry_on(tables.clone());
    let v2_bytes = variant(envmgr::BUILTIN_LOGIC, "canary");
    let v2 = hex_sha256(&v2_bytes);
    registry
        .store(&v2, None, &v2_bytes, "0.2.0", 1)
        .await
        .unwrap();
    let pointer = activated(None, &builtin(), &v2, Some(percent), 1).unwrap();
    registry.swap(None, &pointer).await.unwrap();
    let versions = Versions::follow(registry_on(tables), cache(name), policy)
        .await
        .unwrap();
    (versions, registry)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_meets_the_same_version_on_every_delivery_and_host() {
    let (one, _) = canary_host("sticky-1", 30, LogicSettings::default()).await;
    let (other, _) = canary_host("sticky-2", 30, LogicSettings::default()).await;
    let canary = one.current().canary.as_ref().unwrap().0.id.clone();
    let ids: Vec<String> = (0..300).map(|i| format!("message-{i:04}")).collect();
    let mut on_canary = 0;
    for id in &ids {
        let first = one.pick(id).id.clone();
        for _ in 0..3 {
            assert_eq!(one.pick(id).id, first, "{id} moved on a redelivery");
        }
        assert_eq!(other.pick(id).id, first, "{id} differs on another host");
        on_canary += usize::from(first == canary);
    }
    // About its share: 30% of 300, give or take.
    assert!((45..=135).contains(&on_canary), "{on_canary} of 300");
}

/// Let the rollback the judge may have started run to its end (the
/// in-memory tables answer at once).
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

async fn has_canary(registry: &Registry) -> bool {
    registry.pointer().await.unwrap().unwrap().canary.is_some()
}

#[tokio::test]
async fn retryable_failures_never_roll_a_canary_back() {
    let policy = LogicSettings {
        canary_window: 20,
        canary_min_messages: 4,
        canary_margin: 0.2,
        ..LogicSettings::default()
    };
    let (versions, registry) = canary_host("retryable", 50, policy).await;
    let (active, canary) = {
        let serving = versions.current();
        (
            serving.active.id.clone(),
            serving.canary.as_ref().unwrap().0.id.clone(),
        )
    };
    for _ in 0..4 {
        versions.record(&active, Ending::Done);
    }
    // A dependency down: every canary message fails retryably, and is put
    // back; so do deferrals and the host's own faults.
    for ending in [Ending::Retryable, Ending::Deferred, Ending::HostFault] {
        for _ in 0..8 {
            versions.record(&canary, ending);
            settle().await;
            assert!(has_canary(&registry).await, "rolled back on {ending:?}");
        }
    }
    // Its own failures do roll it back, counted without the retries.
    versions.record(&canary, Ending::Done);
    versions.record(&canary, Ending::Done);
    versions.record(&canary, Ending::Permanent);
    settle().await;
    assert!(has_canary(&registry).await, "1 of 3 is too few to judge");
    versions.record(&canary, Ending::Trap);
    settle().await;
    let pointer = registry.pointer().await.unwrap().unwrap();
    assert!(pointer.canary.is_none(), "{pointer:?}");
    assert!(
        pointer
            .reason
            .contains("failed 2 of its last 4 messages (50%)"),
        "{}",
        pointer.reason
    );
}

#[tokio::test]
async fn a_canary_is_rolled_back_only_past_the_margin() {
    let policy = LogicSettings {
        canary_window: 20,
        canary_min_messages: 4,
        canary_margin: 0.2,
        ..LogicSettings::default()
    };
    let (versions, registry) = canary_host("margin", 50, policy).await;
    let (active, canary) = {
        let serving = versions.current();
        (
            serving.active.id.clone(),
            serving.canary.as_ref().unwrap().0.id.clone(),
        )
    };
    // The active version fails 1 in 4 (25%).
    for ending in [Ending::Done, Ending::Done, Ending::Done, Ending::Permanent] {
        versions.record(&active, ending);
    }
    // The canary 2 in 5 (40%): worse, but within 20 points.
    for ending in [
        Ending::Done,
        Ending::Done,
        Ending::Done,
        Ending::Permanent,
        Ending::Timeout,
    ] {
        versions.record(&canary, ending);
        settle().await;
        assert!(has_canary(&registry).await, "rolled back within the margin");
    }
    // 3 in 6 (50%): past it.
    versions.record(&canary, Ending::Memory);
    settle().await;
    let pointer = registry.pointer().await.unwrap().unwrap();
    assert!(pointer.canary.is_none(), "{pointer:?}");
    assert!(
        pointer.reason.contains("margin 20 points"),
        "{}",
        pointer.reason
    );
}
