//! Keeps a running message hidden: its lease is renewed at half the
//! visibility timeout until the guard drops.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::queue::Queue;

/// Renews a lease until dropped.
pub struct Lease(JoinHandle<()>);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub fn extend_while_running(
    queue: Arc<dyn Queue>,
    receipt: String,
    visibility_seconds: i32,
) -> Lease {
    Lease(tokio::spawn(async move {
        let every = Duration::from_secs((visibility_seconds.max(2) / 2) as u64);
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = queue.change_visibility(&receipt, visibility_seconds).await {
                tracing::warn!(error = %e, "lease extension failed");
            }
        }
    }))
}
