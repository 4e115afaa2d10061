//! What the flow may ask of its host, as plain Rust.
//!
//! The flow is written against [`Capabilities`] so the same code runs inside
//! the component (where `component.rs` forwards each call to a WIT import) and
//! natively (unit tests, benchmarks). GitHub's records, Segment's event and
//! the runtime's answer are the WIT's own types (`bindings`); the rest are
//! still mirrors, for reasons each would have to lose first: the DynamoDB
//! writes and conditions are flatter here (`Write::Put { .. }`,
//! `Condition::Equals(name, value)`) than the WIT's nested records, and the
//! error's text (`NotFound: …`) reaches outcomes and so recordings, where
//! the generated `Debug` would say `ErrorCode::NotFound`.

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

/// A DynamoDB attribute value (WIT `dynamodb.attribute-value`).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    S(String),
    N(String),
    B(Vec<u8>),
    Bool(bool),
    Null,
    Ss(Vec<String>),
    Ns(Vec<String>),
    Bs(Vec<Vec<u8>>),
    /// A nested map or list as DynamoDB JSON.
    Json(String),
}

/// An item or a key, in attribute order.
pub type Item = Vec<(String, Value)>;

/// When a write may happen (WIT `dynamodb.condition`).
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    None,
    ItemAbsent,
    ItemPresent,
    Equals(String, Value),
    AbsentOrAtMost(String, Value),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    Put {
        table: String,
        item: Item,
        condition: Condition,
    },
    Update(Update),
    Delete {
        table: String,
        key: Item,
        condition: Condition,
    },
    Check {
        table: String,
        key: Item,
        condition: Condition,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    pub table: String,
    pub key: Item,
    pub set: Item,
    pub condition: Condition,
}

#[derive(Clone, Debug, PartialEq)]
pub enum WriteError {
    /// Indices of the writes whose condition did not hold; nothing was written.
    ConditionFailed(Vec<u32>),
    Failed(CapabilityError),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub table: String,
    pub partition: String,
    pub sort_prefix: Option<String>,
    pub limit: Option<u32>,
    pub start_after: Option<Item>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    pub next: Option<Item>,
}

// GitHub's and Segment's records as the WIT has them (see `bindings`).
pub use crate::bindings::envmgr::environments::analytics::TrackEvent;
pub use crate::bindings::envmgr::environments::github::{
    Comment, Deployment, DeploymentState, DeploymentStatus, NewDeployment, NewDeploymentStatus,
    Repository,
};
pub use crate::bindings::envmgr::environments::runtime::Created as RuntimeCreated;

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
