//! Host-side bindings of the contract in `wit/`.
//!
//! Every import is `async` (backends do network I/O; to the guest a call still
//! blocks) and `trappable` (a host bug, such as a handle missing from the
//! resource table, traps the one message instead of panicking the daemon).

pub mod json;
pub mod pending;
pub mod resources;

wasmtime::component::bindgen!({
    world: "environment-manager",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async },
    // The recording's JSON, from the WIT names (`json.rs`).
    additional_derives: [envmgr_derive::Recordable],
    with: {
        "envmgr:environments/sealed.sealed-value": crate::bindings::resources::SealedValue,
        "envmgr:environments/sealed.future-sealed-value": crate::bindings::resources::FutureSealedValue,
        "envmgr:environments/dynamodb.future-item": crate::bindings::resources::FutureItem,
        "envmgr:environments/dynamodb.future-page": crate::bindings::resources::FuturePage,
        "envmgr:environments/dynamodb.future-write": crate::bindings::resources::FutureWrite,
        "envmgr:environments/runtime.future-created": crate::bindings::resources::FutureCreated,
        // The pollables started calls are waited with are wasmtime-wasi's,
        // so `wasi:io/poll.poll` (linked with WASI) waits for them.
        "wasi:io/poll": wasmtime_wasi::p2::bindings::io::poll,
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
