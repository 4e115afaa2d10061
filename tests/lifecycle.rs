//! The lifecycle closes: the runtime reports back, signed with the
//! environment's key for the request, and the record, the pull-request
//! comment and the GitHub deployment say ready or failed. The rules of
//! guest/src/report.rs, one by one, in the mock host; then the whole loop
//! through the real binary on both backends, with a Runtime Service that
//! reports the way a real one would.

use std::time::Duration;

use envmgr::Outcome;
use envmgr::calls::{Call, Hit};
use envmgr::capabilities::github::DeploymentState;
use envmgr::capabilities::keys::{KeyPair, sign_report};
use envmgr::mock::{Delivery, MockHost};
use envmgr_guest::environment::environment_id;
use envmgr_tests::stack;
use envmgr_tests::*;
use serde_json::{Value, json};

const BRANCH: &str = "feature/login";
const OPENED_AT: &str = "2026-11-28T11:00:00Z";
const OPENED_MS: u64 = 1_795_863_600_000;

fn env_id() -> String {
    environment_id(APP_ID, BRANCH)
}

fn version(at_ms: u64, sha: &str) -> String {
    format!("{at_ms:013}#{sha}")
}

fn opened() -> String {
    pull_request_event("opened", 7, BRANCH, SHA_1, OPENED_AT)
}

fn host() -> MockHost {
    let host = seeded_host();
    set_secret(&host, APP_ID, "global", "DATABASE_URL", "postgres://db");
    host
}

/// The private key the runtime got for its n-th create call.
fn private_key(host: &MockHost, call: usize) -> String {
    host.runtime.calls()[call]
        .signing_key
        .as_ref()
        .expect("the runtime got a signing key")
        .expose()
        .to_string()
}

/// Claims of a report on the opened request, as the mock clock stands.
fn claims(host: &MockHost, state: &str, seq: u64) -> Value {
    let now = host.clock.now_ms() / 1_000;
    let mut claims = json!({
        "sub": env_id(),
        "ver": version(OPENED_MS, SHA_1),
        "state": state,
        "iat": now,
        "exp": now + 300,
        "jti": format!("report-{seq}"),
        "seq": seq,
    });
    match state {
        "ready" => claims["url"] = format!("https://{}.preview.test", env_id()).into(),
        _ => {
            claims["category"] = "build".into();
            claims["reason"] = "npm ERR! missing script: start".into();
        }
    }
    claims
}

fn envelope(jws: &str) -> String {
    json!({"version": 1, "kind": "runtime-status", "report": jws}).to_string()
}

async fn report(host: &MockHost, jws: &str) -> Delivery {
    host.deliver(&host.message("api", &envelope(jws))).await
}

fn outcome(delivery: &Delivery) -> &Outcome {
    match &delivery.result {
        Ok(Ok(outcome)) => outcome,
        other => panic!("expected an outcome, got {other:?}"),
    }
}

fn refused(delivery: &Delivery) -> String {
    match &delivery.result {
        Ok(Err(failure)) if failure.kind == envmgr::FailureKind::Permanent => {
            failure.reason.clone()
        }
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

fn skipped(delivery: &Delivery) -> String {
    match outcome(delivery) {
        Outcome::Skipped(why) => why.clone(),
        other => panic!("expected skipped, got {other:?}"),
    }
}

fn canonical(host: &MockHost) -> envmgr::capabilities::dynamodb::Item {
    records(host)
        .into_iter()
        .find(|item| attr(item, "sk") == Some("#"))
        .expect("the canonical item")
}

fn statuses(host: &MockHost) -> Vec<Vec<DeploymentState>> {
    host.github
        .deployments(REPO)
        .unwrap()
        .iter()
        .map(|d| d.statuses.iter().map(|s| s.state).collect())
        .collect()
}

async fn opened_and_requested() -> MockHost {
    let host = host();
    let delivery = host.deliver(&host.message("probot", &opened())).await;
    assert!(matches!(outcome(&delivery), Outcome::Done(_)));
    host
}

#[tokio::test]
async fn a_ready_report_shows_the_environment_ready_everywhere() {
    let host = opened_and_requested().await;
    host.clock.advance(Duration::from_secs(20));
    let jws = sign_report(&private_key(&host, 0), &claims(&host, "ready", 1)).unwrap();
    let delivery = report(&host, &jws).await;
    assert!(
        matches!(outcome(&delivery), Outcome::Done(what) if what.contains("ready")),
        "{:?}",
        delivery.result
    );
    for item in records(&host) {
        assert_eq!(attr(&item, "status"), Some("ready"));
        assert_eq!(attr(&item, "reportSeq"), Some("1"));
    }
    let url = format!("https://{}.preview.test", env_id());
    let comment = &host.github.comments(REPO, 7).unwrap()[0].body;
    assert!(comment.contains("✅ Ready"), "{comment}");
    assert!(
        comment.contains(&format!("[Visit preview]({url})")),
        "{comment}"
    );
    let deployment = &host.github.deployments(REPO).unwrap()[0];
    let last = deployment.statuses.last().unwrap();
    assert_eq!(last.state, DeploymentState::Success);
    assert_eq!(last.environment_url.as_deref(), Some(url.as_str()));
    assert_eq!(
        statuses(&host),
        [[DeploymentState::InProgress, DeploymentState::Success]]
    );
}

/// A report stored but not applied (its delivery stored it, then could not
/// take the environment: the create held it, or the store failed after)
/// is applied by its redelivery, not skipped as if it had been.
#[tokio::test]
async fn a_report_stored_but_not_applied_is_applied_by_its_redelivery() {
    let host = host();
    let created = host.deliver(&host.message("probot", &opened())).await;
    assert!(matches!(outcome(&created), Outcome::Done(_)));
    let transacts = created
        .transcript
        .iter()
        .filter(|e| e.call == Call::DynamodbTransactWrite)
        .count() as u32;
    host.clock.advance(Duration::from_secs(20));
    let jws = sign_report(&private_key(&host, 0), &claims(&host, "ready", 1)).unwrap();
    // The report's first write stores it; its second, taking the lease,
    // fails (retryable): stored, not applied.
    host.faults.inject(
        Call::DynamodbTransactWrite,
        Hit::Nth(transacts + 2),
        envmgr::capabilities::ErrorCode::Unavailable,
        "injected",
    );
    let first = report(&host, &jws).await;
    assert!(
        matches!(&first.result, Ok(Err(failure)) if failure.kind == envmgr::FailureKind::Retryable),
        "{:?}",
        first.result
    );
    assert_eq!(attr(&canonical(&host), "status"), Some("runtime-requested"));
    host.faults.clear();

    let again = report(&host, &jws).await;
    assert!(
        matches!(outcome(&again), Outcome::Done(what) if what.contains("ready")),
        "{:?}",
        again.result
    );
    for item in records(&host) {
        assert_eq!(attr(&item, "status"), Some("ready"));
        assert_eq!(attr(&item, "reportSeq"), Some("1"));
    }
    assert!(
        host.github.comments(REPO, 7).unwrap()[0]
            .body
            .contains("✅ Ready")
    );
}

#[tokio::test]
async fn a_failed_report_shows_the_category_and_keeps_the_reason_on_the_record() {
    let host = opened_and_requested().await;
    let jws = sign_report(&private_key(&host, 0), &claims(&host, "failed", 1)).unwrap();
    report(&host, &jws).await;
    let item = canonical(&host);
    assert_eq!(attr(&item, "status"), Some("failed"));
    assert_eq!(attr(&item, "failureCategory"), Some("build"));
    assert_eq!(
        attr(&item, "failureReason"),
        Some("npm ERR! missing script: start")
    );
    let comment = &host.github.comments(REPO, 7).unwrap()[0].body;
    assert!(comment.contains("❌ Failed (build)"), "{comment}");
    assert!(
        !comment.contains("npm ERR"),
        "the reason stays on the record"
    );
    assert_eq!(
        statuses(&host),
        [[DeploymentState::InProgress, DeploymentState::Failure]]
    );
}

#[tokio::test]
async fn forged_reports_are_refused() {
    let host = opened_and_requested().await;
    let good = claims(&host, "ready", 1);
    // Another environment's key (or any other).
    let other = KeyPair::from_seed(&[9; 32]).unwrap();
    let foreign = sign_report(other.private_jwk.expose(), &good).unwrap();
    assert!(refused(&report(&host, &foreign).await).contains("not signed"));
    // A tampered payload.
    let signed = sign_report(&private_key(&host, 0), &good).unwrap();
    let mut parts: Vec<String> = signed.split('.').map(str::to_string).collect();
    use base64::Engine as _;
    let mut forged = good.clone();
    forged["url"] = "https://evil.example.com".into();
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string());
    assert!(refused(&report(&host, &parts.join(".")).await).contains("not signed"));
    // `alg: none`.
    let none = format!(
        "{}.{}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(good.to_string())
    );
    assert!(refused(&report(&host, &none).await).contains("status report refused"));
    // HMAC keyed with the public key.
    let public = attr(&canonical(&host), "publicKey").unwrap().to_string();
    let hmac = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &good,
        &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    assert!(refused(&report(&host, &hmac).await).contains("only EdDSA"));
    // Nothing moved.
    assert_eq!(attr(&canonical(&host), "status"), Some("runtime-requested"));
}

#[tokio::test]
async fn expired_and_future_dated_reports_are_refused() {
    let host = opened_and_requested().await;
    let key = private_key(&host, 0);
    let mut expired = claims(&host, "ready", 1);
    expired["exp"] = (host.clock.now_ms() / 1_000 - 120).into();
    assert!(
        refused(&report(&host, &sign_report(&key, &expired).unwrap()).await).contains("expired")
    );
    let mut future = claims(&host, "ready", 1);
    future["iat"] = (host.clock.now_ms() / 1_000 + 120).into();
    assert!(refused(&report(&host, &sign_report(&key, &future).unwrap()).await).contains("issued"));
}

#[tokio::test]
async fn a_replayed_report_cannot_turn_failed_back_to_ready() {
    let host = opened_and_requested().await;
    let key = private_key(&host, 0);
    let ready = sign_report(&key, &claims(&host, "ready", 1)).unwrap();
    let failed = sign_report(&key, &claims(&host, "failed", 2)).unwrap();
    report(&host, &ready).await;
    report(&host, &failed).await;
    assert_eq!(attr(&canonical(&host), "status"), Some("failed"));
    // The captured `ready` again, and the `failed` twice.
    assert!(skipped(&report(&host, &ready).await).contains("applied already"));
    assert!(skipped(&report(&host, &failed).await).contains("applied already"));
    assert_eq!(attr(&canonical(&host), "status"), Some("failed"));
}

#[tokio::test]
async fn a_create_redelivered_after_ready_changes_nothing() {
    let host = opened_and_requested().await;
    let jws = sign_report(&private_key(&host, 0), &claims(&host, "ready", 1)).unwrap();
    report(&host, &jws).await;
    let items = format!("{:?}", records(&host));
    let comments = format!("{:?}", host.github.comments(REPO, 7).unwrap());
    let before = statuses(&host);

    let again = host.deliver(&host.message("probot", &opened())).await;
    assert!(matches!(outcome(&again), Outcome::Done(what) if what.contains("ready")));
    assert_eq!(format!("{:?}", records(&host)), items, "the record");
    assert_eq!(
        format!("{:?}", host.github.comments(REPO, 7).unwrap()),
        comments,
        "the comment"
    );
    assert_eq!(statuses(&host), before, "the deployment");
    assert!(
        !again.transcript.iter().any(|e| matches!(
            e.call,
            Call::GithubCreateComment
                | Call::GithubUpdateComment
                | Call::GithubCreateDeployment
                | Call::GithubCreateDeploymentStatus
                | Call::RuntimeCreate
                | Call::KeysGenerate
        )),
        "{:#?}",
        again.transcript
    );
}

#[tokio::test]
async fn a_report_for_an_older_request_is_skipped() {
    let host = opened_and_requested().await;
    let older_key = private_key(&host, 0);
    let pushed = pull_request_event("synchronize", 7, BRANCH, SHA_2, "2026-11-28T11:30:00Z");
    host.deliver(&host.message("probot", &pushed)).await;
    let jws = sign_report(&older_key, &claims(&host, "ready", 1)).unwrap();
    assert!(skipped(&report(&host, &jws).await).contains("newer request"));
    assert_eq!(attr(&canonical(&host), "status"), Some("runtime-requested"));
    assert_eq!(attr(&canonical(&host), "sha"), Some(SHA_2));
}

#[tokio::test]
async fn a_report_before_the_create_finished_is_stored_then_merged() {
    let host = std::sync::Arc::new(host());
    // Right before the create records its runtime (its second transaction),
    // the runtime's report arrives.
    let (peer, slot) = (
        host.clone(),
        std::sync::Arc::new(std::sync::Mutex::new(None)),
    );
    let out = slot.clone();
    host.faults.interleave(
        Call::DynamodbTransactWrite,
        Hit::Nth(2),
        std::sync::Arc::new(move || {
            let (peer, out) = (peer.clone(), out.clone());
            Box::pin(async move {
                let jws = sign_report(&private_key(&peer, 0), &claims(&peer, "ready", 1)).unwrap();
                let delivery = report(&peer, &jws).await;
                *out.lock().unwrap() = Some(delivery);
            })
        }),
    );
    let create = host.deliver(&host.message("probot", &opened())).await;
    let stored = slot.lock().unwrap().take().expect("the report ran");
    assert!(
        matches!(outcome(&stored), Outcome::Done(what) if what.contains("stored")),
        "{:?}",
        stored.result
    );
    assert!(
        matches!(outcome(&create), Outcome::Done(what) if what.contains("ready")),
        "{:?}",
        create.result
    );
    assert_eq!(attr(&canonical(&host), "status"), Some("ready"));
    let comment = &host.github.comments(REPO, 7).unwrap()[0].body;
    assert!(comment.contains("✅ Ready"), "{comment}");
    assert_eq!(statuses(&host), [[DeploymentState::Success]]);
}

#[tokio::test]
async fn no_private_key_material_outside_the_runtimes_request() {
    let host = opened_and_requested().await;
    let key = private_key(&host, 0);
    let jws = sign_report(&key, &claims(&host, "ready", 1)).unwrap();
    let delivery = report(&host, &jws).await;
    let jwk: Value = serde_json::from_str(&key).unwrap();
    let d = jwk["d"].as_str().unwrap();
    let forms: Vec<String> = std::iter::once(key.clone())
        .chain(std::iter::once(d.to_string()))
        .chain(envmgr_tests::encoders::Encoder::forms(d, 12))
        .filter(|form| form.len() >= 12)
        .collect();
    let mut places = vec![format!("{:?}", records(&host))];
    places.extend(
        host.github
            .comments(REPO, 7)
            .unwrap()
            .into_iter()
            .map(|c| c.body),
    );
    places.push(format!("{:?}", host.github.deployments(REPO).unwrap()));
    places.push(format!("{:?}", delivery.transcript));
    places.push(format!("{:?}", host.analytics.events().unwrap()));
    for place in &places {
        for form in &forms {
            assert!(
                !place.contains(form.as_str()),
                "the private key leaked: {place}"
            );
        }
    }
}

/// The whole loop through the real binary: the Runtime Service reports
/// ready after it answered, through the `api` queue; the pull request
/// shows Ready and the deployment `success`. A report signed with another
/// key is dead-lettered with the reason. No private key material is left
/// anywhere but in the runtime's requests.
async fn the_runtime_reports_and_the_pull_request_shows_ready(backend: stack::Backend) {
    let stack = stack::Stack::new(
        "lifecycle",
        env!("CARGO_BIN_EXE_envmgr-under-test"),
        stack::Options {
            backend,
            ..stack::Options::default()
        },
    );
    stack.seed_shop("postgres://shop@db/shop", "sk_test_lifecycle");
    stack.runtime_reports(Duration::from_millis(300), "ready");
    let mut daemon = stack.serve();
    stack.send("probot", &stack::example("pull-request-opened.json"));
    let wait = Duration::from_secs(60);
    stack::eventually("the environment ready", wait, || async {
        stack
            .environment_items()
            .await
            .iter()
            .any(|i| i.get("status").map(String::as_str) == Some("ready"))
    })
    .await;
    stack::eventually("the comment ready", wait, || async {
        stack
            .github
            .comments("acme/shop", 7)
            .first()
            .is_some_and(|c| c.contains("✅ Ready"))
    })
    .await;
    // The deployment's status follows the comment: wait for it too.
    stack::eventually("the deployment's status success", wait, || async {
        stack.github.deployments("acme/shop")[0]
            .statuses
            .last()
            .is_some_and(|s| s["state"] == "success")
    })
    .await;
    let deployments = stack.github.deployments("acme/shop");
    let last = deployments[0].statuses.last().expect("a status");
    assert_eq!(last["state"], "success", "{last}");
    assert!(
        last["environment_url"]
            .as_str()
            .is_some_and(|u| u.ends_with(".preview.test")),
        "{last}"
    );

    // A report signed with another key.
    let (_, request) = stack.runtime.requests()[0].clone();
    let claims = json!({
        "sub": request["environmentId"], "ver": request["requestVersion"], "state": "failed",
        "iat": 1_795_863_600u64, "exp": 4_102_444_800u64, "jti": "forged", "seq": 9,
    });
    let other = KeyPair::from_seed(&[5; 32]).unwrap();
    let forged = sign_report(other.private_jwk.expose(), &claims).unwrap();
    stack.send("api", &envelope(&forged));
    stack::eventually("the forged report dead-lettered", wait, || async {
        stack.dead_letters("api").await.len() == 1
    })
    .await;
    let letters = stack.dead_letters("api").await;
    let reason = letters[0]
        .1
        .get("envmgr.reason")
        .cloned()
        .unwrap_or_default();
    assert!(reason.contains("not signed"), "{reason}");
    assert!(
        stack
            .environment_items()
            .await
            .iter()
            .all(|i| i.get("status").map(String::as_str) == Some("ready")),
        "the forged report changed nothing"
    );
    assert!(stack::terminate(&mut daemon).success());

    let d = request["signingKey"]["d"]
        .as_str()
        .expect("the key")
        .to_string();
    let mut places = vec![stack.logs()];
    places.push(format!("{:?}", stack.environment_table().await));
    places.push(format!("{:?}", stack.dead_letters("api").await));
    places.push(format!("{:?}", stack.github.comments("acme/shop", 7)));
    for place in places {
        for form in envmgr_tests::encoders::Encoder::forms(&d, 12)
            .into_iter()
            .chain([d.clone()])
        {
            if form.len() >= 12 {
                assert!(!place.contains(&form), "the private key leaked");
            }
        }
    }
}

envmgr_tests::on_both_backends!(the_runtime_reports_and_the_pull_request_shows_ready);

/// "Updated" as the comment shows it (UTC, to the minute).
fn minutes(at_ms: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp((at_ms / 1_000) as i64).unwrap();
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    at.format(&format).unwrap()
}

/// What a failure wrote goes when the request turns ready, and the comment
/// says since when it is ready (the report's time, not the push's).
#[tokio::test]
async fn a_ready_report_after_a_failed_one_drops_the_failure() {
    let host = opened_and_requested().await;
    let key = private_key(&host, 0);
    host.clock.advance(Duration::from_secs(20));
    report(
        &host,
        &sign_report(&key, &claims(&host, "failed", 1)).unwrap(),
    )
    .await;
    assert_eq!(attr(&canonical(&host), "failureCategory"), Some("build"));
    host.clock.advance(Duration::from_secs(600));
    let ready_at = host.clock.now_ms();
    let ready = report(
        &host,
        &sign_report(&key, &claims(&host, "ready", 2)).unwrap(),
    )
    .await;
    assert!(
        matches!(outcome(&ready), Outcome::Done(_)),
        "{:?}",
        ready.result
    );
    for item in records(&host) {
        assert_eq!(attr(&item, "status"), Some("ready"));
        for gone in ["failureReason", "failureCategory"] {
            assert_eq!(attr(&item, gone), None, "{gone} kept on {item:?}");
        }
    }
    let comment = &host.github.comments(REPO, 7).unwrap()[0].body;
    assert!(comment.contains(&minutes(ready_at)), "{comment}");
    assert!(!comment.contains(&minutes(OPENED_MS)), "{comment}");
}

/// A report's URL outside the hosts the environment may have is never
/// stored: not on the stored report, not on the record.
#[tokio::test]
async fn a_report_url_the_environment_may_not_have_is_not_stored() {
    let host = opened_and_requested().await;
    host.clock.advance(Duration::from_secs(20));
    let mut ready = claims(&host, "ready", 1);
    ready["url"] = "https://phish.example.com/login".into();
    let delivery = report(&host, &sign_report(&private_key(&host, 0), &ready).unwrap()).await;
    assert!(
        matches!(outcome(&delivery), Outcome::Done(_)),
        "{:?}",
        delivery.result
    );
    let every_item = format!("{:?}", host.tables.scan("environments").unwrap());
    assert!(!every_item.contains("phish"), "{every_item}");
    // A redelivered create shows no such link either.
    host.deliver(&host.message("probot", &opened())).await;
    assert!(
        !host.github.comments(REPO, 7).unwrap()[0]
            .body
            .contains("phish")
    );
}
