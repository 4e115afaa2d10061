//! Through the binary, on both backends: `serve` records, `logic replay`
//! compares, a shadow applies nothing, a missing recordings table fails
//! no message.

use std::time::Duration;

use envmgr_tests::stack::{Backend, Options, Stack, eventually, example, terminate};
use envmgr_tests::*;

use crate::helpers::MARKER;

const BINARY: &str = env!("CARGO_BIN_EXE_envmgr-under-test");
const WAIT: Duration = Duration::from_secs(120);
/// Pull requests of the traffic (each its own environment and comment).
const PULL_REQUESTS: u64 = 6;

fn shop(name: &str, options: Options) -> Stack {
    let stack = Stack::new(name, BINARY, options);
    stack.seed_shop(
        "postgres://shop:pw@db/replay-canary-secret",
        "sk_replay_canary",
    );
    for number in 1..=PULL_REQUESTS {
        stack.github.add_pull_request(REPO, 100 + number);
    }
    stack
}

/// Pull request `100 + n` opened on its own branch, as GitHub sends it.
fn opened(n: u64) -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(&example("pull-request-opened.json")).unwrap();
    let number = 100 + n;
    event["id"] = format!("replay-event-{n}").into();
    let payload = &mut event["payload"];
    payload["number"] = number.into();
    payload["pull_request"]["number"] = number.into();
    payload["pull_request"]["head"]["ref"] = format!("feature/replay-{n}").into();
    event.to_string()
}

/// A production create the faulty candidate fails (it names the marker).
fn failing_production() -> String {
    example("api-production.json").replace("\"main\"", &format!("\"{MARKER}\""))
}

fn write(stack: &Stack, name: &str, bytes: &[u8]) -> String {
    let path = stack.dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

/// Send the traffic and wait until every message is handled.
async fn traffic(stack: &Stack) -> usize {
    for n in 1..=PULL_REQUESTS {
        stack.send("probot", &opened(n));
    }
    stack.send("api", &example("api-production.json"));
    stack.send("api", &failing_production());
    let messages = PULL_REQUESTS as usize + 2;
    eventually("every message handled", WAIT, || async {
        stack.runtime.runtimes().len() == messages
            && stack.messages_in(&stack.queue_name("probot")).await == 0
            && stack.messages_in(&stack.queue_name("api")).await == 0
    })
    .await;
    messages
}

/// Exported and scrubbed, it replays with no deployment at all (the faulty
/// candidate's one failure included).
fn assert_scrubbed_export_replays_offline(stack: &Stack, faulty: &str, messages: usize) {
    let export = stack.dir.join("export");
    stack.run_ok(&["record", "export", &export.display().to_string(), "--scrub"]);
    let exported: String = std::fs::read_dir(&export)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    for private in [
        "octocat",
        "acme/shop",
        "replay-canary-secret",
        "sk_replay_canary",
    ] {
        assert!(!exported.contains(private), "{private} in the export");
    }
    let offline = std::process::Command::new(BINARY)
        .args([
            "logic",
            "replay",
            faulty,
            "--from",
            &export.display().to_string(),
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(&stack.dir)
        .output()
        .unwrap();
    let offline = String::from_utf8_lossy(&offline.stdout).to_string();
    assert!(
        offline.contains(&format!("{messages} messages:")),
        "{offline}"
    );
    assert!(offline.contains(", 1 fail,"), "{offline}");
}

pub(crate) async fn serve_records_and_replay_compares(backend: Backend) {
    let stack = shop(
        "replay",
        Options {
            backend,
            ..Options::default()
        },
    );
    let mut daemon = stack.serve();
    let messages = traffic(&stack).await;
    // Stopped: what was queued for the store is stored.
    assert!(terminate(&mut daemon).success());

    let listed = stack.run_ok(&["record", "list", "--json"]);
    let recordings: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(recordings.len(), messages, "{listed}");
    assert!(
        recordings.iter().all(|r| r["logic"].as_str().is_some()),
        "{listed}"
    );

    // The version that handled them, against its own recording.
    let same = stack.run_ok(&["logic", "replay", "builtin", "--fail-on", "differ"]);
    assert!(
        same.contains(&format!("{messages} messages: {messages} identical")),
        "{same}"
    );

    // A candidate that fails production requests: exactly those fail.
    let faulty = write(&stack, "faulty.wasm", FAULTY_LOGIC);
    let (passed, said) = stack.run(&["logic", "replay", &faulty, "--fail-on", "fail"]);
    assert!(!passed, "the gate holds: {said}");
    assert!(
        said.contains(&format!(
            "{messages} messages: {} identical, 0 differ, 1 fail",
            messages - 1
        )),
        "{said}"
    );
    let failing: Vec<&str> = said.lines().filter(|l| l.contains(" fails: ")).collect();
    assert_eq!(failing.len(), 1, "{said}");
    assert!(failing[0].contains(" api "), "{said}");

    // A reworded comment: differences in the comments, accepted as expected.
    let reworded = write(&stack, "reworded.wasm", REWORDED_LOGIC);
    let (passed, said) = stack.run(&["logic", "replay", &reworded, "--fail-on", "differ"]);
    assert!(!passed, "{said}");
    assert!(said.contains("github.create-comment["), "{said}");
    let expected = write(
        &stack,
        "expected.toml",
        b"[[change]]\npath = \"github.*-comment.body\"\npattern = \"environment built from\"\n\n\
          [[change]]\npath = \"dynamodb.**.commentDigest.s\"\npattern = \".*\"\n",
    );
    let accepted = stack.run_ok(&[
        "logic",
        "replay",
        &reworded,
        "--expect",
        &expected,
        "--fail-on",
        "differ",
    ]);
    assert!(
        accepted.contains(&format!("{messages} messages: {messages} identical")),
        "{accepted}"
    );

    assert_scrubbed_export_replays_offline(&stack, &faulty, messages);

    // Install runs the replay: a failing version is refused, a reworded
    // one installed with its differences reported.
    let (installed, said) = stack.run(&["logic", "install", &faulty, "--replay", "20"]);
    assert!(!installed && said.contains("refused"), "{said}");
    let said = stack.run_ok(&["logic", "install", &reworded, "--replay", "20"]);
    assert!(
        said.contains("replay: ") && said.contains("differ"),
        "{said}"
    );
}

/// Every recording in the store, scanned for what must never be there.
async fn no_secret_recorded(stack: &Stack) {
    let export = stack.dir.join("unscrubbed");
    stack.run_ok(&["record", "export", &export.display().to_string()]);
    let mut text = String::new();
    for entry in std::fs::read_dir(&export).unwrap().flatten() {
        if entry.path().extension().is_some_and(|x| x == "json") {
            text.push_str(&std::fs::read_to_string(entry.path()).unwrap());
        }
    }
    assert!(!text.is_empty());
    for secret in ["replay-canary-secret", "sk_replay_canary"] {
        assert!(!text.contains(secret), "{secret} recorded");
    }
    for token in stack.github.tokens() {
        assert!(!text.contains(&token), "a GitHub token recorded");
    }
}

pub(crate) async fn a_shadow_runs_beside_the_active_version_and_applies_nothing(backend: Backend) {
    let stack = shop(
        "shadow",
        Options {
            backend,
            extra_config: "[logic]\npoll_ms = 200\n".to_string(),
            ..Options::default()
        },
    );
    let reworded = write(&stack, "reworded.wasm", REWORDED_LOGIC);
    stack.run_ok(&["logic", "install", &reworded, "--tag", "v2"]);
    let ports = [free_port(), free_port()];
    let mut daemons: Vec<_> = ports
        .iter()
        .map(|port| {
            let listen = format!("127.0.0.1:{port}");
            stack.serve_with(&[("ENVMGR__ADMIN__LISTEN", &listen)]).0
        })
        .collect();
    eventually("serving", WAIT, || async {
        stack.logs().matches("serving").count() >= 2
    })
    .await;
    stack.run_ok(&["logic", "activate", "v2", "--shadow"]);
    eventually("both hosts loaded the shadow", WAIT, || async {
        stack.logs().matches("logic versions swapped").count() >= 2
    })
    .await;
    let messages = traffic(&stack).await;
    let v2 = envmgr::support::hex_sha256(REWORDED_LOGIC);
    // Counted across both hosts in the shared store.
    eventually("every message shadowed", WAIT, || async {
        stack
            .run_ok(&["logic", "list"])
            .contains(&format!("shadow runs: {messages} messages:"))
    })
    .await;
    let listed = stack.run_ok(&["logic", "list"]);
    let differing = PULL_REQUESTS as usize;
    assert!(
        listed.contains(&format!(
            "shadow runs: {messages} messages: {} identical, {differing} differ, 0 fail, 0 not replayable",
            messages - differing
        )),
        "{listed}"
    );
    // Each host counts its own in /metrics: together, the same.
    let mut per_verdict = std::collections::BTreeMap::new();
    for port in ports {
        for line in http_get(port, "/metrics").lines() {
            if let Some(rest) = line.strip_prefix("envmgr_shadow_runs_total{") {
                let verdict = rest
                    .split("verdict=\"")
                    .nth(1)
                    .and_then(|v| v.split('"').next());
                let count: f64 = rest.rsplit(' ').next().unwrap().parse().unwrap();
                *per_verdict
                    .entry(verdict.unwrap().to_string())
                    .or_insert(0.0) += count;
            }
        }
    }
    assert_eq!(
        per_verdict.get("identical"),
        Some(&((messages - differing) as f64)),
        "{per_verdict:?}"
    );
    assert_eq!(
        per_verdict.get("differs"),
        Some(&(differing as f64)),
        "{per_verdict:?}"
    );
    let report = stack.run_ok(&["logic", "replay", "--shadow-report"]);
    assert_eq!(
        report.lines().filter(|l| l.contains("differs")).count(),
        differing,
        "{report}"
    );
    assert!(report.contains("environment built from"), "{report}");

    // Nothing of the shadow was applied.
    assert_eq!(stack.runtime.requests().len(), messages);
    for n in 1..=PULL_REQUESTS {
        for body in stack.github.comments(REPO, 100 + n) {
            assert!(!body.contains("built from"), "{body}");
        }
    }
    for item in stack.environment_items().await {
        assert_ne!(item.get("logicVersion"), Some(&v2), "{item:?}");
    }
    no_secret_recorded(&stack).await;
    for daemon in &mut daemons {
        assert!(terminate(daemon).success());
    }
}

/// Recording never fails a message: with its table missing (a host
/// upgraded without `init`), every message is handled, each recording is
/// counted as failed, and the log says so once, not once a message.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_recordings_table_fails_no_message() {
    let stack = shop(
        "unrecorded",
        Options {
            backend: Backend::Aws,
            ..Options::default()
        },
    );
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let missing = format!("{}-no-such-table", stack.prefix);
    let (mut daemon, _) = stack.serve_with(&[
        ("ENVMGR__TABLES__RECORDINGS", &missing),
        ("ENVMGR__ADMIN__LISTEN", &listen),
    ]);
    let messages = traffic(&stack).await;
    eventually("every recording counted", WAIT, || async {
        http_get(port, "/metrics").contains(&format!(
            "envmgr_recordings_total{{result=\"failed\"}} {messages}"
        ))
    })
    .await;
    assert!(terminate(&mut daemon).success());
    let logs = stack.logs();
    assert!(
        !logs.contains("dead-lettered") && !logs.contains("will retry"),
        "{logs}"
    );
    assert_eq!(logs.matches("recording not stored").count(), 1, "{logs}");
    assert_eq!(stack.runtime.runtimes().len(), messages);
}
