//! What replays identically: the recorded version against its own
//! recordings, and a sweep with the delete it sends.

use std::time::Duration;

use envmgr::record::replay::{Expectations, Verdict};
use envmgr_tests::*;

use crate::helpers::{recorded_traffic, replayed};

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
