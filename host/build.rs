//! Builds the logic in `guest/` as a component; the host embeds it as its
//! builtin logic version (`envmgr::BUILTIN_LOGIC`), with its native code
//! compiled ahead of time (`build_native.rs`).

mod build_component;
mod build_native;

fn main() {
    let component = build_component::build_component("envmgr-guest", "guest", "ENVMGR_GUEST_WASM");
    build_native::precompile(&component, "ENVMGR_BUILTIN_NATIVE");
}
