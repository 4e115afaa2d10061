//! Implements the envmgr world and misbehaves as the message body asks:
//! `trap` panics, `loop` never returns, `bomb` allocates without end,
//! `ambient` reports what it can reach outside the sandbox, anything else
//! returns done.

#![cfg(target_arch = "wasm32")]

mod bindings {
    wit_bindgen::generate!({
        world: "environment-manager",
        path: "../../../wit",
        generate_all,
    });
}

use bindings::envmgr::environments::types::{Failure, Message, Outcome};

struct Chaos;

impl bindings::Guest for Chaos {
    fn handle(message: Message) -> Result<Outcome, Failure> {
        match message.body.as_str() {
            "trap" => panic!("the chaos guest panics on purpose"),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "ambient" => Ok(Outcome::Done(ambient())),
            // So a logic-version self-check (real create requests) traps.
            other if other.trim_start().starts_with('{') => {
                panic!("the chaos guest traps on every create request")
            }
            other => Ok(Outcome::Done(format!("chaos guest ignored `{other}`"))),
        }
    }
}

/// What the guest can see without asking the host's capabilities.
fn ambient() -> String {
    let vars = std::env::vars().count();
    let args = std::env::args().count();
    let root = std::fs::read_dir("/").map(|d| d.count()).ok();
    let file = std::fs::read_to_string("/etc/hostname").ok();
    let net = std::net::TcpStream::connect("127.0.0.1:1").is_ok();
    format!(
        "vars={vars} args={args} root={root:?} file={} tcp={net}",
        file.is_some()
    )
}

bindings::export!(Chaos with_types_in bindings);
