//! The environment record: its stable id, its three items, and the
//! conditional writes that make a redelivery harmless and a stale request lose.
//! docs/data-model.md describes the items for people and other tools.

use sha2::{Digest, Sha256};

use crate::apps::App;
use crate::capabilities::{Condition, Item, PutItem, Update, Value, Write};
use crate::item::{b, get_b, get_s, get_u64, key, n, s};
use crate::request::{CreateRequest, EnvironmentType};
use crate::trust::{self, Withheld};

/// Logical table name; the host maps it to a physical table.
pub const TABLE: &str = "environments";

/// Status right after the record is written.
pub const STATUS_CREATING: &str = "creating";
/// Status once the Runtime Service accepted the create call.
pub const STATUS_RUNTIME_REQUESTED: &str = "runtime-requested";
/// Status when the request failed permanently after the record was written,
/// or the runtime reported that it failed.
pub const STATUS_FAILED: &str = "failed";
/// Status once the runtime reported the environment up.
pub const STATUS_READY: &str = "ready";
/// Status while a delete works on the environment (`flow/teardown.rs`).
pub const STATUS_DELETING: &str = "deleting";
/// Status of a tombstone: the environment ended; its items expire at
/// `purgeAt`.
pub const STATUS_DELETED: &str = "deleted";

mod teardown;

/// One environment at one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Environment {
    pub id: String,
    pub app_id: String,
    pub environment_type: EnvironmentType,
    pub repository: String,
    pub branch: String,
    pub sha: String,
    pub entrypoint: String,
    pub pull_request: Option<u64>,
    /// The GitHub App installation the request came through (kept so a
    /// status report can show itself on the pull request).
    pub installation_id: u64,
    pub requested_at_ms: u64,
    /// Orders requests for this environment: `{requestedAt:013}#{sha}`. A
    /// write only applies when the stored version is absent or not newer, so
    /// a redelivery (same version) rewrites the same record and an older
    /// request never overwrites a newer one.
    pub request_version: String,
    /// Why the runtime gets neither the app's secrets nor a GitHub token;
    /// empty when it gets both.
    pub secrets_withheld: Vec<Withheld>,
    /// The logic version writing the record (config `logic-version`), so
    /// an operator can tell which version made an environment.
    pub logic_version: Option<String>,
    /// Secret items of the app skipped for breaking the rules, and why.
    pub secrets_skipped: Vec<String>,
    /// The request's signing key as stored (the canonical item only): the
    /// runtime's status reports are verified with its public half.
    pub signing_key: Option<StoredKey>,
}

/// A request's signing key as the record keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredKey {
    /// The public key, a JWK (`publicKey`).
    pub public_jwk: String,
    /// The private key as KMS encrypted it (`signingKeyCiphertext`).
    pub ciphertext: Vec<u8>,
}

impl Environment {
    pub fn new(app: &App, request: &CreateRequest, secrets_withheld: Vec<Withheld>) -> Self {
        Self {
            id: environment_id(&app.id, &request.branch),
            app_id: app.id.clone(),
            environment_type: request.environment_type,
            repository: request.repository.to_string(),
            branch: request.branch.clone(),
            sha: request.sha.clone(),
            entrypoint: request
                .entrypoint
                .clone()
                .unwrap_or_else(|| app.entrypoint.clone()),
            pull_request: request.pull_request.as_ref().map(|p| p.number),
            installation_id: request.installation_id,
            requested_at_ms: request.requested_at_ms,
            request_version: format!("{:013}#{}", request.requested_at_ms, request.sha),
            secrets_withheld,
            logic_version: None,
            secrets_skipped: Vec::new(),
            signing_key: None,
        }
    }

    /// The same key for every delivery of the same request: the Runtime
    /// Service creates one runtime per key, Segment counts one event per key.
    pub fn idempotency_key(&self) -> String {
        hex_digest(&[&self.id, &self.request_version], 32)
    }

    /// The three keys the environment is stored under.
    pub fn keys(&self) -> [Item; 3] {
        [
            key(format!("ENVIRONMENT#{}", self.id), "#".to_string()),
            key(
                format!("APP#{}", self.app_id),
                format!("ENVIRONMENT#{}", self.id),
            ),
            key(
                format!("APP#{}", self.app_id),
                format!("BRANCH#{}", self.branch),
            ),
        ]
    }

    /// The three near-identical items, put only if not stale; the canonical
    /// one also holds the signing key. It is put only over the record as it
    /// was read (`seen`: the version it held, None when absent): a record
    /// another delivery of this very request wrote since is never put again
    /// (with another signing key, back at `creating`); the index items,
    /// only if not newer.
    pub fn writes(&self, status: &str, updated_at_ms: u64, seen: Option<&str>) -> Vec<Write> {
        self.keys()
            .into_iter()
            .enumerate()
            .map(|(index, key)| {
                let mut item = key;
                item.extend(self.attributes(status, updated_at_ms));
                let condition = match (index, seen) {
                    (0, None) => Condition::ItemAbsent,
                    (0, Some(version)) => crate::capabilities::equals(
                        "requestVersion".to_string(),
                        Value::S(version.to_string()),
                    ),
                    _ => crate::capabilities::absent_or_at_most(
                        "requestVersion".to_string(),
                        Value::S(self.request_version.clone()),
                    ),
                };
                if index == 0 {
                    item.extend(self.key_attributes());
                }
                Write::Put(PutItem {
                    table: TABLE.to_string(),
                    item,
                    condition,
                })
            })
            .collect()
    }

    /// Record the runtime on all three items, unless a newer request has
    /// taken the environment over in the meantime.
    /// With what the runtime reported already, if it did.
    pub fn runtime_requested(
        &self,
        runtime_id: &str,
        url: Option<&str>,
        report: Option<&crate::report::Report>,
        updated_at_ms: u64,
    ) -> Vec<Write> {
        let mut set = vec![
            s("status", STATUS_RUNTIME_REQUESTED),
            s("runtimeId", runtime_id),
            n("updatedAt", updated_at_ms),
        ];
        if let Some(url) = url {
            set.push(s("url", url));
        }
        if let Some(report) = report {
            // One update of each item: what the report sets replaces.
            let reported = report_attributes(report);
            set.retain(|(name, _)| !reported.iter().any(|(r, _)| r == name));
            set.extend(reported);
        }
        self.status_update(set)
    }

    /// Mark the request failed with the reason a person can act on, unless a
    /// newer request has taken the environment over.
    pub fn failed(&self, reason: &str, updated_at_ms: u64) -> Vec<Write> {
        self.status_update(vec![
            s("status", STATUS_FAILED),
            s("failureReason", reason),
            n("updatedAt", updated_at_ms),
        ])
    }

    /// The environment as its canonical item holds it (None when the item
    /// is not one envmgr wrote).
    pub fn read(item: &Item) -> Option<Self> {
        let text = |name| get_s(item, name).map(str::to_string);
        let environment_type = match get_s(item, "environmentType")? {
            "preview" => EnvironmentType::Preview,
            "production" => EnvironmentType::Production,
            _ => return None,
        };
        let signing_key = match (text("publicKey"), get_b(item, "signingKeyCiphertext")) {
            (Some(public_jwk), Some(ciphertext)) => Some(StoredKey {
                public_jwk,
                ciphertext: ciphertext.to_vec(),
            }),
            _ => None,
        };
        Some(Self {
            id: text("environmentId")?,
            app_id: text("appId")?,
            environment_type,
            repository: text("repository")?,
            branch: text("branch")?,
            sha: text("sha")?,
            entrypoint: text("entrypoint").unwrap_or_default(),
            pull_request: get_u64(item, "pullRequest"),
            installation_id: get_u64(item, "installationId").unwrap_or(0),
            requested_at_ms: get_u64(item, "requestedAt").unwrap_or(0),
            request_version: text("requestVersion")?,
            secrets_withheld: trust::from_codes(
                get_s(item, "secretsWithheld").unwrap_or(""),
                get_s(item, "untrustedAuthor"),
            ),
            logic_version: text("logicVersion"),
            secrets_skipped: Vec::new(),
            signing_key,
        })
    }

    /// Record what the runtime reported on all three items, unless a newer
    /// request has taken the environment over.
    pub fn reported(&self, report: &crate::report::Report, updated_at_ms: u64) -> Vec<Write> {
        let mut set = report_attributes(report);
        set.push(n("updatedAt", updated_at_ms));
        self.status_update(set)
    }

    /// Store the signing key on the canonical item of a record already at
    /// this request (written by a logic version that made none).
    pub fn signing_key_update(&self) -> Option<Write> {
        let set = self.key_attributes();
        (!set.is_empty()).then(|| {
            let [canonical, ..] = self.keys();
            Write::Update(Update {
                table: TABLE.to_string(),
                key: canonical,
                set,
                condition: crate::capabilities::equals(
                    "requestVersion".to_string(),
                    Value::S(self.request_version.clone()),
                ),
            })
        })
    }

    fn key_attributes(&self) -> Item {
        match &self.signing_key {
            Some(key) => vec![
                s("publicKey", &key.public_jwk),
                b("signingKeyCiphertext", &key.ciphertext),
            ],
            None => Vec::new(),
        }
    }

    fn status_update(&self, mut set: Item) -> Vec<Write> {
        // A status that is not `failed` drops what an earlier failure of
        // this request wrote: NULL, since the contract's update only sets
        // (docs/data-model.md).
        let failed = set
            .iter()
            .any(|(name, value)| name == "status" && *value == Value::S(STATUS_FAILED.into()));
        if !failed {
            for name in FAILURE_ATTRIBUTES {
                if !set.iter().any(|(set_name, _)| set_name == name) {
                    set.push((name.to_string(), Value::Null));
                }
            }
        }
        self.updates_at(&self.request_version, set)
    }

    fn attributes(&self, status: &str, updated_at_ms: u64) -> Item {
        let mut item = vec![
            s("entity", "environment"),
            s("environmentId", &self.id),
            s("appId", &self.app_id),
            s("environmentType", self.environment_type.as_str()),
            s("repository", &self.repository),
            s("branch", &self.branch),
            s("sha", &self.sha),
            s("entrypoint", &self.entrypoint),
            s("status", status),
            s("requestVersion", &self.request_version),
            n("requestedAt", self.requested_at_ms),
            n("updatedAt", updated_at_ms),
        ];
        if let Some(number) = self.pull_request {
            item.push(n("pullRequest", number));
        }
        if self.installation_id != 0 {
            item.push(n("installationId", self.installation_id));
        }
        if !self.secrets_withheld.is_empty() {
            // For operators: why this runtime has no secrets and no token.
            item.push(s("secretsWithheld", &trust::codes(&self.secrets_withheld)));
            for reason in &self.secrets_withheld {
                if let Withheld::UntrustedAuthor(Some(login)) = reason {
                    item.push(s("untrustedAuthor", login));
                }
            }
        }
        if let Some(version) = &self.logic_version {
            item.push(s("logicVersion", version));
        }
        if !self.secrets_skipped.is_empty() {
            // For operators: which stored secrets the runtime did not get.
            let note: String = self
                .secrets_skipped
                .join("; ")
                .chars()
                .take(2_000)
                .collect();
            item.push(s("secretsSkipped", &note));
        }
        item
    }
}

/// What a failure of a request sets, and a later status of it drops.
const FAILURE_ATTRIBUTES: [&str; 2] = ["failureReason", "failureCategory"];

/// What a report sets on the record.
fn report_attributes(report: &crate::report::Report) -> Item {
    let mut set = vec![
        s("status", report.state.status()),
        n("reportSeq", report.seq),
    ];
    match report.state {
        crate::report::State::Ready => {
            if let Some(url) = &report.url {
                set.push(s("url", url));
            }
        }
        crate::report::State::Failed => {
            set.push(s("failureCategory", &report.category));
            set.push(s(
                "failureReason",
                report
                    .reason
                    .as_deref()
                    .unwrap_or("the runtime gave no reason"),
            ));
        }
    }
    set
}

/// Stable per (app, branch), so every request for a branch finds the same
/// environment however often it is delivered.
pub fn environment_id(app_id: &str, branch: &str) -> String {
    format!("env_{}", hex_digest(&[app_id, branch], 20))
}

/// The primary key of the canonical `ENVIRONMENT#{id} / #` item.
pub fn primary_key(environment_id: &str) -> Item {
    key(format!("ENVIRONMENT#{environment_id}"), "#".to_string())
}

/// `len` hex digits of SHA-256 over the parts, each ended by a newline so
/// ("a", "bc") and ("ab", "c") differ.
pub(crate) fn hex_digest(parts: &[&str], len: usize) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update(b"\n");
    }
    hasher
        .finalize()
        .iter()
        .flat_map(|byte| [byte >> 4, byte & 0xf])
        .take(len)
        .map(|nibble| char::from_digit(u32::from(nibble), 16).unwrap_or('0'))
        .collect()
}

/// An environment of `app_shop` (acme/shop, pull request 7) at `sha`, for
/// the unit tests of what is made from one.
#[cfg(test)]
pub(crate) fn example(
    branch: &str,
    environment_type: EnvironmentType,
    sha: &str,
    requested_at_ms: u64,
) -> Environment {
    Environment {
        id: environment_id("app_shop", branch),
        app_id: "app_shop".into(),
        environment_type,
        repository: "acme/shop".into(),
        branch: branch.into(),
        sha: sha.into(),
        entrypoint: "src/server.ts".into(),
        pull_request: Some(7),
        installation_id: 4242,
        requested_at_ms,
        request_version: format!("{requested_at_ms:013}#{sha}"),
        secrets_withheld: Vec::new(),
        logic_version: None,
        secrets_skipped: Vec::new(),
        signing_key: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(environment_id("app", "main"), environment_id("app", "main"));
        assert_ne!(environment_id("app", "main"), environment_id("app", "dev"));
        assert_ne!(environment_id("a", "bc"), environment_id("ab", "c"));
        assert_eq!(environment_id("app", "main").len(), "env_".len() + 20);
    }

    /// The request version `Environment::new` makes: a request made later
    /// sorts after, whatever the digits of its time or its commit.
    #[test]
    fn versions_sort_by_time() {
        let app = App {
            id: "app_shop".into(),
            name: "Shop".into(),
            repository: "acme/shop".into(),
            entrypoint: "src/server.ts".into(),
            fork_secrets: false,
            trusted_authors: None,
        };
        let version = |requested_at_ms: u64, sha: &str| {
            let request = CreateRequest {
                app: crate::request::AppRef::Id("app_shop".into()),
                environment_type: EnvironmentType::Preview,
                repository: crate::capabilities::Repository {
                    owner: "acme".into(),
                    name: "shop".into(),
                },
                branch: "feature/login".into(),
                sha: sha.into(),
                pull_request: None,
                installation_id: 4242,
                entrypoint: None,
                requester: "user_123".into(),
                requested_at_ms,
                origin: crate::request::Origin::Platform,
            };
            Environment::new(&app, &request, Vec::new()).request_version
        };
        // Fewer digits and a higher commit, yet older.
        let older = version(999, &"f".repeat(40));
        let newer = version(1_000, &"0".repeat(40));
        assert!(older < newer, "{older} sorts after {newer}");
        // One time: the commit decides, so two pushes at once still order.
        assert!(version(1_000, &"a".repeat(40)) < version(1_000, &"b".repeat(40)));
    }
}
