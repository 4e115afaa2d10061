//! The builtin logic's native code, compiled by the build script
//! (`host/build_native.rs`) for the target's baseline CPU under the
//! host's code-shaping settings (`codegen.rs`), and shipped in the binary:
//! a new data directory's first message, `try`, `demo` and the mock host
//! start without compiling the builtin (the cold start's compile, measured
//! in `docs/performance.md`).
//!
//! wasmtime checks shipped code against the running engine before using it
//! (its version, settings and tunables, and that this CPU has every feature
//! the code was compiled for: the baseline has none beyond the target's);
//! when it does not fit — other settings, an empty file from a build that
//! could not compile — the component is compiled at run time as before.

use std::sync::OnceLock;

/// Empty when the build script could not compile for the target.
const BUILTIN_NATIVE: &[u8] = include_bytes!(env!("ENVMGR_BUILTIN_NATIVE"));

/// The sha256 of the builtin component, the id shipped code stands for.
fn builtin_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| crate::support::hex_sha256(crate::BUILTIN_LOGIC))
}

/// The shipped native code of logic `id`, if it has any.
pub fn native_code(id: &str) -> Option<&'static [u8]> {
    (!BUILTIN_NATIVE.is_empty() && id == builtin_id()).then_some(BUILTIN_NATIVE)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_build_ships_the_builtins_native_code() {
        // Every target the host is built for in CI compiles with Cranelift:
        // an empty file here would mean every cold start compiles again.
        let id = super::builtin_id();
        assert!(super::native_code(id).is_some());
        assert!(super::native_code(&"0".repeat(64)).is_none());
    }

    #[test]
    fn the_host_engine_runs_the_shipped_code_without_compiling() {
        // The build script's settings and the engine's agree: were they to
        // drift (a setting added to one), wasmtime would refuse the code and
        // every start would compile again, silently.
        let engine = crate::Engine::new(crate::Limits::default()).unwrap();
        let logic = engine
            .load_shipped(super::builtin_id())
            .expect("the shipped code fits");
        assert_eq!(logic.id, super::builtin_id());
        // Another memory limit is a run-time choice: the code still fits.
        let limits = crate::Limits {
            memory_bytes: 8 << 20,
            ..crate::Limits::default()
        };
        let other = crate::Engine::new(limits).unwrap();
        assert!(other.load_shipped(super::builtin_id()).is_some());
    }
}
