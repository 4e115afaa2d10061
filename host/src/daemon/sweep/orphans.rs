//! `envmgr sweep --orphans`: the runtimes the Runtime Service still runs
//! for environments whose record is deleted or gone (a delete the service
//! lost, a tombstone purged before a runtime it never reported, a runtime
//! made by hand). The service's list call is optional
//! (`docs/runtime-service.md`, "List runtimes"): without it there is
//! nothing to compare, and the command says so.
//!
//! The record is read as `docs/data-model.md` writes it (`ENVIRONMENT#{id}
//! / #` in `environments`): the one place the host reads the logic's key
//! schema, for an operator's command, as `show` does. A record that is
//! live (any status but `deleted`) keeps its runtimes: the logic ends those.
//! With `--yes` each orphan's environment gets the service's delete, fenced
//! past the runtime's own version, so a create older than it is refused
//! from then on and a newer one is untouched.

use crate::capabilities::dynamodb::Tables;
use crate::capabilities::dynamodb::fields::{s, text};
use crate::capabilities::runtime::{Listed, Runtime, RuntimeDelete};
use crate::capabilities::{Describe as _, ErrorCode};

/// The consumer's table of environments.
const ENVIRONMENTS_TABLE: &str = "environments";
/// A deleted record's status.
const DELETED: &str = "deleted";

/// A runtime with no live environment.
pub struct Orphan {
    pub runtime: Listed,
    /// The record's request version when it is a tombstone; None: no record.
    pub tombstone: Option<String>,
}

impl Orphan {
    /// Why it is an orphan, for the operator.
    pub fn why(&self) -> String {
        match &self.tombstone {
            Some(version) => format!("environment deleted at {version}"),
            None => "no environment record".to_string(),
        }
    }

    /// The delete that removes it: past the runtime's version and the
    /// tombstone's, whichever is later.
    fn delete(&self) -> RuntimeDelete {
        let past_runtime = format!("{}#delete", self.runtime.request_version);
        let fence = match &self.tombstone {
            Some(tombstone) if *tombstone > past_runtime => tombstone.clone(),
            _ => past_runtime,
        };
        RuntimeDelete {
            idempotency_key: format!("orphan:{}:{fence}", self.runtime.environment_id),
            app_id: self.runtime.app_id.clone(),
            environment_id: self.runtime.environment_id.clone(),
            environment_type: self.runtime.environment_type.clone(),
            request_version: fence,
            reason: "orphan".to_string(),
        }
    }
}

/// The runtimes the service lists whose environment is deleted or gone.
pub async fn find(runtime: &dyn Runtime, tables: &dyn Tables) -> anyhow::Result<Vec<Orphan>> {
    let listed = runtime.list().await.map_err(|e| match e.code {
        ErrorCode::NotFound => anyhow::anyhow!(
            "the Runtime Service offers no list of runtimes (GET /v1/runtimes): \
             orphans cannot be found ({})",
            e.message
        ),
        _ => anyhow::anyhow!("listing the Runtime Service's runtimes: {}", e.describe()),
    })?;
    let mut orphans = Vec::new();
    for runtime in listed {
        let key = vec![
            s("pk", format!("ENVIRONMENT#{}", runtime.environment_id)),
            s("sk", "#"),
        ];
        let record = tables
            .get(ENVIRONMENTS_TABLE, &key)
            .await
            .map_err(|e| anyhow::anyhow!("reading {}: {}", runtime.environment_id, e.describe()))?;
        let tombstone = match record {
            None => None,
            Some(item) if text(&item, "status").as_deref() == Some(DELETED) => {
                Some(text(&item, "requestVersion").unwrap_or_default())
            }
            Some(_) => continue,
        };
        orphans.push(Orphan { runtime, tombstone });
    }
    Ok(orphans)
}

/// Remove `orphan`'s runtimes: the ids the service removed.
pub async fn remove(runtime: &dyn Runtime, orphan: &Orphan) -> anyhow::Result<Vec<String>> {
    runtime.delete(&orphan.delete()).await.map_err(|e| {
        anyhow::anyhow!(
            "deleting the runtimes of {}: {}",
            orphan.runtime.environment_id,
            e.describe()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::dynamodb::local::LocalTables;
    use crate::capabilities::runtime::local::LocalRuntime;

    fn created(environment: &str, version: &str) -> crate::capabilities::runtime::RuntimeRequest {
        crate::capabilities::runtime::RuntimeRequest {
            idempotency_key: format!("create:{environment}:{version}"),
            app_id: "app_shop".into(),
            environment_id: environment.into(),
            environment_type: "preview".into(),
            repository: "acme/shop".into(),
            branch: "b".into(),
            sha: "a".repeat(40),
            request_version: version.into(),
            entrypoint: "index.ts".into(),
            installation_token: None,
            secrets: Vec::new(),
            signing_key: None,
        }
    }

    /// Three runtimes: one of a live environment (kept), one of a deleted
    /// environment and one with no record (both orphans, both removed once
    /// `--yes` runs, and a second look finds none).
    #[tokio::test]
    async fn runtimes_of_deleted_or_missing_environments_are_orphans_and_go() {
        let store = crate::local::Store::in_memory().unwrap();
        let tables = LocalTables::new(store.clone(), [(ENVIRONMENTS_TABLE, ENVIRONMENTS_TABLE)]);
        let runtime = LocalRuntime::keeping_calls(store.clone(), None);
        let version = |ms: u64| format!("{ms:013}#{}", "b".repeat(40));
        let (live, deleted, missing) = ("env_live", "env_deleted", "env_missing");
        for environment in [live, deleted, missing] {
            runtime
                .create(&created(environment, &version(1)))
                .await
                .unwrap();
        }
        for (environment, status, at) in [
            (live, "ready", version(1)),
            (deleted, DELETED, format!("{}#delete", version(2))),
        ] {
            let item = vec![
                s("pk", format!("ENVIRONMENT#{environment}")),
                s("sk", "#"),
                s("status", status),
                s("requestVersion", at),
            ];
            tables.put(ENVIRONMENTS_TABLE, item).unwrap();
        }
        let orphans = find(&runtime, &tables).await.unwrap();
        let mut named: Vec<(&str, String)> = orphans
            .iter()
            .map(|o| (o.runtime.environment_id.as_str(), o.why()))
            .collect();
        named.sort();
        assert_eq!(
            named,
            [
                (
                    deleted,
                    format!("environment deleted at {}#delete", version(2))
                ),
                (missing, "no environment record".to_string()),
            ]
        );
        for orphan in &orphans {
            assert_eq!(remove(&runtime, orphan).await.unwrap().len(), 1);
        }
        assert!(find(&runtime, &tables).await.unwrap().is_empty());
        let left: Vec<String> = runtime
            .live()
            .unwrap()
            .iter()
            .map(|r| r.request["environmentId"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(left, [live]);
    }
}
