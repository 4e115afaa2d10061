//! The embedded backend under load: `envmgr serve` draining a queue, timed
//! from outside, every figure printed beside its target.
//!
//! `cargo bench -p envmgr-tests --bench drain`
//!
//! Each run: a new data directory with the Shop app and its two secrets
//! (made by the binary's own `add-app` and `set-secret`), `MESSAGES`
//! pull-request `opened` events for distinct branches queued first, then
//! `serve` with every setting at its default (local backend: GitHub, Segment
//! and the Runtime Service recorded in the database; logs at `info` to a
//! file) until the queue is empty.
//!
//! - **drain rate** and **serve CPU per message** over the steady-state
//!   window: the messages finished between the 10 % and the 90 % mark (the
//!   start-up and the tail, when the queue no longer keeps every slot busy,
//!   are left out); CPU is the serve process's user + system time from
//!   `/proc/<pid>/stat`, sampled every 10 ms;
//! - **latency** p50/p99 per message in that window: its `received` log
//!   line to its `message finished` line;
//! - **`send` during the drain**: `envmgr send` run a few times mid-drain,
//!   its whole run timed (a process; its write must get the write lock
//!   between the daemon's batches);
//! - **start → first done**: spawning `serve` to its first `handled` log
//!   line, with one message queued, on a new data directory (no native code
//!   cached: the builtin's is shipped in the binary, another logic
//!   version would be compiled) and again on that directory
//!   (cached);
//! - the disk's **fsync** latency (`fdatasync` of a 4 KiB write, as SQLite
//!   does), beside the drain rate: what a commit with `synchronous=FULL`
//!   costs.
//!
//! Environment: `ENVMGR_BENCH_MESSAGES` (20000), `ENVMGR_BENCH_RUNS` (3
//! drains; figures are medians over runs), `ENVMGR_UNDER_TEST` (another
//! binary), `ENVMGR_BENCH_BASELINE` (a second binary, e.g. an older
//! commit's build: its runs are interleaved with these and its table
//! printed first); `ENVMGR__...` overrides are passed on to every command
//! (the table is for the defaults: say so when quoting another setting);
//! `ENVMGR_BENCH_COLLECTOR=1` starts the tests' fake OTLP collector in this
//! process and points every `serve` at it (`[telemetry] otlp_endpoint`):
//! the drain with traces exported, to compare with one without by their
//! ratios to the yardstick.
//!
//! **The yardstick**: before each binary's run (once the previous run's
//! writes are flushed), in the same process, the native create flow's
//! median (`envmgr_tests::yardstick`); the serve CPU per create (with its
//! status report: the embedded Runtime Service reports each create, and
//! `serve` handles the report) is given as a multiple of the median of
//! every reading of the bench's run (both binaries'), over the steady
//! window and over the whole drain (start to the last message, the
//! builtin's compile included), and the cold start as a multiple of the
//! warm one — the ratios the targets are set in
//! (`docs/performance.md`, "Why ratios").
//!
//! The two sandbox ratios (component ÷ native, floor ÷ native) come from
//! `cargo bench -p envmgr-tests --bench create_flow`.

use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use envmgr_tests::process::{
    cpu_at, cpu_seconds, finished_creates, is_create, stop, timestamp, unix_seconds, wait_for,
};
use envmgr_tests::yardstick::Yardstick;

/// Serve CPU per create with its report, at most, in native create flows.
const CPU_TARGET: f64 = 40.0;
/// Start → first message done on a new data directory, at most, in warm
/// starts.
const COLD_START_TARGET: f64 = 2.0;
/// Native create flows timed for the yardstick before each run.
const YARDSTICK_ROUNDS: usize = 3_000;

const DEFAULT_MESSAGES: usize = 20_000;
const DEFAULT_RUNS: usize = 3;
/// Cold and warm start-ups per run.
const STARTS: usize = 2;
/// `envmgr send`s during each drain.
const SENDS: usize = 5;
/// The default queue `serve` consumes without a config.
const QUEUE: &str = "envmgr-probot";

/// The fake collector's URL, when `ENVMGR_BENCH_COLLECTOR` is set.
static COLLECTOR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects nothing here.
    let collector = std::env::var_os("ENVMGR_BENCH_COLLECTOR").map(|_| {
        let (collector, url) = envmgr_tests::fakes::collector::FakeCollector::start();
        let _ = COLLECTOR.set(url);
        collector
    });
    let messages = env_number("ENVMGR_BENCH_MESSAGES", DEFAULT_MESSAGES);
    let runs = env_number("ENVMGR_BENCH_RUNS", DEFAULT_RUNS);
    let under_test = PathBuf::from(
        std::env::var("ENVMGR_UNDER_TEST")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_envmgr-under-test").to_string()),
    );
    let mut binaries = Vec::new();
    if let Ok(baseline) = std::env::var("ENVMGR_BENCH_BASELINE") {
        binaries.push(("baseline", PathBuf::from(baseline)));
    }
    binaries.push(("under test", under_test));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-drain");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("bench dir");
    let body = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/pull-request-opened.json"),
    )
    .expect("the example event");
    let template: serde_json::Value = serde_json::from_str(&body).expect("JSON");

    let fsync = fsync_latency(&root);
    let yardstick = Yardstick::new();
    let mut results: Vec<Vec<Figures>> = vec![Vec::new(); binaries.len()];
    for run in 0..runs {
        // Interleaved: a machine busy with something else hurts each alike.
        for (index, (label, binary)) in binaries.iter().enumerate() {
            let dir = root.join(format!("{}-{run}", label.replace(' ', "-")));
            eprintln!("run {}/{runs}: {label} ({})", run + 1, binary.display());
            // The previous drain's dirty pages written back first: the
            // kernel's writeback of ~1 GB of WAL slowed a yardstick taken
            // during it by up to 1.8×.
            let _ = Command::new("sync").status();
            let native = yardstick.native_median(YARDSTICK_ROUNDS);
            let mut figures = one_run(binary, &dir, &template, messages);
            figures.native = native;
            eprintln!("  {figures:?}");
            results[index].push(figures);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    println!();
    println!(
        "fsync of this disk (fdatasync of 4 KiB, {} tries): p50 {:.2} ms, p99 {:.2} ms",
        FSYNC_TRIES,
        fsync.0 * 1e3,
        fsync.1 * 1e3
    );
    let reference = pooled_yardstick(&results);
    for ((label, binary), figures) in binaries.iter().zip(&results) {
        table(label, binary, figures, messages, fsync, reference);
    }
    if let Some(collector) = collector {
        println!(
            "\nTraces exported to the fake collector: {} spans, {} KiB",
            collector.spans().len(),
            collector.raw().len() / 1024
        );
    }
    println!(
        "\nThe sandbox rows (per-message overhead native vs component, fixed cost of a refused \
         message): cargo bench -p envmgr-tests --bench create_flow"
    );
}

/// What one run measured.
#[derive(Clone, Debug, Default)]
struct Figures {
    drain_per_second: f64,
    cpu_per_message: Duration,
    /// Over the whole drain: the serve process's CPU from its start to the
    /// last message, over every create.
    whole_cpu_per_message: Duration,
    /// The yardstick: the native create flow's median, just before.
    native: Duration,
    p50: Duration,
    p99: Duration,
    send_max: Duration,
    cold_start: Vec<Duration>,
    warm_start: Vec<Duration>,
}

/// The yardstick every ratio of this run is taken to: the median of its
/// readings before every binary's runs, so one slow reading moves neither
/// column alone.
fn pooled_yardstick(results: &[Vec<Figures>]) -> f64 {
    let mut readings: Vec<f64> = results
        .iter()
        .flatten()
        .map(|f| f.native.as_secs_f64())
        .collect();
    readings.sort_by(f64::total_cmp);
    readings[readings.len() / 2]
}

fn table(
    label: &str,
    binary: &Path,
    runs: &[Figures],
    messages: usize,
    fsync: (f64, f64),
    reference: f64,
) {
    let median = |pick: &dyn Fn(&Figures) -> f64| -> f64 {
        let mut values: Vec<f64> = runs.iter().map(pick).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let all = |pick: &dyn Fn(&Figures) -> &Vec<Duration>| -> f64 {
        let mut values: Vec<f64> = runs
            .iter()
            .flat_map(|f| pick(f).iter().map(Duration::as_secs_f64))
            .collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let drain = median(&|f| f.drain_per_second);
    let cpu = median(&|f| f.cpu_per_message.as_secs_f64());
    let whole = median(&|f| f.whole_cpu_per_message.as_secs_f64());
    let native = median(&|f| f.native.as_secs_f64());
    let steady_ratio = cpu / reference;
    let whole_ratio = whole / reference;
    let warm = all(&|f| &f.warm_start);
    let cold = all(&|f| &f.cold_start);
    println!(
        "\n{label}: {} — {messages} messages, medians of {} runs",
        binary.display(),
        runs.len()
    );
    println!("| figure | measured | target |");
    println!("|---|---|---|");
    let row = |figure: &str, measured: String, target: &str, met: Option<bool>| {
        let mark = match met {
            Some(true) => " (met)",
            Some(false) => " (missed)",
            None => "",
        };
        println!("| {figure} | {measured}{mark} | {target} |");
    };
    row(
        "the yardstick: the native create flow (median before this binary's runs; every ratio of this run is to the median of all its readings)",
        format!("{:.1} µs (all: {:.1} µs)", native * 1e6, reference * 1e6),
        "—",
        None,
    );
    row(
        "serve CPU per create with its report (user+sys), steady window",
        format!("{:.3} ms = {steady_ratio:.1} native flows", cpu * 1e3),
        "≤ 40 × the native flow",
        Some(steady_ratio <= CPU_TARGET),
    );
    row(
        "the same over the whole drain (start-up and tail included)",
        format!("{:.3} ms = {whole_ratio:.1} native flows", whole * 1e3),
        "≤ 40 × the native flow",
        Some(whole_ratio <= CPU_TARGET),
    );
    row(
        "drain rate, local backend (steady state)",
        format!(
            "{drain:.0} messages/s (disk fsync p50 {:.2} ms)",
            fsync.0 * 1e3
        ),
        "—",
        None,
    );
    row(
        "latency per message, received → finished: p50 / p99",
        format!(
            "{:.1} ms / {:.1} ms",
            median(&|f| f.p50.as_secs_f64()) * 1e3,
            median(&|f| f.p99.as_secs_f64()) * 1e3
        ),
        "—",
        None,
    );
    row(
        "`envmgr send` during the drain (slowest)",
        format!("{:.0} ms", median(&|f| f.send_max.as_secs_f64()) * 1e3),
        "never starved",
        None,
    );
    row(
        "start → first queued message done, native-code cache warm",
        format!("{:.0} ms", warm * 1e3),
        "—",
        None,
    );
    row(
        "the same on a new data directory (nothing cached; the builtin's code shipped)",
        format!("{:.0} ms = {:.1} warm starts", cold * 1e3, cold / warm),
        "≤ 2 × the warm start",
        Some(cold / warm <= COLD_START_TARGET),
    );
}

fn one_run(binary: &Path, dir: &Path, template: &serde_json::Value, messages: usize) -> Figures {
    let mut figures = Figures::default();
    // Start-ups first, each with one message queued.
    for start in 0..STARTS {
        let small = dir.join(format!("start-{start}"));
        seed(binary, &small);
        enqueue(&small, template, 0..1);
        figures.cold_start.push(first_done(
            binary,
            &small,
            &dir.join(format!("cold-{start}.log")),
        ));
        enqueue(&small, template, 1..2);
        figures.warm_start.push(first_done(
            binary,
            &small,
            &dir.join(format!("warm-{start}.log")),
        ));
    }

    let data = dir.join("drain");
    seed(binary, &data);
    enqueue(&data, template, 0..messages);
    let log = dir.join("drain.log");
    let mut serve = serve(binary, &data, &log);
    let pid = serve.id();
    let mut cpu_samples: Vec<(f64, f64)> = Vec::new();
    let mut finished = 0usize;
    let mut tail = std::fs::File::open(wait_for(&log)).expect("the serve log");
    let mut carry = String::new();
    let mut sends = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(1_800);
    let total = messages + SENDS;
    while finished < total {
        assert!(
            Instant::now() < deadline,
            "the drain did not finish in 30 minutes ({finished} of {total})"
        );
        if let Some(cpu) = cpu_seconds(pid) {
            cpu_samples.push((unix_seconds(SystemTime::now()), cpu));
        }
        let mut chunk = String::new();
        tail.read_to_string(&mut chunk).expect("reading the log");
        carry.push_str(&chunk);
        if let Some(end) = carry.rfind('\n') {
            finished += carry[..end]
                .lines()
                .filter(|l| is_create(l) && l.contains("message finished"))
                .count();
            carry.drain(..=end);
        }
        if sends.is_empty() && finished >= messages / 2 {
            for i in 0..SENDS {
                let body = event(template, &format!("send/{i}"), 1_000_000 + i as u64);
                let began = Instant::now();
                let status = envmgr(binary, &data)
                    .args(["send", "--queue", "probot", "--body", &body])
                    .stdout(Stdio::null())
                    .status()
                    .expect("envmgr send");
                assert!(status.success(), "envmgr send failed during the drain");
                sends.push(began.elapsed());
            }
        }
        if let Ok(Some(status)) = serve.try_wait() {
            panic!("serve exited during the drain: {status}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    stop(&mut serve);
    tail.rewind().expect("rewind");
    let mut text = String::new();
    tail.read_to_string(&mut text).expect("the log");

    // Per message: when finished, and how long after it was received.
    let done = finished_creates(&text);
    let (from, to) = (done.len() / 10, done.len() * 9 / 10);
    let window = &done[from..to];
    let (t0, t1) = (window[0].0, window[window.len() - 1].0);
    figures.drain_per_second = (window.len() - 1) as f64 / (t1 - t0);
    let cpu = cpu_at(&cpu_samples, t1) - cpu_at(&cpu_samples, t0);
    figures.cpu_per_message = Duration::from_secs_f64(cpu / (window.len() - 1) as f64);
    // From the process's start (its CPU was 0) to the last message done.
    let last = done.iter().map(|d| d.0).fold(f64::MIN, f64::max);
    figures.whole_cpu_per_message =
        Duration::from_secs_f64(cpu_at(&cpu_samples, last) / done.len() as f64);
    let mut latencies: Vec<f64> = window.iter().map(|(_, l)| *l).collect();
    latencies.sort_by(f64::total_cmp);
    figures.p50 = Duration::from_secs_f64(latencies[latencies.len() / 2]);
    figures.p99 = Duration::from_secs_f64(latencies[latencies.len() * 99 / 100]);
    figures.send_max = sends.iter().copied().max().unwrap_or_default();
    figures
}

/// The binary with only the data directory (no config: every default),
/// and the `ENVMGR__` overrides the bench was given, if any (to measure
/// another setting, e.g. `ENVMGR__QUEUES__PROBOT__MAX_IN_FLIGHT`).
fn envmgr(binary: &Path, data: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ENVMGR_DATA_DIR", data)
        .envs(std::env::vars().filter(|(name, _)| name.starts_with("ENVMGR__")))
        .envs(
            COLLECTOR
                .get()
                .map(|url| ("ENVMGR__TELEMETRY__OTLP_ENDPOINT", url)),
        )
        .stdin(Stdio::null());
    command
}

/// A new data directory with the Shop app and its two secrets.
fn seed(binary: &Path, data: &Path) {
    let _ = std::fs::remove_dir_all(data);
    let run = |args: &[&str], input: Option<&str>| {
        let mut command = envmgr(binary, data);
        command.args(args);
        envmgr_tests::process::run_to_success(command, input);
    };
    run(&["init"], None);
    run(&envmgr_tests::ADD_SHOP_APP, None);
    for (scope, name, value) in [
        ("global", "DATABASE_URL", "postgres://shop@db/shop"),
        ("preview", "STRIPE_KEY", "sk_test_bench"),
    ] {
        run(
            &[
                "set-secret",
                "--app",
                "app_shop",
                "--scope",
                scope,
                "--name",
                name,
            ],
            Some(value),
        );
    }
}

/// The example event for pull request `number` from `branch`.
fn event(template: &serde_json::Value, branch: &str, number: u64) -> String {
    let mut event = template.clone();
    event["id"] = format!("bench-{number}").into();
    event["payload"]["number"] = number.into();
    let pull = &mut event["payload"]["pull_request"];
    pull["number"] = number.into();
    pull["id"] = (1_900_000_000 + number).into();
    pull["head"]["ref"] = branch.into();
    pull["head"]["label"] = format!("acme:{branch}").into();
    event.to_string()
}

/// Queue events `range` (as a producer would, each its own message) with a
/// connection of our own: the schema is the binary's (made by its `init`).
fn enqueue(data: &Path, template: &serde_json::Value, range: std::ops::Range<usize>) {
    let mut connection =
        rusqlite::Connection::open(data.join("envmgr.db")).expect("the database file");
    connection
        .busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    let transaction = connection.transaction().expect("a transaction");
    let now = unix_seconds(SystemTime::now()) as i64 * 1_000;
    for i in range {
        let id = format!("bench-{i:08}-0000-0000-0000-000000000000");
        transaction
            .execute(
                "INSERT INTO messages (id, queue, body, attributes, sent_at_ms, visible_at_ms)
                 VALUES (?1, ?2, ?3, '{}', ?4, ?4)",
                rusqlite::params![
                    id,
                    QUEUE,
                    event(template, &format!("bench/{i}"), 10 + i as u64),
                    now
                ],
            )
            .expect("queueing");
    }
    transaction.commit().expect("commit");
}

fn serve(binary: &Path, data: &Path, log: &Path) -> Child {
    envmgr(binary, data)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("the log file"))
        .spawn()
        .expect("envmgr serve")
}

/// Spawn `serve` on `data` (one message queued) and time it to its first
/// `handled` line; then stop it.
fn first_done(binary: &Path, data: &Path, log: &Path) -> Duration {
    let spawned = SystemTime::now();
    let mut serve = serve(binary, data, log);
    let deadline = Instant::now() + Duration::from_secs(60);
    let handled = loop {
        assert!(Instant::now() < deadline, "no message handled in 60 s");
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(": handled")) {
            break timestamp(line).expect("a timestamped line");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    stop(&mut serve);
    Duration::from_secs_f64((handled - unix_seconds(spawned)).max(0.0))
}

const FSYNC_TRIES: usize = 200;

/// p50 and p99 of `fdatasync` after a 4 KiB write, in seconds, on the
/// file system of `dir`.
fn fsync_latency(dir: &Path) -> (f64, f64) {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).expect("probe file");
    let page = [7u8; 4096];
    let mut times: Vec<f64> = (0..FSYNC_TRIES)
        .map(|_| {
            file.write_all(&page).expect("write");
            let began = Instant::now();
            file.sync_data().expect("fdatasync");
            began.elapsed().as_secs_f64()
        })
        .collect();
    let _ = std::fs::remove_file(&path);
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
