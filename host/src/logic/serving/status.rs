//! What `/status` shows of the logic versions a host serves: the pointer
//! revision, the active and canary versions, each version's outcome
//! counts and the last swap's figures.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{UNNAMED_KEPT, Versions};
use crate::logic::ending::Ending;

/// Measured at each swap (exposed on `/status`, logged).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SwapFigures {
    pub revision: u64,
    /// From the pointer's change to this host serving it.
    pub pointer_to_swap_ms: u64,
    /// Loading the versions (cached native code, or a compile).
    pub load_ms: u64,
    /// From the pointer's change to the first message on the new versions.
    pub pointer_to_first_message_ms: Option<u64>,
}

/// `/status`: camelCase, as every JSON envmgr prints (the endpoint adds
/// the snake_case `last_swap` of earlier releases for one more release).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub revision: Option<u64>,
    pub active: String,
    pub canary: Option<CanaryStatus>,
    pub versions: BTreeMap<String, BTreeMap<&'static str, u64>>,
    pub last_swap: Option<SwapFigures>,
}

#[derive(Debug, Serialize)]
pub struct CanaryStatus {
    pub version: String,
    pub percent: u8,
}

impl Versions {
    pub fn status(&self) -> Status {
        // Scraped regularly: where figures of versions gone for a while go.
        self.forget_unnamed(UNNAMED_KEPT);
        let serving = self.current();
        let stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        Status {
            revision: serving.revision,
            active: serving.active.id.clone(),
            canary: serving
                .canary
                .as_ref()
                .map(|(logic, percent)| CanaryStatus {
                    version: logic.id.clone(),
                    percent: *percent,
                }),
            versions: stats
                .iter()
                .map(|(version, s)| {
                    (
                        version.clone(),
                        Ending::ALL
                            .iter()
                            .map(|e| (e.name(), s.counts.get(e).copied().unwrap_or(0)))
                            .collect(),
                    )
                })
                .collect(),
            last_swap: self
                .last_swap
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}
