//! The latency a developer feels: how long after a message is sent the
//! runtime is requested, the pull-request comment is written, and the
//! message is done (its delete committed).
//!
//! `cargo bench -p envmgr-tests --bench latency` (release build; add
//! `-- --runs N` for more than 15 messages of each kind; `-- --recording`
//! runs the table twice, `[record]` off then on, to show what recording
//! handled messages costs them)
//!
//! The real binary serves the local backend, with a local GitHub that
//! answers every request after 100 ms (and one at 0 ms) and a Runtime
//! Service that answers after 50 ms; one message at a time, each kind in
//! turn: `opened` (a new pull request), `synchronize` (a push to it), a
//! redelivery (the push again). Prints medians and the GitHub requests a
//! message made: all of them, the ones GitHub counts against the
//! installation's hourly limit (a `304` and a token mint are not counted),
//! and how many were ever in flight at once.

use std::time::{Duration, Instant};

use envmgr_tests::fakes::github::{Installation, Logged, Route};
use envmgr_tests::stack::{Backend, Options, Stack, eventually};
use envmgr_tests::{INSTALLATION, REPO, pull_request_event};

const BINARY: &str = env!("CARGO_BIN_EXE_envmgr-under-test");
const GITHUB_LATENCY: Duration = Duration::from_millis(100);
const RUNTIME_LATENCY: Duration = Duration::from_millis(50);

/// One message's figures, in ms after `send` returned.
#[derive(Default, Clone)]
struct Figures {
    comment: Option<f64>,
    runtime: Option<f64>,
    done: f64,
    github: usize,
    counted: usize,
    mints: usize,
    at_once: usize,
}

fn ms(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1_000.0
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[values.len() / 2])
}

/// Send `body` and wait until the queue is empty; what happened meanwhile.
async fn measure(stack: &Stack, store: &envmgr::local::Store, body: &str) -> Figures {
    let queue = stack.queue_name("probot");
    let github_before = stack.github.requests().len();
    let runtime_before = stack.runtime.arrivals().len();
    stack.send("probot", body);
    let sent = Instant::now();
    let done = loop {
        let (visible, in_flight) = envmgr::queue::local::depth(store, &queue).expect("depth");
        if visible + in_flight == 0 {
            break Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let requests: Vec<Logged> = stack.github.requests()[github_before..].to_vec();
    let comment = requests
        .iter()
        .filter(|r| {
            matches!(r.route, Some(Route::CreateComment | Route::UpdateComment))
                && (200..300).contains(&r.status)
        })
        .map(|r| ms(sent, r.finished))
        .reduce(f64::min);
    let runtime = stack.runtime.arrivals()[runtime_before..]
        .first()
        .map(|at| ms(sent, *at));
    let at_once = requests
        .iter()
        .map(|r| {
            requests
                .iter()
                .filter(|o| o.started < r.finished && r.started < o.finished)
                .count()
        })
        .max()
        .unwrap_or(0);
    Figures {
        comment,
        runtime,
        done: ms(sent, done),
        github: requests.len(),
        counted: requests.iter().filter(|r| r.counted).count(),
        mints: requests
            .iter()
            .filter(|r| r.route == Some(Route::AccessToken))
            .count(),
        at_once,
    }
}

fn row(kind: &str, runs: &[Figures]) {
    let shown = |values: Vec<f64>| match median(values) {
        Some(value) => format!("{value:.0}"),
        None => "—".to_string(),
    };
    let comment = shown(runs.iter().filter_map(|f| f.comment).collect());
    let runtime = shown(runs.iter().filter_map(|f| f.runtime).collect());
    let done = shown(runs.iter().map(|f| f.done).collect());
    let median_of = |pick: fn(&Figures) -> usize| {
        let mut values: Vec<usize> = runs.iter().map(pick).collect();
        values.sort_unstable();
        values[values.len() / 2]
    };
    println!(
        "| {kind} | {comment} | {runtime} | {done} | {} | {} | {} | {} |",
        median_of(|f| f.github),
        median_of(|f| f.counted),
        median_of(|f| f.mints),
        median_of(|f| f.at_once),
    );
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::args()
        .skip_while(|a| a != "--runs")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(15);
    let stack = Stack::new(
        "latency",
        BINARY,
        Options {
            backend: Backend::Local,
            ..Options::default()
        },
    );
    stack.seed_shop("postgres://shop@db/shop", "sk_test_latency");
    stack
        .github
        .add_installation(Installation::new(INSTALLATION, "acme"));
    let store = stack.store();
    let compare_recording = std::env::args().any(|a| a == "--recording");
    let modes: &[(&str, &str)] = if compare_recording {
        &[("false", " — recording off"), ("true", " — recording on")]
    } else {
        &[("true", "")]
    };
    for (round, (enabled, mode)) in modes.iter().enumerate() {
        let mut daemon = stack.serve_with(&[("ENVMGR__RECORD__ENABLED", enabled)]).0;
        table(&stack, &store, runs, round * 2_000, mode).await;
        envmgr_tests::stack::terminate(&mut daemon);
    }
}

/// The table for one daemon; pull requests numbered from `first`.
async fn table(stack: &Stack, store: &envmgr::local::Store, runs: usize, first: usize, mode: &str) {
    // A push's commit differs from the last in its first digits too, as
    // real ones do: the comment shows seven.
    let commit = |n: usize, push: usize| format!("{:04x}{:036x}", 0xabc0 + push, n);
    let at = |n: usize, push: usize| {
        format!(
            "2026-11-{:02}T{:02}:{:02}:{:02}Z",
            1 + n / 1_440,
            (n / 60) % 24,
            n % 60,
            push
        )
    };
    // Warm up: the logic compiled, the installation's token minted.
    let warm = first + 900;
    stack.github.add_pull_request(REPO, warm as u64);
    stack.github.add_commit(REPO, &commit(warm, 0));
    let branch = format!("bench/warm-up-{first}");
    let warm_up = pull_request_event("opened", warm as u64, &branch, &commit(warm, 0), &at(0, 0));
    let runtimes = stack.runtime.runtimes().len();
    measure(stack, store, &warm_up).await;
    eventually("warmed up", Duration::from_secs(30), || async {
        stack.runtime.runtimes().len() == runtimes + 1
    })
    .await;

    println!(
        "\nGitHub {} ms a request, Runtime Service {} ms; {runs} messages of each kind, one at a time; medians{mode}",
        GITHUB_LATENCY.as_millis(),
        RUNTIME_LATENCY.as_millis()
    );
    println!(
        "\n| request | comment written (ms) | runtime requested (ms) | done (ms) | GitHub requests | counted | token mints | most at once |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (latency, label) in [(GITHUB_LATENCY, ""), (Duration::ZERO, " (GitHub 0 ms)")] {
        stack.github.set_latency(latency);
        stack.runtime.delay(RUNTIME_LATENCY);
        let (mut opened, mut pushed, mut again) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..runs {
            let n = first + i + if latency.is_zero() { 500 } else { 1 };
            let branch = format!("bench/{n}");
            stack.github.add_pull_request(REPO, n as u64);
            stack.github.add_commit(REPO, &commit(n, 0));
            stack.github.add_commit(REPO, &commit(n, 1));
            let body = pull_request_event("opened", n as u64, &branch, &commit(n, 0), &at(n, 0));
            opened.push(measure(stack, store, &body).await);
            let push =
                pull_request_event("synchronize", n as u64, &branch, &commit(n, 1), &at(n, 1));
            pushed.push(measure(stack, store, &push).await);
            again.push(measure(stack, store, &push).await);
        }
        row(&format!("`opened`{label}"), &opened);
        row(&format!("`synchronize`{label}"), &pushed);
        row(&format!("redelivery{label}"), &again);
    }
}
