//! What envmgr makes of its dependencies' answers (docs/reference/dependencies.md),
//! with the real HTTP clients against the strict fakes: GitHub's
//! 401/403/404/410/409/5xx as the contract's error codes and a 404 on a
//! delete as done; the Runtime Service's 5xx retried within the call
//! (`runtime.retries`), 429 `throttled` with its Retry-After, 409
//! `conflict`, other 4xx permanent, and its answer cut to 500 characters
//! before the logic sees it.

use std::sync::Arc;
use std::time::Duration;

use envmgr::capabilities::ErrorCode;
use envmgr::capabilities::github::app::{GitHubApp, GitHubAppOptions};
use envmgr::capabilities::github::{GitHub, NewDeployment, Repository};
use envmgr::capabilities::runtime::http::HttpRuntime;
use envmgr::capabilities::runtime::{Runtime, RuntimeDelete, RuntimeRequest};
use envmgr::redact::Secret;
use envmgr::{FailureKind, Outcome};
use envmgr_tests::fakes::github::{self, Failure, FakeGitHub, Installation, Route};
use envmgr_tests::fakes::runtime::{self, FakeRuntime};
use envmgr_tests::*;

const SHA: &str = "3333333333333333333333333333333333333333";

fn github() -> (FakeGitHub, GitHubApp) {
    let (fake, url) = FakeGitHub::start();
    fake.add_installation(Installation::new(INSTALLATION, "acme"));
    fake.add_pull_request(REPO, 7);
    fake.add_commit(REPO, SHA);
    let app = GitHubApp::new(
        github::APP_ID,
        github::PRIVATE_KEY,
        GitHubAppOptions::new(url),
    )
    .expect("the client");
    (fake, app)
}

fn shop() -> Repository {
    Repository {
        owner: "acme".into(),
        name: "shop".into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn github_answers_become_the_contracts_error_codes() {
    let (fake, app) = github();
    for (status, code) in [
        (401, ErrorCode::Denied),
        (403, ErrorCode::Denied),
        (404, ErrorCode::NotFound),
        (410, ErrorCode::NotFound),
        (409, ErrorCode::Conflict),
        (422, ErrorCode::Invalid),
        (500, ErrorCode::Unavailable),
        (502, ErrorCode::Unavailable),
        (503, ErrorCode::Unavailable),
    ] {
        // GitHub failing to answer is tried again (docs: 4 tries): fail all.
        let times = if status >= 500 { 4 } else { 1 };
        fake.fail_next(Route::CreateComment, times, Failure::Status(status));
        let failed = app
            .create_comment(INSTALLATION, &shop(), 7, "<!-- envmgr:test --> hello")
            .await
            .expect_err("scripted to fail");
        assert_eq!(failed.code, code, "{status}: {}", failed.message);
        assert!(
            failed.message.contains(&status.to_string()),
            "{status}: {}",
            failed.message
        );
    }
    // A refusal is sent once; a 5xx four times, each after looking for a
    // comment the failed try may have made.
    let sent = |route| {
        fake.requests()
            .into_iter()
            .filter(|r| r.route == Some(route))
            .count()
    };
    assert_eq!(sent(Route::CreateComment), 6 + 3 * 4);
    assert_eq!(sent(Route::ListComments), 3 * 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_github_delete_answered_404_counts_as_deleted() {
    let (fake, app) = github();
    let comment = app
        .create_comment(INSTALLATION, &shop(), 7, "<!-- envmgr:test --> hello")
        .await
        .unwrap();
    app.delete_comment(INSTALLATION, &shop(), comment.id)
        .await
        .expect("deleted");
    // Gone already (deleted by a person, or by an earlier delivery).
    app.delete_comment(INSTALLATION, &shop(), comment.id)
        .await
        .expect("a 404 on delete is done");
    let deployment = app
        .create_deployment(
            INSTALLATION,
            &shop(),
            &NewDeployment {
                sha: SHA.into(),
                environment: "preview/answers".into(),
                task: "deploy:envmgr".into(),
                payload_json: "{}".into(),
                description: "answers".into(),
                transient_environment: true,
                production_environment: false,
            },
        )
        .await
        .unwrap();
    fake.fail_next(Route::DeleteDeployment, 1, Failure::Status(404));
    app.delete_deployment(INSTALLATION, &shop(), deployment.id)
        .await
        .expect("a 404 on delete is done");
    // Only a 404: another answer is a failure (a 5xx after its tries).
    fake.fail_next(Route::DeleteDeployment, 4, Failure::Status(500));
    let failed = app
        .delete_deployment(INSTALLATION, &shop(), deployment.id)
        .await
        .expect_err("a 500 is not done");
    assert_eq!(failed.code, ErrorCode::Unavailable);
    let deletes: Vec<u16> = fake
        .requests()
        .into_iter()
        .filter(|r| {
            matches!(
                r.route,
                Some(Route::DeleteComment | Route::DeleteDeployment)
            )
        })
        .map(|r| r.status)
        .collect();
    assert_eq!(deletes, [204, 404, 404, 500, 500, 500, 500]);
}

/// An `opened` event run in `host` with the real Runtime Service client
/// against the fake at `url`.
async fn opened_against(
    host: &envmgr::mock::MockHost,
    url: &str,
) -> Result<Result<Outcome, envmgr::Failure>, envmgr::engine::RunError> {
    let mut backends = (**host.backends()).clone();
    backends.runtime = Arc::new(runtime_client(url, 0));
    let body = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z");
    let (engine, logic) = shared_logic();
    engine
        .run(&logic, Arc::new(backends), &host.message("probot", &body))
        .await
}

fn runtime_client(url: &str, retries: u32) -> HttpRuntime {
    HttpRuntime::new(
        url,
        runtime::TOKEN.to_string(),
        Duration::from_secs(5),
        retries,
    )
    .expect("the client")
}

/// A create request the fake's schema accepts.
fn create_request(key: &str) -> RuntimeRequest {
    RuntimeRequest {
        idempotency_key: key.into(),
        app_id: APP_ID.into(),
        environment_id: "env_4ccb1407cf7edbdc5866".into(),
        environment_type: "preview".into(),
        repository: REPO.into(),
        branch: "feature/login".into(),
        sha: SHA_1.into(),
        request_version: format!("1795863600000#{SHA_1}"),
        entrypoint: "src/server.ts".into(),
        installation_token: Some(Secret::new("ghs_answers")),
        secrets: vec![("DATABASE_URL".into(), Secret::new("postgres://db"))],
        signing_key: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn runtime_5xx_answers_are_retried_within_the_call() {
    let (fake, url) = FakeRuntime::start();
    let client = runtime_client(&url, 2);
    fake.fail_next(2);
    let created = client
        .create(&create_request("key-retried"))
        .await
        .expect("the third try succeeds");
    assert_eq!(fake.requests().len(), 3);
    assert_eq!(fake.runtimes()["key-retried"], created.runtime_id);
    // One more 503 than `retries` allows: unavailable, after 3 tries.
    fake.fail_next(3);
    let failed = client
        .create(&create_request("key-exhausted"))
        .await
        .expect_err("three 503s");
    assert_eq!(failed.code, ErrorCode::Unavailable, "{}", failed.message);
    assert_eq!(fake.requests().len(), 6);
    assert!(
        fake.requests()
            .iter()
            .all(|(key, _)| key.starts_with("key-")),
        "every try sent the key"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn runtime_4xx_answers_become_the_contracts_error_codes_and_are_not_retried() {
    let (fake, url) = FakeRuntime::start();
    let client = runtime_client(&url, 2);
    fake.throttle_next(7);
    let throttled = client
        .create(&create_request("key-429"))
        .await
        .expect_err("429");
    assert_eq!(throttled.code, ErrorCode::Throttled);
    assert_eq!(throttled.retry_after_ms, Some(7_000), "the service's wait");
    for (status, code) in [
        (409, ErrorCode::Conflict),
        (400, ErrorCode::Invalid),
        (422, ErrorCode::Invalid),
    ] {
        fake.reject_next(status, "refused by the test");
        let failed = client
            .create(&create_request(&format!("key-{status}")))
            .await
            .expect_err("refused");
        assert_eq!(failed.code, code, "{status}: {}", failed.message);
        assert!(
            failed
                .message
                .contains(&format!("runtime service answered {status}")),
            "{}",
            failed.message
        );
    }
    assert_eq!(fake.requests().len(), 4, "none of them sent again");
}

/// The service's whole answer reaches the host; the logic, the record and
/// the dead letter get it redacted and cut to 500 characters.
#[tokio::test(flavor = "multi_thread")]
async fn a_long_runtime_refusal_reaches_the_logic_cut_to_500_characters() {
    let (fake, url) = FakeRuntime::start();
    let host = seeded_host();
    // A secret the service quotes back, as "invalid request: {...}" does.
    const CANARY: &str = "postgres://shop:canary-7f3a91@db/shop";
    set_secret(&host, APP_ID, "global", "DATABASE_URL", CANARY);
    let said = format!(
        "entrypoint not found; request {{\"DATABASE_URL\": \"{CANARY}\"}} {}",
        "details ".repeat(300)
    );
    fake.reject_next(422, &said);
    let reason = match opened_against(&host, &url).await {
        Ok(Err(failure)) => {
            assert_eq!(failure.kind, FailureKind::Permanent, "{}", failure.reason);
            failure.reason
        }
        Ok(Ok(Outcome::Done(done))) => panic!("done: {done}"),
        other => panic!("{other:?}"),
    };
    let (_, answer) = reason
        .split_once("runtime service answered 422")
        .unwrap_or_else(|| panic!("{reason}"));
    assert!(answer.contains("entrypoint not found"), "{reason}");
    assert!(!reason.contains(CANARY), "the secret came back: {reason}");
    assert!(answer.contains("[redacted]"), "{reason}");
    // "runtime service answered 422: " and what fits of the answer.
    let quoted = "runtime service answered 422".len() + answer.chars().count();
    assert!(quoted <= 500, "{quoted} characters: {reason}");
    let records = records(&host);
    assert_eq!(records.len(), 3, "the environment's three items");
    for item in records {
        let stored =
            attr(&item, "failureReason").unwrap_or_else(|| panic!("no failureReason on {item:?}"));
        assert!(stored.contains("entrypoint not found"), "{stored}");
        assert!(!stored.contains(CANARY), "the secret was stored: {stored}");
        assert!(stored.chars().count() <= reason.chars().count(), "{stored}");
    }
}

#[tokio::test]
async fn a_secret_cut_in_half_at_the_bodys_bound_leaves_no_fragment() {
    let (fake, url) = FakeRuntime::start();
    let host = seeded_host();
    // A secret long enough (KMS takes 4 KiB) that a 64 KiB body of its
    // copies, each redacted to 10 characters, leaves the cut one's start
    // within the 500 characters kept.
    let secret: String = (0..3_000u32)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    set_secret(&host, APP_ID, "global", "CERTIFICATE", &secret);
    fake.reject_next(422, &format!("bad: {}", secret.repeat(23)));
    let reason = match opened_against(&host, &url).await {
        Ok(Err(failure)) => failure.reason,
        other => panic!("{other:?}"),
    };
    assert!(reason.contains("[redacted]"), "{reason}");
    let fragment = &secret[..40];
    assert!(
        !reason.contains(fragment),
        "the cut secret's start survived: {reason}"
    );
    for item in records(&host) {
        let stored = attr(&item, "failureReason").unwrap_or_default();
        assert!(!stored.contains(fragment), "stored: {stored}");
    }
}

fn delete_request(key: &str, version: &str) -> RuntimeDelete {
    RuntimeDelete {
        idempotency_key: key.into(),
        app_id: APP_ID.into(),
        environment_id: "env_4ccb1407cf7edbdc5866".into(),
        environment_type: "preview".into(),
        request_version: format!("{version}#delete"),
        reason: "pull-request-closed".into(),
    }
}

/// docs/runtime-service.md, "Delete an environment's runtimes": the ids
/// removed; a service without the call (404, 405, 501) is `not-found` and
/// not retried; a newer create accepted first is a conflict.
#[tokio::test(flavor = "multi_thread")]
async fn runtime_deletes_answer_what_they_removed_and_a_service_without_them_is_told_apart() {
    let (fake, url) = FakeRuntime::start();
    let client = runtime_client(&url, 2);
    let created = client.create(&create_request("k1")).await.expect("created");
    let version = format!("1795863600000#{SHA_1}");
    let removed = client
        .delete(&delete_request("d1", &version))
        .await
        .expect("deleted");
    assert_eq!(removed, vec![created.runtime_id]);
    let stale = client
        .create(&create_request("k1"))
        .await
        .expect_err("the create is older than the delete");
    assert_eq!(stale.code, ErrorCode::Conflict, "{}", stale.message);
    let older = client
        .delete(&delete_request("d0", &format!("1795863500000#{SHA_1}")))
        .await
        .expect_err("older than the newest accepted");
    assert_eq!(older.code, ErrorCode::Conflict);
    for status in [404, 405, 501] {
        fake.deletes_answer(Some(status));
        let missing = client
            .delete(&delete_request(&format!("d{status}"), &version))
            .await
            .expect_err("not offered");
        assert_eq!(missing.code, ErrorCode::NotFound, "{status}");
        assert!(
            missing.message.contains("does not offer deletes"),
            "{}",
            missing.message
        );
    }
    assert!(fake.refused().is_empty(), "{:?}", fake.refused());
}
