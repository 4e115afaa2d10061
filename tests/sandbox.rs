//! The sandbox: a trapping, looping or memory-hungry guest ends as an error
//! while the host lives on; the guest sees nothing ambient; plaintext secrets
//! and tokens never reach the transcript, the comment, the records or logs.

use std::sync::Arc;
use std::time::Duration;

use envmgr::calls::{Call, Hit};
use envmgr::capabilities::dynamodb::AttributeValue;
use envmgr::engine::{Engine, Limits};
use envmgr::mock::{MockHost, default_config};
use envmgr::{Outcome, RunError};
use envmgr_tests::*;

/// Tight limits so the misbehaviour ends fast.
fn chaos_host() -> MockHost {
    let engine = Arc::new(
        Engine::new(Limits {
            memory_bytes: 16 << 20,
            deadline: Duration::from_millis(300),
            concurrency: 4,
        })
        .unwrap(),
    );
    let logic = Arc::new(engine.load(CHAOS_LOGIC).unwrap());
    MockHost::new(engine, logic, default_config())
}

async fn still_serves(host: &MockHost) {
    let delivery = host.deliver(&host.message("api", "fine")).await;
    assert!(
        matches!(delivery.result, Ok(Ok(Outcome::Done(_)))),
        "the host serves the next message: {:?}",
        delivery.result
    );
}

#[tokio::test]
async fn a_guest_panic_is_a_trap_and_the_host_lives_on() {
    let host = chaos_host();
    let delivery = host.deliver(&host.message("api", "trap")).await;
    match delivery.result {
        Err(RunError::Trap(what)) => assert!(what.contains("unreachable"), "{what}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    still_serves(&host).await;
}

#[tokio::test]
async fn an_endless_loop_ends_at_the_deadline() {
    let host = chaos_host();
    let started = std::time::Instant::now();
    let delivery = host.deliver(&host.message("api", "loop")).await;
    assert_eq!(
        delivery.result.unwrap_err(),
        RunError::Timeout(Duration::from_millis(300))
    );
    // Generous bound: the point is that it ends, not how fast.
    assert!(started.elapsed() < Duration::from_secs(30));
    still_serves(&host).await;
}

#[tokio::test]
async fn a_memory_bomb_ends_at_the_memory_limit() {
    let host = chaos_host();
    let delivery = host.deliver(&host.message("api", "bomb")).await;
    match delivery.result {
        Err(RunError::MemoryExhausted(what)) => assert!(what.contains("16777216"), "{what}"),
        other => panic!("expected memory exhaustion, got {other:?}"),
    }
    still_serves(&host).await;
}

#[tokio::test]
async fn nothing_a_message_leaves_in_memory_reaches_the_next() {
    // Each message gets a new instance in a pool slot an earlier one used;
    // the pool resets what that one dirtied (only the pages the kernel
    // reports dirty, where it can: `engine::KEEP_RESIDENT_BYTES`). The
    // chaos guest overwrites a value of its data image and writes a page
    // it grew: every later message must find both as new.
    let host = chaos_host();
    for round in 0..4 {
        let delivery = host.deliver(&host.message("api", "remember")).await;
        match delivery.result {
            Ok(Ok(Outcome::Done(what))) => {
                assert_eq!(what, "image 7, grown page 0x0", "message {round}")
            }
            other => panic!("message {round}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_guest_sees_no_environment_files_or_network() {
    // A port that does listen: a refused connection would look the same as
    // a sandbox that forbids sockets, an accepted one cannot.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let host = chaos_host();
    let delivery = host
        .deliver(&host.message("api", &format!("ambient:{port}")))
        .await;
    match delivery.result {
        Ok(Ok(Outcome::Done(seen))) => assert_eq!(
            seen, "vars=0 args=0 root=None file=false tcp=false",
            "the sandbox leaks"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "the guest reached the listener"
    );
    // The port was open all along: the test itself gets through.
    let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut accepted = None;
    for _ in 0..100 {
        match listener.accept() {
            Ok(connection) => {
                accepted = Some(connection);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    assert!(accepted.is_some(), "the listener takes connections");
}

/// Through the real binary (`envmgr try --logic`): what the guest writes to
/// stdout and stderr reaches neither of the process's, and it reads nothing
/// of the process's stdin.
#[test]
fn the_guest_has_no_stdio() {
    use std::io::Write as _;
    let dir = std::env::temp_dir().join(format!("envmgr-stdio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let logic = dir.join("chaos.wasm");
    std::fs::write(&logic, CHAOS_LOGIC).unwrap();
    let message = dir.join("stdio.txt");
    std::fs::write(&message, "stdio").unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_envmgr-under-test"))
        .args(["try", "--queue", "api", "--logic"])
        .arg(&logic)
        .arg(&message)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Ignored if the process exits without reading it.
    let _ = stdin.write_all(b"what the host process was given on stdin\n");
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // The guest's writes succeeded (into nothing) and stdin was empty.
    assert!(
        stdout.contains("=> done: stdout-write-ok=true stderr-write-ok=true stdin-bytes=0"),
        "{stdout}"
    );
    for marker in [CHAOS_STDOUT_MARKER, CHAOS_STDERR_MARKER] {
        assert!(
            !stdout.contains(marker) && !stderr.contains(marker),
            "the guest's {marker} reached the host's output:\n{stdout}\n{stderr}"
        );
    }
}

#[tokio::test]
async fn a_component_of_another_world_is_refused() {
    let (engine, _) = shared_logic();
    // A real component: it compiles to native code...
    engine
        .precompile(OTHER_WORLD_LOGIC)
        .expect("a valid component");
    // ... and only the world check refuses it.
    let error = engine.load(OTHER_WORLD_LOGIC).unwrap_err();
    let text = format!("{error:#}");
    assert!(
        text.contains("does not match the envmgr:environments world"),
        "{text}"
    );
    assert!(!text.contains("not a valid component"), "{text}");
}

/// A capability call that never answers (a dependency holding the
/// connection open) ends at the message deadline: epochs cannot interrupt
/// the host, the host's own timer does.
#[tokio::test]
async fn a_hung_host_call_ends_at_the_deadline() {
    let engine = Arc::new(
        Engine::new(Limits {
            deadline: Duration::from_millis(500),
            ..Limits::default()
        })
        .unwrap(),
    );
    let logic = Arc::new(engine.load(envmgr::BUILTIN_LOGIC).unwrap());
    let host = MockHost::new(engine, logic, default_config());
    seed_app(&host, APP_ID, APP_NAME, REPO);
    host.github.add_installation(INSTALLATION);
    // The call that hangs, and proof it was reached: a deadline that fired
    // before it (a slow machine) would test nothing.
    let reached = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = reached.clone();
    host.faults.interleave(
        Call::RuntimeCreate,
        Hit::Every,
        Arc::new(move || {
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
            Box::pin(std::future::pending())
        }),
    );
    let body = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z");
    // The bound only keeps a broken build from hanging the suite.
    let delivery = tokio::time::timeout(
        Duration::from_secs(60),
        host.deliver(&host.message("probot", &body)),
    )
    .await
    .expect("the hung call outlived the deadline");
    assert_eq!(
        delivery.result.unwrap_err(),
        RunError::Timeout(Duration::from_millis(500))
    );
    assert!(
        reached.load(std::sync::atomic::Ordering::SeqCst),
        "the deadline came before the runtime call"
    );
    still_serves_builtin(&host).await;
}

/// The host that timed out takes the next message.
async fn still_serves_builtin(host: &MockHost) {
    host.faults.clear();
    let body = api_request("production", "main", SHA_2, "2026-11-28T12:00:00Z");
    let delivery = host.deliver(&host.message("api", &body)).await;
    assert!(
        matches!(delivery.result, Ok(Ok(Outcome::Done(_)))),
        "{:?}",
        delivery.result
    );
}

const SECRET_VALUES: [&str; 3] = [
    "postgres://user:hunter2@db.internal/shop",
    "sk_live_51HxQ2bGvTnV8sTuvWxYz",
    "whsec_4f1c2a9be77d",
];

#[tokio::test]
async fn no_plaintext_secret_or_token_leaves_the_host() {
    let host = seeded_host();
    set_secret(&host, APP_ID, "global", "DATABASE_URL", SECRET_VALUES[0]);
    set_secret(&host, APP_ID, "preview", "STRIPE_KEY", SECRET_VALUES[1]);
    set_secret(&host, APP_ID, "preview", "WEBHOOK_SECRET", SECRET_VALUES[2]);

    let mut transcript = Vec::new();
    for (action, sha, at) in [
        ("opened", SHA_1, "2026-11-28T11:00:00Z"),
        ("opened", SHA_1, "2026-11-28T11:00:00Z"),
        ("synchronize", SHA_2, "2026-11-28T11:30:00Z"),
    ] {
        let body = pull_request_event(action, 7, "feature/login", sha, at);
        let delivery = host.deliver(&host.message("probot", &body)).await;
        assert!(matches!(delivery.result, Ok(Ok(Outcome::Done(_)))));
        transcript.extend(delivery.transcript.iter().map(|e| e.to_string()));
    }

    // The runtime did receive every value and token: the test can fail.
    let calls = host.runtime.calls();
    let delivered: Vec<String> = calls
        .iter()
        .flat_map(|c| c.secrets.iter().map(|(_, v)| v.expose().to_string()))
        .collect();
    for value in SECRET_VALUES {
        assert!(
            delivered.iter().any(|d| d == value),
            "runtime lacks {value}"
        );
    }
    // One token per runtime requested: the redelivery finds its runtime on
    // the record and asks for none.
    let tokens = host.github.issued_tokens();
    assert_eq!(tokens.len(), 2);

    // Everywhere else: only labels.
    let mut outside: Vec<String> = transcript;
    outside.extend(
        host.github
            .comments(REPO, 7)
            .unwrap()
            .into_iter()
            .map(|c| c.body),
    );
    outside.extend(
        host.analytics
            .events()
            .unwrap()
            .into_iter()
            .map(|e| format!("{e:?}")),
    );
    for table in ["environments", "apps"] {
        for item in host.tables.scan(table).unwrap() {
            for (_, value) in item {
                if let AttributeValue::S(s) = value {
                    outside.push(s);
                }
            }
        }
    }
    assert!(outside.iter().any(|t| t.contains("<secret:STRIPE_KEY>")));
    assert!(
        outside
            .iter()
            .any(|t| t.contains("<github-token:acme/shop>"))
    );
    for text in &outside {
        for secret in SECRET_VALUES
            .iter()
            .map(|s| s.to_string())
            .chain(tokens.clone())
        {
            assert!(!text.contains(&secret), "plaintext leaked into: {text}");
        }
    }
    // Even the host's own Debug output of a runtime call is redacted.
    let debug = format!("{:?}", calls[0]);
    assert!(!SECRET_VALUES.iter().any(|s| debug.contains(s)), "{debug}");
}

#[tokio::test]
async fn a_dependency_error_quoting_a_secret_reaches_the_guest_redacted() {
    let host = seeded_host();
    set_secret(&host, APP_ID, "global", "DATABASE_URL", SECRET_VALUES[0]);
    set_secret(&host, APP_ID, "preview", "STRIPE_KEY", SECRET_VALUES[1]);
    // The second decrypt fails quoting the first one's plaintext (base64,
    // as an echoing service might): the reason must not carry it.
    use base64::Engine as _;
    let quoted = base64::engine::general_purpose::STANDARD.encode(SECRET_VALUES[0]);
    host.faults.inject(
        Call::KmsDecrypt,
        Hit::Nth(2),
        envmgr::capabilities::ErrorCode::Invalid,
        &format!(
            "cannot decrypt; the last plaintext was {} ({quoted})",
            SECRET_VALUES[0]
        ),
    );
    let body = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z");
    let delivery = host.deliver(&host.message("probot", &body)).await;
    let reason = match &delivery.result {
        Ok(Err(failure)) => failure.reason.clone(),
        other => panic!("{other:?}"),
    };
    assert!(reason.contains("[redacted]"), "{reason}");
    assert!(
        !reason.contains(SECRET_VALUES[0]) && !reason.contains(&quoted),
        "{reason}"
    );
    for item in records(&host) {
        let stored = attr(&item, "failureReason").unwrap_or_default();
        assert!(!stored.contains(SECRET_VALUES[0]) && !stored.contains(&quoted));
    }
}
