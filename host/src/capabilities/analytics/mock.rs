//! Records tracked events.

use std::sync::Mutex;

use async_trait::async_trait;

use super::{Analytics, TrackEvent};
use crate::capabilities::CapResult;

#[derive(Default)]
pub struct MockAnalytics {
    events: Mutex<Vec<TrackEvent>>,
}

impl MockAnalytics {
    pub fn events(&self) -> Vec<TrackEvent> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait]
impl Analytics for MockAnalytics {
    async fn track(&self, event: &TrackEvent) -> CapResult<()> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event.clone());
        Ok(())
    }
}
