//! One writer per environment, through the compiled component in the mock
//! host: deliveries interleaved deterministically (`Faults::interleave`
//! runs one delivery inside another's call), leases left by crashed
//! holders, the Runtime Service's fence, and what the newest request
//! cleans up on GitHub.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use envmgr::calls::{Call, Hit, Interleaved};
use envmgr::capabilities::ErrorCode;
use envmgr::capabilities::dynamodb::AttributeValue;
use envmgr::capabilities::github::DeploymentState;
use envmgr::mock::{Delivery, LEASE_TTL_MS, MockHost};
use envmgr::{FailureKind, Outcome};
use envmgr_guest::environment::environment_id;
use envmgr_tests::*;

const OLDER_AT: &str = "2026-11-28T11:00:00Z";
const NEWER_AT: &str = "2026-11-28T11:30:00Z";

fn older() -> String {
    pull_request_event("opened", 7, "feature/login", SHA_1, OLDER_AT)
}

fn newer() -> String {
    pull_request_event("synchronize", 7, "feature/login", SHA_2, NEWER_AT)
}

/// `{requestedAt:013}#{sha}` of the two requests.
fn version(at_ms: u64, sha: &str) -> String {
    format!("{at_ms:013}#{sha}")
}
const OLDER_MS: u64 = 1_795_863_600_000;
const NEWER_MS: u64 = 1_795_865_400_000;

fn env_id() -> String {
    environment_id(APP_ID, "feature/login")
}

fn host() -> Arc<MockHost> {
    let host = seeded_host();
    set_secret(&host, APP_ID, "global", "DATABASE_URL", "postgres://db");
    Arc::new(host)
}

/// The lease item of the environment, as attribute → text.
fn lease(host: &MockHost) -> std::collections::BTreeMap<String, String> {
    let pk = format!("ENVIRONMENT#{}", env_id());
    host.tables
        .scan("environments")
        .unwrap()
        .into_iter()
        .find(|item| attr(item, "pk") == Some(pk.as_str()) && attr(item, "sk") == Some("LEASE"))
        .expect("a lease item")
        .into_iter()
        .filter_map(|(name, value)| match value {
            AttributeValue::S(v) | AttributeValue::N(v) => Some((name, v)),
            _ => None,
        })
        .collect()
}

fn outcome(delivery: &Delivery) -> &Outcome {
    match &delivery.result {
        Ok(Ok(outcome)) => outcome,
        other => panic!("expected an outcome, got {other:?}"),
    }
}

fn is_done(delivery: &Delivery) -> bool {
    matches!(outcome(delivery), Outcome::Done(_))
}

fn deferred_until(delivery: &Delivery) -> u64 {
    match outcome(delivery) {
        Outcome::Deferred(deferral) => deferral.until_ms,
        other => panic!("expected deferred, got {other:?}"),
    }
}

fn skipped(delivery: &Delivery) -> String {
    match outcome(delivery) {
        Outcome::Skipped(why) => why.clone(),
        other => panic!("expected skipped, got {other:?}"),
    }
}

/// Run `body` as another delivery right before the chosen call; the
/// delivery's result lands in the returned slot.
fn interleave(
    host: &Arc<MockHost>,
    call: Call,
    hit: Hit,
    body: String,
) -> Arc<Mutex<Option<Delivery>>> {
    let slot: Arc<Mutex<Option<Delivery>>> = Arc::default();
    let (peer, out) = (host.clone(), slot.clone());
    let action: Interleaved = Arc::new(move || {
        let (peer, out, body) = (peer.clone(), out.clone(), body.clone());
        Box::pin(async move {
            let delivery = peer.deliver(&peer.message("probot", &body)).await;
            *out.lock().unwrap() = Some(delivery);
        })
    });
    host.faults.interleave(call, hit, action);
    slot
}

fn taken(slot: &Arc<Mutex<Option<Delivery>>>) -> Delivery {
    slot.lock()
        .unwrap()
        .take()
        .expect("the interleaved delivery ran")
}

fn states(host: &MockHost) -> Vec<(String, Vec<DeploymentState>)> {
    host.github
        .deployments(REPO)
        .unwrap()
        .iter()
        .map(|d| {
            (
                d.deployment.sha.clone(),
                d.statuses.iter().map(|s| s.state).collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_newer_request_waits_for_an_older_holder_which_stops_at_its_next_fence() {
    let host = host();
    // As the older request renews its lease to ask for its runtime (its
    // first fence), the newer one arrives.
    let during = interleave(&host, Call::DynamodbUpdate, Hit::Nth(1), newer());
    let first = host.deliver(&host.message("probot", &older())).await;

    let waited = taken(&during);
    let until = deferred_until(&waited);
    assert!(until > host.clock.now_ms(), "waits for a while");
    assert!(
        host.runtime.calls().is_empty(),
        "the waiting request did nothing"
    );
    // The older one saw the newer one waiting and stopped before making a
    // deployment or calling the runtime; it left the environment free.
    let why = skipped(&first);
    assert!(why.contains(&version(NEWER_MS, SHA_2)), "{why}");
    assert!(host.github.deployments(REPO).unwrap().is_empty());
    assert!(host.runtime.calls().is_empty());
    let held = lease(&host);
    assert_eq!(held["wanted"], version(NEWER_MS, SHA_2));
    assert_eq!(held["expiresAt"], "0", "released");

    // The newer request, back after its wait, goes through.
    host.clock.advance(Duration::from_secs(1));
    let again = host.deliver(&host.message("probot", &newer())).await;
    assert!(is_done(&again), "{:?}", again.result);
    let calls = host.runtime.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].request_version, version(NEWER_MS, SHA_2));
    assert!(records(&host).iter().all(|i| attr(i, "sha") == Some(SHA_2)));
    let comments = host.github.comments(REPO, 7).unwrap();
    assert_eq!(comments.len(), 1);
    assert!(comments[0].body.contains("`2222222`"), "the newest commit");
    assert_eq!(lease(&host)["wanted"], "", "no one waits any more");
}

#[tokio::test]
async fn an_older_request_meeting_a_newer_holder_is_stale_and_touches_nothing() {
    let host = host();
    let during = interleave(&host, Call::GithubCreateComment, Hit::Nth(1), older());
    let first = host.deliver(&host.message("probot", &newer())).await;
    assert!(is_done(&first), "{:?}", first.result);
    let stale = taken(&during);
    let why = skipped(&stale);
    assert!(why.starts_with("stale request"), "{why}");
    assert!(
        !stale.transcript.iter().any(|e| matches!(
            e.call,
            Call::GithubCreateComment | Call::RuntimeCreate | Call::DynamodbUpdate
        )),
        "{:#?}",
        stale.transcript
    );
    assert_eq!(host.runtime.calls().len(), 1);
}

#[tokio::test]
async fn two_deliveries_of_one_request_never_work_at_once() {
    let host = host();
    let during = interleave(&host, Call::GithubCreateComment, Hit::Nth(1), older());
    let first = host.deliver(&host.message("probot", &older())).await;
    assert!(is_done(&first));
    let twin = taken(&during);
    deferred_until(&twin);
    // The twin wrote nothing, not even `wanted` (it is not newer).
    assert!(
        !twin
            .transcript
            .iter()
            .any(|e| matches!(e.call, Call::DynamodbUpdate | Call::DynamodbTransactWrite)),
        "{:#?}",
        twin.transcript
    );
    // Back after its wait it finds everything done and does nothing on
    // GitHub or at the runtime.
    host.clock.advance(Duration::from_secs(1));
    let later = host.deliver(&host.message("probot", &older())).await;
    assert!(is_done(&later));
    assert!(
        !later
            .transcript
            .iter()
            .any(
                |e| e.call.name().starts_with("github.") && e.call != Call::GithubAuthenticate
                    || e.call == Call::RuntimeCreate
            ),
        "{:#?}",
        later.transcript
    );
    assert_eq!(host.github.comments(REPO, 7).unwrap().len(), 1);
    assert_eq!(host.github.deployments(REPO).unwrap().len(), 1);
    assert_eq!(host.runtime.calls().len(), 1);
}

#[tokio::test]
async fn a_crashed_holders_lease_runs_out_and_what_it_left_is_retired() {
    let host = host();
    // The older request dies after creating its deployment, before it could
    // give it a status, record it or release the lease: every call fails
    // from there on.
    host.faults.inject(
        Call::GithubCreateDeploymentStatus,
        Hit::Nth(1),
        ErrorCode::Unavailable,
        "the host died",
    );
    host.faults.inject(
        Call::DynamodbUpdate,
        Hit::Nth(3),
        ErrorCode::Unavailable,
        "the host died",
    );
    let crashed = host.deliver(&host.message("probot", &older())).await;
    assert!(
        matches!(&crashed.result, Ok(Err(f)) if f.kind == FailureKind::Retryable),
        "{:?}",
        crashed.result
    );
    let left = lease(&host);
    assert_ne!(left["holder"], "", "still held");
    assert_eq!(
        left["pendingDeploymentSha"], SHA_1,
        "its deployment pending"
    );
    assert_eq!(states(&host), [(SHA_1.to_string(), vec![])]);

    // The newer request waits until the lease runs out...
    let waited = host.deliver(&host.message("probot", &newer())).await;
    let until = deferred_until(&waited);
    let expires: u64 = left["expiresAt"].parse().unwrap();
    assert!(until <= expires, "{until} > {expires}");
    assert_eq!(host.runtime.calls().len(), 1, "only the older one's");
    // ...then takes the environment and retires the deployment left behind.
    host.clock
        .advance(Duration::from_millis(LEASE_TTL_MS + 1_000));
    let later = host.deliver(&host.message("probot", &newer())).await;
    assert!(is_done(&later), "{:?}", later.result);
    assert_eq!(
        states(&host),
        [
            (SHA_1.to_string(), vec![DeploymentState::Inactive]),
            (SHA_2.to_string(), vec![DeploymentState::InProgress]),
        ]
    );
    assert_eq!(lease(&host)["pendingDeploymentSha"], "");
}

#[tokio::test]
async fn the_runtime_refuses_a_create_older_than_the_newest_it_accepted() {
    let host = host();
    // The older request's lease runs out just as it calls the runtime, and
    // the newer request takes the environment and completes first.
    let (peer, clock) = (host.clone(), host.clock.clone());
    host.faults.interleave(
        Call::RuntimeCreate,
        Hit::Nth(1),
        Arc::new(move || {
            let (peer, clock) = (peer.clone(), clock.clone());
            Box::pin(async move {
                clock.advance(Duration::from_millis(LEASE_TTL_MS + 1_000));
                let newer = peer.deliver(&peer.message("probot", &newer())).await;
                assert!(matches!(newer.result, Ok(Ok(Outcome::Done(_)))));
            })
        }),
    );
    let first = host.deliver(&host.message("probot", &older())).await;
    let reason = match &first.result {
        Ok(Err(failure)) => {
            assert_eq!(failure.kind, FailureKind::Retryable);
            failure.reason.clone()
        }
        other => panic!("{other:?}"),
    };
    assert!(reason.contains("superseded"), "{reason}");
    // The runtime's last word is the newer request; the record says so too.
    let calls = host.runtime.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(host.runtime.runtimes().unwrap().len(), 1);
    assert!(records(&host).iter().all(|i| attr(i, "sha") == Some(SHA_2)));
    // The older message's next delivery is skipped as stale.
    let retried = host.deliver(&host.message("probot", &older())).await;
    assert!(skipped(&retried).starts_with("stale request"));
}

#[tokio::test]
async fn a_logic_version_built_for_the_previous_contract_still_runs() {
    let (engine, _) = shared_logic();
    let previous = engine
        .load(PREVIOUS_CONTRACT_LOGIC)
        .expect("0.2 logic loads");
    assert_eq!(previous.contract, "0.2.0");
    let host = seeded_host().peer(Arc::new(previous));
    set_secret(&host, APP_ID, "global", "DATABASE_URL", "postgres://db");
    let delivery = host.deliver(&host.message("probot", &older())).await;
    assert!(is_done(&delivery), "{:?}", delivery.result);
    let runtime = &host.runtime.calls()[0];
    assert_eq!(runtime.request_version, version(OLDER_MS, SHA_1));
    assert!(runtime.signing_key.is_none(), "0.2 makes no signing key");
    assert_eq!(records(&host).len(), 3);
}

/// An earlier patch of the current contract (0.3.0, before teardown's
/// additions) links to the current definitions unchanged: no adapter, the
/// same calls, a signing key and all.
#[tokio::test]
async fn a_logic_version_built_for_an_earlier_patch_runs_as_built() {
    let (engine, _) = shared_logic();
    let earlier = engine.load(EARLIER_PATCH_LOGIC).expect("0.3.0 logic loads");
    assert_eq!(earlier.contract, "0.3.0");
    let host = seeded_host().peer(Arc::new(earlier));
    set_secret(&host, APP_ID, "global", "DATABASE_URL", "postgres://db");
    let delivery = host.deliver(&host.message("probot", &older())).await;
    assert!(is_done(&delivery), "{:?}", delivery.result);
    let runtime = &host.runtime.calls()[0];
    assert_eq!(runtime.request_version, version(OLDER_MS, SHA_1));
    assert!(runtime.signing_key.is_some(), "0.3.0 makes a signing key");
    assert_eq!(records(&host).len(), 3);
}

/// A `wanted` mark whose request never came back (it failed for good)
/// lapses: the environment's current request is not stale forever, and a
/// mark without an end (an older logic's) counts only while held.
#[tokio::test]
async fn a_wanted_mark_whose_request_never_comes_back_lapses() {
    let host = host();
    let during = interleave(&host, Call::DynamodbUpdate, Hit::Nth(1), newer());
    let first = host.deliver(&host.message("probot", &older())).await;
    assert!(skipped(&first).contains(&version(NEWER_MS, SHA_2)));
    deferred_until(&taken(&during));
    let marked = lease(&host);
    assert_eq!(marked["wanted"], version(NEWER_MS, SHA_2));
    let until: u64 = marked["wantedUntil"].parse().unwrap();
    assert_eq!(until, host.clock.now_ms() + 2 * LEASE_TTL_MS);
    // The newer request never comes back. While its mark counts the older
    // one is stale; past it the older one's redelivery goes through.
    let stale = host.deliver(&host.message("probot", &older())).await;
    assert!(skipped(&stale).contains("stale"), "{:?}", stale.result);
    host.clock
        .advance(Duration::from_millis(2 * LEASE_TTL_MS + 1));
    let again = host.deliver(&host.message("probot", &older())).await;
    assert!(is_done(&again), "{:?}", again.result);
    assert_eq!(lease(&host)["wanted"], "", "cleared by the next holder");

    // A mark without `wantedUntil`, on a free environment: it counts for
    // nothing.
    let pk = format!("ENVIRONMENT#{}", env_id());
    let mut item = host
        .tables
        .scan("environments")
        .unwrap()
        .into_iter()
        .find(|i| attr(i, "pk") == Some(pk.as_str()) && attr(i, "sk") == Some("LEASE"))
        .unwrap();
    item.retain(|(name, _)| name != "wanted" && name != "wantedUntil");
    item.push(("wanted".into(), AttributeValue::S(version(NEWER_MS, SHA_2))));
    host.tables.put("environments", item).unwrap();
    host.clock.advance(Duration::from_secs(60));
    let redelivered = host.deliver(&host.message("probot", &older())).await;
    assert!(
        !matches!(outcome(&redelivered), Outcome::Skipped(why) if why.contains("stale")),
        "{:?}",
        redelivered.result
    );
}

/// The lease item gone (deleted by hand, or an environment from before
/// leases) while the record is there: the next holder is not the
/// environment's first. It looks on GitHub, keeps the oldest comment and
/// the oldest deployment of its commit, and removes the duplicates left.
#[tokio::test]
async fn a_missing_lease_item_beside_a_record_makes_no_first_holder() {
    use envmgr::capabilities::github::{GitHub as _, NewDeployment, Repository};
    let host = host();
    assert!(is_done(
        &host.deliver(&host.message("probot", &older())).await
    ));
    let repo = Repository {
        owner: "acme".into(),
        name: "shop".into(),
    };
    // What other deliveries left on GitHub: a second comment, a second
    // deployment of the commit.
    let kept_comment = host.github.comments(REPO, 7).unwrap()[0].clone();
    host.github
        .create_comment(INSTALLATION, &repo, 7, &kept_comment.body)
        .await
        .unwrap();
    let kept = host.github.deployments(REPO).unwrap()[0].deployment.clone();
    let duplicate = NewDeployment {
        sha: kept.sha.clone(),
        environment: kept.environment.clone(),
        task: kept.task.clone(),
        payload_json: kept.payload_json.clone(),
        description: "left by another delivery".into(),
        transient_environment: true,
        production_environment: false,
    };
    host.github
        .create_deployment(INSTALLATION, &repo, &duplicate)
        .await
        .unwrap();
    let pk = format!("ENVIRONMENT#{}", env_id());
    let lease_key = vec![
        ("pk".to_string(), AttributeValue::S(pk)),
        ("sk".to_string(), AttributeValue::S("LEASE".into())),
    ];
    host.tables.remove("environments", &lease_key).unwrap();

    // A newer request of the same commit.
    let again = pull_request_event("reopened", 7, "feature/login", SHA_1, NEWER_AT);
    let delivery = host.deliver(&host.message("probot", &again)).await;
    assert!(is_done(&delivery), "{:?}", delivery.result);
    let comments = host.github.comments(REPO, 7).unwrap();
    assert_eq!(comments.len(), 1, "one comment");
    assert_eq!(comments[0].id, kept_comment.id, "the oldest kept");
    let live: Vec<u64> = host
        .github
        .deployments(REPO)
        .unwrap()
        .iter()
        .filter(|d| d.statuses.last().map(|s| s.state) != Some(DeploymentState::Inactive))
        .map(|d| d.deployment.id)
        .collect();
    assert_eq!(live, [kept.id], "one deployment, the oldest");
    assert_eq!(lease(&host)["deploymentHistory"], "partial");
}

/// Two deliveries of one request, the second reading before the first
/// wrote the record and taking the lease after it finished: it never puts
/// the record again (back at `creating`, with a new signing key); it comes
/// back and goes on from the record, handing the runtime the same key.
#[tokio::test]
async fn a_delivery_never_puts_over_the_record_its_twin_wrote() {
    let host = host();
    let twin = interleave(&host, Call::KeysGenerate, Hit::Nth(1), older());
    let second = host.deliver(&host.message("probot", &older())).await;
    assert!(is_done(&taken(&twin)), "the twin went through");
    deferred_until(&second);
    let canonical = |host: &MockHost| {
        records(host)
            .into_iter()
            .find(|i| attr(i, "sk") == Some("#"))
            .unwrap()
    };
    let written = canonical(&host);
    assert_eq!(attr(&written, "status"), Some("runtime-requested"));
    host.clock.advance(Duration::from_secs(2));
    let again = host.deliver(&host.message("probot", &older())).await;
    assert!(
        !matches!(outcome(&again), Outcome::Deferred(_)),
        "{:?}",
        again.result
    );
    let now = canonical(&host);
    assert_eq!(attr(&now, "status"), Some("runtime-requested"));
    assert_eq!(
        attr(&now, "publicKey"),
        attr(&written, "publicKey"),
        "the same key"
    );
    let keys: Vec<String> = host
        .runtime
        .calls()
        .iter()
        .map(|call| call.signing_key.as_ref().unwrap().expose().to_string())
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] == w[1]),
        "one key for every call: {keys:?}"
    );
}
