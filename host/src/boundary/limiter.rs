//! The memory limit of one message's store: a guest that asks for more
//! memory than its limit traps with [`MemoryLimitExceeded`], which the engine
//! reports as the message's failure rather than the host's.

use std::fmt;

use wasmtime::ResourceLimiter;

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
