//! The `analytics` import: Segment events, through the analytics backend.

use crate::bindings::envmgr::environments::analytics::*;
use crate::boundary::Session;
use crate::calls::requests::others::Track;
use crate::capabilities::CapResult;

impl Host for Session {
    async fn track(&mut self, event: TrackEvent) -> wasmtime::Result<CapResult<()>> {
        let b = self.backends.clone();
        Ok(self
            .invoke(self.describe(&Track(&event)), b.analytics.track(&event))
            .await)
    }
}
