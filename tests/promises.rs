//! Promises of docs/reference/delivery-semantics.md, docs/operations.md ("Shutdown") and docs/reference/log-events.md
//! that only show over time, through the real binary on both backends
//! (`aws::` on moto, `local::` on the database file): the lease of a slow
//! message renewed, `max_in_flight` holding receives back, a Retry-After
//! longer than the backoff, a dead-letter send that fails and is retried
//! (with the reason cut to 4000 characters), Segment flushed at shutdown,
//! and the JSON log fields.
//!
//! No test waits for a duration to pass: each holds the daemon on an event
//! it controls (the fake Runtime Service held, a dead-letter queue that
//! refuses) or on a lower bound (a delay longer than what is measured),
//! then waits with `eventually` for the end state.

use std::collections::BTreeMap;
use std::time::Duration;

use envmgr_tests::stack::{Backend, Options, Stack, eventually, example, terminate};

const BINARY: &str = env!("CARGO_BIN_EXE_envmgr-under-test");
const WAIT: Duration = Duration::from_secs(60);

fn shop(name: &str, options: Options) -> Stack {
    let stack = Stack::new(name, BINARY, options);
    stack.seed_shop("postgres://shop:pw@db/shop", "sk_test_promises");
    stack
}

/// A platform-API preview request of its own for `branch`.
fn request(branch: &str) -> String {
    example("api-production.json")
        .replace("\"main\"", &format!("\"{branch}\""))
        .replace("\"production\"", "\"preview\"")
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn done(stack: &Stack, queue: &str, runtimes: usize) {
    eventually(
        &format!("{runtimes} runtimes, {queue} empty"),
        WAIT,
        || async {
            stack.runtime.runtimes().len() == runtimes
                && stack.messages_in(&stack.queue_name(queue)).await == 0
        },
    )
    .await;
}

/// When each message of a local queue becomes visible again (ms since the
/// epoch), by id: a received message's lease.
fn local_visible_at(stack: &Stack, queue: &str) -> BTreeMap<String, i64> {
    stack
        .store()
        .read(|connection| {
            let mut statement =
                connection.prepare("SELECT id, visible_at_ms FROM messages WHERE queue = ?1")?;
            statement
                .query_map([queue], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .expect("the local queue")
}

/// A message whose run lasts longer than half its visibility timeout has
/// its lease renewed while it runs (delivery semantics: "renewed
/// (`ChangeMessageVisibility`) every half visibility timeout").
async fn a_slow_message_has_its_visibility_renewed(backend: Backend) {
    // Renewed every 6 s; the runtime answers after 6.5 s, so the run is
    // longer than that whatever the machine's load. The deadline leaves
    // room for the rest of the flow on a busy machine.
    let stack = shop(
        "renew",
        Options {
            backend,
            visibility_seconds: 12,
            deadline_seconds: 11,
            cuttable: backend == Backend::Aws,
            // The stack's 5 s would cut the runtime call short.
            env: env(&[("ENVMGR__RUNTIME__TIMEOUT_MS", "10000")]),
            ..Options::default()
        },
    );
    stack.runtime.delay(Duration::from_millis(6_500));
    let mut daemon = stack.serve();
    stack.send("probot", &example("pull-request-opened.json"));
    let queue = stack.queue_name("probot");
    match backend {
        Backend::Local => {
            // The message's lease while it is received (hidden: visible
            // only later), for as long as it is there.
            let seen = std::sync::Mutex::new(Vec::new());
            eventually("the message done", WAIT, || async {
                let now = envmgr::support::now_ms();
                let leases = local_visible_at(&stack, &queue);
                let hidden = leases.values().copied().filter(|at| *at > now);
                seen.lock().unwrap().extend(hidden);
                stack.runtime.runtimes().len() == 1 && leases.is_empty()
            })
            .await;
            let seen = seen.into_inner().unwrap();
            let (first, latest) = (
                *seen.first().expect("seen in flight"),
                *seen.last().unwrap(),
            );
            assert!(
                latest > first,
                "the visibility was never pushed back: {first} then {latest}"
            );
        }
        Backend::Aws => {
            done(&stack, "probot", 1).await;
            let outage = stack.outage.as_ref().unwrap();
            assert!(
                outage.sqs_calls("ChangeMessageVisibility") >= 1,
                "no ChangeMessageVisibility while the message ran"
            );
        }
    }
    // One delivery did it all: nobody else received the message meanwhile.
    assert_eq!(stack.runtime.requests().len(), 1);
    assert!(!stack.logs().contains("will retry"), "{}", stack.logs());
    assert!(terminate(&mut daemon).success());
}

/// `max_in_flight = 1`: one message runs at a time, and the others stay on
/// the queue, not received, while it does ("no receive while full").
async fn max_in_flight_holds_receives_back(backend: Backend) {
    let stack = shop(
        "inflight",
        Options {
            backend,
            // Nothing ends the held call, and nothing received comes back
            // by itself, while the test looks (at most a minute).
            visibility_seconds: 121,
            deadline_seconds: 120,
            env: env(&[
                ("ENVMGR__QUEUES__API__MAX_IN_FLIGHT", "1"),
                ("ENVMGR__RUNTIME__TIMEOUT_MS", "120000"),
            ]),
            ..Options::default()
        },
    );
    // All three wait before the daemon starts: a first receive could take
    // them at once.
    for i in 0..3 {
        stack.send("api", &request(&format!("inflight/{i}")));
    }
    stack.runtime.hold();
    let mut daemon = stack.serve();
    eventually("a message at the runtime", WAIT, || async {
        !stack.runtime.requests().is_empty()
    })
    .await;
    let queue = stack.queue_name("api");
    eventually(
        "one message received, two waiting on the queue",
        WAIT,
        || async { stack.depths(&queue).await == (2, 1) },
    )
    .await;
    stack.runtime.release();
    done(&stack, "api", 3).await;
    assert_eq!(stack.runtime.most_in_flight(), 1, "one at a time");
    assert!(terminate(&mut daemon).success());
}

/// A dependency's Retry-After longer than the queue's backoff is the wait
/// (delivery semantics: "or a dependency's Retry-After passed on by the logic, if
/// longer").
async fn a_retry_after_longer_than_the_backoff_is_the_wait(backend: Backend) {
    let stack = shop(
        "retryafter",
        Options {
            backend,
            ..Options::default()
        },
    );
    // The first receive's backoff is 1 s (backoff_base_seconds = 1).
    stack.runtime.throttle_next(4);
    let mut daemon = stack.serve();
    stack.send("probot", &example("pull-request-opened.json"));
    done(&stack, "probot", 1).await;
    let logs = stack.logs();
    let retry = logs
        .lines()
        .find(|l| l.contains("will retry"))
        .expect("the throttled try is retried");
    assert!(retry.contains("retry_in=4s"), "{retry}");
    assert!(logs.contains("disposition=Retry(4s)"), "{logs}");
    assert_eq!(stack.runtime.requests().len(), 2);
    assert!(terminate(&mut daemon).success());
}

/// Make the dead-letter queue of `probot` refuse (`true`) or take
/// (`false`) what envmgr sends it: on SQS by its maximum message size, in
/// the database by a trigger.
async fn dead_letter_queue_refuses(stack: &Stack, refuse: bool) {
    let dead_letter = format!("{}-dlq", stack.queue_name("probot"));
    match stack.backend {
        Backend::Aws => {
            let sqs = aws_sdk_sqs::Client::new(&stack.sdk().await);
            let url = sqs
                .get_queue_url()
                .queue_name(&dead_letter)
                .send()
                .await
                .unwrap()
                .queue_url
                .unwrap();
            // SQS's smallest maximum, below the message's size.
            let size = if refuse { "1024" } else { "262144" };
            sqs.set_queue_attributes()
                .queue_url(url)
                .attributes(
                    aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize,
                    size,
                )
                .send()
                .await
                .unwrap();
        }
        Backend::Local => {
            let sql = if refuse {
                format!(
                    "CREATE TRIGGER refuse_dead_letters BEFORE INSERT ON messages \
                     WHEN NEW.queue = '{dead_letter}' \
                     BEGIN SELECT RAISE(ABORT, 'the dead-letter queue refuses'); END"
                )
            } else {
                "DROP TRIGGER refuse_dead_letters".to_string()
            };
            stack
                .store()
                .read(|connection| connection.execute_batch(&sql))
                .unwrap();
        }
    }
}

/// A permanent failure whose dead-letter copy cannot be sent stays on its
/// queue and is tried again (delivery semantics: "if that send fails, retried as
/// above"); once the dead-letter queue takes it, it carries the reason,
/// cut to 4000 characters.
async fn a_failed_dead_letter_send_is_retried_and_the_reason_cut(backend: Backend) {
    let stack = shop(
        "dlqsend",
        Options {
            backend,
            // However often it comes back before the queue takes it, the
            // redrive policy must not move it first.
            max_receive_count: 50,
            ..Options::default()
        },
    );
    dead_letter_queue_refuses(&stack, true).await;
    let mut daemon = stack.serve();
    // Permanent: a misspelt field, whose name makes the reason 5000+
    // characters (and the body larger than the refusing queue takes).
    let field = "x".repeat(5_000);
    let body = request("dlq-send").replace("\"sha\"", &format!("\"{field}\": 1, \"sha\""));
    stack.send("probot", &body);
    eventually("the dead-letter send failing", WAIT, || async {
        stack
            .logs()
            .contains("could not dead-letter; retrying instead")
    })
    .await;
    assert!(
        stack.dead_letters("probot").await.is_empty(),
        "dead-lettered although the queue refused"
    );
    dead_letter_queue_refuses(&stack, false).await;
    let dead = stack.dead_letter("probot", WAIT).await;
    let reason = &dead["envmgr.reason"];
    // "malformed API request: xxx…: unknown field `xxx…`, expected …":
    // over 10,000 characters in full.
    assert!(
        reason.starts_with("malformed API request: xxx"),
        "{}",
        &reason[..100]
    );
    assert_eq!(reason.chars().count(), 4_000, "the reason is cut");
    let receives: u32 = dead["envmgr.receiveCount"].parse().unwrap();
    assert!(
        receives >= 2,
        "dead-lettered on a later receive: {receives}"
    );
    eventually("gone from its queue", WAIT, || async {
        stack.messages_in(&stack.queue_name("probot")).await == 0
    })
    .await;
    assert_eq!(stack.dead_letters("probot").await.len(), 1, "one copy");
    assert!(terminate(&mut daemon).success());
}

/// Events wait for their batch; SIGTERM sends what is buffered before the
/// process exits (docs/operations.md, Shutdown: "flush the Segment buffer").
async fn shutdown_flushes_the_segment_buffer(backend: Backend) {
    let stack = shop(
        "flush",
        Options {
            backend,
            // No batch is due before the shutdown.
            env: env(&[("ENVMGR__SEGMENT__FLUSH_INTERVAL_MS", "600000")]),
            ..Options::default()
        },
    );
    let mut daemon = stack.serve();
    stack.send("probot", &example("pull-request-opened.json"));
    done(&stack, "probot", 1).await;
    assert!(
        stack.segment.events().is_empty(),
        "sent before its batch was due"
    );
    assert!(terminate(&mut daemon).success());
    let events = stack.segment.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event"], "cloud_environment_created");
    assert!(stack.segment.dropped().is_empty());
}

/// `[log] format = "json"`: one JSON object a line, the event's fields at
/// the top level and the message's under `span`. The format does not
/// depend on the backend: the local one only.
#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_the_documented_fields() {
    let stack = shop(
        "json",
        Options {
            backend: Backend::Local,
            extra_config: "[log]\nformat = \"json\"\n".into(),
            ..Options::default()
        },
    );
    let (mut daemon, log) = stack.serve_logged();
    stack.send("probot", &example("pull-request-opened.json"));
    done(&stack, "probot", 1).await;
    assert!(terminate(&mut daemon).success());
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let event = |message: &str| {
        lines
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no `{message}` in {lines:#?}"))
    };
    let serving = event("serving");
    for field in ["logic", "canary", "queues"] {
        assert!(!serving[field].is_null(), "{field}: {serving}");
    }
    let logic = serving["logic"].as_str().unwrap().to_string();
    for (message, fields) in [
        ("received", &["deferrals"][..]),
        ("handled", &["outcome"][..]),
        ("message finished", &["disposition"][..]),
    ] {
        let line = event(message);
        for field in fields {
            assert!(!line[field].is_null(), "{field}: {line}");
        }
        let span = &line["span"];
        assert_eq!(span["queue"], "probot", "{line}");
        assert!(span["message_id"].as_str().is_some(), "{line}");
        assert_eq!(span["receive_count"], 1, "{line}");
        assert_eq!(span["logic"], &logic[..12], "{line}");
    }
    assert_eq!(event("message finished")["disposition"], "Deleted");
    assert_eq!(event("received")["level"], "INFO");
    event("drained; bye");
}

envmgr_tests::on_both_backends!(
    a_slow_message_has_its_visibility_renewed,
    max_in_flight_holds_receives_back,
    a_retry_after_longer_than_the_backoff_is_the_wait,
    a_failed_dead_letter_send_is_retried_and_the_reason_cut,
    shutdown_flushes_the_segment_buffer,
);
