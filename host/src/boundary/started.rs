//! The guest's started calls (`start-*` in the WIT) as resources in the
//! message's table: started, subscribed to, answered, forgotten.

use std::future::Future;

use wasmtime::component::Resource;

use crate::bindings::Error;
use crate::bindings::pending::{Answer, Pending};
use crate::boundary::Session;

impl Session {
    /// Start `call` for the guest; the future resource it waits on.
    pub(crate) async fn start<T: Answer>(
        &mut self,
        call: impl Future<Output = T> + Send + 'static,
    ) -> wasmtime::Result<Resource<Pending<T>>> {
        let pending = Pending::start(call, self.deadline, T::past_deadline).await;
        Ok(self.table.push(pending)?)
    }

    /// A pollable for the guest's future `handle`.
    pub(crate) fn subscribe<T: Send + 'static>(
        &mut self,
        handle: Resource<Pending<T>>,
    ) -> wasmtime::Result<Resource<wasmtime_wasi::p2::DynPollable>> {
        wasmtime_wasi::p2::subscribe(&mut self.table, handle)
    }

    /// The answer of the guest's future `handle`, if its call ended.
    pub(crate) fn take_answer<T: Send + 'static>(
        &mut self,
        handle: &Resource<Pending<T>>,
    ) -> wasmtime::Result<Option<Result<T, Error>>> {
        self.table.get_mut(handle)?.take()
    }

    /// The guest dropped its future; the call goes on if it still runs.
    pub(crate) fn forget<T: Send + 'static>(
        &mut self,
        handle: Resource<Pending<T>>,
    ) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

/// The guest's side of a started call's answer: `none` while it runs; a
/// failure of the call itself in the call's own error type.
pub(super) fn answer<T, E: From<Error>>(
    taken: Option<Result<Result<T, E>, Error>>,
) -> Option<Result<T, E>> {
    taken.map(|answer| answer.unwrap_or_else(|error| Err(E::from(error))))
}
