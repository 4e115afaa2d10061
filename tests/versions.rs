//! Logic versions through the real binary: install refuses a component with
//! the wrong world and one whose self-check traps; activation under load
//! swaps running daemons without failing or losing a message; a failing
//! canary is rolled back by the daemon itself; two daemons follow one
//! activation; a contract change rolls out (the previous contract's logic
//! runs but is not installed anew, activation waits for every live host,
//! a pointer to logic a host cannot run leaves it serving the builtin
//! version). The scenarios run on both backends (`aws::`, `local::`).

use std::time::Duration;

use envmgr::support::hex_sha256;
use envmgr_tests::stack::{Backend, Options, Stack, eventually, example, terminate};
use envmgr_tests::{
    CHAOS_LOGIC, EMPTY_COMPONENT, FAULTY_LOGIC, PREVIOUS_CONTRACT_LOGIC, free_port, http_get,
    variant,
};

#[path = "versions/swap.rs"]
mod swap;

use swap::{assert_early_messages_finished_on_v1, assert_versions_by_branch, spawn_sender};

const BINARY: &str = env!("CARGO_BIN_EXE_envmgr-under-test");
const WAIT: Duration = Duration::from_secs(90);

fn shop(name: &str, options: Options) -> Stack {
    let stack = Stack::new(name, BINARY, options);
    stack.seed_shop("postgres://shop:pw@db/shop", "sk_test_versions");
    stack
}

/// A create request of its own for `branch` (a preview via the platform API).
fn request(branch: &str) -> String {
    example("api-production.json")
        .replace("\"main\"", &format!("\"{branch}\""))
        .replace("\"production\"", "\"preview\"")
}

fn write(stack: &Stack, name: &str, bytes: &[u8]) -> String {
    let path = stack.dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

/// `envmgr logic ARGS`; (success, stdout + stderr).
fn logic(stack: &Stack, args: &[&str]) -> (bool, String) {
    let mut all = vec!["logic"];
    all.extend_from_slice(args);
    stack.run(&all)
}

fn logic_ok(stack: &Stack, args: &[&str]) -> String {
    let (ok, text) = logic(stack, args);
    assert!(ok, "envmgr logic {args:?} failed:\n{text}");
    text
}

fn by_branch(
    items: &[std::collections::BTreeMap<String, String>],
) -> std::collections::BTreeMap<String, String> {
    items
        .iter()
        .map(|i| {
            (
                i["branch"].clone(),
                i.get("logicVersion").cloned().unwrap_or_default(),
            )
        })
        .collect()
}

async fn refusals_leave_the_active_version_serving(backend: Backend) {
    let stack = shop(
        "refuse",
        Options {
            backend,
            ..Options::default()
        },
    );
    let mut daemon = stack.serve();

    let empty = write(&stack, "empty.wasm", EMPTY_COMPONENT);
    let (ok, text) = logic(&stack, &["install", &empty]);
    assert!(
        !ok && text.contains("does not match the envmgr:environments world"),
        "{text}"
    );
    let chaos = write(&stack, "chaos.wasm", CHAOS_LOGIC);
    let (ok, text) = logic(&stack, &["install", &chaos, "--tag", "chaos"]);
    assert!(
        !ok && text.contains("self-check failed") && text.contains("trapped"),
        "{text}"
    );
    let (ok, text) = logic(&stack, &["activate", "chaos"]);
    assert!(!ok && text.contains("no installed logic version"), "{text}");

    let listed = logic_ok(&stack, &["list"]);
    assert_eq!(
        listed.lines().filter(|l| l.contains(" bytes ")).count(),
        1,
        "{listed}"
    );
    assert!(
        listed.contains("builtin") && listed.contains("active"),
        "{listed}"
    );

    stack.send("api", &request("still-v1"));
    eventually("the builtin version still serving", WAIT, || async {
        stack.runtime.runtimes().len() == 1
    })
    .await;
    let items = stack.environment_items().await;
    assert!(
        items
            .iter()
            .all(|i| i["logicVersion"] == hex_sha256(envmgr::BUILTIN_LOGIC))
    );
    assert!(terminate(&mut daemon).success());
}

/// A host upgrade that changes the contract: the previous contract's logic
/// still installs and runs (it keeps the one-writer protocol), a version is
/// not activated while a live host cannot run it, and a host whose pointer
/// names a version it cannot run serves the builtin one instead of waiting.
async fn contracts_across_a_rolling_upgrade(backend: Backend) {
    let stack = shop(
        "contracts",
        Options {
            backend,
            ..Options::default()
        },
    );
    let previous = write(&stack, "previous.wasm", PREVIOUS_CONTRACT_LOGIC);
    let (ok, text) = logic(&stack, &["install", &previous, "--tag", "previous"]);
    assert!(
        ok && text.contains("keeps the one-writer protocol"),
        "{text}"
    );
    assert!(logic_ok(&stack, &["list"]).contains("contract 0.2.0"));

    let mut daemon = stack.serve();
    eventually("the host's heartbeat", WAIT, || async {
        logic_ok(&stack, &["list"]).contains("links 0.3.1, 0.3.0, 0.2.0")
    })
    .await;

    // A host not yet upgraded, which links 0.2 only, is alive.
    let registry = stack.registry().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // (It links 0.3.0: the builtin logic is built for 0.3.1, which needs
    // what 0.3.0 lacks.)
    registry
        .beat("old-host:1", &["0.3.0", "0.2.0"], now)
        .await
        .unwrap();
    let v2 = write(&stack, "v2.wasm", &variant(envmgr::BUILTIN_LOGIC, "v2"));
    logic_ok(&stack, &["install", &v2, "--tag", "v2"]);
    let (ok, text) = logic(&stack, &["activate", "v2"]);
    assert!(
        !ok && text.contains("old-host:1") && text.contains("contract 0.3.1"),
        "{text}"
    );
    // Once it is upgraded (or gone), the activation goes through.
    registry.forget_host("old-host:1").await.unwrap();
    logic_ok(&stack, &["activate", "v2"]);

    // A version this host cannot run at all (staged behind install's back):
    // the host says so once and keeps serving.
    let bogus = EMPTY_COMPONENT;
    let bogus_id = hex_sha256(bogus);
    registry
        .store(&bogus_id, None, bogus, "9.9.9", now)
        .await
        .unwrap();
    let pointer = registry.pointer().await.unwrap().unwrap();
    let next =
        envmgr::logic::activated(Some(&pointer), registry.builtin_id(), &bogus_id, None, now)
            .unwrap();
    registry.swap(Some(&pointer), &next).await.unwrap();
    eventually("the host saying it cannot run it", WAIT, || async {
        stack
            .logs()
            .contains("the pointer names logic this host cannot run")
    })
    .await;
    stack.send("api", &request("after-bogus"));
    eventually("still serving", WAIT, || async {
        stack.runtime.runtimes().len() == 1
    })
    .await;
    assert!(terminate(&mut daemon).success());
    assert_eq!(
        stack
            .logs()
            .matches("the pointer names logic this host cannot run")
            .count(),
        1,
        "said once"
    );

    // A host starting on that pointer serves the builtin version.
    let mut restarted = stack.serve();
    stack.send("api", &request("on-restart"));
    eventually("a fresh host serving despite the pointer", WAIT, || async {
        stack.runtime.runtimes().len() == 2
    })
    .await;
    assert!(
        stack
            .logs()
            .contains("serving the builtin version until the pointer changes"),
        "{}",
        stack.logs()
    );
    let items = stack.environment_items().await;
    let on_restart: Vec<_> = items
        .iter()
        .filter(|i| i["branch"] == "on-restart")
        .collect();
    assert!(
        on_restart
            .iter()
            .all(|i| i["logicVersion"] == hex_sha256(envmgr::BUILTIN_LOGIC))
    );
    assert!(terminate(&mut restarted).success());
}

async fn activation_under_load_loses_nothing(backend: Backend) {
    let v1 = hex_sha256(envmgr::BUILTIN_LOGIC);
    let v2_bytes = variant(envmgr::BUILTIN_LOGIC, "v2");
    let v2 = hex_sha256(&v2_bytes);
    let stack = shop(
        "swap",
        Options {
            backend,
            extra_config: "[logic]\npoll_ms = 200\n".into(),
            // Nothing but the test ends the held runtime calls, however
            // long install and activate take on a busy machine.
            visibility_seconds: 91,
            deadline_seconds: 90,
            env: vec![("ENVMGR__RUNTIME__TIMEOUT_MS".into(), "90000".into())],
            ..Options::default()
        },
    );
    let v2_file = write(&stack, "v2.wasm", &v2_bytes);
    // The first messages are held at the runtime call until after the swap.
    stack.runtime.hold();
    let (mut daemon, log) = stack.serve_logged();
    for i in 0..3 {
        stack.send("api", &request(&format!("early/{i}")));
    }
    eventually("the early messages in flight", WAIT, || async {
        stack.runtime.requests().len() == 3
    })
    .await;

    // Messages keep coming while v2 is installed and activated.
    let sender = spawn_sender(&stack);
    logic_ok(&stack, &["install", &v2_file, "--tag", "v2"]);
    logic_ok(&stack, &["activate", "v2"]);
    eventually("the daemon swapped to v2", WAIT, || async {
        stack.logs().contains("logic versions swapped")
    })
    .await;
    stack.runtime.release();
    sender.join().unwrap();
    for i in 0..3 {
        stack.send("api", &request(&format!("after/{i}")));
    }
    stack.send("probot", &example("pull-request-opened.json"));

    eventually("every message handled", WAIT, || async {
        stack.runtime.runtimes().len() == 27
            && stack.messages_in(&stack.queue_name("api")).await == 0
            && stack.messages_in(&stack.queue_name("probot")).await == 0
    })
    .await;
    let dead = format!("{}-dlq", stack.queue_name("api"));
    assert_eq!(stack.messages_in(&dead).await, 0, "nothing failed");
    assert_early_messages_finished_on_v1(&log, &v1);
    assert_eq!(stack.runtime.requests().len(), 27, "nothing was retried");
    assert_versions_by_branch(&stack, &v1, &v2).await;
    let comments = stack.github.comments("acme/shop", 7);
    assert!(
        comments[0].contains(&v2[..12]),
        "the comment names v2: {}",
        comments[0]
    );
    assert!(!stack.logs().contains("will retry"));
    let listed = logic_ok(&stack, &["list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&v2) && l.contains("active")),
        "{listed}"
    );
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&v1) && l.contains("previous")),
        "{listed}"
    );

    // Rollback is one command, and the daemon follows it too.
    logic_ok(&stack, &["rollback"]);
    eventually("the daemon back on v1", WAIT, || async {
        stack.logs().matches("logic versions swapped").count() == 2
    })
    .await;
    stack.send("api", &request("rolled-back"));
    eventually("handled on v1", WAIT, || async {
        by_branch(&stack.environment_items().await).get("rolled-back") == Some(&v1)
    })
    .await;
    assert!(terminate(&mut daemon).success());
}

async fn a_failing_canary_is_rolled_back_by_the_daemon(backend: Backend) {
    let port = free_port();
    let stack = shop(
        "canary",
        Options {
            backend,
            extra_config: format!(
                "[logic]\npoll_ms = 200\ncanary_window = 20\ncanary_min_messages = 4\n\n[admin]\nlisten = \"127.0.0.1:{port}\"\n"
            ),
            ..Options::default()
        },
    );
    let faulty = write(&stack, "faulty.wasm", FAULTY_LOGIC);
    let installed = logic_ok(&stack, &["install", &faulty, "--tag", "faulty"]);
    assert!(
        installed.contains("self-check"),
        "it passes its self-check: {installed}"
    );
    let mut daemon = stack.serve();
    eventually("the daemon serving", WAIT, || async {
        stack.logs().contains("serving")
    })
    .await;
    logic_ok(&stack, &["activate", "faulty", "--canary", "50"]);
    eventually("the canary loaded", WAIT, || async {
        stack.logs().contains("logic versions swapped")
    })
    .await;

    // Messages the candidate fails; the active version handles them.
    for i in 0..24 {
        stack.send("api", &request(&format!("envmgr-test-fail/{i}")));
    }
    eventually("the daemon rolls the canary back", WAIT, || async {
        stack.logs().contains("automatic rollback")
    })
    .await;
    eventually("and follows the pointer", WAIT, || async {
        !logic_ok(&stack, &["list"]).contains("canary 50%")
    })
    .await;
    let listed = logic_ok(&stack, &["list"]);
    assert!(listed.contains("automatic rollback: canary"), "{listed}");
    // Each of the 24 either created its runtime or, failed by the canary,
    // went to the dead-letter queue.
    let dead_letters = format!("{}-dlq", stack.queue_name("api"));
    eventually("every message handled or dead-lettered", WAIT, || async {
        stack.runtime.runtimes().len() as u64 + stack.messages_in(&dead_letters).await == 24
            && stack.messages_in(&stack.queue_name("api")).await == 0
    })
    .await;
    // After the rollback every message succeeds.
    let before = stack.runtime.runtimes().len();
    for i in 0..4 {
        stack.send("api", &request(&format!("envmgr-test-fail/after-{i}")));
    }
    eventually("handled by the active version", WAIT, || async {
        stack.runtime.runtimes().len() == before + 4
    })
    .await;

    let metrics = http_get(port, "/metrics");
    let faulty_id = hex_sha256(FAULTY_LOGIC);
    assert!(
        metrics.contains(&format!(
            "envmgr_messages_total{{version=\"{faulty_id}\",outcome=\"permanent\"}}"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "envmgr_logic_version{{version=\"{}\",role=\"active\"}} 1",
            hex_sha256(envmgr::BUILTIN_LOGIC)
        )),
        "{metrics}"
    );
    assert!(!metrics.contains("role=\"canary\""), "{metrics}");
    let status = http_get(port, "/status");
    assert!(status.contains("\"canary\":null"), "{status}");
    // One naming style, camelCase; the swap figures' snake_case names of
    // release 0.1 kept beside them for one more release.
    for name in [
        "\"lastSwap\":{",
        "\"pointerToSwapMs\":",
        "\"pausedSeconds\":",
    ] {
        assert!(status.contains(name), "no {name} in {status}");
    }
    assert!(status.contains("\"last_swap\":{"), "{status}");
    assert!(status.contains("\"pointer_to_swap_ms\":"), "{status}");
    assert!(terminate(&mut daemon).success());
}

async fn two_daemons_follow_one_activation(backend: Backend) {
    let v2_bytes = variant(envmgr::BUILTIN_LOGIC, "fleet");
    let v2 = hex_sha256(&v2_bytes);
    let stack = shop(
        "fleet",
        Options {
            backend,
            extra_config: "[logic]\npoll_ms = 200\n".into(),
            ..Options::default()
        },
    );
    let file = write(&stack, "v2.wasm", &v2_bytes);
    logic_ok(&stack, &["install", &file]);
    let mut first = stack.serve();
    let mut second = stack.serve();
    eventually("both serving", WAIT, || async {
        stack.logs().matches("serving").count() >= 2
    })
    .await;
    logic_ok(&stack, &["activate", &v2[..8]]);
    eventually("both swapped", WAIT, || async {
        stack.logs().matches("logic versions swapped").count() == 2
    })
    .await;
    for i in 0..8 {
        stack.send("api", &request(&format!("fleet/{i}")));
    }
    eventually("all handled", WAIT, || async {
        stack.runtime.runtimes().len() == 8
    })
    .await;
    let versions = by_branch(&stack.environment_items().await);
    assert!(versions.values().all(|v| v == &v2), "{versions:?}");
    assert!(terminate(&mut first).success());
    assert!(terminate(&mut second).success());
}

/// Swap figures under load, on the local backend: `cargo test -p
/// envmgr-tests --test versions -- --ignored --nocapture swap_figures`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement; run by hand"]
async fn swap_figures() {
    let port = free_port();
    let stack = shop(
        "figures",
        Options {
            backend: Backend::Local,
            extra_config: format!("[admin]\nlisten = \"127.0.0.1:{port}\"\n"),
            ..Options::default()
        },
    );
    let v2_bytes = variant(envmgr::BUILTIN_LOGIC, "figures");
    let file = write(&stack, "v2.wasm", &v2_bytes);
    let started = std::time::Instant::now();
    logic_ok(&stack, &["install", &file, "--tag", "v2"]);
    let install = started.elapsed();
    let mut daemon = stack.serve();
    const MESSAGES: usize = 60;
    let sender = {
        let stack_dir = stack.dir.clone();
        let config = stack.config.clone();
        std::thread::spawn(move || {
            for i in 0..MESSAGES {
                let status = std::process::Command::new(BINARY)
                    .env("ENVMGR_CONFIG", &config)
                    .current_dir(&stack_dir)
                    .args([
                        "send",
                        "--queue",
                        "api",
                        "--body",
                        &request(&format!("load/{i}")),
                    ])
                    .output()
                    .unwrap()
                    .status;
                assert!(status.success());
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let started = std::time::Instant::now();
    logic_ok(&stack, &["activate", "v2"]);
    let activate = started.elapsed();
    sender.join().unwrap();
    eventually("all handled", Duration::from_secs(300), || async {
        stack.runtime.runtimes().len() == MESSAGES
    })
    .await;
    let dead = stack
        .messages_in(&format!("{}-dlq", stack.queue_name("api")))
        .await;
    println!(
        "install (compile + self-check + store): {} ms",
        install.as_millis()
    );
    println!(
        "activate command (pointer write): {} ms",
        activate.as_millis()
    );
    println!(
        "status after the swap: {}",
        http_get(port, "/status")
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or("")
    );
    println!("messages failed or dead-lettered during the swap: {dead} of {MESSAGES}");
    assert!(terminate(&mut daemon).success());
}

envmgr_tests::on_both_backends!(
    contracts_across_a_rolling_upgrade,
    refusals_leave_the_active_version_serving,
    activation_under_load_loses_nothing,
    a_failing_canary_is_rolled_back_by_the_daemon,
    two_daemons_follow_one_activation,
);
