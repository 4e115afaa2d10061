//! Every way a message can fail: bad input is permanent with a reason a
//! person can act on; a dependency that may recover is retryable; analytics
//! never fails the flow, and neither does GitHub refusing a deployment.

#[path = "failures/helpers.rs"]
mod helpers;
#[path = "failures/retries.rs"]
mod retries;

use envmgr::calls::{Call, Hit};
use envmgr::capabilities::ErrorCode;
use envmgr::capabilities::dynamodb::AttributeValue;
use envmgr::capabilities::github::DeploymentState;
use envmgr::{FailureKind, Outcome};
use envmgr_tests::*;

use envmgr_tests::api_preview as api;

use helpers::{assert_done, deployment_states, failure, opened, permanent, untouched};

#[tokio::test]
async fn each_class_of_bad_input_is_permanent_with_a_clear_reason() {
    let cases: Vec<(&str, String, &str)> = vec![
        ("invalid JSON", "{\"version\": 1,".into(), "not valid JSON"),
        ("not an object", "[1, 2, 3]".into(), "must be a JSON object"),
        (
            "unknown kind",
            r#"{"hello": "world"}"#.into(),
            "unknown message kind",
        ),
        (
            "missing field",
            api(|b| {
                b.as_object_mut().unwrap().remove("sha");
            }),
            "missing field `sha`",
        ),
        (
            "ill-typed field",
            api(|b| b["installationId"] = "forty-two".into()),
            "installationId",
        ),
        (
            "unsupported version",
            api(|b| b["version"] = 2.into()),
            "version 2 is not supported",
        ),
        (
            "unknown request kind",
            api(|b| b["kind"] = "rename-environment".into()),
            "unknown API request kind `rename-environment`",
        ),
        (
            "unknown environment type",
            api(|b| b["environmentType"] = "staging".into()),
            "environmentType `staging`",
        ),
        (
            "bad sha",
            api(|b| b["sha"] = "abc123".into()),
            "sha `abc123`",
        ),
        (
            "bad time",
            api(|b| b["requestedAt"] = "yesterday".into()),
            "requestedAt `yesterday`",
        ),
        (
            "misspelt field",
            api(|b| b["entryPoint"] = "x.ts".into()),
            "unknown field `entryPoint`",
        ),
        (
            "bad repository",
            api(|b| b["repository"] = "shop".into()),
            "not of the form owner/name",
        ),
        (
            "unknown app",
            api(|b| b["appId"] = "app_nope".into()),
            "app app_nope not found",
        ),
        (
            "repository of another app",
            api(|b| b["repository"] = "acme/other".into()),
            "is not the repository of app app_shop",
        ),
        (
            "webhook without installation",
            {
                let mut e: serde_json::Value = serde_json::from_str(&opened()).unwrap();
                e["payload"].as_object_mut().unwrap().remove("installation");
                e.to_string()
            },
            "has no installation",
        ),
        (
            "webhook payload missing the head",
            {
                let mut e: serde_json::Value = serde_json::from_str(&opened()).unwrap();
                e["payload"]["pull_request"]
                    .as_object_mut()
                    .unwrap()
                    .remove("head");
                e.to_string()
            },
            "missing field `head`",
        ),
    ];
    for (case, body, expected) in cases {
        let host = seeded_host();
        let delivery = host.deliver(&host.message("api", &body)).await;
        let reason = permanent(&delivery);
        assert!(
            reason.contains(expected),
            "{case}: `{reason}` lacks `{expected}`"
        );
        untouched(&host);
    }
}

#[tokio::test]
async fn a_repository_without_an_app_is_permanent() {
    let host = host();
    host.github.add_installation(INSTALLATION);
    let delivery = host.deliver(&host.message("probot", &opened())).await;
    let reason = permanent(&delivery);
    assert!(
        reason.contains("no app is registered for repository acme/shop"),
        "{reason}"
    );
    untouched(&host);
}

#[tokio::test]
async fn secret_items_that_break_the_rules_are_skipped_and_noted_on_the_record() {
    let host = seeded_host();
    set_secret(
        &host,
        APP_ID,
        "global",
        "DATABASE_URL",
        "postgres://db/shop",
    );
    // Written by another tool: a name the runtime cannot use, a scope that
    // does not exist, a blob no KMS makes.
    set_secret(&host, APP_ID, "global", "A B=C", "value-one");
    set_secret(&host, APP_ID, "staging", "TOKEN", "value-two");
    set_secret_ciphertext(&host, APP_ID, "preview", "SHORT", vec![1, 2, 3]);
    let delivery = host.deliver(&host.message("probot", &opened())).await;
    assert_done(&delivery);
    let sent: Vec<String> = host.runtime.calls()[0]
        .secrets
        .iter()
        .map(|(name, _)| name.clone())
        .collect();
    assert_eq!(sent, ["DATABASE_URL"]);
    for item in records(&host) {
        let note = attr(&item, "secretsSkipped").expect("a note on the record");
        for why in [
            "A B=C (global): the name",
            "TOKEN (staging): the scope",
            "SHORT (preview): its ciphertext of 3 bytes",
        ] {
            assert!(note.contains(why), "{note} lacks {why}");
        }
    }
    let warnings: Vec<&envmgr::calls::Entry> = delivery
        .transcript
        .iter()
        .filter(|e| e.call == Call::Log && e.result.contains("skipped"))
        .collect();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
}

#[tokio::test]
async fn a_secret_that_does_not_decrypt_is_permanent_and_named() {
    let host = seeded_host();
    // Encrypted for another app: the context does not match, as when a
    // ciphertext is copied between apps.
    let context = envmgr_guest::secrets::encryption_context("app_other", "preview", "API_KEY");
    let foreign = host.kms.seal("s3cr3t-value", &context).unwrap();
    set_secret_ciphertext(&host, APP_ID, "preview", "API_KEY", foreign);
    let delivery = host.deliver(&host.message("probot", &opened())).await;
    let reason = permanent(&delivery);
    assert!(
        reason.contains("secret API_KEY (scope preview)"),
        "{reason}"
    );
    assert!(reason.contains("does not decrypt"), "{reason}");
    // It does not claim to know which (KMS cannot tell), and names the
    // real command.
    assert!(reason.contains("or it is damaged"), "{reason}");
    assert!(
        reason.contains("envmgr set-secret --app app_shop --scope preview --name API_KEY"),
        "{reason}"
    );
    assert!(host.runtime.calls().is_empty());
    // The record says why, for people and the platform's UI.
    let items = records(&host);
    assert_eq!(items.len(), 3);
    for item in &items {
        assert_eq!(attr(item, "status"), Some("failed"));
        assert_eq!(attr(item, "failureReason"), Some(reason.as_str()));
    }
    // The pull request shows the failure, without the reason's details and
    // without a link to an environment that will not answer.
    let comments = host.github.comments(REPO, 7).unwrap();
    assert_eq!(comments.len(), 1);
    let comment = &comments[0].body;
    assert!(comment.contains("| ❌ Failed |"), "{comment}");
    assert!(!comment.contains("Visit preview"), "{comment}");
    assert!(!comment.contains("API_KEY"), "{comment}");
    // So does the GitHub deployment, made now (the secrets come before it),
    // linking to the comment and keeping the reason to the record.
    let deployments = host.github.deployments(REPO).unwrap();
    assert_eq!(deployments.len(), 1);
    let statuses = &deployments[0].statuses;
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].state, DeploymentState::Failure);
    assert_eq!(statuses[0].environment_url, None);
    assert_eq!(
        statuses[0].log_url.as_deref(),
        Some(comments[0].html_url.as_str())
    );
    assert!(
        !statuses[0].description.contains("API_KEY"),
        "{}",
        statuses[0].description
    );
}

#[tokio::test]
async fn a_runtime_refusal_marks_the_deployment_failed_once() {
    let host = seeded_host();
    host.faults.inject(
        Call::RuntimeCreate,
        Hit::Every,
        ErrorCode::Invalid,
        "entrypoint does not exist",
    );
    let message = host.message("probot", &opened());
    permanent(&host.deliver(&message).await);
    // Delivered again (say the dead-letter send failed): still one
    // deployment with one failure status.
    permanent(&host.deliver(&message).await);
    assert_eq!(deployment_states(&host), [[DeploymentState::Failure]]);
}

#[tokio::test]
async fn a_mistyped_trust_setting_is_permanent_and_named() {
    for (name, value, expected) in [
        (
            "forkSecrets",
            AttributeValue::S("true".into()),
            "`forkSecrets` must be a boolean",
        ),
        (
            "trustedAuthors",
            AttributeValue::S("octocat".into()),
            "`trustedAuthors` must be a string set",
        ),
    ] {
        let host = seeded_host();
        let mut record = host
            .tables
            .scan("apps")
            .unwrap()
            .into_iter()
            .find(|item| attr(item, "pk") == Some("APP#app_shop"))
            .expect("the app record");
        record.push((name.to_string(), value));
        host.tables.put("apps", record).unwrap();
        let delivery = host.deliver(&host.message("probot", &opened())).await;
        let reason = permanent(&delivery);
        assert!(reason.contains(expected), "{reason}");
        untouched(&host);
    }
}

#[tokio::test]
async fn an_uninstalled_github_app_is_permanent() {
    let host = host();
    seed_app(&host, APP_ID, APP_NAME, REPO);
    let delivery = host.deliver(&host.message("probot", &opened())).await;
    let reason = permanent(&delivery);
    assert!(reason.contains("authenticate"), "{reason}");
    assert!(reason.contains("installation 4242 not found"), "{reason}");
    untouched(&host);
}

/// Per capability call and error: how the failure is classified and the
/// step its reason names.
fn capability_failure_cases() -> [(Call, ErrorCode, FailureKind, &'static str); 16] {
    use ErrorCode::*;
    [
        (
            Call::DynamodbGet,
            Unavailable,
            FailureKind::Retryable,
            "find the app of the repository",
        ),
        (
            Call::DynamodbGet,
            Throttled,
            FailureKind::Retryable,
            "find the app",
        ),
        (
            Call::GithubAuthenticate,
            Unavailable,
            FailureKind::Retryable,
            "authenticate",
        ),
        (
            Call::GithubAuthenticate,
            Denied,
            FailureKind::Permanent,
            "authenticate",
        ),
        (
            Call::DynamodbTransactWrite,
            Conflict,
            FailureKind::Retryable,
            "take the environment's lease",
        ),
        (
            Call::DynamodbQuery,
            Throttled,
            FailureKind::Retryable,
            "read the environment",
        ),
        (
            Call::KmsDecrypt,
            Unavailable,
            FailureKind::Retryable,
            "decrypt secret",
        ),
        (
            Call::KmsDecrypt,
            Denied,
            FailureKind::Permanent,
            "does not decrypt",
        ),
        (
            Call::GithubCreateComment,
            Throttled,
            FailureKind::Retryable,
            "create the pull-request comment",
        ),
        (
            Call::KeysGenerate,
            Unavailable,
            FailureKind::Retryable,
            "make the environment's signing key",
        ),
        (
            Call::GithubCreateDeployment,
            Throttled,
            FailureKind::Retryable,
            "create the GitHub deployment",
        ),
        (
            Call::GithubCreateDeployment,
            Conflict,
            FailureKind::Retryable,
            "create the GitHub deployment",
        ),
        (
            Call::GithubCreateDeploymentStatus,
            Unavailable,
            FailureKind::Retryable,
            "set the GitHub deployment status",
        ),
        (
            Call::GithubCreateInstallationToken,
            Unavailable,
            FailureKind::Retryable,
            "installation token",
        ),
        (
            Call::RuntimeCreate,
            Unavailable,
            FailureKind::Retryable,
            "create the runtime",
        ),
        (
            Call::RuntimeCreate,
            Invalid,
            FailureKind::Permanent,
            "create the runtime",
        ),
    ]
}

/// Each capability failing in a way that may pass is retryable; a refusal
/// that needs a person is permanent.
#[tokio::test]
async fn capability_failures_are_classified() {
    use ErrorCode::*;
    for (call, code, kind, step) in capability_failure_cases() {
        let host = seeded_host();
        set_secret(&host, APP_ID, "global", "DATABASE_URL", "postgres://db");
        host.faults.inject(call, Hit::Every, code, "injected");
        let delivery = host.deliver(&host.message("probot", &opened())).await;
        let (got, reason) = failure(&delivery);
        assert_eq!(got, kind, "{call} {code:?}: {reason}");
        assert!(
            reason.contains(step),
            "{call} {code:?}: `{reason}` lacks `{step}`"
        );
    }
    // The second query: the app's secrets (read once the record says the
    // runtime still needs them).
    let host = seeded_host();
    host.faults
        .inject(Call::DynamodbQuery, Hit::Nth(2), Throttled, "injected");
    let (got, reason) = failure(&host.deliver(&host.message("probot", &opened())).await);
    assert_eq!(got, FailureKind::Retryable, "{reason}");
    assert!(reason.contains("read the app's secrets"), "{reason}");
    // What is only looked for where an earlier holder may have made it.
    for (call, step) in [
        (Call::GithubListComments, "find the pull-request comment"),
        (Call::GithubFindDeployments, "find the GitHub deployment"),
    ] {
        let host = seeded_host();
        a_crashed_holder_left(&host, "feature/login", SHA_1);
        host.faults
            .inject(call, Hit::Every, Unavailable, "injected");
        let delivery = host.deliver(&host.message("probot", &opened())).await;
        let (got, reason) = failure(&delivery);
        assert_eq!(got, FailureKind::Retryable, "{call}: {reason}");
        assert!(reason.contains(step), "{call}: `{reason}` lacks `{step}`");
    }
}

/// Once the runtime is requested, a comment GitHub refuses for good costs
/// the pull request its comment, not the environment: logged, noted in the
/// outcome, and tried again by the next request.
#[tokio::test]
async fn a_comment_refused_after_the_runtime_was_requested_fails_nothing() {
    let host = seeded_host();
    host.faults.inject(
        Call::GithubCreateComment,
        Hit::Nth(1),
        ErrorCode::Invalid,
        "422 Validation Failed",
    );
    let delivery = host.deliver(&host.message("probot", &opened())).await;
    let summary = match &delivery.result {
        Ok(Ok(Outcome::Done(summary))) => summary.clone(),
        other => panic!("{other:?}"),
    };
    assert!(summary.contains("no pull-request comment"), "{summary}");
    assert_eq!(host.runtime.runtimes().unwrap().len(), 1);
    assert!(
        records(&host)
            .iter()
            .all(|i| attr(i, "status") == Some("runtime-requested"))
    );
    assert_eq!(deployment_states(&host), [[DeploymentState::InProgress]]);
    assert!(host.github.comments(REPO, 7).unwrap().is_empty());
    assert!(delivery.transcript.iter().any(|e| e.call == Call::Log
        && e.request.starts_with("warn comment")
        && e.result.contains("422 Validation Failed")));

    // The next request shows it.
    let pushed = pull_request_event(
        "synchronize",
        7,
        "feature/login",
        SHA_2,
        "2026-11-28T11:30:00Z",
    );
    assert_done(&host.deliver(&host.message("probot", &pushed)).await);
    assert_eq!(host.github.comments(REPO, 7).unwrap().len(), 1);
}

#[tokio::test]
async fn a_failed_analytics_call_never_fails_the_flow() {
    let host = seeded_host();
    host.faults.inject(
        Call::AnalyticsTrack,
        Hit::Every,
        ErrorCode::Unavailable,
        "segment down",
    );
    let delivery = host.deliver(&host.message("probot", &opened())).await;
    assert!(
        matches!(delivery.result, Ok(Ok(Outcome::Done(_)))),
        "{:?}",
        delivery.result
    );
    assert_eq!(host.runtime.calls().len(), 1);
    let warning = delivery
        .transcript
        .iter()
        .find(|e| e.call == Call::Log)
        .expect("the guest logs the lost event");
    assert!(warning.request.starts_with("warn analytics"), "{warning}");
    assert!(warning.result.contains("segment down"), "{warning}");
}

/// GitHub refusing for good (the App lacks the Deployments permission:
/// 403) costs the pull request its deployment, never the environment.
#[tokio::test]
async fn github_refusing_deployments_never_fails_the_flow() {
    for call in [
        Call::GithubFindDeployments,
        Call::GithubCreateDeployment,
        Call::GithubCreateDeploymentStatus,
    ] {
        let host = seeded_host();
        if call == Call::GithubFindDeployments {
            // Only looked for where an earlier holder may have made one.
            a_crashed_holder_left(&host, "feature/login", SHA_1);
        }
        host.faults.inject(
            call,
            Hit::Every,
            ErrorCode::Denied,
            "403 Resource not accessible by integration",
        );
        let delivery = host.deliver(&host.message("probot", &opened())).await;
        assert_done(&delivery);
        assert_eq!(host.runtime.runtimes().unwrap().len(), 1, "{call}");
        assert_eq!(host.github.comments(REPO, 7).unwrap().len(), 1, "{call}");
        let warning = delivery
            .transcript
            .iter()
            .find(|e| e.call == Call::Log && e.request.starts_with("warn deployment"))
            .unwrap_or_else(|| panic!("{call}: the refusal is logged"));
        assert!(
            warning.result.contains("Resource not accessible"),
            "{warning}"
        );
        let expected: &[Vec<DeploymentState>] = match call {
            Call::GithubCreateDeploymentStatus => &[vec![]],
            _ => &[],
        };
        assert_eq!(deployment_states(&host), expected, "{call}");
    }
}
