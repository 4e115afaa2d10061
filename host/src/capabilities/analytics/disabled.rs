//! Analytics switched off (no `[segment]` in the config): events are dropped.

use async_trait::async_trait;

use super::{Analytics, TrackEvent};
use crate::capabilities::CapResult;

pub struct Disabled;

#[async_trait]
impl Analytics for Disabled {
    async fn track(&self, event: &TrackEvent) -> CapResult<()> {
        tracing::debug!(event = %event.event, "analytics disabled; event dropped");
        Ok(())
    }
}
