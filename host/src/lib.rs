//! The envmgr host: runs create-environment logic components (see `wit/`)
//! against real or mock capabilities.
//!
//! - [`engine`]: wasmtime, limits, one store per message.
//! - [`capabilities`]: one module per WIT interface: backend trait, WIT
//!   boundary, in-memory backend.
//! - [`mock`]: the mock host for tests and guest authors.
//! - [`observe`]: transcript and scripted faults.

pub mod admin;
pub mod aws;
pub mod bindings;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod mock;
pub mod observe;

pub use bindings::{Failure, FailureKind, Message, Outcome};
pub use engine::{Engine, Handled, Limits, Logic, RunError};

/// The logic version built from `guest/` with this host (by `build.rs`): the
/// default a fresh install runs, and what the tests exercise.
pub const BUILTIN_LOGIC: &[u8] = include_bytes!(env!("ENVMGR_GUEST_WASM"));
