//! How a message ends (WIT `types.outcome` / `types.failure`).

use crate::capabilities::CapabilityError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done(String),
    Skipped(String),
    /// Not now: another delivery holds the environment (WIT `deferral`).
    Deferred {
        until_ms: u64,
        reason: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    Retryable,
    Permanent,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub reason: String,
    /// A dependency's Retry-After, passed on to the host's backoff.
    pub retry_after_ms: Option<u64>,
}

impl Failure {
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Permanent,
            reason: reason.into(),
            retry_after_ms: None,
        }
    }

    pub fn retryable(reason: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Retryable,
            reason: reason.into(),
            retry_after_ms: None,
        }
    }

    /// A failed capability call during `step`: retryable when the error may
    /// pass by itself (conflict, throttling, outage), permanent when someone
    /// has to change something first (not found, denied, invalid).
    pub fn at(step: &str, error: &CapabilityError) -> Self {
        let reason = format!("{step}: {error}");
        if error.is_transient() {
            Self {
                retry_after_ms: error.retry_after_ms,
                ..Self::retryable(reason)
            }
        } else {
            Self::permanent(reason)
        }
    }
}

/// `map_err` shorthand: `caps.call().map_err(failed("step"))?`.
pub fn failed(step: &str) -> impl Fn(CapabilityError) -> Failure + '_ {
    move |error| Failure::at(step, &error)
}
