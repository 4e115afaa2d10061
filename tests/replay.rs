//! Recorded traffic replayed against candidates (host/src/record/): in the
//! mock host first (recordings as `serve` makes them, verdicts per
//! candidate), then through the binary on both backends (`serve` records,
//! `logic replay`, `record export --scrub`, `--from DIR`, shadow runs under
//! load applying nothing, the bounded store).

use std::sync::Arc;
use std::time::Duration;

use envmgr::mock::MockHost;
use envmgr::record::Recording;
use envmgr::record::replay::{Expectations, Replaying, Tally, Verdict};
use envmgr_tests::*;

const MARKER: &str = "envmgr-test-fail";

/// Traffic of every kind, recorded as the builtin logic handled it: a pull
/// request opened, redelivered, pushed to, closed; production creates, one
/// of them by a requester the faulty candidate fails.
async fn recorded_traffic() -> (MockHost, Vec<Recording>) {
    let host = seeded_host();
    set_secret(
        &host,
        APP_ID,
        "global",
        "DATABASE_URL",
        "postgres://canary-db-secret",
    );
    set_secret(
        &host,
        APP_ID,
        "preview",
        "API_KEY",
        "sk_canary_preview_secret",
    );
    let opened = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T12:00:00Z");
    let pushed = pull_request_event(
        "synchronize",
        7,
        "feature/login",
        SHA_2,
        "2026-11-28T12:05:00Z",
    );
    let closed = pull_request_event("closed", 7, "feature/login", SHA_2, "2026-11-28T12:10:00Z");
    let production = api_request("production", "main", SHA_1, "2026-11-28T12:01:00Z");
    let failing = api_request("production", "main", SHA_2, "2026-11-28T12:06:00Z")
        .replace("user_123", MARKER);
    let messages = [
        host.message("probot", &opened),
        host.message("probot", &opened),
        host.message("api", &production),
        host.message("probot", &pushed),
        host.message("api", &failing),
        host.message("probot", &closed),
    ];
    let mut recordings = Vec::new();
    for message in &messages {
        host.clock.advance(Duration::from_secs(30));
        let (delivery, recording) = host.deliver_recorded(message).await;
        assert!(
            matches!(delivery.result, Ok(Ok(_))),
            "{:?}",
            delivery.result
        );
        recordings.push(recording);
    }
    (host, recordings)
}

async fn replayed(
    candidate: &[u8],
    recordings: &[Recording],
    expected: &Expectations,
) -> Vec<Verdict> {
    let (engine, builtin) = shared_logic();
    let candidate = engine.load(candidate).unwrap();
    let replaying = Replaying {
        engine: &engine,
        expected,
    };
    let mut verdicts = Vec::new();
    for recording in recordings {
        verdicts.push(replaying.verdict(recording, &builtin, &candidate).await);
    }
    verdicts
}

#[tokio::test]
async fn the_recorded_version_replays_identically_against_its_own_recording() {
    let (_, recordings) = recorded_traffic().await;
    let verdicts = replayed(envmgr::BUILTIN_LOGIC, &recordings, &Expectations::default()).await;
    for (recording, verdict) in recordings.iter().zip(&verdicts) {
        assert_eq!(
            *verdict,
            Verdict::Identical { accepted: 0 },
            "{}: {}",
            recording.name(),
            verdict.explained()
        );
    }
    // Every kind of call was on tape, answered by request.
    let calls: std::collections::BTreeSet<&str> = recordings
        .iter()
        .flat_map(|r| r.taped.calls.iter().map(|c| c.call.as_str()))
        .collect();
    for call in [
        "github.create-comment",
        "github.create-deployment",
        "dynamodb.transact-write",
        "kms.decrypt",
        "runtime.create",
        "analytics.track",
    ] {
        assert!(calls.contains(call), "{call} not recorded: {calls:?}");
    }
    assert!(recordings.iter().any(|r| !r.taped.clock.is_empty()));
}

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
    // The app record was never read, as far as this recording knows.
    let recording = &mut recordings[2];
    recording
        .taped
        .calls
        .retain(|c| !(c.call == "dynamodb.get" && c.request.to_string().contains("APP#")));
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
        .map(envmgr::record::files::scrubbed)
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
    std::fs::remove_dir_all(&dir).unwrap();
}
