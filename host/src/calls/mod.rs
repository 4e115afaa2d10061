//! Watching the guest's capability calls: a transcript of every call (and
//! when each ran, for what overlapped), and scripted faults that make chosen
//! calls fail or take time. The mock host uses both; the production daemon
//! neither (its calls go to tracing instead).

pub mod clock;
pub mod layers;
pub mod requests;
pub mod tape;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

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
    GithubListOpenPullRequests,
    GithubDeleteEnvironment,
    DynamodbGet,
    DynamodbQuery,
    DynamodbTransactWrite,
    DynamodbUpdate,
    KmsDecrypt,
    KeysGenerate,
    KeysVerifyReport,
    AnalyticsTrack,
    RuntimeCreate,
    RuntimeDelete,
    RequestsSend,
    ConfigGet,
    Log,
}

impl Call {
    /// Every call, in the WIT's order.
    pub const ALL: [Call; 26] = [
        Self::GithubAuthenticate,
        Self::GithubListComments,
        Self::GithubCreateComment,
        Self::GithubUpdateComment,
        Self::GithubDeleteComment,
        Self::GithubCreateInstallationToken,
        Self::GithubFindDeployments,
        Self::GithubCreateDeployment,
        Self::GithubListDeploymentStatuses,
        Self::GithubCreateDeploymentStatus,
        Self::GithubDeleteDeployment,
        Self::GithubListOpenPullRequests,
        Self::GithubDeleteEnvironment,
        Self::DynamodbGet,
        Self::DynamodbQuery,
        Self::DynamodbTransactWrite,
        Self::DynamodbUpdate,
        Self::KmsDecrypt,
        Self::KeysGenerate,
        Self::KeysVerifyReport,
        Self::AnalyticsTrack,
        Self::RuntimeCreate,
        Self::RuntimeDelete,
        Self::RequestsSend,
        Self::ConfigGet,
        Self::Log,
    ];

    /// The call `interface.function` names.
    pub fn named(name: &str) -> Option<Call> {
        Self::ALL.into_iter().find(|call| call.name() == name)
    }

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
            Self::GithubListOpenPullRequests => "github.list-open-pull-requests",
            Self::GithubDeleteEnvironment => "github.delete-environment",
            Self::DynamodbGet => "dynamodb.get",
            Self::DynamodbQuery => "dynamodb.query",
            Self::DynamodbTransactWrite => "dynamodb.transact-write",
            Self::DynamodbUpdate => "dynamodb.update",
            Self::KmsDecrypt => "kms.decrypt",
            Self::KeysGenerate => "keys.generate",
            Self::KeysVerifyReport => "keys.verify-report",
            Self::AnalyticsTrack => "analytics.track",
            Self::RuntimeCreate => "runtime.create",
            Self::RuntimeDelete => "runtime.delete",
            Self::RequestsSend => "requests.send",
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

/// When one call ran (tokio's clock: virtual under `tokio::time::pause`,
/// so a test can script latencies and assert what overlapped exactly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub call: Call,
    pub started: Instant,
    pub ended: Instant,
}

impl Span {
    /// Whether the two calls were in flight at the same time.
    pub fn overlaps(&self, other: &Span) -> bool {
        self.started < other.ended && other.started < self.ended
    }
}

#[derive(Default)]
struct Recorded {
    entries: Vec<Entry>,
    spans: Vec<Span>,
}

/// The calls made so far, in the order they ended, and when each ran.
#[derive(Clone, Default)]
pub struct Transcript(Arc<Mutex<Recorded>>);

/// Where a transcript ended at some point.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    entries: usize,
    spans: usize,
}

impl Transcript {
    pub fn record(&self, entry: Entry) {
        lock(&self.0).entries.push(entry);
    }

    pub fn record_span(&self, span: Span) {
        lock(&self.0).spans.push(span);
    }

    /// Everything recorded since the last `take`.
    pub fn take(&self) -> Vec<Entry> {
        let mut recorded = lock(&self.0);
        recorded.spans.clear();
        std::mem::take(&mut recorded.entries)
    }

    /// Where the transcript ends now.
    pub fn mark(&self) -> Mark {
        let recorded = lock(&self.0);
        Mark {
            entries: recorded.entries.len(),
            spans: recorded.spans.len(),
        }
    }

    /// Everything recorded since `mark`, removed from the transcript.
    pub fn take_from(&self, mark: Mark) -> (Vec<Entry>, Vec<Span>) {
        let mut recorded = lock(&self.0);
        let entries = mark.entries.min(recorded.entries.len());
        let spans = mark.spans.min(recorded.spans.len());
        (
            recorded.entries.drain(entries..).collect(),
            recorded.spans.drain(spans..).collect(),
        )
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
    latencies: HashMap<Call, Duration>,
}

/// What is scripted for one call.
#[derive(Default)]
pub struct Scripted {
    /// The error that replaces the call.
    pub fault: Option<Error>,
    /// What runs right before it.
    pub interleaved: Option<Interleaved>,
    /// How long it takes.
    pub latency: Option<Duration>,
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

    /// Every `call` of this kind takes `latency` (answer or scripted fault
    /// alike), as a remote dependency would.
    pub fn delay(&self, call: Call, latency: Duration) {
        lock(&self.0).latencies.insert(call, latency);
    }

    pub fn clear(&self) {
        let mut state = lock(&self.0);
        state.rules.clear();
        state.interleaved.clear();
        state.latencies.clear();
    }

    /// Count a call; what is scripted for it.
    pub fn on_call(&self, call: Call) -> Scripted {
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
        Scripted {
            fault,
            interleaved: action,
            latency: state.latencies.get(&call).copied(),
        }
    }
}

/// Calls under way (the mock host waits for the ones a message started
/// before it hands back that message's transcript).
#[derive(Clone, Default)]
pub struct CallsInFlight(Arc<(AtomicUsize, tokio::sync::Notify)>);

/// One call under way; it ends when dropped.
pub struct InFlight(CallsInFlight);

impl CallsInFlight {
    pub fn start(&self) -> InFlight {
        self.0.0.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// Wait until no call is under way.
    pub async fn idle(&self) {
        loop {
            let notified = self.0.1.notified();
            if self.0.0.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.0.0.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.0.1.notify_waiters();
        }
    }
}

/// What watches a host's calls; empty by default.
#[derive(Clone, Default)]
pub struct Observer {
    pub transcript: Option<Transcript>,
    pub faults: Option<Faults>,
    pub in_flight: Option<CallsInFlight>,
    /// This message is recorded: its calls, clock and random go on tape.
    pub tape: Option<crate::calls::tape::Tape>,
    /// This message is replayed: its calls are answered from a recording.
    pub replay: Option<Arc<crate::calls::tape::Replayer>>,
}

impl Observer {
    /// Before a call: what is scripted for it.
    pub fn before(&self, call: Call) -> Scripted {
        self.faults
            .as_ref()
            .map_or_else(Scripted::default, |f| f.on_call(call))
    }

    /// A call starts; counted until the guard drops.
    pub fn started(&self) -> Option<InFlight> {
        self.in_flight.as_ref().map(CallsInFlight::start)
    }

    pub fn span(&self, call: Call, started: Instant) {
        if let Some(transcript) = &self.transcript {
            transcript.record_span(Span {
                call,
                started,
                ended: Instant::now(),
            });
        }
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
