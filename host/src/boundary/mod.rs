//! The WIT boundary: what each import the guest calls does in the host.
//! One file per interface implements its generated `Host` trait for the
//! message's [`Session`] on top of a backend from [`crate::capabilities`];
//! every call goes through [`Backends::invoke`], which adds what every call
//! needs (scripted faults, health, metrics, redaction, transcript, tape).

mod analytics;
mod config;
mod dynamodb;
mod github;
mod keys;
mod kms;
pub mod limiter;
mod logging;
mod runtime;
mod sealed;
mod session;
mod started;

use std::future::Future;
use std::sync::Arc;

use crate::calls::clock::ManualClock;
use crate::calls::values::Recordable;
use crate::calls::{Call, Observer};
use crate::capabilities::{
    self as backends, DEADLINE, Describe, Error, ErrorCode, code_name, error,
};
use crate::redact::{Credentials, Redactor, Scrub};

pub use session::Session;

/// The backends behind every capability, shared by all messages.
#[derive(Clone)]
pub struct Backends {
    pub github: Arc<dyn backends::github::GitHub>,
    pub dynamodb: Arc<dyn backends::dynamodb::Tables>,
    pub kms: Arc<dyn backends::kms::Kms>,
    pub analytics: Arc<dyn backends::analytics::Analytics>,
    pub runtime: Arc<dyn backends::runtime::Runtime>,
    pub config: Arc<backends::config::Config>,
    /// Transcript and scripted faults (the mock host); none in production.
    pub observer: Observer,
    /// None: the system clock and OS randomness. Some: this clock and a
    /// seeded random source, so a run is reproducible (the mock host).
    pub clock: Option<ManualClock>,
    /// The process's credentials, which no dependency text may carry back.
    pub credentials: Credentials,
}

impl Backends {
    /// The same backends, with one message's calls going on `tape`.
    pub fn taped(&self, tape: crate::calls::tape::Tape) -> Self {
        let mut backends = self.clone();
        backends.observer.tape = Some(tape);
        backends
    }

    /// Run one capability call: a scripted fault replaces it if one is due,
    /// the transcript records it (request text built only if recorded), and
    /// what the dependency sent back is redacted before the guest sees it.
    /// A message being recorded puts the typed request and the answer on its
    /// tape; a replayed one is answered from its recording instead, and
    /// `run` never starts.
    pub(crate) async fn invoke<T, E>(
        &self,
        redactor: &Redactor,
        call: Call,
        request: impl FnOnce() -> String,
        typed: Option<serde_json::Value>,
        run: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E>
    where
        T: Scrub + Recordable,
        E: From<Error> + Describe + Scrub + Recordable,
    {
        let observer = &self.observer;
        if let Some(replayer) = &observer.replay {
            let result = replayed(replayer, call, typed.unwrap_or_default());
            observer.record(call, request, || shown(&result));
            return result;
        }
        let scripted = observer.before(call);
        if let Some(action) = scripted.interleaved {
            action().await;
        }
        // Counted from here: an interleaved delivery waits for the calls in
        // flight, never for the one it runs in front of.
        let _in_flight = observer.started();
        let started = tokio::time::Instant::now();
        if let Some(latency) = scripted.latency {
            tokio::time::sleep(latency).await;
        }
        let raised = crate::health::raised();
        let result = match scripted.fault {
            Some(fault) => Err(E::from(fault)),
            None => run.await,
        };
        let result = match result {
            // The backend saw what may be the deployment's fault: if a probe
            // confirms it, the logic sees a retryable `unavailable` rather
            // than a refusal it would take for the message's (and mark the
            // environment failed for).
            Err(failed) if crate::health::raised() > raised => {
                match crate::health::confirm().await {
                    Some(problems) => Err(E::from(error(
                        ErrorCode::Unavailable,
                        format!(
                            "{}; not the message's fault: the host is unhealthy ({})",
                            failed.describe(),
                            crate::health::Problem::list(&problems)
                        ),
                    ))),
                    None => Err(failed),
                }
            }
            result => result,
        };
        if let Err(failed) = &result
            && let Some(code) = failed.failure_code()
        {
            crate::metrics::dependency_error(call.dependency(), code_name(code));
        }
        let result = match result {
            Ok(value) => Ok(value.scrub(redactor)),
            Err(error) => Err(error.scrub(redactor)),
        };
        observer.span(call, started);
        observer.record(call, request, || shown(&result));
        if let (Some(tape), Some(typed)) = (&observer.tape, typed) {
            tape.call(call, typed, crate::calls::tape::answer(&result));
        }
        result
    }
}

/// A result as the transcript shows it.
fn shown<T, E: Describe>(result: &Result<T, E>) -> String {
    match result {
        Ok(_) => "ok".to_string(),
        Err(error) => error.describe(),
    }
}

/// A replayed call's answer: the recording's, or `unavailable` when it has
/// none (the replay then calls the message not replayable).
fn replayed<T: Recordable, E: From<Error> + Recordable>(
    replayer: &crate::calls::tape::Replayer,
    call: Call,
    request: serde_json::Value,
) -> Result<T, E> {
    let unanswered = |why: &str| {
        Err(E::from(error(
            ErrorCode::Unavailable,
            format!("not replayable: {why}"),
        )))
    };
    match replayer.answer(call, &request) {
        Some(answer) => match crate::calls::tape::answered::<T, E>(&answer) {
            Some(result) => result,
            None => {
                let why = "the recorded answer is not of this call's type";
                replayer.unanswerable(call, why);
                unanswered(why)
            }
        },
        None => unanswered(&format!("the recording has no answer for {call}")),
    }
}

impl Session {
    /// [`Backends::invoke`] with this message's redactor. Takes what it
    /// needs of the session up front: a session is not `Sync`, so the call's
    /// future must not hold it.
    pub(crate) fn invoke<'a, T, E>(
        &self,
        call: Call,
        request: impl FnOnce() -> String + Send + 'a,
        typed: Option<serde_json::Value>,
        run: impl Future<Output = Result<T, E>> + Send + 'a,
    ) -> impl Future<Output = Result<T, E>> + Send + 'a
    where
        T: Scrub + Recordable + Send + 'a,
        E: From<Error> + Describe + Scrub + Recordable + Send + 'a,
    {
        let backends = self.backends.clone();
        let redactor = self.redactor.clone();
        let deadline = self.deadline;
        async move {
            DEADLINE
                .scope(
                    deadline,
                    backends.invoke(&redactor, call, request, typed, run),
                )
                .await
        }
    }

    /// A call's request in the recording's typed form, built only when this
    /// message is recorded or replayed.
    pub(crate) fn typed(
        &self,
        request: impl FnOnce() -> serde_json::Value,
    ) -> Option<serde_json::Value> {
        let observer = &self.backends.observer;
        (observer.tape.is_some() || observer.replay.is_some()).then(request)
    }
}

/// The shared `types` interface has no functions.
impl crate::bindings::envmgr::environments::types::Host for crate::boundary::Session {}
