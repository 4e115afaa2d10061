//! `envmgr dlq` end to end on both backends, through the real binary: a
//! request for an app not registered yet is dead-lettered with envmgr's
//! metadata and the producer's attributes; `dlq list` and `dlq show` say
//! why; once the app is added, `dlq redrive` moves it back with its
//! attributes and it completes; `dlq purge` deletes only with `--yes`.

use std::time::Duration;

use envmgr::queue::{Attribute, AttributeData};
use envmgr_tests::stack::{Backend, Options, Stack, eventually, example, terminate};

const BINARY: &str = env!("CARGO_BIN_EXE_envmgr-under-test");
const WAIT: Duration = Duration::from_secs(60);

const DATABASE_URL: &str = "postgres://shop:s3cr3t-hunter2@db.internal/shop";
const STRIPE_KEY: &str = "sk_test_51HxQ2bGvTnV8sTuvWxYz";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const SIGNATURE: [u8; 4] = [0x00, 0x01, 0xfe, 0xff];

/// One attribute of each type, two with a custom type suffix; sorted by
/// name, as the harness returns them.
fn producer_attributes() -> Vec<(String, Attribute)> {
    vec![
        ("priority".to_string(), Attribute::text("Number.int", "5")),
        (
            "signature".to_string(),
            Attribute {
                data_type: "Binary.sha".to_string(),
                value: AttributeData::Binary(SIGNATURE.to_vec()),
            },
        ),
        (
            "traceparent".to_string(),
            Attribute::text("String", TRACEPARENT),
        ),
    ]
}

fn stdout(output: std::process::Output) -> String {
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn json(output: std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(output)).expect("JSON output")
}

/// list: for tools, then for people (every queue); a listing leaves the
/// dead letters visible, so the second one finds it again. Returns the
/// dead letter's id and the logic version that failed it.
fn assert_listed(stack: &Stack, original_id: &str) -> (String, String) {
    let listed = json(stack.ok(&["dlq", "list", "--queue", "api", "--json"]));
    let listed = listed.as_array().expect("an array");
    assert_eq!(listed.len(), 1, "{listed:?}");
    let entry = &listed[0];
    let id = entry["id"].as_str().expect("an id").to_string();
    assert_eq!(entry["queue"], "api");
    assert_eq!(entry["metadata"]["messageId"], original_id);
    assert_eq!(entry["metadata"]["receiveCount"], 1);
    let logic_version = entry["metadata"]["logicVersion"]
        .as_str()
        .expect("a logic version")
        .to_string();
    assert_eq!(logic_version.len(), 64, "a sha256: {logic_version}");
    let text = stdout(stack.ok(&["dlq", "list"]));
    let line = text
        .lines()
        .find(|line| line.contains(&id))
        .unwrap_or_else(|| panic!("{id} not listed:\n{text}"));
    assert!(line.contains("app app_shop not found"), "{line}");
    assert!(line.contains(&logic_version[..12]) && !line.contains(&logic_version));
    assert!(
        text.lines()
            .any(|l| l.starts_with("probot (") && l.ends_with(": 0 dead letters")),
        "{text}"
    );
    (id, logic_version)
}

/// show: every metadata field, the producer's attributes with their
/// types, the body; by the dead letter's id or the original's.
fn assert_shown(stack: &Stack, id: &str, original_id: &str, logic_version: &str, body: &str) {
    use base64::Engine as _;
    let shown = json(stack.ok(&["dlq", "show", id, "--json"]));
    let metadata = &shown["metadata"];
    assert!(
        metadata["reason"]
            .as_str()
            .unwrap()
            .contains("app app_shop not found"),
        "{shown}"
    );
    assert_eq!(metadata["sourceQueue"], "api");
    assert_eq!(metadata["messageId"], original_id);
    assert_eq!(metadata["logicVersion"], logic_version);
    assert_eq!(metadata["receiveCount"], 1);
    assert_eq!(metadata["deferrals"], 0);
    assert!(metadata["deadLetteredAt"].as_u64().unwrap() > 1_700_000_000_000);
    let encoded = base64::engine::general_purpose::STANDARD.encode(SIGNATURE);
    assert_eq!(
        shown["attributes"],
        serde_json::json!({
            "priority": { "dataType": "Number.int", "stringValue": "5" },
            "signature": { "dataType": "Binary.sha", "binaryValue": encoded },
            "traceparent": { "dataType": "String", "stringValue": TRACEPARENT },
        })
    );
    assert_eq!(shown["body"], body);
    let text = stdout(stack.ok(&["dlq", "show", original_id, "--queue", "api"]));
    for expected in [
        id,
        "app app_shop not found",
        logic_version,
        original_id,
        TRACEPARENT,
        "Number.int",
        "Binary.sha",
        encoded.as_str(),
        // The body, pretty-printed.
        "\n    \"appId\": \"app_shop\",\n",
    ] {
        assert!(text.contains(expected), "{expected} not in:\n{text}");
    }
}

async fn a_dead_letter_is_listed_shown_redriven_and_purged(backend: Backend) {
    let stack = Stack::new(
        "dlq-ops",
        BINARY,
        Options {
            backend,
            // Room for the harness's own look at the redriven message (one
            // receive on SQS) before the daemon takes it.
            max_receive_count: 5,
            ..Options::default()
        },
    );
    // No app yet: the production request fails permanently.
    let mut daemon = stack.serve();
    let body = example("api-production.json");
    let original_id = stack
        .send_with_attributes("api", &body, &producer_attributes())
        .await;
    let letter = stack.dead_letter("api", WAIT).await;
    assert!(
        letter["envmgr.reason"].contains("app app_shop not found"),
        "{letter:?}"
    );
    assert_eq!(letter["envmgr.messageId"], original_id);
    assert_eq!(
        letter["traceparent"], TRACEPARENT,
        "the producer's attribute"
    );
    // Nothing consumes the redriven message until it has been looked at.
    assert!(terminate(&mut daemon).success());

    let (id, logic_version) = assert_listed(&stack, &original_id);

    assert_shown(&stack, &id, &original_id, &logic_version, &body);

    // The cause fixed, the dead letter moves back with the producer's
    // attributes and none of envmgr's metadata (a fresh receive budget) but
    // the sealed original send time (SQS).
    stack.seed_shop(DATABASE_URL, STRIPE_KEY);
    let moved = stdout(stack.ok(&["dlq", "redrive", "--id", &id]));
    assert!(moved.contains("moved 1 dead letter back"), "{moved}");
    assert!(stack.dead_letters("api").await.is_empty());
    let (redriven, mut attributes) = stack.first_message("api", WAIT).await;
    assert_eq!(redriven, body);
    if let Some(at) = attributes.iter().position(|(name, _)| name == "envmgr") {
        let (_, envmgrs) = attributes.remove(at);
        let AttributeData::Text(text) = envmgrs.value else {
            panic!("envmgr's attribute is text");
        };
        let metadata = envmgr::queue::Metadata::read(&text).expect("envmgr's JSON");
        assert!(metadata.sent_at.is_some() && metadata.sent_at_seal.is_some());
        assert_eq!((metadata.reason, metadata.deferrals), (None, 0), "fresh");
    }
    assert_eq!(attributes, producer_attributes());

    let mut daemon = stack.serve();
    eventually("the redriven request creates its runtime", WAIT, || async {
        stack.runtime.runtimes().len() == 1
    })
    .await;
    eventually("its queue empty", WAIT, || async {
        stack.messages_in(&stack.queue_name("api")).await == 0
    })
    .await;
    assert!(stack.dead_letters("api").await.is_empty());

    // purge: refused without --yes, saying how many; then it empties.
    stack.send("api", "{\"version\": 1");
    eventually("the broken message dead-lettered", WAIT, || async {
        stack.dead_letters("api").await.len() == 1
    })
    .await;
    let refused = stack
        .command(&["dlq", "purge", "--queue", "api"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("1 dead letter") && said.contains("--yes"),
        "{said}"
    );
    assert_eq!(stack.dead_letters("api").await.len(), 1, "nothing deleted");
    let purged = stdout(stack.ok(&["dlq", "purge", "--yes"]));
    assert!(purged.contains("deleted 1 dead letter\n"), "{purged}");
    assert!(stack.dead_letters("api").await.is_empty());
    assert!(terminate(&mut daemon).success());
}

async fn redrive_names_what_it_cannot_find(backend: Backend) {
    let stack = Stack::new(
        "dlq-unknown",
        BINARY,
        Options {
            backend,
            ..Options::default()
        },
    );
    let output = stack
        .command(&["dlq", "redrive", "--id", "no-such-id"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("moved 0 dead letters back"));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no-such-id: no such dead letter"));
    let output = stack
        .command(&["dlq", "list", "--queue", "nope"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no queue `nope` in the config"));
}

envmgr_tests::on_both_backends!(
    a_dead_letter_is_listed_shown_redriven_and_purged,
    redrive_names_what_it_cannot_find,
);

/// On SQS every copy gets a new `SentTimestamp`; envmgr's own copies (a
/// deferral or put-back, a dead letter and its redrive) carry the original
/// send time, sealed, so a status report is judged by when it was first
/// sent. A time a producer wrote itself does not count.
#[tokio::test(flavor = "multi_thread")]
async fn envmgrs_copies_keep_the_original_send_time_and_a_producers_does_not_count() {
    use std::sync::Arc;

    use envmgr::queue::provenance::Provenance;
    use envmgr::queue::sqs::SqsQueue;
    use envmgr::queue::{DeadLetter, Metadata, Queue as _};

    let stack = Stack::new(
        "sent-at",
        BINARY,
        Options {
            backend: Backend::Aws,
            ..Options::default()
        },
    );
    let settings = envmgr::config::Settings::load(Some(&stack.config), Vec::new()).unwrap();
    let client = aws_sdk_sqs::Client::new(&stack.sdk().await);
    let sealing = Arc::new(Provenance::from_shared_secret(b"the App's private key"));
    let queue = SqsQueue::connect(client.clone(), "api", &settings.queues["api"])
        .await
        .unwrap()
        .with_provenance(Some(sealing));
    let receive = || async {
        for _ in 0..40 {
            if let Some(received) = queue.receive(1).await.unwrap().pop() {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("nothing received");
    };
    queue.send("{\"report\": 1}").await.unwrap();
    let first = receive().await;
    let sent = first.message.sent_at_ms;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    queue.defer(&first, Duration::from_secs(0)).await.unwrap();
    queue.delete(std::slice::from_ref(&first.receipt)).await;
    let copy = receive().await;
    assert_eq!(copy.message.sent_at_ms, sent, "the deferral's copy");

    let why = DeadLetter {
        reason: "refused",
        source_queue: "api",
        logic_version: "abc",
        sent: None,
    };
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    queue.dead_letter(&copy, &why).await.unwrap();
    queue.delete(std::slice::from_ref(&copy.receipt)).await;
    let redrive = stack.run(&["dlq", "redrive", "--queue", "api", "--all"]);
    assert!(redrive.0, "{}", redrive.1);
    let redriven = receive().await;
    assert_eq!(
        redriven.message.sent_at_ms, sent,
        "the dead letter's redrive"
    );
    queue.delete(std::slice::from_ref(&redriven.receipt)).await;

    // A producer's own `sentAt`, sealed by nothing envmgr knows.
    let forged = Metadata {
        sent_at: Some(sent - 3_600_000),
        sent_at_seal: Some("00".repeat(32)),
        ..Metadata::default()
    };
    let attribute = envmgr::queue::Attribute::text("String", forged.to_text());
    queue
        .send_with_attributes("{\"report\": 2}", &[("envmgr".to_string(), attribute)])
        .await
        .unwrap();
    let produced = receive().await;
    assert!(produced.message.sent_at_ms > sent, "its own send time");
}

/// Dead letters are kept 14 days: `init` sets SQS's retention on every
/// dead-letter queue (its default is 4 days), and the local queue drops
/// older ones when it adds or reads dead letters.
#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_are_kept_fourteen_days_on_both_backends() {
    let stack = Stack::new(
        "dlq-retention",
        BINARY,
        Options {
            backend: Backend::Aws,
            ..Options::default()
        },
    );
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk().await);
    for logical in ["probot", "api"] {
        let url = sqs
            .get_queue_url()
            .queue_name(format!("{}-dlq", stack.queue_name(logical)))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::MessageRetentionPeriod)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        let retention =
            &attributes[&aws_sdk_sqs::types::QueueAttributeName::MessageRetentionPeriod];
        assert_eq!(retention, "1209600", "{logical}");
    }

    let local = Stack::new(
        "dlq-retention-local",
        BINARY,
        Options {
            backend: Backend::Local,
            ..Options::default()
        },
    );
    let dlq = format!("{}-dlq", local.queue_name("api"));
    let store = local.store();
    let day_ms = 86_400_000_i64;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut ids = Vec::new();
    for (body, age_days) in [("{\"old\": 15}", 15), ("{\"young\": 13}", 13)] {
        let id = envmgr::queue::local::enqueue_with_attributes(&store, &dlq, body, &[])
            .await
            .unwrap();
        ids.push(id.clone());
        store
            .write(
                envmgr::local::Durability::SurvivesCrash,
                move |connection| {
                    connection.execute(
                        "UPDATE messages SET sent_at_ms = ?1 WHERE id = ?2",
                        rusqlite::params![now_ms - age_days * day_ms, id],
                    )?;
                    Ok(())
                },
            )
            .await
            .unwrap();
    }
    let letters = local.dead_letters("api").await;
    assert_eq!(letters.len(), 2, "both there until the queue is next read");
    let listed = local.ok(&["dlq", "list", "--queue", "api", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    let listed_ids: Vec<&str> = listed
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|letter| letter["id"].as_str())
        .collect();
    assert_eq!(listed_ids, [ids[1].as_str()], "the 15-day-old one pruned");
}
