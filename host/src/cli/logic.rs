//! `logic …`: installing, activating and collecting logic versions, and
//! replaying recorded traffic through them.

use std::path::PathBuf;

use clap::Subcommand;

use super::record::Pick;
use super::{Context, init_logs};
use crate::config::{LogFormat, Uses};
use crate::logic::commands;
use crate::platform::Platform;
use crate::record::replay::FailOn;

#[derive(Subcommand)]
pub enum LogicCommand {
    /// Validate a component (world, self-check in the mock host), cache its
    /// native code and store it; refused with the reason otherwise.
    #[command(
        after_help = "Examples:\n  envmgr logic install target/wasm32-wasip2/release/envmgr_guest.wasm --tag v2\n  \
envmgr logic install my-logic.wasm --tag v2 --replay 200 --fail-on differ\n\n\
Installing a version again keeps its tag; another tag is refused (a version has one)."
    )]
    Install {
        /// The component file (`cargo build-logic` makes one).
        file: PathBuf,
        /// A name for it (`v2`, `2026-11-28`), usable instead of the sha256.
        #[arg(long)]
        tag: Option<String>,
        /// Also replay the last N recorded messages through it: refused if
        /// it fails where the version that handled them did not.
        #[arg(long, value_name = "N")]
        replay: Option<usize>,
        /// With --replay: refuse on differences too (`differ`), or only on
        /// failures (`fail`, the default).
        #[arg(long, value_enum, default_value = "fail", requires = "replay")]
        fail_on: FailOn,
    },
    /// Make a version active, give it a share of messages as a canary, or
    /// run it as a shadow beside the active one.
    #[command(
        after_help = "Examples:\n  envmgr logic activate v2\n  envmgr logic activate v2 --canary 10\n  \
envmgr logic activate v2 --shadow\n  envmgr logic activate builtin"
    )]
    Activate {
        /// sha256, a unique prefix of it, a tag, or `builtin`.
        version: String,
        /// Percent of messages for the version (1 to 99); the active one
        /// keeps the rest.
        #[arg(long, conflicts_with = "shadow")]
        canary: Option<u8>,
        /// Run it on every recorded message beside the version that handled
        /// it, in the mock host against the recording, applying nothing;
        /// verdicts in `/metrics`, `logic list` and `logic replay
        /// --shadow-report`.
        #[arg(long)]
        shadow: bool,
    },
    /// Stop the shadow version (an error when none runs).
    #[command(after_help = "Example:\n  envmgr logic stop-shadow")]
    StopShadow,
    /// Run recorded messages through CANDIDATE and through the version that
    /// handled each (or --against), every call answered from the
    /// recording, and say per message: identical, differs (with the
    /// difference), fails or not replayable.
    #[command(after_help = "Examples:\n  envmgr logic replay v2 --last 50\n  \
envmgr logic replay my-logic.wasm --since 6h --fail-on differ\n  \
envmgr logic replay v2 --from exported/ --expect expected.toml\n  envmgr logic replay --shadow-report")]
    Replay {
        /// A component file, or an installed version (sha256, prefix, tag,
        /// `builtin`).
        #[arg(required_unless_present = "shadow_report")]
        candidate: Option<String>,
        /// Compare with this version (file or name) instead.
        #[arg(long)]
        against: Option<String>,
        #[command(flatten)]
        pick: Pick,
        /// Exported recordings (`envmgr record export`) instead of the
        /// deployment's.
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
        /// Intentional differences: a TOML file of `[[change]]` with `path`
        /// (`github.create-comment.body`; `*` one segment, `**` any) and
        /// `pattern` (a regex the candidate's value matches).
        #[arg(long, value_name = "FILE")]
        expect: Option<PathBuf>,
        /// Exit with status 1 on a difference or a failure (`differ`), or
        /// on a failure (`fail`); also when nothing was replayable.
        #[arg(long, value_enum)]
        fail_on: Option<FailOn>,
        /// Instead: the shadow version's verdicts over every host, and its
        /// runs that differed or failed.
        #[arg(long, conflicts_with_all = ["against", "from", "expect", "fail_on"])]
        shadow_report: bool,
    },
    /// Make the canary the active version.
    #[command(after_help = "Example:\n  envmgr logic promote")]
    Promote,
    /// Drop the canary; without one, return to the previous active version.
    #[command(after_help = "Example:\n  envmgr logic rollback")]
    Rollback,
    /// The installed versions, which is active or canary, the serving
    /// hosts (and what a `serve --logic FILE` host is pinned to), and the
    /// pointer.
    #[command(
        after_help = "Examples:\n  envmgr logic list\n  envmgr logic list --json | jq '.versions[] | select(.roles | index(\"active\"))'"
    )]
    List {
        /// One JSON object, for tools.
        #[arg(long)]
        json: bool,
    },
    /// Remove versions nothing needs: not active, canary, shadow, in the
    /// rollback history, the handler of a recording still kept, or
    /// installed within `logic.keep_installed_hours`. Also removes expired
    /// host heartbeats and this machine's stale native code. `serve` does
    /// the same every `logic.gc_every_seconds`.
    #[command(after_help = "Examples:\n  envmgr logic gc --dry-run\n  envmgr logic gc")]
    Gc {
        /// Say what would go; remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

impl LogicCommand {
    pub fn run(&self, context: &Context) -> anyhow::Result<()> {
        init_logs(LogFormat::Human);
        // What only reads the deployment (or removes from it, `gc`) needs
        // one; a replay of exported files (`--from`) needs none.
        let settings = match self {
            LogicCommand::List { .. } | LogicCommand::Gc { .. } => context.existing(Uses::Logic)?,
            LogicCommand::Replay { from: None, .. } => context.existing(Uses::Logic)?,
            _ => context.settings(Uses::Logic)?,
        };
        if let LogicCommand::Replay {
            candidate,
            against,
            pick,
            from,
            expect,
            fail_on,
            shadow_report: false,
        } = self
        {
            let request = crate::record::commands::ReplayRequest {
                candidate: candidate.as_deref().unwrap_or_default(),
                against: against.as_deref(),
                selection: pick.selection()?,
                from: from.as_deref(),
                expected: expect.as_deref(),
                fail_on: *fail_on,
            };
            return context.runtime.block_on(async {
                // Recordings from files need no deployment at all.
                let platform = match from {
                    Some(_) => None,
                    None => Some(Platform::connect(&settings).await?),
                };
                crate::record::commands::replay(&settings, platform.as_ref(), &request).await?;
                Ok(())
            });
        }
        context.runtime.block_on(async {
            let platform = Platform::connect(&settings).await?;
            match self {
                LogicCommand::Install {
                    file,
                    tag,
                    replay,
                    fail_on,
                } => {
                    let replay = replay.map(|last| (last, *fail_on));
                    commands::install(&platform, &settings, file, tag.as_deref(), replay).await
                }
                LogicCommand::Activate {
                    version,
                    canary,
                    shadow: false,
                } => commands::activate(&platform, &settings, version, *canary).await,
                LogicCommand::Activate {
                    version,
                    shadow: true,
                    ..
                } => commands::shadow(&platform, &settings, Some(version)).await,
                LogicCommand::StopShadow => commands::shadow(&platform, &settings, None).await,
                LogicCommand::Replay { candidate, .. } => {
                    crate::record::commands::shadow_report(
                        &settings,
                        &platform,
                        candidate.as_deref(),
                    )
                    .await
                }
                LogicCommand::Promote => commands::promote(&platform).await,
                LogicCommand::Rollback => commands::rollback(&platform).await,
                LogicCommand::List { json } => commands::list(&platform, &settings, *json).await,
                LogicCommand::Gc { dry_run } => commands::gc(&platform, &settings, *dry_run).await,
            }
        })
    }
}
