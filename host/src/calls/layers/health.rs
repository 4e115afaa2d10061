//! Health: a backend that sees what may be the deployment's fault (a table
//! missing, its credentials refused) raises a suspicion on the message's
//! health watch. If a probe confirms it, the logic sees a retryable
//! `unavailable` rather than a refusal it would take for the message's own
//! (and mark the environment failed for); if not, the answer stands.
//!
//! The suspicion travels on the task-local watch rather than in the error:
//! the error is the WIT's, the same type the guest receives, and a backend
//! raises it from deep inside an SDK's error mapping (`aws::capability_error`).

use std::future::Future;

use crate::capabilities::{Describe, Error, ErrorCode, error};

pub async fn around<T, E: From<Error> + Describe>(
    next: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let raised = crate::health::raised();
    match next.await {
        // Boxed: a probe round is a large future, rarely awaited, and every
        // step outside this one would otherwise carry its size (on the
        // guest's fiber stack, in a debug build once per step).
        Err(failed) if crate::health::raised() > raised => {
            match Box::pin(crate::health::confirm()).await {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::layers::testing::{Answered, failed, run};

    #[test]
    fn outside_a_watched_message_an_answer_stands() {
        let answered: Answered = run(around(async {
            crate::health::suspect("dynamodb", "the table is missing");
            failed(ErrorCode::NotFound, "no such table")
        }));
        assert_eq!(answered.unwrap_err().code, ErrorCode::NotFound);
    }

    #[test]
    fn a_suspicion_no_probe_can_confirm_leaves_the_answer_as_it_was() {
        let (answered, suspicions): (Answered, _) = run(crate::health::watched(
            None,
            around(async {
                crate::health::suspect("kms", "the key is missing");
                failed(ErrorCode::NotFound, "no such key")
            }),
        ));
        assert_eq!(answered.unwrap_err().code, ErrorCode::NotFound);
        assert_eq!(suspicions.len(), 1);
    }
}
