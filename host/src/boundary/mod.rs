//! The WIT boundary: what each import the guest calls does in the host.
//! One file per interface implements its generated `Host` trait for the
//! message's [`Session`] on top of a backend from [`crate::capabilities`];
//! every call goes through [`Backends::invoke`], which puts it through the
//! steps every call takes ([`crate::calls::layers`]).

mod analytics;
mod config;
mod dynamodb;
mod github;
mod keys;
mod kms;
pub mod limiter;
mod logging;
mod requests;
mod runtime;
mod sealed;
mod session;
mod started;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;

use crate::calls::Observer;
use crate::calls::clock::ManualClock;
use crate::calls::layers::{self, CallError, CallValue};
use crate::calls::requests::{Described, Request};
use crate::capabilities::{self as backends, DEADLINE};
use crate::redact::{Credentials, Redactor};

pub use session::Session;

/// The backends behind every capability, shared by all messages.
#[derive(Clone)]
pub struct Backends {
    pub github: Arc<dyn backends::github::GitHub>,
    pub dynamodb: Arc<dyn backends::dynamodb::Tables>,
    pub kms: Arc<dyn backends::kms::Kms>,
    pub analytics: Arc<dyn backends::analytics::Analytics>,
    pub runtime: Arc<dyn backends::runtime::Runtime>,
    pub requests: Arc<dyn backends::requests::Requests>,
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

    /// Run one capability call through the steps every call takes (see
    /// [`layers`], which says what each does and why in this order): the
    /// one place they are put together.
    pub(crate) async fn invoke<T: CallValue, E: CallError>(
        &self,
        redactor: &Redactor,
        described: Described,
        run: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let Described { call, text, json } = described;
        let observer = &self.observer;
        // A replayed call never reaches the tape: the JSON goes to one.
        let (replayed, taped) = match observer.replay {
            Some(_) => (json.map(|text| crate::calls::tape::tree(&text)), None),
            None => (None, json),
        };
        // Innermost first. Each step gets the one inside it pinned here, by
        // reference: an async fn stores a future it awaits twice (as its
        // argument and as what it awaits, rust-lang/rust#62958), so futures
        // passed by value would double in size with every step, and seven
        // steps overflow the guest's fiber stack.
        let run = pin!(layers::trace::around(observer.replay.is_some(), call, run));
        let run = pin!(layers::health::around(run));
        let run = pin!(layers::scripted::around(observer, call, run));
        let run = pin!(layers::metrics::around(call, run));
        let run = pin!(layers::redaction::around(redactor, run));
        let run = pin!(layers::tape::around(
            observer.tape.as_ref(),
            call,
            taped,
            run
        ));
        let run = pin!(layers::replay::around(
            observer.replay.as_deref(),
            call,
            replayed.as_ref(),
            run
        ));
        layers::transcript::around(
            observer.transcript.as_ref(),
            call,
            || text.unwrap_or_default(),
            run,
        )
        .await
    }
}

impl Session {
    /// A call's request as the call path needs it: built now, and only in
    /// the forms this message keeps (see [`Described`]).
    pub(crate) fn describe(&self, request: &impl Request) -> Described {
        Described::of(request, &self.backends.observer)
    }

    /// [`Backends::invoke`] with this message's redactor. Takes what it
    /// needs of the session up front: a session is not `Sync`, so the call's
    /// future must not hold it.
    pub(crate) fn invoke<'a, T: CallValue + 'a, E: CallError + 'a>(
        &self,
        described: Described,
        run: impl Future<Output = Result<T, E>> + Send + 'a,
    ) -> impl Future<Output = Result<T, E>> + Send + 'a {
        let backends = self.backends.clone();
        let redactor = self.redactor.clone();
        let deadline = self.deadline;
        async move {
            DEADLINE
                .scope(deadline, backends.invoke(&redactor, described, run))
                .await
        }
    }
}

/// The shared `types` interface has no functions.
impl crate::bindings::envmgr::environments::types::Host for crate::boundary::Session {}
