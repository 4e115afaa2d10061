//! The commands of the guides (docs/guides/), through the real binary: `try`,
//! `check-logic`, `send --file -`, `set-secret --value-file` (one trailing
//! newline removed, 4096 bytes at most, `environment:<id>` scopes),
//! `logic activate/promote/rollback` with tags, `builtin` and sha256
//! prefixes, and the private data directory. Commands that need a backend
//! run on both (`aws::`, `local::`).

use std::process::{Command, Output};
use std::time::Duration;

use envmgr::support::hex_sha256;
use envmgr_tests::stack::{Backend, Options, Stack, eventually, example, terminate};
use envmgr_tests::{ADD_SHOP_APP, OTHER_WORLD_LOGIC, PREVIOUS_CONTRACT_LOGIC, variant};

const BINARY: &str = env!("CARGO_BIN_EXE_envmgr-under-test");
const WAIT: Duration = Duration::from_secs(60);

/// What `envmgr try` seeds (host/src/mock/seed.rs, `example_shop`): the
/// plaintexts that must not be printed.
const TRY_SECRETS: [&str; 2] = [
    "postgres://shop:hunter2@db/shop",
    "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
];

/// The binary with no config and nothing of the test's environment.
fn bare(args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A scratch directory of this test binary, created.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = envmgr_tests::scratch(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn try_prints_every_call_outcome_record_request_event_and_comment() {
    let output = bare(&[
        "try",
        "-v",
        "../docs/examples/pull-request-opened.json",
        "../docs/examples/api-production.json",
    ])
    .output()
    .unwrap();
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    for expected in [
        format!("logic {}", hex_sha256(envmgr::BUILTIN_LOGIC)),
        "== ../docs/examples/pull-request-opened.json ==".into(),
        "== ../docs/examples/api-production.json ==".into(),
        // Calls, with secrets and tokens as labels only.
        "github.authenticate".into(),
        "kms.decrypt".into(),
        "github.create-comment".into(),
        "token=<github-token:acme/shop>".into(),
        "DATABASE_URL=<secret:DATABASE_URL>".into(),
        // Both outcomes, the records, the runtime requests masked, the
        // events and the comment.
        "=> done: environment env_".into(),
        "== environments table ==".into(),
        "status=runtime-requested".into(),
        "== runtime request ".into(),
        "secrets=[DATABASE_URL=****".into(),
        "== analytics ==".into(),
        "cloud_environment_created".into(),
        "== comment ".into(),
        "on acme/shop#7 ==".into(),
    ] {
        assert!(
            printed.contains(&expected),
            "no `{expected}` in:\n{printed}"
        );
    }
    assert_eq!(printed.matches("=> done: ").count(), 2, "{printed}");
    for secret in TRY_SECRETS {
        assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
    }
}

/// Without `-v`, one short line per call: a person reads the flow, not
/// 2,000-character arguments.
#[test]
fn try_prints_one_short_line_per_call_without_verbose() {
    let output = bare(&["try", "../docs/examples/pull-request-opened.json"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}");
    assert!(printed.contains("github.authenticate"), "{printed}");
    assert!(
        printed.contains("(-v: every call's full arguments"),
        "{printed}"
    );
    let calls = printed.split("== environments table ==").next().unwrap();
    let widest = calls
        .lines()
        .filter(|l| l.starts_with("  "))
        .map(|l| l.chars().count())
        .max();
    assert!(
        widest.is_some_and(|w| w <= 122),
        "a line of {widest:?} characters:\n{printed}"
    );
    for secret in TRY_SECRETS {
        assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
    }
}

#[test]
fn check_logic_names_the_contract_or_refuses_another_world() {
    let dir = scratch("check-logic");
    let check = |name: &str, bytes: &[u8]| {
        let file = dir.join(name);
        std::fs::write(&file, bytes).unwrap();
        let output = bare(&["check-logic", file.to_str().unwrap()])
            .output()
            .unwrap();
        (output.status.success(), text(&output))
    };
    let (ok, printed) = check("builtin.wasm", envmgr::BUILTIN_LOGIC);
    assert!(ok, "{printed}");
    assert!(
        printed.starts_with(&format!(
            "{} implements envmgr:environments@{}",
            hex_sha256(envmgr::BUILTIN_LOGIC),
            envmgr::contract::CURRENT
        )),
        "{printed}"
    );
    let (ok, printed) = check("previous.wasm", PREVIOUS_CONTRACT_LOGIC);
    assert!(ok, "{printed}");
    assert!(
        printed.contains(&format!(
            "implements envmgr:environments@{}",
            envmgr::contract::previous::VERSION
        )) && printed.contains("the previous contract"),
        "{printed}"
    );
    let (ok, printed) = check("other.wasm", OTHER_WORLD_LOGIC);
    assert!(!ok, "another world accepted: {printed}");
    assert!(
        printed.contains("does not match the envmgr:environments world"),
        "{printed}"
    );
}

#[test]
fn the_data_directory_and_the_logic_cache_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = scratch("private").join("data");
    let file = dir.parent().unwrap().join("v2.wasm");
    std::fs::write(&file, variant(envmgr::BUILTIN_LOGIC, "private")).unwrap();
    let data_dir = dir.to_str().unwrap();
    let output = bare(&["--data-dir", data_dir, "init"]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    // Installing caches native code, which runs in the host.
    let output = bare(&[
        "--data-dir",
        data_dir,
        "logic",
        "install",
        file.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let cache = dir.join("logic-cache");
    assert_eq!(mode(&cache), 0o700, "{}", cache.display());
}

fn run(stack: &Stack, args: &[&str]) -> (bool, String) {
    let output = stack.command(args).output().expect("running envmgr");
    (output.status.success(), text(&output))
}

fn ok(stack: &Stack, args: &[&str]) -> String {
    let (ok, printed) = run(stack, args);
    assert!(ok, "envmgr {args:?} failed:\n{printed}");
    printed
}

/// `send --file -` reads the body from standard input.
async fn send_reads_standard_input(backend: Backend) {
    let stack = Stack::new(
        "send-stdin",
        BINARY,
        Options {
            backend,
            ..Options::default()
        },
    );
    let body = example("api-production.json");
    stack.ok_with_input(&["send", "--queue", "api", "--file", "-"], &body);
    let (sent, _) = stack.first_message("api", WAIT).await;
    assert_eq!(sent, body);
}

/// A value file keeps its content but one trailing newline; at most 4096
/// bytes; an `environment:<id>` secret goes to that environment only. What
/// reaches the Runtime Service says so.
async fn set_secret_reads_a_value_file_and_scopes_to_one_environment(backend: Backend) {
    let stack = Stack::new(
        "set-secret",
        BINARY,
        Options {
            backend,
            ..Options::default()
        },
    );
    ok(&stack, &ADD_SHOP_APP);
    let preview = envmgr_guest::environment::environment_id("app_shop", "feature/login");
    let write = |name: &str, content: &str| {
        let file = stack.dir.join(name);
        std::fs::write(&file, content).unwrap();
        file.display().to_string()
    };
    let set = |scope: &str, name: &str, file: &str| {
        run(
            &stack,
            &[
                "set-secret",
                "--app",
                "app_shop",
                "--scope",
                scope,
                "--name",
                name,
                "--value-file",
                file,
            ],
        )
    };
    // An editor's trailing newline goes; a second one is the value's.
    let (done, printed) = set("global", "ONE_NEWLINE", &write("one", "line-one\n"));
    assert!(done, "{printed}");
    let (done, printed) = set("global", "TWO_NEWLINES", &write("two", "line-two\n\n"));
    assert!(done, "{printed}");
    let largest = "k".repeat(4096);
    let (done, printed) = set("global", "LARGEST", &write("largest", &largest));
    assert!(done, "4096 bytes are taken: {printed}");
    let (done, printed) = set(
        "global",
        "TOO_LARGE",
        &write("too-large", &"k".repeat(4097)),
    );
    assert!(!done && printed.contains("at most 4096 bytes"), "{printed}");
    let scope = format!("environment:{preview}");
    let (done, printed) = set(&scope, "ONLY_HERE", &write("only", "for-one-environment"));
    assert!(done, "{printed}");

    let mut daemon = stack.serve();
    stack.send("probot", &example("pull-request-opened.json"));
    stack.send("api", &example("api-production.json"));
    eventually("both runtimes", WAIT, || async {
        stack.runtime.runtimes().len() == 2
    })
    .await;
    assert!(terminate(&mut daemon).success());
    let requests = stack.runtime.requests();
    let secrets_of = |environment_type: &str| {
        requests
            .iter()
            .map(|(_, body)| body)
            .find(|b| b["environmentType"] == environment_type)
            .unwrap_or_else(|| panic!("no {environment_type} runtime"))["secrets"]
            .clone()
    };
    let preview_secrets = secrets_of("preview");
    assert_eq!(preview_secrets["ONE_NEWLINE"], "line-one");
    assert_eq!(preview_secrets["TWO_NEWLINES"], "line-two\n");
    assert_eq!(preview_secrets["LARGEST"], largest.as_str());
    assert!(preview_secrets.get("TOO_LARGE").is_none());
    assert_eq!(preview_secrets["ONLY_HERE"], "for-one-environment");
    let production_secrets = secrets_of("production");
    assert_eq!(production_secrets["ONE_NEWLINE"], "line-one");
    assert!(
        production_secrets.get("ONLY_HERE").is_none(),
        "another environment's secret: {production_secrets}"
    );
}

/// `logic activate` by tag, by a 6-digit prefix (refused when it names
/// two versions), `--canary`, `promote`, `activate builtin`, `rollback`:
/// what `logic list` says after each.
async fn logic_commands_move_the_pointer_as_named(backend: Backend) {
    let stack = Stack::new(
        "logic-commands",
        BINARY,
        Options {
            backend,
            ..Options::default()
        },
    );
    let builtin = hex_sha256(envmgr::BUILTIN_LOGIC);
    let v2_bytes = variant(envmgr::BUILTIN_LOGIC, "commands");
    let v2 = hex_sha256(&v2_bytes);
    let file = stack.dir.join("v2.wasm");
    std::fs::write(&file, &v2_bytes).unwrap();
    ok(
        &stack,
        &["logic", "install", file.to_str().unwrap(), "--tag", "v2"],
    );
    // Two versions whose ids share their first eight digits (staged behind
    // install's back: no two real components do).
    let registry = stack.registry().await;
    for last in ['1', '2'] {
        let id = format!("abcdef01{}{last}", "0".repeat(55));
        registry
            .store(&id, None, b"\0asm\x0d\x00\x01\x00", "0.2.0", 1)
            .await
            .unwrap();
    }
    let listed = |stack: &Stack| ok(stack, &["logic", "list"]);
    let role = |listed: &str, id: &str| -> String {
        listed
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} not listed:\n{listed}"))
            .rsplit("contract")
            .next()
            .unwrap()
            .to_string()
    };

    let (done, printed) = run(&stack, &["logic", "activate", "abcdef01"]);
    assert!(
        !done && printed.contains("`abcdef01` names several versions"),
        "{printed}"
    );
    let (done, printed) = run(&stack, &["logic", "activate", &v2[..5]]);
    assert!(
        !done && printed.contains("no installed logic version"),
        "five digits are not a name: {printed}"
    );
    ok(&stack, &["logic", "activate", &v2[..6], "--canary", "20"]);
    let now = listed(&stack);
    assert!(role(&now, &v2).contains("canary 20%"), "{now}");
    assert!(role(&now, &builtin).contains("active"), "{now}");

    let printed = ok(&stack, &["logic", "promote"]);
    assert!(
        printed.contains(&format!("promoted canary {}", &v2[..12])),
        "{printed}"
    );
    let now = listed(&stack);
    assert!(role(&now, &v2).contains("active"), "{now}");
    assert!(!now.contains("canary 20%"), "{now}");
    assert!(role(&now, &builtin).contains("previous"), "{now}");
    let (done, printed) = run(&stack, &["logic", "promote"]);
    assert!(
        !done && printed.contains("no canary to promote"),
        "{printed}"
    );

    ok(&stack, &["logic", "activate", "builtin"]);
    let now = listed(&stack);
    assert!(role(&now, &builtin).contains("active"), "{now}");
    assert!(role(&now, &v2).contains("previous"), "{now}");

    let printed = ok(&stack, &["logic", "rollback"]);
    assert!(
        printed.contains(&format!("active {}", &v2[..12])),
        "{printed}"
    );
    let now = listed(&stack);
    assert!(role(&now, &v2).contains("active"), "{now}");
}

envmgr_tests::on_both_backends!(
    send_reads_standard_input,
    set_secret_reads_a_value_file_and_scopes_to_one_environment,
    logic_commands_move_the_pointer_as_named,
);
