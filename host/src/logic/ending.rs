//! How a message ended, as each host counts it per logic version: what
//! `/metrics` shows and what a canary is judged on.

use serde::Serialize;

/// How a message ended, as counted per version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ending {
    Done,
    Skipped,
    /// Put back to wait for an environment another delivery holds: neither
    /// a success nor a failure of the logic.
    Deferred,
    Retryable,
    Permanent,
    Trap,
    Timeout,
    Memory,
    /// Failed while the host was unhealthy: the deployment's fault, not
    /// the logic's, and not counted for or against a canary.
    HostFault,
}

impl Ending {
    pub const ALL: [Ending; 9] = [
        Ending::Done,
        Ending::Skipped,
        Ending::Deferred,
        Ending::Retryable,
        Ending::Permanent,
        Ending::Trap,
        Ending::Timeout,
        Ending::Memory,
        Ending::HostFault,
    ];

    /// What a canary is judged on. A retryable failure is a dependency's
    /// trouble, not the logic's.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Ending::Permanent | Ending::Trap | Ending::Timeout | Ending::Memory
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Ending::Done => "done",
            Ending::Skipped => "skipped",
            Ending::Deferred => "deferred",
            Ending::Retryable => "retryable",
            Ending::Permanent => "permanent",
            Ending::Trap => "trap",
            Ending::Timeout => "timeout",
            Ending::Memory => "memory",
            Ending::HostFault => "host-fault",
        }
    }
}
