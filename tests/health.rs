//! A fault of the host is not a fault of the message: the real binary,
//! moto or the local database, and the fake GitHub and Runtime Service.
//! A deployment fault (a missing table, a refused App key, a revoked
//! runtime token, a disabled KMS key) pauses the host with one clear log
//! line and `/readyz` failing, dead-letters nothing, and once fixed the
//! same messages complete. A message's own fault that looks alike (a
//! secret under another key) still goes to the dead-letter queue: the
//! probes decide, not the error code.

use std::time::Duration;

use envmgr_tests::stack::{Backend, Options, Stack, eventually, example, terminate};
use envmgr_tests::{ADD_SHOP_APP, free_port, http_get};

const BINARY: &str = env!("CARGO_BIN_EXE_envmgr-under-test");
const WAIT: Duration = Duration::from_secs(60);

const DATABASE_URL: &str = "postgres://shop:s3cr3t-hunter2@db.internal/shop";
const STRIPE_KEY: &str = "sk_test_51HxQ2bGvTnV8sTuvWxYz";

/// A stack with the Shop app, its admin endpoint on a port of its own.
fn shop(name: &str, backend: Backend) -> (Stack, u16) {
    let port = free_port();
    let stack = Stack::new(
        name,
        BINARY,
        Options {
            backend,
            max_receive_count: 2,
            extra_config: format!("[admin]\nlisten = \"127.0.0.1:{port}\"\n"),
            ..Options::default()
        },
    );
    stack.seed_shop(DATABASE_URL, STRIPE_KEY);
    (stack, port)
}

/// The status line and body of `GET path`, or None while nothing listens.
fn get(port: u16, path: &str) -> Option<String> {
    std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    Some(http_get(port, path))
}

fn ready(port: u16) -> bool {
    get(port, "/readyz").is_some_and(|answer| answer.starts_with("HTTP/1.0 200"))
}

fn not_ready(port: u16) -> bool {
    get(port, "/readyz").is_some_and(|answer| answer.starts_with("HTTP/1.0 503"))
}

async fn dead_letters(stack: &Stack) -> u64 {
    let probot = format!("{}-dlq", stack.queue_name("probot"));
    let api = format!("{}-dlq", stack.queue_name("api"));
    stack.messages_in(&probot).await + stack.messages_in(&api).await
}

/// How often the log says the host became unhealthy.
fn pauses(stack: &Stack) -> usize {
    stack
        .logs()
        .matches("host unhealthy: receiving paused")
        .count()
}

/// The log line of the last pause.
fn last_pause(stack: &Stack) -> String {
    stack
        .logs()
        .lines()
        .rev()
        .find(|line| line.contains("host unhealthy: receiving paused"))
        .unwrap_or_default()
        .to_string()
}

/// Wait a while and check that nothing moved: no runtime, no dead letter,
/// the messages still on their queue.
async fn nothing_moves(stack: &Stack, waiting: u64, seconds: u64) {
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    assert!(
        stack.runtime.runtimes().is_empty(),
        "no runtime while paused"
    );
    assert_eq!(dead_letters(stack).await, 0, "nothing dead-lettered");
    assert_eq!(
        stack.messages_in(&stack.queue_name("probot")).await,
        waiting,
        "the messages wait on their queue"
    );
}

/// With the host ready and something broken: a pull-request message
/// pauses the host, the pause's log line names each of `says`, and nothing
/// moves.
async fn a_message_pauses_the_host(stack: &Stack, port: u16, says: &[&str]) {
    stack.send("probot", &example("pull-request-opened.json"));
    eventually("paused", WAIT, || async { not_ready(port) }).await;
    let line = last_pause(stack);
    for word in says {
        assert!(
            line.contains(word),
            "the log says what to fix ({word}): {line}"
        );
    }
    nothing_moves(stack, 1, 3).await;
}

/// Wait until `runtimes` runtimes exist and `queue` is empty.
async fn completes(stack: &Stack, queue: &str, runtimes: usize) {
    let what = format!("{runtimes} runtime(s) and queue {queue} empty");
    eventually(&what, WAIT, || async {
        stack.runtime.runtimes().len() == runtimes
            && stack.messages_in(&stack.queue_name(queue)).await == 0
    })
    .await;
}

async fn delete_table(stack: &Stack, logical: &str) {
    let dynamodb = aws_sdk_dynamodb::Client::new(&stack.sdk().await);
    dynamodb
        .delete_table()
        .table_name(format!("{}-{logical}", stack.prefix))
        .send()
        .await
        .expect("deleting the table");
}

/// `serve` before the table exists, and a table deleted while serving: the
/// host waits, says which table and that `init` creates it, and completes
/// the messages once `init` ran.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_table_pauses_the_host_until_init() {
    let (stack, port) = shop("missing-table", Backend::Aws);
    delete_table(&stack, "environments").await;

    // At start: not ready, nothing received.
    let mut daemon = stack.serve();
    eventually("not ready at start", WAIT, || async { not_ready(port) }).await;
    stack.send("probot", &example("pull-request-opened.json"));
    nothing_moves(&stack, 1, 4).await;
    let line = last_pause(&stack);
    let table = format!("{}-environments", stack.prefix);
    assert!(
        line.contains(&table) && line.contains("envmgr init"),
        "the log names the table and the fix: {line}"
    );
    assert_eq!(pauses(&stack), 1, "said once");
    let readyz = http_get(port, "/readyz");
    assert!(readyz.contains(&table), "{readyz}");
    let metrics = http_get(port, "/metrics");
    assert!(metrics.contains("envmgr_up 0"), "{metrics}");

    stack.ok(&["init"]);
    completes(&stack, "probot", 1).await;
    assert!(ready(port));

    // While serving: the table goes, a message meets it.
    delete_table(&stack, "environments").await;
    stack.send("api", &example("api-production.json"));
    eventually("paused again", WAIT, || async { not_ready(port) }).await;
    assert_eq!(pauses(&stack), 2, "said once per spell");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stack.runtime.runtimes().len(), 1);
    assert_eq!(dead_letters(&stack).await, 0, "nothing dead-lettered");
    let logs = stack.logs();
    assert!(
        logs.contains("host_fault"),
        "the message was put back as the host's fault"
    );

    stack.ok(&["init"]);
    completes(&stack, "api", 2).await;
    assert_eq!(dead_letters(&stack).await, 0);
    let metrics = http_get(port, "/metrics");
    assert!(metrics.contains("envmgr_up 1"), "{metrics}");
    assert!(
        metrics.contains(
            "envmgr_dependency_errors_total{dependency=\"dynamodb\",kind=\"unavailable\"}"
        ),
        "counted as the host's fault: {metrics}"
    );
    // No environment was marked failed for it.
    let items = stack.environment_items().await;
    assert!(
        items
            .iter()
            .all(|i| i.get("status").map(String::as_str) != Some("failed")),
        "{items:?}"
    );
    assert!(terminate(&mut daemon).success());
}

/// The App's key deleted on GitHub (a rotation done in the wrong order):
/// the host pauses, then resumes when the key is back.
async fn a_refused_github_key_pauses_the_host(backend: Backend) {
    let (stack, port) = shop("refused-key", backend);
    let mut daemon = stack.serve();
    eventually("ready", WAIT, || async { ready(port) }).await;
    stack.github.delete_app_key(true);
    a_message_pauses_the_host(&stack, port, &["github", "github.app_id"]).await;
    assert_eq!(pauses(&stack), 1, "said once");
    stack.github.delete_app_key(false);
    completes(&stack, "probot", 1).await;
    assert!(ready(port));
    assert_eq!(dead_letters(&stack).await, 0);
    assert_eq!(stack.github.comments("acme/shop", 7).len(), 1);
    let logs = stack.logs();
    assert!(logs.contains("host healthy again"), "recovery is logged");
    assert!(terminate(&mut daemon).success());
}

/// The Runtime Service revoking the host's token pauses the host; a
/// refusal of one request (the service's reason) does not.
async fn a_revoked_runtime_token_pauses_the_host(backend: Backend) {
    let (stack, port) = shop("revoked-token", backend);
    let mut daemon = stack.serve();
    eventually("ready", WAIT, || async { ready(port) }).await;
    stack.runtime.revoke_token(true);
    a_message_pauses_the_host(&stack, port, &["runtime", "runtime.token_file"]).await;
    stack.runtime.revoke_token(false);
    completes(&stack, "probot", 1).await;
    assert!(stack.runtime.health_checks() > 0);

    // One request refused with 403 while the token is good: the message's.
    stack
        .runtime
        .reject_next(403, "app_shop may not run production");
    stack.send("api", &example("api-production.json"));
    eventually("dead-lettered", WAIT, || async {
        dead_letters(&stack).await == 1
    })
    .await;
    assert!(ready(port), "a refusal of one request pauses nothing");
    assert_eq!(pauses(&stack), 1);
    assert!(terminate(&mut daemon).success());
}

/// The KMS key's alias gone (the key `kms.key_id` names does not exist)
/// pauses the host; a secret under another key is the message's own fault
/// (the probe, under the configured key, passes). moto decrypts with a
/// disabled key, so a disabled key is not what this test does.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_key_pauses_but_another_keys_ciphertext_is_the_messages_fault() {
    let (stack, port) = shop("kms", Backend::Aws);
    let kms = aws_sdk_kms::Client::new(&stack.sdk().await);
    let alias = format!("alias/{}", stack.prefix);
    let key_id = kms
        .describe_key()
        .key_id(&alias)
        .send()
        .await
        .expect("the key")
        .key_metadata
        .expect("metadata")
        .key_id;
    let mut daemon = stack.serve();
    eventually("ready", WAIT, || async { ready(port) }).await;

    kms.delete_alias().alias_name(&alias).send().await.unwrap();
    a_message_pauses_the_host(&stack, port, &["kms", "ENVMGR__KMS__KEY_ID"]).await;
    kms.create_alias()
        .alias_name(&alias)
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap();
    completes(&stack, "probot", 1).await;

    // The production secret re-encrypted under another key, as a copy from
    // another deployment would be.
    let other = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let tables = stack.tables().await;
    let secrets = tables.scan_all("secrets").await.expect("the secrets");
    let global = secrets
        .iter()
        .find(|item| envmgr_tests::attr(item, "name") == Some("DATABASE_URL"))
        .expect("the global secret")
        .clone();
    let context: Vec<(String, String)> = [
        ("envmgr:app", "app_shop"),
        ("envmgr:scope", "global"),
        ("envmgr:name", "DATABASE_URL"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let foreign = kms
        .encrypt()
        .key_id(&other)
        .plaintext(aws_sdk_kms::primitives::Blob::new(DATABASE_URL))
        .set_encryption_context(Some(context.into_iter().collect()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap()
        .into_inner();
    let mut item = global;
    for (name, value) in item.iter_mut() {
        if name == "ciphertext" {
            *value = envmgr::capabilities::dynamodb::AttributeValue::B(foreign.clone());
        }
    }
    tables
        .transact_write(&[envmgr::capabilities::dynamodb::Write::Put(
            envmgr::capabilities::dynamodb::PutItem {
                table: "secrets".into(),
                item,
                condition: envmgr::capabilities::dynamodb::Condition::None,
            },
        )])
        .await
        .expect("replacing the secret");
    stack.send("api", &example("api-production.json"));
    eventually("dead-lettered as the message's fault", WAIT, || async {
        dead_letters(&stack).await == 1
    })
    .await;
    assert!(ready(port), "the probe passed: the host stays ready");
    assert_eq!(pauses(&stack), 1);
    assert!(terminate(&mut daemon).success());
}

envmgr_tests::on_both_backends!(
    a_refused_github_key_pauses_the_host,
    a_revoked_runtime_token_pauses_the_host,
);

/// Commands run against a table or queue that does not exist (before
/// `init`, or a mistyped name) say which one and that `init` creates it,
/// in plain words.
#[tokio::test(flavor = "multi_thread")]
async fn commands_before_init_name_what_is_missing() {
    let stack = Stack::new(
        "before-init",
        BINARY,
        Options {
            backend: Backend::Aws,
            ..Options::default()
        },
    );
    let run = |args: &[&str], variable: &str, value: &str| {
        let output = stack
            .command(args)
            .env(variable, value)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("running envmgr");
        assert!(!output.status.success(), "{args:?} must fail");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let plain = |said: &str| {
        for debug in ["ErrorCode::", "Some(", "ServiceError", "{ "] {
            assert!(!said.contains(debug), "no Debug formatting: {said}");
        }
    };

    let apps = format!("{}-apps-typo", stack.prefix);
    let said = run(&ADD_SHOP_APP, "ENVMGR__TABLES__APPS", &apps);
    assert!(
        said.contains(&apps) && said.contains("envmgr init"),
        "{said}"
    );
    plain(&said);

    let value = std::env::temp_dir().join(format!("envmgr-before-init-{}", std::process::id()));
    std::fs::write(&value, "x").unwrap();
    let said = run(
        &[
            "set-secret",
            "--app",
            "app_shop",
            "--scope",
            "global",
            "--name",
            "X",
            "--value-file",
            value.to_str().unwrap(),
        ],
        "ENVMGR__TABLES__APPS",
        &apps,
    );
    let _ = std::fs::remove_file(&value);
    assert!(
        said.contains(&apps) && said.contains("envmgr init"),
        "{said}"
    );
    plain(&said);

    let queue = format!("{}-probot-typo", stack.prefix);
    let said = run(
        &["send", "--queue", "probot", "--body", "{}"],
        "ENVMGR__QUEUES__PROBOT__NAME",
        &queue,
    );
    assert!(
        said.contains(&queue) && said.contains("envmgr init"),
        "{said}"
    );
    plain(&said);
}
