//! The component against its own source run natively, and the seeding
//! tools against the guest.

use envmgr::Outcome;
use envmgr::capabilities::config::Config;
use envmgr::mock::MockHost;
use envmgr_tests::*;

use crate::helpers::{deployments, fork_event, seed_secrets};

#[tokio::test]
async fn the_component_does_what_its_source_does_natively() {
    let sandboxed = seeded_host();
    // The engine tells the component its logic version; the native run has
    // no engine and reads the same value from the config instead.
    let (engine, logic) = shared_logic();
    let native = MockHost::new(
        engine,
        logic.clone(),
        Config::new([
            (
                "preview-url-template".to_string(),
                envmgr::mock::PREVIEW_URL_TEMPLATE.to_string(),
            ),
            ("logic-version".to_string(), logic.id.clone()),
        ]),
    );
    seed_app(&native, APP_ID, APP_NAME, REPO);
    native.github.add_installation(INSTALLATION);
    for host in [&sandboxed, &native] {
        seed_secrets(host);
    }
    let bodies = [
        pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z"),
        pull_request_event(
            "synchronize",
            7,
            "feature/login",
            SHA_2,
            "2026-11-28T11:30:00Z",
        ),
        pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z"),
        api_request("production", "main", SHA_2, "2026-11-28T11:58:00Z"),
        fork_event(),
    ];
    for body in &bodies {
        let message = sandboxed.message("probot", body);
        let in_sandbox = sandboxed.deliver(&message).await.result.unwrap();
        let mut caps = envmgr_tests::native::Native {
            backends: native.backends(),
            now_ms: native.clock.now_ms(),
        };
        let natively = envmgr_guest::handle(&mut caps, &guest_message(&message));
        let sandbox_view = match in_sandbox {
            Ok(Outcome::Done(text)) => Ok(format!("done: {text}")),
            Ok(Outcome::Skipped(text)) => Ok(format!("skipped: {text}")),
            Ok(Outcome::Deferred(deferral)) => Ok(format!("deferred: {}", deferral.reason)),
            Err(failure) => Err(failure.reason),
        };
        let native_view = match natively {
            Ok(envmgr_guest::Outcome::Done(text)) => Ok(format!("done: {text}")),
            Ok(envmgr_guest::Outcome::Skipped(text)) => Ok(format!("skipped: {text}")),
            Ok(envmgr_guest::Outcome::Deferred { reason, .. }) => Ok(format!("deferred: {reason}")),
            Err(failure) => Err(failure.reason),
        };
        assert_eq!(sandbox_view, native_view);
    }
    // The generated host types have no PartialEq (resources cannot); their
    // Debug text is a faithful stand-in.
    let same = |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
        assert_eq!(format!("{a:?}"), format!("{b:?}"))
    };
    same(
        &sandboxed.tables.scan("environments").unwrap(),
        &native.tables.scan("environments").unwrap(),
    );
    same(
        &sandboxed.github.comments(REPO, 7).unwrap(),
        &native.github.comments(REPO, 7).unwrap(),
    );
    same(
        &sandboxed.github.comments(REPO, 9).unwrap(),
        &native.github.comments(REPO, 9).unwrap(),
    );
    same(&deployments(&sandboxed), &deployments(&native));
    same(
        &sandboxed.runtime.runtimes().unwrap(),
        &native.runtime.runtimes().unwrap(),
    );
    assert_eq!(sandboxed.runtime.runtimes().unwrap().len(), 4);
}

#[test]
fn seeding_tools_and_the_guest_agree_on_the_secret_context() {
    assert_eq!(
        envmgr::mock::seed::secret_context("app", "preview", "NAME"),
        envmgr_guest::secrets::encryption_context("app", "preview", "NAME")
    );
}
