//! Host-side bindings of the contract in `wit/`.
//!
//! Every import is `async` (backends do network I/O; to the guest a call still
//! blocks) and `trappable` (a host bug, such as a handle missing from the
//! resource table, traps the one message instead of panicking the daemon).

wasmtime::component::bindgen!({
    world: "environment-manager",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "envmgr:environments/sealed.sealed-value": crate::capabilities::sealed::SealedValue,
    },
});

pub use self::envmgr::environments::types::{Error, ErrorCode, FailureKind};

/// A failure kind as the WIT spells it.
pub fn kind_name(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Retryable => "retryable",
        FailureKind::Permanent => "permanent",
    }
}
