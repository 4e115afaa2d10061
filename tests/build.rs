//! Builds the misbehaving test guest in `tests/guests/chaos` as a component.

#[path = "../host/build_component.rs"]
mod build_component;

fn main() {
    build_component::build_component(
        "envmgr-chaos-guest",
        "tests/guests/chaos",
        "ENVMGR_CHAOS_WASM",
    );
}
