//! A component of another world: it exports a function named `handle`, as
//! envmgr's world does, but of another type (a string in, a string out), and
//! imports only what every Rust program on wasm32-wasip2 imports. It
//! compiles and links against the host's WASI; only the world check can
//! refuse it.

#![cfg(target_arch = "wasm32")]

mod bindings {
    wit_bindgen::generate!({
        inline: "
            package test:other-world;

            world other {
                export handle: func(message: string) -> string;
            }
        ",
    });
}

struct Other;

impl bindings::Guest for Other {
    fn handle(message: String) -> String {
        format!("another world handled {message}")
    }
}

bindings::export!(Other with_types_in bindings);
