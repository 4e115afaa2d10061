//! Fixtures shared by the integration tests and benchmarks: a mock host on a
//! shared engine, data seeded in the documented format (docs/data-model.md),
//! and message bodies of both kinds (docs/messages.md).

pub mod architecture;
pub mod corpus;
pub mod encoders;
pub mod fakes;
pub mod markdown;
pub mod moto;
pub mod native;
pub mod process;
pub mod promtool;
pub mod rng;
pub mod stack;
pub mod yardstick;

use std::sync::{Arc, OnceLock};

use envmgr::capabilities::dynamodb::{AttributeValue, Item};
use envmgr::engine::{Engine, Limits, Logic};
use envmgr::mock::{MockHost, default_config, seed};
use serde_json::json;

pub const APP_ID: &str = "app_shop";
pub const APP_NAME: &str = "Shop";
pub const REPO: &str = "acme/shop";
pub const INSTALLATION: u64 = 4242;
pub const SHA_1: &str = "1111111111111111111111111111111111111111";
pub const SHA_2: &str = "2222222222222222222222222222222222222222";

/// The platform-API preview request for `feature/login` at SHA_1, edited.
pub fn api_preview(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut body: serde_json::Value = serde_json::from_str(&api_request(
        "preview",
        "feature/login",
        SHA_1,
        "2026-11-28T11:00:00Z",
    ))
    .expect("api_request is JSON");
    edit(&mut body);
    body.to_string()
}

/// The component built by this test crate's build script from
/// tests/guests/chaos: it traps, loops, or bombs memory on request.
pub const CHAOS_LOGIC: &[u8] = include_bytes!(env!("ENVMGR_CHAOS_WASM"));

/// `envmgr add-app` for the Shop app of docs/examples (acme/shop, its
/// entrypoint `src/server.ts`).
pub const ADD_SHOP_APP: [&str; 9] = [
    "add-app",
    "--id",
    "app_shop",
    "--name",
    "Shop",
    "--repository",
    "acme/shop",
    "--entrypoint",
    "src/server.ts",
];

/// A real component of another world (tests/guests/other-world): it
/// exports a `handle` of another type and links against the host's WASI,
/// so only the world check refuses it.
pub const OTHER_WORLD_LOGIC: &[u8] = include_bytes!(env!("ENVMGR_OTHER_WORLD_WASM"));

/// The lines the chaos guest's `stdio` probe writes to its stdout and
/// stderr (tests/guests/chaos): they must reach no output of the host.
pub const CHAOS_STDOUT_MARKER: &str = "envmgr-chaos-guest-wrote-this-to-stdout";
pub const CHAOS_STDERR_MARKER: &str = "envmgr-chaos-guest-wrote-this-to-stderr";

/// The real logic built with the `fail-on-marker` feature: passes the
/// install self-check, and fails every message naming
/// `envmgr-test-fail` — a canary that must be rolled back.
pub const FAULTY_LOGIC: &[u8] = include_bytes!(env!("ENVMGR_FAULTY_WASM"));

/// The real logic built with the `reworded-comment` feature: the comment's
/// heading reads differently, nothing else changes — a candidate a replay
/// must find different in the comment only.
pub const REWORDED_LOGIC: &[u8] = include_bytes!(env!("ENVMGR_REWORDED_WASM"));

/// The builtin logic as the previous release built it, for contract
/// `envmgr:environments@0.2.0`: a logic version installed before a host
/// upgrade, which the new host must still run.
pub const PREVIOUS_CONTRACT_LOGIC: &[u8] = include_bytes!("../fixtures/logic/envmgr-0.2.0.wasm");

/// The builtin logic as built for `envmgr:environments@0.3.0`, before the
/// teardown's additions (0.3.1): an earlier patch of the current contract,
/// which links to the current definitions as it is.
pub const EARLIER_PATCH_LOGIC: &[u8] = include_bytes!("../fixtures/logic/envmgr-0.3.0.wasm");

/// The smallest component: valid, but exports nothing (the wrong world).
pub const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

/// `component` with a custom section appended: the same behaviour under
/// another sha256 — a second logic version whose comments and records
/// visibly carry its own version.
pub fn variant(component: &[u8], label: &str) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"envmgr-variant";
    let mut payload = Vec::new();
    leb128(name.len(), &mut payload);
    payload.extend_from_slice(name);
    payload.extend_from_slice(label.as_bytes());
    let mut out = component.to_vec();
    out.push(0); // custom section
    leb128(payload.len(), &mut out);
    out.extend(payload);
    out
}

/// One engine and one compiled builtin logic per test binary.
/// An empty scratch directory of this test process under
/// `target/test-stacks` (not created).
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-stacks")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The builtin logic version's id.
pub fn builtin_id() -> String {
    envmgr::support::hex_sha256(envmgr::BUILTIN_LOGIC)
}

pub fn shared_logic() -> (Arc<Engine>, Arc<Logic>) {
    static SHARED: OnceLock<(Arc<Engine>, Arc<Logic>)> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let engine = Arc::new(Engine::new(Limits::default()).expect("engine"));
            let logic = Arc::new(engine.load(envmgr::BUILTIN_LOGIC).expect("builtin logic"));
            (engine, logic)
        })
        .clone()
}

/// A fresh mock host (an empty database in memory, a new clock) running the
/// builtin logic.
pub fn host() -> MockHost {
    let (engine, logic) = shared_logic();
    MockHost::new(engine, logic, default_config())
}

/// A host with the Shop app registered and its GitHub App installed.
pub fn seeded_host() -> MockHost {
    let host = host();
    seed_app(&host, APP_ID, APP_NAME, REPO);
    host.github.add_installation(INSTALLATION);
    host
}

/// The app record and its repository index item.
pub fn seed_app(host: &MockHost, app_id: &str, name: &str, repository: &str) {
    seed::app(host, app_id, name, repository, "src/server.ts");
}

/// A secret encrypted under its documented context.
pub fn set_secret(host: &MockHost, app_id: &str, scope: &str, name: &str, value: &str) {
    seed::secret(host, app_id, scope, name, value);
}

/// Set attributes on the app record, as an admin would (docs/data-model.md,
/// apps table).
pub fn set_app_attributes(host: &MockHost, attributes: Vec<(&str, AttributeValue)>) {
    let pk = format!("APP#{APP_ID}");
    let mut record = host
        .tables
        .scan("apps")
        .unwrap()
        .into_iter()
        .find(|item| attr(item, "pk") == Some(pk.as_str()))
        .expect("the app record");
    for (name, value) in attributes {
        record.retain(|(existing, _)| existing != name);
        record.push((name.to_string(), value));
    }
    host.tables.put("apps", record).expect("the apps table");
}

/// A secret item with any ciphertext (for tampering tests).
pub fn set_secret_ciphertext(
    host: &MockHost,
    app_id: &str,
    scope: &str,
    name: &str,
    ciphertext: Vec<u8>,
) {
    seed::secret_item(host, app_id, scope, name, ciphertext);
}

/// GitHub's `delete` event for `branch` of [`REPO`], as the webhook service
/// wraps it.
pub fn branch_deleted_event(branch: &str) -> String {
    json!({
        "id": format!("e1a2b3c4-0000-11ef-8e3c-{:012}", branch.len()),
        "name": "delete",
        "payload": {
            "ref": branch, "ref_type": "branch", "pusher_type": "user",
            "repository": { "full_name": REPO, "name": "shop", "owner": { "login": "acme" } },
            "installation": { "id": INSTALLATION },
            "sender": { "login": "octocat" },
        },
    })
    .to_string()
}

/// A Probot-shaped `pull_request` webhook event, payload as GitHub sends it
/// (the fields envmgr reads plus a realistic selection of the rest).
pub fn pull_request_event(
    action: &str,
    number: u64,
    branch: &str,
    sha: &str,
    updated_at: &str,
) -> String {
    let (owner, name) = REPO.split_once('/').expect("owner/name");
    let repository = json!({
        "id": 81_234_567,
        "node_id": "R_kgDOBNc2Zw",
        "name": name,
        "full_name": REPO,
        "private": true,
        "owner": { "login": owner, "id": 9_001, "type": "Organization" },
        "html_url": format!("https://github.com/{REPO}"),
        "fork": false,
        "default_branch": "main"
    });
    json!({
        "id": format!("d3f1a2b0-{number:04}-11ef-8e3c-{:012x}", updated_at.len() * 7919 + number as usize),
        "name": "pull_request",
        "payload": {
            "action": action,
            "number": number,
            "pull_request": {
                "url": format!("https://api.github.com/repos/{REPO}/pulls/{number}"),
                "id": 1_900_000_000 + number,
                "number": number,
                "state": "open",
                "locked": false,
                "title": format!("Add login page (#{number})"),
                "user": { "login": "octocat", "id": 583_231, "type": "User" },
                "body": "Adds the login page.",
                "created_at": "2026-11-28T11:00:00Z",
                "updated_at": updated_at,
                "draft": false,
                "head": {
                    "label": format!("{owner}:{branch}"),
                    "ref": branch,
                    "sha": sha,
                    "user": { "login": owner, "id": 9_001 },
                    "repo": repository.clone()
                },
                "base": {
                    "label": format!("{owner}:main"),
                    "ref": "main",
                    "sha": "0000000000000000000000000000000000000000",
                    "user": { "login": owner, "id": 9_001 },
                    "repo": repository.clone()
                },
                "author_association": "MEMBER"
            },
            "repository": repository,
            "organization": { "login": owner, "id": 9_001 },
            "sender": { "login": "octocat", "id": 583_231, "type": "User" },
            "installation": { "id": INSTALLATION, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI0Mg==" }
        }
    })
    .to_string()
}

/// A platform-API create request.
pub fn api_request(environment_type: &str, branch: &str, sha: &str, requested_at: &str) -> String {
    json!({
        "version": 1,
        "kind": "create-environment",
        "appId": APP_ID,
        "environmentType": environment_type,
        "repository": REPO,
        "branch": branch,
        "sha": sha,
        "installationId": INSTALLATION,
        "requester": "user_123",
        "requestedAt": requested_at
    })
    .to_string()
}

/// The environment record items in the mock host's table, in key order
/// (every item but the environments' lease items).
pub fn records(host: &MockHost) -> Vec<Item> {
    host.tables
        .scan("environments")
        .unwrap()
        .into_iter()
        .filter(|item| attr(item, "entity") == Some("environment"))
        .collect()
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `GET path` on a loopback port (the admin endpoint): the whole answer.
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("admin endpoint");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// What a delivery that took the environment's lease and crashed leaves:
/// the lease item, expired, its holder about to make a deployment of `sha`
/// (and maybe a comment) it never recorded.
pub fn a_crashed_holder_left(host: &MockHost, branch: &str, pending_sha: &str) {
    let env_id = envmgr_guest::environment::environment_id(APP_ID, branch);
    let text = |name: &str, value: &str| {
        (
            name.to_string(),
            envmgr::capabilities::dynamodb::AttributeValue::S(value.into()),
        )
    };
    let number = |name: &str, value: u64| {
        (
            name.to_string(),
            envmgr::capabilities::dynamodb::AttributeValue::N(value.to_string()),
        )
    };
    host.tables
        .put(
            "environments",
            vec![
                text("pk", &format!("ENVIRONMENT#{env_id}")),
                text("sk", "LEASE"),
                text("entity", "lease"),
                text("holder", "crashed-delivery"),
                text("holderVersion", "0000000000000#x"),
                number("expiresAt", 1),
                number("renewedAt", 0),
                text("leaseRev", "crashed-delivery.3"),
                text("wanted", ""),
                number("commentId", 0),
                text("commentUrl", ""),
                text("commentDigest", ""),
                number("deploymentId", 0),
                text("deploymentSha", ""),
                text("deploymentStatus", ""),
                text("pendingDeploymentSha", pending_sha),
            ],
        )
        .expect("the environments table");
}

/// The string attribute `name` of an item.
pub fn attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.iter().find_map(|(n, v)| match v {
        AttributeValue::S(s) if n == name => Some(s.as_str()),
        AttributeValue::N(s) if n == name => Some(s.as_str()),
        _ => None,
    })
}

/// The guest's view of a host message, for running the flow natively.
pub fn guest_message(message: &envmgr::Message) -> envmgr_guest::Message {
    envmgr_guest::Message {
        id: message.id.clone(),
        source_queue: message.source_queue.clone(),
        body: message.body.clone(),
        attributes: message.attributes.clone(),
        receive_count: message.receive_count,
        sent_at_ms: message.sent_at_ms,
        delivery_token: message.delivery_token.clone(),
        deferrals: message.deferrals,
    }
}

/// Each scenario — an `async fn(Backend)` in the calling test file — as a
/// test on each backend: `aws::<scenario>` on moto, `local::<scenario>` on
/// the database file.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod aws {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $scenario() {
                    super::$scenario($crate::stack::Backend::Aws).await
                }
            )*
        }
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $scenario() {
                    super::$scenario($crate::stack::Backend::Local).await
                }
            )*
        }
    };
}
