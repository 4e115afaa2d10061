//! The contracts this host links: the current world (`wit/`, generated in
//! [`crate::bindings`]), every earlier patch of its minor (an addition
//! changes nothing a component of an earlier patch uses, and wasmtime links
//! its `@0.3.0` imports to the `@0.3.1` definitions: semver-compatible
//! names), and, for one release, the previous minor (`wit/previous/`), so a
//! host upgrade never strands an installed logic version.
//! `docs/contract-versions.md` says what each version changed.

pub mod previous;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::envmgr::environments as now;
use crate::bindings::wasi;
use crate::boundary::Session;

/// The contract version of `wit/envmgr.wit`.
pub const CURRENT: &str = "0.3.1";

/// The earlier patches of [`CURRENT`]'s minor: linked to the current
/// definitions, which only added to theirs.
pub const EARLIER_PATCHES: [&str; 1] = ["0.3.0"];

/// The contracts whose logic knows no `sweep` message (teardown came with
/// 0.3.1).
pub const BEFORE_TEARDOWN: [&str; 2] = [EARLIER_PATCHES[0], previous::VERSION];

/// Every contract version this host runs, newest first.
pub const LINKED: [&str; 3] = [CURRENT, EARLIER_PATCHES[0], previous::VERSION];

/// The contract version a component's import names (`envmgr:environments/github@0.3.0`
/// → `0.3.0`), if it is one of the current minor's.
pub fn current_minor_version_of(import: &str) -> Option<&'static str> {
    let (_, version) = import
        .strip_prefix("envmgr:environments/")?
        .split_once('@')?;
    std::iter::once(CURRENT)
        .chain(EARLIER_PATCHES)
        .find(|known| *known == version)
}

/// Define the current world's imports in `linker`, which holds WASI
/// already: `wasi:io/poll` (the pollables of started calls) is WASI's own.
pub fn add_current_to_linker(linker: &mut Linker<Session>) -> wasmtime::Result<()> {
    wasi::logging::logging::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    wasi::config::store::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    now::types::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    now::sealed::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    now::github::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    now::dynamodb::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    now::kms::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    now::keys::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    now::analytics::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    now::runtime::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    now::requests::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    Ok(())
}
