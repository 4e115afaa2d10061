//! Product analytics (Segment). Tracking is best effort: the guest ignores
//! errors, and real backends buffer and send in the background.

pub mod disabled;
pub mod local;
pub mod mock;
pub mod segment;

use async_trait::async_trait;

use crate::bindings::envmgr::environments::analytics::Host;
pub use crate::bindings::envmgr::environments::analytics::TrackEvent;
use crate::capabilities::CapResult;
use crate::engine::Session;
use crate::observe::Call;

#[async_trait]
pub trait Analytics: Send + Sync {
    /// Accept an event for sending; must not wait for the network.
    async fn track(&self, event: &TrackEvent) -> CapResult<()>;
}

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
