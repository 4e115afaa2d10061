//! What ends, and what must not (docs/operations.md, "Retention"; docs/guides/rotate-credentials.md;
//! docs/performance.md, "What grows, and its bound"): `logic gc` and
//! `serve`'s hourly pass remove versions nothing needs and nothing else
//! (through the binary, on both backends); a removal and an activation
//! never both land; a removal a crash cut short is finished; heartbeats of
//! gone hosts expire; a recording's handler is kept while the recording
//! is; the native-code cache keeps what the pointer names; per-version
//! figures follow the pointer. In-process parts run on the host's own
//! `Registry`, `Recordings`, `NativeCache` and `Versions`.

#[path = "retention/helpers.rs"]
mod helpers;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use envmgr::capabilities::dynamodb::AttributeValue;
use envmgr::capabilities::dynamodb::local::LocalTables;
use envmgr::config::LogicSettings;
use envmgr::logic::cache::NativeCache;
use envmgr::logic::registry::{Conflict, Removed};
use envmgr::logic::retention::{Kept, Rules, collect};
use envmgr::logic::serving::{Ending, Versions};
use envmgr::logic::{activated, rolled_back, short};
use envmgr::record::store::Recordings;
use envmgr::support::hex_sha256;
use envmgr_tests::stack::{Backend, Options, Stack, eventually, terminate};
use envmgr_tests::{builtin_id as builtin, scratch, shared_logic, variant};

use helpers::{chunks_stay, gc_between, installed, registry_on, stored};

const BINARY: &str = env!("CARGO_BIN_EXE_envmgr-under-test");
const WAIT: Duration = Duration::from_secs(90);
const HOUR_MS: u64 = 3_600_000;

/// Through the binary: of three installed versions, the one nothing names
/// goes — on `serve`'s own pass — and the active one and the one in the
/// rollback history stay; `--dry-run` removes nothing.
async fn only_what_nothing_needs_is_removed(backend: Backend) {
    let stack = Stack::new(
        "gc",
        BINARY,
        Options {
            backend,
            extra_config:
                "[logic]\npoll_ms = 200\nkeep_installed_hours = 0\ngc_every_seconds = 1\n".into(),
            ..Options::default()
        },
    );
    let mut ids = Vec::new();
    for tag in ["first", "second", "unused"] {
        let bytes = variant(envmgr::BUILTIN_LOGIC, tag);
        ids.push(hex_sha256(&bytes));
        let path = stack.dir.join(format!("{tag}.wasm"));
        std::fs::write(&path, &bytes).unwrap();
        stack.run_ok(&[
            "logic",
            "install",
            &path.display().to_string(),
            "--tag",
            tag,
        ]);
    }
    stack.run_ok(&["logic", "activate", "first"]);
    stack.run_ok(&["logic", "activate", "second"]);

    let planned = stack.run_ok(&["logic", "gc", "--dry-run"]);
    for expected in [
        format!("kept {}  active", short(&ids[1])),
        format!("kept {}  in the rollback history", short(&ids[0])),
        format!("kept {}  builtin", short(&builtin())),
        format!("would remove {}", short(&ids[2])),
    ] {
        assert!(planned.contains(&expected), "{expected}:\n{planned}");
    }
    assert!(stack.run_ok(&["logic", "list"]).contains("unused"));

    let mut daemon = stack.serve();
    eventually("serve's pass removes the unused version", WAIT, || async {
        stack.logs().contains("logic retention ran")
            && !stack.run_ok(&["logic", "list"]).contains("unused")
    })
    .await;
    let listed = stack.run_ok(&["logic", "list"]);
    assert!(
        listed.contains("first") && listed.contains("second"),
        "{listed}"
    );
    let registry = stack.registry().await;
    assert!(
        registry.component(&ids[2]).await.is_err(),
        "its chunks stay"
    );
    assert!(registry.component(&ids[0]).await.is_ok());
    let (refused, said) = stack.run(&["logic", "activate", "unused"]);
    assert!(!refused, "a removed version activated: {said}");
    // The daemon still serves the active version.
    assert!(terminate(&mut daemon).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn only_what_nothing_needs_is_removed_local() {
    only_what_nothing_needs_is_removed(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn only_what_nothing_needs_is_removed_aws() {
    only_what_nothing_needs_is_removed(Backend::Aws).await;
}

#[tokio::test]
async fn a_removal_and_an_activation_never_both_land() {
    let tables = Arc::new(LocalTables::in_memory(&["logic"]).unwrap());
    let registry = registry_on(tables);
    // The removal reads the pointer (none), the activation lands first.
    let taken = stored(&registry, "taken", 1).await;
    let version = &installed(&registry, &taken).await;
    let first = activated(None, &builtin(), &taken, None, 2).unwrap();
    registry.swap(None, &first).await.unwrap();
    let removal = registry.remove(version, None).await.unwrap_err();
    assert!(removal.is::<Conflict>(), "{removal:#}");
    assert!(registry.component(&taken).await.is_ok());

    // The removal lands first: the activation naming it is refused.
    let gone = stored(&registry, "gone", 1).await;
    let version = &installed(&registry, &gone).await;
    registry.remove(version, Some(&first)).await.unwrap();
    let next = activated(Some(&first), &builtin(), &gone, Some(10), 3).unwrap();
    let activation = registry.swap(Some(&first), &next).await.unwrap_err();
    assert!(activation.is::<Removed>(), "{activation:#}");
    assert_eq!(registry.pointer().await.unwrap(), Some(first));
}

#[tokio::test]
async fn a_removal_cut_short_is_finished_by_the_next_pass() {
    let tables = Arc::new(LocalTables::in_memory(&["logic"]).unwrap());
    let id = stored(&registry_on(tables.clone()), "cut-short", 1).await;
    let version = installed(&registry_on(tables.clone()), &id).await;
    let crashing = registry_on(chunks_stay(tables.clone()));
    assert!(crashing.remove(&version, None).await.is_err());
    let chunks = |tables: &LocalTables| {
        tables
            .scan("logic")
            .unwrap()
            .iter()
            .filter(|item| format!("{item:?}").contains("COMPONENT#"))
            .count()
    };
    assert!(chunks(&tables) > 0, "the crash left the chunks");
    let registry = registry_on(tables.clone());
    assert!(
        !registry
            .versions()
            .await
            .unwrap()
            .iter()
            .any(|v| v.id == id)
    );
    assert_eq!(registry.finish_removals().await.unwrap(), 1);
    assert_eq!(chunks(&tables), 0);
    assert_eq!(
        registry.finish_removals().await.unwrap(),
        0,
        "the marker went"
    );
}

#[tokio::test]
async fn heartbeats_of_gone_hosts_expire_and_live_ones_stay() {
    let tables = Arc::new(LocalTables::in_memory(&["logic"]).unwrap());
    let registry = registry_on(tables.clone());
    let now = 100 * HOUR_MS;
    registry
        .beat("crashed", &["0.3.0"], now - 2 * HOUR_MS)
        .await
        .unwrap();
    registry
        .beat("live", &["0.3.0"], now - 1_000)
        .await
        .unwrap();
    let hosts: Vec<String> = registry
        .hosts(now)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.host)
        .collect();
    assert_eq!(hosts, ["live"], "an expired heartbeat is not read");
    assert_eq!(registry.forget_gone_hosts(now).await.unwrap(), 1);
    let left: Vec<String> = tables
        .scan("logic")
        .unwrap()
        .iter()
        .filter_map(|item| envmgr::capabilities::dynamodb::fields::text(item, "sk"))
        .collect();
    assert_eq!(left, ["live"]);
}

#[tokio::test]
async fn a_recordings_handler_is_kept_as_long_as_the_recording() {
    let logic = Arc::new(LocalTables::in_memory(&["logic"]).unwrap());
    let registry = registry_on(logic);
    let settings = envmgr::config::Record::default();
    let retention_ms = settings.retention_hours * HOUR_MS;
    let recordings = Recordings::new(
        Arc::new(LocalTables::in_memory(&["recordings"]).unwrap()),
        None,
        settings,
    );
    let handler = stored(&registry, "handler", 0).await;
    let unused = stored(&registry, "unused", 0).await;
    let handled_at = 10 * HOUR_MS;
    recordings.mark_handler(&handler, handled_at).await.unwrap();

    // The last recording the mark covers is made just before the next mark
    // would be due, and kept for the retention from then.
    let last_kept = handled_at + HOUR_MS - 1 + retention_ms - 1;
    let pass = collect(
        &registry,
        &recordings,
        None,
        Duration::ZERO,
        last_kept,
        true,
    )
    .await
    .unwrap();
    assert!(
        pass.kept
            .iter()
            .any(|(v, why)| v.id == handler && *why == Kept::HandledRecordings)
    );
    assert_eq!(
        pass.removed
            .iter()
            .map(|v| v.id.clone())
            .collect::<Vec<_>>(),
        [unused]
    );

    let pass = collect(
        &registry,
        &recordings,
        None,
        Duration::ZERO,
        last_kept + HOUR_MS,
        false,
    )
    .await
    .unwrap();
    assert!(pass.removed.iter().any(|v| v.id == handler), "{pass:?}");
    assert_eq!(
        registry.versions().await.unwrap().len(),
        1,
        "the builtin one is left"
    );
}

#[test]
fn each_rule_keeps_its_versions_and_nothing_else() {
    let pointer = {
        let p = activated(None, "builtin", "old", None, 1).unwrap();
        let p = activated(Some(&p), "builtin", "active", None, 2).unwrap();
        let mut p = activated(Some(&p), "builtin", "canary", Some(10), 3).unwrap();
        p.shadow = Some("shadow".into());
        p
    };
    let handlers = BTreeSet::from(["handler".to_string()]);
    let rules = Rules {
        builtin: "builtin",
        pointer: Some(&pointer),
        handlers: Some(&handlers),
        keep_installed_ms: HOUR_MS,
        now_ms: 10 * HOUR_MS,
    };
    let version = |id: &str, installed_at_ms: u64| envmgr::logic::VersionInfo {
        id: id.into(),
        tag: None,
        size: 1,
        installed_at_ms,
        contract: None,
    };
    for (id, kept) in [
        ("builtin", Some(Kept::Builtin)),
        ("active", Some(Kept::Active)),
        ("canary", Some(Kept::Canary)),
        ("shadow", Some(Kept::Shadow)),
        ("old", Some(Kept::RollbackHistory)),
        ("handler", Some(Kept::HandledRecordings)),
        ("other", None),
    ] {
        assert_eq!(rules.keeps(&version(id, 0)), kept, "{id}");
    }
    assert_eq!(
        rules.keeps(&version("fresh", 9 * HOUR_MS + 1)),
        Some(Kept::InstalledLately)
    );
    assert_eq!(rules.keeps(&version("fresh", 9 * HOUR_MS)), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn native_code_is_kept_for_what_the_pointer_names_only() {
    let dir = scratch("native-prune");
    let cache = NativeCache::new(dir.clone(), shared_logic().0);
    let mut ids = Vec::new();
    for label in ["named", "unnamed"] {
        let component = variant(envmgr::BUILTIN_LOGIC, label);
        ids.push(hex_sha256(&component));
        cache.compile(component).await.unwrap();
    }
    let name_of = |id: &str| {
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with(id))
            .unwrap()
    };
    let named_file = name_of(&ids[0]);
    // Another engine key (an upgrade), a crash's temporary file, one being
    // written now, and a file that is not the cache's.
    let other_key = named_file.replace(".cwasm", "").replace('-', "-old") + ".cwasm";
    std::fs::write(dir.join(&other_key), b"old").unwrap();
    let abandoned = named_file.replace(".cwasm", ".tmp41");
    std::fs::write(dir.join(&abandoned), b"torn").unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(3_600);
    std::fs::File::options()
        .write(true)
        .open(dir.join(&abandoned))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let writing = named_file.replace(".cwasm", ".tmp42");
    std::fs::write(dir.join(&writing), b"half").unwrap();
    std::fs::write(dir.join("README"), b"mine").unwrap();

    let pruned = cache
        .prune(&BTreeSet::from([ids[0].clone()]))
        .await
        .unwrap();
    assert_eq!(pruned.files, 3, "{pruned:?}");
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut expected = vec![named_file, writing, "README".to_string()];
    expected.sort();
    assert_eq!(left, expected);
    assert!(cache.load(&ids[0]).await.is_some());
    assert!(cache.load(&ids[1]).await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn per_version_figures_follow_the_pointer() {
    let tables = Arc::new(LocalTables::in_memory(&["logic"]).unwrap());
    let registry = registry_on(tables.clone());
    let canary = stored(&registry, "figures-canary", 1).await;
    let pointer = activated(None, &builtin(), &canary, Some(50), 1).unwrap();
    registry.swap(None, &pointer).await.unwrap();
    let versions = Versions::follow(
        registry_on(tables),
        NativeCache::new(scratch("figures"), shared_logic().0),
        LogicSettings::default(),
    )
    .await
    .unwrap();
    versions.record(&canary, Ending::Done);
    versions.record(&builtin(), Ending::Done);
    envmgr::metrics::shadow_run(short(&canary), "identical");
    assert!(versions.status().versions.contains_key(&canary));
    let scrape = envmgr::metrics::Scrape::default().encode();
    assert!(
        scrape.contains(&format!("version=\"{}\"", short(&canary))),
        "{scrape}"
    );

    // The canary is dropped: nothing names it any more. Its last counts
    // stay for scrapes a while (a rolled-back canary's failures), then go.
    let back = rolled_back(&pointer, "rollback", 2).unwrap();
    registry.swap(Some(&pointer), &back).await.unwrap();
    versions.refresh().await.unwrap();
    assert!(versions.status().versions.contains_key(&canary));
    versions.forget_unnamed(Duration::ZERO);
    let status = versions.status();
    assert!(
        !status.versions.contains_key(&canary),
        "{:?}",
        status.versions
    );
    assert!(status.versions.contains_key(&builtin()));
    let scrape = envmgr::metrics::Scrape::default().encode();
    assert!(
        !scrape.contains(&format!("version=\"{}\"", short(&canary))),
        "{scrape}"
    );
}

/// A reinstall of a version `logic gc` is removing: the version item goes
/// back only with every chunk present, and chunks go only while it is
/// absent, so the version is whole or gone, never an item without chunks.
#[tokio::test]
async fn a_reinstall_racing_a_removal_leaves_the_version_whole() {
    let tables = Arc::new(LocalTables::in_memory(&["logic"]).unwrap());
    let registry = registry_on(tables.clone());
    let bytes = variant(envmgr::BUILTIN_LOGIC, "reinstalled");
    let id = hex_sha256(&bytes);
    registry.store(&id, None, &bytes, "0.3.0", 1).await.unwrap();
    let version = installed(&registry, &id).await;
    // The removal is cut short after its first step; the version is
    // installed again; the next pass finishes "its" removal.
    let crashing = registry_on(chunks_stay(tables.clone()));
    assert!(crashing.remove(&version, None).await.is_err());
    registry.store(&id, None, &bytes, "0.3.0", 2).await.unwrap();
    assert_eq!(registry.finish_removals().await.unwrap(), 1);
    assert_eq!(registry.component(&id).await.unwrap(), bytes, "chunks lost");

    // A pass deletes the chunks between the install's chunks and its
    // version item: the install writes them again.
    let armed = Arc::new(AtomicBool::new(false));
    let registry = registry_on(gc_between(tables.clone(), armed.clone()));
    let version = installed(&registry, &id).await;
    registry.remove(&version, None).await.unwrap();
    armed.store(true, Ordering::SeqCst);
    registry.store(&id, None, &bytes, "0.3.0", 3).await.unwrap();
    assert!(!armed.load(Ordering::SeqCst), "the race was run");
    assert_eq!(registry.component(&id).await.unwrap(), bytes);
}

#[tokio::test]
async fn a_version_both_canary_and_shadow_is_checked_once() {
    let registry = registry_on(Arc::new(LocalTables::in_memory(&["logic"]).unwrap()));
    let both = stored(&registry, "both", 1).await;
    let mut next = activated(None, &builtin(), &both, Some(20), 1).unwrap();
    next.shadow = Some(both.clone());
    registry.swap(None, &next).await.unwrap();
    assert_eq!(registry.pointer().await.unwrap(), Some(next));
}

#[tokio::test]
async fn a_removal_judged_before_a_reinstall_does_not_remove_it() {
    let registry = registry_on(Arc::new(LocalTables::in_memory(&["logic"]).unwrap()));
    let bytes = variant(envmgr::BUILTIN_LOGIC, "judged-before");
    let id = hex_sha256(&bytes);
    registry.store(&id, None, &bytes, "0.3.0", 1).await.unwrap();
    let judged = &installed(&registry, &id).await;
    registry.store(&id, None, &bytes, "0.3.0", 2).await.unwrap();
    let removal = registry.remove(judged, None).await.unwrap_err();
    assert!(removal.is::<Conflict>(), "{removal:#}");
    assert_eq!(registry.component(&id).await.unwrap(), bytes);
}

/// A deployment upgraded to handler marks keeps recordings that no mark
/// covers: until the last of them is past the retention, every version
/// is kept; a new deployment's marks cover everything from the start.
#[tokio::test]
async fn recordings_older_than_the_marks_keep_every_version() {
    let registry = registry_on(Arc::new(LocalTables::in_memory(&["logic"]).unwrap()));
    let settings = envmgr::config::Record::default();
    let retention_ms = settings.retention_hours * HOUR_MS;
    let tables = Arc::new(LocalTables::in_memory(&["recordings"]).unwrap());
    let recordings = Recordings::new(tables.clone(), None, settings);
    let unused = stored(&registry, "unmarked", 0).await;
    let fresh = collect(
        &registry,
        &recordings,
        None,
        Duration::ZERO,
        10 * HOUR_MS,
        true,
    )
    .await
    .unwrap();
    assert!(
        fresh.removed.iter().any(|v| v.id == unused),
        "no recordings: nothing unknown"
    );

    // A recording an older build stored at hour 10, then marks begin.
    let recorded_at = 10 * HOUR_MS + 5;
    tables
        .put(
            "recordings",
            vec![
                ("pk".into(), AttributeValue::S("REC#00000010".into())),
                (
                    "sk".into(),
                    AttributeValue::S(format!("{recorded_at:013}#m#1#000")),
                ),
            ],
        )
        .unwrap();
    recordings.marks_begin(11 * HOUR_MS).await.unwrap();
    recordings.marks_begin(12 * HOUR_MS).await.unwrap();
    let pass = collect(
        &registry,
        &recordings,
        None,
        Duration::ZERO,
        20 * HOUR_MS,
        true,
    )
    .await
    .unwrap();
    assert!(pass.removed.is_empty(), "{pass:?}");
    assert!(
        pass.kept
            .iter()
            .any(|(v, why)| v.id == unused && *why == Kept::UnmarkedRecordings)
    );
    // Past its retention (its hour whole), the marks tell everything.
    let later = recorded_at + retention_ms + 2 * HOUR_MS;
    let pass = collect(&registry, &recordings, None, Duration::ZERO, later, true)
        .await
        .unwrap();
    assert!(pass.removed.iter().any(|v| v.id == unused), "{pass:?}");
}
