//! The flow's conditional writes refused by the store itself, on both
//! backends (`aws::` against moto's DynamoDB, `local::` against the
//! database file): the builtin logic runs in the mock host with the
//! stack's real tables, and another writer changes the environment's record
//! between the flow's read and its write (`Faults::interleave`), as a
//! logic version that takes no lease would. A read-before-write cannot see
//! that; only the write's condition does.
//!
//! - the record written with the lease is refused: the request is stale
//!   (skipped), nothing of it written, nothing created;
//! - the runtime recorded on the record is refused: stale, the newer
//!   record kept as it is, the lease released;
//! - a failure not marked on a record that moved on.

use std::collections::BTreeMap;
use std::sync::Arc;

use envmgr::Outcome;
use envmgr::calls::{Call, Hit};
use envmgr::capabilities::ErrorCode;
use envmgr::capabilities::dynamodb::{AttributeValue, Condition, PutItem, Tables, Write};
use envmgr::mock::MockHost;
use envmgr_guest::environment::environment_id;
use envmgr_tests::stack::{Backend, Options, Stack};
use envmgr_tests::*;

const BINARY: &str = env!("CARGO_BIN_EXE_envmgr-under-test");

/// The request the flow handles, and a newer one of the same branch.
const HANDLED_AT: &str = "2026-11-28T11:00:00Z";
const NEWER_VERSION: &str = "1795865400000#2222222222222222222222222222222222222222";

struct Scene {
    stack: Stack,
    tables: Arc<dyn Tables>,
    host: MockHost,
}

/// The app in the stack's store; GitHub, KMS, analytics and the runtime in
/// memory.
async fn scene(name: &str, backend: Backend) -> Scene {
    let stack = Stack::new(
        name,
        BINARY,
        Options {
            backend,
            ..Options::default()
        },
    );
    stack.ok(&[
        "add-app",
        "--id",
        APP_ID,
        "--name",
        APP_NAME,
        "--repository",
        REPO,
        "--entrypoint",
        "src/server.ts",
    ]);
    let tables = stack.tables().await;
    let host = seeded_host();
    Scene {
        stack,
        tables,
        host,
    }
}

impl Scene {
    /// Deliver the request of `HANDLED_AT` once, on the stack's tables.
    async fn deliver(&self) -> Result<envmgr::Handled, envmgr::RunError> {
        let mut backends = (**self.host.backends()).clone();
        backends.dynamodb = self.tables.clone();
        let body = pull_request_event("opened", 7, "feature/login", SHA_1, HANDLED_AT);
        let (engine, logic) = shared_logic();
        engine
            .run(
                &logic,
                Arc::new(backends),
                &self.host.message("probot", &body),
            )
            .await
    }

    /// Right before the `call`, another writer puts the branch's record at
    /// a newer request (its three items, no lease).
    fn newer_record_before(&self, call: Call) {
        let tables = self.tables.clone();
        self.host.faults.interleave(
            call,
            Hit::Nth(1),
            Arc::new(move || {
                let tables = tables.clone();
                Box::pin(async move { put_newer_record(tables.as_ref()).await })
            }),
        );
    }

    /// The record's items and the lease item, as attribute → text.
    async fn environment(
        &self,
    ) -> (
        Vec<BTreeMap<String, String>>,
        Option<BTreeMap<String, String>>,
    ) {
        let table = self.stack.environment_table().await;
        let records = table
            .iter()
            .filter(|i| i.get("entity").map(String::as_str) == Some("environment"))
            .cloned()
            .collect();
        let lease = table
            .into_iter()
            .find(|i| i.get("entity").map(String::as_str) == Some("lease"));
        (records, lease)
    }

    /// The newer record is there, as its writer left it.
    async fn newer_record_kept(&self) {
        let (records, _) = self.environment().await;
        assert_eq!(records.len(), 3, "{records:?}");
        for item in &records {
            assert_eq!(item["requestVersion"], NEWER_VERSION, "{item:?}");
            assert_eq!(item["status"], "creating", "overwritten: {item:?}");
            assert_eq!(item["sha"], SHA_2, "{item:?}");
            assert!(!item.contains_key("runtimeId"), "{item:?}");
            assert!(!item.contains_key("failureReason"), "{item:?}");
        }
    }
}

async fn put_newer_record(tables: &dyn Tables) {
    let id = environment_id(APP_ID, "feature/login");
    let keys = [
        (format!("ENVIRONMENT#{id}"), "#".to_string()),
        (format!("APP#{APP_ID}"), format!("ENVIRONMENT#{id}")),
        (format!("APP#{APP_ID}"), "BRANCH#feature/login".to_string()),
    ];
    let s = |name: &str, value: &str| (name.to_string(), AttributeValue::S(value.into()));
    let writes: Vec<Write> = keys
        .into_iter()
        .map(|(pk, sk)| {
            Write::Put(PutItem {
                table: "environments".into(),
                item: vec![
                    s("pk", &pk),
                    s("sk", &sk),
                    s("entity", "environment"),
                    s("environmentId", &id),
                    s("appId", APP_ID),
                    s("branch", "feature/login"),
                    s("sha", SHA_2),
                    s("status", "creating"),
                    s("requestVersion", NEWER_VERSION),
                ],
                condition: Condition::None,
            })
        })
        .collect();
    tables
        .transact_write(&writes)
        .await
        .map_err(|_| "writing the newer record")
        .unwrap();
}

fn skipped_as_stale(result: &Result<envmgr::Handled, envmgr::RunError>) {
    match result {
        Ok(Ok(Outcome::Skipped(why))) => assert!(
            why.contains("stale request") && why.contains(NEWER_VERSION),
            "{why}"
        ),
        other => panic!("expected skipped as stale, got {other:?}"),
    }
}

/// Between the flow's read (no record yet) and its first write (the lease
/// and the record, one transaction), a newer request's record appears:
/// the record's condition refuses the whole transaction.
async fn the_record_written_with_the_lease_is_refused(backend: Backend) {
    let scene = scene("cond-take", backend).await;
    scene.newer_record_before(Call::DynamodbTransactWrite);
    let result = scene.deliver().await;
    skipped_as_stale(&result);
    scene.newer_record_kept().await;
    let (_, lease) = scene.environment().await;
    assert!(lease.is_none(), "the refused transaction wrote the lease");
    assert!(scene.host.runtime.calls().is_empty());
    assert!(scene.host.github.comments(REPO, 7).unwrap().is_empty());
}

/// The flow holds the lease and asked for the runtime; meanwhile the record
/// moved on without the lease. Recording the runtime is refused by the
/// record's condition, not the lease's: stale, and the lease released.
async fn the_runtime_recorded_on_a_record_that_moved_on_is_refused(backend: Backend) {
    let scene = scene("cond-runtime", backend).await;
    scene.newer_record_before(Call::RuntimeCreate);
    let result = scene.deliver().await;
    skipped_as_stale(&result);
    assert_eq!(scene.host.runtime.calls().len(), 1);
    scene.newer_record_kept().await;
    let (_, lease) = scene.environment().await;
    let lease = lease.expect("the lease item");
    assert_eq!(lease["holder"], "", "not released: {lease:?}");
    assert_eq!(lease["expiresAt"], "0", "{lease:?}");
}

/// A permanent failure is not written over a record that moved on.
async fn a_failure_is_not_marked_on_a_record_that_moved_on(backend: Backend) {
    let scene = scene("cond-failed", backend).await;
    scene.newer_record_before(Call::RuntimeCreate);
    scene.host.faults.inject(
        Call::RuntimeCreate,
        Hit::Nth(1),
        ErrorCode::Invalid,
        "entrypoint does not exist",
    );
    let result = scene.deliver().await;
    match &result {
        Ok(Err(failure)) => assert!(failure.reason.contains("entrypoint"), "{failure:?}"),
        other => panic!("expected the refusal, got {other:?}"),
    }
    scene.newer_record_kept().await;
    let (_, lease) = scene.environment().await;
    assert_eq!(lease.expect("the lease item")["holder"], "");
}

on_both_backends!(
    the_record_written_with_the_lease_is_refused,
    the_runtime_recorded_on_a_record_that_moved_on_is_refused,
    a_failure_is_not_marked_on_a_record_that_moved_on,
);
