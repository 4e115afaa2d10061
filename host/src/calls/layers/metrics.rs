//! Metrics: a dependency's failure counted by interface and error code (a
//! condition that did not hold is an answer, not a failure).

use std::future::Future;

use crate::calls::Call;
use crate::capabilities::{Describe, code_name};

pub async fn around<T, E: Describe>(
    call: Call,
    next: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let result = next.await;
    if let Err(failed) = &result
        && let Some(code) = failed.failure_code()
    {
        crate::metrics::dependency_error(call.dependency(), code_name(code));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::envmgr::environments::dynamodb::WriteError;
    use crate::calls::layers::testing::{failed, run};
    use crate::capabilities::ErrorCode;

    fn counted(code: &str) -> u64 {
        crate::metrics::dependency_errors("keys", code)
    }

    #[test]
    fn failures_are_counted_and_refused_conditions_are_not() {
        let before = counted("conflict");
        let _ = run(around(Call::KeysGenerate, async {
            failed(ErrorCode::Conflict, "taken")
        }));
        assert_eq!(counted("conflict"), before + 1);
        let refused: Result<(), WriteError> = run(around(Call::KeysGenerate, async {
            Err(WriteError::ConditionFailed(vec![0]))
        }));
        assert!(refused.is_err());
        assert_eq!(counted("conflict"), before + 1);
    }
}
