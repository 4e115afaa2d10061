//! Read-only configuration for the guest (`wasi:config/store`).

use std::collections::BTreeMap;

/// The key under which the guest finds its own logic version (the sha256
/// of its component). The host sets it; the operator's config cannot.
pub const LOGIC_VERSION_KEY: &str = "logic-version";

/// Values the operator sets for the logic, e.g. `preview-url-template`.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub(crate) values: BTreeMap<String, String>,
}

impl Config {
    pub fn new(values: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            values: values.into_iter().collect(),
        }
    }

    /// Every value the operator set, as the recording keeps them.
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}
