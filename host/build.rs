//! Builds the logic in `guest/` as a component; the host embeds it as its
//! builtin logic version (`envmgr::BUILTIN_LOGIC`).

mod build_component;

fn main() {
    build_component::build_component("envmgr-guest", "guest", "ENVMGR_GUEST_WASM");
}
