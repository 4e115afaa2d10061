//! Bounds on one message's run: memory (a resource limiter) and time (epochs).

use std::time::Duration;

/// The limits every message runs under.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest linear memory a guest may grow to.
    pub memory_bytes: usize,
    /// Longest a message may run, host calls included.
    pub deadline: Duration,
    /// Messages that may run at once (sizes the instance pool).
    pub concurrency: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            deadline: Duration::from_secs(60),
            concurrency: 32,
        }
    }
}
