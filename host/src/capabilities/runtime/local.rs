//! The Runtime Service recorded in the embedded database: one runtime per
//! idempotency key, the request kept as it would be sent with every secret
//! value and the token masked. Nothing runs; the URL is where it would be.
//! The consumer's record: it survives a crash of the process
//! ([`Durability::SurvivesCrash`]).

use async_trait::async_trait;
use rusqlite::params;

use super::{Created, Runtime, RuntimeRequest};
use crate::capabilities::{CapResult, ErrorCode, error};
use crate::local::{Durability, Store, now_ms, unavailable};

/// What a recorded request shows in place of a secret value.
pub const MASK: &str = "****";

pub struct LocalRuntime {
    store: Store,
}

impl LocalRuntime {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

/// A recorded runtime, for `show` and tests.
#[derive(Clone, Debug)]
pub struct RecordedRuntime {
    pub idempotency_key: String,
    pub runtime_id: String,
    pub url: String,
    /// The request body, secrets masked.
    pub request: serde_json::Value,
    /// How often it was asked for (redeliveries call again).
    pub calls: u64,
}

pub fn runtimes(store: &Store) -> anyhow::Result<Vec<RecordedRuntime>> {
    store.read(|connection| {
        let mut statement = connection.prepare(
            "SELECT idempotency_key, runtime_id, url, request, calls
             FROM runtime_requests ORDER BY created_at_ms, idempotency_key",
        )?;
        statement
            .query_map([], |row| {
                Ok(RecordedRuntime {
                    idempotency_key: row.get(0)?,
                    runtime_id: row.get(1)?,
                    url: row.get(2)?,
                    request: serde_json::from_str(&row.get::<_, String>(3)?).unwrap_or_default(),
                    calls: row.get::<_, i64>(4)? as u64,
                })
            })?
            .collect()
    })
}

#[async_trait]
impl Runtime for LocalRuntime {
    async fn create(&self, request: &RuntimeRequest) -> CapResult<Created> {
        let key = request.idempotency_key.clone();
        let body = request.body(|_| MASK).to_string();
        let environment_id = request.environment_id.clone();
        let version = request.request_version.clone();
        let recorded = self
            .store
            .write(Durability::SurvivesCrash, move |tx| {
                // The fencing token: a create older than the newest accepted
                // for the environment is refused (docs/runtime-service.md).
                let newest: Option<String> = tx.prepare_cached("SELECT MAX(json_extract(request, '$.requestVersion')) FROM runtime_requests
                     WHERE json_extract(request, '$.environmentId') = ?1")?.query_row([&environment_id],
                    |row| row.get(0),
                )?;
                if let Some(newest) = newest.filter(|n| !version.is_empty() && version < *n) {
                    return Ok(Err(newest));
                }
                // The runtime id follows from the key: the same key, the same runtime.
                let runtime_id = format!("rt_{}", &crate::engine::hex_sha256(key.as_bytes())[..16]);
                let url = format!("http://{environment_id}.localhost");
                tx.prepare_cached("INSERT INTO runtime_requests
                       (idempotency_key, runtime_id, url, request, calls, created_at_ms)
                     VALUES (?1, ?2, ?3, ?4, 1, ?5)
                     ON CONFLICT (idempotency_key) DO UPDATE SET calls = calls + 1")?.execute(params![key, runtime_id, url, body, now_ms()],
                )?;
                tx.prepare_cached("SELECT runtime_id, url, calls FROM runtime_requests WHERE idempotency_key = ?1")?.query_row([&key],
                    |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?)),
                )
                .map(Ok)
            })
            .await
            .map_err(unavailable)?;
        let (runtime_id, url, calls) = recorded.map_err(|newest| {
            error(
                ErrorCode::Conflict,
                format!("runtime (local) answered 409: superseded by request {newest}"),
            )
        })?;
        tracing::info!(environment = %request.environment_id, runtime = %runtime_id, calls, "runtime (local): runtime recorded");
        Ok(Created {
            runtime_id,
            url: Some(url),
        })
    }
}
