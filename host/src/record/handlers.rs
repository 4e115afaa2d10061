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
//!
//! A mark expires the recordings' retention plus [`MARK_EVERY`] after it
//! was written: later than any recording of its version made before the
//! next mark, so a kept recording's handler is always marked.

use std::collections::HashMap;
use std::time::Duration;

use crate::capabilities::dynamodb::fields::{n, number, s, text};
use crate::record::store::Recordings;

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

    /// The versions that handled recordings still kept.
    pub async fn handlers(&self, now_ms: u64) -> anyhow::Result<Vec<String>> {
        Ok(self
            .partition("HANDLER")
            .await?
            .iter()
            .filter(|item| number(item, "expiresAt").is_none_or(|at| at * 1_000 > now_ms))
            .filter_map(|item| text(item, "sk"))
            .collect())
    }
}

/// One host's memory of what it marked, so a busy version costs one write
/// an hour. Bound: the versions marked within the last [`MARK_EVERY`]
/// (older entries are dropped at each mark).
#[derive(Default)]
pub struct Marked {
    at: HashMap<String, u64>,
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
        true
    }

    /// The mark was not written: due again with the next recording.
    pub fn unmark(&mut self, version: &str) {
        self.at.remove(version);
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
