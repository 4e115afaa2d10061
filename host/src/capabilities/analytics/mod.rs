//! Product analytics (Segment). Tracking is best effort: the guest ignores
//! errors, and real backends buffer and send in the background.

pub mod disabled;
pub mod local;
pub mod segment;

use async_trait::async_trait;

pub use crate::bindings::envmgr::environments::analytics::TrackEvent;
use crate::capabilities::CapResult;

#[async_trait]
pub trait Analytics: Send + Sync {
    /// Accept an event for sending; must not wait for the network.
    async fn track(&self, event: &TrackEvent) -> CapResult<()>;
}
