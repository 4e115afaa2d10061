//! The tape: a recorded message's calls go on it as typed request and
//! answer, after redaction (the recording keeps what the guest saw).

use std::future::Future;

use serde_json::value::RawValue;

use crate::bindings::json::Recordable;
use crate::calls::Call;
use crate::calls::tape::{Tape, answer};

pub async fn around<T: Recordable, E: Recordable>(
    tape: Option<&Tape>,
    call: Call,
    request: Option<Box<RawValue>>,
    next: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let result = next.await;
    if let (Some(tape), Some(request)) = (tape, request) {
        tape.call(call, request, answer(&result));
    }
    result
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::calls::layers::testing::{Answered, failed, run};
    use crate::capabilities::ErrorCode;

    #[test]
    fn the_typed_request_and_its_answer_go_on_the_tape() {
        let tape = Tape::default();
        let _: Answered = run(around(
            Some(&tape),
            Call::KmsDecrypt,
            Some(crate::calls::tape::text(&json!({"key": "k"}))),
            async { Ok("plain".into()) },
        ));
        let _ = run(around(
            Some(&tape),
            Call::RuntimeCreate,
            Some(crate::calls::tape::text(&json!({}))),
            async { failed(ErrorCode::Conflict, "taken") },
        ));
        let calls = tape.taken().calls;
        assert_eq!(calls[0].call, "kms.decrypt");
        assert_eq!(calls[0].request(), json!({"key": "k"}));
        assert_eq!(calls[0].answer(), json!({"ok": "plain"}));
        assert_eq!(calls[1].answer()["err"]["code"], "conflict");
    }

    #[test]
    fn a_message_not_recorded_leaves_no_tape() {
        let tape = Tape::default();
        let _: Answered = run(around(Some(&tape), Call::Log, None, async {
            Ok(String::new())
        }));
        assert!(tape.taken().calls.is_empty());
    }
}
