//! `envmgr demo`: envmgr doing its real job on this machine with nothing to
//! set up — the local backend in a fresh data directory, the builtin logic,
//! a GitHub `pull_request` webhook and a platform-API production request,
//! then the pull request closed, and its preview gone.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::mpsc;

use crate::config::Settings;
use crate::daemon::assemble::{Assembled, assemble};
use crate::daemon::{Disposition, Finished};
use crate::local::{FILE_NAME, Store};
use crate::mock::examples::{API_PRODUCTION, PULL_REQUEST_CLOSED, PULL_REQUEST_OPENED};
use crate::platform::Platform;
use crate::{admin, show};

/// Both messages are handled well within this on any machine.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

pub async fn run(dir: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    remove_previous_demo(dir)?;
    let settings = demo_settings(dir)?;

    let (running, finished) = start(&settings).await?;
    let platform = running.platform.clone();
    let store = platform
        .store()
        .context("the demo runs on the local backend")?
        .clone();
    println!(
        "envmgr demo: everything on this machine, in {}",
        store.path().display()
    );

    seed(&platform).await?;
    enqueue(&platform, &settings).await?;
    let (outcomes, handled_in_time) =
        serve_until_handled(running, finished, &store, &settings, 2).await?;

    show_what_happened(&outcomes, &store, &settings)?;
    let closed_in_time = close_the_pull_request(&settings, &store).await?;
    if !handled_in_time || !closed_in_time {
        anyhow::bail!(
            "the demo's messages were not handled within {GIVE_UP_AFTER:?}; see the log above"
        );
    }
    print_next_steps(dir, started, &store);
    Ok(())
}

/// The daemon on the demo's settings, and where it says each message ended.
async fn start(
    settings: &Settings,
) -> anyhow::Result<(Assembled, mpsc::UnboundedReceiver<Finished>)> {
    let (finished_tx, finished) = mpsc::unbounded_channel();
    let running = assemble(
        settings,
        Some(crate::BUILTIN_LOGIC),
        Some(finished_tx),
        std::future::pending(),
    )
    .await?
    .context("the local backend needs no waiting")?;
    Ok((running, finished))
}

/// Step 5: the pull request closed; the daemon again until it is handled;
/// what is left of the preview. Whether it was handled in time.
async fn close_the_pull_request(settings: &Settings, store: &Store) -> anyhow::Result<bool> {
    println!("\n[5/5] closing the pull request: the preview ends");
    let (running, finished) = start(settings).await?;
    let id = running
        .platform
        .queue(settings, "probot")
        .await?
        .send(PULL_REQUEST_CLOSED)
        .await?;
    println!("  probot <- GitHub pull_request `closed` for acme/shop#7 ({id})");
    let (outcomes, in_time) = serve_until_handled(running, finished, store, settings, 1).await?;
    for end in &outcomes {
        println!(
            "  {} {}: {} — {}",
            end.queue, end.message_id, end.disposition, end.summary
        );
    }
    show::ended(store, settings)?;
    Ok(in_time)
}

fn remove_previous_demo(dir: &Path) -> anyhow::Result<()> {
    let recordings = crate::platform::RECORDINGS_FILE;
    for file in [FILE_NAME, recordings] {
        for name in [
            file.to_string(),
            format!("{file}-wal"),
            format!("{file}-shm"),
        ] {
            let file = dir.join(name);
            if file.exists() {
                std::fs::remove_file(&file)
                    .with_context(|| format!("removing the previous demo's {}", file.display()))?;
            }
        }
    }
    Ok(())
}

/// The demo's own settings: the local backend in `dir`, whatever the
/// environment says, so it always shows the same thing.
fn demo_settings(dir: &Path) -> anyhow::Result<Settings> {
    Settings::load(
        None,
        [
            ("ENVMGR__BACKEND".to_string(), "local".to_string()),
            (
                "ENVMGR__LOCAL__DATA_DIR".to_string(),
                dir.display().to_string(),
            ),
        ],
    )
}

async fn seed(platform: &Platform) -> anyhow::Result<()> {
    println!(
        "\n[1/5] seeding app app_shop (github.com/acme/shop) and three secrets, encrypted with the local KMS key"
    );
    admin::add_app(
        platform,
        "app_shop",
        "Shop",
        "acme/shop",
        Some("src/server.ts"),
        &Default::default(),
        false,
    )
    .await?;
    for (scope, name, value) in [
        ("global", "DATABASE_URL", "postgres://shop:hunter2@db/shop"),
        ("preview", "STRIPE_KEY", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
        ("production", "STRIPE_KEY", "sk_live_51H8demoDemoDemoDemo"),
    ] {
        admin::set_secret(platform, "app_shop", scope, name, value).await?;
    }
    Ok(())
}

async fn enqueue(platform: &Platform, settings: &Settings) -> anyhow::Result<()> {
    println!("\n[2/5] enqueuing two create requests");
    let probot = platform.queue(settings, "probot").await?;
    let id = probot.send(PULL_REQUEST_OPENED).await?;
    println!("  probot <- GitHub pull_request `opened` for acme/shop#7 ({id})");
    let api = platform.queue(settings, "api").await?;
    let id = api.send(API_PRODUCTION).await?;
    println!("  api    <- platform API: production environment for acme/shop@main ({id})");
    Ok(())
}

/// Serve until every message is handled or `GIVE_UP_AFTER` passed, then
/// stop: how each message ended, and whether all were handled in time.
async fn serve_until_handled(
    running: Assembled,
    mut finished: mpsc::UnboundedReceiver<Finished>,
    store: &Store,
    settings: &Settings,
    expected: usize,
) -> anyhow::Result<(Vec<Finished>, bool)> {
    if expected > 1 {
        println!(
            "\n[3/5] running the daemon (logic {}) until both are handled, and the status\n      report each runtime sends once it is up (the local Runtime Service reports `ready`)",
            crate::logic::short(&running.daemon.versions.current().active.id)
        );
    }
    let mut outcomes = Vec::new();
    let queue_names: Vec<String> = settings.queues.values().map(|q| q.name.clone()).collect();
    let all_handled = async {
        // Two creates, then each runtime's report on the `api` queue. A
        // report that meets its create's lease is deferred and comes back,
        // so the end is both queues empty, not a count of messages.
        loop {
            tokio::select! {
                end = finished.recv() => match end {
                    // A retry or a deferral is not an end: it comes back.
                    Some(end) if !matches!(end.disposition, Disposition::Retry(_) | Disposition::Deferred(_)) => {
                        outcomes.push(end);
                    }
                    Some(_) => {}
                    None => break,
                },
                // Deletes are committed after the end is reported.
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
            let empty = queue_names
                .iter()
                .all(|queue| matches!(crate::queue::local::depth(store, queue), Ok((0, 0))));
            if outcomes.len() >= expected && empty {
                break;
            }
        }
    };
    let deadline = async {
        tokio::time::timeout(GIVE_UP_AFTER, all_handled)
            .await
            .is_ok()
    };
    let (handled_in_time, drained) = {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(running.run(async {
            let _ = stop_rx.await;
        }));
        let handled_in_time = deadline.await;
        let _ = stop_tx.send(());
        (handled_in_time, serving.await)
    };
    drained.context("the daemon task")??;
    Ok((outcomes, handled_in_time))
}

fn show_what_happened(
    outcomes: &[Finished],
    store: &Store,
    settings: &Settings,
) -> anyhow::Result<()> {
    println!("\n[4/5] what happened");
    println!("\n== message outcomes ==");
    for end in outcomes {
        println!(
            "  {} {}: {} — {}",
            end.queue, end.message_id, end.disposition, end.summary
        );
    }
    show::everything(store, settings, false)
}

fn print_next_steps(dir: &Path, started: Instant, store: &Store) {
    let dir = dir.display();
    println!(
        "\nDone in {:.1} s. The data is in {}.\n\
         \n  See it again:     cargo run -p envmgr -- show --data-dir {dir}\
         \n  Serve on it:      cargo run -p envmgr -- serve --data-dir {dir}\
         \n  Send more (while it serves, in another terminal):\
         \n                    cargo run -p envmgr -- send --data-dir {dir} --queue probot --file docs/examples/pull-request-synchronize.json",
        started.elapsed().as_secs_f64(),
        store.path().display(),
    );
}
