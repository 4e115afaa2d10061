//! Credentials rotate on a running `serve` (README, "Rotating
//! credentials"): the GitHub App's private key and the Runtime Service
//! token are re-read when their file changes, and on SIGHUP; messages
//! before, during and after each rotation all succeed, and once the old
//! credential is withdrawn (the App's old key deleted, the old token
//! dropped) every request carries the new one. On both backends (the
//! aws one also seals its queue copies with the App key).

use std::time::Duration;

use envmgr_tests::fakes::github::{PRIVATE_KEY_2, PUBLIC_KEY, PUBLIC_KEY_2};
use envmgr_tests::fakes::runtime::TOKEN;
use envmgr_tests::stack::{Backend, Options, Stack, eventually, example, terminate};

const BINARY: &str = env!("CARGO_BIN_EXE_envmgr-under-test");
const WAIT: Duration = Duration::from_secs(90);

/// A production request of its own for `branch`.
fn request(branch: &str) -> String {
    example("api-production.json")
        .replace("\"main\"", &format!("\"{branch}\""))
        .replace("\"production\"", "\"preview\"")
}

/// Replace `path`'s contents the way a secret manager does: a new file
/// renamed into place.
fn replace(path: &std::path::Path, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).unwrap();
    std::fs::rename(&next, path).unwrap();
}

async fn send_and_wait(stack: &Stack, branches: std::ops::Range<u32>) {
    for i in branches.clone() {
        stack.send("api", &request(&format!("rotate/{i}")));
    }
    eventually("every message handled", WAIT, || async {
        stack.runtime.runtimes().len() as u32 == branches.end
    })
    .await;
}

async fn credentials_rotate_on_a_running_serve(backend: Backend) {
    let stack = Stack::new(
        "rotate",
        BINARY,
        Options {
            backend,
            ..Options::default()
        },
    );
    stack.seed_shop("postgres://shop:pw@db/shop", "sk_test_rotation");
    let mut daemon = stack.serve();
    send_and_wait(&stack, 0..3).await;

    // The new credentials are added where they are checked, then written.
    stack.github.set_app_keys(&[PUBLIC_KEY, PUBLIC_KEY_2]);
    stack.runtime.set_tokens(&[TOKEN, "rotated-runtime-token"]);
    replace(&stack.dir.join("github-app.pem"), PRIVATE_KEY_2);
    replace(&stack.dir.join("runtime.token"), "rotated-runtime-token\n");
    send_and_wait(&stack, 0..6).await;
    eventually("both files taken", WAIT, || async {
        stack.logs().matches("credential rotated").count() == 2
    })
    .await;

    // The old ones are withdrawn: only the new ones work now.
    stack.github.set_app_keys(&[PUBLIC_KEY_2]);
    stack.runtime.set_tokens(&["rotated-runtime-token"]);
    send_and_wait(&stack, 0..9).await;

    // SIGHUP reads a file whose change its size, inode and time do not
    // show (rewritten in place, its time put back).
    let token = stack.dir.join("runtime.token");
    let modified = std::fs::metadata(&token).unwrap().modified().unwrap();
    std::fs::write(&token, "rotated-runtime-tokem\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&token)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    stack.runtime.set_tokens(&["rotated-runtime-tokem"]);
    tokio::time::sleep(envmgr::rotation::LOOK_EVERY * 2).await;
    assert_eq!(stack.logs().matches("credential rotated").count(), 2);
    let hangup = std::process::Command::new("kill")
        .args(["-HUP", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(hangup.success());
    eventually("SIGHUP takes it", WAIT, || async {
        stack.logs().matches("credential rotated").count() == 3
    })
    .await;
    send_and_wait(&stack, 0..12).await;

    // A broken file is refused, the credential in use stays.
    replace(
        &stack.dir.join("github-app.pem"),
        "-----BEGIN RSA PRIVATE KEY-----\ntorn",
    );
    eventually("the torn key refused", WAIT, || async {
        stack
            .logs()
            .contains("credential file changed but not taken")
    })
    .await;
    send_and_wait(&stack, 0..15).await;

    let logs = stack.logs();
    for failure in ["will retry", "dead-lettered", "host unhealthy"] {
        assert!(!logs.contains(failure), "{failure}:\n{logs}");
    }
    assert!(
        stack.github.rejected().is_empty(),
        "{:?}",
        stack.github.rejected()
    );
    assert!(!logs.contains("rotated-runtime-tok"), "a token in the log");
    assert!(terminate(&mut daemon).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_rotate_on_a_running_serve_local() {
    credentials_rotate_on_a_running_serve(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_rotate_on_a_running_serve_aws() {
    credentials_rotate_on_a_running_serve(Backend::Aws).await;
}
