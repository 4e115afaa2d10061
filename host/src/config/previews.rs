//! `[previews]`: how previews end (docs/data-model.md, "The end of an
//! environment"). The logic reads these as `wasi:config` keys
//! ([`Previews::config_values`]); the sweep is the daemon's
//! (`daemon/sweep.rs`).

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Previews {
    /// A preview with no request for this many days is removed by the
    /// sweep, its comment saying how to bring it back; 0: never.
    pub max_idle_days: u64,
    /// How often one host of the deployment sweeps (one `sweep` message per
    /// app on the `api` queue); 0: never. The sweep also finishes deletes
    /// that stopped (`deleting`).
    pub sweep_every_seconds: u64,
    /// How long a deleted environment's tombstone is kept (its items'
    /// `purgeAt`): longer than a message can live on a queue and its
    /// dead-letter queue (4 + 14 days), so a redriven older create still
    /// finds the delete newer than itself.
    pub tombstone_days: u64,
    /// Delete the GitHub environment `preview/{branch}` too when a preview
    /// ends (GitHub keeps it, with its history, otherwise). Needs the App's
    /// Administration: write permission, which also lets it change the
    /// repository's settings: off unless asked for.
    pub delete_github_environment: bool,
}

impl Default for Previews {
    fn default() -> Self {
        Self {
            max_idle_days: 14,
            sweep_every_seconds: 3_600,
            tombstone_days: 30,
            delete_github_environment: false,
        }
    }
}

/// The config keys the logic reads them by (`guest/src/flow/teardown.rs`).
pub const PREVIEW_CONFIG_KEYS: [&str; 3] = [
    "preview-max-idle-days",
    "tombstone-days",
    "delete-github-environment",
];

impl Previews {
    /// As `wasi:config` values, in [`PREVIEW_CONFIG_KEYS`]' order.
    pub fn config_values(&self) -> [(String, String); 3] {
        let [idle, tombstone, github] = PREVIEW_CONFIG_KEYS;
        [
            (idle.to_string(), self.max_idle_days.to_string()),
            (tombstone.to_string(), self.tombstone_days.to_string()),
            (
                github.to_string(),
                self.delete_github_environment.to_string(),
            ),
        ]
    }
}
