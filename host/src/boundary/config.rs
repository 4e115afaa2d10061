//! The `wasi:config/store` import: the values the operator configured for the
//! logic, and the running logic version's id.

use crate::bindings::wasi::config::store::*;
use crate::boundary::Session;
use crate::calls::Call;
use crate::capabilities::config::LOGIC_VERSION_KEY;

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
