//! `apps list`, `secrets list` and `secrets re-encrypt`: what was
//! registered, and the secrets as a whole. Secret values are never read
//! here except by `re-encrypt`, which never prints them.

use std::io::IsTerminal as _;

use clap::Subcommand;

use super::output::{Table, plural, print_json};
use super::{Context, init_logs};
use crate::config::{LogFormat, Uses};
use crate::platform::Platform;

#[derive(Subcommand)]
pub enum AppsCommand {
    /// Every registered app: its id, name, repository, entrypoint and who
    /// gets secrets.
    #[command(after_help = "Examples:\n  envmgr apps list\n  envmgr apps list --json")]
    List {
        /// A JSON array, for tools.
        #[arg(long)]
        json: bool,
    },
}

impl AppsCommand {
    pub fn run(&self, context: &Context) -> anyhow::Result<()> {
        init_logs(LogFormat::Human);
        let AppsCommand::List { json } = self;
        let settings = context.existing(Uses::Stores)?;
        let apps = context.runtime.block_on(async {
            crate::admin::listing::apps(&Platform::connect(&settings).await?).await
        })?;
        if *json {
            return print_json(&apps);
        }
        let mut table = Table::new(&["ID", "NAME", "REPOSITORY", "ENTRYPOINT", "SECRETS FOR"]);
        for app in &apps {
            let trusted = match (&app.trusted_authors[..], app.fork_secrets) {
                ([], false) => "everyone but forks".to_string(),
                ([], true) => "everyone, forks too".to_string(),
                (logins, forks) => format!(
                    "{}{}",
                    logins.join(", "),
                    if forks { " (forks too)" } else { "" }
                ),
            };
            table.row(vec![
                app.id.clone(),
                app.name.clone(),
                app.repository.clone().unwrap_or_else(|| "-".into()),
                app.entrypoint.clone().unwrap_or_else(|| "index.ts".into()),
                trusted,
            ]);
        }
        match table.is_empty() {
            true => println!("no apps yet: register one with `envmgr add-app`"),
            false => {
                table.print();
                println!("{}", plural(apps.len() as u64, "app"));
            }
        }
        Ok(())
    }
}

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// An app's secrets: names and scopes, never values.
    #[command(
        after_help = "Examples:\n  envmgr secrets list --app app_shop\n  envmgr secrets list --app app_shop --json"
    )]
    List {
        /// The app whose secrets to list.
        #[arg(long)]
        app: String,
        /// A JSON array, for tools.
        #[arg(long)]
        json: bool,
    },
    /// Move every secret, every environment's signing key and the KMS probe
    /// to KEY (which must be `kms.key_id`; the keys moved from are in
    /// `kms.previous_key_ids`), each written only if unchanged meanwhile.
    /// Exits 1 if a ciphertext no configured key decrypts is left.
    #[command(
        after_help = "Example:\n  envmgr --config envmgr.toml secrets re-encrypt --to alias/envmgr-2027\n\nSee docs/guides/rotate-credentials.md."
    )]
    ReEncrypt {
        /// The key to move to.
        #[arg(long)]
        to: String,
    },
}

impl SecretsCommand {
    pub fn run(&self, context: &Context) -> anyhow::Result<()> {
        init_logs(LogFormat::Human);
        match self {
            SecretsCommand::List { app, json } => {
                let settings = context.existing(Uses::Stores)?;
                let secrets = context.runtime.block_on(async {
                    crate::admin::listing::secrets(&Platform::connect(&settings).await?, app).await
                })?;
                if *json {
                    return print_json(&secrets);
                }
                let mut table = Table::new(&["NAME", "SCOPE"]);
                for secret in &secrets {
                    table.row(vec![secret.name.clone(), secret.scope.clone()]);
                }
                match table.is_empty() {
                    true => println!("app {app} has no secrets"),
                    false => {
                        table.print();
                        println!(
                            "{} (values are never shown)",
                            plural(secrets.len() as u64, "secret")
                        );
                    }
                }
                Ok(())
            }
            SecretsCommand::ReEncrypt { to } => {
                let settings = context.settings(Uses::Stores)?;
                context.runtime.block_on(async {
                    let platform = Platform::connect(&settings).await?;
                    crate::admin::reencrypt::re_encrypt(&platform, &settings, to).await
                })
            }
        }
    }
}

/// A secret's value from standard input. At a terminal it is asked for,
/// without echo, so a forgotten `< file` is a prompt rather than what
/// looks like a hang; from a pipe or a file it is read to the end.
pub fn secret_from_stdin(name: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let value = rpassword::prompt_password(format!("value of {name} (not shown): "))?;
        return Ok(value);
    }
    super::read_input(std::path::Path::new("-"))
}
