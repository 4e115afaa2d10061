//! The mock-host tests' tools: recorded traffic of every kind, verdicts of
//! a candidate on it, and a recordings store that never answers.

use std::time::Duration;

use envmgr::mock::MockHost;
use envmgr::record::Recording;
use envmgr::record::replay::{Expectations, Replaying, Verdict};
use envmgr_tests::*;

pub(crate) const MARKER: &str = "envmgr-test-fail";

/// Traffic of every kind, recorded as the builtin logic handled it: a pull
/// request opened, redelivered, pushed to, closed; production creates, one
/// of them by a requester the faulty candidate fails.
pub(crate) async fn recorded_traffic() -> (MockHost, Vec<Recording>) {
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

pub(crate) async fn replayed(
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

/// A store that takes writes and never answers them.
#[derive(Default)]
pub(crate) struct StuckStore {
    pub(crate) writes: std::sync::atomic::AtomicUsize,
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

pub(crate) fn dropped_so_far() -> u64 {
    envmgr::metrics::Scrape::default()
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix("envmgr_recordings_total{result=\"dropped\"} "))
        .map_or(0, |n| n.trim().parse().unwrap())
}

pub(crate) async fn eventually_true(check: impl Fn() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened");
}
