//! Input, configuration and dependency edges through the real binary, as a
//! new user meets them: hostile bodies refused with a reason that says
//! where parsing stopped and names the field as the producer wrote it, a
//! partial configuration file merged over the defaults, commands that
//! validate only what they use, and dependencies answering the way real
//! ones do (a GitHub 5xx or HTML 502 page, a health route answering 501).

use std::time::Duration;

use envmgr_tests::stack::{Backend, Options, Stack, eventually, example, terminate};

const BINARY: &str = env!("CARGO_BIN_EXE_envmgr-under-test");
const WAIT: Duration = Duration::from_secs(60);

fn shop(name: &str, backend: Backend) -> Stack {
    let stack = Stack::new(
        name,
        BINARY,
        Options {
            backend,
            ..Options::default()
        },
    );
    stack.seed_shop("postgres://shop@db/shop", "sk_test_edges_0001");
    stack
}

/// The example `opened` event with `edit` applied to its payload.
fn opened(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(&example("pull-request-opened.json")).expect("JSON");
    edit(&mut event["payload"]);
    event.to_string()
}

async fn hostile_bodies_are_refused_saying_where_and_naming_the_senders_field(backend: Backend) {
    let stack = shop("hostile", backend);
    let event = opened(|_| {});
    let bodies = [
        (format!("{event} xyz"), "trailing characters at line 1"),
        (format!("{event}{event}"), "trailing characters at line 1"),
        (
            "xyz".to_string(),
            "not valid JSON: expected value at line 1 column 1",
        ),
        (
            opened(|p| p["sender"]["login"] = "l".repeat(300).into()),
            "sender.login has 300 characters",
        ),
    ];
    for (body, _) in &bodies {
        stack.send("probot", body);
    }
    let mut daemon = stack.serve();
    eventually("every hostile body dead-lettered", WAIT, || async {
        stack.dead_letters("probot").await.len() == bodies.len()
    })
    .await;
    assert!(terminate(&mut daemon).success());
    let letters = stack.dead_letters("probot").await;
    for (body, why) in &bodies {
        let (_, attributes) = letters
            .iter()
            .find(|(sent, _)| sent == body)
            .unwrap_or_else(|| panic!("no dead letter for {}", &body[..40]));
        let reason = &attributes["envmgr.reason"];
        assert!(reason.contains(why), "`{why}` not in: {reason}");
        assert!(!reason.contains("requester"), "{reason}");
    }
    assert!(stack.runtime.requests().is_empty(), "none was handled");
}

/// A Runtime Service whose health route answers 501 (a framework's "method
/// not supported") does not offer the call: a 403 to one request is the
/// message's, and the host is not paused for it.
#[tokio::test(flavor = "multi_thread")]
async fn a_health_route_answering_501_is_a_call_not_offered() {
    let port = envmgr_tests::free_port();
    let stack = Stack::new(
        "health-501",
        BINARY,
        Options {
            extra_config: format!("[admin]\nlisten = \"127.0.0.1:{port}\"\n"),
            ..Options::default()
        },
    );
    stack.seed_shop("postgres://shop@db/shop", "sk_test_edges_0001");
    stack.runtime.health_answers(Some(501));
    stack
        .runtime
        .reject_next(403, "app_shop may not run production");
    let mut daemon = stack.serve();
    stack.send("api", &example("api-production.json"));
    eventually("the refused request dead-lettered", WAIT, || async {
        stack.dead_letters("api").await.len() == 1
    })
    .await;
    assert!(stack.runtime.health_checks() > 0, "the host probed");
    stack.send("probot", &example("pull-request-opened.json"));
    eventually("the next message handled", WAIT, || async {
        stack.runtime.runtimes().len() == 1
    })
    .await;
    let readyz = envmgr_tests::http_get(port, "/readyz");
    assert!(readyz.starts_with("HTTP/1.0 200"), "{readyz}");
    assert!(!stack.logs().contains("host unhealthy"), "no pause");
    assert!(terminate(&mut daemon).success());
}

/// `envmgr` with only `config` (a file of the test's) and `vars`.
fn envmgr(config: &std::path::Path, vars: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(BINARY)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ENVMGR_CONFIG", config)
        .envs(vars.iter().copied())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("envmgr");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A new directory (`envmgr-{name}-{pid}`) with `envmgr.toml` holding
/// `[local] data_dir` and `extra`; its path and the config's.
fn config_dir(name: &str, extra: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("envmgr-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("envmgr.toml");
    let text = format!("[local]\ndata_dir = \"{}/data\"\n\n{extra}", dir.display());
    std::fs::write(&config, text).unwrap();
    (dir, config)
}

/// `serve` on `config`, logging to `{dir}/serve.log`, until every one of
/// `queues` has a `message finished` line; then stopped. The log.
fn serve_until_finished(
    dir: &std::path::Path,
    config: &std::path::Path,
    queues: &[&str],
) -> String {
    let log = dir.join("serve.log");
    let mut serve = std::process::Command::new(BINARY)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ENVMGR_CONFIG", config)
        .arg("serve")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("serve");
    let deadline = std::time::Instant::now() + WAIT;
    let finished = |text: &str| {
        queues.iter().all(|q| {
            let queue = format!("queue={q}");
            text.lines()
                .any(|l| l.contains(&queue) && l.contains("message finished"))
        })
    };
    while !finished(&std::fs::read_to_string(&log).unwrap_or_default())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(terminate(&mut serve).success());
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        finished(&text),
        "not every queue finished a message:\n{text}"
    );
    text
}

/// A file with one queue key: both default queues are still consumed, and
/// a queue setting `serve` refuses does not stop `add-app`.
#[test]
fn a_partial_queue_section_keeps_the_defaults_and_commands_check_what_they_use() {
    let (dir, config) = config_dir("edges", "[queues.api]\nwait_seconds = 1\n");
    let short = [("ENVMGR__QUEUES__API__VISIBILITY_TIMEOUT_SECONDS", "10")];
    let added = envmgr(&config, &short, &envmgr_tests::ADD_SHOP_APP);
    assert!(added.0, "add-app uses no queue: {}", added.1);
    let show = envmgr(&config, &[], &["show"]);
    assert!(show.0, "{}", show.1);
    let served = envmgr(&config, &short, &["serve"]);
    assert!(!served.0, "serve refuses the queue setting");
    assert!(
        served.1.contains("queues.api.visibility_timeout_seconds"),
        "{}",
        served.1
    );
    for queue in ["probot", "api"] {
        let body = if queue == "probot" {
            example("pull-request-opened.json")
        } else {
            example("api-production.json")
        };
        let sent = envmgr(&config, &[], &["send", "--queue", queue, "--body", &body]);
        assert!(sent.0, "{}", sent.1);
    }
    serve_until_finished(&dir, &config, &["probot", "api"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// GitHub failing to answer for a moment — its edge's HTML 502 page, a
/// 503, a 500 to a token mint, a comment made and its answer lost — is
/// tried again within the call: with one receive allowed the message still
/// completes, with one comment and one deployment, and the host is not
/// paused.
#[tokio::test(flavor = "multi_thread")]
async fn a_github_blip_is_tried_again_within_the_call() {
    use envmgr_tests::fakes::github::{Failure, Route};
    let stack = Stack::new(
        "github-blip",
        BINARY,
        Options {
            max_receive_count: 1,
            ..Options::default()
        },
    );
    stack.seed_shop("postgres://shop@db/shop", "sk_test_edges_0001");
    stack
        .github
        .fail_next(Route::AccessToken, 1, Failure::Status(500));
    stack
        .github
        .fail_next(Route::ListComments, 2, Failure::HtmlPage(502));
    stack
        .github
        .fail_next(Route::CreateComment, 1, Failure::AfterDoing(502));
    stack
        .github
        .fail_next(Route::CreateDeployment, 1, Failure::Status(503));
    stack
        .github
        .fail_next(Route::CreateStatus, 1, Failure::AfterDoing(504));
    let mut daemon = stack.serve();
    stack.send("probot", &example("pull-request-opened.json"));
    eventually("the runtime created", WAIT, || async {
        stack.runtime.runtimes().len() == 1
    })
    .await;
    eventually("the message done", WAIT, || async {
        stack.messages_in(&stack.queue_name("probot")).await == 0
    })
    .await;
    assert!(terminate(&mut daemon).success());
    assert!(
        stack.dead_letters("probot").await.is_empty(),
        "not dead-lettered"
    );
    assert_eq!(
        stack.github.comments("acme/shop", 7).len(),
        1,
        "one comment"
    );
    let deployments = stack.github.deployments("acme/shop");
    assert_eq!(deployments.len(), 1, "one deployment");
    let logs = stack.logs();
    assert!(
        logs.contains("GitHub did not answer: trying again"),
        "{logs}"
    );
    assert!(
        !logs.contains("host unhealthy"),
        "GitHub's fault pauses nothing"
    );
}

/// A status report's recording names the repository only in the record
/// DynamoDB answered: `--scrub` takes it out there and everywhere else
/// (URLs, host names), and `logic replay builtin --from` compares an
/// export with the builtin logic without any deployment.
#[test]
fn scrubbed_exports_hold_no_repository_name_and_replay_against_the_builtin() {
    let (dir, config) = config_dir(
        "scrub",
        "[logic_config]\npreview-url-template = \"https://{environment}.preview.test\"\n",
    );
    let run = |args: &[&str]| {
        let (ok, text) = envmgr(&config, &[], args);
        assert!(ok, "envmgr {args:?}: {text}");
        text
    };
    run(&envmgr_tests::ADD_SHOP_APP);
    run(&[
        "send",
        "--queue",
        "probot",
        "--body",
        &example("pull-request-opened.json"),
    ]);
    // The create, then the local runtime's status report for it.
    serve_until_finished(&dir, &config, &["probot", "api"]);
    let export = dir.join("export");
    run(&["record", "export", export.to_str().unwrap(), "--scrub"]);
    let mut files = 0;
    for entry in std::fs::read_dir(&export).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(entry.path())
                .unwrap()
                .to_lowercase();
            assert!(!text.contains("acme"), "{}: {text}", entry.path().display());
            files += 1;
        }
    }
    assert_eq!(files, 2, "the create and its report");
    let replayed = run(&[
        "logic",
        "replay",
        "builtin",
        "--from",
        export.to_str().unwrap(),
    ]);
    assert!(replayed.contains("2 messages: 2 identical"), "{replayed}");
    let _ = std::fs::remove_dir_all(&dir);
}

envmgr_tests::on_both_backends!(
    hostile_bodies_are_refused_saying_where_and_naming_the_senders_field,
);
