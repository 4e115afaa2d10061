//! Builds a workspace crate as a wasm32-wasip2 component from a build
//! script, so `cargo build` / `cargo test` need no hand steps, installing the
//! wasm target with rustup when it is missing. Shared by host/build.rs (the
//! logic in guest/) and tests/build.rs (the misbehaving test guests).

use std::env;
use std::path::PathBuf;
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "guest";

/// Build `package` (whose sources are `sources`, relative to the workspace)
/// and hand the component's path to the crate as the env var `env_var`.
/// Setting `env_var` to an existing component skips the build.
#[allow(dead_code)] // each build script uses one of the two
pub fn build_component(package: &str, sources: &str, env_var: &str) -> PathBuf {
    build_component_with_features(package, sources, env_var, &[])
}

/// Like [`build_component`], with cargo features, in a target dir of its
/// own (the same package without them keeps its output).
pub fn build_component_with_features(
    package: &str,
    sources: &str,
    env_var: &str,
    features: &[&str],
) -> PathBuf {
    println!("cargo:rerun-if-env-changed={env_var}");
    if let Ok(prebuilt) = env::var(env_var) {
        println!("cargo:rustc-env={env_var}={prebuilt}");
        return PathBuf::from(prebuilt);
    }
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = crate_dir.parent().expect("the crate sits in the workspace");
    for input in [
        sources,
        "wit",
        "Cargo.toml",
        "Cargo.lock",
        ".cargo/config.toml",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(input).display());
    }

    ensure_target();

    // A target dir of its own: the outer cargo holds the lock on the main one.
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join(if features.is_empty() {
            "guest".to_string()
        } else {
            format!("guest-{}", features.join("-"))
        });
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace)
        .args(["build", "--package", package, "--target", TARGET])
        .args(["--profile", PROFILE])
        .args(
            (!features.is_empty())
                .then(|| ["--features".to_string(), features.join(",")])
                .into_iter()
                .flatten(),
        )
        .arg("--target-dir")
        .arg(&target_dir)
        // Flags meant for the host build (clippy's wrapper, coverage or
        // target-cpu flags) must not leak into the wasm build.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("running cargo to build the guest component");
    if !status.success() {
        panic!("building the component {package} for {TARGET} failed; see the errors above");
    }
    let wasm = target_dir
        .join(TARGET)
        .join(PROFILE)
        .join(format!("{}.wasm", package.replace('-', "_")));
    assert!(
        wasm.is_file(),
        "the guest build succeeded but {} is missing",
        wasm.display()
    );
    println!("cargo:rustc-env={env_var}={}", wasm.display());
    wasm
}

/// `rustup target add` when the target's standard library is missing. A
/// toolchain not managed by rustup is left alone: its build errors will say
/// what is missing.
fn ensure_target() {
    let Ok(output) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return;
    };
    let installed = String::from_utf8_lossy(&output.stdout);
    if installed.lines().any(|line| line.trim() == TARGET) {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with rustup (first build only)");
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !added {
        panic!("`rustup target add {TARGET}` failed; run it by hand and build again");
    }
}
