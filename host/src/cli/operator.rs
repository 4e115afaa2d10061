//! The operator's commands on the deployment: `init`, `send`, `sweep`,
//! `add-app`, `set-secret`, `check-data`, `show`.

use std::path::PathBuf;

use anyhow::Context as _;

use super::{Context, init_logs, read_input};
use crate::admin;
use crate::config::{LogFormat, Uses};
use crate::platform::Platform;

/// Create the queues (with dead-letter queues and redrive policy), the
/// tables and the KMS key if missing (the local database makes them when
/// opened).
pub fn init(context: &Context) -> anyhow::Result<()> {
    init_logs(LogFormat::Human);
    let settings = context.settings(Uses::Everything)?;
    context
        .runtime
        .block_on(async { admin::init(&Platform::connect(&settings).await?, &settings).await })
}

/// Show what the local database holds.
///
/// A summary per environment, the pull-request comments, GitHub
/// deployments, runtime requests, analytics events, queues and dead
/// letters.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  envmgr show\n  envmgr show --items\n  envmgr show --json | jq '.environments[].status'"
)]
pub struct Show {
    /// Each environment's stored items too, attribute by attribute.
    #[arg(long)]
    items: bool,
    /// One JSON object, for tools (environments with their items, queues).
    #[arg(long, conflicts_with = "items")]
    json: bool,
}

impl Show {
    pub fn run(&self, context: &Context) -> anyhow::Result<()> {
        let settings = context.existing(Uses::Stores)?;
        context.runtime.block_on(async {
            let platform = Platform::connect(&settings).await?;
            let store = platform
                .store()
                .context("show reads the local database; the config names the aws backend")?;
            match self.json {
                true => super::output::print_json(&crate::show::as_json(store, &settings)?),
                false => crate::show::everything(store, &settings, self.items),
            }
        })
    }
}

/// End the previews that should end, now.
///
/// As `serve` does every `[previews] sweep_every_seconds`: one `sweep`
/// message per app on the `api` queue,
/// which the daemon's logic handles — it sends one delete per preview to
/// end (idle, its pull request closed unseen, a delete that stopped;
/// docs/data-model.md, "The end of an environment").
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  envmgr sweep --dry-run\n  envmgr sweep --app app_shop\n  \
envmgr sweep --orphans\n  envmgr sweep --orphans --yes"
)]
pub struct Sweep {
    /// Only this app's previews.
    #[arg(long)]
    app: Option<String>,
    /// Run each app's sweep here and print the deletes it would send;
    /// nothing is sent or written.
    #[arg(long, conflicts_with = "orphans")]
    dry_run: bool,
    /// List the runtimes the Runtime Service runs for environments whose
    /// record is deleted or missing (the service's optional list call).
    #[arg(long)]
    orphans: bool,
    /// With --orphans: delete them.
    #[arg(long, requires = "orphans")]
    yes: bool,
}

impl Sweep {
    pub fn run(&self, context: &Context) -> anyhow::Result<()> {
        init_logs(LogFormat::Human);
        if self.dry_run {
            return self.dry_run(context);
        }
        if self.orphans {
            return self.orphans(context);
        }
        let settings = context.settings(Uses::Queues)?;
        let sent = context.runtime.block_on(async {
            let platform = Platform::connect(&settings).await?;
            let sweep = crate::daemon::sweep::Sweep {
                every: std::time::Duration::from_secs(settings.previews.sweep_every_seconds),
                logic: platform.logic_tables(),
                tables: platform.consumer_tables.clone(),
                api: platform.queue(&settings, "api").await?,
                host_id: "envmgr sweep".to_string(),
                versions: None,
            };
            sweep.send_now(self.app.as_deref()).await
        })?;
        println!("sent a sweep for {sent} app(s) to api");
        self.some_app(sent)
    }

    fn dry_run(&self, context: &Context) -> anyhow::Result<()> {
        let settings = context.existing(Uses::Everything)?;
        let swept = context
            .runtime
            .block_on(crate::daemon::sweep::dry_run::dry_run(
                &settings,
                self.app.as_deref(),
            ))?;
        for app in &swept {
            println!("app {}: {}", app.app_id, app.outcome);
            for delete in &app.deletes {
                println!("  would send to api: {}", described(delete));
            }
        }
        println!("dry run: nothing was sent");
        self.some_app(swept.len())
    }

    fn orphans(&self, context: &Context) -> anyhow::Result<()> {
        use crate::daemon::sweep::orphans;
        let settings = context.existing(Uses::Everything)?;
        context.runtime.block_on(async {
            let platform = Platform::connect(&settings).await?;
            let services = platform.services(&settings, &Default::default())?;
            let runtime = services.runtime.as_ref();
            let found = orphans::find(runtime, platform.consumer_tables.as_ref()).await?;
            let found: Vec<_> = found
                .into_iter()
                .filter(|o| self.app.as_ref().is_none_or(|app| *app == o.runtime.app_id))
                .collect();
            for orphan in &found {
                let r = &orphan.runtime;
                println!(
                    "{} of {} ({} {}, created at {}): {}",
                    r.runtime_id,
                    r.environment_id,
                    r.app_id,
                    r.environment_type,
                    r.request_version,
                    orphan.why()
                );
                if self.yes {
                    let removed = orphans::remove(runtime, orphan).await?;
                    println!("  deleted: {}", removed.join(", "));
                }
            }
            match (found.len(), self.yes) {
                (0, _) => println!("no orphaned runtimes"),
                (n, false) => println!("{n} orphaned runtime(s); --yes deletes them"),
                (n, true) => println!("{n} orphaned runtime(s) deleted"),
            }
            anyhow::Ok(())
        })
    }

    fn some_app(&self, apps: usize) -> anyhow::Result<()> {
        match (&self.app, apps) {
            (Some(app), 0) => anyhow::bail!("no app {app} in the apps table"),
            _ => Ok(()),
        }
    }
}

/// A sweep's delete as a person reads it: the branch, why, and the request
/// it must still be at; the body itself when it is not a delete.
fn described(body: &str) -> String {
    let request: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let field = |name: &str| request.get(name).and_then(|v| v.as_str());
    match (field("branch"), field("reason"), field("ifRequestVersion")) {
        (Some(branch), Some(reason), Some(version)) => {
            format!("delete preview {branch} ({reason}) if it is still at {version}")
        }
        _ => body.to_string(),
    }
}

/// Put a message on a queue.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  envmgr send --queue probot --file docs/examples/pull-request-opened.json\n  \
envmgr send --queue api --file docs/examples/api-production.json\n  \
echo '{...}' | envmgr send --queue api --file -"
)]
pub struct Send {
    /// The queue, by its name in the config (`probot`, `api`).
    #[arg(long)]
    queue: String,
    /// The body, from a file (`-` for standard input).
    #[arg(long, conflicts_with = "body")]
    file: Option<PathBuf>,
    /// The body, inline.
    #[arg(long)]
    body: Option<String>,
    /// A message attribute of type String, `NAME=VALUE` (repeatable), e.g.
    /// `traceparent=00-…` to put the message in a trace.
    #[arg(long = "attribute", value_name = "NAME=VALUE", value_parser = attribute)]
    attributes: Vec<(String, String)>,
}

fn attribute(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not NAME=VALUE")),
    }
}

impl Send {
    pub fn run(&self, context: &Context) -> anyhow::Result<()> {
        init_logs(LogFormat::Human);
        let body = match (&self.file, &self.body) {
            (_, Some(body)) => body.clone(),
            (Some(path), None) => read_input(path)?,
            (None, None) => anyhow::bail!("give the body with --file or --body"),
        };
        let settings = context.settings(Uses::Queues)?;
        let queue = &self.queue;
        let id = context.runtime.block_on(async {
            let platform = Platform::connect(&settings).await?;
            // The embedded GitHub knows a pull request as its webhook says,
            // as GitHub does before it sends one.
            if let Some(github) = platform.embedded_github(&settings) {
                github.observe(&body).await?;
            }
            let queue = platform.queue(&settings, queue).await?;
            let attributes: Vec<(String, crate::queue::Attribute)> = self
                .attributes
                .iter()
                .map(|(name, value)| (name.clone(), crate::queue::Attribute::text("String", value)))
                .collect();
            match attributes.is_empty() {
                true => queue.send(&body).await,
                false => queue.send_with_attributes(&body, &attributes).await,
            }
        })?;
        println!("sent {id} to {queue}");
        Ok(())
    }
}

/// Register an app (the app record and its repository index).
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  envmgr add-app --id app_shop --name Shop --repository acme/shop\n  \
envmgr add-app --id app_shop --name Shop --repository acme/shop --trusted-author octocat"
)]
pub struct AddApp {
    /// The app's id (`[A-Za-z0-9_.-]`, at most 64): in keys and API requests.
    #[arg(long)]
    id: String,
    /// The app's name as people read it (the pull-request comment shows it).
    #[arg(long)]
    name: String,
    /// `owner/name` on GitHub.
    #[arg(long)]
    repository: String,
    /// The default entrypoint (`index.ts` when unset).
    #[arg(long)]
    entrypoint: Option<String>,
    /// Give pull requests from forks the secrets and a token too
    /// (`forkSecrets`; off by default).
    #[arg(long)]
    fork_secrets: bool,
    /// Only this GitHub login's pull requests get secrets and a token
    /// (repeatable; `trustedAuthors`; everyone when none is given).
    #[arg(long = "trusted-author", value_name = "LOGIN")]
    trusted_authors: Vec<String>,
    /// Take the repository from the app that has it (that app keeps its
    /// record, without a repository).
    #[arg(long)]
    replace: bool,
}

impl AddApp {
    pub fn run(&self, context: &Context) -> anyhow::Result<()> {
        init_logs(LogFormat::Human);
        let settings = context.settings(Uses::Stores)?;
        let trust = crate::catalog::Trust {
            fork_secrets: self.fork_secrets,
            trusted_authors: self.trusted_authors.clone(),
        };
        let said = context.runtime.block_on(async {
            let platform = Platform::connect(&settings).await?;
            admin::add_app(
                &platform,
                &self.id,
                &self.name,
                &self.repository,
                self.entrypoint.as_deref(),
                &trust,
                self.replace,
            )
            .await
        })?;
        println!("added {said}");
        Ok(())
    }
}

/// `check-data`: every stored app, repository index and secret item that
/// breaks the rules of docs/data-model.md (exit 1 if any).
pub fn check_data(context: &Context) -> anyhow::Result<()> {
    init_logs(LogFormat::Human);
    let settings = context.existing(Uses::Stores)?;
    let problems = context.runtime.block_on(async {
        let platform = Platform::connect(&settings).await?;
        admin::check_data(&platform).await
    })?;
    for problem in &problems {
        println!("{problem}");
    }
    if problems.is_empty() {
        println!("every app, repository index and secret item keeps the rules");
        Ok(())
    } else {
        anyhow::bail!(
            "{} stored items break the rules (docs/data-model.md)",
            problems.len()
        )
    }
}

/// Encrypt a secret with the KMS key and store it for an app.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  envmgr set-secret --app app_shop --scope global --name DATABASE_URL < url.txt\n  \
envmgr set-secret --app app_shop --scope preview --name API_KEY --value-file key.txt\n\n\
An empty value is refused. At a terminal, the value is asked for (not echoed)."
)]
pub struct SetSecret {
    /// The app the secret is for.
    #[arg(long)]
    app: String,
    /// global, preview, production or environment:<id>.
    #[arg(long)]
    scope: String,
    /// The name the runtime sees as an environment variable
    /// (`[A-Za-z_][A-Za-z0-9_]*`, at most 128).
    #[arg(long)]
    name: String,
    /// Read the value from this file; standard input otherwise.
    #[arg(long)]
    value_file: Option<PathBuf>,
}

impl SetSecret {
    pub fn run(&self, context: &Context) -> anyhow::Result<()> {
        init_logs(LogFormat::Human);
        let value = match &self.value_file {
            Some(path) => read_input(path)?,
            None => super::apps::secret_from_stdin(&self.name)?,
        };
        let value = value.strip_suffix('\n').unwrap_or(&value);
        let value = value.strip_suffix('\r').unwrap_or(value);
        if value.is_empty() {
            anyhow::bail!(
                "the value of {} is empty; give it on standard input or with --value-file (an empty secret is never what a runtime needs)",
                self.name
            );
        }
        let settings = context.settings(Uses::Stores)?;
        let (app, scope, name) = (&self.app, &self.scope, &self.name);
        context.runtime.block_on(async {
            let platform = Platform::connect(&settings).await?;
            admin::set_secret(&platform, app, scope, name, value).await
        })?;
        println!("secret {name} set for app {app} ({scope})");
        Ok(())
    }
}
