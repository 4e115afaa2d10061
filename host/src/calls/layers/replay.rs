//! Replay: a replayed message's calls are answered from its recording and
//! never reach a backend (nothing below this step runs). A call the
//! recording cannot answer gets `unavailable`, and the replay calls the
//! message not replayable.

use std::future::Future;

use serde_json::Value;

use crate::bindings::json::Recordable;
use crate::calls::Call;
use crate::calls::tape::{Replayer, answered};
use crate::capabilities::{Error, ErrorCode, error};

pub async fn around<T: Recordable, E: From<Error> + Recordable>(
    replayer: Option<&Replayer>,
    call: Call,
    request: Option<&Value>,
    next: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    match replayer {
        Some(replayer) => replayed(replayer, call, request.cloned().unwrap_or_default()),
        None => next.await,
    }
}

/// The recording's answer, or `unavailable` when it has none.
fn replayed<T: Recordable, E: From<Error> + Recordable>(
    replayer: &Replayer,
    call: Call,
    request: Value,
) -> Result<T, E> {
    let unanswered = |why: &str| {
        Err(E::from(error(
            ErrorCode::Unavailable,
            format!("not replayable: {why}"),
        )))
    };
    match replayer.answer(call, &request) {
        Some(answer) => match answered::<T, E>(&answer) {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::calls::layers::testing::{Answered, run};
    use crate::calls::tape::{RecordedCall, Taped};

    fn replayer() -> Replayer {
        Replayer::new(&Taped {
            calls: vec![RecordedCall::new(
                "kms.decrypt",
                &json!({ "key": "k" }),
                &json!({ "ok": "recorded" }),
            )],
            ..Taped::default()
        })
    }

    #[test]
    fn a_replayed_call_is_answered_from_the_recording_and_never_runs() {
        let replayer = replayer();
        let answered: Answered = run(around(
            Some(&replayer),
            Call::KmsDecrypt,
            Some(&json!({ "key": "k" })),
            async { unreachable!("a replayed call reaches no backend") },
        ));
        assert_eq!(answered.unwrap(), "recorded");
    }

    #[test]
    fn a_call_the_recording_does_not_hold_is_unavailable() {
        let replayer = replayer();
        let answered: Answered = run(around(
            Some(&replayer),
            Call::RuntimeCreate,
            Some(&json!({})),
            async { unreachable!() },
        ));
        let failed = answered.unwrap_err();
        assert_eq!(failed.code, ErrorCode::Unavailable);
        assert!(
            failed.message.starts_with("not replayable"),
            "{}",
            failed.message
        );
    }

    #[test]
    fn outside_a_replay_the_call_runs() {
        let answered: Answered = run(around(None, Call::Log, None, async { Ok("ran".into()) }));
        assert_eq!(answered.unwrap(), "ran");
    }
}
