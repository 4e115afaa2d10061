//! `envmgr`: the Environment Manager host.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use envmgr::capabilities::dynamodb::show_item;
use envmgr::engine::{Engine, Limits, hex_sha256};
use envmgr::mock::{MockHost, seed};
use envmgr::{Outcome, RunError};

#[derive(Parser)]
#[command(
    name = "envmgr",
    version,
    about = "Environment Manager: creates preview and production environments"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    match Cli::parse().command {
        Command::Try {
            messages,
            logic,
            queue,
        } => runtime.block_on(try_messages(&messages, logic, &queue)),
        Command::CheckLogic { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
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

async fn try_messages(
    messages: &[PathBuf],
    logic: Option<PathBuf>,
    queue: &str,
) -> anyhow::Result<()> {
    let component = match &logic {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => envmgr::BUILTIN_LOGIC.to_vec(),
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
