//! Calls the guest started (`start-*` in the WIT) and waits for later.
//!
//! A started call is polled once where the guest started it, so it takes its
//! place at once (above all, its turn in the installation's GitHub queue:
//! GitHub requests go out in the order the guest made them), then, unless it
//! finished right there, runs on its own tokio task: concurrently with
//! whatever the guest does next, blocking calls included. It runs to its end
//! whether or not the guest waits for it or drops its future (an effect in
//! flight is never cancelled), bounded by the message's deadline. It keeps
//! the message's span (its log lines say which message) and its health
//! watch (a suspicion it raises counts for the message).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use tokio::task::JoinHandle;
use tracing::Instrument as _;

use super::{Error, ErrorCode};

/// The host's side of a guest's future resource: the call's answer, when it
/// has one.
pub struct Pending<T> {
    state: State<T>,
}

enum State<T> {
    Running(JoinHandle<T>),
    Ended(T),
    /// The answer was handed to the guest.
    Taken,
    /// The call's task panicked: a host bug, which traps the message.
    Broken(String),
}

impl<T: Send + 'static> Pending<T> {
    /// Start `call` for the guest. `timed_out` is the answer when it does not
    /// end before `deadline`.
    pub async fn start<F>(
        call: F,
        deadline: Instant,
        timed_out: impl FnOnce() -> T + Send + 'static,
    ) -> Self
    where
        F: Future<Output = T> + Send + 'static,
    {
        let bounded = async move {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, call).await {
                Ok(answer) => answer,
                Err(_) => timed_out(),
            }
        };
        let watch = crate::health::current_watch();
        let span = tracing::Span::current();
        let mut call: Pin<Box<dyn Future<Output = T> + Send>> =
            Box::pin(crate::health::within(watch, bounded).instrument(span));
        // One poll here: the call takes its turn before the guest's next
        // call does, and one that needs no I/O needs no task.
        let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
        let state = match first {
            Poll::Ready(answer) => State::Ended(answer),
            Poll::Pending => State::Running(tokio::spawn(call)),
        };
        Self { state }
    }

    /// Wait until the call ended (`wasi:io/poll`).
    async fn settle(&mut self) {
        if let State::Running(task) = &mut self.state {
            self.state = match task.await {
                Ok(answer) => State::Ended(answer),
                Err(failed) => State::Broken(failed.to_string()),
            };
        }
    }

    /// The answer if the call ended: `Ok(None)` while it runs; an `invalid`
    /// error once it was taken before; a trap if its task panicked.
    pub fn take(&mut self) -> wasmtime::Result<Option<Result<T, Error>>> {
        if let State::Running(task) = &self.state {
            if !task.is_finished() {
                return Ok(None);
            }
            // Finished: the join resolves at once.
            let task = std::mem::replace(&mut self.state, State::Taken);
            if let State::Running(task) = task {
                self.state = match futures::FutureExt::now_or_never(task) {
                    Some(Ok(answer)) => State::Ended(answer),
                    Some(Err(failed)) => State::Broken(failed.to_string()),
                    None => return Ok(None),
                };
            }
        }
        match std::mem::replace(&mut self.state, State::Taken) {
            State::Ended(answer) => Ok(Some(Ok(answer))),
            State::Taken => Ok(Some(Err(Error {
                code: ErrorCode::Invalid,
                message: "the answer of this call was taken already".into(),
                retry_after_ms: None,
            }))),
            State::Broken(why) => Err(wasmtime::format_err!(
                "a started call failed in the host: {why}"
            )),
            State::Running(_) => unreachable!("settled above"),
        }
    }
}

#[async_trait::async_trait]
impl<T: Send + 'static> wasmtime_wasi::p2::Pollable for Pending<T> {
    async fn ready(&mut self) {
        self.settle().await;
    }
}

/// A started call's answer type: what it answers when the message's
/// deadline passes first.
pub trait Answer: Send + 'static {
    fn past_deadline() -> Self;
}

fn past_deadline() -> Error {
    unavailable("the call did not end before the message's deadline")
}

fn unavailable(message: &str) -> Error {
    Error {
        code: ErrorCode::Unavailable,
        message: message.into(),
        retry_after_ms: None,
    }
}

impl<T: Send + 'static> Answer for Result<T, Error> {
    fn past_deadline() -> Self {
        Err(past_deadline())
    }
}

impl Answer for Result<(), super::envmgr::environments::dynamodb::WriteError> {
    fn past_deadline() -> Self {
        Err(super::envmgr::environments::dynamodb::WriteError::Failed(
            past_deadline(),
        ))
    }
}
