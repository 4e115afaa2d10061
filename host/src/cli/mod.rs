//! The `envmgr` command line. `host/src/main.rs` only calls [`main`]; each
//! family of subcommands is a module with its arguments and its `run`:
//!
//! | module | commands |
//! |---|---|
//! | [`serve`] | `serve`, `demo` |
//! | [`operator`] | `init`, `send`, `add-app`, `set-secret`, `secrets`, `check-data`, `show` |
//! | [`logic`] | `logic …` |
//! | [`record`] | `record …` |
//! | [`dlq`] | `dlq …` |
//! | [`mock`] | `try`, `check-logic` |

mod dlq;
mod logic;
mod mock;
mod operator;
mod record;
pub mod serve;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::{LogFormat, Settings, Uses};

#[derive(Parser)]
#[command(
    name = "envmgr",
    version,
    about = "Environment Manager: creates preview and production environments"
)]
struct Cli {
    /// The TOML config file; `ENVMGR__SECTION__KEY` variables override it.
    #[arg(long, global = true, env = "ENVMGR_CONFIG")]
    config: Option<PathBuf>,
    /// The data directory of the local backend (config `local.data_dir`,
    /// `.envmgr` by default).
    #[arg(long, global = true, env = "ENVMGR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Demo(serve::Demo),
    /// Logic versions: install (validate, cache), activate (all traffic or
    /// a canary share), promote, roll back, list, collect. Running hosts
    /// follow within `logic.poll_ms`.
    Logic {
        #[command(subcommand)]
        command: logic::LogicCommand,
    },
    /// Show what the local database holds: environments, comments, runtime
    /// requests, analytics events, queues and dead letters.
    Show,
    Serve(serve::Serve),
    /// Create the queues (with dead-letter queues and redrive policy), the
    /// tables and the KMS key if missing (the local database makes them
    /// when opened).
    Init,
    Send(operator::Send),
    Sweep(operator::Sweep),
    AddApp(operator::AddApp),
    /// List every stored app, repository index and secret item that breaks
    /// the rules of docs/data-model.md (exit 1 if any): run before upgrading.
    CheckData,
    SetSecret(operator::SetSecret),
    /// Secrets as a whole: move every ciphertext to a new KMS key.
    Secrets {
        #[command(subcommand)]
        command: operator::SecretsCommand,
    },
    Try(mock::Try),
    CheckLogic(mock::CheckLogic),
    /// Recorded messages (`[record]`): list them, export them as files.
    Record {
        #[command(subcommand)]
        command: record::RecordCommand,
    },
    /// Dead letters: list, show, move back to their queue (redrive) or
    /// delete (purge), on either backend.
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
}

/// What every command gets: the configuration as it asks for it, and the
/// runtime to run on.
pub struct Context {
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    runtime: tokio::runtime::Runtime,
}

impl Context {
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

pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
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
        Command::Show => operator::show(&context),
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
    let _ = install_logs::<tracing_subscriber::layer::Identity>(format, None);
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
            install_logs(settings.log.format, Some(layer));
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
fn install_logs<T>(format: LogFormat, traces: Option<T>) -> bool
where
    T: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
{
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::filter::{FilterExt as _, filter_fn};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("ENVMGR_LOG").unwrap_or_else(|_| "info".into());
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
