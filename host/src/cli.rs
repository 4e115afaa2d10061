//! The `envmgr` command line. `host/src/main.rs` only calls [`main`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::record::recorder::Recorder;
use crate::record::replay::FailOn;

use crate::admin;
use crate::capabilities::Backends;
use crate::capabilities::analytics::segment::SegmentAnalytics;
use crate::capabilities::config::Config;
use crate::capabilities::dynamodb::show_item;
use crate::config::{LogFormat, Settings, Uses};
use crate::daemon::endpoint::Admin;
use crate::daemon::{Daemon, Finished};
use crate::engine::{Engine, Limits, hex_sha256};
use crate::health::{Health, Probes, probes};
use crate::logic::cache::NativeCache;
use crate::logic::commands;
use crate::logic::serving::Versions;
use crate::mock::{MockHost, seed};
use crate::observe::Observer;
use crate::platform::Platform;
use crate::redact::Credentials;

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
    /// See envmgr work on this machine, nothing to set up: seed an app and
    /// its secrets, enqueue a pull-request webhook and a production create
    /// request, run the daemon until both are done, and show the result.
    Demo {
        /// Where the demo keeps its database; emptied first.
        #[arg(long, default_value = ".envmgr-demo")]
        dir: PathBuf,
    },
    /// Logic versions: install (validate, cache), activate (all traffic or
    /// a canary share), promote, roll back, list. Running hosts follow
    /// within `logic.poll_ms`.
    Logic {
        #[command(subcommand)]
        command: LogicCommand,
    },
    /// Show what the local database holds: environments, comments, runtime
    /// requests, analytics events, queues and dead letters.
    Show,
    /// Consume the queues and create environments until SIGTERM/SIGINT.
    Serve {
        /// A logic component to run instead of the builtin one.
        #[arg(long)]
        logic: Option<PathBuf>,
    },
    /// Create the queues (with dead-letter queues and redrive policy), the
    /// tables and the KMS key if missing (the local database makes them
    /// when opened).
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
    },
    /// List every stored app, repository index and secret item that breaks
    /// the rules of docs/data-model.md (exit 1 if any): run before upgrading.
    CheckData,
    /// Encrypt a secret with the KMS key and store it for an app.
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
    /// Secrets as a whole: move every ciphertext to a new KMS key.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
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
    /// Recorded messages (`[record]`): list them, export them as files.
    Record {
        #[command(subcommand)]
        command: RecordCommand,
    },
    /// Dead letters: list, show, move back to their queue (redrive) or
    /// delete (purge), on either backend.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
}

/// Which recordings: the newest (100 by default), since a time, or chosen
/// messages.
#[derive(clap::Args)]
struct Pick {
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
    fn selection(&self) -> anyhow::Result<crate::record::store::Selection> {
        crate::record::commands::selection(self.last, self.since.as_deref(), &self.messages)
    }
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Move every secret, every environment's signing key and the KMS probe
    /// to KEY (which must be `kms.key_id`; the keys moved from are in
    /// `kms.previous_key_ids`), each written only if unchanged meanwhile.
    /// Exits 1 if a ciphertext no configured key decrypts is left.
    ReEncrypt {
        /// The key to move to.
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
enum RecordCommand {
    /// The recorded messages: when, which, the logic version, the outcome.
    List {
        #[command(flatten)]
        pick: Pick,
    },
    /// Write recordings to DIR as JSON files, with the components of the
    /// versions that handled them, for `logic replay --from DIR`.
    Export {
        dir: PathBuf,
        #[command(flatten)]
        pick: Pick,
        /// Replace titles, bodies, logins, e-mail addresses and repository
        /// names with stand-ins, consistently.
        #[arg(long)]
        scrub: bool,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Every dead letter of a queue (or of all): id, age, receive count,
    /// reason and logic version. Leaves them where they are.
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
    Show {
        /// Its id in the dead-letter queue, or the original message's.
        id: String,
        #[arg(long)]
        queue: Option<String>,
        /// A JSON object, for tools.
        #[arg(long)]
        json: bool,
    },
    /// Send dead letters back to their queue with the producer's
    /// attributes (a fresh receive budget), then delete them here.
    Redrive {
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
    Purge {
        #[arg(long)]
        queue: Option<String>,
        /// Really delete them; without it, only say how many there are.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum LogicCommand {
    /// Validate a component (world, self-check in the mock host), cache its
    /// native code and store it; refused with the reason otherwise.
    Install {
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
    /// Stop the shadow version.
    StopShadow,
    /// Run recorded messages through CANDIDATE and through the version that
    /// handled each (or --against), every call answered from the
    /// recording, and say per message: identical, differs (with the
    /// difference), fails or not replayable.
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
    Promote,
    /// Drop the canary; without one, return to the previous active version.
    Rollback,
    /// The installed versions, which is active or canary, and the pointer.
    List,
    /// Remove versions nothing needs: not active, canary, shadow, in the
    /// rollback history, the handler of a recording still kept, or
    /// installed within `logic.keep_installed_hours`. Also removes expired
    /// host heartbeats and this machine's stale native code. `serve` does
    /// the same every `logic.gc_every_seconds`.
    Gc {
        /// Say what would go; remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let data_dir = cli.data_dir.as_ref().map(|dir| {
        (
            "ENVMGR__LOCAL__DATA_DIR".to_string(),
            dir.display().to_string(),
        )
    });
    // Each command validates what it uses of the configuration.
    let settings = |uses: Uses| {
        Settings::load_for(
            cli.config.as_deref(),
            std::env::vars().chain(data_dir.clone()),
            uses,
        )
    };
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Demo { ref dir } => {
            init_logs(LogFormat::Human);
            runtime.block_on(crate::demo::run(dir))
        }
        Command::Logic {
            command:
                LogicCommand::Replay {
                    ref candidate,
                    ref against,
                    ref pick,
                    ref from,
                    ref expect,
                    fail_on,
                    shadow_report: false,
                },
        } => {
            init_logs(LogFormat::Human);
            let settings = settings(Uses::Logic)?;
            let request = crate::record::commands::ReplayRequest {
                candidate: candidate.as_deref().unwrap_or_default(),
                against: against.as_deref(),
                selection: pick.selection()?,
                from: from.as_deref(),
                expected: expect.as_deref(),
                fail_on,
            };
            runtime.block_on(async {
                // Recordings from files need no deployment at all.
                let platform = match from {
                    Some(_) => None,
                    None => Some(Platform::connect(&settings).await?),
                };
                crate::record::commands::replay(&settings, platform.as_ref(), &request).await?;
                Ok(())
            })
        }
        Command::Logic { ref command } => {
            init_logs(LogFormat::Human);
            let settings = settings(Uses::Logic)?;
            runtime.block_on(async {
                let platform = Platform::connect(&settings).await?;
                match command {
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
                    LogicCommand::List => commands::list(&platform, &settings).await,
                    LogicCommand::Gc { dry_run } => {
                        commands::gc(&platform, &settings, *dry_run).await
                    }
                }
            })
        }
        Command::Show => {
            let settings = settings(Uses::Stores)?;
            runtime.block_on(async {
                let platform = Platform::connect(&settings).await?;
                let store = platform
                    .store()
                    .context("show reads the local database; the config names the aws backend")?;
                crate::show::everything(store, &settings)
            })
        }
        Command::Serve { ref logic } => {
            // First of all: from here on SIGTERM/SIGINT is an orderly stop,
            // even while the config is read and the backends connect.
            let stop = {
                let _entered = runtime.enter();
                StopSignal::install()?
            };
            let settings = settings(Uses::Everything)?;
            init_logs(settings.log.format);
            runtime.block_on(serve(settings, logic.as_deref(), stop))
        }
        Command::Init => {
            init_logs(LogFormat::Human);
            let settings = settings(Uses::Everything)?;
            runtime.block_on(async {
                admin::init(&Platform::connect(&settings).await?, &settings).await
            })
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
            let settings = settings(Uses::Queues)?;
            let id = runtime.block_on(async {
                let platform = Platform::connect(&settings).await?;
                platform.queue(&settings, queue).await?.send(&body).await
            })?;
            println!("sent {id} to {queue}");
            Ok(())
        }
        Command::AddApp {
            ref id,
            ref name,
            ref repository,
            ref entrypoint,
            fork_secrets,
            ref trusted_authors,
            replace,
        } => {
            init_logs(LogFormat::Human);
            let settings = settings(Uses::Stores)?;
            let trust = crate::catalog::Trust {
                fork_secrets,
                trusted_authors: trusted_authors.clone(),
            };
            let said = runtime.block_on(async {
                let platform = Platform::connect(&settings).await?;
                admin::add_app(
                    &platform,
                    id,
                    name,
                    repository,
                    entrypoint.as_deref(),
                    &trust,
                    replace,
                )
                .await
            })?;
            println!("added {said}");
            Ok(())
        }
        Command::CheckData => {
            init_logs(LogFormat::Human);
            let settings = settings(Uses::Stores)?;
            let problems = runtime.block_on(async {
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
        Command::SetSecret {
            ref app,
            ref scope,
            ref name,
            ref value_file,
        } => {
            init_logs(LogFormat::Human);
            let value = read_input(value_file.as_deref().unwrap_or(Path::new("-")))?;
            let value = value.strip_suffix('\n').unwrap_or(&value);
            let settings = settings(Uses::Stores)?;
            runtime.block_on(async {
                let platform = Platform::connect(&settings).await?;
                admin::set_secret(&platform, app, scope, name, value).await
            })?;
            println!("secret {name} set for app {app} ({scope})");
            Ok(())
        }
        Command::Secrets {
            command: SecretsCommand::ReEncrypt { ref to },
        } => {
            init_logs(LogFormat::Human);
            let settings = settings(Uses::Stores)?;
            runtime.block_on(async {
                let platform = Platform::connect(&settings).await?;
                admin::reencrypt::re_encrypt(&platform, &settings, to).await
            })
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
                "{} implements envmgr:environments@{} ({} bytes){}",
                logic.id,
                logic.contract,
                bytes.len(),
                if logic.contract == crate::contract::CURRENT {
                    ""
                } else {
                    "; the previous contract, run by this host for one more release"
                }
            );
            Ok(())
        }
        Command::Record { ref command } => {
            init_logs(LogFormat::Human);
            let settings = settings(Uses::Logic)?;
            runtime.block_on(async {
                let platform = Platform::connect(&settings).await?;
                match command {
                    RecordCommand::List { pick } => {
                        crate::record::commands::list(&settings, &platform, &pick.selection()?)
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
        Command::Dlq { ref command } => {
            init_logs(LogFormat::Human);
            let settings = settings(Uses::Queues)?;
            runtime.block_on(async {
                use crate::queue::dead_letters::{DeadLetters, Selection};
                let platform = Platform::connect(&settings).await?;
                let dead_letters = DeadLetters::connect(&platform, &settings).await?;
                match command {
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
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("ENVMGR_LOG").unwrap_or_else(|_| "info".into());
    // Colour only for a person at a terminal: a file or a pipe gets plain
    // text (and NO_COLOR is honoured, https://no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// How long `serve` waits between tries to reach SQS at start.
const STARTUP_RETRY: Duration = Duration::from_secs(2);

async fn serve(settings: Settings, logic: Option<&Path>, stop: StopSignal) -> anyhow::Result<()> {
    let pinned = match logic {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        None => None,
    };
    let assembled = tokio::select! {
        assembled = assemble(&settings, pinned.as_deref(), None, stop.stopped()) => assembled?,
        _ = stop.stopped() => None,
    };
    let Some(running) = assembled else {
        tracing::info!("stopped before serving; bye");
        return Ok(());
    };
    running.run(stop.stopped()).await
}

/// SIGTERM or SIGINT, listened for from the moment it is installed (a
/// signal before anyone waits is not lost).
#[derive(Clone)]
pub(crate) struct StopSignal(tokio::sync::watch::Receiver<bool>);

impl StopSignal {
    /// Install the handlers; needs a tokio runtime.
    pub(crate) fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        // SIGHUP re-reads credential files; never fatal once serve starts.
        crate::rotation::catch_hangups()?;
        let (told, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
            let _ = told.send(true);
        });
        Ok(Self(stop))
    }

    /// Resolves once a signal came (at once if one came already).
    pub(crate) async fn stopped(&self) {
        let mut stop = self.0.clone();
        let _ = stop.wait_for(|stopped| *stopped).await;
    }
}

/// A daemon ready to run, and what must stop after it.
pub(crate) struct Assembled {
    pub daemon: Daemon,
    pub platform: Arc<Platform>,
    segment: Option<Arc<SegmentAnalytics>>,
    /// The recorder's worker: it stores what is queued once serving ends.
    recording: Option<tokio::task::JoinHandle<()>>,
}

impl Assembled {
    /// Serve until `shutdown`, then flush what the services buffer (Segment).
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let served = self.daemon.run(shutdown).await;
        // The daemon (and with it the recorder's queue) is gone: the worker
        // stores what is left, for a while.
        if let Some(worker) = self.recording
            && tokio::time::timeout(RECORDING_FLUSH, worker).await.is_err()
        {
            tracing::warn!("recordings still queued at shutdown were dropped");
        }
        if let Some(segment) = self.segment {
            segment.flush_and_stop().await;
        }
        served
    }
}

/// Connect the backends the settings name and load the logic: `pinned`, or
/// what the shared pointer names. None when `abandon` fired while waiting
/// for SQS to become reachable.
pub(crate) async fn assemble(
    settings: &Settings,
    pinned: Option<&[u8]>,
    finished: Option<tokio::sync::mpsc::UnboundedSender<Finished>>,
    abandon: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Option<Assembled>> {
    let credentials = Credentials::default();
    let platform = Arc::new(Platform::connect_registering(settings, &credentials).await?);
    if let Some(store) = platform.store() {
        tracing::info!(database = %store.path().display(), "local backend");
    }
    // Resolved now, so a dependency's first answer cannot quote them
    // unknown; the SDK's refreshes register themselves.
    if let Some(provider) = platform.sdk().and_then(|sdk| sdk.credentials_provider()) {
        use aws_credential_types::provider::ProvideCredentials as _;
        let _ = provider.provide_credentials().await;
    }
    let services = platform.services(settings, &credentials)?;
    let provenance = services.provenance.clone();
    let backends = Arc::new(Backends {
        github: services.github,
        dynamodb: platform.consumer_tables.clone(),
        kms: platform.kms.clone(),
        analytics: services.analytics,
        runtime: services.runtime,
        config: Arc::new(Config::new(settings.logic_config_values())),
        observer: Observer::default(),
        clock: None,
        credentials,
    });
    let health = Health::new(Probes::new(probes::Deployment {
        table_names: settings.tables.mapping().to_vec(),
        tables: platform.tables.clone(),
        logic_table: &settings.tables.logic,
        logic_tables: platform.logic_tables(),
        kms: platform.kms.clone(),
        kms_key_id: &settings.kms.key_id,
        github: backends.github.clone(),
        runtime: backends.runtime.clone(),
        credentials: backends.credentials.clone(),
    }));
    let admin = match settings.admin.listen {
        Some(listen) => Some(Admin::start(listen, health.clone(), backends.github.clone()).await?),
        None => None,
    };
    let engine = Arc::new(Engine::new(settings.limits())?);
    tokio::pin!(abandon);
    // Nothing is loaded or received before the deployment is sound: a
    // missing table or a refused key is said once, with the fix, and waited
    // out.
    if !health.until_ready(&mut abandon).await {
        return Ok(None);
    }
    let versions = match pinned {
        Some(component) => Versions::pinned(engine.load(component)?, settings.logic.clone()),
        // The pointer's table may not be reachable yet either: wait.
        None => loop {
            let cache = NativeCache::new(settings.logic_cache_dir(), engine.clone());
            match Versions::follow(platform.registry(), cache, settings.logic.clone()).await {
                Ok(versions) => break versions,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "logic versions not loadable; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(STARTUP_RETRY) => {}
                        _ = &mut abandon => return Ok(None),
                    }
                }
            }
        },
    };

    let mut queues = Vec::new();
    for (logical, queue_settings) in &settings.queues {
        // SQS may not be reachable yet (a restart of the endpoint): wait.
        let queue = loop {
            match platform
                .sealing_queue(settings, logical, provenance.clone())
                .await
            {
                Ok(queue) => break queue,
                Err(e) => {
                    tracing::warn!(queue = %logical, error = %e, "queue not reachable; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(STARTUP_RETRY) => {}
                        _ = &mut abandon => return Ok(None),
                    }
                }
            }
        };
        health.probes().add_queue(logical, queue.clone());
        queues.push((logical.clone(), queue_settings.clone(), queue));
    }
    let mut chores = chores(settings, &platform, pinned.is_none(), &engine)?;
    let rotation = services.rotation.clone();
    chores.push(Box::new(move |stop| {
        use futures::FutureExt as _;
        rotation.run(stop).boxed()
    }));
    let (recorder, recording) = match settings.record.enabled {
        true => {
            let (recorder, worker) = Recorder::start(
                platform.recordings(settings)?,
                engine.clone(),
                versions.clone(),
                versions.host_id().to_string(),
            );
            (Some(recorder), Some(worker))
        }
        false => (None, None),
    };
    Ok(Some(Assembled {
        daemon: Daemon {
            engine,
            versions,
            backends,
            health,
            queues,
            grace: Duration::from_secs(settings.shutdown.grace_seconds),
            finished,
            admin,
            recorder,
            chores,
        },
        platform,
        segment: services.segment,
        recording,
    }))
}

/// The retention passes `serve` runs beside its queues: the logic
/// table's and native cache's (when following the pointer), the local
/// backend's logs.
fn chores(
    settings: &Settings,
    platform: &Platform,
    following: bool,
    engine: &Arc<Engine>,
) -> anyhow::Result<Vec<crate::daemon::Chore>> {
    use futures::FutureExt as _;
    let mut chores: Vec<crate::daemon::Chore> = Vec::new();
    if following && settings.logic.gc_every_seconds > 0 {
        let periodic = crate::logic::retention::Periodic {
            every: Duration::from_secs(settings.logic.gc_every_seconds),
            registry: platform.registry(),
            recordings: platform.recordings(settings)?,
            cache: NativeCache::new(settings.logic_cache_dir(), engine.clone()),
            keep_installed: Duration::from_secs(settings.logic.keep_installed_hours * 3_600),
        };
        chores.push(Box::new(move |stop| periodic.run(stop).boxed()));
    }
    if let Some(store) = platform.store().cloned() {
        let keep = Duration::from_secs(settings.local.retention_days * 86_400);
        chores.push(Box::new(move |stop| {
            crate::local::logs::prune_every(store, keep, stop).boxed()
        }));
    }
    Ok(chores)
}

/// How long the recorder may take to store what is queued at shutdown.
const RECORDING_FLUSH: Duration = Duration::from_secs(5);

/// SIGTERM or SIGINT.
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
            println!("  {entry}");
        }
        println!("=> {}", crate::engine::summary(&delivery.result));
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
