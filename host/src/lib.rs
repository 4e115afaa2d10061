//! The envmgr host: runs create-environment logic components (see `wit/`)
//! against real or embedded capabilities (the mock host's: embedded, in
//! memory).
//!
//! - [`engine`]: wasmtime, limits, one store per message.
//! - [`capabilities`]: one module per WIT interface: backend trait and
//!   implementations (the real service's, the embedded database's).
//! - [`daemon`] over a [`queue`]: `envmgr serve`; [`logic`]: the versions it
//!   serves (install, activate, canary, rollback).
//! - [`platform`]: what a config connects to, `local` ([`local`], one
//!   embedded database file) or `aws`.
//! - [`mock`]: the mock host for tests and guest authors.
//! - [`observe`]: transcript and scripted faults.
//! - [`record`]: handled messages recorded, replayed against a candidate,
//!   and shadow runs.
//! - [`health`]: a fault of the host is not a fault of the message (probes,
//!   pause, recovery); [`metrics`]: what `/metrics` serves.
//! - [`demo`], [`show`], [`admin`], [`cli`]: the commands.

// A function past 100 lines hides its steps: split it into named ones.
#![warn(clippy::too_many_lines)]

/// The allocator the `envmgr` binaries declare (`#[global_allocator]` in
/// `host/src/main.rs` and the tests' copy of it): mimalloc. A message's
/// path makes and frees many small strings and JSON nodes, where glibc's
/// allocator spent ~12 % of `serve`'s CPU in its own bookkeeping
/// (`_int_free`, `malloc_consolidate`, `unlink_chunk`); measured in
/// docs/performance.md ("The allocator"). Declared by the binaries, not
/// here, so the test and benchmark programs keep the system's, and with
/// it the benchmarks' yardstick stays the reference it was.
pub use mimalloc::MiMalloc as Allocator;

pub mod admin;
pub mod aws;
pub mod bindings;
pub mod boundary;
pub mod calls;
pub mod capabilities;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod contract;
pub mod daemon;
pub mod demo;
pub mod engine;
pub mod health;
pub mod local;
pub mod logic;
pub mod metrics;
pub mod mock;
pub mod platform;
pub mod queue;
pub mod record;
pub mod redact;
pub mod rotation;
pub mod show;
pub mod support;
pub mod telemetry;

pub use bindings::{Failure, FailureKind, Message, Outcome};
pub use engine::{Engine, Handled, Limits, Logic, RunError};

/// The logic version built from `guest/` with this host (by `build.rs`): the
/// default a fresh install runs, and what the tests exercise.
pub const BUILTIN_LOGIC: &[u8] = include_bytes!(env!("ENVMGR_GUEST_WASM"));
