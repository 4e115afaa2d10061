//! One writer per environment under real delivery, through the real binary
//! on both backends: three `serve` processes on one store, every message
//! sent one to three times, several commits per branch sent out of order
//! (one a force-push back to an older commit), production requests, and a
//! random host SIGKILLed and restarted every second or two. After the
//! drain, every environment must be at its newest request — in the table,
//! at the Runtime Service (its last accepted create) and on GitHub (the
//! comment, the deployments' states).
//!
//! Seeded: `ENVMGR_TEST_SEED` replays a run; the seed is printed on failure.
//! `cargo test -p envmgr-tests --test one_writer -- --nocapture` prints the
//! run's figures (messages, kills, receives per message, worst kill-to-done).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant, SystemTime};

use envmgr_tests::rng::Rng;
use envmgr_tests::stack::{Backend, Options, Stack, eventually};
use envmgr_tests::{APP_ID, REPO, api_request, on_both_backends, pull_request_event};
use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_envmgr-under-test");
const HOSTS: usize = 3;
const DRAIN: Duration = Duration::from_secs(150);

/// Prints the seed when the test fails, so the run can be replayed.
struct SeedOnFailure(u64);

impl Drop for SeedOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("one_writer failed with ENVMGR_TEST_SEED={}", self.0);
        }
    }
}

/// One request: which environment, its version, its body and queue.
#[derive(Clone, Debug)]
struct Request {
    queue: &'static str,
    body: String,
    /// The environment's branch (`main` for production).
    branch: String,
    pull_request: Option<u64>,
    sha: String,
    /// `{requestedAt:013}#{sha}`.
    version: String,
}

/// Commit `n`: distinct in its first seven digits too, as real commits
/// are, so the comment (which shows seven) tells them apart.
fn sha(n: u64) -> String {
    format!("{:07x}{:033x}", 0xc0ffee0 + n, n)
}

fn millis(at: &str) -> u64 {
    let parsed =
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap();
    (parsed.unix_timestamp_nanos() / 1_000_000) as u64
}

/// Six pull requests with four pushes each (times 11:00 to 11:30 on their
/// branch), a force-push of pull request 11 back to its first commit at
/// 11:40, and three production requests.
fn workload() -> Vec<Request> {
    let mut requests = Vec::new();
    let mut n = 0;
    let branches = [
        (11, "feat/a"),
        (12, "feat/b"),
        (13, "feat/c"),
        (14, "feat/d"),
        (15, "feat/e"),
        (16, "feat/f"),
    ];
    for (pr, branch) in branches {
        let mut first = None;
        for (i, minute) in [0, 10, 20, 30].into_iter().enumerate() {
            n += 1;
            let commit = sha(n);
            first.get_or_insert(commit.clone());
            let at = format!("2026-11-28T11:{minute:02}:00Z");
            let action = if i == 0 { "opened" } else { "synchronize" };
            requests.push(Request {
                queue: "probot",
                body: pull_request_event(action, pr, branch, &commit, &at),
                branch: branch.to_string(),
                pull_request: Some(pr),
                version: format!("{:013}#{commit}", millis(&at)),
                sha: commit,
            });
        }
        if pr == 11 {
            // Force-pushed back to its first commit: newer by time, so it
            // wins over the two later commits (the request time orders
            // requests; the sha only breaks ties).
            let commit = first.unwrap();
            let at = "2026-11-28T11:40:00Z";
            requests.push(Request {
                queue: "probot",
                body: pull_request_event("synchronize", pr, branch, &commit, at),
                branch: branch.to_string(),
                pull_request: Some(pr),
                version: format!("{:013}#{commit}", millis(at)),
                sha: commit,
            });
        }
    }
    for minute in [5, 15, 25] {
        n += 1;
        let commit = sha(n);
        let at = format!("2026-11-28T11:{minute:02}:00Z");
        requests.push(Request {
            queue: "api",
            body: api_request("production", "main", &commit, &at),
            branch: "main".to_string(),
            pull_request: None,
            version: format!("{:013}#{commit}", millis(&at)),
            sha: commit,
        });
    }
    requests
}

/// A `serve` process and the file it logs to.
struct Host {
    child: Child,
    log: PathBuf,
}

impl Host {
    fn start(stack: &Stack) -> Self {
        let (child, log) = stack.serve_logged();
        Self { child, log }
    }
}

async fn drained(stack: &Stack) -> bool {
    stack.messages_in(&stack.queue_name("probot")).await == 0
        && stack.messages_in(&stack.queue_name("api")).await == 0
}

fn kill(host: &mut Host) {
    let _ = host.child.kill();
    let _ = host.child.wait();
}

/// `ENVMGR_TEST_SEED` if set, else one from the clock.
fn seed() -> u64 {
    std::env::var("ENVMGR_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

/// The stack with the short timings, every commit and pull request
/// of `requests` known to GitHub, and latency everywhere.
fn chaos_stack(backend: Backend, requests: &[Request]) -> Stack {
    let stack = Stack::new(
        "onewriter",
        BINARY,
        Options {
            backend,
            // The short timings: deadline 3 s, lease 4 s, visibility
            // 5 s; the default max_receive_count (5).
            deadline_seconds: 3,
            visibility_seconds: 5,
            max_receive_count: 5,
            grace_seconds: 3,
            extra_config: "[log]\nformat = \"json\"\n".to_string(),
            ..Options::default()
        },
    );
    stack.seed_shop("postgres://db", "sk_test_chaos");
    for request in requests {
        stack.github.add_commit(REPO, &request.sha);
        if let Some(pr) = request.pull_request {
            stack.github.add_pull_request(REPO, pr);
        }
    }
    // Latency everywhere, so deliveries overlap and kills catch some in
    // the middle.
    stack.runtime.delay(Duration::from_millis(250));
    stack.github.set_latency(Duration::from_millis(25));
    stack
}

/// Sends each message with `envmgr send` after its gap, on a thread.
fn spawn_sender(
    stack: &Stack,
    arriving: Vec<(&'static str, String, u64)>,
) -> std::thread::JoinHandle<()> {
    let command = stack.command(&[]);
    let program = command.get_program().to_owned();
    let envs: Vec<(std::ffi::OsString, std::ffi::OsString)> = command
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
        .collect();
    std::thread::spawn(move || {
        for (queue, body, gap) in arriving {
            std::thread::sleep(Duration::from_millis(gap));
            let status = std::process::Command::new(&program)
                .args(["send", "--queue", queue, "--body", &body])
                .env_clear()
                .envs(envs.iter().cloned())
                .stdout(std::process::Stdio::null())
                .status()
                .expect("envmgr send");
            assert!(status.success(), "send failed");
        }
    })
}

/// Kills a random host every one to two seconds until the sender is done
/// and the queues drain; returns when and which log each kill cut short.
async fn kill_hosts_until_drained(
    stack: &Stack,
    hosts: &mut [Host],
    rng: &mut Rng,
    sender: &std::thread::JoinHandle<()>,
    seed: u64,
) -> Vec<(SystemTime, PathBuf)> {
    let started = Instant::now();
    let mut kills: Vec<(SystemTime, PathBuf)> = Vec::new();
    loop {
        let pause = Duration::from_millis(1_000 + rng.below(1_000));
        tokio::time::sleep(pause).await;
        if sender.is_finished() && drained(stack).await {
            break;
        }
        assert!(
            started.elapsed() < DRAIN,
            "not drained after {DRAIN:?} (seed {seed})"
        );
        let victim = rng.below(HOSTS as u64) as usize;
        kill(&mut hosts[victim]);
        kills.push((SystemTime::now(), hosts[victim].log.clone()));
        hosts[victim] = Host::start(stack);
    }
    kills
}

/// Per environment (branch), its newest request.
fn newest_per_environment(requests: &[Request]) -> BTreeMap<String, &Request> {
    let mut newest: BTreeMap<String, &Request> = BTreeMap::new();
    for request in requests {
        let entry = newest.entry(request.branch.clone()).or_insert(request);
        if request.version > entry.version {
            *entry = request;
        }
    }
    newest
}

/// Nothing lost, nothing valid dead-lettered (say why, if it was).
async fn assert_nothing_dead_lettered(stack: &Stack, seed: u64) {
    for logical in ["probot", "api"] {
        let dead = format!("{}-dlq", stack.queue_name(logical));
        let count = stack.messages_in(&dead).await;
        assert_eq!(
            count,
            0,
            "{dead} (seed {seed}); retries seen:\n{}",
            retries(stack)
        );
    }
}

/// The table: the three items of each environment at its newest request.
async fn assert_table_at_newest(stack: &Stack, newest: &BTreeMap<String, &Request>, seed: u64) {
    let items = stack.environment_items().await;
    for (branch, request) in newest {
        let mine: Vec<_> = items
            .iter()
            .filter(|i| i.get("branch") == Some(branch))
            .collect();
        assert_eq!(mine.len(), 3, "{branch}: three items (seed {seed})");
        for item in mine {
            assert_eq!(
                item.get("requestVersion"),
                Some(&request.version),
                "{branch} (seed {seed}); retries seen:\n{}",
                retries(stack)
            );
            assert_eq!(
                item.get("status").map(String::as_str),
                Some("runtime-requested")
            );
        }
    }
}

/// The Runtime Service: per environment, the creates it accepted never go
/// back in version, the last is the newest request, and every create it
/// refused was older than one it had accepted.
fn assert_runtime_at_newest(stack: &Stack, newest: &BTreeMap<String, &Request>, seed: u64) {
    let accepted = stack.runtime.accepted();
    let environment_of = |branch: &str| envmgr_guest::environment::environment_id(APP_ID, branch);
    for (branch, request) in newest {
        let env = environment_of(branch);
        let versions: Vec<&String> = accepted
            .iter()
            .filter(|(e, _)| *e == env)
            .map(|(_, v)| v)
            .collect();
        assert!(
            versions.windows(2).all(|w| w[0] <= w[1]),
            "{branch}: an older create accepted after a newer one: {versions:?} (seed {seed})"
        );
        assert_eq!(
            versions.last().map(|v| v.as_str()),
            Some(request.version.as_str()),
            "{branch}: the runtime's last word (seed {seed})"
        );
    }
    for (env, refused, newest_then) in stack.runtime.superseded() {
        assert!(refused < newest_then, "{env}: {refused} vs {newest_then}");
    }
    assert!(
        stack.runtime.refused().is_empty(),
        "{:?}",
        stack.runtime.refused()
    );
}

/// GitHub: one comment per pull request, showing its newest commit.
fn assert_comments_at_newest(stack: &Stack, newest: &BTreeMap<String, &Request>, seed: u64) {
    for (branch, request) in newest {
        let Some(pr) = request.pull_request else {
            continue;
        };
        let comments = stack.github.comments(REPO, pr);
        assert_eq!(comments.len(), 1, "{branch}: one comment (seed {seed})");
        assert!(
            comments[0].contains(&format!("`{}`", &request.sha[..7])),
            "{branch}: the comment shows {} (seed {seed}):\n{}",
            &request.sha[..7],
            comments[0]
        );
    }
}

/// GitHub: at most one deployment per (environment, commit); the newest
/// commit's in progress, every other one inactive; no status repeated.
fn assert_deployments_at_newest(stack: &Stack, newest: &BTreeMap<String, &Request>, seed: u64) {
    let deployments = stack.github.deployments(REPO);
    let mut seen = BTreeSet::new();
    for deployment in &deployments {
        let key = (
            deployment.environment().to_string(),
            deployment.sha().to_string(),
        );
        assert!(
            seen.insert(key.clone()),
            "two deployments of {key:?} (seed {seed})"
        );
        let branch = deployment
            .environment()
            .strip_prefix("preview/")
            .unwrap_or("main");
        let newest_sha = &newest[branch].sha;
        let expected = if deployment.sha() == newest_sha {
            "in_progress"
        } else {
            "inactive"
        };
        assert_eq!(
            deployment.state(),
            Some(expected),
            "{key:?}: {:?} (seed {seed})",
            deployment.statuses
        );
        let states: Vec<&Value> = deployment.statuses.iter().map(|s| &s["state"]).collect();
        for pair in deployment.statuses.windows(2) {
            let same = ["state", "description", "environment_url", "log_url"]
                .iter()
                .all(|f| pair[0][f] == pair[1][f]);
            assert!(
                !same,
                "{key:?}: a status repeated: {states:?} (seed {seed})"
            );
        }
    }
    assert!(
        stack.github.rejected().is_empty(),
        "{:?}",
        stack.github.rejected()
    );
}

async fn many_hosts_kills_duplicates_and_disorder_leave_the_newest_everywhere(backend: Backend) {
    let seed = seed();
    let _guard = SeedOnFailure(seed);
    let mut rng = Rng(seed);
    let requests = workload();
    let stack = chaos_stack(backend, &requests);

    // Every request one to three times, all out of order.
    let mut sends: Vec<&Request> = Vec::new();
    for request in &requests {
        for _ in 0..=rng.below(3) {
            sends.push(request);
        }
    }
    rng.shuffle(&mut sends);

    let mut hosts: Vec<Host> = (0..HOSTS).map(|_| Host::start(&stack)).collect();
    // The messages arrive over time, as real traffic does, while the hosts
    // die and come back.
    let gaps: Vec<u64> = sends.iter().map(|_| 50 + rng.below(300)).collect();
    let arriving: Vec<(&'static str, String, u64)> = sends
        .iter()
        .zip(gaps)
        .map(|(r, gap)| (r.queue, r.body.clone(), gap))
        .collect();
    let sender = spawn_sender(&stack, arriving);
    let started = Instant::now();
    let kills = kill_hosts_until_drained(&stack, &mut hosts, &mut rng, &sender, seed).await;
    let drain_time = started.elapsed();
    sender.join().expect("every message sent");
    eventually("drained for good", Duration::from_secs(30), || {
        drained(&stack)
    })
    .await;
    for host in &mut hosts {
        let _ = envmgr_tests::stack::terminate(&mut host.child);
    }

    assert_nothing_dead_lettered(&stack, seed).await;
    let newest = newest_per_environment(&requests);
    assert_table_at_newest(&stack, &newest, seed).await;
    assert_runtime_at_newest(&stack, &newest, seed);
    assert_comments_at_newest(&stack, &newest, seed);
    assert_deployments_at_newest(&stack, &newest, seed);

    if backend == Backend::Local {
        let store = stack.store();
        let check: String = store
            .read(|c| c.query_row("PRAGMA integrity_check", [], |row| row.get(0)))
            .unwrap();
        assert_eq!(check, "ok");
    }

    let figures = figures(&stack, &kills);
    println!(
        "one_writer {backend:?} seed {seed}: {} requests sent {} times, {HOSTS} hosts, {} kills, drained in {:.1} s; receives per message: max {}, mean {:.2}; worst kill-to-done {:.1} s",
        requests.len(),
        sends.len(),
        kills.len(),
        drain_time.as_secs_f64(),
        figures.max_receives,
        figures.mean_receives,
        figures.worst_kill_to_done.as_secs_f64(),
    );
}

/// Why messages were retried, counted (from the hosts' JSON logs).
fn retries(stack: &Stack) -> String {
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for line in stack.logs().lines() {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if entry["message"] == "will retry" || entry["message"] == "dead-lettered" {
            let reason: String = entry["reason"]
                .as_str()
                .unwrap_or("?")
                .chars()
                .take(90)
                .collect();
            *reasons.entry(reason).or_default() += 1;
        }
    }
    reasons
        .iter()
        .map(|(reason, n)| format!("  {n} × {reason}"))
        .collect::<Vec<_>>()
        .join("\n")
}

struct Figures {
    max_receives: u64,
    mean_receives: f64,
    worst_kill_to_done: Duration,
}

/// From the hosts' JSON logs: receives per message, and for each kill the
/// time until every message the killed host held was done elsewhere.
fn figures(stack: &Stack, kills: &[(SystemTime, PathBuf)]) -> Figures {
    // Per log file: (message id, receive count) → (received at, finished at).
    type Delivery = (Option<SystemTime>, Option<SystemTime>);
    let mut per_log: BTreeMap<PathBuf, BTreeMap<(String, u64), Delivery>> = BTreeMap::new();
    let mut finished_at: BTreeMap<String, Vec<SystemTime>> = BTreeMap::new();
    let mut receives: BTreeMap<String, u64> = BTreeMap::new();
    let logs = std::fs::read_dir(&stack.dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("serve-"))
        });
    for path in logs {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut deliveries: BTreeMap<(String, u64), Delivery> = BTreeMap::new();
        for line in text.lines() {
            let Ok(entry) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let span = &entry["span"];
            let (Some(id), Some(count)) =
                (span["message_id"].as_str(), span["receive_count"].as_u64())
            else {
                continue;
            };
            let Some(at) = entry["timestamp"].as_str().and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            }) else {
                continue;
            };
            let at = SystemTime::from(at);
            let slot = deliveries.entry((id.to_string(), count)).or_default();
            match entry["message"].as_str() {
                Some("received") => {
                    slot.0 = Some(at);
                    let max = receives.entry(id.to_string()).or_default();
                    *max = (*max).max(count);
                }
                Some("message finished") => {
                    slot.1 = Some(at);
                    finished_at.entry(id.to_string()).or_default().push(at);
                }
                _ => {}
            }
        }
        per_log.insert(path, deliveries);
    }
    let mut worst = Duration::ZERO;
    for (killed_at, log) in kills {
        let Some(deliveries) = per_log.get(log) else {
            continue;
        };
        for ((id, _), (received, finished)) in deliveries {
            if received.is_some() && finished.is_none() {
                let done = finished_at
                    .get(id)
                    .and_then(|all| all.iter().filter(|at| *at > killed_at).min().copied());
                if let Some(done) = done {
                    worst = worst.max(done.duration_since(*killed_at).unwrap_or_default());
                }
            }
        }
    }
    let total: u64 = receives.values().sum();
    Figures {
        max_receives: receives.values().copied().max().unwrap_or(0),
        mean_receives: total as f64 / receives.len().max(1) as f64,
        worst_kill_to_done: worst,
    }
}

on_both_backends!(many_hosts_kills_duplicates_and_disorder_leave_the_newest_everywhere);
