//! `try` and `check-logic`: a logic component in the mock host, no
//! deployment needed.

use std::path::PathBuf;

use anyhow::Context as _;

use super::{Context, init_logs};
use crate::capabilities::dynamodb::show_item;
use crate::config::LogFormat;
use crate::engine::{Engine, Limits};
use crate::mock::{MockHost, seed};
use crate::support::hex_sha256;

/// Run messages through a logic version in the mock host.
///
/// Shows every capability call, the records, the comment and the runtime
/// request.
///
/// The mock host is seeded with the app `app_shop` for the repository
/// acme/shop (GitHub App installation 4242) and two secrets.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  envmgr try docs/examples/pull-request-opened.json\n  \
envmgr try --queue api docs/examples/api-production.json -v\n  \
envmgr try --logic my-logic.wasm docs/examples/pull-request-opened.json docs/examples/pull-request-closed.json"
)]
pub struct Try {
    /// Message bodies (JSON files), delivered in order.
    #[arg(required = true)]
    messages: Vec<PathBuf>,
    /// The logic component; the builtin one by default.
    #[arg(long)]
    logic: Option<PathBuf>,
    /// The queue the messages come from (`probot` or `api`).
    #[arg(long, default_value = "probot")]
    queue: String,
    /// Every call with its full arguments, and the stored items (one
    /// short line per call otherwise).
    #[arg(long, short)]
    verbose: bool,
    #[command(flatten)]
    no_deployment: NoDeployment,
}

/// `--config` and `--data-dir` on a command that needs no deployment:
/// refused with the reason rather than silently ignored (hidden, so the
/// help does not offer them).
#[derive(clap::Args)]
pub(super) struct NoDeployment {
    #[arg(long, hide = true, value_parser = needs_no_deployment)]
    config: Option<String>,
    #[arg(long, hide = true, value_parser = needs_no_deployment)]
    data_dir: Option<String>,
}

fn needs_no_deployment(_: &str) -> Result<String, String> {
    Err("this command needs no deployment: it reads no config or data directory".into())
}

/// A call's line without `-v`: as wide as a terminal.
const SHORT_LINE: usize = 120;

impl Try {
    pub fn run(&self, context: &Context) -> anyhow::Result<()> {
        init_logs(LogFormat::Human);
        context.runtime.block_on(try_messages(
            &self.messages,
            self.logic.clone(),
            &self.queue,
            self.verbose,
        ))
    }
}

/// Check that a component implements the envmgr contract and print its id.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  envmgr check-logic target/wasm32-wasip2/release/envmgr_guest.wasm"
)]
pub struct CheckLogic {
    /// The component file.
    file: PathBuf,
    #[command(flatten)]
    no_deployment: NoDeployment,
}

impl CheckLogic {
    pub fn run(&self) -> anyhow::Result<()> {
        init_logs(LogFormat::Human);
        let file = &self.file;
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let engine = Engine::new(Limits::default())?;
        let logic = engine.load(&bytes)?;
        println!(
            "{} implements envmgr:environments@{} ({} bytes){}",
            logic.id,
            logic.contract,
            bytes.len(),
            if logic.contract == crate::contract::CURRENT {
                ""
            } else if crate::contract::EARLIER_PATCHES.contains(&logic.contract) {
                "; an earlier patch of the current contract, which this host runs"
            } else {
                "; the previous contract, run by this host for one more release"
            }
        );
        Ok(())
    }
}

/// Each message through the mock host, with what it did.
async fn try_messages(
    messages: &[PathBuf],
    logic: Option<PathBuf>,
    queue: &str,
    verbose: bool,
) -> anyhow::Result<()> {
    let line = |text: String| match verbose {
        true => text,
        false => crate::redact::cut(&text, SHORT_LINE),
    };
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
    seed::example_shop(
        &host,
        "postgres://shop:hunter2@db/shop",
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
    );

    for path in messages {
        let body =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let delivery = host.deliver(&host.message(queue, &body)).await;
        println!("\n== {} ==", path.display());
        for entry in &delivery.transcript {
            println!("  {}", line(entry.to_string()));
        }
        println!("=> {}", crate::engine::summary(&delivery.result));
        host.clock.advance(std::time::Duration::from_secs(60));
    }

    println!("\n== environments table ==");
    for item in host.tables.scan("environments")? {
        println!("  {}", line(show_item(&item)));
    }
    if !verbose {
        println!("  (-v: every call's full arguments and the whole items)");
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
    for event in host.analytics.events()? {
        println!(
            "\n== analytics ==\n  {} user={} {}",
            event.event, event.user_id, event.properties_json
        );
    }
    for comment in crate::capabilities::github::local::comments(&host.store)? {
        println!(
            "\n== comment {} on {}#{} ==\n{}",
            comment.id, comment.repository, comment.issue, comment.body
        );
    }
    Ok(())
}
