//! What recording costs a message, what storing a recording costs after
//! it, and how fast a replay runs.
//!
//! `cargo bench -p envmgr-tests --bench recording` (add `-- --runs N`)
//!
//! On the message's path: a first delivery of a pull request (the heaviest
//! flow: every capability, 30-odd calls) through the component in the mock
//! host, with no tape and with one (the typed requests and answers, the
//! clock, the hand-over of the recording), interleaved; medians and the
//! difference. After the ack: compressing and storing one recording in the
//! database file (as `serve` on the local backend does), and its size.
//! Replay: recordings of that traffic through two versions, messages/s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use envmgr::Message;
use envmgr::boundary::Backends;
use envmgr::calls::Observer;
use envmgr::calls::tape::Tape;
use envmgr::mock::MockHost;
use envmgr::record::Recording;
use envmgr::record::replay::{Expectations, Replaying};
use envmgr_tests::*;

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A host with the app and secrets, and a first delivery for it.
fn fresh(n: usize) -> (MockHost, Arc<Backends>, Message) {
    let host = seeded_host();
    set_secret(&host, APP_ID, "global", "DATABASE_URL", "postgres://db");
    set_secret(&host, APP_ID, "preview", "API_KEY", "key-123");
    let backends = Arc::new(Backends {
        observer: Observer::default(),
        ..(**host.backends()).clone()
    });
    let body = pull_request_event(
        "opened",
        7,
        &format!("feature/bench-{n}"),
        SHA_1,
        "2026-11-28T11:00:00Z",
    );
    let message = host.message("probot", &body);
    (host, backends, message)
}

/// One first delivery; with a tape, the recording made as `serve` makes it
/// and handed to a queue as `serve` hands it over.
async fn once(n: usize, taped: bool, queue: &tokio::sync::mpsc::Sender<Recording>) -> Duration {
    let (host, backends, message) = fresh(n);
    let started = Instant::now();
    let tape = taped.then(Tape::default);
    let backends = match &tape {
        Some(tape) => Arc::new(backends.taped(tape.clone())),
        None => backends,
    };
    let result = host
        .engine()
        .run(host.logic(), backends.clone(), &message)
        .await;
    assert!(
        matches!(result, Ok(Ok(envmgr::Outcome::Done(_)))),
        "{result:?}"
    );
    if let Some(tape) = tape {
        let recording = Recording::of(
            host.logic(),
            "probot",
            &message,
            &backends.config,
            host.clock.now_ms(),
            envmgr::engine::summary(&result),
            tape.taken(),
        );
        let _ = queue.try_send(recording);
    }
    started.elapsed()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let runs: usize = std::env::args()
        .skip_while(|a| a != "--runs")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let (queue, mut recordings) = tokio::sync::mpsc::channel(runs * 2 + 10);

    // Warm up both paths.
    for n in 0..20 {
        once(n, n % 2 == 0, &queue).await;
    }
    let (mut plain, mut taped) = (Vec::new(), Vec::new());
    for n in 0..runs {
        plain.push(once(n, false, &queue).await);
        taped.push(once(n, true, &queue).await);
    }
    let (plain, taped) = (median(plain), median(taped));
    println!("\n{runs} first deliveries of a pull request each way, interleaved; medians");
    println!("\n| on the message's path | µs |");
    println!("|---|---|");
    println!("| the create flow, not recorded | {:.0} |", us(plain));
    println!(
        "| the create flow, recorded (tape + recording handed over) | {:.0} |",
        us(taped)
    );
    println!(
        "| recording's cost | {:.0} ({:.1} % of the flow) |",
        us(taped.saturating_sub(plain)),
        100.0 * (us(taped) - us(plain)) / us(plain)
    );

    let mut kept = Vec::new();
    while let Ok(recording) = recordings.try_recv() {
        kept.push(recording);
    }
    let calls = kept.iter().map(|r| r.taped.calls.len()).sum::<usize>() / kept.len();

    // After the ack: compress and store, as the local backend keeps them.
    let dir = std::env::temp_dir().join(format!("envmgr-bench-recording-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = envmgr::local::Store::open_dir(&dir).unwrap();
    let stored = envmgr::record::store::Recordings::new(
        Arc::new(
            envmgr::capabilities::dynamodb::local::LocalTables::new(
                store.clone(),
                [("recordings", "envmgr-recordings")],
            )
            .with_durability(envmgr::local::Durability::SurvivesCrash),
        ),
        Some((store, "envmgr-recordings".to_string())),
        envmgr::config::Record::default(),
    );
    let (mut packing, mut storing, mut bytes, mut json) = (Vec::new(), Vec::new(), 0, 0);
    for recording in &kept {
        let started = Instant::now();
        let packed = envmgr::record::store::pack(recording).unwrap();
        packing.push(started.elapsed());
        bytes += packed.len();
        json += serde_json::to_vec(recording).unwrap().len();
        let started = Instant::now();
        stored.put(recording).await.unwrap();
        storing.push(started.elapsed());
    }
    println!("\n| after the ack (the recorder's worker) | |");
    println!("|---|---|");
    println!("| calls on a first delivery's tape | {calls} |");
    println!(
        "| a recording, JSON / compressed | {} / {} bytes |",
        json / kept.len(),
        bytes / kept.len()
    );
    println!("| compress (gzip) | {:.0} µs |", us(median(packing)));
    println!(
        "| compress and store (local, one transaction) | {:.0} µs |",
        us(median(storing))
    );

    // Replay: the recorded version against itself, two runs a message.
    let (engine, builtin) = shared_logic();
    let expected = Expectations::default();
    let replaying = Replaying {
        engine: &engine,
        expected: &expected,
    };
    let started = Instant::now();
    let mut identical = 0;
    for recording in &kept {
        let verdict = replaying.verdict(recording, &builtin, &builtin).await;
        identical += usize::from(matches!(
            verdict,
            envmgr::record::replay::Verdict::Identical { .. }
        ));
    }
    let took = started.elapsed();
    println!("\n| replay | |");
    println!("|---|---|");
    println!(
        "| {} recordings through two versions | {:.2} s, {:.0} messages/s ({identical} identical) |",
        kept.len(),
        took.as_secs_f64(),
        kept.len() as f64 / took.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
