//! Read-only configuration for the guest (`wasi:config/store`).

use std::collections::BTreeMap;

use crate::bindings::wasi::config::store::{Error, Host};
use crate::engine::Session;
use crate::observe::Call;

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

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

impl Host for Session {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, Error>> {
        let value = self.backends.config.get(&key).map(str::to_string);
        self.backends
            .observer
            .record(Call::ConfigGet, || key.clone(), || format!("{value:?}"));
        Ok(Ok(value))
    }

    async fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, Error>> {
        self.backends
            .observer
            .record(Call::ConfigGet, || "*".to_string(), || "all".to_string());
        Ok(Ok(self
            .backends
            .config
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()))
    }
}
