//! Recorded traffic replayed against candidates (host/src/record/): in the
//! mock host first (recordings as `serve` makes them, verdicts per
//! candidate), then through the binary on both backends (`serve` records,
//! `logic replay`, `record export --scrub`, `--from DIR`, shadow runs under
//! load applying nothing, the bounded store).

#[path = "replay/e2e.rs"]
mod e2e;
#[path = "replay/helpers.rs"]
mod helpers;
#[path = "replay/identical.rs"]
mod identical;

use std::sync::Arc;
use std::time::Duration;

use envmgr::mock::MockHost;
use envmgr::record::Recording;
use envmgr::record::replay::{Expectations, Tally, Verdict};
use envmgr_tests::*;

use e2e::{
    a_shadow_runs_beside_the_active_version_and_applies_nothing, serve_records_and_replay_compares,
};
use helpers::{MARKER, StuckStore, dropped_so_far, eventually_true, recorded_traffic, replayed};

#[tokio::test]
async fn a_reworded_comment_differs_in_the_comment_only() {
    let (_, recordings) = recorded_traffic().await;
    let verdicts = replayed(REWORDED_LOGIC, &recordings, &Expectations::default()).await;
    let mut differing = 0;
    for (recording, verdict) in recordings.iter().zip(&verdicts) {
        match verdict {
            Verdict::Differs(differences) => {
                differing += 1;
                // The comment's text, and the digest of it the environment
                // keeps to know whether the comment needs an update.
                // (A redelivery finds its comment's text outdated and
                // updates it: a whole `github.update-comment` more.)
                for d in differences {
                    assert!(
                        matches!(
                            d.path.as_str(),
                            "github.create-comment.body"
                                | "github.update-comment.body"
                                | "github.update-comment"
                        ) || d.path.ends_with(".commentDigest.s"),
                        "{}: {} differs",
                        recording.name(),
                        d.path
                    );
                }
                let shown = verdict.explained();
                assert!(shown.contains("environment built from"), "{shown}");
                if differences
                    .iter()
                    .any(|d| d.path == "github.create-comment.body")
                {
                    // The lines that changed, nothing else of the comment.
                    assert!(
                        shown.contains("+ **Shop** · preview environment built from")
                            && shown.contains("- **Shop** · preview environment for")
                            && !shown.contains("| Environment |"),
                        "{shown}"
                    );
                }
            }
            Verdict::Identical { accepted: 0 } => {}
            other => panic!("{}: {}", recording.name(), other.explained()),
        }
    }
    assert!(
        differing >= 2,
        "the pull request's comments differ: {verdicts:?}"
    );

    // Accepted as intended, nothing else remains.
    let expected = Expectations::parse(
        "[[change]]\npath = \"github.*-comment.body\"\npattern = \"environment built from\"\n\
         [[change]]\npath = \"dynamodb.**.commentDigest.s\"\npattern = \".*\"\n",
    )
    .unwrap();
    let accepted = replayed(REWORDED_LOGIC, &recordings, &expected).await;
    assert!(
        accepted
            .iter()
            .all(|v| matches!(v, Verdict::Identical { .. })),
        "{accepted:?}"
    );
}

#[tokio::test]
async fn a_candidate_failing_on_production_requests_fails_exactly_those() {
    let (_, recordings) = recorded_traffic().await;
    let verdicts = replayed(FAULTY_LOGIC, &recordings, &Expectations::default()).await;
    for (recording, verdict) in recordings.iter().zip(&verdicts) {
        let named = recording.message.body.contains(MARKER);
        match verdict {
            Verdict::Fails(outcome) if named => {
                assert!(outcome.contains("permanent failure"), "{outcome}")
            }
            Verdict::Identical { accepted: 0 } if !named => {}
            other => panic!("{}: {}", recording.name(), other.explained()),
        }
    }
    let mut tally = Tally::default();
    verdicts.iter().for_each(|v| tally.add(v));
    assert_eq!((tally.fails, tally.identical), (1, recordings.len() - 1));
}

#[tokio::test]
async fn a_call_the_recording_cannot_answer_makes_the_message_not_replayable() {
    let (_, mut recordings) = recorded_traffic().await;
    // As far as this recording knows, another app's record was read, not
    // this one's: there is a recorded read, but not of what the logic asks.
    let recording = &mut recordings[2];
    let read = recording
        .taped
        .calls
        .iter_mut()
        .find(|c| c.call == "dynamodb.get" && c.request.get().contains("APP#app_shop"))
        .expect("the app record read");
    read.request = serde_json::value::RawValue::from_string(
        read.request.get().replace("APP#app_shop", "APP#app_other"),
    )
    .unwrap();
    let verdicts = replayed(
        envmgr::BUILTIN_LOGIC,
        &recordings[2..3],
        &Expectations::default(),
    )
    .await;
    let Verdict::NotReplayable(calls) = &verdicts[0] else {
        panic!("{verdicts:?}");
    };
    assert!(
        calls.iter().any(|c| c.starts_with("dynamodb.get")),
        "{calls:?}"
    );
}

#[tokio::test]
async fn a_recording_holds_no_secret_or_token_and_scrubbing_keeps_it_replayable() {
    let (host, recordings) = recorded_traffic().await;
    let text = serde_json::to_string(&recordings).unwrap();
    for secret in ["postgres://canary-db-secret", "sk_canary_preview_secret"] {
        assert!(!text.contains(secret), "{secret} recorded");
    }
    for token in host.github.issued_tokens() {
        assert!(!text.contains(&token), "a GitHub token was recorded");
    }
    assert!(text.contains("\"sealed\""), "sealed values appear as such");

    let scrubbed: Vec<Recording> = recordings
        .iter()
        .map(|r| envmgr::record::files::scrubbed(r).unwrap())
        .collect();
    let text = serde_json::to_string(&scrubbed).unwrap();
    for private in [
        "octocat",
        "Add login page",
        "acme/shop",
        "Adds the login page",
    ] {
        assert!(!text.contains(private), "{private} left after --scrub");
    }
    // Scrubbed consistently, it still replays; where the logic kept a
    // digest of a scrubbed name (the redelivery compares one), the run
    // takes another path and says so: never a silent difference.
    let verdicts = replayed(envmgr::BUILTIN_LOGIC, &scrubbed, &Expectations::default()).await;
    let identical = verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Identical { .. }))
        .count();
    assert!(
        verdicts
            .iter()
            .all(|v| matches!(v, Verdict::Identical { .. } | Verdict::NotReplayable(_))),
        "{verdicts:?}"
    );
    assert!(identical >= verdicts.len() - 1, "{verdicts:?}");
}

/// `--scrub` finds a name however the event spells it (the logic
/// lower-cases the repository for its index), the logins an app trusts,
/// and leaves no ciphertext the logic decrypted; the recording still
/// replays identically.
#[tokio::test]
async fn scrubbing_takes_names_in_any_case_trusted_logins_and_ciphertexts() {
    let host = seeded_host();
    seed_canaries_and_trusted_logins(&host);
    let opened = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T12:00:00Z")
        .replace("\"acme/shop\"", "\"Acme/Shop\"")
        .replace("\"acme\"", "\"Acme\"")
        .replace("\"shop\"", "\"Shop\"");
    assert!(opened.contains("Acme/Shop"));
    let (delivery, recording) = host
        .deliver_recorded(&host.message("probot", &opened))
        .await;
    assert!(
        matches!(delivery.result, Ok(Ok(_))),
        "{:?}",
        delivery.result
    );

    let original = serde_json::to_string(&recording).unwrap();
    let ciphertexts = secret_ciphertexts(&host);
    assert_eq!(ciphertexts.len(), 2);
    let decrypted: Vec<String> = recording
        .taped
        .calls
        .iter()
        .filter(|c| c.call == "kms.decrypt")
        .map(|c| {
            c.request()["ciphertext-sha256"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(decrypted.len(), 1, "the preview's secret only");
    for ciphertext in &ciphertexts {
        assert!(
            original.contains(ciphertext),
            "every secret of the app was read"
        );
    }
    assert!(original.contains("trusted-reviewer"));
    assert!(
        original.contains("REPO#acme/shop"),
        "the index key, lower-cased"
    );

    let scrubbed = envmgr::record::files::scrubbed(&recording).unwrap();
    let text = serde_json::to_string(&scrubbed).unwrap();
    for ciphertext in ciphertexts.iter().chain(&decrypted) {
        assert!(
            !text.contains(ciphertext),
            "a ciphertext (or its digest) left after --scrub"
        );
    }
    let lower = text.to_lowercase();
    for private in ["acme", "octocat", "trusted-reviewer", "add login page"] {
        assert!(!lower.contains(private), "{private} left after --scrub");
    }
    // The logic's own keys keep their case (`APP#`, `REPO#`).
    assert!(
        text.contains("APP#app_shop") && text.contains("REPO#"),
        "{text}"
    );

    assert_scrubbed_replays_identically(&scrubbed).await;
}

/// Secrets for the preview and for production, and trusted logins (one of
/// them the logic's key prefix), for --scrub to find.
fn seed_canaries_and_trusted_logins(host: &MockHost) {
    set_secret(
        host,
        APP_ID,
        "preview",
        "API_KEY",
        "sk_canary_preview_secret",
    );
    // Read with the app's secrets, never decrypted for a preview.
    set_secret(
        host,
        APP_ID,
        "production",
        "PROD_ONLY",
        "sk_canary_prod_secret",
    );
    set_app_attributes(
        host,
        vec![(
            "trustedAuthors",
            envmgr::capabilities::dynamodb::AttributeValue::Ss(vec![
                "octocat".to_string(),
                "trusted-reviewer".to_string(),
                // A login that is also the logic's key prefix (`APP#`).
                "app".to_string(),
            ]),
        )],
    );
}

/// The app's secrets' ciphertexts, base64 as a recording shows them.
fn secret_ciphertexts(host: &MockHost) -> Vec<String> {
    use base64::Engine as _;
    host.tables
        .scan("secrets")
        .unwrap()
        .iter()
        .filter_map(|item| {
            item.iter().find_map(|(name, value)| match value {
                envmgr::capabilities::dynamodb::AttributeValue::B(bytes)
                    if name == "ciphertext" =>
                {
                    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
                _ => None,
            })
        })
        .collect()
}

/// It replays identically, and the secret is still decrypted and passed
/// on: the stand-in is a ciphertext the logic accepts.
async fn assert_scrubbed_replays_identically(scrubbed: &Recording) {
    let verdicts = replayed(
        envmgr::BUILTIN_LOGIC,
        std::slice::from_ref(scrubbed),
        &Expectations::default(),
    )
    .await;
    assert_eq!(
        verdicts,
        [Verdict::Identical { accepted: 0 }],
        "{verdicts:?}"
    );
    let (engine, builtin) = shared_logic();
    let ran = envmgr::record::replay::run(&engine, &builtin, scrubbed).await;
    assert!(ran.unanswered.is_empty(), "{:?}", ran.unanswered);
    let runtime = ran
        .effects
        .iter()
        .find(|e| e.call == envmgr::calls::Call::RuntimeCreate)
        .expect("the runtime was asked for");
    assert!(
        runtime.request.to_string().contains("API_KEY"),
        "{}",
        runtime.request
    );
}

/// A shadow run never takes a live message's instance: `serve`'s engine
/// holds one instance more than its queues' in-flight bounds, so a replay
/// still runs while every queue's slots are busy.
#[tokio::test]
async fn a_replay_finds_an_instance_while_every_queue_slot_is_busy() {
    let (_, recordings) = recorded_traffic().await;
    let settings = envmgr::config::Settings::load(
        None,
        [
            ("ENVMGR__QUEUES__PROBOT__MAX_IN_FLIGHT", "1"),
            ("ENVMGR__QUEUES__API__MAX_IN_FLIGHT", "1"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap();
    let engine = Arc::new(envmgr::engine::Engine::new(settings.limits()).unwrap());
    let logic = Arc::new(engine.load(envmgr::BUILTIN_LOGIC).unwrap());
    let host = MockHost::new(
        engine.clone(),
        logic.clone(),
        envmgr::mock::default_config(),
    );
    seed_app(&host, APP_ID, APP_NAME, REPO);
    host.github.add_installation(INSTALLATION);

    // Both queues' messages held at their runtime call, instances taken.
    let (arrived, mut arrivals) = tokio::sync::mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let hold = {
        let release = release.clone();
        Arc::new(move || {
            let arrived = arrived.clone();
            let release = release.clone();
            Box::pin(async move {
                let _ = arrived.send(());
                let _ = release.acquire().await.map(|p| p.forget());
            }) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        })
    };
    host.faults.interleave(
        envmgr::calls::Call::RuntimeCreate,
        envmgr::calls::Hit::Every,
        hold,
    );
    let host = Arc::new(host);
    let busy: Vec<_> = [
        host.message(
            "probot",
            &pull_request_event("opened", 9, "feature/busy", SHA_1, "2026-11-28T12:00:00Z"),
        ),
        host.message(
            "api",
            &api_request("production", "main", SHA_1, "2026-11-28T12:00:00Z"),
        ),
    ]
    .into_iter()
    .map(|message| {
        let host = host.clone();
        tokio::spawn(async move { host.deliver(&message).await })
    })
    .collect();
    for _ in &busy {
        arrivals.recv().await.unwrap();
    }

    let ran = envmgr::record::replay::run(&engine, &logic, &recordings[0]).await;
    assert!(!ran.failed, "{}", ran.outcome);

    release.add_permits(busy.len());
    for delivery in busy {
        let delivery = delivery.await.unwrap();
        assert!(
            matches!(delivery.result, Ok(Ok(_))),
            "{:?}",
            delivery.result
        );
    }
}

/// The recording store on the database file: bounded, oldest first.
#[tokio::test]
async fn the_local_store_keeps_the_newest_and_drops_the_oldest() {
    let (_, recordings) = recorded_traffic().await;
    let dir = std::env::temp_dir().join(format!("envmgr-recordings-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = envmgr::local::Store::open_dir(&dir).unwrap();
    let settings = envmgr::config::Record {
        max_entries: 4,
        ..Default::default()
    };
    let tables = Arc::new(envmgr::capabilities::dynamodb::local::LocalTables::new(
        store.clone(),
        [("recordings", "envmgr-recordings")],
    ));
    let stored = envmgr::record::store::Recordings::new(
        tables,
        Some((store, "envmgr-recordings".to_string())),
        settings,
    );
    let now = envmgr::mock::START_MS + 3_600_000;
    for recording in &recordings {
        stored.put(recording).await.unwrap();
    }
    let all = stored
        .select(&envmgr::record::store::Selection::Last(100), now)
        .await
        .unwrap();
    assert_eq!(all, recordings, "read back as written, oldest first");
    assert!(stored.prune(now).await.unwrap() >= 2);
    let kept = stored
        .select(&envmgr::record::store::Selection::Last(100), now)
        .await
        .unwrap();
    assert_eq!(kept, recordings[recordings.len() - 4..].to_vec());
    // Past their retention nothing is read (and pruning removes them).
    let later = now + 73 * 3_600_000;
    assert!(
        stored
            .select(&envmgr::record::store::Selection::Last(100), later)
            .await
            .unwrap()
            .is_empty()
    );
    // A host's shadow counts last as long as a recording: a host that
    // stopped counting drops out of the sum, and pruning removes its item.
    let tally = Tally {
        identical: 3,
        differs: 1,
        ..Tally::default()
    };
    stored
        .put_shadow_counts("v2", "gone-host", &tally, now)
        .await
        .unwrap();
    stored
        .put_shadow_counts("v2", "live-host", &tally, later - 3_600_000)
        .await
        .unwrap();
    assert_eq!(
        stored.shadow_counts("v2", None, now).await.unwrap().total(),
        8
    );
    // One host's own, to go on from when it counts that version again.
    let own = stored.shadow_counts("v2", Some("live-host"), now).await;
    assert_eq!(own.unwrap(), tally);
    assert_eq!(
        stored.shadow_counts("v2", None, later).await.unwrap(),
        tally
    );
    assert!(stored.prune(later).await.unwrap() >= 1);
    assert_eq!(stored.shadow_counts("v2", None, now).await.unwrap(), tally);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The store stuck, the recorder's queue fills, and what does not fit is
/// dropped and counted: handing a recording over never waits.
#[tokio::test]
async fn a_full_recording_queue_drops_and_counts_and_never_waits() {
    let (_, recordings) = recorded_traffic().await;
    let (engine, builtin) = shared_logic();
    let store = Arc::new(StuckStore::default());
    let settings = envmgr::config::Record {
        queue: 2,
        ..Default::default()
    };
    let (recorder, _worker) = envmgr::record::recorder::Recorder::start(
        envmgr::record::store::Recordings::new(store.clone(), None, settings),
        engine.clone(),
        envmgr::logic::serving::Versions::pinned(
            engine.load(envmgr::BUILTIN_LOGIC).unwrap(),
            envmgr::config::LogicSettings::default(),
            None,
        ),
        "test-host".to_string(),
    );
    let handed = |recording: &Recording| envmgr::record::recorder::Handled {
        recording: recording.clone(),
        logic: builtin.clone(),
    };
    let before = dropped_so_far();
    // A tape that overflowed (a guest calling in a loop) is not a whole
    // recording: dropped and counted, never queued.
    let mut overflowed = handed(&recordings[0]);
    overflowed.recording.taped.overflowed = true;
    recorder.submit(overflowed);
    assert_eq!(dropped_so_far() - before, 1);
    recorder.submit(handed(&recordings[0]));
    // The recorder's first words (since when it marks handlers) and the
    // first recording: both stuck.
    eventually_true(|| store.writes.load(std::sync::atomic::Ordering::SeqCst) == 2).await;
    let started = std::time::Instant::now();
    for recording in &recordings[1..] {
        recorder.submit(handed(recording));
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "handing over waited"
    );
    // Two wait in the queue; the rest were dropped.
    assert_eq!(
        dropped_so_far() - before,
        1 + (recordings.len() - 1 - 2) as u64
    );
}

// --- Through the binary, on both backends (replay/e2e.rs) --------------

envmgr_tests::on_both_backends!(
    serve_records_and_replay_compares,
    a_shadow_runs_beside_the_active_version_and_applies_nothing,
);
