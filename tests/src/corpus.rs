//! The generator of the baseline corpus (tests/corpus.rs,
//! tests/corpus/README.md): one message of every kind the tests know,
//! through `envmgr serve` on a whole stack, each waited for until its
//! recordings are stored, and the recordings as the table holds them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use envmgr::capabilities::dynamodb::local::LocalTables;
use envmgr::capabilities::dynamodb::{AttributeValue, Condition, Item, PutItem, Tables, Write};
use serde_json::{Value, json};

use crate::fakes::github::{Failure, Route};
use crate::stack::{Backend, Options, Stack, example};
use crate::{SHA_1, SHA_2, pull_request_event};

/// The secrets the generator seeds: no recording may hold them.
pub const DATABASE_URL: &str = "postgres://shop:corpus-canary-db@db/shop";
pub const STRIPE_KEY: &str = "sk_corpus_canary_stripe";
pub const BLOG_TOKEN: &str = "blog-corpus-canary-token";

/// The kinds, in the order they are made; a kind handled more than once
/// (retried, deferred) has a file per delivery, numbered.
pub const KINDS: [&str; 47] = [
    "pr-opened",
    "report-ready",
    "report-ready-again",
    "pr-opened-again",
    "pr-synchronize",
    "report-failed",
    "pr-opened-stale",
    "report-stale",
    "report-forged",
    "report-not-a-jws",
    "report-unknown-environment",
    "pr-reopened",
    "pr-ready-for-review",
    "pr-closed",
    "pr-edited",
    "event-push",
    "pr-fork",
    "pr-untrusted-author",
    "pr-no-installation",
    "pr-malformed",
    "pr-field-too-long",
    "pr-unknown-repository",
    "body-not-json",
    "body-not-an-object",
    "body-unknown-kind",
    "pr-comment-throttled-1",
    "pr-comment-throttled-2",
    "pr-runtime-unavailable-1",
    "pr-runtime-unavailable-2",
    "pr-runtime-refused",
    "pr-deployment-denied",
    "pr-newer-while-working-1",
    "pr-newer-while-working-2",
    "pr-newer-while-working-3",
    "api-production",
    "api-preview-pull-request",
    "api-unknown-field",
    "api-version-2",
    "api-unknown-environment-type",
    "api-repository-mismatch",
    "api-unknown-app",
    "api-not-installed",
    "api-duplicate-field",
    "api-secret-does-not-decrypt",
    "api-production-again",
    "api-production-stale",
    "pr-after-a-crash",
];

const WAIT: Duration = Duration::from_secs(120);

/// One backend's corpus: (file name, the recording as the table stores
/// it: gzip'd JSON), and what the stack held that no recording may
/// (tokens, private keys).
pub struct Made {
    pub files: Vec<(String, Vec<u8>)>,
    pub never_recorded: Vec<String>,
}

struct Generator {
    stack: Stack,
    recordings: Arc<dyn Tables>,
    /// The stored recordings already named, by key.
    named: BTreeSet<String>,
    files: Vec<(String, Vec<u8>)>,
    /// Status reports the Runtime Service made, not sent yet.
    reports: Arc<Mutex<Vec<String>>>,
}

impl Generator {
    /// Every stored recording, by key (`{handled ms}#{id}#{receive count}`,
    /// in handled order), as the table holds it: gzip'd JSON.
    async fn stored(&self) -> BTreeMap<String, Vec<u8>> {
        let items = self.recordings.scan_all("recordings").await.unwrap();
        let mut chunks: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for item in &items {
            let text = |name| envmgr::capabilities::dynamodb::fields::text(item, name);
            if !text("pk").is_some_and(|pk| pk.starts_with("REC#")) {
                continue;
            }
            let sk = text("sk").unwrap();
            let (base, chunk) = sk.rsplit_once('#').unwrap();
            let data = item.iter().find_map(|(name, value)| match value {
                AttributeValue::B(bytes) if name == "data" => Some(bytes.clone()),
                _ => None,
            });
            chunks
                .entry(base.to_string())
                .or_default()
                .insert(chunk.to_string(), data.unwrap());
            let count = envmgr::capabilities::dynamodb::fields::number(item, "chunks").unwrap();
            counts.insert(base.to_string(), count);
        }
        chunks
            .into_iter()
            .filter(|(base, parts)| counts[base] as usize == parts.len())
            .map(|(base, parts)| (base, parts.into_values().flatten().collect()))
            .collect()
    }

    async fn idle(&self) -> bool {
        let mut idle = true;
        for queue in ["probot", "api"] {
            idle &= self.stack.messages_in(&self.stack.queue_name(queue)).await == 0;
        }
        idle
    }

    /// Wait until the messages sent are handled and their recordings
    /// stored, one a delivery, ending as `endings` say (in any order);
    /// name them `kind` (numbered when more than one), in handled order.
    async fn expect(&mut self, kind: &str, endings: &[&str]) {
        let started = Instant::now();
        let new = loop {
            let new: Vec<(String, Vec<u8>)> = self
                .stored()
                .await
                .into_iter()
                .filter(|(base, _)| !self.named.contains(base))
                .collect();
            if new.len() >= endings.len() && self.idle().await {
                break new;
            }
            assert!(
                started.elapsed() < WAIT,
                "{kind}: {} of {} recordings after {WAIT:?}",
                new.len(),
                endings.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let outcomes: Vec<String> = new
            .iter()
            .map(|(_, packed)| envmgr::record::store::unpack(packed).unwrap().outcome)
            .collect();
        let mut left: Vec<&str> = endings.to_vec();
        for outcome in &outcomes {
            let Some(at) = left.iter().position(|how| outcome.starts_with(how)) else {
                panic!("{kind}: ended otherwise than {endings:?}: {outcomes:#?}");
            };
            left.remove(at);
        }
        assert!(left.is_empty(), "{kind}: {outcomes:#?}");
        for (i, (base, packed)) in new.into_iter().enumerate() {
            let name = match endings.len() {
                1 => kind.to_string(),
                _ => format!("{kind}-{}", i + 1),
            };
            self.files.push((
                format!("{:02}-{name}.json.gz", self.files.len() + 1),
                packed,
            ));
            self.named.insert(base);
        }
    }

    async fn send(&mut self, queue: &str, body: &str, kind: &str, endings: &[&str]) {
        self.stack.send(queue, body);
        self.expect(kind, endings).await;
    }

    /// The Runtime Service's reports from now on say `state`.
    fn reporting(&self, state: &str) {
        let reports = self.reports.clone();
        self.stack.runtime.report(
            Duration::ZERO,
            state,
            Arc::new(move |body, _traceparent| reports.lock().unwrap().push(body)),
        );
    }

    /// The newest report the Runtime Service made, once it has made `n`.
    async fn report(&self, n: usize) -> String {
        crate::stack::eventually("a status report", WAIT, || async {
            self.reports.lock().unwrap().len() >= n
        })
        .await;
        self.reports.lock().unwrap()[n - 1].clone()
    }
}

/// `pull_request_event` of another repository of acme.
fn event_of(repository: &str, action: &str, number: u64, sha: &str, at: &str) -> String {
    pull_request_event(action, number, "feature/login", sha, at)
        .replace("acme/shop", &format!("acme/{repository}"))
        .replace("\"name\":\"shop\"", &format!("\"name\":\"{repository}\""))
}

fn edited(body: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut value: Value = serde_json::from_str(body).unwrap();
    edit(&mut value);
    value.to_string()
}

fn envelope(report: &str) -> String {
    json!({"version": 1, "kind": "runtime-status", "report": report}).to_string()
}

/// A report signed with a key of no environment.
fn forged(environment: &str, version: &str) -> String {
    let key = envmgr::capabilities::keys::KeyPair::from_seed(&[5; 32]).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "sub": environment, "ver": version, "state": "ready",
        "url": format!("https://{environment}.preview.test"),
        "iat": now, "exp": now + 300, "jti": "forged", "seq": 7,
    });
    envelope(&envmgr::capabilities::keys::sign_report(key.private_jwk.expose(), &claims).unwrap())
}

/// The stack: the Shop app and its secrets (docs/examples), Blog (acme/blog)
/// trusting octocat only, Vault (acme/vault) whose secret does not decrypt.
async fn stack(backend: Backend, binary: &str) -> Generator {
    let stack = Stack::new(
        "corpus",
        binary,
        Options {
            backend,
            ..Options::default()
        },
    );
    stack.seed_shop(DATABASE_URL, STRIPE_KEY);
    let words = |command: &'static str| command.split(' ').collect::<Vec<_>>();
    stack.ok(&words(
        "add-app --id app_blog --name Blog --repository acme/blog --trusted-author octocat",
    ));
    let set_secret = words("set-secret --app app_blog --scope global --name API_TOKEN");
    stack.ok_with_input(&set_secret, BLOG_TOKEN);
    stack.ok(&words(
        "add-app --id app_vault --name Vault --repository acme/vault",
    ));
    let item: Item = envmgr::catalog::secret_item("app_vault", "global", "VAULT_KEY", vec![7; 180]);
    stack
        .tables()
        .await
        .transact_write(&[Write::Put(PutItem {
            table: "secrets".into(),
            item,
            condition: Condition::None,
        })])
        .await
        .unwrap();
    for number in 7..=20 {
        stack.github.add_pull_request(crate::REPO, number);
    }
    for repository in ["acme/blog", "acme/vault"] {
        stack.github.add_pull_request(repository, 3);
        stack.github.add_commit(repository, SHA_1);
    }
    let physical = format!("{}-recordings", stack.prefix);
    let mapping = [("recordings", physical.as_str())];
    let recordings: Arc<dyn Tables> = match backend {
        // A database file of their own beside the main one.
        Backend::Local => Arc::new(LocalTables::new(
            envmgr::local::Store::open(
                &stack
                    .dir
                    .join("data")
                    .join(envmgr::platform::RECORDINGS_FILE),
            )
            .unwrap(),
            mapping,
        )),
        Backend::Aws => Arc::new(envmgr::capabilities::dynamodb::aws::AwsTables::new(
            &stack.sdk().await,
            mapping,
        )),
    };
    Generator {
        stack,
        recordings,
        named: BTreeSet::new(),
        files: Vec::new(),
        reports: Arc::default(),
    }
}

const DONE: &[&str] = &["done: "];
const SKIPPED: &[&str] = &["skipped: "];
const PERMANENT: &[&str] = &["permanent failure: "];
const RETRIED: &[&str] = &["retryable failure: ", "done: "];

/// Pull request `number` of acme/shop opened on `branch` at SHA_1.
fn opened_at(number: u64, branch: &str) -> String {
    pull_request_event("opened", number, branch, SHA_1, "2026-11-28T11:00:00Z")
}

/// Every kind of [`KINDS`] through `binary` (`envmgr serve`) on `backend`.
pub async fn generate(backend: Backend, binary: &str) -> Made {
    let mut g = stack(backend, binary).await;
    g.reporting("ready");
    let mut daemon = g.stack.serve();
    g.a_pull_requests_life().await;
    g.events().await;
    g.refused_bodies().await;
    g.dependencies_failing().await;
    g.newer_while_working().await;
    g.platform_api().await;
    let mut daemon = g.after_a_crash(&mut daemon).await;
    assert!(crate::stack::terminate(&mut daemon).success());

    let named: Vec<&str> = g
        .files
        .iter()
        .map(|(name, _)| name[3..].trim_end_matches(".json.gz"))
        .collect();
    assert_eq!(named, KINDS);
    let mut never_recorded = g.stack.github.tokens();
    for (_, request) in g.stack.runtime.requests() {
        if let Some(d) = request["signingKey"]["d"].as_str() {
            never_recorded.push(d.to_string());
        }
    }
    Made {
        files: g.files,
        never_recorded,
    }
}

impl Generator {
    /// A pull request opened, redelivered, pushed to, reopened, and the
    /// Runtime Service's reports on it: applied, again, stale, forged.
    async fn a_pull_requests_life(&mut self) {
        let opened = example("pull-request-opened.json");
        let synchronize = example("pull-request-synchronize.json");
        self.send("probot", &opened, "pr-opened", DONE).await;
        let ready = self.report(1).await;
        self.send("api", &ready, "report-ready", DONE).await;
        self.send("api", &ready, "report-ready-again", SKIPPED)
            .await;
        self.send("probot", &opened, "pr-opened-again", DONE).await;
        self.reporting("failed");
        self.send("probot", &synchronize, "pr-synchronize", DONE)
            .await;
        let failed = self.report(2).await;
        self.send("api", &failed, "report-failed", DONE).await;
        self.send("probot", &opened, "pr-opened-stale", SKIPPED)
            .await;
        self.send("api", &ready, "report-stale", SKIPPED).await;
        let (_, request) = self.stack.runtime.requests().last().unwrap().clone();
        let environment = request["environmentId"].as_str().unwrap();
        let version = request["requestVersion"].as_str().unwrap();
        let report = forged(environment, version);
        self.send("api", &report, "report-forged", PERMANENT).await;
        let report = envelope("not-a-jws");
        self.send("api", &report, "report-not-a-jws", PERMANENT)
            .await;
        let report = forged("env_00000000000000000000", version);
        let kind = "report-unknown-environment";
        self.send("api", &report, kind, PERMANENT).await;
        let sha = crate::stack::EXAMPLE_COMMITS[1];
        let reopened =
            pull_request_event("reopened", 7, "feature/login", sha, "2026-11-28T12:00:00Z");
        self.send("probot", &reopened, "pr-reopened", DONE).await;
    }

    /// Events that deploy otherwise, or not at all.
    async fn events(&mut self) {
        let opened = example("pull-request-opened.json");
        let sha = crate::stack::EXAMPLE_COMMITS[1];
        let review = pull_request_event(
            "ready_for_review",
            8,
            "feature/review",
            SHA_1,
            "2026-11-28T11:00:00Z",
        );
        self.send("probot", &review, "pr-ready-for-review", DONE)
            .await;
        let closed = pull_request_event("closed", 7, "feature/login", sha, "2026-11-28T12:30:00Z");
        self.send("probot", &closed, "pr-closed", SKIPPED).await;
        let edit = pull_request_event("edited", 7, "feature/login", sha, "2026-11-28T12:31:00Z");
        self.send("probot", &edit, "pr-edited", SKIPPED).await;
        let push = edited(&opened, |e| e["name"] = "push".into());
        self.send("probot", &push, "event-push", SKIPPED).await;
        let fork = edited(&opened_at(9, "main"), |e| {
            let pull_request = &mut e["payload"]["pull_request"];
            pull_request["user"]["login"] = "mallory".into();
            pull_request["head"]["repo"]["full_name"] = "mallory/shop".into();
            pull_request["head"]["repo"]["owner"]["login"] = "mallory".into();
        });
        self.send("probot", &fork, "pr-fork", DONE).await;
        let untrusted = edited(
            &event_of("blog", "opened", 3, SHA_1, "2026-11-28T11:00:00Z"),
            |e| e["payload"]["pull_request"]["user"]["login"] = "mallory".into(),
        );
        self.send("probot", &untrusted, "pr-untrusted-author", DONE)
            .await;
    }

    async fn refused_bodies(&mut self) {
        let opened = example("pull-request-opened.json");
        let refused = [
            (
                "pr-no-installation",
                edited(&opened, |e| {
                    e["payload"].as_object_mut().unwrap().remove("installation");
                }),
            ),
            (
                "pr-malformed",
                edited(&opened, |e| {
                    let head = &mut e["payload"]["pull_request"]["head"];
                    head.as_object_mut().unwrap().remove("sha");
                }),
            ),
            (
                "pr-field-too-long",
                edited(&opened, |e| {
                    e["payload"]["sender"]["login"] = "l".repeat(300).into()
                }),
            ),
            (
                "pr-unknown-repository",
                event_of("unknown", "opened", 3, SHA_1, "2026-11-28T11:00:00Z"),
            ),
            ("body-not-json", "xyz".to_string()),
            ("body-not-an-object", "[1, 2, 3]".to_string()),
            ("body-unknown-kind", "{\"hello\": \"world\"}".to_string()),
        ];
        for (kind, body) in &refused {
            self.send("probot", body, kind, PERMANENT).await;
        }
    }

    /// GitHub and the Runtime Service failing: retried, refused, gone
    /// without.
    async fn dependencies_failing(&mut self) {
        // Longer than `github.max_wait_ms`: the message waits, not the call.
        let throttled = Failure::SecondaryRateLimit {
            retry_after_seconds: 3,
        };
        let github = &self.stack.github;
        github.fail_next(Route::CreateComment, 1, throttled);
        let body = opened_at(12, "feature/throttled");
        self.send("probot", &body, "pr-comment-throttled", RETRIED)
            .await;
        self.stack.runtime.fail_next(1);
        let body = opened_at(13, "feature/unavailable");
        self.send("probot", &body, "pr-runtime-unavailable", RETRIED)
            .await;
        let why = "entrypoint src/server.ts does not exist at this commit";
        self.stack.runtime.reject_next(422, why);
        let body = opened_at(14, "feature/refused");
        self.send("probot", &body, "pr-runtime-refused", PERMANENT)
            .await;
        let github = &self.stack.github;
        github.fail_next(Route::CreateDeployment, 1, Failure::Status(403));
        let body = opened_at(15, "feature/no-deployment");
        self.send("probot", &body, "pr-deployment-denied", DONE)
            .await;
    }

    /// Pull request `number` opened on `branch`, once it waits for the
    /// Runtime Service's answer (held until released).
    async fn held_at_the_runtime(&self, number: u64, branch: &str) {
        self.stack.runtime.hold();
        let asked = self.stack.runtime.requests().len();
        self.stack.send("probot", &opened_at(number, branch));
        crate::stack::eventually("the runtime call under way", WAIT, || async {
            self.stack.runtime.requests().len() > asked
        })
        .await;
    }

    /// A newer request while an older one works: deferred; then the older
    /// one stops for it, and the newer one goes on.
    async fn newer_while_working(&mut self) {
        self.held_at_the_runtime(16, "feature/busy").await;
        let newer = pull_request_event(
            "synchronize",
            16,
            "feature/busy",
            SHA_2,
            "2026-11-28T11:30:00Z",
        );
        self.stack.send("probot", &newer);
        let started = Instant::now();
        while !self.stored().await.values().any(|packed| {
            let recording = envmgr::record::store::unpack(packed).unwrap();
            recording.outcome.starts_with("deferred: ")
        }) {
            assert!(started.elapsed() < WAIT, "the newer request never deferred");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stack.runtime.release();
        let endings = &["deferred: ", "skipped: ", "done: "];
        self.expect("pr-newer-while-working", endings).await;
    }

    async fn platform_api(&mut self) {
        let production = example("api-production.json");
        self.send("api", &production, "api-production", DONE).await;
        let preview = edited(&production, |r| {
            r["environmentType"] = "preview".into();
            r["branch"] = "feature/api".into();
            r["sha"] = SHA_2.into();
            r["pullRequest"] = json!({"number": 17, "title": "Add the API"});
            r["entrypoint"] = "src/api.ts".into();
        });
        self.send("api", &preview, "api-preview-pull-request", DONE)
            .await;
        let with = |field: &str, value: Value| edited(&production, |r| r[field] = value);
        let refused = [
            ("api-unknown-field", with("colour", "blue".into())),
            ("api-version-2", with("version", 2.into())),
            (
                "api-unknown-environment-type",
                with("environmentType", "staging".into()),
            ),
            (
                "api-repository-mismatch",
                with("repository", "acme/other".into()),
            ),
            ("api-unknown-app", with("appId", "app_nope".into())),
            ("api-not-installed", with("installationId", 999_999.into())),
            (
                "api-duplicate-field",
                production.replacen("\"kind\"", "\"kind\": \"create-environment\", \"kind\"", 1),
            ),
            (
                "api-secret-does-not-decrypt",
                edited(&production, |r| {
                    r["appId"] = "app_vault".into();
                    r["repository"] = "acme/vault".into();
                    r["sha"] = SHA_1.into();
                }),
            ),
        ];
        for (kind, body) in &refused {
            self.send("api", body, kind, PERMANENT).await;
        }
        self.send("api", &production, "api-production-again", DONE)
            .await;
        let older = with("requestedAt", "2026-11-28T10:00:00Z".into());
        self.send("api", &older, "api-production-stale", SKIPPED)
            .await;
    }

    /// `serve` killed at the runtime call, its lease left behind: the next
    /// delivery, once the lease ran out, finds what it made. The `serve`
    /// that handled it.
    async fn after_a_crash(&mut self, daemon: &mut std::process::Child) -> std::process::Child {
        self.held_at_the_runtime(18, "feature/crash").await;
        daemon.kill().unwrap();
        daemon.wait().unwrap();
        self.stack.runtime.release();
        // Past the lease (the deadline and a second) and the clock skew
        // allowed: the next delivery takes it over rather than waiting.
        tokio::time::sleep(Duration::from_secs(8)).await;
        let daemon = self.stack.serve();
        self.expect("pr-after-a-crash", DONE).await;
        daemon
    }
}
