//! The in-process tests' registry: versions stored in it, listed from it,
//! and tables that crash or let another writer in before a transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use envmgr::capabilities::CapResult;
use envmgr::capabilities::dynamodb::local::LocalTables;
use envmgr::capabilities::dynamodb::{
    Item, Page, QueryRequest, Tables, UpdateItem, Write, WriteError,
};
use envmgr::logic::registry::Registry;
use envmgr::support::hex_sha256;
use envmgr_tests::variant;

pub(crate) fn registry_on(tables: Arc<dyn Tables>) -> Registry {
    Registry::new(tables, envmgr::BUILTIN_LOGIC)
}

/// A version stored in `registry`; its id.
pub(crate) async fn stored(registry: &Registry, label: &str, installed_at_ms: u64) -> String {
    let bytes = variant(envmgr::BUILTIN_LOGIC, label);
    let id = hex_sha256(&bytes);
    registry
        .store(&id, Some(label), &bytes, "0.3.0", installed_at_ms)
        .await
        .unwrap();
    id
}

/// In-memory tables whose `transact_write` first goes past `before`: it
/// may answer instead (a crash), or change the tables first (another
/// writer in between).
struct Hooked<F> {
    tables: Arc<LocalTables>,
    before: F,
}

#[async_trait]
impl<F> Tables for Hooked<F>
where
    F: Fn(&LocalTables, &[Write]) -> Option<Result<(), WriteError>> + Send + Sync,
{
    async fn get(&self, table: &str, key: &Item) -> CapResult<Option<Item>> {
        self.tables.get(table, key).await
    }
    async fn query(&self, request: &QueryRequest) -> CapResult<Page> {
        self.tables.query(request).await
    }
    async fn transact_write(&self, writes: &[Write]) -> Result<(), WriteError> {
        if let Some(answer) = (self.before)(&self.tables, writes) {
            return answer;
        }
        self.tables.transact_write(writes).await
    }
    async fn update(&self, request: &UpdateItem) -> Result<(), WriteError> {
        self.tables.update(request).await
    }
    async fn scan_all(&self, table: &str) -> CapResult<Vec<Item>> {
        self.tables.scan_all(table).await
    }
}

/// Tables that refuse to delete component chunks: a crash between the
/// version item and its chunks.
pub(crate) fn chunks_stay(tables: Arc<LocalTables>) -> Arc<dyn Tables> {
    Arc::new(Hooked {
        tables,
        before: |_: &LocalTables, writes: &[Write]| {
            let chunk = writes.iter().any(
                |w| matches!(w, Write::Delete(d) if format!("{:?}", d.key).contains("COMPONENT#")),
            );
            chunk.then(|| {
                Err(WriteError::Failed(envmgr::capabilities::Error {
                    code: envmgr::capabilities::ErrorCode::Unavailable,
                    message: "the process died here".into(),
                    retry_after_ms: None,
                }))
            })
        },
    })
}

/// Tables on which, the first time a version item is put once `armed`,
/// every component chunk is deleted just before (a gc pass in between).
pub(crate) fn gc_between(tables: Arc<LocalTables>, armed: Arc<AtomicBool>) -> Arc<dyn Tables> {
    Arc::new(Hooked {
        tables,
        before: move |tables: &LocalTables, writes: &[Write]| {
            let puts_version = writes.iter().any(
                |w| matches!(w, Write::Put(p) if format!("{:?}", p.item).contains("\"VERSION\"")),
            );
            if puts_version && armed.swap(false, Ordering::SeqCst) {
                for item in tables.scan("logic").unwrap() {
                    if format!("{item:?}").contains("COMPONENT#") {
                        let key: Item = item
                            .iter()
                            .filter(|(n, _)| n == "pk" || n == "sk")
                            .cloned()
                            .collect();
                        tables.remove("logic", &key).unwrap();
                    }
                }
            }
            None
        },
    })
}

/// The version `id` as the registry lists it.
pub(crate) async fn installed(registry: &Registry, id: &str) -> envmgr::logic::VersionInfo {
    let versions = registry.versions().await.unwrap();
    versions
        .into_iter()
        .find(|v| v.id == id)
        .expect("installed")
}
