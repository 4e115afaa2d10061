//! Secrets and tokens kept from forks and untrusted authors, and given
//! where the app allows them.

use envmgr::calls::Call;
use envmgr::capabilities::dynamodb::AttributeValue;
use envmgr_tests::*;

use crate::helpers::{
    assert_nothing_secret, assert_trusted, calls, deployments, done, fork_event,
    host_with_app_settings, secrets_sent, secrets_withheld, seed_secrets, trusted_authors,
};

#[tokio::test]
async fn branches_of_forks_never_collide_with_the_base_repository() {
    let host = seeded_host();
    let mut event: serde_json::Value = serde_json::from_str(&pull_request_event(
        "opened",
        9,
        "main",
        SHA_1,
        "2026-11-28T11:00:00Z",
    ))
    .unwrap();
    let head = &mut event["payload"]["pull_request"]["head"]["repo"];
    head["full_name"] = "mallory/shop".into();
    head["owner"]["login"] = "mallory".into();
    done(
        &host
            .deliver(&host.message("probot", &event.to_string()))
            .await,
    );
    let items = records(&host);
    assert!(
        items
            .iter()
            .all(|i| attr(i, "branch") == Some("mallory:main"))
    );
}

#[tokio::test]
async fn a_fork_gets_no_secrets_and_no_token_by_default() {
    let host = seeded_host();
    seed_secrets(&host);
    let delivery = host.deliver(&host.message("probot", &fork_event())).await;
    let summary = done(&delivery);
    assert!(summary.ends_with("without secrets (fork)"), "{summary}");

    // The environment is made all the same, without reading a secret.
    assert_eq!(
        calls(&delivery),
        [
            Call::DynamodbGet,
            Call::DynamodbGet,
            Call::GithubAuthenticate,
            Call::DynamodbQuery,
            Call::KeysGenerate,
            Call::DynamodbTransactWrite,
            Call::DynamodbUpdate,
            Call::RuntimeCreate,
            Call::GithubCreateComment,
            Call::DynamodbTransactWrite,
            Call::AnalyticsTrack,
            Call::DynamodbUpdate,
            Call::GithubCreateDeployment,
            Call::GithubCreateDeploymentStatus,
            Call::DynamodbUpdate,
        ]
    );
    assert_nothing_secret(&host, &delivery);
    assert_eq!(host.runtime.calls()[0].branch, "mallory:main");
    assert_eq!(
        deployments(&host)[0].deployment.environment,
        "preview/mallory:main"
    );
    assert_eq!(secrets_withheld(&host).as_deref(), Some("fork"));

    // The pull request says so, and how to allow it.
    let comment = &host.github.comments(REPO, 9).unwrap()[0].body;
    assert!(comment.contains("Secrets withheld"), "{comment}");
    assert!(comment.contains("comes from a fork"), "{comment}");
    assert!(comment.contains("`forkSecrets` to `true`"), "{comment}");
    assert!(comment.contains("`APP#app_shop`"), "{comment}");
}

#[tokio::test]
async fn an_app_that_allows_forks_gives_them_secrets_and_a_token() {
    let host = host_with_app_settings(vec![("forkSecrets", AttributeValue::Bool(true))]);
    let delivery = host.deliver(&host.message("probot", &fork_event())).await;
    let summary = done(&delivery);
    assert!(!summary.contains("without secrets"), "{summary}");

    assert_eq!(
        secrets_sent(&host, 0),
        [
            (
                "DATABASE_URL".to_string(),
                "postgres://preview-db".to_string()
            ),
            ("LOG_LEVEL".to_string(), "info".to_string()),
        ]
    );
    let token = host.runtime.calls()[0].installation_token.clone();
    assert_eq!(
        token.map(|t| t.expose().to_string()),
        host.github.issued_tokens().first().cloned()
    );
    assert_eq!(secrets_withheld(&host), None);
    let comment = &host.github.comments(REPO, 9).unwrap()[0].body;
    assert!(!comment.contains("Secrets withheld"), "{comment}");
}

#[tokio::test]
async fn an_author_the_app_does_not_trust_gets_no_secrets_and_no_token() {
    let host = host_with_app_settings(vec![trusted_authors(&["hubot"])]);
    // Not a fork: octocat pushed a branch to the repository itself.
    let body = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z");
    let delivery = host.deliver(&host.message("probot", &body)).await;
    let summary = done(&delivery);
    assert!(
        summary.ends_with("without secrets (untrusted-author)"),
        "{summary}"
    );
    assert_nothing_secret(&host, &delivery);
    assert_eq!(secrets_withheld(&host).as_deref(), Some("untrusted-author"));

    let comment = &host.github.comments(REPO, 7).unwrap()[0].body;
    assert!(comment.contains("Secrets withheld"), "{comment}");
    assert!(
        comment.contains("author `octocat` is not one of the app's `trustedAuthors`"),
        "{comment}"
    );
    assert!(
        comment.contains("add `octocat` to `trustedAuthors`"),
        "{comment}"
    );
}

#[tokio::test]
async fn an_author_the_app_trusts_gets_secrets_and_a_token() {
    let host = seeded_host();
    seed_secrets(&host);
    // GitHub logins are case-insensitive.
    set_app_attributes(&host, vec![trusted_authors(&["hubot", "OctoCat"])]);
    let body = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z");
    done(&host.deliver(&host.message("probot", &body)).await);
    assert_trusted(&host, 7);
}

#[tokio::test]
async fn a_fork_by_an_untrusted_author_is_told_both_reasons() {
    let host = host_with_app_settings(vec![trusted_authors(&["octocat"])]);
    let delivery = host.deliver(&host.message("probot", &fork_event())).await;
    done(&delivery);
    assert_nothing_secret(&host, &delivery);
    assert_eq!(
        secrets_withheld(&host).as_deref(),
        Some("fork,untrusted-author")
    );
    let comment = &host.github.comments(REPO, 9).unwrap()[0].body;
    assert!(comment.contains("`forkSecrets`"), "{comment}");
    assert!(comment.contains("add `mallory`"), "{comment}");
}

#[tokio::test]
async fn api_requests_are_trusted_whatever_the_apps_trust_settings() {
    let host = host_with_app_settings(vec![
        ("forkSecrets", AttributeValue::Bool(false)),
        trusted_authors(&["hubot"]),
    ]);
    let body = api_preview(|body| {
        body["pullRequest"] = serde_json::json!({ "number": 12, "title": "Add login page" });
    });
    done(&host.deliver(&host.message("api", &body)).await);
    assert_trusted(&host, 12);
}

#[tokio::test]
async fn a_trusted_request_after_a_withheld_one_clears_the_record() {
    let host = host_with_app_settings(vec![trusted_authors(&["hubot"])]);
    let opened = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z");
    done(&host.deliver(&host.message("probot", &opened)).await);
    assert_eq!(secrets_withheld(&host).as_deref(), Some("untrusted-author"));

    // An admin trusts octocat; the next push gets everything.
    set_app_attributes(&host, vec![trusted_authors(&["hubot", "octocat"])]);
    let pushed = pull_request_event(
        "synchronize",
        7,
        "feature/login",
        SHA_2,
        "2026-11-28T11:30:00Z",
    );
    done(&host.deliver(&host.message("probot", &pushed)).await);
    assert_eq!(secrets_withheld(&host), None);
    assert_eq!(secrets_sent(&host, 1).len(), 2);
    let comments = host.github.comments(REPO, 7).unwrap();
    assert_eq!(comments.len(), 1);
    assert!(!comments[0].body.contains("Secrets withheld"));
}
