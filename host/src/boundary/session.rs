//! The state of one message's store: WASI (clock and random only), the
//! resource table holding sealed values, the memory limiter and the backends.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::boundary::Backends;
use crate::boundary::limiter::MemoryLimiter;

pub struct Session {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) backends: Arc<Backends>,
    /// The id of the logic version running this message; the guest reads
    /// it as config key [`LOGIC_VERSION_KEY`](crate::capabilities::config::LOGIC_VERSION_KEY).
    pub(crate) logic_version: String,
    /// Knows the process's credentials and every plaintext this message
    /// holds: what dependencies send back passes it.
    pub(crate) redactor: crate::redact::Redactor,
    /// When the message's deadline passes: a call the guest started ends by
    /// then.
    pub(crate) deadline: std::time::Instant,
    /// `requests.send` calls made so far (at most
    /// [`MOST_SENDS`](super::requests::MOST_SENDS) per message).
    pub(crate) sends: u32,
}

impl WasiView for Session {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
