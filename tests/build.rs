//! Builds the test guests as components: `tests/guests/chaos` (it
//! misbehaves), `tests/guests/other-world` (a component of another world),
//! and the real logic with the `fail-on-marker` feature (a canary that
//! passes its self-check and fails in production) and with the
//! `reworded-comment` feature (a candidate whose comment reads differently).

#[path = "../host/build_component.rs"]
mod build_component;

fn main() {
    build_component::build_component(
        "envmgr-chaos-guest",
        "tests/guests/chaos",
        "ENVMGR_CHAOS_WASM",
    );
    build_component::build_component(
        "envmgr-other-world-guest",
        "tests/guests/other-world",
        "ENVMGR_OTHER_WORLD_WASM",
    );
    build_component::build_component_with_features(
        "envmgr-guest",
        "guest",
        "ENVMGR_FAULTY_WASM",
        &["fail-on-marker"],
    );
    build_component::build_component_with_features(
        "envmgr-guest",
        "guest",
        "ENVMGR_REWORDED_WASM",
        &["reworded-comment"],
    );
}
