//! The `requests` import: a platform API request put on the `api` queue
//! for later. Bounded per message — a logic version in a loop cannot fill
//! the queue: at most [`MOST_SENDS`] sends of at most [`MOST_BODY_BYTES`].

use crate::bindings::envmgr::environments::requests::Host;
use crate::boundary::Session;
use crate::calls::requests::others::SendRequest;
use crate::capabilities::{CapResult, ErrorCode, error};

/// Sends one message may make (the sweep sends at most 50).
pub const MOST_SENDS: u32 = 100;
/// A request's body, at most (the largest API request is a few KiB; SQS
/// takes 256 KiB).
pub const MOST_BODY_BYTES: usize = 64 * 1024;

impl Host for Session {
    async fn send(&mut self, body: String) -> wasmtime::Result<CapResult<String>> {
        let refused = if body.len() > MOST_BODY_BYTES {
            Some(format!(
                "a request of {} bytes is over the {MOST_BODY_BYTES} a send may carry",
                body.len()
            ))
        } else if self.sends >= MOST_SENDS {
            Some(format!(
                "one message may send {MOST_SENDS} requests at most"
            ))
        } else {
            None
        };
        let b = self.backends.clone();
        let described = self.describe(&SendRequest(&body));
        if let Some(why) = refused {
            let refusal = async { Err(error(ErrorCode::Invalid, why)) };
            return Ok(self.invoke(described, refusal).await);
        }
        self.sends += 1;
        Ok(self.invoke(described, b.requests.send(&body)).await)
    }
}
