//! Watching the guest's capability calls: a transcript of every call, and
//! scripted faults that make chosen calls fail. The mock host uses both; the
//! production daemon neither (its calls go to tracing instead).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::capabilities::{Error, ErrorCode, error};

/// Every capability call the guest can make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    GithubAuthenticate,
    GithubListComments,
    GithubCreateComment,
    GithubUpdateComment,
    GithubDeleteComment,
    GithubCreateInstallationToken,
    GithubFindDeployments,
    GithubCreateDeployment,
    GithubListDeploymentStatuses,
    GithubCreateDeploymentStatus,
    GithubDeleteDeployment,
    DynamodbGet,
    DynamodbQuery,
    DynamodbTransactWrite,
    DynamodbUpdate,
    KmsDecrypt,
    AnalyticsTrack,
    RuntimeCreate,
    ConfigGet,
    Log,
}

impl Call {
    /// The interface, as in the WIT: `github`, `dynamodb`, `kms`, ….
    pub fn dependency(self) -> &'static str {
        let name = self.name();
        name.split_once('.')
            .map_or(name, |(interface, _)| interface)
    }

    /// `interface.function`, as in the WIT.
    pub fn name(self) -> &'static str {
        match self {
            Self::GithubAuthenticate => "github.authenticate",
            Self::GithubListComments => "github.list-comments",
            Self::GithubCreateComment => "github.create-comment",
            Self::GithubUpdateComment => "github.update-comment",
            Self::GithubDeleteComment => "github.delete-comment",
            Self::GithubCreateInstallationToken => "github.create-installation-token",
            Self::GithubFindDeployments => "github.find-deployments",
            Self::GithubCreateDeployment => "github.create-deployment",
            Self::GithubListDeploymentStatuses => "github.list-deployment-statuses",
            Self::GithubCreateDeploymentStatus => "github.create-deployment-status",
            Self::GithubDeleteDeployment => "github.delete-deployment",
            Self::DynamodbGet => "dynamodb.get",
            Self::DynamodbQuery => "dynamodb.query",
            Self::DynamodbTransactWrite => "dynamodb.transact-write",
            Self::DynamodbUpdate => "dynamodb.update",
            Self::KmsDecrypt => "kms.decrypt",
            Self::AnalyticsTrack => "analytics.track",
            Self::RuntimeCreate => "runtime.create",
            Self::ConfigGet => "config.get",
            Self::Log => "logging.log",
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One call as the guest made it. Sealed values appear only as their labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub call: Call,
    pub request: String,
    pub result: String,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> {}", self.call, self.request, self.result)
    }
}

/// The calls made so far, in order.
#[derive(Clone, Default)]
pub struct Transcript(Arc<Mutex<Vec<Entry>>>);

impl Transcript {
    pub fn record(&self, entry: Entry) {
        lock(&self.0).push(entry);
    }

    /// Everything recorded since the last `take`.
    pub fn take(&self) -> Vec<Entry> {
        std::mem::take(&mut *lock(&self.0))
    }

    /// Where the transcript ends now.
    pub fn mark(&self) -> usize {
        lock(&self.0).len()
    }

    /// Everything recorded since `mark`, removed from the transcript.
    pub fn take_from(&self, mark: usize) -> Vec<Entry> {
        let mut entries = lock(&self.0);
        let mark = mark.min(entries.len());
        entries.drain(mark..).collect()
    }
}

/// Which calls of a kind a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hit {
    /// The n-th call of that kind (1-based), counted over the host's lifetime.
    Nth(u32),
    /// Every call from now on, until cleared.
    Every,
}

/// Something that happens "at the same time" as a call, right before it:
/// another delivery running to its end, a table changed by someone else.
pub type Interleaved = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

#[derive(Default)]
struct FaultState {
    counts: HashMap<Call, u32>,
    rules: Vec<(Call, Hit, Error)>,
    interleaved: Vec<(Call, Hit, Interleaved)>,
}

fn hits(hit: Hit, count: u32) -> bool {
    match hit {
        Hit::Nth(n) => n == count,
        Hit::Every => true,
    }
}

/// Scripted failures: "the 2nd runtime call returns unavailable".
#[derive(Clone, Default)]
pub struct Faults(Arc<Mutex<FaultState>>);

impl Faults {
    pub fn inject(&self, call: Call, hit: Hit, code: ErrorCode, message: &str) {
        self.inject_error(call, hit, error(code, message));
    }

    /// Any error, e.g. one carrying a Retry-After.
    pub fn inject_error(&self, call: Call, hit: Hit, error: Error) {
        lock(&self.0).rules.push((call, hit, error));
    }

    /// Run `action` right before the chosen call goes ahead (or fails as
    /// scripted): a deterministic stand-in for another delivery working at
    /// the same moment. The action may deliver messages itself; their calls
    /// count like any others.
    pub fn interleave(&self, call: Call, hit: Hit, action: Interleaved) {
        lock(&self.0).interleaved.push((call, hit, action));
    }

    pub fn clear(&self) {
        let mut state = lock(&self.0);
        state.rules.clear();
        state.interleaved.clear();
    }

    /// Count a call; the fault scripted for it and what runs before it.
    pub fn on_call(&self, call: Call) -> (Option<Error>, Option<Interleaved>) {
        let mut state = lock(&self.0);
        let count = state.counts.entry(call).or_insert(0);
        *count += 1;
        let count = *count;
        let fault = state
            .rules
            .iter()
            .find(|(c, hit, _)| *c == call && hits(*hit, count))
            .map(|(_, _, error)| error.clone());
        let action = state
            .interleaved
            .iter()
            .find(|(c, hit, _)| *c == call && hits(*hit, count))
            .map(|(_, _, action)| action.clone());
        (fault, action)
    }
}

/// What watches a host's calls; empty by default.
#[derive(Clone, Default)]
pub struct Observer {
    pub transcript: Option<Transcript>,
    pub faults: Option<Faults>,
}

impl Observer {
    /// Before a call: what to run first, and the fault that replaces it.
    pub fn before(&self, call: Call) -> (Option<Error>, Option<Interleaved>) {
        self.faults
            .as_ref()
            .map_or((None, None), |f| f.on_call(call))
    }

    pub fn record(
        &self,
        call: Call,
        request: impl FnOnce() -> String,
        result: impl FnOnce() -> String,
    ) {
        if let Some(transcript) = &self.transcript {
            transcript.record(Entry {
                call,
                request: request(),
                result: result(),
            });
        }
    }
}

/// A poisoned lock only means another thread panicked mid-update of a
/// recorder; the data is still the best there is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
