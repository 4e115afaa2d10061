//! `record …`: the recorded messages, listed or exported as files.

use std::path::PathBuf;

use clap::Subcommand;

use super::{Context, init_logs};
use crate::config::{LogFormat, Uses};
use crate::platform::Platform;

/// Which recordings: the newest (100 by default), since a time, or chosen
/// messages.
#[derive(clap::Args)]
pub struct Pick {
    /// The newest N recordings.
    #[arg(long, value_name = "N", conflicts_with_all = ["since", "messages"])]
    last: Option<usize>,
    /// Recordings since a time: RFC 3339 or an age (`90m`, `6h`, `2d`).
    #[arg(long, value_name = "TIME", conflicts_with = "messages")]
    since: Option<String>,
    /// The newest recording of this message (repeatable).
    #[arg(long = "message", value_name = "ID")]
    messages: Vec<String>,
}

impl Pick {
    pub fn selection(&self) -> anyhow::Result<crate::record::store::Selection> {
        crate::record::commands::selection(self.last, self.since.as_deref(), &self.messages)
    }
}

#[derive(Subcommand)]
pub enum RecordCommand {
    /// The recorded messages: when, which, the logic version, the outcome.
    #[command(
        after_help = "Examples:\n  envmgr record list\n  envmgr record list --since 2h\n  envmgr record list --last 10 --json"
    )]
    List {
        #[command(flatten)]
        pick: Pick,
        /// A JSON array, for tools.
        #[arg(long)]
        json: bool,
    },
    /// Write recordings to DIR as JSON files, with the components of the
    /// versions that handled them, for `logic replay --from DIR`.
    #[command(
        after_help = "Examples:\n  envmgr record export exported/ --last 100 --scrub\n  envmgr logic replay v2 --from exported/"
    )]
    Export {
        /// The directory to write (made if missing).
        dir: PathBuf,
        #[command(flatten)]
        pick: Pick,
        /// Replace titles, bodies, logins, e-mail addresses and repository
        /// names with stand-ins, consistently.
        #[arg(long)]
        scrub: bool,
    },
}

impl RecordCommand {
    pub fn run(&self, context: &Context) -> anyhow::Result<()> {
        init_logs(LogFormat::Human);
        // Both only read the deployment.
        let settings = context.existing(Uses::Logic)?;
        context.runtime.block_on(async {
            let platform = Platform::connect(&settings).await?;
            match self {
                RecordCommand::List { pick, json } => {
                    crate::record::commands::list(&settings, &platform, &pick.selection()?, *json)
                        .await
                }
                RecordCommand::Export { dir, pick, scrub } => {
                    crate::record::commands::export(
                        &settings,
                        &platform,
                        &pick.selection()?,
                        dir,
                        *scrub,
                    )
                    .await
                }
            }
        })
    }
}
