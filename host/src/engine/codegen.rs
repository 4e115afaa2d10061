//! The engine settings that shape the native code of a logic version, in
//! one place for both users: the host's engine (`engine/mod.rs`) and the
//! build script, which compiles the builtin logic ahead of time
//! (`host/build.rs`). wasmtime refuses native code made under other
//! settings, so the two must agree; sharing this file is how they do.
//!
//! What does not shape the code stays out: the pooling allocator's sizes
//! and the memory limit are run-time choices (wasmtime's compatibility
//! check covers its tunables, and a mismatch falls back to compiling).

/// Apply the code-shaping settings to `config`.
pub fn apply(config: &mut wasmtime::Config) -> &mut wasmtime::Config {
    // The deadline and the yield to tokio: checks compiled into every loop.
    config.epoch_interruption(true)
}
