//! Guest log lines (`wasi:logging`), forwarded to tracing and the transcript.

use crate::bindings::wasi::logging::logging::Level;

/// Longest log line kept from a guest; a chatty guest cannot flood the logs.
pub(crate) const MAX_MESSAGE_BYTES: usize = 4096;

pub(crate) fn forward(level: Level, context: &str, message: &str) {
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

pub(crate) fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
        Level::Critical => "critical",
    }
}
