//! Measuring a process from outside, for the benchmarks that run the real
//! binary: its CPU time and memory from `/proc`, and the times its log
//! lines carry.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// SIGTERM and wait.
pub fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

pub fn wait_for(path: &Path) -> &Path {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    path
}

/// A log line's time and message id, for lines of a message's span.
pub fn stamped(line: &str) -> Option<(f64, &str)> {
    let at = timestamp(line)?;
    let rest = &line[line.find("message_id=")? + "message_id=".len()..];
    let id = &rest[..rest.find([' ', '}'])?];
    Some((at, id))
}

/// The RFC 3339 time a human log line starts with, in seconds since the
/// epoch.
pub fn timestamp(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?;
    let at =
        time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).ok()?;
    Some(at.unix_timestamp_nanos() as f64 / 1e9)
}

pub fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// User + system CPU seconds of `pid` so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().ok()? + fields[12].parse::<f64>().ok()?;
    Some(ticks / clock_ticks_per_second())
}

pub fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        let output = Command::new("getconf").arg("CLK_TCK").output();
        output
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The CPU seconds at `at`, linearly between the samples around it.
pub fn cpu_at(samples: &[(f64, f64)], at: f64) -> f64 {
    let after = samples.partition_point(|(t, _)| *t < at);
    match (
        after.checked_sub(1).map(|i| samples[i]),
        samples.get(after).copied(),
    ) {
        (Some((t0, c0)), Some((t1, c1))) if t1 > t0 => c0 + (c1 - c0) * (at - t0) / (t1 - t0),
        (Some((_, c)), _) | (None, Some((_, c))) => c,
        (None, None) => 0.0,
    }
}

/// Run `command` to its end with `input` on its standard input (or none),
/// its output dropped; panics unless it succeeded.
pub fn run_to_success(mut command: Command, input: Option<&str>) {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .spawn()
        .expect("envmgr");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("writing stdin");
    }
    let status = child.wait().expect("envmgr");
    assert!(status.success(), "{command:?}: {status}");
}

/// Resident memory of `pid` in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A log line of a create request (the `probot` queue). The runtime's
/// status report for each create (an `api` message the local Runtime
/// Service sends) is handled alongside: its cost is in a run's CPU, but it
/// is not counted as a message.
pub fn is_create(line: &str) -> bool {
    line.contains("queue=probot")
}

/// Every create request a `serve` log finished: when (seconds since the
/// epoch) and how long after its `received` line, in order of finishing.
pub fn finished_creates(log: &str) -> Vec<(f64, f64)> {
    let mut received = std::collections::HashMap::new();
    let mut done: Vec<(f64, f64)> = Vec::new();
    for line in log.lines().filter(|l| is_create(l)) {
        let Some((at, id)) = stamped(line) else {
            continue;
        };
        if line.contains(": received") {
            received.insert(id.to_string(), at);
        } else if line.contains("message finished")
            && let Some(began) = received.get(id)
        {
            done.push((at, at - began));
        }
    }
    done.sort_by(|a, b| a.0.total_cmp(&b.0));
    done
}
