//! Activation under load: the messages sent while a version is installed
//! and activated, and what the daemon's log and the records say after.

use std::path::Path;
use std::time::Duration;

use envmgr_tests::stack::Stack;

use super::{by_branch, request};

/// Sends twenty requests (`during/0` to `during/19`), 50 ms apart, on a
/// thread, while the test installs and activates a version.
pub(super) fn spawn_sender(stack: &Stack) -> std::thread::JoinHandle<()> {
    let command = stack.command(&[]);
    let program = command.get_program().to_owned();
    let envs: Vec<_> = command
        .get_envs()
        .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
        .collect();
    std::thread::spawn(move || {
        for i in 0..20 {
            let mut send = std::process::Command::new(&program);
            send.env_clear();
            for (k, v) in &envs {
                if let Some(v) = v {
                    send.env(k, v);
                }
            }
            let status = send
                .args([
                    "send",
                    "--queue",
                    "api",
                    "--body",
                    &request(&format!("during/{i}")),
                ])
                .output()
                .expect("send")
                .status;
            assert!(status.success());
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

/// The order in the daemon's log: the early messages were received before
/// the swap and finished after it, on v1.
pub(super) fn assert_early_messages_finished_on_v1(log: &Path, v1: &str) {
    let lines: Vec<String> = std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let at = |what: &dyn Fn(&str) -> bool| lines.iter().position(|l| what(l));
    let swapped = at(&|l| l.contains("logic versions swapped")).expect("the swap");
    let early: Vec<String> = lines
        .iter()
        .filter(|l| l.contains(": received "))
        .take(3)
        .map(|l| {
            let id = l.split("message_id=").nth(1).expect("a message id");
            id.split(' ').next().unwrap().to_string()
        })
        .collect();
    for id in &early {
        let received = at(&|l| l.contains(id.as_str()) && l.contains(": received "));
        let finished = at(&|l| l.contains(id.as_str()) && l.contains("message finished"))
            .unwrap_or_else(|| panic!("{id} never finished"));
        assert!(received < Some(swapped), "{id} received after the swap");
        assert!(finished > swapped, "{id} finished before the swap");
        assert!(
            lines[finished].contains(&format!("logic={}", &v1[..12])),
            "{}",
            lines[finished]
        );
    }
}

/// The early messages finished on v1, the later ones on v2, those sent
/// during the swap on either.
pub(super) async fn assert_versions_by_branch(stack: &Stack, v1: &str, v2: &str) {
    let versions = by_branch(&stack.environment_items().await);
    assert_eq!(versions.len(), 27);
    for (branch, version) in &versions {
        if branch.starts_with("early/") {
            assert_eq!(version, v1, "{branch} started on v1 and finished on it");
        } else if branch.starts_with("after/") || branch == "feature/login" {
            assert_eq!(version, v2, "{branch} came after the swap");
        } else {
            assert!(version == v1 || version == v2, "{branch}: {version}");
        }
    }
}
