//! The transcript: every call as the guest made it, with its answer in
//! words. Only the mock host keeps one; the request's text is built only
//! when it does.

use std::future::Future;

use super::shown;
use crate::calls::{Call, Entry, Transcript};
use crate::capabilities::Describe;

pub async fn around<T, E: Describe>(
    transcript: Option<&Transcript>,
    call: Call,
    request: impl FnOnce() -> String,
    next: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let result = next.await;
    if let Some(transcript) = transcript {
        transcript.record(Entry {
            call,
            request: request(),
            result: shown(&result),
        });
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::layers::testing::{Answered, failed, run};
    use crate::capabilities::ErrorCode;

    #[test]
    fn each_call_is_written_with_its_answer() {
        let transcript = Transcript::default();
        let ok: Answered = run(around(
            Some(&transcript),
            Call::KmsDecrypt,
            || "key=k".into(),
            async { Ok("plain".into()) },
        ));
        assert!(ok.is_ok());
        let _ = run(around(
            Some(&transcript),
            Call::RuntimeCreate,
            || "env".into(),
            async { failed(ErrorCode::Conflict, "taken") },
        ));
        let shown: Vec<String> = transcript.take().iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "kms.decrypt key=k -> ok",
                "runtime.create env -> error(conflict): taken"
            ]
        );
    }

    #[test]
    fn without_a_transcript_the_request_text_is_never_built() {
        let answered: Answered = run(around(
            None,
            Call::Log,
            || unreachable!("no transcript: no text"),
            async { Ok(String::new()) },
        ));
        assert!(answered.is_ok());
    }
}
