//! The `wasi:logging` import: the logic's log lines, redacted and tagged with
//! the message.

use crate::bindings::wasi::logging::logging::*;
use crate::boundary::Session;
use crate::calls::Call;
use crate::capabilities::logging::*;

impl Host for Session {
    async fn log(
        &mut self,
        level: Level,
        context: String,
        message: String,
    ) -> wasmtime::Result<()> {
        let mut message = message;
        if message.len() > MAX_MESSAGE_BYTES {
            let mut end = MAX_MESSAGE_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        // A replayed run (`logic replay`, a shadow beside live traffic) is
        // not the deployment speaking: its lines stay at debug, under their
        // own target, where no operator's alert on warnings and errors sees
        // them.
        if self.backends.observer.replay.is_some() {
            tracing::debug!(
                target: "envmgr::replayed_guest",
                step = %context,
                level = level_name(level),
                "{message}"
            );
        } else {
            forward(level, &context, &message);
        }
        self.backends.observer.record(
            Call::Log,
            || format!("{} {context}", level_name(level)),
            || message.clone(),
        );
        Ok(())
    }
}
