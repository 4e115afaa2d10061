//! Implements the envmgr world and misbehaves as the message body asks:
//! `trap` panics, `loop` never returns, `bomb` allocates without end,
//! `ambient:PORT` reports what it can reach outside the sandbox (a TCP
//! connection to PORT on 127.0.0.1 among it), `stdio` writes marker lines to
//! stdout and stderr and reports what it read from stdin, `entropy` reports
//! random bytes and the clocks, `remember` reports what an earlier message
//! left in its memory (`remember()`), anything else returns done.

#![cfg(target_arch = "wasm32")]

mod bindings {
    wit_bindgen::generate!({
        world: "environment-manager",
        path: "../../../wit",
        generate_all,
    });
}

use bindings::envmgr::environments::types::{Failure, Message, Outcome};

/// What the `stdio` probe writes: a test looks for these where the host
/// process's own output goes, and must not find them.
pub const STDOUT_MARKER: &str = "envmgr-chaos-guest-wrote-this-to-stdout";
pub const STDERR_MARKER: &str = "envmgr-chaos-guest-wrote-this-to-stderr";

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
            "stdio" => Ok(Outcome::Done(stdio())),
            "entropy" => Ok(Outcome::Done(entropy())),
            "remember" => Ok(Outcome::Done(remember())),
            other if other.starts_with("ambient:") => {
                let port = other["ambient:".len()..].parse().unwrap_or(1);
                Ok(Outcome::Done(ambient(port)))
            }
            // So a logic-version self-check (real create requests) traps.
            other if other.trim_start().starts_with('{') => {
                panic!("the chaos guest traps on every create request")
            }
            other => Ok(Outcome::Done(format!("chaos guest ignored `{other}`"))),
        }
    }
}

/// What a message before this one left in linear memory, which the pool
/// reuses for the next instance: a value of the data image overwritten, and
/// a page grown and written. A fresh instance reads `image 7, grown page 0`
/// every time; anything else is one message's state reaching another.
fn remember() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    // Not zero, so it sits in the data image (restored), not in the zeroed
    // part of memory.
    static IMAGE: AtomicU32 = AtomicU32::new(7);
    let image = IMAGE.swap(99, Ordering::Relaxed);
    let page = core::arch::wasm32::memory_grow::<0>(1);
    if page == usize::MAX {
        return "no page to grow".to_string();
    }
    let word = (page * 65536) as *mut u32;
    // SAFETY: the page was just grown, so it is in bounds and nothing else
    // of this program uses it.
    let grown = unsafe {
        let before = word.read_volatile();
        word.write_volatile(0xdead_beef);
        before
    };
    format!("image {image}, grown page {grown:#x}")
}

/// What the guest can see without asking the host's capabilities.
fn ambient(port: u16) -> String {
    let vars = std::env::vars().count();
    let args = std::env::args().count();
    let root = std::fs::read_dir("/").map(|d| d.count()).ok();
    let file = std::fs::read_to_string("/etc/hostname").ok();
    let net = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    format!(
        "vars={vars} args={args} root={root:?} file={} tcp={net}",
        file.is_some()
    )
}

/// Write the markers to stdout and stderr, read stdin to its end.
fn stdio() -> String {
    use std::io::{Read as _, Write as _};
    let out = writeln!(std::io::stdout(), "{STDOUT_MARKER}")
        .and_then(|()| std::io::stdout().flush())
        .is_ok();
    let err = writeln!(std::io::stderr(), "{STDERR_MARKER}").is_ok();
    let mut input = Vec::new();
    let stdin = match std::io::stdin().read_to_end(&mut input) {
        Ok(n) => n.to_string(),
        Err(_) => "error".to_string(),
    };
    format!("stdout-write-ok={out} stderr-write-ok={err} stdin-bytes={stdin}")
}

/// Sixteen random bytes (the secure source, as `getrandom` reads it) and
/// both clocks: what a deterministic host must make the same on every run.
fn entropy() -> String {
    let mut bytes = [0u8; 16];
    // SAFETY: wasi-libc's getentropy fills at most 256 bytes it is given.
    let filled = unsafe { getentropy(bytes.as_mut_ptr(), bytes.len()) } == 0;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    // A hash under std's randomly keyed hasher: the insecure seed.
    let keyed = {
        use std::hash::{BuildHasher as _, Hasher as _};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write(b"envmgr");
        hasher.finish()
    };
    format!("random={hex} filled={filled} keyed-hash={keyed:016x} wall-ms={wall}")
}

unsafe extern "C" {
    fn getentropy(buffer: *mut u8, length: usize) -> i32;
}

bindings::export!(Chaos with_types_in bindings);
