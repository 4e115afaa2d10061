//! What redaction costs a message, and that the cost does not grow with the
//! credentials the process has minted.
//!
//! `cargo bench -p envmgr-tests --bench redaction` (add `-- --runs N`)
//!
//! A message's redaction: a redactor on the process's credentials, the
//! message's secrets added (its signing key, two decrypted secrets, its
//! runtime token), and the texts a create scrubs (ids, URLs, a comment's
//! answer, two refusals quoting a request). Measured with no process
//! credentials, after 100,000 short-lived tokens were registered and
//! expired, and with 5,000 alive (a host serving 400 installations whose
//! tokens live 90 s, at 40 messages a second), interleaved; medians. Then
//! the cost per KiB of a long text (a 64 KiB refusal quoting a request in
//! JSON with escapes, and one in base64), the budget docs/reference/dependencies.md states.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use envmgr::redact::{Credentials, Redactor};

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

const JWK: &str = r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}"#;

/// What one create scrubs.
fn texts() -> Vec<String> {
    let request = serde_json::json!({
        "environmentId": "env_7f3a", "appId": "app_shop", "branch": "feature/login",
        "secrets": { "DATABASE_URL": "postgres://shop:pw-0123456789@db/shop", "API_KEY": "key-abcdef0123456789" },
        "signingKey": serde_json::from_str::<serde_json::Value>(JWK).unwrap(),
    })
    .to_string();
    let mut texts: Vec<String> = [
        "rt_7f3a9c",
        "https://feature-login.preview.example.test",
        "https://api.github.com/repos/acme/shop/issues/comments/1712345678",
        "https://api.github.com/repos/acme/shop/deployments/987654321",
        "acme/shop",
        "feature/login",
        "Shop",
        "octocat",
        "2026-11-28T11:00:00Z",
        "github create comment: 422 Validation Failed",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    texts.push(format!(
        "runtime service answered 422: invalid request: {request}"
    ));
    texts.push(format!(
        "runtime service answered 400: {}",
        serde_json::to_string(&request).unwrap()
    ));
    texts
}

/// One message's redaction.
fn message(credentials: &Credentials, texts: &[String]) -> Duration {
    let started = Instant::now();
    let redactor = Redactor::new(credentials.clone());
    redactor.add(JWK);
    redactor.add("postgres://shop:pw-0123456789@db/shop");
    redactor.add("key-abcdef0123456789");
    redactor.add("ghs_runtimeTokenForThisMessage0123456789");
    for text in texts {
        std::hint::black_box(redactor.scrub(text));
    }
    started.elapsed()
}

fn token(n: u64) -> String {
    format!("ghs_{:036x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// A process's credentials on a clock the bench moves.
fn on_clock() -> (Credentials, Arc<Mutex<SystemTime>>) {
    let now = Arc::new(Mutex::new(SystemTime::now()));
    let clock = now.clone();
    let credentials = Credentials::with_clock(Arc::new(move || *clock.lock().unwrap()));
    credentials.register("runtime-service-token-0123456789");
    (credentials, now)
}

fn main() {
    let runs: usize = std::env::args()
        .skip_while(|a| a != "--runs")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let texts = texts();

    let (none, _) = on_clock();
    // 100,000 tokens of 90 s, one every 10 ms, then the clock past them all.
    let (gone, now) = on_clock();
    let registering = Instant::now();
    for n in 0..100_000 {
        gone.register_for(&token(n), Some(Duration::from_secs(90)));
        *now.lock().unwrap() += Duration::from_millis(10);
    }
    let registering = registering.elapsed();
    *now.lock().unwrap() += Duration::from_secs(3_600);
    gone.sweep();
    assert!(gone.len() <= 2, "{} left", gone.len());
    let (alive, _) = on_clock();
    for n in 0..5_000 {
        alive.register_for(&token(n), Some(Duration::from_secs(90)));
    }

    for _ in 0..50 {
        message(&none, &texts);
        message(&gone, &texts);
        message(&alive, &texts);
    }
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        a.push(message(&none, &texts));
        b.push(message(&gone, &texts));
        c.push(message(&alive, &texts));
    }
    let (a, b, c) = (median(a), median(b), median(c));
    println!("\n{runs} messages' redaction each way, interleaved; medians");
    println!("\n| process credentials | µs a message | × none |");
    println!("|---|---|---|");
    println!("| none | {:.1} | 1.00 |", us(a));
    println!(
        "| 100,000 came and went | {:.1} | {:.2} |",
        us(b),
        us(b) / us(a)
    );
    println!("| 5,000 alive | {:.1} | {:.2} |", us(c), us(c) / us(a));
    println!(
        "\nregistering a credential (and sweeping the expired): {:.2} µs",
        us(registering) / 100_000.0
    );

    let redactor = Redactor::new(alive.clone());
    redactor.add(JWK);
    let request = texts[texts.len() - 2].clone();
    let mut json = String::new();
    while json.len() < 64 << 10 {
        json.push_str(&serde_json::to_string(&request).unwrap());
    }
    use base64::Engine as _;
    let base64 = base64::engine::general_purpose::STANDARD.encode(&json[..48 << 10]);
    println!("\n| a long text, 5,000 credentials alive | µs a KiB |");
    println!("|---|---|");
    for (name, text) in [("JSON with escapes", &json), ("base64", &base64)] {
        let times: Vec<Duration> = (0..runs.clamp(20, 200))
            .map(|_| {
                let started = Instant::now();
                std::hint::black_box(redactor.scrub(text));
                started.elapsed()
            })
            .collect();
        let per_kib = us(median(times)) / (text.len() as f64 / 1024.0);
        println!("| {name} | {per_kib:.1} |");
    }
}
