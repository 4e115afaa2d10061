//! Bounds on one message's run: memory (a resource limiter) and time (epochs).

use std::fmt;
use std::time::Duration;

use wasmtime::ResourceLimiter;

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

/// The trap a guest gets when it grows memory past [`Limits::memory_bytes`].
#[derive(Debug)]
pub struct MemoryLimitExceeded {
    pub limit: usize,
    pub desired: usize,
}

impl fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the guest asked for {} bytes of memory; the limit is {}",
            self.desired, self.limit
        )
    }
}

impl std::error::Error for MemoryLimitExceeded {}

/// Refuses growth past the limit with a trap rather than a failed `grow`, so
/// a memory bomb ends the message at once with a clear reason.
pub(crate) struct MemoryLimiter {
    pub(crate) limit: usize,
}

/// Tables hold function references; no sane guest needs more.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            return Err(MemoryLimitExceeded {
                limit: self.limit,
                desired,
            }
            .into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
