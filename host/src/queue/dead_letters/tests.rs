//! The dead letters' model against a queue that misbehaves as SQS may.

use std::sync::Mutex;

use async_trait::async_trait;

use super::*;
use crate::queue::{DeadLetter, Deferral, QueueState, Received};

#[test]
fn dead_letters_from_before_the_one_attribute_keep_their_reason() {
    let attributes = vec![
        (
            "envmgr-reason".to_string(),
            Attribute::text("String", "bad"),
        ),
        (
            "envmgr-source-queue".to_string(),
            Attribute::text("String", "api"),
        ),
        (
            "envmgr-message-id".to_string(),
            Attribute::text("String", "m1"),
        ),
        (
            "envmgr-logic-version".to_string(),
            Attribute::text("String", "abc"),
        ),
        (
            "envmgr-receive-count".to_string(),
            Attribute::text("String", "2"),
        ),
        ("traceparent".to_string(), Attribute::text("String", "00-1")),
    ];
    let letter = Letter::from_received(ReceivedDeadLetter {
        id: "d1".into(),
        receipt: "r".into(),
        body: "{}".into(),
        attributes,
        metadata: None,
        sent_at_ms: 7,
    });
    let metadata = letter.metadata.clone().unwrap();
    assert_eq!(metadata.reason.as_deref(), Some("bad"));
    assert_eq!(metadata.source_queue.as_deref(), Some("api"));
    assert_eq!(metadata.receive_count, Some(2));
    assert_eq!(letter.original_id(), Some("m1"));
    assert_eq!(letter.dead_since_ms(), 7);
    assert_eq!(
        letter.attributes,
        vec![("traceparent".to_string(), Attribute::text("String", "00-1"))],
        "only the producer's go back on a redrive"
    );
}

/// A dead-letter queue that, like SQS may, returns its first message a
/// second time (under a new receipt) before saying it is empty.
#[derive(Default)]
struct Repeating {
    calls: Mutex<u32>,
    released: Mutex<Vec<String>>,
}

fn dead(id: &str, receipt: &str) -> ReceivedDeadLetter {
    ReceivedDeadLetter {
        id: id.into(),
        receipt: receipt.into(),
        body: "{}".into(),
        attributes: Vec::new(),
        metadata: None,
        sent_at_ms: 0,
    }
}

#[async_trait]
impl Queue for Repeating {
    async fn receive_dead_letters(
        &self,
        _max: usize,
        _hide_for: Duration,
    ) -> anyhow::Result<Vec<ReceivedDeadLetter>> {
        let mut calls = self.calls.lock().unwrap();
        *calls += 1;
        Ok(match *calls {
            1 => vec![dead("a", "a-1"), dead("b", "b-1")],
            2 => vec![dead("a", "a-2")],
            _ => Vec::new(),
        })
    }
    async fn release_dead_letters(&self, receipts: &[String]) -> Vec<(String, String)> {
        self.released.lock().unwrap().extend_from_slice(receipts);
        Vec::new()
    }
    async fn receive(&self, _max: usize) -> anyhow::Result<Vec<Received>> {
        unreachable!("dlq commands receive dead letters only")
    }
    async fn change_visibility(&self, _receipt: &str, _seconds: i32) -> anyhow::Result<()> {
        unreachable!("dlq commands release dead letters only")
    }
    async fn delete(&self, _receipts: &[String]) {
        unreachable!("dlq commands delete dead letters only")
    }
    async fn dead_letter(&self, _: &Received, _: &DeadLetter<'_>) -> anyhow::Result<()> {
        unreachable!("dlq commands never dead-letter")
    }
    async fn send(&self, _body: &str) -> anyhow::Result<String> {
        unreachable!("a listing sends nothing")
    }
    async fn send_with_attributes(
        &self,
        _body: &str,
        _attributes: &[(String, Attribute)],
    ) -> anyhow::Result<String> {
        unreachable!("a listing sends nothing")
    }
    async fn defer(&self, _: &Received, _: Duration) -> anyhow::Result<Deferral> {
        unreachable!("dlq commands never defer")
    }
    async fn delete_dead_letters(&self, _receipts: &[String]) -> Vec<(String, String)> {
        unreachable!("a listing deletes nothing")
    }
    async fn state(&self) -> anyhow::Result<QueueState> {
        unreachable!("a listing within the bound needs no count")
    }
}

#[tokio::test]
async fn a_dead_letter_whose_send_fails_stays_and_the_others_move() {
    use crate::local::Store;
    use crate::queue::local::{LocalQueue, enqueue_with_attributes, messages};
    use crate::support::random_hex;
    let dir = std::env::temp_dir().join(format!("envmgr-dlq-{}", random_hex(6)));
    let store = Store::open_dir(&dir).unwrap();
    let settings = QueueSettings {
        // 16 KiB less envmgr's 8 KiB reserve: at most 8 KiB a message.
        max_message_bytes: 16_384,
        ..QueueSettings::named("q")
    };
    let dead_letters = DeadLetters::new(vec![Source {
        logical: "api".into(),
        settings: settings.clone(),
        queue: Arc::new(LocalQueue::new(store.clone(), "api", &settings)),
    }]);
    let traceparent = vec![("traceparent".to_string(), Attribute::text("String", "00-1"))];
    let too_big = "x".repeat(9_000);
    enqueue_with_attributes(&store, "q-dlq", &too_big, &[])
        .await
        .unwrap();
    enqueue_with_attributes(&store, "q-dlq", "{}", &traceparent)
        .await
        .unwrap();

    let report = dead_letters.redrive(None, Selection::All).await.unwrap();
    assert_eq!(report.moved.len(), 1);
    assert_eq!(report.failed.len(), 1);
    assert!(
        report.failed[0].1.contains("at most 8192"),
        "{}",
        report.failed[0].1
    );
    assert!(report.not_removed.is_empty() && report.not_found.is_empty());
    let moved = messages(&store, "q").unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].typed_attributes, traceparent);
    assert!(moved[0].metadata.is_none(), "starts over");
    let left = dead_letters.list(None).await.unwrap();
    assert_eq!(left[0].letters.len(), 1, "visible again at once");
    assert_eq!(left[0].letters[0].body, too_big);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_message_returned_twice_is_listed_once_and_released_by_its_latest_receipt() {
    let queue = Arc::new(Repeating::default());
    let dead_letters = DeadLetters::new(vec![Source {
        logical: "api".into(),
        settings: QueueSettings::named("q"),
        queue: queue.clone(),
    }]);
    let listings = dead_letters.list(None).await.unwrap();
    let ids: Vec<&str> = listings[0].letters.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert!(!listings[0].bounded);
    let mut released = queue.released.lock().unwrap().clone();
    released.sort();
    assert_eq!(released, ["a-2", "b-1"]);
}
