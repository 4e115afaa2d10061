//! The Runtime Service recorded in the embedded database: one runtime per
//! idempotency key, the request kept as it would be sent with every secret
//! value and the token masked. Nothing runs; the URL is where it would be.
//! The consumer's record: it survives a crash of the process
//! ([`Durability::SurvivesCrash`]).
//!
//! It also plays the Runtime Service's part in the lifecycle
//! (docs/runtime-service.md, "Status reports"): a runtime created with a
//! signing key reports itself `ready` on the `api` queue, signed with that
//! key, sent in the same transaction that records it and visible
//! [`REPORT_AFTER`] later, so the local backend shows an environment go
//! from deploying to ready as production would.

use std::sync::Mutex;

use async_trait::async_trait;
use rusqlite::{OptionalExtension as _, params};

use super::{Created, Listed, Runtime, RuntimeDelete, RuntimeRequest};
use crate::capabilities::{CapResult, ErrorCode, error};
use crate::local::{Durability, Store, unavailable};

/// What a recorded request shows in place of a secret value.
pub const MASK: &str = "****";

pub struct LocalRuntime {
    store: Store,
    /// The queue status reports go to (the `api` queue's name), if any.
    reports_to: Option<String>,
    /// Where runtimes are reached (`preview-url-template`), if configured:
    /// the URL a runtime is recorded at and reports, so the report's link
    /// is one the logic allows; else `http://{environment}.localhost`.
    url_template: Option<String>,
    /// Every create as received, secrets in plaintext, when kept
    /// ([`LocalRuntime::keeping_calls`]).
    received: Option<Mutex<Vec<RuntimeRequest>>>,
}

impl LocalRuntime {
    pub fn new(store: Store, reports_to: Option<String>, url_template: Option<String>) -> Self {
        if reports_to.is_none() {
            tracing::warn!(
                "runtime (local): no `api` queue is configured, so no status report is sent; environments stay runtime-requested"
            );
        }
        Self {
            store,
            reports_to,
            url_template,
            received: None,
        }
    }

    /// The mock host's: no status reports (it has no queue), and every
    /// create kept in memory as the service received it, secrets in
    /// plaintext, for a test to read ([`calls`](Self::calls)). The database
    /// records them masked, as always.
    pub fn keeping_calls(store: Store, url_template: Option<String>) -> Self {
        Self {
            store,
            reports_to: None,
            url_template,
            received: Some(Mutex::default()),
        }
    }

    /// Every create call, in order, as received (a refused one too); none
    /// unless [`keeping_calls`](Self::keeping_calls).
    pub fn calls(&self) -> Vec<RuntimeRequest> {
        self.received.as_ref().map_or_else(Vec::new, |received| {
            received.lock().unwrap_or_else(|p| p.into_inner()).clone()
        })
    }

    /// The runtimes recorded, one per idempotency key (tests).
    pub fn runtimes(&self) -> anyhow::Result<Vec<RecordedRuntime>> {
        runtimes(&self.store)
    }

    /// The runtimes no delete removed (tests).
    pub fn live(&self) -> anyhow::Result<Vec<RecordedRuntime>> {
        let mut all = self.runtimes()?;
        all.retain(|runtime| runtime.deleted_by.is_none());
        Ok(all)
    }
}

/// How long after its create a runtime's `ready` report is delivered: a
/// real runtime reports once the app is up, never inside the create call.
/// Delivered at once, the report often met its own create still holding
/// the environment's lease, was deferred a second and handled twice
/// (docs/performance.md, "sixth session"); a quarter of a second is well
/// past a busy drain's slowest creates.
pub const REPORT_AFTER: std::time::Duration = std::time::Duration::from_millis(250);

/// How long a report stays valid, as the fake and a real service sign it.
const REPORT_VALID_FOR_S: i64 = 300;

/// The first status report of a runtime just created: `ready` at `url`,
/// signed with the request's key, as the body of an `api` message.
fn ready_report(
    request: &RuntimeRequest,
    url: &str,
    now_ms: i64,
) -> anyhow::Result<Option<String>> {
    let Some(key) = &request.signing_key else {
        return Ok(None);
    };
    let now = now_ms / 1000;
    let environment = &request.environment_id;
    let version = &request.request_version;
    let claims = serde_json::json!({
        "sub": environment,
        "ver": version,
        "state": "ready",
        "url": url,
        "iat": now,
        "exp": now + REPORT_VALID_FOR_S,
        "jti": format!("{environment}/{version}/1"),
        "seq": 1,
    });
    let report = crate::capabilities::keys::sign_report(key.expose(), &claims)?;
    Ok(Some(
        serde_json::json!({"version": 1, "kind": "runtime-status", "report": report}).to_string(),
    ))
}

/// The newest request version accepted for the environment, a create's or
/// a delete's: the fence (docs/runtime-service.md).
fn newest(tx: &rusqlite::Connection, environment_id: &str) -> rusqlite::Result<Option<String>> {
    tx.prepare_cached(
        "SELECT MAX(version) FROM (
           SELECT MAX(json_extract(request, '$.requestVersion')) AS version FROM runtime_requests
            WHERE json_extract(request, '$.environmentId') = ?1
           UNION ALL
           SELECT MAX(request_version) FROM runtime_deletions WHERE environment_id = ?1)",
    )?
    .query_row([environment_id], |row| row.get(0))
}

/// What a delete found: the runtimes it removed, or why it was refused.
enum Deletion {
    Removed(Vec<String>),
    /// A newer create was accepted first (409).
    Superseded(String),
    /// The key was used with another request (422).
    KeyReused,
}

/// Record the delete in `tx`: the environment's runtimes older than it and
/// newer than every earlier delete are the ones it removes.
fn record_deletion(
    tx: &rusqlite::Connection,
    request: &RuntimeDelete,
    body: &str,
    now_ms: i64,
) -> rusqlite::Result<Deletion> {
    let seen: Option<(String, String)> = tx
        .prepare_cached(
            "SELECT request, deleted FROM runtime_deletions WHERE idempotency_key = ?1",
        )?
        .query_row([&request.idempotency_key], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    if let Some((seen, deleted)) = seen {
        if seen != body {
            return Ok(Deletion::KeyReused);
        }
        return Ok(Deletion::Removed(
            serde_json::from_str(&deleted).unwrap_or_default(),
        ));
    }
    let version = &request.request_version;
    if let Some(newest) = newest(tx, &request.environment_id)?.filter(|n| version < n) {
        return Ok(Deletion::Superseded(newest));
    }
    let removed = tx
        .prepare_cached(
            "SELECT runtime_id FROM runtime_requests
              WHERE json_extract(request, '$.environmentId') = ?1
                AND json_extract(request, '$.requestVersion') < ?2
                AND json_extract(request, '$.requestVersion') > COALESCE(
                    (SELECT MAX(request_version) FROM runtime_deletions WHERE environment_id = ?1), '')
              ORDER BY json_extract(request, '$.requestVersion')",
        )?
        .query_map(params![request.environment_id, version], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    tx.prepare_cached(
        "INSERT INTO runtime_deletions
           (idempotency_key, environment_id, request_version, request, deleted, deleted_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        request.idempotency_key,
        request.environment_id,
        version,
        body,
        serde_json::to_string(&removed).unwrap_or_default(),
        now_ms
    ])?;
    Ok(Deletion::Removed(removed))
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
    /// The version of the delete that removed it, if one did.
    pub deleted_by: Option<String>,
}

pub fn runtimes(store: &Store) -> anyhow::Result<Vec<RecordedRuntime>> {
    store.read(|connection| {
        let mut statement = connection.prepare(
            "SELECT idempotency_key, runtime_id, url, request, calls,
                    (SELECT MIN(d.request_version) FROM runtime_deletions d
                      WHERE d.environment_id = json_extract(r.request, '$.environmentId')
                        AND d.request_version > json_extract(r.request, '$.requestVersion'))
             FROM runtime_requests r ORDER BY created_at_ms, idempotency_key",
        )?;
        statement
            .query_map([], |row| {
                Ok(RecordedRuntime {
                    idempotency_key: row.get(0)?,
                    runtime_id: row.get(1)?,
                    url: row.get(2)?,
                    request: serde_json::from_str(&row.get::<_, String>(3)?).unwrap_or_default(),
                    calls: row.get::<_, i64>(4)? as u64,
                    deleted_by: row.get(5)?,
                })
            })?
            .collect()
    })
}

#[async_trait]
impl Runtime for LocalRuntime {
    async fn create(&self, request: &RuntimeRequest) -> CapResult<Created> {
        if let Some(received) = &self.received {
            received
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(request.clone());
        }
        let now = self.store.now_ms();
        let key = request.idempotency_key.clone();
        let body = request.body(|_| MASK).to_string();
        let environment_id = request.environment_id.clone();
        let version = request.request_version.clone();
        let url = match &self.url_template {
            Some(template) => template.replace("{environment}", &environment_id),
            None => format!("http://{environment_id}.localhost"),
        };
        // Signed before the transaction (it needs no database), sent in it.
        let report = match &self.reports_to {
            Some(queue) => ready_report(request, &url, now)
                .map_err(|e| {
                    error(
                        ErrorCode::Invalid,
                        format!("runtime (local): the signing key: {e:#}"),
                    )
                })?
                .map(|body| (queue.clone(), body)),
            None => None,
        };
        let recorded = self
            .store
            .write(Durability::SurvivesCrash, move |tx| {
                // The fencing token: a create older than the newest accepted
                // for the environment is refused (docs/runtime-service.md).
                if let Some(newest) = newest(tx, &environment_id)?.filter(|n| !version.is_empty() && version < *n) {
                    return Ok(Err(newest));
                }
                // The runtime id follows from the key: the same key, the same runtime.
                let runtime_id = format!("rt_{}", &crate::support::hex_sha256(key.as_bytes())[..16]);
                tx.prepare_cached("INSERT INTO runtime_requests
                       (idempotency_key, runtime_id, url, request, calls, created_at_ms)
                     VALUES (?1, ?2, ?3, ?4, 1, ?5)
                     ON CONFLICT (idempotency_key) DO UPDATE SET calls = calls + 1")?.execute(params![key, runtime_id, url, body, now],
                )?;
                let found = tx.prepare_cached("SELECT runtime_id, url, calls FROM runtime_requests WHERE idempotency_key = ?1")?.query_row([&key],
                    |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?)),
                )?;
                // A runtime reports once, when it is first created; a
                // redelivery's call only finds it.
                if let (1, Some((queue, body))) = (found.2, &report) {
                    crate::queue::local::enqueue_in(tx, queue, body, REPORT_AFTER)?;
                }
                Ok(Ok(found))
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

    /// The runtimes no delete removed.
    async fn list(&self) -> CapResult<Vec<Listed>> {
        let live = self
            .live()
            .map_err(|e| error(ErrorCode::Unavailable, format!("local database: {e:#}")))?;
        let field = |runtime: &RecordedRuntime, name: &str| {
            let value = runtime.request.get(name).and_then(|v| v.as_str());
            value.unwrap_or_default().to_string()
        };
        Ok(live
            .iter()
            .map(|runtime| Listed {
                runtime_id: runtime.runtime_id.clone(),
                app_id: field(runtime, "appId"),
                environment_id: field(runtime, "environmentId"),
                environment_type: field(runtime, "environmentType"),
                request_version: field(runtime, "requestVersion"),
            })
            .collect())
    }

    async fn delete(&self, request: &RuntimeDelete) -> CapResult<Vec<String>> {
        let body = request.body().to_string();
        let owned = request.clone();
        let now = self.store.now_ms();
        let deletion = self
            .store
            .write(Durability::SurvivesCrash, move |tx| {
                record_deletion(tx, &owned, &body, now)
            })
            .await
            .map_err(unavailable)?;
        match deletion {
            Deletion::Removed(removed) => {
                tracing::info!(environment = %request.environment_id, removed = removed.len(), "runtime (local): runtimes deleted");
                Ok(removed)
            }
            Deletion::Superseded(newest) => Err(error(
                ErrorCode::Conflict,
                format!(
                    "runtime (local) answered 409: request {newest} was accepted after this delete"
                ),
            )),
            Deletion::KeyReused => Err(error(
                ErrorCode::Invalid,
                format!(
                    "runtime (local) answered 422: Idempotency-Key {} was used with a different request",
                    request.idempotency_key
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::Secret;

    fn create(key: &str, ms: u64) -> RuntimeRequest {
        let sha = format!("{ms:040x}");
        RuntimeRequest {
            idempotency_key: key.into(),
            app_id: "app".into(),
            environment_id: "env_4ccb1407cf7edbdc5866".into(),
            environment_type: "preview".into(),
            repository: "acme/shop".into(),
            branch: "b".into(),
            request_version: format!("{ms:013}#{sha}"),
            sha,
            entrypoint: "main".into(),
            installation_token: None,
            secrets: vec![("A".into(), Secret::new("a"))],
            signing_key: None,
        }
    }

    fn delete(key: &str, after: &RuntimeRequest) -> RuntimeDelete {
        RuntimeDelete {
            idempotency_key: key.into(),
            app_id: "app".into(),
            environment_id: after.environment_id.clone(),
            environment_type: "preview".into(),
            request_version: format!("{}#delete", after.request_version),
            reason: "api".into(),
        }
    }

    /// As docs/runtime-service.md has the service do it: the older runtimes
    /// go, once; every older create is refused after, a repeated key too.
    #[tokio::test]
    async fn a_delete_removes_the_older_runtimes_once_and_fences_older_creates() {
        let dir =
            std::env::temp_dir().join(format!("envmgr-runtime-{}", crate::support::random_hex(6)));
        let runtime = LocalRuntime::new(Store::open_dir(&dir).unwrap(), None, None);
        let first = runtime.create(&create("k1", 1_000)).await.unwrap();
        let second = runtime.create(&create("k2", 2_000)).await.unwrap();
        let removal = delete("d1", &create("k2", 2_000));
        let removed = runtime.delete(&removal).await.unwrap();
        assert_eq!(removed, vec![first.runtime_id, second.runtime_id]);
        assert_eq!(runtime.delete(&removal).await.unwrap(), removed, "a repeat");
        let mut reused = removal.clone();
        reused.reason = "idle".into();
        assert_eq!(
            runtime.delete(&reused).await.unwrap_err().code,
            ErrorCode::Invalid
        );
        let again = runtime.create(&create("k2", 2_000)).await.unwrap_err();
        assert_eq!(again.code, ErrorCode::Conflict, "{}", again.message);
        let third = runtime.create(&create("k3", 3_000)).await.unwrap();
        let later = runtime.delete(&delete("d2", &create("k3", 3_000))).await;
        assert_eq!(later.unwrap(), vec![third.runtime_id], "only what is left");
        let older = runtime.delete(&delete("d0", &create("k1", 1_000))).await;
        assert_eq!(older.unwrap_err().code, ErrorCode::Conflict);
        drop(runtime);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The `ready` report is sent with the runtime and delivered
    /// [`REPORT_AFTER`] later, as a real runtime reports once it is up,
    /// not while its create still holds the environment's lease; a
    /// redelivered create sends none.
    #[tokio::test]
    async fn the_ready_report_is_delivered_after_the_create_not_inside_it() {
        let dir =
            std::env::temp_dir().join(format!("envmgr-runtime-{}", crate::support::random_hex(6)));
        let store = Store::open_dir(&dir).unwrap();
        let runtime = LocalRuntime::new(store.clone(), Some("api".into()), None);
        let mut request = create("k1", 1_000);
        let key = crate::capabilities::keys::KeyPair::generate().unwrap();
        request.signing_key = Some(key.private_jwk);
        runtime.create(&request).await.unwrap();
        runtime.create(&request).await.unwrap();
        let hidden = store
            .read(|db| {
                db.prepare("SELECT visible_at_ms - sent_at_ms FROM messages WHERE queue = 'api'")?
                    .query_map([], |row| row.get::<_, i64>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap();
        assert_eq!(
            hidden,
            vec![REPORT_AFTER.as_millis() as i64],
            "one report, hidden"
        );
        drop(runtime);
        let _ = std::fs::remove_dir_all(dir);
    }
}
