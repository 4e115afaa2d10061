//! `dlq …`: dead letters listed, shown, moved back or deleted.

use clap::Subcommand;

use super::{Context, init_logs};
use crate::config::{LogFormat, Uses};
use crate::platform::Platform;

#[derive(Subcommand)]
pub enum DlqCommand {
    /// Every dead letter of a queue (or of all): id, age, receive count,
    /// reason and logic version. Leaves them where they are.
    #[command(after_help = "Examples:\n  envmgr dlq list\n  envmgr dlq list --queue probot --json")]
    List {
        /// The queue, by its name in the config; every queue when unset.
        #[arg(long)]
        queue: Option<String>,
        /// A JSON array, for tools.
        #[arg(long)]
        json: bool,
    },
    /// One dead letter: envmgr's metadata, the producer's attributes and
    /// the body.
    #[command(
        after_help = "Examples:\n  envmgr dlq show 57512d35-8a0c-4c1e-9d2f-0c3b2a1e9f00\n  envmgr dlq show 57512d35-8a0c-4c1e-9d2f-0c3b2a1e9f00 --json"
    )]
    Show {
        /// Its id in the dead-letter queue, or the original message's.
        id: String,
        /// The queue, by its name in the config; every queue when unset.
        #[arg(long)]
        queue: Option<String>,
        /// A JSON object, for tools.
        #[arg(long)]
        json: bool,
    },
    /// Send dead letters back to their queue with the producer's
    /// attributes (a fresh receive budget), then delete them here.
    #[command(
        after_help = "Examples:\n  envmgr dlq redrive --all\n  envmgr dlq redrive --queue api --id 57512d35-8a0c-4c1e-9d2f-0c3b2a1e9f00"
    )]
    Redrive {
        /// The queue, by its name in the config; every queue when unset.
        #[arg(long)]
        queue: Option<String>,
        /// A dead letter to move (repeatable): its id, or the original's.
        #[arg(long = "id", value_name = "ID", required_unless_present = "all")]
        ids: Vec<String>,
        /// Every dead letter.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
    /// Delete every dead letter of a queue (or of all).
    #[command(
        after_help = "Examples:\n  envmgr dlq purge --queue probot\n  envmgr dlq purge --queue probot --yes"
    )]
    Purge {
        /// The queue, by its name in the config; every queue when unset.
        #[arg(long)]
        queue: Option<String>,
        /// Really delete them; without it, only say how many there are.
        #[arg(long)]
        yes: bool,
    },
}

impl DlqCommand {
    pub fn run(&self, context: &Context) -> anyhow::Result<()> {
        use crate::queue::dead_letters::{DeadLetters, Selection};
        init_logs(LogFormat::Human);
        let settings = match self {
            DlqCommand::List { .. } | DlqCommand::Show { .. } => context.existing(Uses::Queues)?,
            _ => context.settings(Uses::Queues)?,
        };
        context.runtime.block_on(async {
            let platform = Platform::connect(&settings).await?;
            let dead_letters = DeadLetters::connect(&platform, &settings).await?;
            match self {
                DlqCommand::List { queue, json } => {
                    dead_letters.print_list(queue.as_deref(), *json).await
                }
                DlqCommand::Show { id, queue, json } => {
                    dead_letters.print_show(id, queue.as_deref(), *json).await
                }
                DlqCommand::Redrive { queue, ids, all } => {
                    let selection = if *all {
                        Selection::All
                    } else {
                        Selection::Ids(ids)
                    };
                    dead_letters
                        .print_redrive(queue.as_deref(), selection)
                        .await
                }
                DlqCommand::Purge { queue, yes } => {
                    dead_letters.print_purge(queue.as_deref(), *yes).await
                }
            }
        })
    }
}
