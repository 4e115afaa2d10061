//! What the flow may ask of its host, as plain Rust.
//!
//! The flow is written against [`Capabilities`] so the same code runs inside
//! the component (where `component.rs` forwards each call to a WIT import) and
//! natively (unit tests, benchmarks). DynamoDB's and GitHub's records,
//! Segment's event and the runtime's answer are the WIT's own types
//! (`bindings`). The error is still a mirror: its text (`NotFound: …`)
//! reaches outcomes and so recordings, where the generated `Debug` would
//! say `ErrorCode::NotFound` (and wit-bindgen writes its own `Display` for
//! it); a write's error holds it, so it is one too.

use std::fmt;

/// Why a capability call failed (WIT `types.error-code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    NotFound,
    Denied,
    Invalid,
    Conflict,
    Throttled,
    Unavailable,
}

/// A failed capability call (WIT `types.error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapabilityError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_ms: Option<u64>,
}

impl CapabilityError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// Whether the same call may succeed later without anyone changing data.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.code,
            ErrorCode::Conflict | ErrorCode::Throttled | ErrorCode::Unavailable
        )
    }
}

impl fmt::Display for CapabilityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)?;
        if let Some(ms) = self.retry_after_ms {
            write!(f, " (retry after {ms} ms)")?;
        }
        Ok(())
    }
}

pub type CapResult<T> = Result<T, CapabilityError>;

// DynamoDB's values, items, conditions, writes and pages as the WIT has them.
pub use crate::bindings::envmgr::environments::dynamodb::{
    AttributeCheck, AttributeValue as Value, Condition, Item, KeyCondition, Page, PutItem,
    QueryRequest as Query, UpdateItem as Update, Write,
};

/// The condition that `name` equals `value`.
pub fn equals(name: String, value: Value) -> Condition {
    Condition::Equals(AttributeCheck { name, value })
}

/// The condition that no item is stored or its `name` is at most `value`.
pub fn absent_or_at_most(name: String, value: Value) -> Condition {
    Condition::AbsentOrAtMost(AttributeCheck { name, value })
}

#[derive(Clone, Debug, PartialEq)]
pub enum WriteError {
    /// Indices of the writes whose condition did not hold; nothing was written.
    ConditionFailed(Vec<u32>),
    Failed(CapabilityError),
}

// GitHub's and Segment's records as the WIT has them (see `bindings`).
pub use crate::bindings::envmgr::environments::analytics::TrackEvent;
pub use crate::bindings::envmgr::environments::github::{
    Comment, Deployment, DeploymentState, DeploymentStatus, NewDeployment, NewDeploymentStatus,
    PullRequest, Repository,
};
pub use crate::bindings::envmgr::environments::runtime::Created as RuntimeCreated;
pub use crate::bindings::envmgr::environments::runtime::DeleteRequest as RuntimeDelete;

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// The runtime create call; secret values are sealed handles.
pub struct RuntimeRequest<'a, S> {
    pub idempotency_key: String,
    pub app_id: String,
    pub environment_id: String,
    pub environment_type: String,
    pub repository: String,
    pub branch: String,
    pub sha: String,
    /// The fencing token: the Runtime Service refuses a create older than
    /// the newest it accepted for the environment.
    pub request_version: String,
    pub entrypoint: String,
    pub installation_token: Option<&'a S>,
    pub secrets: Vec<(String, &'a S)>,
    /// The environment's private signing key for this request: the runtime
    /// signs its status reports with it.
    pub signing_key: Option<&'a S>,
}

/// A key pair for one request of one environment (WIT `keys.signing-key`).
pub struct SigningKey<S> {
    /// The public key as a JWK, for the record.
    pub public_jwk: String,
    /// The private key, sealed: for the runtime call.
    pub private_key: S,
    /// The private key encrypted with KMS under [`key_context`], for the
    /// record: a redelivery decrypts it to hand the runtime the same key.
    pub ciphertext: Vec<u8>,
}

/// The encryption context of a request's private signing key (the WIT's
/// `keys.signing-key.ciphertext`).
pub fn key_context(
    app_id: &str,
    environment_id: &str,
    request_version: &str,
) -> Vec<(String, String)> {
    vec![
        ("envmgr:app".to_string(), app_id.to_string()),
        ("envmgr:scope".to_string(), "signing-key".to_string()),
        (
            "envmgr:name".to_string(),
            format!("{environment_id}/{request_version}"),
        ),
    ]
}

/// A call started with a `start_*` method: the host runs it while the flow
/// goes on (`wit/envmgr.wit`, "Concurrent calls"); `wait` gives its answer.
pub struct Started<T>(Box<dyn FnOnce() -> T>);

impl<T: 'static> Started<T> {
    /// An answer that is there already (a host that makes calls in turn).
    pub fn ready(answer: T) -> Self {
        Self(Box::new(move || answer))
    }

    /// An answer to wait for.
    pub fn later(wait: impl FnOnce() -> T + 'static) -> Self {
        Self(Box::new(wait))
    }

    pub fn wait(self) -> T {
        (self.0)()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// Everything the flow can do outside its own memory.
///
/// The `start_*` methods begin a call and return at once; by default they
/// make the call in turn (the answer is there when `wait` is asked), which
/// is what a host without concurrency does.
pub trait Capabilities {
    /// A secret value or token the flow can pass on but not read.
    type Sealed: 'static;

    /// Wall-clock time, milliseconds since the Unix epoch.
    fn now_ms(&mut self) -> u64;
    fn config(&mut self, key: &str) -> Option<String>;
    fn log(&mut self, level: LogLevel, step: &str, message: &str);

    fn github_authenticate(&mut self, installation_id: u64) -> CapResult<()>;
    fn github_list_comments(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        issue_number: u64,
        marker: &str,
    ) -> CapResult<Vec<Comment>>;
    fn github_create_comment(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        issue_number: u64,
        body: &str,
    ) -> CapResult<Comment>;
    fn github_update_comment(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        comment_id: u64,
        body: &str,
    ) -> CapResult<Comment>;
    fn github_delete_comment(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        comment_id: u64,
    ) -> CapResult<()>;
    fn github_create_installation_token(
        &mut self,
        installation_id: u64,
        repo: &Repository,
    ) -> CapResult<Self::Sealed>;
    /// Deployments of `sha` to `environment` with `task`, oldest first.
    fn github_find_deployments(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        sha: &str,
        environment: &str,
        task: &str,
    ) -> CapResult<Vec<Deployment>>;
    fn github_create_deployment(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        deployment: &NewDeployment,
    ) -> CapResult<Deployment>;
    /// A deployment's statuses, oldest first.
    fn github_list_deployment_statuses(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        deployment_id: u64,
    ) -> CapResult<Vec<DeploymentStatus>>;
    fn github_create_deployment_status(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        deployment_id: u64,
        status: &NewDeploymentStatus,
    ) -> CapResult<DeploymentStatus>;
    fn github_delete_deployment(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        deployment_id: u64,
    ) -> CapResult<()>;
    /// Open pull requests whose head is `head` (`owner:branch`), oldest
    /// first (contract 0.3.1).
    fn github_list_open_pull_requests(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        head: &str,
    ) -> CapResult<Vec<PullRequest>>;
    /// The GitHub environment `name` deleted; one already gone succeeds
    /// (contract 0.3.1).
    fn github_delete_environment(
        &mut self,
        installation_id: u64,
        repo: &Repository,
        name: &str,
    ) -> CapResult<()>;

    fn db_get(&mut self, table: &str, key: &Item) -> CapResult<Option<Item>>;
    fn db_query(&mut self, query: &Query) -> CapResult<Page>;
    fn db_transact_write(&mut self, writes: &[Write]) -> Result<(), WriteError>;
    fn db_update(&mut self, update: &Update) -> Result<(), WriteError>;

    fn kms_decrypt(
        &mut self,
        ciphertext: &[u8],
        context: &[(String, String)],
        label: &str,
    ) -> CapResult<Self::Sealed>;

    fn analytics_track(&mut self, event: &TrackEvent) -> CapResult<()>;

    fn runtime_create(
        &mut self,
        request: &RuntimeRequest<'_, Self::Sealed>,
    ) -> CapResult<RuntimeCreated>;
    /// The ids of the runtimes the delete removed (contract 0.3.1).
    fn runtime_delete(&mut self, request: &RuntimeDelete) -> CapResult<Vec<String>>;

    /// Put a platform API request on the host's `api` queue for later: the
    /// message id (contract 0.3.1).
    fn requests_send(&mut self, body: &str) -> CapResult<String>;

    /// A new signing key for `environment_id` at `request_version`.
    fn keys_generate(
        &mut self,
        app_id: &str,
        environment_id: &str,
        request_version: &str,
    ) -> CapResult<SigningKey<Self::Sealed>>;
    /// The claims (JSON text) of a status report signed with the key of
    /// `public_jwk`; `invalid` when the signature does not hold.
    fn keys_verify_report(&mut self, jws: &str, public_jwk: &str) -> CapResult<String>;

    fn start_github_create_installation_token(
        &mut self,
        installation_id: u64,
        repo: &Repository,
    ) -> Started<CapResult<Self::Sealed>> {
        Started::ready(self.github_create_installation_token(installation_id, repo))
    }

    fn start_kms_decrypt(
        &mut self,
        ciphertext: &[u8],
        context: &[(String, String)],
        label: &str,
    ) -> Started<CapResult<Self::Sealed>> {
        Started::ready(self.kms_decrypt(ciphertext, context, label))
    }

    fn start_db_get(&mut self, table: &str, key: &Item) -> Started<CapResult<Option<Item>>> {
        Started::ready(self.db_get(table, key))
    }

    fn start_db_query(&mut self, query: &Query) -> Started<CapResult<Page>> {
        Started::ready(self.db_query(query))
    }

    fn start_db_transact_write(&mut self, writes: &[Write]) -> Started<Result<(), WriteError>> {
        Started::ready(self.db_transact_write(writes))
    }

    /// The sealed values `request` borrows are read when the call starts.
    fn start_runtime_create(
        &mut self,
        request: &RuntimeRequest<'_, Self::Sealed>,
    ) -> Started<CapResult<RuntimeCreated>> {
        Started::ready(self.runtime_create(request))
    }
}
