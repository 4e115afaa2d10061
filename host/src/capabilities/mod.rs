//! What the host gives a logic version, one folder per capability.
//!
//! Each folder holds the backend trait (what every implementation must do,
//! in plain host types with plaintext secrets) and its implementations: the
//! real service's and the embedded database's (`local`, which the mock host
//! runs over a database in memory). The WIT boundary (the generated `Host`
//! trait implemented for [`Session`], which seals secrets, records the
//! transcript and injects scripted faults) is [`crate::boundary`].
//!
//! [`Session`]: crate::boundary::Session

pub mod analytics;
pub mod config;
pub mod dynamodb;
pub mod github;
pub mod keys;
pub mod kms;
pub mod logging;
pub mod requests;
pub mod runtime;

use crate::bindings::envmgr::environments::dynamodb::WriteError;
pub use crate::bindings::{Error, ErrorCode};
use crate::redact::{Redactor, Scrub};

tokio::task_local! {
    /// When the message a call is made for must be done.
    pub(crate) static DEADLINE: std::time::Instant;
}

/// How long the message the current call is made for has left (None
/// outside a message: a command, a probe). A backend that tries a call
/// again stops when this runs short.
pub fn time_left() -> Option<std::time::Duration> {
    DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(std::time::Instant::now()))
        .ok()
}

/// A capability call's result, as the guest sees it.
pub type CapResult<T> = Result<T, Error>;

/// A capability error without a Retry-After hint.
pub fn error(code: ErrorCode, message: impl Into<String>) -> Error {
    Error {
        code,
        message: message.into(),
        retry_after_ms: None,
    }
}

/// An error code as the WIT spells it.
pub fn code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Unavailable => "unavailable",
        ErrorCode::Throttled => "throttled",
        ErrorCode::Denied => "denied",
        ErrorCode::NotFound => "not-found",
        ErrorCode::Conflict => "conflict",
        ErrorCode::Invalid => "invalid",
    }
}

/// A capability error as the transcript and the logs show it.
pub trait Describe {
    fn describe(&self) -> String;
    /// The error code, if this is a dependency's failure (a condition that
    /// did not hold is an answer, not a failure).
    fn failure_code(&self) -> Option<ErrorCode>;
}

impl Describe for Error {
    fn describe(&self) -> String {
        format!("error({}): {}", code_name(self.code), self.message)
    }

    fn failure_code(&self) -> Option<ErrorCode> {
        Some(self.code)
    }
}

impl Describe for WriteError {
    fn describe(&self) -> String {
        match self {
            WriteError::ConditionFailed(indices) => {
                let indices: Vec<String> = indices.iter().map(u32::to_string).collect();
                format!("condition-failed [{}]", indices.join(", "))
            }
            WriteError::Failed(error) => error.describe(),
        }
    }

    fn failure_code(&self) -> Option<ErrorCode> {
        match self {
            WriteError::ConditionFailed(_) => None,
            WriteError::Failed(error) => Some(error.code),
        }
    }
}

impl From<Error> for WriteError {
    fn from(error: Error) -> Self {
        WriteError::Failed(error)
    }
}

impl Scrub for Error {
    fn scrub(self, redactor: &Redactor) -> Self {
        Error {
            message: redactor.clean(&self.message),
            ..self
        }
    }
}

impl Scrub for WriteError {
    fn scrub(self, redactor: &Redactor) -> Self {
        match self {
            WriteError::Failed(error) => WriteError::Failed(error.scrub(redactor)),
            refused => refused,
        }
    }
}
