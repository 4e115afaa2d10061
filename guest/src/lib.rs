//! envmgr's create-environment logic.
//!
//! Built for `wasm32-wasip2` it is a component implementing the
//! `envmgr:environments/environment-manager` world (`wit/`); built natively it
//! is a library whose [`flow::handle`] runs against any [`Capabilities`]
//! implementation, for unit tests and benchmarks.
//!
//! Read [`flow`] first: the flows a message starts, each top to bottom.

// A function longer than a screen hides its steps; split it along them.
#![warn(clippy::too_many_lines)]

pub mod apps;
pub mod bindings;
pub mod capabilities;
pub mod comment;
pub mod deployment;
pub mod display;
pub mod environment;
pub mod flow;
pub mod github_state;
pub mod item;
pub mod lease;
pub mod outcome;
pub mod report;
pub mod request;
pub mod secrets;
pub mod time;
pub mod trust;

#[cfg(target_arch = "wasm32")]
mod component;

pub use capabilities::Capabilities;
pub use flow::{Message, handle};
pub use outcome::{Failure, FailureKind, Outcome};
