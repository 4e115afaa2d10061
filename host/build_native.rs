//! Compiles the builtin logic to native code at build time, so that no
//! start of the host compiles it (`host/src/engine/shipped.rs` loads it).
//!
//! The code is made for the target's baseline CPU (an explicit target turns
//! off wasmtime's detection of the build machine's features), so a binary
//! built on one machine runs its shipped code on any machine of the target;
//! the settings that shape code come from the host's own file
//! (`src/engine/codegen.rs`). A target Cranelift cannot compile for gets an
//! empty file, and its hosts compile the builtin at run time as before.

use std::env;
use std::path::{Path, PathBuf};

#[path = "src/engine/codegen.rs"]
mod codegen;

/// Compile `component` for the target being built and hand the native
/// code's path to the crate as the env var `env_var`.
pub fn precompile(component: &Path, env_var: &str) {
    println!("cargo:rerun-if-changed=src/engine/codegen.rs");
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("builtin.cwasm");
    let target = env::var("TARGET").expect("set by cargo");
    let artifact = compile(component, &target).unwrap_or_else(|e| {
        println!("cargo:warning=the builtin logic will be compiled at run time: {e:#}");
        Vec::new()
    });
    std::fs::write(&out, artifact).expect("writing the builtin's native code to OUT_DIR");
    println!("cargo:rustc-env={env_var}={}", out.display());
}

fn compile(component: &Path, target: &str) -> anyhow::Result<Vec<u8>> {
    let mut config = wasmtime::Config::new();
    codegen::apply(&mut config)
        .target(target)
        .map_err(anyhow::Error::from)?;
    let engine = wasmtime::Engine::new(&config).map_err(anyhow::Error::from)?;
    let bytes = std::fs::read(component)?;
    engine
        .precompile_component(&bytes)
        .map_err(anyhow::Error::from)
}
