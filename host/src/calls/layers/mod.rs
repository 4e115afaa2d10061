//! The steps every capability call takes around its backend, one file
//! each, composed in one place ([`Backends::invoke`]). Each step is an async
//! function that wraps the rest of the call (`next`), the way a tower
//! `Layer` wraps a `Service`; the order they wrap in is the order written in
//! `invoke`, outermost first:
//!
//! 1. [`transcript`]: the call as the transcript shows it (the mock host);
//! 2. [`replay`]: a replayed message is answered from its recording, and
//!    nothing below runs;
//! 3. [`tape`]: a recorded message's typed request and answer on its tape;
//! 4. [`redaction`]: what the dependency sent back, scrubbed;
//! 5. [`metrics`]: a dependency's failure counted by interface and code;
//! 6. [`scripted`]: scripted interleavings, latency and faults (the mock
//!    host), the call's span and its place among the calls in flight;
//! 7. [`health`]: a failure the backend suspected to be the deployment's,
//!    confirmed by a probe, becomes a retryable `unavailable`;
//! 8. [`trace`]: the call's span in the message's trace (when traces are
//!    exported), around the backend itself, so its HTTP and AWS spans are
//!    the call's children and scripted latency is not counted.
//!
//! [`Backends::invoke`]: crate::boundary::Backends::invoke

pub mod health;
pub mod metrics;
pub mod redaction;
pub mod replay;
pub mod scripted;
pub mod tape;
pub mod trace;
pub mod transcript;

use crate::bindings::json::Recordable;
use crate::capabilities::{Describe, Error};
use crate::redact::Scrub;

/// What a call answers: its value, scrubbed and recorded like any other.
pub trait CallValue: Scrub + Recordable + Send {}
impl<T: Scrub + Recordable + Send> CallValue for T {}

/// What a call fails with: a capability error, or one that contains one.
pub trait CallError: From<Error> + Describe + Scrub + Recordable + Send {}
impl<E: From<Error> + Describe + Scrub + Recordable + Send> CallError for E {}

/// A result as the transcript and the tests show it.
pub fn shown<T, E: Describe>(result: &Result<T, E>) -> String {
    match result {
        Ok(_) => "ok".to_string(),
        Err(error) => error.describe(),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A call's answer for the layers' unit tests.

    use crate::capabilities::{Error, ErrorCode, error};

    pub type Answered = Result<String, Error>;

    pub fn failed(code: ErrorCode, message: &str) -> Answered {
        Err(error(code, message))
    }

    /// Runs `future` to its end on a current-thread runtime with paused time.
    pub fn run<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(future)
    }
}
