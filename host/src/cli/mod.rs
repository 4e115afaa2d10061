//! The `envmgr` command line. `host/src/main.rs` only calls [`main`]; each
//! family of subcommands is a module with its arguments and its `run`:
//!
//! | module | commands |
//! |---|---|
//! | [`serve`] | `serve`, `demo` |
//! | [`operator`] | `init`, `send`, `sweep`, `add-app`, `set-secret`, `check-data`, `show` |
//! | [`apps`] | `apps list`, `secrets list`, `secrets re-encrypt` |
//! | [`logic`] | `logic …` |
//! | [`record`] | `record …` |
//! | [`dlq`] | `dlq …` |
//! | [`mock`] | `try`, `check-logic` |
//! | [`reference`] | `completions`; the man pages and the command reference |
//!
//! [`output`] holds what they print with: times, tables, plurals, `--json`.

mod apps;
mod dlq;
mod logic;
mod mock;
mod operator;
pub(crate) mod output;
mod record;
mod reference;
pub mod serve;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::{LogFormat, Settings, Uses};

#[derive(Parser)]
#[command(
    name = "envmgr",
    version,
    about = "Environment Manager: creates preview and production environments",
    long_about = "Environment Manager: creates a preview environment per pull request and a \
production environment per app, from webhooks and API requests on SQS, with its logic \
as a swappable WebAssembly component.",
    after_help = "Examples:\n  envmgr demo\n  envmgr --config envmgr.toml serve\n  \
envmgr logic install my-logic.wasm --tag v2\n\nThe book: docs/SUMMARY.md"
)]
struct Cli {
    /// The TOML config file; `ENVMGR__SECTION__KEY` variables override it.
    #[arg(long, global = true, env = "ENVMGR_CONFIG", hide_env_values = true)]
    config: Option<PathBuf>,
    /// The data directory of the local backend (config `local.data_dir`,
    /// `.envmgr` by default).
    #[arg(long, global = true, env = "ENVMGR_DATA_DIR", hide_env_values = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Demo(serve::Demo),
    Serve(serve::Serve),
    /// Create the queues, tables and KMS key if missing.
    ///
    /// The queues come with dead-letter queues and a redrive policy; running
    /// it again changes nothing. The local database makes its tables and key
    /// when opened.
    #[command(
        after_help = "Examples:\n  envmgr --config envmgr.toml init\n  envmgr --data-dir .envmgr init"
    )]
    Init,
    AddApp(operator::AddApp),
    /// The registered apps.
    Apps {
        #[command(subcommand)]
        command: apps::AppsCommand,
    },
    SetSecret(operator::SetSecret),
    /// An app's secrets (names and scopes, never values), and moving every
    /// ciphertext to a new KMS key.
    Secrets {
        #[command(subcommand)]
        command: apps::SecretsCommand,
    },
    Send(operator::Send),
    Show(operator::Show),
    /// Logic versions: install, activate, promote, roll back, list, collect.
    ///
    /// Install validates and caches a component; activate gives it all
    /// traffic, a canary share or a shadow run. Running hosts follow within
    /// `logic.poll_ms`.
    Logic {
        #[command(subcommand)]
        command: logic::LogicCommand,
    },
    /// Recorded messages (`[record]`): list them, export them as files.
    Record {
        #[command(subcommand)]
        command: record::RecordCommand,
    },
    Try(mock::Try),
    CheckLogic(mock::CheckLogic),
    /// Dead letters: list, show, redrive, purge.
    ///
    /// On either backend: redrive moves them back to their queue, purge
    /// deletes them.
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
    Sweep(operator::Sweep),
    /// Check the stored apps and secrets against the data model's rules.
    ///
    /// Lists every stored app, repository index and secret item that breaks
    /// the rules of docs/data-model.md (exit 1 if any): run before upgrading.
    #[command(after_help = "Example:\n  envmgr --config envmgr.toml check-data")]
    CheckData,
    Completions(reference::Completions),
}

/// What every command gets: the configuration as it asks for it, and the
/// runtime to run on.
pub struct Context {
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    runtime: tokio::runtime::Runtime,
}

impl Context {
    /// [`settings`](Self::settings) for a command that only reads: on the
    /// local backend the data directory must hold a database already, so a
    /// mistyped `--data-dir` is said rather than answered from a new, empty
    /// one. Commands that write create it (the quickstart needs that).
    fn existing(&self, uses: Uses) -> anyhow::Result<Settings> {
        let settings = self.settings(uses)?;
        let dir = &settings.local.data_dir;
        if settings.backend == crate::config::Backend::Local
            && !dir.join(crate::local::FILE_NAME).exists()
        {
            anyhow::bail!(
                "no envmgr data in {} (no {}): check --data-dir, ENVMGR_DATA_DIR or local.data_dir; commands that write, such as `envmgr init` and `envmgr add-app`, create it",
                dir.display(),
                crate::local::FILE_NAME
            );
        }
        Ok(settings)
    }

    /// The configuration, validated for what the command `uses`.
    fn settings(&self, uses: Uses) -> anyhow::Result<Settings> {
        let data_dir = self.data_dir.as_ref().map(|dir| {
            (
                "ENVMGR__LOCAL__DATA_DIR".to_string(),
                dir.display().to_string(),
            )
        });
        Settings::load_for(
            self.config.as_deref(),
            std::env::vars().chain(data_dir),
            uses,
        )
    }
}

/// Run the command line. A failure is one line on standard error, `error:`
/// and the error with its causes, and exit status 1: a user's mistake is
/// not a crash, so no backtrace whatever `RUST_BACKTRACE` says.
pub fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let context = Context {
        config: cli.config,
        data_dir: cli.data_dir,
        runtime: tokio::runtime::Runtime::new()?,
    };
    match &cli.command {
        Command::Demo(demo) => demo.run(&context),
        Command::Serve(serve) => serve.run(&context),
        Command::Logic { command } => command.run(&context),
        Command::Record { command } => command.run(&context),
        Command::Dlq { command } => command.run(&context),
        Command::Secrets { command } => command.run(&context),
        Command::Apps { command } => command.run(&context),
        Command::Completions(completions) => completions.run(),
        Command::Show(show) => show.run(&context),
        Command::Init => operator::init(&context),
        Command::CheckData => operator::check_data(&context),
        Command::Send(send) => send.run(&context),
        Command::Sweep(sweep) => sweep.run(&context),
        Command::AddApp(add_app) => add_app.run(&context),
        Command::SetSecret(set_secret) => set_secret.run(&context),
        Command::Try(try_them) => try_them.run(&context),
        Command::CheckLogic(check) => check.run(),
    }
}

/// The clap definition of the whole command line (for the generated
/// reference and the completions).
pub(crate) fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

fn read_input(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    }
}

pub(crate) fn init_logs(format: LogFormat) {
    let _ = install_logs::<tracing_subscriber::layer::Identity>(format, None, "info");
}

/// Logs at `level` and above unless `ENVMGR_LOG` says otherwise (the demo
/// keeps its daemon's info lines for `--verbose`).
pub(crate) fn init_logs_at(format: LogFormat, level: &str) {
    let _ = install_logs::<tracing_subscriber::layer::Identity>(format, None, level);
}

/// `serve`'s logs, and its traces when `[telemetry]` or the `OTEL_*`
/// variables name a collector: the exporter, to stop at the end.
pub(crate) fn init_logs_and_traces(
    settings: &crate::config::Settings,
    runtime: tokio::runtime::Handle,
) -> anyhow::Result<Option<crate::telemetry::Telemetry>> {
    let endpoint = settings.telemetry.otlp_endpoint.as_deref();
    match crate::telemetry::Telemetry::layer(endpoint, runtime)? {
        Some((layer, telemetry)) => {
            install_logs(settings.log.format, Some(layer), "info");
            Ok(Some(telemetry))
        }
        None => {
            init_logs(settings.log.format);
            Ok(None)
        }
    }
}

/// Logs to stderr (`ENVMGR_LOG` filters them), beside `traces` if given.
/// The exported spans never reach the log lines, nor log events the
/// traces.
fn install_logs<T>(format: LogFormat, traces: Option<T>, level: &str) -> bool
where
    T: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
{
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::filter::{FilterExt as _, filter_fn};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("ENVMGR_LOG").unwrap_or_else(|_| level.into());
    let not_traces = filter_fn(|metadata| metadata.target() != crate::telemetry::spans::TARGET);
    // Colour only for a person at a terminal: a file or a pipe gets plain
    // text (and NO_COLOR is honoured, https://no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Human => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    tracing_subscriber::registry()
        .with(traces)
        .with(fmt.with_filter(not_traces.and(filter)))
        .try_init()
        .is_ok()
}
