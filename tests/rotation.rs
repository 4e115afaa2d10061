//! Credentials rotate on a running `serve` (docs/guides/rotate-credentials.md; docs/security.md, "Rotating
//! credentials"): the GitHub App's private key and the Runtime Service
//! token are re-read when their file changes, and on SIGHUP; messages
//! before, during and after each rotation all succeed, and once the old
//! credential is withdrawn (the App's old key deleted, the old token
//! dropped) every request carries the new one. Secrets move to a new KMS
//! key under a rolling restart (`secrets re-encrypt`). On both backends
//! (the aws one also seals its queue copies with the App key).

use std::time::Duration;

use envmgr::capabilities::dynamodb::AttributeValue;
use envmgr::capabilities::kms::Kms;
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

fn hang_up(daemon: &std::process::Child) {
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
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
    // A SIGHUP while it starts (before it serves) is caught, not fatal.
    tokio::time::sleep(Duration::from_millis(150)).await;
    hang_up(&daemon);
    send_and_wait(&stack, 0..3).await;
    assert!(daemon.try_wait().unwrap().is_none(), "SIGHUP ended serve");

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
    hang_up(&daemon);
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

/// The key `key_id` alone, as a host would open it.
async fn key(stack: &Stack, key_id: &str) -> Box<dyn Kms> {
    match stack.backend {
        Backend::Local => Box::new(
            envmgr::capabilities::kms::local::LocalKms::existing(&stack.store(), key_id)
                .await
                .unwrap(),
        ),
        Backend::Aws => Box::new(envmgr::capabilities::kms::aws::AwsKms::new(
            &stack.sdk().await,
            key_id,
        )),
    }
}

/// How many environments' signing keys `kms` decrypts, of how many.
async fn signing_keys_under(stack: &Stack, kms: &dyn Kms) -> (usize, usize) {
    let items = stack.tables().await.scan_all("environments").await.unwrap();
    let mut opened = (0, 0);
    for item in &items {
        let get = |name: &str| {
            item.iter().find_map(|(n, v)| match v {
                AttributeValue::S(s) if n == name => Some(s.clone()),
                _ => None,
            })
        };
        let Some(ciphertext) = item.iter().find_map(|(n, v)| match v {
            AttributeValue::B(b) if n == "signingKeyCiphertext" => Some(b.clone()),
            _ => None,
        }) else {
            continue;
        };
        let context = envmgr::capabilities::keys::key_context(
            &get("appId").unwrap(),
            &get("environmentId").unwrap(),
            &get("requestVersion").unwrap(),
        );
        opened.1 += 1;
        opened.0 += usize::from(kms.decrypt(&ciphertext, &context).await.is_ok());
    }
    opened
}

/// Every secret and signing key moves to a new KMS key while messages keep
/// coming: hosts restarted one by one onto both keys, `secrets re-encrypt`,
/// hosts restarted onto the new key alone; a second run moves nothing.
async fn secrets_move_to_a_new_kms_key_without_downtime(backend: Backend) {
    let stack = Stack::new(
        "rekey",
        BINARY,
        Options {
            backend,
            ..Options::default()
        },
    );
    stack.seed_shop("postgres://shop:pw@db/shop", "sk_test_rekey");
    let old = format!("alias/{}", stack.prefix);
    let new = format!("alias/{}-next", stack.prefix);
    let previous = format!("[\"{old}\"]");
    let moving = [
        ("ENVMGR__KMS__KEY_ID", new.as_str()),
        ("ENVMGR__KMS__PREVIOUS_KEY_IDS", previous.as_str()),
    ];
    let serving = |n: usize| {
        let stack = &stack;
        async move {
            eventually("the daemon serving", WAIT, || async {
                stack.logs().matches("serving").count() >= n
            })
            .await
        }
    };
    let (mut first, _) = stack.serve_with(&[]);
    send_and_wait(&stack, 0..3).await;

    // The new key (init creates a missing alias), then hosts on both keys.
    let (ok, said) = stack.run_with(&["init"], &moving);
    assert!(ok, "{said}");
    let refused = stack.run_with(&["secrets", "re-encrypt", "--to", &new], &[]);
    assert!(
        !refused.0 && refused.1.contains("is not `kms.key_id`"),
        "{}",
        refused.1
    );
    // First round: every host reads the new key too, still writes the old.
    let upcoming = format!("[\"{new}\"]");
    let (mut between, _) =
        stack.serve_with(&[("ENVMGR__KMS__PREVIOUS_KEY_IDS", upcoming.as_str())]);
    serving(2).await;
    assert!(terminate(&mut first).success());
    // Second round: the new key writes, the old one still reads.
    let (mut second, _) = stack.serve_with(&moving);
    serving(3).await;
    assert!(terminate(&mut between).success());
    send_and_wait(&stack, 0..6).await;

    let (ok, said) = stack.run_with(&["secrets", "re-encrypt", "--to", &new], &moving);
    assert!(ok, "{said}");
    assert!(said.contains("secrets: 2 moved, 0 already"), "{said}");
    assert!(said.contains("0 unreadable"), "{said}");
    let new_key = key(&stack, &new).await;
    assert_eq!(signing_keys_under(&stack, new_key.as_ref()).await, (6, 6));
    assert_eq!(
        signing_keys_under(&stack, key(&stack, &old).await.as_ref())
            .await
            .0,
        0
    );

    // The old key goes from the config: everything still reads.
    let (mut third, _) = stack.serve_with(&[("ENVMGR__KMS__KEY_ID", new.as_str())]);
    serving(4).await;
    assert!(terminate(&mut second).success());
    send_and_wait(&stack, 0..9).await;
    let (ok, again) = stack.run_with(
        &["secrets", "re-encrypt", "--to", &new],
        &[("ENVMGR__KMS__KEY_ID", new.as_str())],
    );
    assert!(ok, "{again}");
    assert!(again.contains("secrets: 0 moved, 2 already"), "{again}");
    assert!(
        again.contains("signing keys: 0 moved, 9 already"),
        "{again}"
    );
    let logs = stack.logs();
    for failure in ["will retry", "dead-lettered", "host unhealthy"] {
        assert!(!logs.contains(failure), "{failure}:\n{logs}");
    }
    assert!(terminate(&mut third).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_move_to_a_new_kms_key_without_downtime_local() {
    secrets_move_to_a_new_kms_key_without_downtime(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_move_to_a_new_kms_key_without_downtime_aws() {
    secrets_move_to_a_new_kms_key_without_downtime(Backend::Aws).await;
}
