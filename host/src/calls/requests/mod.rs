//! One type per capability call the guest makes: which call it is, how the
//! transcript shows it and its JSON on the recording's tape (format 1), in
//! one place. A `Host` method builds its call's request from the guest's
//! arguments and hands it, [`Described`], to the call path with the backend
//! call; nothing else describes the call.

pub mod dynamodb;
pub mod github;
pub mod others;

use serde_json::Value;

use crate::calls::{Call, Observer};

/// A capability call's request.
pub trait Request {
    const CALL: Call;
    /// How the transcript shows it (sealed values by their labels only).
    fn text(&self) -> String;
    /// Its JSON on the tape, as format 1 writes it.
    fn json(&self) -> Value;
}

/// A call as the transcript and the tape need it: each form built at once,
/// and only if something keeps it (a started call runs on after the
/// guest's arguments are gone, so nothing is left to build it from later).
pub struct Described {
    pub call: Call,
    /// For the transcript (the mock host).
    pub text: Option<String>,
    /// For the tape, or to find the answer in a replayed recording.
    pub json: Option<Value>,
}

impl Described {
    pub fn of<R: Request>(request: &R, observer: &Observer) -> Self {
        Described {
            call: R::CALL,
            text: observer.transcript.is_some().then(|| request.text()),
            json: (observer.tape.is_some() || observer.replay.is_some()).then(|| request.json()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::Transcript;
    use crate::calls::requests::github::Authenticate;

    #[test]
    fn only_the_forms_something_keeps_are_built() {
        let request = Authenticate {
            installation_id: 42,
        };
        let bare = Described::of(&request, &Observer::default());
        assert_eq!(bare.call, Call::GithubAuthenticate);
        assert!(bare.text.is_none() && bare.json.is_none());
        let watched = Observer {
            transcript: Some(Transcript::default()),
            ..Observer::default()
        };
        let described = Described::of(&request, &watched);
        assert_eq!(described.text.as_deref(), Some("installation=42"));
        assert!(described.json.is_none());
    }
}
