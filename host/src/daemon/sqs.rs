//! The SQS calls the daemon makes (aws-sdk-sqs).

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
use tokio::task::JoinHandle;

use crate::aws::operation_failed;
use crate::bindings::Message;
use crate::config::Queue as QueueSettings;

/// A queue and its dead-letter queue.
#[derive(Clone, Debug)]
pub struct QueueUrls {
    pub queue: String,
    pub dead_letter: String,
}

impl QueueUrls {
    /// Look both URLs up by name.
    pub async fn resolve(client: &Client, settings: &QueueSettings) -> anyhow::Result<Self> {
        Ok(Self {
            queue: url_of(client, &settings.name).await?,
            dead_letter: url_of(client, &settings.dead_letter_name()).await?,
        })
    }
}

pub async fn url_of(client: &Client, name: &str) -> anyhow::Result<String> {
    let output = client
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| operation_failed(&format!("queue {name}"), &e))?;
    output
        .queue_url
        .ok_or_else(|| anyhow::anyhow!("SQS returned no URL for queue {name}"))
}

/// A received message and the handle to act on it.
pub struct Received {
    pub message: Message,
    pub receipt: Option<String>,
}

pub async fn receive(
    client: &Client,
    url: &str,
    settings: &QueueSettings,
    logical: &str,
    max: usize,
) -> anyhow::Result<Vec<Received>> {
    let output = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(max.clamp(1, 10) as i32)
        .wait_time_seconds(settings.wait_seconds)
        .visibility_timeout(settings.visibility_timeout_seconds)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .map_err(|e| operation_failed("sqs ReceiveMessage", &e))?;
    Ok(output
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let system = m.attributes.unwrap_or_default();
            let number = |name: MessageSystemAttributeName| {
                system.get(&name).and_then(|v| v.parse::<u64>().ok())
            };
            let attributes = m
                .message_attributes
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(name, value)| value.string_value.map(|v| (name, v)))
                .collect();
            Received {
                message: Message {
                    id: m.message_id.unwrap_or_default(),
                    source_queue: logical.to_string(),
                    body: m.body.unwrap_or_default(),
                    attributes,
                    receive_count: number(MessageSystemAttributeName::ApproximateReceiveCount)
                        .unwrap_or(1) as u32,
                    sent_at_ms: number(MessageSystemAttributeName::SentTimestamp).unwrap_or(0),
                },
                receipt: m.receipt_handle,
            }
        })
        .collect())
}

pub async fn change_visibility(
    client: &Client,
    url: &str,
    receipt: &str,
    seconds: i32,
) -> anyhow::Result<()> {
    client
        .change_message_visibility()
        .queue_url(url)
        .receipt_handle(receipt)
        .visibility_timeout(seconds.clamp(0, 43_200))
        .send()
        .await
        .map(drop)
        .map_err(|e| operation_failed("sqs ChangeMessageVisibility", &e))
}

/// Renews a lease until dropped.
pub struct Lease(JoinHandle<()>);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keep a running message hidden: renew its lease at half the timeout.
pub fn extend_lease_while_running(
    client: Client,
    url: String,
    receipt: String,
    visibility_seconds: i32,
) -> Lease {
    Lease(tokio::spawn(async move {
        let every = Duration::from_secs((visibility_seconds.max(2) / 2) as u64);
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = change_visibility(&client, &url, &receipt, visibility_seconds).await {
                tracing::warn!(error = %e, "lease extension failed");
            }
        }
    }))
}

fn attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

/// SQS caps an attribute value; a reason longer than this is cut.
const MAX_REASON_CHARS: usize = 4_000;

/// Send the message to the dead-letter queue with why, from where, and which
/// logic version judged it.
pub async fn dead_letter(
    client: &Client,
    dead_letter_url: &str,
    message: &Message,
    logical_queue: &str,
    logic_id: &str,
    reason: &str,
) -> anyhow::Result<()> {
    let reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
    client
        .send_message()
        .queue_url(dead_letter_url)
        .message_body(&message.body)
        .message_attributes("envmgr-reason", attribute(&reason))
        .message_attributes("envmgr-source-queue", attribute(logical_queue))
        .message_attributes("envmgr-message-id", attribute(&message.id))
        .message_attributes("envmgr-logic-version", attribute(logic_id))
        .message_attributes(
            "envmgr-receive-count",
            attribute(&message.receive_count.to_string()),
        )
        .send()
        .await
        .map(drop)
        .map_err(|e| operation_failed("sqs SendMessage (dead letter)", &e))
}
