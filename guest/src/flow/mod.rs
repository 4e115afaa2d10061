//! The flows a message starts, and what they share.
//!
//! A message asks for one of two things (`request.rs`): an environment
//! created at a commit (`create.rs`: read it first, it is the create flow
//! top to bottom), or a runtime's status report applied (`report.rs`). Both
//! show the environment on GitHub the same way (`github.rs`). Another kind
//! of message gets a flow of its own beside them, dispatched from
//! [`handle`].
//!
//! Every step is idempotent, so the host can deliver a message again at any
//! point: the environment id is stable per (app, branch), the record is
//! written under a version condition, the comment is found by its marker, the
//! GitHub deployment by its task and payload, and the runtime call and
//! analytics event carry a key derived from the request.
//!
//! One delivery at a time works on an environment (`lease.rs`): it takes the
//! environment's lease before its first effect, renews it right before each
//! later one (a fence), and releases it at the end, whatever the outcome. An
//! older request meeting a newer one is skipped; a newer one meeting an
//! older holder waits (`deferred`), and the older one stops at its next
//! fence. So the newest request is the last to act, at the Runtime Service
//! and on GitHub.
//!
//! The runtime then reports back: signed with the environment's key for the
//! request, its report turns the environment ready or failed, on the
//! record, the comment and the deployment.

mod create;
mod github;
mod report;
mod sweep;
mod teardown;

pub use teardown::{DELETE_GITHUB_ENVIRONMENT, MAX_IDLE_DAYS, TOMBSTONE_DAYS};

use crate::capabilities::Capabilities;
use crate::lease::Stop;
use crate::outcome::{Failure, Outcome};
use crate::request::{self, BadInput, Parsed};

/// One queue message (WIT `types.message`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub source_queue: String,
    pub body: String,
    pub attributes: Vec<(String, String)>,
    pub receive_count: u32,
    pub sent_at_ms: u64,
    /// Unique to this delivery: the lease holder's name.
    pub delivery_token: String,
    /// How often this message was deferred before.
    pub deferrals: u32,
}

/// Config key: the preview URL, with `{environment}` standing for the id.
pub const PREVIEW_URL_TEMPLATE: &str = "preview-url-template";
/// A logic version built with the `fail-on-marker` feature fails every
/// message whose body contains this: a candidate that passes its self-check
/// yet fails in production, for testing canary rollback.
#[cfg(feature = "fail-on-marker")]
pub const FAIL_MARKER: &str = "envmgr-test-fail";

/// Config key: the version of this logic the host runs, for the comment.
pub const LOGIC_VERSION: &str = "logic-version";

/// Config key: the hosts a runtime's reported URL may have, comma-separated
/// (`*.example.com` for any subdomain). Unset: the host of the preview URL
/// (`preview-url-template`), else any https URL.
pub const REPORT_URL_HOSTS: &str = "report-url-hosts";

/// Why a flow ended early while holding the environment: a failure, or the
/// lease's verdict.
enum Halt {
    Fail(Failure),
    Stop(Stop),
}

impl From<Failure> for Halt {
    fn from(failure: Failure) -> Self {
        Self::Fail(failure)
    }
}

impl From<Stop> for Halt {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::Failed(failure) => Self::Fail(failure),
            stop => Self::Stop(stop),
        }
    }
}

impl From<Halt> for Stop {
    fn from(halt: Halt) -> Self {
        match halt {
            Halt::Fail(failure) => Self::Failed(failure),
            Halt::Stop(stop) => stop,
        }
    }
}

impl Halt {
    /// Why, in words for the log.
    fn reason(&self) -> String {
        match self {
            Halt::Fail(failure) => failure.reason.clone(),
            Halt::Stop(Stop::Stale { newer }) => format!("a newer request {newer} took over"),
            Halt::Stop(Stop::Lost { reason, .. }) => reason.clone(),
            Halt::Stop(Stop::Failed(failure)) => failure.reason.clone(),
        }
    }
}

/// Handle one message: the flow its body asks for.
pub fn handle<C: Capabilities>(caps: &mut C, message: &Message) -> Result<Outcome, Failure> {
    #[cfg(feature = "fail-on-marker")]
    if message.body.contains(FAIL_MARKER) {
        return Err(Failure::permanent(
            "this build fails every request naming the test marker (feature fail-on-marker)",
        ));
    }
    match request::parse(&message.body) {
        Ok(Parsed::Create(request)) => create::create(caps, message, *request),
        Ok(Parsed::Delete(request)) => teardown::teardown(caps, message, *request),
        Ok(Parsed::Sweep(app_id)) => sweep::sweep(caps, &app_id),
        Ok(Parsed::Report(jws)) => report::status_report(caps, message, &jws),
        Ok(Parsed::Ignored(reason)) => Ok(Outcome::Skipped(reason)),
        Err(BadInput(reason)) => Err(Failure::permanent(reason)),
    }
}

/// Tell analytics `event` of `env` (its repository, branch, type and id,
/// and `extra` properties), once per request (`envmgr-{idempotency key}`);
/// an event not tracked is logged, never a failure.
fn track<C: Capabilities>(
    caps: &mut C,
    event: &str,
    requester: &str,
    env: &crate::environment::Environment,
    extra: &[(&str, &str)],
) {
    let mut properties = serde_json::json!({
        "repo": env.repository,
        "branch": env.branch,
        "type": env.environment_type.as_str(),
        "environmentId": env.id,
    });
    for (name, value) in extra {
        properties[*name] = (*value).into();
    }
    let event = crate::capabilities::TrackEvent {
        event: event.to_string(),
        user_id: requester.to_string(),
        properties_json: properties.to_string(),
        message_id: format!("envmgr-{}", env.idempotency_key()),
    };
    if let Err(error) = caps.analytics_track(&event) {
        caps.log(
            crate::capabilities::LogLevel::Warn,
            "analytics",
            &format!("event not tracked: {error}"),
        );
    }
}
