//! The local queue's semantics, as SQS defines them.

use super::*;
use crate::queue::AttributeData;

fn settings(visibility: i32, max_receive_count: u32) -> QueueSettings {
    QueueSettings {
        wait_seconds: 0,
        visibility_timeout_seconds: visibility,
        max_receive_count,
        ..QueueSettings::named("q")
    }
}

fn temp_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("envmgr-queue-{}", random_hex(6)))
}

#[tokio::test]
async fn a_received_message_hides_then_returns_with_its_receive_count() {
    let dir = temp_dir();
    let queue = LocalQueue::new(Store::open_dir(&dir).unwrap(), "probot", &settings(1, 5));
    let id = queue.send("hello").await.unwrap();

    let first = queue.receive(10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].message.id, id);
    assert_eq!(first[0].message.receive_count, 1);
    assert_eq!(first[0].message.source_queue, "probot");
    assert!(queue.receive(10).await.unwrap().is_empty(), "hidden");

    // A restart: a new process opens the file; the lease runs out.
    drop(queue);
    let queue = LocalQueue::new(Store::open_dir(&dir).unwrap(), "probot", &settings(1, 5));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let again = queue.receive(10).await.unwrap();
    assert_eq!(again.len(), 1, "back after its visibility timeout");
    assert_eq!(again[0].message.receive_count, 2);
    assert_ne!(again[0].receipt, first[0].receipt);

    // The old receipt no longer acts on it; the new one deletes it.
    assert!(queue.change_visibility(&first[0].receipt, 0).await.is_err());
    queue.delete(std::slice::from_ref(&first[0].receipt)).await;
    assert_eq!(depth(queue.store_for_tests(), "q").unwrap(), (0, 1));
    queue.delete(std::slice::from_ref(&again[0].receipt)).await;
    assert_eq!(depth(queue.store_for_tests(), "q").unwrap(), (0, 0));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn after_max_receives_the_message_moves_to_the_dead_letter_queue() {
    let dir = temp_dir();
    let queue = LocalQueue::new(Store::open_dir(&dir).unwrap(), "api", &settings(30, 2));
    queue.send("poison").await.unwrap();
    for attempt in 1..=2 {
        let received = queue.receive(1).await.unwrap();
        assert_eq!(received[0].message.receive_count, attempt);
        queue
            .change_visibility(&received[0].receipt, 0)
            .await
            .unwrap();
    }
    assert!(
        queue.receive(1).await.unwrap().is_empty(),
        "not a third time"
    );
    let dead = messages(queue.store_for_tests(), "q-dlq").unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
    assert_eq!(depth(queue.store_for_tests(), "q").unwrap(), (0, 0));
    let _ = std::fs::remove_dir_all(dir);
}

fn producer_attributes() -> Vec<(String, Attribute)> {
    vec![
        (
            "blob".to_string(),
            Attribute {
                data_type: "Binary.png".into(),
                value: AttributeData::Binary(vec![0, 1, 255]),
            },
        ),
        ("priority".to_string(), Attribute::text("Number.int", "5")),
        (
            "traceparent".to_string(),
            Attribute::text("String", "00-ab-cd-01"),
        ),
    ]
}

#[tokio::test]
async fn a_dead_letter_copy_carries_why_and_the_producers_attributes() {
    let dir = temp_dir();
    let queue = LocalQueue::new(Store::open_dir(&dir).unwrap(), "api", &settings(30, 5));
    let id = queue
        .send_with_attributes("{", &producer_attributes())
        .await
        .unwrap();
    let received = queue.receive(1).await.unwrap().remove(0);
    let why = DeadLetter {
        reason: "the body is not valid JSON",
        source_queue: "api",
        logic_version: "abc",
        sent: None,
    };
    queue.dead_letter(&received, &why).await.unwrap();
    let dead = messages(queue.store_for_tests(), "q-dlq").unwrap();
    let metadata = dead[0].metadata.clone().expect("envmgr's metadata");
    assert_eq!(
        metadata.reason.as_deref(),
        Some("the body is not valid JSON")
    );
    assert_eq!(metadata.receive_count, Some(1));
    assert_eq!(metadata.message_id.as_deref(), Some(id.as_str()));
    assert_eq!(metadata.source_queue.as_deref(), Some("api"));
    assert!(metadata.dead_lettered_at.unwrap() > 0);
    assert_eq!(dead[0].typed_attributes, producer_attributes());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn dead_letters_are_received_released_and_deleted_by_receipt() {
    let dir = temp_dir();
    let queue = LocalQueue::new(Store::open_dir(&dir).unwrap(), "api", &settings(30, 5));
    for body in ["one", "two"] {
        enqueue_with_attributes(
            queue.store_for_tests(),
            "q-dlq",
            body,
            &producer_attributes(),
        )
        .await
        .unwrap();
    }
    let hide = Duration::from_secs(30);
    let first = queue.receive_dead_letters(10, hide).await.unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].attributes, producer_attributes());
    assert!(first[0].metadata.is_none());
    assert!(
        queue
            .receive_dead_letters(10, hide)
            .await
            .unwrap()
            .is_empty(),
        "hidden while received"
    );
    assert!(
        queue
            .release_dead_letters(&[first[0].receipt.clone()])
            .await
            .is_empty()
    );
    let again = queue.receive_dead_letters(10, hide).await.unwrap();
    assert_eq!(again.len(), 1, "the released one is back at once");
    assert_eq!(again[0].id, first[0].id);
    // The first receipt of a message received again no longer holds.
    let refused = queue
        .delete_dead_letters(&[first[0].receipt.clone(), first[1].receipt.clone()])
        .await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, first[0].receipt);
    assert!(
        queue
            .delete_dead_letters(&[again[0].receipt.clone()])
            .await
            .is_empty()
    );
    assert!(
        messages(queue.store_for_tests(), "q-dlq")
            .unwrap()
            .is_empty()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_state_counts_visible_in_flight_delayed_and_dead_letters() {
    let dir = temp_dir();
    let queue = LocalQueue::new(Store::open_dir(&dir).unwrap(), "api", &settings(30, 5));
    assert_eq!(queue.state().await.unwrap(), QueueState::default());
    for body in ["a", "b", "c"] {
        queue.send(body).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let received = queue.receive(2).await.unwrap();
    queue
        .defer(&received[0], Duration::from_secs(60))
        .await
        .unwrap();
    enqueue_with_attributes(queue.store_for_tests(), "q-dlq", "dead", &[])
        .await
        .unwrap();
    let state = queue.state().await.unwrap();
    assert_eq!(
        (
            state.visible,
            state.in_flight,
            state.delayed,
            state.dead_letters
        ),
        (1, 1, 1, 1)
    );
    assert!(state.oldest_age.unwrap() >= Duration::from_millis(20));
    let _ = std::fs::remove_dir_all(dir);
}
