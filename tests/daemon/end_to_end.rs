//! Both queues end to end: `init` run again, a pull request and a platform
//! request made into environments, what every fake saw, and no secret in
//! the logs or the comment.

use envmgr_tests::stack::{Backend, Options, Stack, eventually, example, terminate};
use serde_json::Value;

use crate::helpers::{DATABASE_URL, STRIPE_KEY, WAIT, s, send, shop};

pub(crate) async fn both_queues_create_environments_end_to_end(backend: Backend) {
    let stack = shop(
        "e2e",
        Options {
            backend,
            ..Options::default()
        },
    );
    assert_init_is_idempotent(&stack, backend);
    let mut daemon = stack.serve();
    send(&stack, "probot", &example("pull-request-opened.json"));
    send(&stack, "api", &example("api-production.json"));

    wait_for_both_environments(&stack).await;

    // Only the fake runtime saw plaintext: the decrypted secrets and a real
    // installation token minted by the fake GitHub after a verified JWT.
    let requests = stack.runtime.requests();
    let preview = requests
        .iter()
        .map(|(_, body)| body)
        .find(|b| b["environmentType"] == "preview")
        .expect("a preview runtime");
    assert_eq!(preview["secrets"]["DATABASE_URL"], DATABASE_URL);
    assert_eq!(preview["secrets"]["STRIPE_KEY"], STRIPE_KEY);
    assert_eq!(preview["branch"], "feature/login");
    let token = preview["installationToken"].as_str().unwrap().to_string();
    assert!(stack.github.tokens().contains(&token));
    let production = requests
        .iter()
        .map(|(_, body)| body)
        .find(|b| b["environmentType"] == "production")
        .expect("a production runtime");
    assert!(
        production["secrets"].get("STRIPE_KEY").is_none(),
        "preview secret kept out of production"
    );
    assert!(stack.github.jwt_checks() > 0);
    assert!(
        stack.github.rejected().is_empty(),
        "{:?}",
        stack.github.rejected()
    );
    assert_tokens_minted_narrowly(&stack);
    assert_fakes_refused_nothing(&stack);

    let comments = stack.github.comments("acme/shop", 7);
    assert_eq!(comments.len(), 1);
    assert!(comments[0].contains("<!-- envmgr:comment app=app_shop -->"));

    assert_deployments_at_runtime_urls(&stack, preview, production);

    assert_analytics_events(&stack);

    assert_eq!(stack.messages_in(&stack.queue_name("probot")).await, 0);
    assert_eq!(stack.messages_in(&stack.queue_name("api")).await, 0);

    let status = terminate(&mut daemon);
    assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
    let logs = stack.logs();
    for secret in [DATABASE_URL, STRIPE_KEY, &token] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
    for comment in comments {
        assert!(!comment.contains(DATABASE_URL) && !comment.contains(&token));
    }
}

/// `init` is idempotent: a second run finds everything in place.
fn assert_init_is_idempotent(stack: &Stack, backend: Backend) {
    let again = String::from_utf8(stack.ok(&["init"]).stdout).unwrap();
    match backend {
        Backend::Aws => assert!(
            again.contains("exists") && !again.contains("created"),
            "{again}"
        ),
        Backend::Local => assert!(again.contains("ready"), "{again}"),
    }
}

/// Both requests made into environments: runtimes, records, analytics and
/// GitHub deployments.
async fn wait_for_both_environments(stack: &Stack) {
    eventually("two runtimes", WAIT, || async {
        stack.runtime.runtimes().len() == 2
    })
    .await;
    eventually("six records marked runtime-requested", WAIT, || async {
        let items = stack.environment_items().await;
        items.len() == 6 && items.iter().all(|i| s(i, "status") == "runtime-requested")
    })
    .await;
    eventually("the analytics batch", WAIT, || async {
        stack.segment.events().len() >= 2
    })
    .await;
    eventually("both GitHub deployments in progress", WAIT, || async {
        let deployments = stack.github.deployments("acme/shop");
        deployments.len() == 2 && deployments.iter().all(|d| d.state() == Some("in_progress"))
    })
    .await;
}

/// The installation's own token was minted once and kept; the runtime's
/// for the one repository with contents: read only, per runtime; every
/// request named the API version.
fn assert_tokens_minted_narrowly(stack: &Stack) {
    let mints = stack.github.mints();
    assert_eq!(
        mints.iter().filter(|m| m.repositories.is_none()).count(),
        1,
        "{mints:?}"
    );
    let runtime_mints: Vec<_> = mints.iter().filter(|m| m.repositories.is_some()).collect();
    assert_eq!(
        runtime_mints.len(),
        2,
        "one per runtime: preview and production"
    );
    for mint in runtime_mints {
        assert_eq!(
            mint.repositories.as_deref(),
            Some(&["shop".to_string()][..])
        );
        let permissions: Vec<(&str, &str)> = mint
            .permissions
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(permissions, [("contents", "read")]);
    }
    assert!(
        stack
            .github
            .requests()
            .iter()
            .all(|r| r.api_version.as_deref() == Some("2022-11-28"))
    );
}

/// The other fakes judged every request as their services would.
fn assert_fakes_refused_nothing(stack: &Stack) {
    assert!(
        stack.runtime.refused().is_empty(),
        "{:?}",
        stack.runtime.refused()
    );
    assert!(
        stack.segment.refused().is_empty(),
        "{:?}",
        stack.segment.refused()
    );
    assert!(
        stack.segment.dropped().is_empty(),
        "{:?}",
        stack.segment.dropped()
    );
}

/// One GitHub deployment per environment, at its commit, in progress at
/// the URL the runtime answered: the pull request's "View deployment".
fn assert_deployments_at_runtime_urls(stack: &Stack, preview: &Value, production: &Value) {
    let deployments = stack.github.deployments("acme/shop");
    let deployed = |environment: &str| {
        let matching: Vec<_> = deployments
            .iter()
            .filter(|d| d.deployment["environment"] == environment)
            .collect();
        assert_eq!(matching.len(), 1, "one deployment to {environment}");
        matching[0].clone()
    };
    for (deployment, runtime, sha, transient) in [
        (
            deployed("preview/feature/login"),
            preview,
            "3f786850e387550fdab836ed7e6dc881de23001b",
            true,
        ),
        (
            deployed("production"),
            production,
            "9c1e0e5d3f0b4b1c8a7e6d5c4b3a291807f6e5d4",
            false,
        ),
    ] {
        let d = &deployment.deployment;
        assert_eq!(d["sha"], sha);
        assert_eq!(d["task"], "deploy:envmgr");
        assert_eq!(d["transient_environment"], transient);
        assert_eq!(d["production_environment"], !transient);
        assert_eq!(d["payload"]["environmentId"], runtime["environmentId"]);
        assert_eq!(deployment.statuses.len(), 1, "{:?}", deployment.statuses);
        let status = &deployment.statuses[0];
        assert_eq!(status["state"], "in_progress");
        let url = format!(
            "https://{}.runtime.test",
            runtime["environmentId"].as_str().unwrap()
        );
        assert_eq!(status["environment_url"], url.as_str());
    }
    let preview_status = &deployed("preview/feature/login").statuses[0];
    let log_url = preview_status["log_url"].as_str().unwrap();
    assert!(
        log_url.starts_with("https://github.com/acme/shop/pull/7#issuecomment-"),
        "the comment: {log_url}"
    );
}

/// Every analytics event is a creation, one of them production's.
fn assert_analytics_events(stack: &Stack) {
    let events = stack.segment.events();
    assert!(
        events
            .iter()
            .all(|e| e["event"] == "cloud_environment_created")
    );
    assert!(
        events
            .iter()
            .any(|e| e["properties"]["type"] == "production")
    );
}
