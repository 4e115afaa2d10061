//! The sweep's timer (`[previews] sweep_every_seconds`): one host of the
//! deployment at a time sends one `sweep` message per app on the `api`
//! queue; the logic ends the app's idle previews and finishes deletes that
//! stopped (`guest/src/flow/sweep.rs`). The host knows the apps (it scans
//! the `apps` table, as `check-data` does); which previews are idle, and
//! what ending one takes, is the logic's.
//!
//! One host at a time: a lock item (`SWEEP / LOCK`) in the host's own
//! `logic` table, taken for one period under the condition that whoever
//! held it let it lapse (`heldUntil`), expiring by the table's time to live
//! an hour after. A host that dies holding it delays the next sweep by at
//! most one period. Two sweeps at once would be safe (each delete is
//! ordered and idempotent), only wasted.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

pub mod dry_run;
pub mod orphans;

use crate::capabilities::Describe as _;
use crate::capabilities::dynamodb::fields::{n, s, text};
use crate::capabilities::dynamodb::{
    AttributeCheck, AttributeValue, Condition, Tables, UpdateItem, WriteError,
};
use crate::queue::Queue;

/// The host's own table the lock is in.
const LOGIC_TABLE: &str = "logic";
/// The consumer's table of apps.
const APPS_TABLE: &str = "apps";

pub struct Sweep {
    pub every: Duration,
    /// The host's `logic` table (the lock).
    pub logic: Arc<dyn Tables>,
    /// The consumer's tables (`apps`).
    pub tables: Arc<dyn Tables>,
    pub api: Arc<dyn Queue>,
    pub host_id: String,
    /// What this host serves (`serve`; none for `envmgr sweep`): a logic
    /// version from before teardown would dead-letter every `sweep`
    /// message, so none is sent while one is active.
    pub versions: Option<Arc<crate::logic::serving::Versions>>,
}

impl Sweep {
    /// Until `stop`; the first pass after a random part of `every`.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        crate::support::periodically(self.every, stop, || async {
            if let Some(contract) = self.active_does_not_sweep() {
                info!(
                    contract,
                    "sweep skipped: the active logic version does not sweep"
                );
                return;
            }
            let now = crate::support::now_ms().max(0) as u64;
            match self.once(now).await {
                Ok(Some(apps)) => info!(apps, "sweep sent"),
                Ok(None) => {}
                Err(e) => warn!(error = %format!("{e:#}"), "sweep not sent; trying again later"),
            }
        })
        .await;
    }

    /// The active version's contract, when it is one from before teardown.
    fn active_does_not_sweep(&self) -> Option<&'static str> {
        let contract = self.versions.as_ref()?.current().active.contract;
        crate::contract::BEFORE_TEARDOWN
            .contains(&contract)
            .then_some(contract)
    }

    /// One pass at `now_ms`: the number of apps swept, or None when another
    /// host holds this period's sweep.
    pub async fn once(&self, now_ms: u64) -> anyhow::Result<Option<usize>> {
        if !self.take(now_ms).await? {
            return Ok(None);
        }
        self.send_now(None).await.map(Some)
    }

    /// A sweep of every app (or `only` that one) now, whatever the period's lock
    /// says (`envmgr sweep`: a sweep more is only wasted): how many apps.
    pub async fn send_now(&self, only: Option<&str>) -> anyhow::Result<usize> {
        let apps = apps(self.tables.as_ref(), only).await?;
        for app_id in &apps {
            self.api.send(&sweep_message(app_id)).await?;
        }
        Ok(apps.len())
    }

    /// Take this period's lock: only if whoever held it let it lapse.
    async fn take(&self, now_ms: u64) -> anyhow::Result<bool> {
        let held_until = now_ms + self.every.as_millis() as u64;
        let update = UpdateItem {
            table: LOGIC_TABLE.to_string(),
            key: vec![s("pk", "SWEEP"), s("sk", "LOCK")],
            set: vec![
                s("holder", self.host_id.clone()),
                n("heldUntil", held_until),
                n("expiresAt", held_until / 1_000 + 3_600),
            ],
            condition: Condition::AbsentOrAtMost(AttributeCheck {
                name: "heldUntil".to_string(),
                value: AttributeValue::N(now_ms.to_string()),
            }),
        };
        match self.logic.update(&update).await {
            Ok(()) => Ok(true),
            Err(WriteError::ConditionFailed(_)) => Ok(false),
            Err(WriteError::Failed(e)) => {
                anyhow::bail!("taking the sweep's lock: {}", e.describe())
            }
        }
    }
}

/// The `sweep` message of app `app_id` (`docs/messages.md`).
pub fn sweep_message(app_id: &str) -> String {
    serde_json::json!({ "version": 1, "kind": "sweep", "appId": app_id }).to_string()
}

/// Every app's id in the apps table (`APP#{id} / #`), or only `only`.
pub async fn apps(tables: &dyn Tables, only: Option<&str>) -> anyhow::Result<Vec<String>> {
    let items = tables
        .scan_all(APPS_TABLE)
        .await
        .map_err(|e| anyhow::anyhow!("reading the apps: {}", e.describe()))?;
    Ok(items
        .iter()
        .filter_map(|app| {
            let (pk, sk) = (text(app, "pk")?, text(app, "sk")?);
            pk.strip_prefix("APP#")
                .filter(|_| sk == "#")
                .map(str::to_string)
        })
        .filter(|app_id| only.is_none_or(|only| only == app_id))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::dynamodb::local::LocalTables;

    /// One host sweeps per period: a second host finds the lock taken, and
    /// takes it once the period passed. One message per app, none for an
    /// app's index items.
    #[tokio::test]
    async fn one_host_sweeps_a_period_and_sends_one_message_per_app() {
        let store = crate::local::Store::in_memory().unwrap();
        let tables = Arc::new(LocalTables::new(
            store.clone(),
            [(LOGIC_TABLE, LOGIC_TABLE), (APPS_TABLE, APPS_TABLE)],
        ));
        for (pk, sk) in [("APP#a", "#"), ("APP#b", "#"), ("REPO#acme/shop", "#")] {
            tables
                .put(APPS_TABLE, vec![s("pk", pk), s("sk", sk)])
                .unwrap();
        }
        let settings = crate::config::Queue::named("envmgr-api");
        let api = Arc::new(crate::queue::local::LocalQueue::new(
            store.clone(),
            "api",
            &settings,
        ));
        let sweep = |host: &str| Sweep {
            every: Duration::from_secs(3_600),
            logic: tables.clone(),
            tables: tables.clone(),
            api: api.clone(),
            host_id: host.to_string(),
            versions: None,
        };
        let now = 1_800_000_000_000;
        assert_eq!(sweep("one").once(now).await.unwrap(), Some(2));
        assert_eq!(sweep("two").once(now + 1_000).await.unwrap(), None);
        assert_eq!(sweep("two").once(now + 3_600_000).await.unwrap(), Some(2));
        let sent = api.receive(10).await.unwrap();
        assert_eq!(sent.len(), 4);
        assert!(
            sent.iter()
                .all(|m| m.message.body.contains(r#""kind":"sweep""#))
        );
    }
}
