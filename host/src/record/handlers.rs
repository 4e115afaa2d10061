//! Which logic versions handled the recordings still kept. `logic gc`
//! must not remove a version a recording names: replaying the recording
//! runs its handler beside the candidate. Reading every recording to learn
//! this would read the whole table (gigabytes on aws, for days of
//! traffic); instead the recorder marks each handler, at most once per
//! [`MARK_EVERY`] per host:
//!
//! | pk | sk | what |
//! |---|---|---|
//! | `HANDLER` | `{version}` | `handledAt` (ms, the newest mark), `expiresAt` (seconds, TTL) |
//! | `HANDLER` | `#since` | `at` (ms): since when recorders mark (never expires) |
//!
//! A mark expires the recordings' retention plus [`MARK_EVERY`] after it
//! was written: later than any recording of its version made before the
//! next mark. A mark that could not be written is tried again on the
//! recorder's timer, so a version that stopped serving is marked too.
//! Recordings from before the marks (a deployment upgraded to them) name
//! handlers no mark names: while any is kept, [`Recordings::handlers`]
//! says it does not know, and `logic gc` keeps every version.

use std::collections::HashMap;
use std::time::Duration;

use crate::capabilities::Describe as _;
use crate::capabilities::dynamodb::fields::{n, number, s, text};
use crate::capabilities::dynamodb::{Condition, PutItem, QueryRequest, Write, WriteError};
use crate::record::store::{HOUR_MS, Recordings, TABLE};

/// The sort key of the item that says since when marks are written.
const SINCE: &str = "#since";

/// How often one host marks a version that keeps handling messages.
pub const MARK_EVERY: Duration = Duration::from_secs(3_600);

impl Recordings {
    /// Say that `version` handled a recording kept from `now_ms`.
    pub async fn mark_handler(&self, version: &str, now_ms: u64) -> anyhow::Result<()> {
        let item = vec![
            s("pk", "HANDLER"),
            s("sk", version),
            n("handledAt", now_ms),
            n(
                "expiresAt",
                self.expires_at_s(now_ms) + MARK_EVERY.as_secs(),
            ),
        ];
        self.put_item(item, "marking a recording's handler").await
    }

    /// Say that recorders mark handlers from `now_ms` on, unless one said
    /// so before (the earliest stays).
    pub async fn marks_begin(&self, now_ms: u64) -> anyhow::Result<()> {
        let put = Write::Put(PutItem {
            table: TABLE.into(),
            item: vec![s("pk", "HANDLER"), s("sk", SINCE), n("at", now_ms)],
            condition: Condition::ItemAbsent,
        });
        match self.tables.transact_write(&[put]).await {
            Ok(()) | Err(WriteError::ConditionFailed(_)) => Ok(()),
            Err(WriteError::Failed(e)) => {
                anyhow::bail!("saying since when handlers are marked: {}", e.describe())
            }
        }
    }

    /// The versions that handled recordings still kept; none when a kept
    /// recording may be older than the marks (its handler unknown).
    pub async fn handlers(&self, now_ms: u64) -> anyhow::Result<Option<Vec<String>>> {
        let items = self.partition("HANDLER").await?;
        let since = items
            .iter()
            .find(|item| text(item, "sk").as_deref() == Some(SINCE))
            .and_then(|item| number(item, "at"));
        let oldest_kept = now_ms.saturating_sub(self.settings.retention_hours * HOUR_MS);
        let unmarked_until = since.unwrap_or(now_ms);
        if unmarked_until > oldest_kept
            && self.recorded_between(oldest_kept, unmarked_until).await?
        {
            return Ok(None);
        }
        Ok(Some(
            items
                .iter()
                .filter(|item| text(item, "sk").as_deref() != Some(SINCE))
                .filter(|item| number(item, "expiresAt").is_none_or(|at| at * 1_000 > now_ms))
                .filter_map(|item| text(item, "sk"))
                .collect(),
        ))
    }

    /// Whether any recording is stored in the hours from `from_ms` to
    /// `until_ms` (one read of one item per hour; a whole hour counts).
    async fn recorded_between(&self, from_ms: u64, until_ms: u64) -> anyhow::Result<bool> {
        for hour in from_ms / HOUR_MS..=until_ms / HOUR_MS {
            let page = self
                .tables
                .query(&QueryRequest {
                    table: TABLE.into(),
                    partition: format!("REC#{hour:08}"),
                    sort_prefix: None,
                    limit: Some(1),
                    start_after: None,
                })
                .await
                .map_err(|e| anyhow::anyhow!("reading recordings: {}", e.describe()))?;
            if !page.items.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// One host's memory of what it marked, so a busy version costs one write
/// an hour. Bound: the versions marked within the last [`MARK_EVERY`]
/// (older entries are dropped at each mark).
#[derive(Default)]
pub struct Marked {
    at: HashMap<String, u64>,
    /// Marks not written yet, tried again on the recorder's timer. Bound:
    /// the versions serving since the last write that worked.
    pending: std::collections::BTreeSet<String>,
}

impl Marked {
    /// Whether `version` is due a mark at `now_ms`; if so, it counts as
    /// marked from now (see [`Marked::unmark`] when the write fails).
    pub fn due(&mut self, version: &str, now_ms: u64) -> bool {
        let every = MARK_EVERY.as_millis() as u64;
        if self
            .at
            .get(version)
            .is_some_and(|at| now_ms.saturating_sub(*at) < every)
        {
            return false;
        }
        self.at.retain(|_, at| now_ms.saturating_sub(*at) < every);
        self.at.insert(version.to_string(), now_ms);
        self.pending.remove(version);
        true
    }

    /// The mark was not written: due again with the next recording, or
    /// on the timer ([`Marked::take_pending`]).
    pub fn unmark(&mut self, version: &str) {
        self.at.remove(version);
        self.pending.insert(version.to_string());
    }

    /// The marks to try again now; each counts as marked from `now_ms`.
    pub fn take_pending(&mut self, now_ms: u64) -> Vec<String> {
        let pending = std::mem::take(&mut self.pending);
        for version in &pending {
            self.at.insert(version.clone(), now_ms);
        }
        pending.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_marked_once_an_hour_and_the_memory_stays_small() {
        let mut marked = Marked::default();
        let hour = MARK_EVERY.as_millis() as u64;
        assert!(marked.due("a", 0));
        assert!(!marked.due("a", hour - 1));
        assert!(marked.due("a", hour));
        // A thousand versions over a thousand hours: one remembered.
        for i in 0..1_000 {
            assert!(marked.due(&format!("v{i}"), hour * (2 + i)));
        }
        assert_eq!(marked.at.len(), 1);
    }
}
