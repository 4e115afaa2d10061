//! A month in minutes: `envmgr serve` under a steady stream across many
//! GitHub App installations whose tokens expire and are minted again, and
//! whether anything it holds grows with messages, installations or tokens.
//!
//! `cargo bench -p envmgr-tests --bench soak` (not part of `.ci/run`)
//!
//! The real binary on the local backend with `[github]` pointed at the HTTP
//! fake GitHub App (real RS256 JWTs, installation tokens that expire after
//! `ENVMGR_SOAK_TOKEN_TTL` seconds, 90), `ENVMGR_SOAK_INSTALLATIONS` (500)
//! installations, `ENVMGR_SOAK_MESSAGES` (20,000) `opened` events for
//! distinct branches offered at `ENVMGR_SOAK_RATE` (40) a second, each
//! through the next installation. Then the same stream with GitHub recorded
//! in the database (no `[github]`: no tokens at all), the yardstick for
//! what the App's tokens cost. Per fifth of each run it prints messages
//! finished, serve CPU (user + sys) per message, this process's CPU per
//! message (the fakes' and the driver's: a wait outside serve shows
//! there), RSS at the fifth's end, the `/metrics` series and p50 received
//! → finished; then the checks:
//! CPU in the last fifth ≤ 1.2 × the second's, RSS after the first fifth
//! ≤ +50 MiB, the series count the same in every fifth, and the App's CPU
//! per message within 2 × the recorders'.
//!
//! `ENVMGR_SOAK_MODES` (`recorded,app`) picks the runs; `ENVMGR_UNDER_TEST`
//! another binary.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use envmgr_tests::fakes::github::{self, FakeGitHub, Installation};
use envmgr_tests::process::{
    cpu_seconds, finished_creates, is_create, rss_bytes, stop, unix_seconds, wait_for,
};

const QUEUE: &str = "envmgr-probot";
const FIFTHS: usize = 5;
/// The first installation's id; the others follow.
const FIRST_INSTALLATION: u64 = 100_000;

struct Settings {
    binary: PathBuf,
    installations: u64,
    messages: usize,
    rate: f64,
    token_ttl: Duration,
}

/// One fifth of a run.
#[derive(Debug, Default, Clone)]
struct Window {
    messages: usize,
    cpu_ms_per_message: f64,
    /// This process's: the fake GitHub, Runtime Service and Segment, and
    /// the driver. A wait outside serve's CPU shows here.
    bench_cpu_ms_per_message: f64,
    rss_mib: f64,
    series: usize,
    p50_ms: f64,
}

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let settings = Settings {
        binary: PathBuf::from(
            std::env::var("ENVMGR_UNDER_TEST")
                .unwrap_or_else(|_| env!("CARGO_BIN_EXE_envmgr-under-test").to_string()),
        ),
        installations: env_number("ENVMGR_SOAK_INSTALLATIONS", 500.0) as u64,
        messages: env_number("ENVMGR_SOAK_MESSAGES", 20_000.0) as usize,
        rate: env_number("ENVMGR_SOAK_RATE", 40.0),
        token_ttl: Duration::from_secs_f64(env_number("ENVMGR_SOAK_TOKEN_TTL", 90.0)),
    };
    let modes = std::env::var("ENVMGR_SOAK_MODES").unwrap_or_else(|_| "recorded,app".into());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-soak");
    let _ = std::fs::remove_dir_all(&root);
    let mut results = Vec::new();
    for mode in modes.split(',') {
        let app = mode.trim() == "app";
        eprintln!("soak: {mode}, {} messages", settings.messages);
        let windows = run(&settings, &root.join(mode.trim()), app);
        print_table(mode.trim(), &settings, &windows);
        results.push((mode.trim().to_string(), windows));
    }
    if let [(_, recorded), (_, app)] = &results[..] {
        let ratio = app[FIFTHS - 1].cpu_ms_per_message / recorded[FIFTHS - 1].cpu_ms_per_message;
        println!(
            "\nthe App's serve CPU per message over the recorders' (last fifth): {ratio:.2} × (target ≤ 2 ×{})",
            if ratio <= 2.0 { ", met" } else { ", missed" }
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}

fn print_table(mode: &str, settings: &Settings, windows: &[Window]) {
    println!(
        "\n{mode}: {} messages at {}/s, {} installations, tokens of {} s",
        settings.messages,
        settings.rate,
        settings.installations,
        settings.token_ttl.as_secs()
    );
    println!(
        "| fifth | messages | serve CPU ms/message | fakes + driver CPU ms/message | RSS MiB | /metrics series | p50 received → finished ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (n, w) in windows.iter().enumerate() {
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.0} | {} | {:.1} |",
            n + 1,
            w.messages,
            w.cpu_ms_per_message,
            w.bench_cpu_ms_per_message,
            w.rss_mib,
            w.series,
            w.p50_ms
        );
    }
    let cpu = windows[FIFTHS - 1].cpu_ms_per_message / windows[1].cpu_ms_per_message;
    let rss = windows[FIFTHS - 1].rss_mib - windows[0].rss_mib;
    let series_flat = windows.iter().all(|w| w.series == windows[1].series);
    println!(
        "checks: CPU last/second fifth {cpu:.2} × (≤ 1.2: {}); RSS after the first fifth {rss:+.0} MiB (≤ +50: {}); series {} ({})",
        met(cpu <= 1.2),
        met(rss <= 50.0),
        windows[1].series,
        if series_flat {
            "the same in every fifth after the first"
        } else {
            "changed"
        }
    );
}

fn met(yes: bool) -> &'static str {
    if yes { "met" } else { "missed" }
}

/// The fake GitHub App with `installations` installations on `acme`, the
/// commit the events name, and a pull request for every event.
fn github(settings: &Settings) -> (FakeGitHub, String) {
    let (github, url) = FakeGitHub::start();
    for n in 0..settings.installations {
        github.add_installation(Installation::new(FIRST_INSTALLATION + n, "acme"));
    }
    github.set_token_ttl(settings.token_ttl);
    for sha in envmgr_tests::stack::EXAMPLE_COMMITS {
        github.add_commit(envmgr_tests::REPO, sha);
    }
    for n in 0..settings.messages as u64 {
        github.add_pull_request(envmgr_tests::REPO, pull_request(n));
    }
    (github, url)
}

fn pull_request(n: u64) -> u64 {
    10 + n
}

/// The config: local backend, admin endpoint, and `[github]` for the App.
fn config(dir: &Path, admin_port: u16, github_url: Option<&str>) -> PathBuf {
    let mut config = format!(
        "backend = \"local\"\n\n[local]\ndata_dir = \"{}/data\"\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n",
        dir.display()
    );
    if let Some(url) = github_url {
        std::fs::write(dir.join("github-app.pem"), github::PRIVATE_KEY).expect("key file");
        config.push_str(&format!(
            "\n[github]\napp_id = {}\nprivate_key_file = \"{}/github-app.pem\"\napi_url = \"{url}\"\n",
            github::APP_ID,
            dir.display()
        ));
    }
    let path = dir.join("envmgr.toml");
    std::fs::write(&path, config).expect("config file");
    path
}

fn envmgr(binary: &Path, config: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ENVMGR_CONFIG", config)
        .stdin(Stdio::null());
    command
}

fn seed(binary: &Path, config: &Path) {
    let run = |args: &[&str], input: Option<&str>| {
        let mut command = envmgr(binary, config);
        command.args(args);
        envmgr_tests::process::run_to_success(command, input);
    };
    run(&["init"], None);
    run(&envmgr_tests::ADD_SHOP_APP, None);
    let secret = [
        "set-secret",
        "--app",
        "app_shop",
        "--scope",
        "global",
        "--name",
        "DATABASE_URL",
    ];
    run(&secret, Some("postgres://shop@db/shop"));
}

/// Event `n`: its own branch and pull request, through installation
/// `n mod installations`.
fn event(template: &serde_json::Value, n: u64, installations: u64) -> String {
    let mut event = template.clone();
    event["id"] = format!("soak-{n}").into();
    let payload = &mut event["payload"];
    payload["number"] = pull_request(n).into();
    payload["installation"]["id"] = (FIRST_INSTALLATION + n % installations).into();
    let pull = &mut payload["pull_request"];
    pull["number"] = pull_request(n).into();
    pull["id"] = (1_900_000_000 + n).into();
    pull["head"]["ref"] = format!("soak/{n}").into();
    pull["head"]["label"] = format!("acme:soak/{n}").into();
    event.to_string()
}

/// Queue events `range` straight into the database file, and announce the
/// commit as `envmgr send` does (a read of the wake file's byte, which
/// wakes `serve`'s long poll: host/src/local/changes.rs).
fn offer(
    data: &Path,
    template: &serde_json::Value,
    range: std::ops::Range<u64>,
    installations: u64,
) {
    let mut connection = rusqlite::Connection::open(data.join("envmgr.db")).expect("database");
    connection
        .busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    let transaction = connection.transaction().expect("a transaction");
    let now = (unix_seconds(SystemTime::now()) * 1_000.0) as i64;
    for n in range {
        transaction
            .execute(
                "INSERT INTO messages (id, queue, body, attributes, sent_at_ms, visible_at_ms)
                 VALUES (?1, ?2, ?3, '{}', ?4, ?4)",
                rusqlite::params![
                    format!("soak-{n:08}"),
                    QUEUE,
                    event(template, n, installations),
                    now
                ],
            )
            .expect("queueing");
    }
    transaction.commit().expect("commit");
    if let Ok(wake) = std::fs::File::open(data.join("envmgr.db-wake")) {
        use std::io::Read as _;
        let _ = (&wake).read(&mut [0u8; 1]);
    }
}

/// What the run saw of the process while it ran.
#[derive(Default)]
struct Samples {
    /// (unix seconds, CPU seconds, RSS bytes, series, this process's CPU
    /// seconds).
    at: Vec<(f64, f64, u64, usize, f64)>,
}

/// How many series `/metrics` lists now (0 while it does not answer).
fn series(admin_port: u16) -> usize {
    use std::io::Write as _;
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", admin_port)) else {
        return 0;
    };
    let mut text = String::new();
    let asked = write!(stream, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    if asked.is_err() || stream.read_to_string(&mut text).is_err() {
        return 0;
    }
    text.split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count()
}

fn run(settings: &Settings, dir: &Path, app: bool) -> Vec<Window> {
    std::fs::create_dir_all(dir).expect("soak dir");
    let fake = app.then(|| github(settings));
    let admin_port = envmgr_tests::free_port();
    let config = config(dir, admin_port, fake.as_ref().map(|(_, url)| url.as_str()));
    seed(&settings.binary, &config);
    let body = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/pull-request-opened.json"),
    )
    .expect("the example event");
    let template: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let log = dir.join("serve.log");
    let mut serve = envmgr(&settings.binary, &config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("envmgr serve");
    let pid = serve.id();
    let mut tail = std::fs::File::open(wait_for(&log)).expect("the log");
    let data = dir.join("data");
    let started = Instant::now();
    let mut offered = 0u64;
    let mut finished = 0usize;
    let mut samples = Samples::default();
    let mut text = String::new();
    let deadline =
        started + Duration::from_secs_f64(settings.messages as f64 / settings.rate * 3.0 + 120.0);
    let mut last_sample = Instant::now() - Duration::from_secs(1);
    while finished < settings.messages {
        assert!(
            Instant::now() < deadline,
            "the soak fell behind: {finished} of {}",
            settings.messages
        );
        let due = ((started.elapsed().as_secs_f64() * settings.rate) as u64)
            .min(settings.messages as u64);
        if due > offered {
            offer(&data, &template, offered..due, settings.installations);
            offered = due;
        }
        let mut chunk = String::new();
        tail.read_to_string(&mut chunk).expect("the log");
        finished += chunk
            .lines()
            .filter(|l| is_create(l) && l.contains("message finished"))
            .count();
        text.push_str(&chunk);
        if last_sample.elapsed() >= Duration::from_secs(1) {
            last_sample = Instant::now();
            let now = unix_seconds(SystemTime::now());
            let cpu = cpu_seconds(pid).unwrap_or(0.0);
            let rss = rss_bytes(pid).unwrap_or(0);
            let own = cpu_seconds(std::process::id()).unwrap_or(0.0);
            samples.at.push((now, cpu, rss, series(admin_port), own));
        }
        if let Ok(Some(status)) = serve.try_wait() {
            panic!("serve exited during the soak: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let now = unix_seconds(SystemTime::now());
    samples.at.push((
        now,
        cpu_seconds(pid).unwrap_or(0.0),
        rss_bytes(pid).unwrap_or(0),
        series(admin_port),
        cpu_seconds(std::process::id()).unwrap_or(0.0),
    ));
    stop(&mut serve);
    windows(&text, &samples)
}

/// The run in fifths by messages finished.
fn windows(log: &str, samples: &Samples) -> Vec<Window> {
    let done = finished_creates(log);
    let sample_at = |t: f64| {
        let i = samples
            .at
            .partition_point(|s| s.0 < t)
            .min(samples.at.len() - 1);
        samples.at[i]
    };
    (0..FIFTHS)
        .map(|k| {
            let part = &done[done.len() * k / FIFTHS..done.len() * (k + 1) / FIFTHS];
            let (from, to) = (sample_at(part[0].0), sample_at(part[part.len() - 1].0));
            let mut latencies: Vec<f64> = part.iter().map(|(_, l)| *l).collect();
            latencies.sort_by(f64::total_cmp);
            Window {
                messages: part.len(),
                cpu_ms_per_message: (to.1 - from.1) * 1e3 / part.len() as f64,
                bench_cpu_ms_per_message: (to.4 - from.4) * 1e3 / part.len() as f64,
                rss_mib: to.2 as f64 / (1 << 20) as f64,
                series: to.3,
                p50_ms: latencies[latencies.len() / 2] * 1e3,
            }
        })
        .collect()
}
