//! The `envmgr` command line. `host/src/main.rs` only calls [`main`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::capabilities::Backends;
use crate::capabilities::analytics::Analytics;
use crate::capabilities::analytics::disabled::Disabled;
use crate::capabilities::analytics::segment::{SegmentAnalytics, SegmentOptions};
use crate::capabilities::config::Config;
use crate::capabilities::dynamodb::aws::AwsTables;
use crate::capabilities::dynamodb::show_item;
use crate::capabilities::github::app::GitHubApp;
use crate::capabilities::kms::aws::AwsKms;
use crate::capabilities::runtime::http::HttpRuntime;
use crate::config::{LogFormat, Settings, read_secret};
use crate::daemon::{Daemon, QueueUrls};
use crate::engine::{Engine, Limits, hex_sha256};
use crate::mock::{MockHost, seed};
use crate::observe::Observer;
use crate::{Outcome, RunError, admin};

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consume the queues and create environments until SIGTERM/SIGINT.
    Serve {
        /// A logic component to run instead of the builtin one.
        #[arg(long)]
        logic: Option<PathBuf>,
    },
    /// Create the queues (with dead-letter queues and redrive policy), the
    /// tables and the KMS key if missing.
    Init,
    /// Put a message on a queue.
    Send {
        /// The queue, by its name in the config (`probot`, `api`).
        #[arg(long)]
        queue: String,
        /// The body, from a file (`-` for standard input).
        #[arg(long, conflicts_with = "body")]
        file: Option<PathBuf>,
        /// The body, inline.
        #[arg(long)]
        body: Option<String>,
    },
    /// Register an app (the app record and its repository index).
    AddApp {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// `owner/name` on GitHub.
        #[arg(long)]
        repository: String,
        /// The default entrypoint (`index.ts` when unset).
        #[arg(long)]
        entrypoint: Option<String>,
    },
    /// Encrypt a secret with KMS and store it for an app.
    SetSecret {
        #[arg(long)]
        app: String,
        /// global, preview, production or environment:<id>.
        #[arg(long)]
        scope: String,
        #[arg(long)]
        name: String,
        /// Read the value from this file; standard input otherwise.
        #[arg(long)]
        value_file: Option<PathBuf>,
    },
    /// Run messages through a logic version in the mock host and show every
    /// capability call, the records, the comment and the runtime request.
    ///
    /// The mock host is seeded with the app `app_shop` for the repository
    /// acme/shop (GitHub App installation 4242) and two secrets.
    Try {
        /// Message bodies (JSON files), delivered in order.
        #[arg(required = true)]
        messages: Vec<PathBuf>,
        /// The logic component; the builtin one by default.
        #[arg(long)]
        logic: Option<PathBuf>,
        /// The queue the messages come from (`probot` or `api`).
        #[arg(long, default_value = "probot")]
        queue: String,
    },
    /// Check that a component implements the envmgr contract and print its id.
    CheckLogic {
        /// The component file.
        file: PathBuf,
    },
}

pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = || Settings::load(cli.config.as_deref(), std::env::vars());
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Serve { ref logic } => {
            let settings = settings()?;
            init_logs(settings.log.format);
            runtime.block_on(serve(settings, logic.as_deref()))
        }
        Command::Init => {
            init_logs(LogFormat::Human);
            runtime.block_on(admin::init(&settings()?))
        }
        Command::Send {
            ref queue,
            ref file,
            ref body,
        } => {
            init_logs(LogFormat::Human);
            let body = match (file, body) {
                (_, Some(body)) => body.clone(),
                (Some(path), None) => read_input(path)?,
                (None, None) => anyhow::bail!("give the body with --file or --body"),
            };
            let id = runtime.block_on(admin::send(&settings()?, queue, &body))?;
            println!("sent {id} to {queue}");
            Ok(())
        }
        Command::AddApp {
            ref id,
            ref name,
            ref repository,
            ref entrypoint,
        } => {
            init_logs(LogFormat::Human);
            runtime.block_on(admin::add_app(
                &settings()?,
                id,
                name,
                repository,
                entrypoint.as_deref(),
            ))?;
            println!("app {id} ({repository}) added");
            Ok(())
        }
        Command::SetSecret {
            ref app,
            ref scope,
            ref name,
            ref value_file,
        } => {
            init_logs(LogFormat::Human);
            let value = read_input(value_file.as_deref().unwrap_or(Path::new("-")))?;
            let value = value.strip_suffix('\n').unwrap_or(&value);
            runtime.block_on(admin::set_secret(&settings()?, app, scope, name, value))?;
            println!("secret {name} set for app {app} ({scope})");
            Ok(())
        }
        Command::Try {
            ref messages,
            ref logic,
            ref queue,
        } => {
            init_logs(LogFormat::Human);
            runtime.block_on(try_messages(messages, logic.clone(), queue))
        }
        Command::CheckLogic { ref file } => {
            init_logs(LogFormat::Human);
            let bytes =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            let engine = Engine::new(Limits::default())?;
            let logic = engine.load(&bytes)?;
            println!(
                "{} implements envmgr:environments@0.1.0 ({} bytes)",
                logic.id,
                bytes.len()
            );
            Ok(())
        }
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

fn init_logs(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("ENVMGR_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// How long `serve` waits between tries to reach SQS at start.
const STARTUP_RETRY: Duration = Duration::from_secs(2);

async fn serve(settings: Settings, logic: Option<&Path>) -> anyhow::Result<()> {
    let sdk = crate::aws::sdk_config(&settings.aws).await;
    let github = settings
        .github
        .as_ref()
        .context("config key `github`: serve needs the GitHub App (app_id, private key)")?;
    let private_key = read_secret(
        github.private_key_file.as_deref(),
        "ENVMGR_GITHUB_PRIVATE_KEY",
        "GitHub App private key",
    )?;
    let runtime_settings = settings
        .runtime
        .as_ref()
        .context("config key `runtime`: serve needs the Runtime Service url")?;
    let runtime_token = read_secret(
        runtime_settings.token_file.as_deref(),
        "ENVMGR_RUNTIME_TOKEN",
        "Runtime Service token",
    )?;
    let segment = match &settings.segment {
        Some(segment) => Some(Arc::new(SegmentAnalytics::start(SegmentOptions {
            url: segment.url.clone(),
            write_key: read_secret(
                segment.write_key_file.as_deref(),
                "ENVMGR_SEGMENT_WRITE_KEY",
                "Segment write key",
            )?,
            batch_size: segment.batch_size,
            flush_interval: Duration::from_millis(segment.flush_interval_ms),
            buffer: segment.buffer,
        }))),
        None => None,
    };
    let analytics: Arc<dyn Analytics> = match &segment {
        Some(segment) => segment.clone(),
        None => Arc::new(Disabled),
    };
    let backends = Arc::new(Backends {
        github: Arc::new(GitHubApp::new(
            github.app_id,
            &private_key,
            &github.api_url,
        )?),
        dynamodb: Arc::new(AwsTables::new(&sdk, settings.tables.mapping())),
        kms: Arc::new(AwsKms::new(&sdk)),
        analytics,
        runtime: Arc::new(HttpRuntime::new(
            &runtime_settings.url,
            runtime_token,
            Duration::from_millis(runtime_settings.timeout_ms),
            runtime_settings.retries,
        )?),
        config: Arc::new(Config::new(settings.logic_config.clone())),
        observer: Observer::default(),
        clock: None,
    });

    let engine = Arc::new(Engine::new(settings.limits())?);
    let component = match logic {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => crate::BUILTIN_LOGIC.to_vec(),
    };
    let logic = Arc::new(engine.load(&component)?);

    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let mut queues = Vec::new();
    for (logical, queue) in &settings.queues {
        // SQS may not be reachable yet (a restart of the endpoint): wait.
        let urls = loop {
            match QueueUrls::resolve(&sqs, queue).await {
                Ok(urls) => break urls,
                Err(e) => {
                    tracing::warn!(queue = %logical, error = %e, "queue not reachable; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(STARTUP_RETRY) => {}
                        _ = shutdown_signal() => return Ok(()),
                    }
                }
            }
        };
        queues.push((logical.clone(), queue.clone(), urls));
    }
    let daemon = Daemon {
        engine,
        logic,
        backends,
        sqs,
        queues,
        grace: Duration::from_secs(settings.shutdown.grace_seconds),
    };
    daemon.run(shutdown_signal()).await?;
    if let Some(segment) = segment {
        segment.flush_and_stop().await;
    }
    Ok(())
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn try_messages(
    messages: &[PathBuf],
    logic: Option<PathBuf>,
    queue: &str,
) -> anyhow::Result<()> {
    let component = match &logic {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => crate::BUILTIN_LOGIC.to_vec(),
    };
    let host = MockHost::load(&component)?;
    println!(
        "logic {} ({} bytes)",
        hex_sha256(&component),
        component.len()
    );
    seed::app(&host, "app_shop", "Shop", "acme/shop", "src/server.ts");
    seed::secret(
        &host,
        "app_shop",
        "global",
        "DATABASE_URL",
        "postgres://shop:hunter2@db/shop",
    );
    seed::secret(
        &host,
        "app_shop",
        "preview",
        "STRIPE_KEY",
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
    );
    host.github.add_installation(4242);

    for path in messages {
        let body =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let delivery = host.deliver(&host.message(queue, &body)).await;
        println!("\n== {} ==", path.display());
        for entry in &delivery.transcript {
            println!("  {entry}");
        }
        match &delivery.result {
            Ok(Ok(Outcome::Done(what))) => println!("=> done: {what}"),
            Ok(Ok(Outcome::Skipped(why))) => println!("=> skipped: {why}"),
            Ok(Err(failure)) => println!("=> {:?} failure: {}", failure.kind, failure.reason),
            Err(
                error @ (RunError::Timeout(_) | RunError::MemoryExhausted(_) | RunError::Trap(_)),
            ) => {
                println!("=> {error}")
            }
        }
        host.clock.advance(std::time::Duration::from_secs(60));
    }

    println!("\n== environments table ==");
    for item in host.tables.scan("environments") {
        println!("  {}", show_item(&item));
    }
    for call in host.runtime.calls() {
        let secrets: Vec<String> = call
            .secrets
            .iter()
            .map(|(name, _)| format!("{name}=****"))
            .collect();
        println!(
            "\n== runtime request {} ==\n  {} {} {}@{} entrypoint={} token={} secrets=[{}]",
            call.idempotency_key,
            call.environment_id,
            call.environment_type,
            call.repository,
            call.sha,
            call.entrypoint,
            if call.installation_token.is_some() {
                "****"
            } else {
                "none"
            },
            secrets.join(", ")
        );
    }
    for event in host.analytics.events() {
        println!(
            "\n== analytics ==\n  {} user={} {}",
            event.event, event.user_id, event.properties_json
        );
    }
    for (repo, issue, comment) in host.github.all_comments() {
        println!(
            "\n== comment {} on {repo}#{issue} ==\n{}",
            comment.id, comment.body
        );
    }
    Ok(())
}
