//! The host boundary through the real binary, on both backends: nothing
//! secret crosses back from a dependency that quotes the request, nothing
//! is over-granted, and bad input is refused where it enters.

use std::time::Duration;

use envmgr_tests::encoders::Encoder;
use envmgr_tests::fakes::Echo;
use envmgr_tests::fakes::github::{self, Failure, Route};
use envmgr_tests::fakes::{runtime, segment};
use envmgr_tests::stack::{Backend, Options, Stack, eventually, terminate};
use envmgr_tests::{api_request, free_port, http_get, on_both_backends, pull_request_event};

const BINARY: &str = env!("CARGO_BIN_EXE_envmgr-under-test");
const WAIT: Duration = Duration::from_secs(60);

/// Canary secrets: any trace of them outside the runtime's request is a leak.
const DATABASE_URL: &str = "postgres://canary:Zq8-canary-db-7Yp@db.internal/shop";
const STRIPE_KEY: &str = "sk_live_canary_4f9a1c2e8b7d6a5f";

/// Every form of every secret the stack's envmgr holds, with a name.
fn secret_forms(stack: &Stack) -> Vec<(String, String)> {
    let mut secrets: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), DATABASE_URL.into()),
        ("STRIPE_KEY".into(), STRIPE_KEY.into()),
        ("runtime token".into(), runtime::TOKEN.into()),
        ("Segment write key".into(), segment::WRITE_KEY.into()),
    ];
    for token in stack.github.tokens() {
        secrets.push(("installation token".into(), token));
    }
    // The environments' private signing keys, as the runtime received them.
    for (_, request) in stack.runtime.requests() {
        if let Some(d) = request["signingKey"]["d"].as_str() {
            secrets.push(("signing key".into(), d.to_string()));
        }
    }
    for line in github::PRIVATE_KEY
        .lines()
        .filter(|l| !l.starts_with("-----"))
    {
        secrets.push(("App private key".into(), line.to_string()));
    }
    let mut forms = Vec::new();
    for (name, secret) in secrets {
        forms.push((name.clone(), secret.clone()));
        for form in Encoder::forms(&secret, 12) {
            forms.push((name.clone(), form));
        }
    }
    forms
}

/// Panics naming the place and the secret when any form of a secret is in
/// `text`.
fn assert_clean(forms: &[(String, String)], place: &str, text: &str) {
    for (name, form) in forms {
        assert!(
            !text.contains(form.as_str()),
            "{name} leaked into {place} (as `{form}`):\n{}",
            text.chars().take(3_000).collect::<String>()
        );
    }
}

async fn a_dependency_echoing_the_request_leaks_nothing(backend: Backend) {
    let port = free_port();
    let stack = echoing_stack(backend, port);

    let mut daemon = stack.serve();
    send_requests_the_dependencies_echo(&stack).await;
    let metrics = http_get(port, "/metrics");
    let status = http_get(port, "/status");
    // No series per installation: a few numbers whatever their count.
    assert!(!metrics.contains("installation="), "{metrics}");
    assert!(
        metrics.contains("envmgr_github_installations 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("envmgr_github_installations_low_on_requests 0"),
        "{metrics}"
    );
    assert!(terminate(&mut daemon).success());

    // The echoes did reach envmgr: the test can fail.
    assert_eq!(
        stack.runtime.requests().len(),
        3,
        "the 503, the 201 and the 422"
    );
    let forms = secret_forms(&stack);
    assert!(
        forms.iter().any(|(n, _)| n == "installation token"),
        "tokens were minted"
    );

    assert_stored_and_sent_clean(&stack, &forms).await;
    assert_clean(&forms, "/metrics", &metrics);
    assert_clean(&forms, "/status", &status);
    assert_reasons_redacted(&stack).await;
    if backend == Backend::Local {
        let show = stack.ok(&["show"]);
        assert_clean(&forms, "`show`", &String::from_utf8_lossy(&show.stdout));
        for file in ["envmgr.db", "envmgr.db-wal"] {
            let bytes = std::fs::read(stack.dir.join("data").join(file)).unwrap_or_default();
            assert_clean(&forms, file, &String::from_utf8_lossy(&bytes));
        }
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn refused(stack: &Stack, args: &[&str], why: &str) {
    let (ok, text) = stack.run(args);
    assert!(!ok, "envmgr {args:?} was accepted:\n{text}");
    assert!(
        text.contains(why),
        "envmgr {args:?} does not say `{why}`:\n{text}"
    );
}

async fn admin_commands_refuse_what_breaks_the_rules(backend: Backend) {
    let stack = Stack::new(
        "admin",
        BINARY,
        Options {
            backend,
            ..Options::default()
        },
    );
    stack.seed_shop("postgres://db/shop-admin-test", "sk_test_admin_commands");
    assert_add_app_rules(&stack);
    assert_set_secret_rules(&stack);
    assert_oversized_body_refused(&stack).await;
    let (ok, text) = stack.run(&["check-data"]);
    assert!(ok, "all is well again: {text}");
    assert_check_data_lists_foreign_writes(&stack).await;
}

/// The echo stack: canary secrets, and every dependency primed to quote a
/// request back.
fn echoing_stack(backend: Backend, port: u16) -> Stack {
    let stack = Stack::new(
        "echo",
        BINARY,
        Options {
            backend,
            max_receive_count: 3,
            extra_config: format!("[admin]\nlisten = \"127.0.0.1:{port}\"\n"),
            ..Options::default()
        },
    );
    stack.seed_shop(DATABASE_URL, STRIPE_KEY);
    for pr in [7, 8] {
        stack.github.add_pull_request("acme/shop", pr);
    }
    // GitHub quotes the first token request back (the App's JWT too): a
    // permanent failure whose reason goes to the dead letter.
    stack.github.fail_next(
        Route::AccessToken,
        1,
        Failure::Echo {
            status: 422,
            how: Echo::Json,
        },
    );
    // The Runtime Service quotes the create request (token and secrets) in
    // a 503 (retried), in its success (into the record, the comment and the
    // deployment), and in a 422 (dead-lettered).
    stack.runtime.echo_next(503, Echo::Base64);
    stack.runtime.echo_next(201, Echo::PercentAll);
    stack.runtime.echo_next(422, Echo::Json);
    // Segment quotes every batch (the write key in the auth header) in 400s.
    stack.segment.echo(Some(Echo::Base64));
    stack
}

/// Two pull requests and a production request, each meeting an echo; waits
/// until each has ended as the echo makes it end.
async fn send_requests_the_dependencies_echo(stack: &Stack) {
    stack.send(
        "probot",
        &pull_request_event(
            "opened",
            7,
            "feature/login",
            envmgr_tests::SHA_1,
            "2026-11-28T11:00:00Z",
        ),
    );
    eventually("the token request's echo dead-lettered", WAIT, || async {
        stack.dead_letters("probot").await.len() == 1
    })
    .await;
    stack.send(
        "api",
        &api_request(
            "production",
            "main",
            envmgr_tests::SHA_2,
            "2026-11-28T11:10:00Z",
        ),
    );
    eventually(
        "the production request done after the 503",
        WAIT,
        || async {
            stack.environment_items().await.iter().any(|i| {
                i.get("branch").map(String::as_str) == Some("main")
                    && i.get("status").map(String::as_str) == Some("runtime-requested")
            })
        },
    )
    .await;
    // GitHub quotes the comment showing the next failure (its installation
    // token): logged, the environment marked failed all the same.
    stack.github.fail_next(
        Route::CreateComment,
        1,
        Failure::Echo {
            status: 422,
            how: Echo::Json,
        },
    );
    stack.send(
        "probot",
        &pull_request_event(
            "opened",
            8,
            "feature/pay",
            envmgr_tests::SHA_1,
            "2026-11-28T11:20:00Z",
        ),
    );
    eventually("the runtime's 422 dead-lettered", WAIT, || async {
        stack.dead_letters("probot").await.len() == 2
    })
    .await;
    // Segment tried (and was refused) at least once.
    eventually("Segment's refusal logged", WAIT, || async {
        stack.logs().contains("400")
    })
    .await;
}

/// No form of a secret in the logs, records, dead letters, comments or
/// deployment statuses.
async fn assert_stored_and_sent_clean(stack: &Stack, forms: &[(String, String)]) {
    assert_clean(forms, "the logs", &stack.logs());
    for item in stack.environment_table().await {
        assert_clean(forms, "a record", &format!("{item:?}"));
    }
    for logical in ["probot", "api"] {
        for letter in stack.dead_letters(logical).await {
            assert_clean(forms, "a dead letter", &format!("{letter:?}"));
        }
    }
    for pr in [7, 8] {
        for comment in stack.github.comments("acme/shop", pr) {
            assert_clean(forms, "a comment", &comment);
        }
    }
    for deployment in stack.github.deployments("acme/shop") {
        assert_clean(forms, "a deployment", &format!("{:?}", deployment.statuses));
    }
}

/// The reasons say what happened, with the secrets taken out.
async fn assert_reasons_redacted(stack: &Stack) {
    let letters = stack.dead_letters("probot").await;
    let reasons: Vec<&str> = letters
        .iter()
        .filter_map(|(_, attributes)| attributes.get("envmgr.reason").map(String::as_str))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("authenticate") && r.contains("[redacted]")),
        "{reasons:?}"
    );
    assert!(
        stack
            .github
            .requests()
            .iter()
            .any(|r| r.route == Some(Route::CreateComment) && r.status == 422),
        "GitHub quoted a comment request back"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("create the runtime") && r.contains("[redacted]")),
        "{reasons:?}"
    );
}

/// `add-app` with its id, name and repository.
fn add(id: &str, name: &str, repository: &str) -> Vec<String> {
    vec![
        "add-app".to_string(),
        "--id".into(),
        id.into(),
        "--name".into(),
        name.into(),
        "--repository".into(),
        repository.into(),
    ]
}

/// `set-secret` for an app, scope and name, the value from the config file.
fn secret(stack: &Stack, app: &str, scope: &str, name: &str) -> Vec<String> {
    vec![
        "set-secret".to_string(),
        "--app".into(),
        app.into(),
        "--scope".into(),
        scope.into(),
        "--name".into(),
        name.into(),
        "--value-file".into(),
        stack.config.display().to_string(),
    ]
}

/// `add-app` refuses a taken repository, bad ids, names and repositories;
/// `--replace` moves a repository and says so.
fn assert_add_app_rules(stack: &Stack) {
    refused(
        stack,
        &strs(&add("app_dup", "Dup", "ACME/Shop")),
        "belongs to app app_shop",
    );
    for (id, name, why) in [
        ("app with space", "Name", "app id `app with space`"),
        ("x-->", "Name", "app id `x-->`"),
        ("app_ok", "   ", "app name"),
    ] {
        refused(stack, &strs(&add(id, name, "acme/other")), why);
    }
    refused(
        stack,
        &strs(&add("app_ok", "Ok", "acme")),
        "not a GitHub owner/name",
    );
    // --replace moves it in one step and says so.
    let mut replace = add("app_dup", "Dup", "ACME/Shop");
    replace.push("--replace".into());
    let (ok, text) = stack.run(&strs(&replace));
    assert!(ok && text.contains("moved from app app_shop"), "{text}");
    let (ok, text) = stack.run(&["check-data"]);
    assert!(
        !ok && text.contains("APP#app_shop / #: no `repository`"),
        "{text}"
    );
    // And back: app_shop takes it again; app_dup loses it.
    let mut back = add("app_shop", "Shop", "acme/shop");
    back.push("--replace".into());
    let (ok, text) = stack.run(&strs(&back));
    assert!(ok && text.contains("moved from app app_dup"), "{text}");
    let (ok, text) = stack.run(&["check-data"]);
    assert!(
        !ok && text.contains("APP#app_dup / #: no `repository`"),
        "{text}"
    );
    let (ok, text) = stack.run(&strs(&add("app_dup", "Dup", "acme/dup")));
    assert!(ok, "{text}");
}

/// `set-secret` refuses an unknown app, bad names and bad scopes.
fn assert_set_secret_rules(stack: &Stack) {
    refused(
        stack,
        &strs(&secret(stack, "app_nope", "global", "TOKEN")),
        "no app `app_nope`",
    );
    refused(
        stack,
        &strs(&secret(stack, "app_shop", "global", "A B=C")),
        "secret name `A B=C`",
    );
    refused(
        stack,
        &strs(&secret(stack, "app_shop", "global", "")),
        "secret name ``",
    );
    refused(
        stack,
        &strs(&secret(stack, "app_shop", "environment:xyz", "TOKEN")),
        "scope `environment:xyz`",
    );
}

/// A body that leaves no room for envmgr's attributes within the queue's
/// maximum message size is refused where it enters.
async fn assert_oversized_body_refused(stack: &Stack) {
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(256 << 10));
    let file = stack.dir.join("big.json");
    std::fs::write(&file, &big).unwrap();
    refused(
        stack,
        &[
            "send",
            "--queue",
            "probot",
            "--file",
            &file.display().to_string(),
        ],
        "the queue takes 262144",
    );
    assert_eq!(stack.messages_in(&stack.queue_name("probot")).await, 0);
}

/// What another tool wrote is listed by `check-data` before an upgrade.
async fn assert_check_data_lists_foreign_writes(stack: &Stack) {
    use envmgr::capabilities::dynamodb::{AttributeValue as V, Condition, PutItem, Write};
    let bad = vec![
        ("pk".to_string(), V::S("APP#app_shop".into())),
        ("sk".to_string(), V::S("SECRET#global#bad name".into())),
        ("name".to_string(), V::S("bad name".into())),
        ("scope".to_string(), V::S("global".into())),
        ("ciphertext".to_string(), V::B(vec![1, 2, 3])),
    ];
    stack
        .tables()
        .await
        .transact_write(&[Write::Put(PutItem {
            table: "secrets".into(),
            item: bad,
            condition: Condition::None,
        })])
        .await
        .map_err(|_| "writing the bad item")
        .unwrap();
    let (ok, text) = stack.run(&["check-data"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("SECRET#global#bad name: secret name `bad name`"),
        "{text}"
    );
    assert!(text.contains("a ciphertext of 3 bytes"), "{text}");
}

on_both_backends!(
    a_dependency_echoing_the_request_leaks_nothing,
    admin_commands_refuse_what_breaks_the_rules,
);
