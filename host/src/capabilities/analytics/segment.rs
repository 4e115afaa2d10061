//! Segment through reqwest: events are buffered and sent in batches to
//! `/v1/batch` by a background task, so tracking never waits on the network.
//! A full buffer drops the event (counted); a failed batch is retried a few
//! times, then dropped (counted). Neither ever fails a message.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Analytics, TrackEvent};
use crate::capabilities::{CapResult, ErrorCode, error};

/// Tries per batch before it is dropped.
const BATCH_TRIES: u32 = 3;

/// Longest the buffered events may delay a shutdown.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(10);

#[derive(Default, Debug)]
pub struct SegmentCounters {
    pub sent: AtomicU64,
    pub dropped_full: AtomicU64,
    pub dropped_failed: AtomicU64,
}

pub struct SegmentAnalytics {
    sender: std::sync::Mutex<Option<mpsc::Sender<TrackEvent>>>,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    pub counters: Arc<SegmentCounters>,
}

pub struct SegmentOptions {
    pub url: String,
    /// Rotates (see `crate::rotation`): read per batch.
    pub write_key: Arc<crate::rotation::Current<String>>,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub buffer: usize,
    /// What Segment's answers are redacted with before they are logged.
    pub credentials: crate::redact::Credentials,
}

impl SegmentAnalytics {
    /// Start the sender task (on the current tokio runtime).
    pub fn start(options: SegmentOptions) -> Self {
        let (sender, receiver) = mpsc::channel(options.buffer);
        let counters = Arc::new(SegmentCounters::default());
        let task = tokio::spawn(send_batches(receiver, options, counters.clone()));
        Self {
            sender: std::sync::Mutex::new(Some(sender)),
            task: tokio::sync::Mutex::new(Some(task)),
            counters,
        }
    }

    /// Stop accepting events and send what is buffered, for at most
    /// [`SHUTDOWN_FLUSH`]: a Segment outage must not hold up a shutdown.
    pub async fn flush_and_stop(&self) {
        self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = self.task.lock().await.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_FLUSH, task).await.is_err() {
                abort.abort();
                tracing::warn!("segment flush cut short at shutdown; buffered events dropped");
            }
        }
    }
}

#[async_trait]
impl Analytics for SegmentAnalytics {
    async fn track(&self, event: &TrackEvent) -> CapResult<()> {
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(sender) = sender else {
            return Err(error(ErrorCode::Unavailable, "analytics is shutting down"));
        };
        sender.try_send(event.clone()).map_err(|_| {
            self.counters.dropped_full.fetch_add(1, Ordering::Relaxed);
            error(
                ErrorCode::Throttled,
                "the analytics buffer is full; event dropped",
            )
        })
    }
}

async fn send_batches(
    mut receiver: mpsc::Receiver<TrackEvent>,
    options: SegmentOptions,
    counters: Arc<SegmentCounters>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a default reqwest client builds");
    let endpoint = format!("{}/v1/batch", options.url.trim_end_matches('/'));
    let mut batch: Vec<TrackEvent> = Vec::with_capacity(options.batch_size);
    // The batch is sent when full, or `flush_interval` after its first event.
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        let next = match due {
            Some(due) => tokio::time::timeout_at(due, receiver.recv()).await,
            None => Ok(receiver.recv().await),
        };
        let closed = match next {
            Ok(Some(event)) => {
                due.get_or_insert_with(|| tokio::time::Instant::now() + options.flush_interval);
                batch.push(event);
                if batch.len() < options.batch_size {
                    continue;
                }
                false
            }
            Ok(None) => true,
            Err(_due) => false,
        };
        due = None;
        if !batch.is_empty() {
            let events = std::mem::take(&mut batch);
            let redactor = crate::redact::Redactor::new(options.credentials.clone());
            let write_key = options.write_key.get();
            let target = Target {
                client: &client,
                endpoint: &endpoint,
                write_key: &write_key,
                redactor: &redactor,
            };
            send(&target, events, &counters).await;
        }
        if closed {
            return;
        }
    }
}

/// Where batches go, and how answers are made safe to log.
struct Target<'a> {
    client: &'a reqwest::Client,
    endpoint: &'a str,
    write_key: &'a str,
    redactor: &'a crate::redact::Redactor,
}

async fn send(target: &Target<'_>, events: Vec<TrackEvent>, counters: &SegmentCounters) {
    let Target {
        client,
        endpoint,
        write_key,
        redactor,
    } = target;
    let body = serde_json::json!({
        "batch": events.iter().map(|e| {
            let properties: serde_json::Value =
                serde_json::from_str(&e.properties_json).unwrap_or(serde_json::json!({}));
            let mut item = serde_json::json!({
                "type": "track",
                "event": e.event,
                "properties": properties,
                "messageId": e.message_id,
            });
            let who = if e.user_id.is_empty() { "anonymousId" } else { "userId" };
            item[who] = serde_json::json!(if e.user_id.is_empty() { &e.message_id } else { &e.user_id });
            item
        }).collect::<Vec<_>>()
    });
    for attempt in 1..=BATCH_TRIES {
        let request = client
            .post(*endpoint)
            .basic_auth(write_key, Some(""))
            .json(&body);
        let result = crate::telemetry::http::send(request, "/v1/batch").await;
        match result {
            Ok(response) if response.status().is_success() => {
                counters
                    .sent
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
                return;
            }
            Ok(response) => {
                let status = response.status().as_u16();
                // Segment's reason may quote the batch (and the auth header).
                let reason = redactor.clean(&response.text().await.unwrap_or_default());
                tracing::warn!(status, %reason, attempt, "segment batch refused")
            }
            Err(e) => {
                let error = redactor.clean(&crate::support::error_chain(&e));
                tracing::warn!(%error, attempt, "segment batch not sent")
            }
        }
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
    }
    counters
        .dropped_failed
        .fetch_add(events.len() as u64, Ordering::Relaxed);
    tracing::error!(
        events = events.len(),
        "segment batch dropped after {BATCH_TRIES} tries"
    );
}
