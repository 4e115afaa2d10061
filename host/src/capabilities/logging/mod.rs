//! Guest log lines (`wasi:logging`), forwarded to tracing and the transcript.

use crate::bindings::wasi::logging::logging::{Host, Level};
use crate::engine::Session;
use crate::observe::Call;

/// Longest log line kept from a guest; a chatty guest cannot flood the logs.
const MAX_MESSAGE_BYTES: usize = 4096;

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

fn forward(level: Level, context: &str, message: &str) {
    match level {
        Level::Trace => tracing::trace!(target: "envmgr::guest", step = %context, "{message}"),
        Level::Debug => tracing::debug!(target: "envmgr::guest", step = %context, "{message}"),
        Level::Info => tracing::info!(target: "envmgr::guest", step = %context, "{message}"),
        Level::Warn => tracing::warn!(target: "envmgr::guest", step = %context, "{message}"),
        Level::Error | Level::Critical => {
            tracing::error!(target: "envmgr::guest", step = %context, "{message}")
        }
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
        Level::Critical => "critical",
    }
}
