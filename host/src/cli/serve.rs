//! `serve` and `demo`: the daemon until a signal, and the walkthrough.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::Context;
use crate::config::{LogFormat, Settings, Uses};
use crate::daemon::assemble::assemble;

/// Consume the queues and create environments until SIGTERM/SIGINT.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  envmgr --config envmgr.toml serve\n  envmgr --data-dir .envmgr serve\n  \
envmgr serve --logic target/wasm32-wasip2/release/envmgr_guest.wasm\n\n\
A host started with --logic runs that component whatever `logic activate` says; \
`envmgr logic list` shows it as pinned."
)]
pub struct Serve {
    /// A logic component to run instead of the builtin one.
    #[arg(long)]
    logic: Option<PathBuf>,
}

impl Serve {
    pub fn run(&self, context: &Context) -> anyhow::Result<()> {
        // First of all: from here on SIGTERM/SIGINT is an orderly stop,
        // even while the config is read and the backends connect.
        let stop = {
            let _entered = context.runtime.enter();
            StopSignal::install()?
        };
        let settings = context.settings(Uses::Everything)?;
        let traces = super::init_logs_and_traces(&settings, context.runtime.handle().clone())?;
        let served = context
            .runtime
            .block_on(serve(settings, self.logic.as_deref(), stop));
        if let Some(traces) = traces {
            // What is batched goes out before the process ends; the export
            // runs on the runtime, so the wait does not block it.
            let _ = context.runtime.block_on(async move {
                tokio::task::spawn_blocking(move || traces.shutdown()).await
            });
        }
        served
    }
}

/// See envmgr work on this machine, nothing to set up.
///
/// Seeds an app and its secrets, enqueues a pull-request webhook and a
/// production create request, runs the daemon until both are done, shows
/// the result, then closes the pull request.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  envmgr demo\n  envmgr demo --verbose\n  envmgr demo --dir /tmp/envmgr-demo"
)]
pub struct Demo {
    /// Where the demo keeps its database; emptied first.
    #[arg(long, default_value = ".envmgr-demo")]
    dir: PathBuf,
    /// The daemon's log lines too (warnings and errors only otherwise).
    #[arg(long, short)]
    verbose: bool,
    /// Not read: the demo makes its own deployment in --dir.
    #[arg(long, hide = true, value_parser = not_for_demo)]
    config: Option<String>,
    /// Not read: the demo's database is in --dir.
    #[arg(long, hide = true, value_parser = not_for_demo)]
    data_dir: Option<String>,
}

/// `demo --config` / `--data-dir`: refused rather than ignored.
pub(super) fn not_for_demo(_: &str) -> Result<String, String> {
    Err(
        "the demo makes its own deployment and reads no config; use --dir for where it keeps it"
            .into(),
    )
}

impl Demo {
    pub fn run(&self, context: &Context) -> anyhow::Result<()> {
        super::init_logs_at(LogFormat::Human, if self.verbose { "info" } else { "warn" });
        context.runtime.block_on(crate::demo::run(&self.dir))
    }
}

async fn serve(settings: Settings, logic: Option<&Path>, stop: StopSignal) -> anyhow::Result<()> {
    let pinned = match logic {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        None => None,
    };
    let assembled = tokio::select! {
        assembled = assemble(&settings, pinned.as_deref(), None, stop.stopped()) => assembled?,
        _ = stop.stopped() => None,
    };
    let Some(running) = assembled else {
        tracing::info!("stopped before serving; bye");
        return Ok(());
    };
    running.run(stop.stopped()).await
}

/// SIGTERM or SIGINT, listened for from the moment it is installed (a
/// signal before anyone waits is not lost).
#[derive(Clone)]
pub struct StopSignal(tokio::sync::watch::Receiver<bool>);

impl StopSignal {
    /// Install the handlers; needs a tokio runtime.
    pub fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        // SIGHUP re-reads credential files; never fatal once serve starts.
        crate::rotation::catch_hangups()?;
        let (told, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
            let _ = told.send(true);
        });
        Ok(Self(stop))
    }

    /// Resolves once a signal came (at once if one came already).
    pub async fn stopped(&self) {
        let mut stop = self.0.clone();
        let _ = stop.wait_for(|stopped| *stopped).await;
    }
}
