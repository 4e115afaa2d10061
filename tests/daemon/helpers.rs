//! The daemon tests' stack: the binary, how long to wait, the Shop app with
//! its secrets, and an item's attributes read as text.

use std::collections::BTreeMap;
use std::time::Duration;

use envmgr_tests::stack::{Options, Stack};

const BINARY: &str = env!("CARGO_BIN_EXE_envmgr-under-test");
pub(crate) const WAIT: Duration = Duration::from_secs(60);

pub(crate) const DATABASE_URL: &str = "postgres://shop:s3cr3t-hunter2@db.internal/shop";
pub(crate) const STRIPE_KEY: &str = "sk_test_51HxQ2bGvTnV8sTuvWxYz";

/// A stack with the Shop app (acme/shop, as in docs/examples) and secrets.
pub(crate) fn shop(name: &str, options: Options) -> Stack {
    let stack = Stack::new(name, BINARY, options);
    stack.seed_shop(DATABASE_URL, STRIPE_KEY);
    stack
}

pub(crate) fn send(stack: &Stack, queue: &str, body: &str) {
    stack.send(queue, body);
}

pub(crate) fn s<'a>(item: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    item.get(name).map(String::as_str).unwrap_or("")
}
