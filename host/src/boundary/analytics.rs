//! The `analytics` import: Segment events, through the analytics backend.

use crate::bindings::envmgr::environments::analytics::*;
use crate::boundary::Session;
use crate::calls::Call;
use crate::capabilities::CapResult;

impl Host for Session {
    async fn track(&mut self, event: TrackEvent) -> wasmtime::Result<CapResult<()>> {
        let b = self.backends.clone();
        Ok(self
            .invoke(
                Call::AnalyticsTrack,
                || {
                    format!(
                        "{} user={} properties={} id={}",
                        event.event, event.user_id, event.properties_json, event.message_id
                    )
                },
                self.typed(|| {
                    serde_json::json!({
                        "event": event.event,
                        "user-id": event.user_id,
                        "properties-json": event.properties_json,
                        "message-id": event.message_id,
                    })
                }),
                b.analytics.track(&event),
            )
            .await)
    }
}
