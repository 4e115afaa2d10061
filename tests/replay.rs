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

/// The sweep's message and the delete it sends are recorded as every
/// message is, and replay identically: the send is answered from the tape
/// (a replay sends nothing), the delete's calls by request.
#[tokio::test]
async fn a_sweep_and_the_delete_it_sends_replay_identically() {
    let host = seeded_host();
    let opened = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T12:00:00Z");
    host.deliver(&host.message("probot", &opened)).await;
    host.clock.advance(Duration::from_secs(15 * 86_400));
    let sweep = serde_json::json!({ "version": 1, "kind": "sweep", "appId": APP_ID });
    let (_, swept) = host
        .deliver_recorded(&host.message("api", &sweep.to_string()))
        .await;
    let sent = host.requests.take();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (_, deleted) = host.deliver_recorded(&host.message("api", &sent[0])).await;
    assert!(
        swept.taped.calls.iter().any(|c| c.call == "requests.send"),
        "the send on tape"
    );
    let verdicts = replayed(
        envmgr::BUILTIN_LOGIC,
        &[swept, deleted],
        &Expectations::default(),
    )
    .await;
    for verdict in &verdicts {
        assert_eq!(
            *verdict,
            Verdict::Identical { accepted: 0 },
            "{}",
            verdict.explained()
        );
    }
    assert!(host.requests.take().is_empty(), "nothing sent again");
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
    // As far as this recording knows, another app's record was read, not
    // this one's: there is a recorded read, but not of what the logic asks.
    let recording = &mut recordings[2];
    let read = recording
        .taped
        .calls
        .iter_mut()
        .find(|c| c.call == "dynamodb.get" && c.request.to_string().contains("APP#app_shop"))
        .expect("the app record read");
    read.request = serde_json::from_str(
        &read
            .request
            .to_string()
            .replace("APP#app_shop", "APP#app_other"),
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
    use base64::Engine as _;
    let host = seeded_host();
    set_secret(
        &host,
        APP_ID,
        "preview",
        "API_KEY",
        "sk_canary_preview_secret",
    );
    // Read with the app's secrets, never decrypted for a preview.
    set_secret(
        &host,
        APP_ID,
        "production",
        "PROD_ONLY",
        "sk_canary_prod_secret",
    );
    set_app_attributes(
        &host,
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
    let ciphertexts: Vec<String> = host
        .tables
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
        .collect();
    assert_eq!(ciphertexts.len(), 2);
    let decrypted: Vec<String> = recording
        .taped
        .calls
        .iter()
        .filter(|c| c.call == "kms.decrypt")
        .map(|c| c.request["ciphertext-sha256"].as_str().unwrap().to_string())
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

    // It replays identically, and the secret is still decrypted and passed
    // on: the stand-in is a ciphertext the logic accepts.
    let verdicts = replayed(
        envmgr::BUILTIN_LOGIC,
        std::slice::from_ref(&scrubbed),
        &Expectations::default(),
    )
    .await;
    assert_eq!(
        verdicts,
        [Verdict::Identical { accepted: 0 }],
        "{verdicts:?}"
    );
    let (engine, builtin) = shared_logic();
    let ran = envmgr::record::replay::run(&engine, &builtin, &scrubbed).await;
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

/// A store that takes writes and never answers them.
#[derive(Default)]
struct StuckStore {
    writes: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl envmgr::capabilities::dynamodb::Tables for StuckStore {
    async fn get(
        &self,
        _: &str,
        _: &envmgr::capabilities::dynamodb::Item,
    ) -> envmgr::capabilities::CapResult<Option<envmgr::capabilities::dynamodb::Item>> {
        Ok(None)
    }
    async fn query(
        &self,
        _: &envmgr::capabilities::dynamodb::QueryRequest,
    ) -> envmgr::capabilities::CapResult<envmgr::capabilities::dynamodb::Page> {
        Ok(envmgr::capabilities::dynamodb::Page {
            items: Vec::new(),
            next: None,
        })
    }
    async fn transact_write(
        &self,
        _: &[envmgr::capabilities::dynamodb::Write],
    ) -> Result<(), envmgr::capabilities::dynamodb::WriteError> {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::future::pending().await
    }
    async fn update(
        &self,
        _: &envmgr::capabilities::dynamodb::UpdateItem,
    ) -> Result<(), envmgr::capabilities::dynamodb::WriteError> {
        std::future::pending().await
    }
    async fn scan_all(
        &self,
        _: &str,
    ) -> envmgr::capabilities::CapResult<Vec<envmgr::capabilities::dynamodb::Item>> {
        Ok(Vec::new())
    }
}

fn dropped_so_far() -> u64 {
    envmgr::metrics::Scrape::default()
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix("envmgr_recordings_total{result=\"dropped\"} "))
        .map_or(0, |n| n.trim().parse().unwrap())
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

async fn eventually_true(check: impl Fn() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened");
}

// --- Through the binary, on both backends ------------------------------

use envmgr_tests::stack::{Backend, Options, Stack, eventually, example, terminate};

const BINARY: &str = env!("CARGO_BIN_EXE_envmgr-under-test");
const WAIT: Duration = Duration::from_secs(120);
/// Pull requests of the traffic (each its own environment and comment).
const PULL_REQUESTS: u64 = 6;

fn shop(name: &str, options: Options) -> Stack {
    let stack = Stack::new(name, BINARY, options);
    stack.seed_shop(
        "postgres://shop:pw@db/replay-canary-secret",
        "sk_replay_canary",
    );
    for number in 1..=PULL_REQUESTS {
        stack.github.add_pull_request(REPO, 100 + number);
    }
    stack
}

/// Pull request `100 + n` opened on its own branch, as GitHub sends it.
fn opened(n: u64) -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(&example("pull-request-opened.json")).unwrap();
    let number = 100 + n;
    event["id"] = format!("replay-event-{n}").into();
    let payload = &mut event["payload"];
    payload["number"] = number.into();
    payload["pull_request"]["number"] = number.into();
    payload["pull_request"]["head"]["ref"] = format!("feature/replay-{n}").into();
    event.to_string()
}

/// A production create the faulty candidate fails (it names the marker).
fn failing_production() -> String {
    example("api-production.json").replace("\"main\"", &format!("\"{MARKER}\""))
}

fn write(stack: &Stack, name: &str, bytes: &[u8]) -> String {
    let path = stack.dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

/// Send the traffic and wait until every message is handled.
async fn traffic(stack: &Stack) -> usize {
    for n in 1..=PULL_REQUESTS {
        stack.send("probot", &opened(n));
    }
    stack.send("api", &example("api-production.json"));
    stack.send("api", &failing_production());
    let messages = PULL_REQUESTS as usize + 2;
    eventually("every message handled", WAIT, || async {
        stack.runtime.runtimes().len() == messages
            && stack.messages_in(&stack.queue_name("probot")).await == 0
            && stack.messages_in(&stack.queue_name("api")).await == 0
    })
    .await;
    messages
}

async fn serve_records_and_replay_compares(backend: Backend) {
    let stack = shop(
        "replay",
        Options {
            backend,
            ..Options::default()
        },
    );
    let mut daemon = stack.serve();
    let messages = traffic(&stack).await;
    // Stopped: what was queued for the store is stored.
    assert!(terminate(&mut daemon).success());

    let listed = stack.run_ok(&["record", "list", "--json"]);
    let recordings: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(recordings.len(), messages, "{listed}");
    assert!(
        recordings.iter().all(|r| r["logic"].as_str().is_some()),
        "{listed}"
    );

    // The version that handled them, against its own recording.
    let same = stack.run_ok(&["logic", "replay", "builtin", "--fail-on", "differ"]);
    assert!(
        same.contains(&format!("{messages} messages: {messages} identical")),
        "{same}"
    );

    // A candidate that fails production requests: exactly those fail.
    let faulty = write(&stack, "faulty.wasm", FAULTY_LOGIC);
    let (passed, said) = stack.run(&["logic", "replay", &faulty, "--fail-on", "fail"]);
    assert!(!passed, "the gate holds: {said}");
    assert!(
        said.contains(&format!(
            "{messages} messages: {} identical, 0 differ, 1 fail",
            messages - 1
        )),
        "{said}"
    );
    let failing: Vec<&str> = said.lines().filter(|l| l.contains(" fails: ")).collect();
    assert_eq!(failing.len(), 1, "{said}");
    assert!(failing[0].contains(" api "), "{said}");

    // A reworded comment: differences in the comments, accepted as expected.
    let reworded = write(&stack, "reworded.wasm", REWORDED_LOGIC);
    let (passed, said) = stack.run(&["logic", "replay", &reworded, "--fail-on", "differ"]);
    assert!(!passed, "{said}");
    assert!(said.contains("github.create-comment["), "{said}");
    let expected = write(
        &stack,
        "expected.toml",
        b"[[change]]\npath = \"github.*-comment.body\"\npattern = \"environment built from\"\n\n\
          [[change]]\npath = \"dynamodb.**.commentDigest.s\"\npattern = \".*\"\n",
    );
    let accepted = stack.run_ok(&[
        "logic",
        "replay",
        &reworded,
        "--expect",
        &expected,
        "--fail-on",
        "differ",
    ]);
    assert!(
        accepted.contains(&format!("{messages} messages: {messages} identical")),
        "{accepted}"
    );

    // Exported and scrubbed, it replays with no deployment at all.
    let export = stack.dir.join("export");
    stack.run_ok(&["record", "export", &export.display().to_string(), "--scrub"]);
    let exported: String = std::fs::read_dir(&export)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    for private in [
        "octocat",
        "acme/shop",
        "replay-canary-secret",
        "sk_replay_canary",
    ] {
        assert!(!exported.contains(private), "{private} in the export");
    }
    let offline = std::process::Command::new(BINARY)
        .args([
            "logic",
            "replay",
            &faulty,
            "--from",
            &export.display().to_string(),
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(&stack.dir)
        .output()
        .unwrap();
    let offline = String::from_utf8_lossy(&offline.stdout).to_string();
    assert!(
        offline.contains(&format!("{messages} messages:")),
        "{offline}"
    );
    assert!(offline.contains(", 1 fail,"), "{offline}");

    // Install runs the replay: a failing version is refused, a reworded
    // one installed with its differences reported.
    let (installed, said) = stack.run(&["logic", "install", &faulty, "--replay", "20"]);
    assert!(!installed && said.contains("refused"), "{said}");
    let said = stack.run_ok(&["logic", "install", &reworded, "--replay", "20"]);
    assert!(
        said.contains("replay: ") && said.contains("differ"),
        "{said}"
    );
}

/// Every recording in the store, scanned for what must never be there.
async fn no_secret_recorded(stack: &Stack) {
    let export = stack.dir.join("unscrubbed");
    stack.run_ok(&["record", "export", &export.display().to_string()]);
    let mut text = String::new();
    for entry in std::fs::read_dir(&export).unwrap().flatten() {
        if entry.path().extension().is_some_and(|x| x == "json") {
            text.push_str(&std::fs::read_to_string(entry.path()).unwrap());
        }
    }
    assert!(!text.is_empty());
    for secret in ["replay-canary-secret", "sk_replay_canary"] {
        assert!(!text.contains(secret), "{secret} recorded");
    }
    for token in stack.github.tokens() {
        assert!(!text.contains(&token), "a GitHub token recorded");
    }
}

async fn a_shadow_runs_beside_the_active_version_and_applies_nothing(backend: Backend) {
    let stack = shop(
        "shadow",
        Options {
            backend,
            extra_config: "[logic]\npoll_ms = 200\n".to_string(),
            ..Options::default()
        },
    );
    let reworded = write(&stack, "reworded.wasm", REWORDED_LOGIC);
    stack.run_ok(&["logic", "install", &reworded, "--tag", "v2"]);
    let ports = [free_port(), free_port()];
    let mut daemons: Vec<_> = ports
        .iter()
        .map(|port| {
            let listen = format!("127.0.0.1:{port}");
            stack.serve_with(&[("ENVMGR__ADMIN__LISTEN", &listen)]).0
        })
        .collect();
    eventually("serving", WAIT, || async {
        stack.logs().matches("serving").count() >= 2
    })
    .await;
    stack.run_ok(&["logic", "activate", "v2", "--shadow"]);
    eventually("both hosts loaded the shadow", WAIT, || async {
        stack.logs().matches("logic versions swapped").count() >= 2
    })
    .await;
    let messages = traffic(&stack).await;
    let v2 = envmgr::support::hex_sha256(REWORDED_LOGIC);
    // Counted across both hosts in the shared store.
    eventually("every message shadowed", WAIT, || async {
        stack
            .run_ok(&["logic", "list"])
            .contains(&format!("shadow runs: {messages} messages:"))
    })
    .await;
    let listed = stack.run_ok(&["logic", "list"]);
    let differing = PULL_REQUESTS as usize;
    assert!(
        listed.contains(&format!(
            "shadow runs: {messages} messages: {} identical, {differing} differ, 0 fail, 0 not replayable",
            messages - differing
        )),
        "{listed}"
    );
    // Each host counts its own in /metrics: together, the same.
    let mut per_verdict = std::collections::BTreeMap::new();
    for port in ports {
        for line in http_get(port, "/metrics").lines() {
            if let Some(rest) = line.strip_prefix("envmgr_shadow_runs_total{") {
                let verdict = rest
                    .split("verdict=\"")
                    .nth(1)
                    .and_then(|v| v.split('"').next());
                let count: f64 = rest.rsplit(' ').next().unwrap().parse().unwrap();
                *per_verdict
                    .entry(verdict.unwrap().to_string())
                    .or_insert(0.0) += count;
            }
        }
    }
    assert_eq!(
        per_verdict.get("identical"),
        Some(&((messages - differing) as f64)),
        "{per_verdict:?}"
    );
    assert_eq!(
        per_verdict.get("differs"),
        Some(&(differing as f64)),
        "{per_verdict:?}"
    );
    let report = stack.run_ok(&["logic", "replay", "--shadow-report"]);
    assert_eq!(
        report.lines().filter(|l| l.contains("differs")).count(),
        differing,
        "{report}"
    );
    assert!(report.contains("environment built from"), "{report}");

    // Nothing of the shadow was applied.
    assert_eq!(stack.runtime.requests().len(), messages);
    for n in 1..=PULL_REQUESTS {
        for body in stack.github.comments(REPO, 100 + n) {
            assert!(!body.contains("built from"), "{body}");
        }
    }
    for item in stack.environment_items().await {
        assert_ne!(item.get("logicVersion"), Some(&v2), "{item:?}");
    }
    no_secret_recorded(&stack).await;
    for daemon in &mut daemons {
        assert!(terminate(daemon).success());
    }
}

/// Recording never fails a message: with its table missing (a host
/// upgraded without `init`), every message is handled, each recording is
/// counted as failed, and the log says so once, not once a message.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_recordings_table_fails_no_message() {
    let stack = shop(
        "unrecorded",
        Options {
            backend: Backend::Aws,
            ..Options::default()
        },
    );
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let missing = format!("{}-no-such-table", stack.prefix);
    let (mut daemon, _) = stack.serve_with(&[
        ("ENVMGR__TABLES__RECORDINGS", &missing),
        ("ENVMGR__ADMIN__LISTEN", &listen),
    ]);
    let messages = traffic(&stack).await;
    eventually("every recording counted", WAIT, || async {
        http_get(port, "/metrics").contains(&format!(
            "envmgr_recordings_total{{result=\"failed\"}} {messages}"
        ))
    })
    .await;
    assert!(terminate(&mut daemon).success());
    let logs = stack.logs();
    assert!(
        !logs.contains("dead-lettered") && !logs.contains("will retry"),
        "{logs}"
    );
    assert_eq!(logs.matches("recording not stored").count(), 1, "{logs}");
    assert_eq!(stack.runtime.runtimes().len(), messages);
}

envmgr_tests::on_both_backends!(
    serve_records_and_replay_compares,
    a_shadow_runs_beside_the_active_version_and_applies_nothing,
);
