//! `envmgr demo`, the README's first command: from a fresh data directory it
//! creates a preview and a production environment on the local backend and
//! shows them, with no secret value anywhere in what it prints; the local
//! Runtime Service's signed status reports turn both ready; then the pull
//! request closes and its preview ends.

use std::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_envmgr-under-test");

fn run_demo(dir: &std::path::Path) -> (bool, String) {
    let output = Command::new(BINARY)
        .args(["demo", "--dir"])
        .arg(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("running envmgr demo");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn the_demo_creates_both_environments_from_a_fresh_directory() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-stacks")
        .join(format!("demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    let (ok, output) = run_demo(&dir);
    assert!(ok, "the demo failed:\n{output}");
    assert_first_run_output(&output);
    assert!(dir.join("envmgr.db").exists());

    // Run again: it starts fresh rather than finding its old environments.
    let (ok, again) = run_demo(&dir);
    assert!(ok, "the second demo failed:\n{again}");
    assert!(again.contains("== environments (2) =="), "{again}");
    assert_eq!(again.matches("(asked 1 time)").count(), 2, "{again}");

    assert_show_reads_the_same_file(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Everything the demo shows, both environments created and ready, a
/// summary per environment, and no secret value printed.
fn assert_first_run_output(output: &str) {
    for expected in [
        "== environments (2) ==",
        "preview acme/shop @ feature/login · status ready",
        "production acme/shop @ main · status ready",
        "| ✅ Ready |",
        "success \"Ready\"",
        "<!-- envmgr:comment app=app_shop -->",
        "[Visit preview](http://env_",
        "== GitHub deployments (2) ==",
        "== runtime requests (2; secret values masked) ==",
        "\"DATABASE_URL\": \"****\"",
        "cloud_environment_created",
        "probot (envmgr-probot): 0 waiting, 0 in flight, 0 dead-lettered",
        "api (envmgr-api): 0 waiting, 0 in flight, 0 dead-lettered",
        "serve --data-dir",
        // Then the pull request closes: its preview ends.
        "[5/5] closing the pull request",
        "(preview feature/login): deleted (pull-request-closed), a tombstone until purgeAt",
        "#delete",
        "inactive \"Removed: the pull request was closed\"",
        "| 🗑️ Removed |",
    ] {
        assert!(
            output.contains(expected),
            "missing `{expected}` in:\n{output}"
        );
    }
    // Both creates done, and each runtime's report applied (before the
    // create recorded the runtime, or after: the end state is the same).
    let created = output
        .lines()
        .filter(|line| {
            line.contains(": Deleted — done: environment ") && line.contains(": runtime rt_")
        })
        .count();
    assert_eq!(created, 2, "{output}");
    assert_eq!(output.matches("success \"Ready\"").count(), 2, "{output}");
    assert_eq!(
        output
            .matches("    status report: ready for request ")
            .count(),
        2,
        "{output}"
    );
    // A summary per environment: the items are for `show --items`, the
    // daemon's log lines for `demo --verbose`.
    assert_eq!(output.matches("    {pk=").count(), 0, "{output}");
    assert!(output.contains("envmgr show --items"), "{output}");
    assert!(
        !output.contains(" INFO "),
        "log lines without --verbose:\n{output}"
    );
    for secret in [
        "hunter2",
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "sk_live_",
        "ghs_local_",
    ] {
        assert!(!output.contains(secret), "`{secret}` was printed");
    }
}

/// `show` reads the same file afterwards, summarised, with `--items` and
/// as `--json`: the preview ended with its pull request, production ready.
fn assert_show_reads_the_same_file(dir: &std::path::Path) {
    let shown = Command::new(BINARY)
        .args(["show", "--data-dir"])
        .arg(dir)
        .env_clear()
        .output()
        .expect("running envmgr show");
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("== environments (2) =="), "{shown}");
    // The stored items on demand (three per environment), and for tools.
    let show = |extra: &str| {
        let output = Command::new(BINARY)
            .args(["show", extra, "--data-dir"])
            .arg(dir)
            .env_clear()
            .output()
            .expect("running envmgr show");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let items = show("--items");
    assert_eq!(items.matches("    {pk=").count(), 6, "{items}");
    let json: serde_json::Value = serde_json::from_str(&show("--json")).unwrap();
    let environments = json["environments"].as_array().unwrap();
    assert_eq!(environments.len(), 2, "{json}");
    assert!(
        environments
            .iter()
            .all(|e| e["items"].as_array().unwrap().len() == 3),
        "{json}"
    );
    // The preview ended with its pull request; production is ready.
    let mut statuses: Vec<&str> = environments
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["deleted", "ready"], "{json}");
}

/// The demo makes its own deployment: a config or data directory given to
/// it is refused, not silently ignored.
#[test]
fn the_demo_refuses_a_config_it_would_not_read() {
    for flag in ["--config", "--data-dir"] {
        let output = Command::new(BINARY)
            .args(["demo", flag, "somewhere"])
            .env_clear()
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{flag} accepted");
        assert!(stderr.contains("reads no config"), "{stderr}");
    }
}
