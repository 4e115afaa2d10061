//! The create flow through the compiled component in the mock host: both
//! message kinds, both environment types, redelivery, duplicates, stale
//! requests, the comment's life, the GitHub deployment and its status, and
//! secrets kept from forks and untrusted authors.

#[path = "flow/helpers.rs"]
mod helpers;
#[path = "flow/native.rs"]
mod native;
#[path = "flow/trust.rs"]
mod trust;
#[path = "flow/updates.rs"]
mod updates;

use std::time::Duration;

use envmgr::Outcome;
use envmgr::calls::Call;
use envmgr::capabilities::config::Config;
use envmgr::capabilities::github::DeploymentState;
use envmgr::mock::MockHost;
use envmgr_guest::deployment::TASK;
use envmgr_tests::*;

use envmgr_tests::api_preview;

use helpers::{
    calls, count, deployments, done, runtime_id, secrets_sent, secrets_withheld, seed_secrets,
    skipped, states,
};

/// What the developer waits for comes first, and what can overlap does.
/// Every GitHub request answers after 100 ms, the runtime after 50 ms, KMS
/// after 20 ms (paused time: the figures are exact): the runtime is
/// requested after one GitHub round trip, it is created while the comment
/// is written, the secrets are decrypted together with the token mint, and
/// no two GitHub requests are ever in flight at once.
#[tokio::test(start_paused = true)]
async fn independent_calls_overlap_and_github_requests_never_do() {
    let host = seeded_host();
    seed_secrets(&host);
    let github = [
        Call::GithubCreateInstallationToken,
        Call::GithubListComments,
        Call::GithubCreateComment,
        Call::GithubUpdateComment,
        Call::GithubFindDeployments,
        Call::GithubCreateDeployment,
        Call::GithubListDeploymentStatuses,
        Call::GithubCreateDeploymentStatus,
    ];
    for call in github {
        host.faults.delay(call, Duration::from_millis(100));
    }
    host.faults
        .delay(Call::RuntimeCreate, Duration::from_millis(50));
    host.faults
        .delay(Call::KmsDecrypt, Duration::from_millis(20));
    let body = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:59:00Z");
    let delivery = host.deliver(&host.message("probot", &body)).await;
    done(&delivery);

    let spans = &delivery.spans;
    let span = |call: Call| {
        *spans
            .iter()
            .find(|s| s.call == call)
            .unwrap_or_else(|| panic!("no {call}"))
    };
    let token = span(Call::GithubCreateInstallationToken);
    let runtime = span(Call::RuntimeCreate);
    let comment = span(Call::GithubCreateComment);
    assert_eq!(
        runtime.started - token.started,
        Duration::from_millis(100),
        "the runtime waits for one GitHub round trip"
    );
    assert!(runtime.overlaps(&comment), "{runtime:?} {comment:?}");
    let decrypts: Vec<_> = spans
        .iter()
        .filter(|s| s.call == Call::KmsDecrypt)
        .collect();
    assert_eq!(decrypts.len(), 2);
    assert!(decrypts[0].overlaps(decrypts[1]));
    assert!(decrypts.iter().all(|d| d.overlaps(&token)));
    let mut on_github: Vec<_> = spans.iter().filter(|s| github.contains(&s.call)).collect();
    on_github.sort_by_key(|s| s.started);
    for pair in on_github.windows(2) {
        assert!(!pair[0].overlaps(pair[1]), "{pair:?}");
    }
    let order: Vec<Call> = on_github.iter().map(|s| s.call).collect();
    assert_eq!(
        order,
        [
            Call::GithubCreateInstallationToken,
            Call::GithubCreateComment,
            Call::GithubCreateDeployment,
            Call::GithubCreateDeploymentStatus,
        ],
        "by what the developer waits for"
    );
    let first = spans.iter().map(|s| s.started).min().unwrap();
    let last = spans.iter().map(|s| s.ended).max().unwrap();
    assert_eq!(
        last - first,
        Duration::from_millis(400),
        "four GitHub round trips"
    );
}

#[tokio::test]
async fn pull_request_opened_creates_the_preview_environment() {
    let host = seeded_host();
    seed_secrets(&host);
    let body = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:59:00Z");
    let delivery = host.deliver(&host.message("probot", &body)).await;
    let summary = done(&delivery);
    assert!(summary.contains("preview feature/login"), "{summary}");

    // The seed's steps, in the order the developer waits for them (the app
    // is read first; see flow.rs): the runtime, then the comment, then the
    // deployment. A new environment has nothing on GitHub to look for.
    assert_eq!(
        calls(&delivery),
        [
            Call::DynamodbGet, // repository → app
            Call::DynamodbGet, // app record
            Call::GithubAuthenticate,
            Call::DynamodbQuery,                 // secrets (not decrypted yet)
            Call::DynamodbQuery,                 // the environment's record and lease
            Call::KeysGenerate,                  // the request's signing key
            Call::DynamodbTransactWrite,         // the lease taken, the three items, the key
            Call::GithubCreateInstallationToken, // started, with the decrypts
            Call::KmsDecrypt,
            Call::KmsDecrypt,
            Call::DynamodbUpdate, // fence: the runtime is next
            Call::RuntimeCreate,  // started: the comment goes on meanwhile
            Call::GithubCreateComment,
            Call::DynamodbTransactWrite, // status: runtime requested (a fence)
            Call::AnalyticsTrack,
            Call::DynamodbUpdate, // fence: a deployment of this commit is pending
            Call::GithubCreateDeployment,
            Call::GithubCreateDeploymentStatus, // in progress
            Call::DynamodbUpdate,               // the lease released
        ]
    );
    // The runtime got the request's signing key; the record keeps its
    // public half and the KMS ciphertext of the private one (canonical item).
    assert!(host.runtime.calls()[0].signing_key.is_some());

    let runtime_id = runtime_id(&host);
    let env_id = assert_preview_items(&host, &runtime_id);
    let comment_url = assert_preview_comment(&host, &env_id);
    assert_preview_deployment(&host, &env_id, &runtime_id, &comment_url);
    assert_preview_runtime_call(&host, &env_id);
    assert_preview_analytics(&host);
}

/// Three items, one environment, at the head sha; returns its id.
fn assert_preview_items(host: &MockHost, runtime_id: &str) -> String {
    let items = records(host);
    assert_eq!(items.len(), 3);
    let env_id = attr(&items[0], "environmentId").unwrap().to_string();
    let keys: Vec<(String, String)> = items
        .iter()
        .map(|i| (attr(i, "pk").unwrap().into(), attr(i, "sk").unwrap().into()))
        .collect();
    assert!(keys.contains(&(format!("ENVIRONMENT#{env_id}"), "#".into())));
    assert!(keys.contains(&(format!("APP#{APP_ID}"), format!("ENVIRONMENT#{env_id}"))));
    assert!(keys.contains(&(format!("APP#{APP_ID}"), "BRANCH#feature/login".into())));
    for item in &items {
        let canonical = attr(item, "sk") == Some("#");
        assert_eq!(attr(item, "publicKey").is_some(), canonical);
        assert_eq!(
            item.iter().any(|(name, _)| name == "signingKeyCiphertext"),
            canonical
        );
        assert_eq!(attr(item, "environmentId"), Some(env_id.as_str()));
        assert_eq!(attr(item, "sha"), Some(SHA_1));
        assert_eq!(attr(item, "environmentType"), Some("preview"));
        assert_eq!(attr(item, "status"), Some("runtime-requested"));
        assert_eq!(attr(item, "runtimeId"), Some(runtime_id));
        assert_eq!(attr(item, "entrypoint"), Some("src/server.ts"));
        assert_eq!(attr(item, "pullRequest"), Some("7"));
    }
    env_id
}

/// One comment, found again by its marker, showing the environment;
/// returns its URL.
fn assert_preview_comment(host: &MockHost, env_id: &str) -> String {
    let comments = host.github.comments(REPO, 7).unwrap();
    assert_eq!(comments.len(), 1);
    let comment = &comments[0].body;
    assert!(comment.starts_with(&format!("<!-- envmgr:comment app={APP_ID} -->")));
    assert!(comment.contains(&format!("`{env_id}`")), "{comment}");
    assert!(comment.contains("`1111111`"), "{comment}");
    assert!(
        comment.contains(&format!("https://{env_id}.preview.test")),
        "{comment}"
    );
    // The time of the request (the push), not of its handling.
    assert!(comment.contains("2026-11-28 11:59 UTC"), "{comment}");
    assert!(comment.contains("<sub>envmgr · logic `"), "{comment}");
    assert!(!comment.contains("Secrets withheld"), "{comment}");
    assert_eq!(secrets_withheld(host), None);
    comments[0].html_url.clone()
}

/// One GitHub deployment of the head sha to the preview's environment,
/// in progress at the runtime's URL, linking to the comment.
fn assert_preview_deployment(host: &MockHost, env_id: &str, runtime_id: &str, comment_url: &str) {
    let deployments = deployments(host);
    assert_eq!(deployments.len(), 1);
    let deployment = &deployments[0];
    assert_eq!(deployment.deployment.sha, SHA_1);
    assert_eq!(deployment.deployment.environment, "preview/feature/login");
    assert_eq!(deployment.deployment.task, TASK);
    assert!(deployment.transient_environment);
    assert!(!deployment.production_environment);
    let payload: serde_json::Value =
        serde_json::from_str(&deployment.deployment.payload_json).unwrap();
    assert_eq!(payload["environmentId"], env_id);
    assert_eq!(payload["appId"], APP_ID);
    assert_eq!(states(deployment), [DeploymentState::InProgress]);
    let status = &deployment.statuses[0];
    assert_eq!(
        status.environment_url.as_deref(),
        Some(format!("https://{env_id}.preview.test").as_str())
    );
    assert_eq!(status.log_url.as_deref(), Some(comment_url));
    assert!(
        status.description.contains(runtime_id),
        "{}",
        status.description
    );
}

/// The runtime got the merged secrets (preview beats global, production
/// excluded) and a token, all opened only in the host.
fn assert_preview_runtime_call(host: &MockHost, env_id: &str) {
    let call = &host.runtime.calls()[0];
    assert_eq!(call.environment_id, env_id);
    assert_eq!(call.repository, REPO);
    assert_eq!(call.branch, "feature/login");
    assert_eq!(call.sha, SHA_1);
    assert_eq!(
        secrets_sent(host, 0),
        [
            (
                "DATABASE_URL".to_string(),
                "postgres://preview-db".to_string()
            ),
            ("LOG_LEVEL".to_string(), "info".to_string()),
        ]
    );
    assert_eq!(
        call.installation_token
            .as_ref()
            .map(|t| t.expose().to_string()),
        host.github.issued_tokens().first().cloned()
    );
}

/// Segment: cloud_environment_created with repo, branch, type.
fn assert_preview_analytics(host: &MockHost) {
    let events = host.analytics.events().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, "cloud_environment_created");
    assert_eq!(events[0].user_id, "github:octocat");
    let properties: serde_json::Value = serde_json::from_str(&events[0].properties_json).unwrap();
    assert_eq!(properties["repo"], REPO);
    assert_eq!(properties["branch"], "feature/login");
    assert_eq!(properties["type"], "preview");
}

#[tokio::test]
async fn api_request_creates_the_production_environment() {
    let host = seeded_host();
    seed_secrets(&host);
    let body = api_request("production", "main", SHA_2, "2026-11-28T11:58:00Z");
    let delivery = host.deliver(&host.message("api", &body)).await;
    done(&delivery);

    let items = records(&host);
    assert_eq!(items.len(), 3);
    assert!(
        items
            .iter()
            .all(|i| attr(i, "environmentType") == Some("production"))
    );
    assert!(items.iter().all(|i| attr(i, "pullRequest").is_none()));
    // No pull request: no comment calls at all.
    assert!(!calls(&delivery).contains(&Call::GithubListComments));
    // A production deployment of the request's sha, in progress, with
    // nothing to link to but the environment.
    let deployments = deployments(&host);
    assert_eq!(deployments.len(), 1);
    let deployment = &deployments[0];
    assert_eq!(deployment.deployment.environment, "production");
    assert_eq!(deployment.deployment.sha, SHA_2);
    assert!(deployment.production_environment);
    assert!(!deployment.transient_environment);
    assert_eq!(states(deployment), [DeploymentState::InProgress]);
    let env_id = attr(&items[0], "environmentId").unwrap();
    assert_eq!(
        deployment.statuses[0].environment_url.as_deref(),
        Some(format!("https://{env_id}.preview.test").as_str())
    );
    assert_eq!(deployment.statuses[0].log_url, None);
    assert_eq!(
        secrets_sent(&host, 0),
        [
            ("DATABASE_URL".to_string(), "postgres://prod-db".to_string()),
            ("LOG_LEVEL".to_string(), "info".to_string()),
            ("STRIPE_KEY".to_string(), "sk_live_123".to_string()),
        ]
    );
    assert_eq!(host.analytics.events().unwrap()[0].user_id, "user_123");
}

#[tokio::test]
async fn api_preview_request_with_a_pull_request_comments_and_honours_entrypoint() {
    let host = seeded_host();
    let body = api_preview(|body| {
        body["branch"] = "fix/typo".into();
        body["pullRequest"] = serde_json::json!({ "number": 12, "title": "Fix typo" });
        body["entrypoint"] = serde_json::json!("app/main.ts");
    });
    let delivery = host.deliver(&host.message("api", &body)).await;
    done(&delivery);
    assert_eq!(host.github.comments(REPO, 12).unwrap().len(), 1);
    assert_eq!(host.runtime.calls()[0].entrypoint, "app/main.ts");
    assert!(host.runtime.calls()[0].secrets.is_empty());
}

#[tokio::test]
async fn environment_specific_secrets_win_over_type_and_global() {
    let host = seeded_host();
    seed_secrets(&host);
    let env_id = envmgr_guest::environment::environment_id(APP_ID, "feature/login");
    set_secret(
        &host,
        APP_ID,
        &format!("environment:{env_id}"),
        "DATABASE_URL",
        "postgres://mine",
    );
    set_secret(
        &host,
        APP_ID,
        "environment:env_someone_else",
        "DATABASE_URL",
        "postgres://theirs",
    );
    let body = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:59:00Z");
    done(&host.deliver(&host.message("probot", &body)).await);
    assert_eq!(secrets_sent(&host, 0)[0].1, "postgres://mine");
}

#[tokio::test]
async fn redelivery_yields_one_environment_one_comment_one_runtime() {
    let host = seeded_host();
    seed_secrets(&host);
    let body = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:59:00Z");
    let first = host.message("probot", &body);
    done(&host.deliver(&first).await);
    let comment_id = host.github.comments(REPO, 7).unwrap()[0].id;

    host.clock.advance(Duration::from_secs(90));
    let mut again = first.clone();
    again.receive_count = 2;
    let delivery = host.deliver(&again).await;
    done(&delivery);
    // The same message sent twice (a new queue message id) is no different.
    let mut duplicate = first.clone();
    duplicate.id = "another-queue-message-id".into();
    done(&host.deliver(&duplicate).await);

    assert_eq!(records(&host).len(), 3);
    let comments = host.github.comments(REPO, 7).unwrap();
    assert_eq!(comments.len(), 1, "one comment");
    assert_eq!(comments[0].id, comment_id);
    // The comment shows the request's time: a redelivery has nothing new to
    // say, and the lease item remembers what the comment says.
    assert!(
        comments[0].body.contains("2026-11-28 11:59 UTC"),
        "{}",
        comments[0].body
    );
    for call in [
        Call::GithubListComments,
        Call::GithubUpdateComment,
        Call::GithubCreateComment,
        Call::GithubFindDeployments,
        Call::GithubCreateDeployment,
        Call::GithubListDeploymentStatuses,
        Call::GithubCreateDeploymentStatus,
        Call::GithubCreateInstallationToken,
        Call::RuntimeCreate,
    ] {
        assert_eq!(count(&delivery, call), 0, "{call} on a redelivery");
    }
    let deployments = deployments(&host);
    assert_eq!(deployments.len(), 1);
    assert_eq!(states(&deployments[0]), [DeploymentState::InProgress]);
    // The redelivery rewrote nothing: it took and released the lease (one
    // transaction, one update), and the runtime stays recorded.
    assert_eq!(count(&delivery, Call::DynamodbTransactWrite), 1);
    let runtime_id = runtime_id(&host);
    for item in records(&host) {
        assert_eq!(attr(&item, "runtimeId"), Some(runtime_id.as_str()));
    }

    // The runtime was asked once: the record says it was created.
    let runtime_calls = host.runtime.calls();
    assert_eq!(runtime_calls.len(), 1);
    assert_eq!(host.runtime.runtimes().unwrap().len(), 1);
    let events = host.analytics.events().unwrap();
    assert!(events.iter().all(|e| e.message_id == events[0].message_id));
}

#[tokio::test]
async fn events_that_do_not_deploy_are_skipped_with_a_reason() {
    let host = seeded_host();
    for action in ["edited", "labeled", "review_requested"] {
        let body = pull_request_event(action, 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z");
        let delivery = host.deliver(&host.message("probot", &body)).await;
        let why = skipped(&delivery);
        assert!(why.contains(action), "{why}");
        assert!(
            calls(&delivery).is_empty(),
            "nothing is touched for {action}"
        );
    }
    let issues = serde_json::json!({
        "id": "f00", "name": "issues", "payload": { "action": "opened" }
    });
    let delivery = host
        .deliver(&host.message("probot", &issues.to_string()))
        .await;
    assert!(skipped(&delivery).contains("`issues`"));
    assert!(records(&host).is_empty());
}

#[tokio::test]
async fn the_comment_names_the_logic_version() {
    let host = seeded_host();
    let body = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z");
    done(&host.deliver(&host.message("probot", &body)).await);
    // The host gives the logic its own id (the component's sha256).
    let short = &host.logic().id[..12];
    let comment = &host.github.comments(REPO, 7).unwrap()[0].body;
    assert!(
        comment.ends_with(&format!("\n<sub>envmgr · logic `{short}`</sub>\n")),
        "{comment}"
    );
}

#[tokio::test]
async fn the_mock_host_is_deterministic() {
    async fn run() -> Vec<String> {
        let host = seeded_host();
        seed_secrets(&host);
        let body = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z");
        let delivery = host.deliver(&host.message("probot", &body)).await;
        delivery.transcript.iter().map(|e| e.to_string()).collect()
    }
    assert_eq!(run().await, run().await);

    // What the guest draws from WASI itself: random bytes, std's hash
    // keys and the wall clock (the chaos guest reports them).
    let (engine, _) = shared_logic();
    let chaos = std::sync::Arc::new(engine.load(CHAOS_LOGIC).expect("the chaos guest"));
    let draw = |deterministic: bool| {
        let host = MockHost::new(
            engine.clone(),
            chaos.clone(),
            envmgr::mock::default_config(),
        );
        let mut backends = (**host.backends()).clone();
        if !deterministic {
            // As `serve` runs it: the system's clock and randomness.
            backends.clock = None;
        }
        let message = host.message("api", "entropy");
        let (engine, chaos) = (engine.clone(), chaos.clone());
        async move {
            match engine
                .run(&chaos, std::sync::Arc::new(backends), &message)
                .await
            {
                Ok(Ok(Outcome::Done(drawn))) => drawn,
                other => panic!("{other:?}"),
            }
        }
    };
    let (first, second) = (draw(true).await, draw(true).await);
    assert!(first.contains("filled=true"), "{first}");
    assert_eq!(first, second, "the mock host's randomness or clock varies");
    let start = format!("wall-ms={}", envmgr::mock::START_MS);
    assert!(first.ends_with(&start), "the manual clock: {first}");
    // The probe does see randomness where there is some.
    assert_ne!(draw(false).await, draw(false).await);
}

#[tokio::test]
async fn without_a_preview_url_template_the_comment_links_the_runtime() {
    let (engine, logic) = shared_logic();
    let host = MockHost::new(engine, logic, Config::new([]));
    seed_app(&host, APP_ID, APP_NAME, REPO);
    host.github.add_installation(INSTALLATION);
    seed_secrets(&host);
    let body = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z");
    let first = host.deliver(&host.message("probot", &body)).await;
    done(&first);
    let runtime_url = host.runtime.runtimes().unwrap()[0].url.clone();
    let comments = host.github.comments(REPO, 7).unwrap();
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0].body.contains(&format!("({runtime_url})")),
        "{}",
        comments[0].body
    );

    // A redelivery shows the URL from the start: no update without it.
    let again = host.deliver(&host.message("probot", &body)).await;
    done(&again);
    let updates = calls(&again)
        .iter()
        .filter(|c| **c == Call::GithubUpdateComment)
        .count();
    assert!(updates <= 1, "{:#?}", again.transcript);
    assert!(
        host.github.comments(REPO, 7).unwrap()[0]
            .body
            .contains(&runtime_url)
    );
}
