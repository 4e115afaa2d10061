//! Read-only configuration for the guest (`wasi:config/store`).

use std::collections::BTreeMap;

use crate::bindings::wasi::config::store::{Error, Host};
use crate::engine::Session;
use crate::observe::Call;

/// The key under which the guest finds its own logic version (the sha256
/// of its component). The host sets it; the operator's config cannot.
pub const LOGIC_VERSION_KEY: &str = "logic-version";

/// Values the operator sets for the logic, e.g. `preview-url-template`.
#[derive(Clone, Debug, Default)]
pub struct Config {
    values: BTreeMap<String, String>,
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

impl Host for Session {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, Error>> {
        let value = if key == LOGIC_VERSION_KEY {
            Some(self.logic_version.clone())
        } else {
            self.backends.config.get(&key).map(str::to_string)
        };
        self.backends.observer.record(
            Call::ConfigGet,
            || key.clone(),
            || match &value {
                Some(value) => serde_json::Value::from(value.as_str()).to_string(),
                None => "unset".to_string(),
            },
        );
        Ok(Ok(value))
    }

    async fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, Error>> {
        self.backends
            .observer
            .record(Call::ConfigGet, || "*".to_string(), || "all".to_string());
        let operator = self
            .backends
            .config
            .values
            .iter()
            .filter(|(k, _)| k.as_str() != LOGIC_VERSION_KEY)
            .map(|(k, v)| (k.clone(), v.clone()));
        Ok(Ok(operator
            .chain([(LOGIC_VERSION_KEY.to_string(), self.logic_version.clone())])
            .collect()))
    }
}
