//! The contracts this host links: the current world (`wit/`, generated in
//! [`crate::bindings`]) and, for one release, the previous one
//! (`wit/previous/`), so a host upgrade never strands an installed logic
//! version. `docs/contract-versions.md` says what each version changed.

pub mod previous;

/// The contract version of `wit/envmgr.wit`.
pub const CURRENT: &str = "0.2.0";

/// Every contract version this host runs, newest first.
pub const LINKED: [&str; 2] = [CURRENT, previous::VERSION];
