//! Redaction: what a dependency sends back passes the message's redactor
//! before anything else sees it (the tape, the transcript, the guest).

use std::future::Future;

use crate::redact::{Redactor, Scrub};

pub async fn around<T: Scrub, E: Scrub>(
    redactor: &Redactor,
    next: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    match next.await {
        Ok(value) => Ok(value.scrub(redactor)),
        Err(error) => Err(error.scrub(redactor)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::layers::testing::{failed, run};
    use crate::capabilities::github::Comment;
    use crate::capabilities::{Error, ErrorCode};
    use crate::redact::Credentials;

    #[test]
    fn answers_and_errors_alike_lose_the_secrets_they_carry() {
        let redactor = Redactor::new(Credentials::default());
        redactor.add("hunter2-the-password");
        let error = run(around(&redactor, async {
            failed(ErrorCode::Invalid, "bad password hunter2-the-password").map(|_| ())
        }))
        .unwrap_err();
        assert!(!error.message.contains("hunter2"), "{}", error.message);
        let answered: Result<Comment, Error> = run(around(&redactor, async {
            Ok(Comment {
                id: 1,
                body: "echo: hunter2-the-password".into(),
                html_url: "https://github.com/acme/shop/pull/1#c1".into(),
            })
        }));
        assert!(!answered.unwrap().body.contains("hunter2"));
    }
}
