//! A Runtime Service in memory: one runtime per idempotency key, and every
//! call recorded with its plaintext (only this fake may see it).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Created, Runtime, RuntimeDelete, RuntimeRequest};
use crate::capabilities::{CapResult, ErrorCode, error};

#[derive(Default)]
struct State {
    calls: Vec<RuntimeRequest>,
    runtimes: BTreeMap<String, Created>,
    /// The newest request version accepted, per environment (the fence).
    newest: BTreeMap<String, String>,
}

#[derive(Default)]
pub struct MockRuntime {
    state: Mutex<State>,
}

impl MockRuntime {
    /// Every create call, in order, as the service received it.
    pub fn calls(&self) -> Vec<RuntimeRequest> {
        self.lock().calls.clone()
    }

    /// The runtimes that exist, by idempotency key.
    pub fn runtimes(&self) -> BTreeMap<String, Created> {
        self.lock().runtimes.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Runtime for MockRuntime {
    async fn create(&self, request: &RuntimeRequest) -> CapResult<Created> {
        let mut state = self.lock();
        state.calls.push(request.clone());
        // The fencing token: a create older than the newest accepted for
        // the environment is refused (docs/runtime-service.md).
        if !request.request_version.is_empty() {
            let newest = state
                .newest
                .entry(request.environment_id.clone())
                .or_default();
            if request.request_version < *newest {
                return Err(error(
                    ErrorCode::Conflict,
                    format!("runtime service answered 409: superseded by request {newest}"),
                ));
            }
            *newest = request.request_version.clone();
        }
        let number = state.runtimes.len() + 1;
        let created = state
            .runtimes
            .entry(request.idempotency_key.clone())
            .or_insert_with(|| Created {
                runtime_id: format!("rt_{number}"),
                url: Some(format!("https://{}.runtime.test", request.environment_id)),
            })
            .clone();
        Ok(created)
    }

    /// The environment's runtimes created at an older version go; the fence
    /// moves to the delete's version.
    async fn delete(&self, request: &RuntimeDelete) -> CapResult<Vec<String>> {
        let mut state = self.lock();
        let newest = state
            .newest
            .entry(request.environment_id.clone())
            .or_default();
        if request.request_version < *newest {
            return Err(error(
                ErrorCode::Conflict,
                format!(
                    "runtime service answered 409: request {newest} was accepted after this delete"
                ),
            ));
        }
        *newest = request.request_version.clone();
        let State {
            calls, runtimes, ..
        } = &mut *state;
        let removed: Vec<String> = calls
            .iter()
            .filter(|c| {
                c.environment_id == request.environment_id
                    && c.request_version < request.request_version
            })
            .filter_map(|c| runtimes.remove(&c.idempotency_key))
            .map(|created| created.runtime_id)
            .collect();
        Ok(removed)
    }
}
