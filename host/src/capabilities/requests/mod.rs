//! Requests the logic leaves for later (`requests.send`): a platform API
//! request put on the host's `api` queue — the sweep's deletes, one message
//! per preview, so each runs through the queue, lease and dead-letter path
//! as any other. The queue behind it is the daemon's (`daemon::requests`);
//! here is what the boundary and the mock host see.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::capabilities::{CapResult, ErrorCode, error};

#[async_trait]
pub trait Requests: Send + Sync {
    /// Put `body` on the `api` queue: the message id.
    async fn send(&self, body: &str) -> CapResult<String>;
}

/// Nowhere to send (`replay`, a host without an `api` queue).
pub struct NoQueue;

#[async_trait]
impl Requests for NoQueue {
    async fn send(&self, _body: &str) -> CapResult<String> {
        Err(error(
            ErrorCode::Unavailable,
            "this host has no api queue to send requests to",
        ))
    }
}

/// Sends kept in memory, in order, not sent anywhere: the mock host (a test
/// delivers them) and `envmgr sweep --dry-run` (it prints them).
/// Bounded by what one message may send (the boundary's cap) times the
/// messages run against it: a test's or one dry run's.
#[derive(Default)]
pub struct Kept {
    bodies: Mutex<Vec<String>>,
}

impl Kept {
    /// The bodies sent so far, oldest first, and forgets them.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.bodies.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[async_trait]
impl Requests for Kept {
    async fn send(&self, body: &str) -> CapResult<String> {
        let mut bodies = self.bodies.lock().unwrap_or_else(|e| e.into_inner());
        bodies.push(body.to_string());
        Ok(format!("kept-{}", bodies.len()))
    }
}
