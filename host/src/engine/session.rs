//! The state of one message's store: WASI (clock and random only), the
//! resource table holding sealed values, the memory limiter and the backends.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::capabilities::Backends;
use crate::engine::limits::MemoryLimiter;

pub struct Session {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) backends: Arc<Backends>,
}

impl WasiView for Session {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
