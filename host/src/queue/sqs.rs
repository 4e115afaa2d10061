//! Queues on SQS (aws-sdk-sqs). The redrive policy `envmgr init` sets does
//! the dead-lettering after `max_receive_count`.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageAttributeValue, MessageSystemAttributeName, MessageSystemAttributeNameForSends,
    MessageSystemAttributeValue, QueueAttributeName,
};
use tracing::Instrument as _;

use std::collections::HashMap;
use std::time::Duration;

use super::{
    Attribute, AttributeData, DeadLetter, Deferral, MAX_ATTRIBUTES, MAX_DELAY, METADATA_ATTRIBUTE,
    Metadata, Queue, QueueState, Received, ReceivedDeadLetter, text_attributes,
};
use crate::aws::operation_failed;
use crate::bindings::Message;
use crate::config::Queue as QueueSettings;
use crate::support::random_hex;

/// One SQS queue and its dead-letter queue.
pub struct SqsQueue {
    client: Client,
    logical: String,
    settings: QueueSettings,
    url: String,
    dead_letter_url: String,
    /// Seals the original send time on envmgr's copies (None: copies carry
    /// none, and each counts from its own send).
    provenance: Option<std::sync::Arc<super::provenance::Provenance>>,
}

impl SqsQueue {
    /// Look both queues up by name.
    pub async fn connect(
        client: Client,
        logical: &str,
        settings: &QueueSettings,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            url: url_of(&client, &settings.name).await?,
            dead_letter_url: url_of(&client, &settings.dead_letter_name()).await?,
            client,
            logical: logical.to_string(),
            settings: settings.clone(),
            provenance: None,
        })
    }

    /// Seal the original send time on the copies this queue makes.
    pub fn with_provenance(
        mut self,
        provenance: Option<std::sync::Arc<super::provenance::Provenance>>,
    ) -> Self {
        self.provenance = provenance;
        self
    }

    /// The original send time of `message` and its seal, if this queue
    /// seals them.
    fn sealed(&self, message: &Message) -> Option<(u64, String)> {
        let provenance = self.provenance.as_ref()?;
        Some((
            message.sent_at_ms,
            provenance.seal(&message.body, message.sent_at_ms),
        ))
    }

    /// When a received message was first sent: its sealed `sentAt` when
    /// the seal holds, else SQS's `SentTimestamp` of this copy.
    fn first_sent(&self, body: &str, metadata: &Metadata, sent_timestamp: u64) -> u64 {
        match (&self.provenance, metadata.sent_at, &metadata.sent_at_seal) {
            (Some(provenance), Some(at), Some(seal)) if provenance.verify(body, at, seal) => at,
            _ => sent_timestamp,
        }
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

/// A producer's attribute, as SQS takes it back.
fn sqs_attribute(attribute: &Attribute) -> anyhow::Result<MessageAttributeValue> {
    let builder = MessageAttributeValue::builder().data_type(&attribute.data_type);
    let builder = match &attribute.value {
        AttributeData::Text(text) => builder.string_value(text),
        AttributeData::Binary(blob) => {
            builder.binary_value(aws_sdk_sqs::primitives::Blob::new(blob.clone()))
        }
    };
    Ok(builder.build()?)
}

/// A received message's attributes: the producer's, sorted by name, and the
/// text of envmgr's metadata attribute if it has one.
fn split_attributes(
    received: HashMap<String, MessageAttributeValue>,
) -> (Vec<(String, Attribute)>, Option<String>) {
    let mut metadata = None;
    let mut attributes = Vec::new();
    for (name, value) in received {
        if name == METADATA_ATTRIBUTE {
            metadata = value.string_value;
            continue;
        }
        let data = match (value.string_value, value.binary_value) {
            (Some(text), _) => AttributeData::Text(text),
            (None, Some(blob)) => AttributeData::Binary(blob.into_inner()),
            (None, None) => continue,
        };
        let attribute = Attribute {
            data_type: value.data_type,
            value: data,
        };
        attributes.push((name, attribute));
    }
    attributes.sort_by(|a, b| a.0.cmp(&b.0));
    (attributes, metadata)
}

/// SQS's most entries in one batch request.
const MAX_BATCH_ENTRIES: usize = 10;

/// The receipts of failed batch entries (ids are the receipts' positions in
/// `receipts`), with SQS's code and message.
/// The receipts of `chunk` a batch call did not act on, with why: the
/// entries it refused, or all of them when the call failed.
fn not_done<E: std::error::Error + 'static>(
    chunk: &[String],
    answer: Result<Vec<aws_sdk_sqs::types::BatchResultErrorEntry>, E>,
) -> Vec<(String, String)> {
    match answer {
        Ok(refused) => failed_entries(chunk, refused),
        Err(e) => {
            let why = crate::support::error_chain(&e);
            chunk.iter().map(|r| (r.clone(), why.clone())).collect()
        }
    }
}

fn failed_entries(
    receipts: &[String],
    failed: Vec<aws_sdk_sqs::types::BatchResultErrorEntry>,
) -> Vec<(String, String)> {
    failed
        .into_iter()
        .filter_map(|entry| {
            let receipt = receipts.get(entry.id.parse::<usize>().ok()?)?;
            let why = match entry.message {
                Some(message) => format!("{}: {message}", entry.code),
                None => entry.code,
            };
            Some((receipt.clone(), why))
        })
        .collect()
}

impl SqsQueue {
    /// Delete received messages of the queue at `url`, ten a call; the
    /// receipts not deleted, with why.
    async fn delete_batches(&self, url: &str, receipts: &[String]) -> Vec<(String, String)> {
        let mut failed = Vec::new();
        for chunk in receipts.chunks(MAX_BATCH_ENTRIES) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, receipt)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .build()
                        .ok()
                })
                .collect();
            let answer = self
                .client
                .delete_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .instrument(crate::telemetry::spans::aws("SQS", "DeleteMessageBatch"))
                .await
                .map(|output| output.failed);
            failed.extend(not_done(chunk, answer));
        }
        failed
    }

    /// The approximate message counts of one queue: (visible, in flight,
    /// delayed).
    async fn counts(&self, url: &str) -> anyhow::Result<(u64, u64, u64)> {
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| operation_failed("sqs GetQueueAttributes", &e))?
            .attributes
            .unwrap_or_default();
        let count = |name: QueueAttributeName| {
            attributes
                .get(&name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok((
            count(QueueAttributeName::ApproximateNumberOfMessages),
            count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        ))
    }
}

/// A copy of `received` keeps its X-Ray trace header: SQS sets
/// `AWSTraceHeader` only from the sender's, never copies it.
fn with_trace_header(
    send: aws_sdk_sqs::operation::send_message::builders::SendMessageFluentBuilder,
    received: &Received,
) -> anyhow::Result<aws_sdk_sqs::operation::send_message::builders::SendMessageFluentBuilder> {
    let Some(header) = &received.trace_header else {
        return Ok(send);
    };
    let value = MessageSystemAttributeValue::builder()
        .data_type("String")
        .string_value(header)
        .build()?;
    Ok(send.message_system_attributes(MessageSystemAttributeNameForSends::AwsTraceHeader, value))
}

fn attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

#[async_trait]
impl Queue for SqsQueue {
    async fn receive(&self, max: usize) -> anyhow::Result<Vec<Received>> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(self.settings.wait_seconds)
            .visibility_timeout(self.settings.visibility_timeout_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .instrument(crate::telemetry::spans::aws("SQS", "ReceiveMessage"))
            .await
            .map_err(|e| operation_failed("sqs ReceiveMessage", &e))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let system = m.attributes.unwrap_or_default();
                let number = |name: MessageSystemAttributeName| {
                    system.get(&name).and_then(|v| v.parse::<u64>().ok())
                };
                let (attributes, metadata) =
                    split_attributes(m.message_attributes.unwrap_or_default());
                let metadata = Metadata::parse(metadata.as_deref());
                let body = m.body.unwrap_or_default();
                let sent_timestamp = number(MessageSystemAttributeName::SentTimestamp).unwrap_or(0);
                let sent_at_ms = self.first_sent(&body, &metadata, sent_timestamp);
                Some(Received {
                    message: Message {
                        id: m.message_id.unwrap_or_default(),
                        source_queue: self.logical.clone(),
                        body,
                        attributes: text_attributes(&attributes),
                        receive_count: number(MessageSystemAttributeName::ApproximateReceiveCount)
                            .unwrap_or(1) as u32,
                        sent_at_ms,
                        delivery_token: random_hex(16),
                        deferrals: metadata.deferrals,
                    },
                    receipt: m.receipt_handle?,
                    attributes,
                    trace_header: system
                        .get(&MessageSystemAttributeName::AwsTraceHeader)
                        .cloned(),
                })
            })
            .collect())
    }

    async fn change_visibility(&self, receipt: &str, seconds: i32) -> anyhow::Result<()> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds.clamp(0, 43_200))
            .send()
            .instrument(crate::telemetry::spans::aws(
                "SQS",
                "ChangeMessageVisibility",
            ))
            .await
            .map(drop)
            .map_err(|e| operation_failed("sqs ChangeMessageVisibility", &e))
    }

    async fn delete(&self, receipts: &[String]) {
        let failed = self.delete_batches(&self.url, receipts).await;
        for (_, why) in &failed {
            tracing::warn!(reason = %why, "delete failed; the message will return");
        }
    }

    async fn dead_letter(&self, received: &Received, why: &DeadLetter<'_>) -> anyhow::Result<()> {
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.dead_letter_url)
            .message_body(&received.message.body);
        let now = crate::support::now_ms().max(0) as u64;
        let why = DeadLetter {
            sent: self.sealed(&received.message),
            ..*why
        };
        for (name, value) in why.attributes(received, now) {
            send = send.message_attributes(name, sqs_attribute(&value)?);
        }
        send = with_trace_header(send, received)?;
        send.send()
            .instrument(crate::telemetry::spans::aws("SQS", "SendMessage"))
            .await
            .map(drop)
            .map_err(|e| operation_failed("sqs SendMessage (dead letter)", &e))
    }

    async fn defer(&self, received: &Received, delay: Duration) -> anyhow::Result<Deferral> {
        let seconds = delay.min(MAX_DELAY).as_secs() as i32;
        if received.attributes.len() >= MAX_ATTRIBUTES {
            // No room for envmgr's attribute: hide it instead (its next
            // receive counts).
            self.change_visibility(&received.receipt, seconds).await?;
            return Ok(Deferral::Hidden);
        }
        let sent = self.sealed(&received.message);
        let metadata = Metadata {
            deferrals: received.message.deferrals + 1,
            sent_at: sent.as_ref().map(|(at, _)| *at),
            sent_at_seal: sent.map(|(_, seal)| seal),
            ..Metadata::default()
        };
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(&received.message.body)
            .delay_seconds(seconds)
            .message_attributes(METADATA_ATTRIBUTE, attribute(&metadata.to_text()));
        for (name, value) in &received.attributes {
            send = send.message_attributes(name, sqs_attribute(value)?);
        }
        send = with_trace_header(send, received)?;
        send.send()
            .instrument(crate::telemetry::spans::aws("SQS", "SendMessage"))
            .await
            .map_err(|e| operation_failed("sqs SendMessage (deferral)", &e))?;
        Ok(Deferral::Copied)
    }

    async fn send(&self, body: &str) -> anyhow::Result<String> {
        super::check_size(body, &[], self.settings.max_message_bytes)?;
        let sent = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| operation_failed("sqs SendMessage", &e))?;
        Ok(sent.message_id.unwrap_or_default())
    }

    async fn send_with_attributes(
        &self,
        body: &str,
        attributes: &[(String, Attribute)],
    ) -> anyhow::Result<String> {
        super::check_size(body, attributes, self.settings.max_message_bytes)?;
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body);
        for (name, value) in attributes {
            send = send.message_attributes(name, sqs_attribute(value)?);
        }
        let sent = send
            .send()
            .await
            .map_err(|e| operation_failed("sqs SendMessage", &e))?;
        Ok(sent.message_id.unwrap_or_default())
    }

    async fn receive_dead_letters(
        &self,
        max: usize,
        hide_for: Duration,
    ) -> anyhow::Result<Vec<ReceivedDeadLetter>> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.dead_letter_url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            // A long poll, however short, asks every server: an empty
            // answer means none is visible (a short poll samples a few).
            .wait_time_seconds(1)
            .visibility_timeout(hide_for.as_secs().clamp(1, 43_200) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| operation_failed("sqs ReceiveMessage (dead letters)", &e))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let sent_at_ms = m
                    .attributes
                    .unwrap_or_default()
                    .get(&MessageSystemAttributeName::SentTimestamp)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                let (attributes, metadata) =
                    split_attributes(m.message_attributes.unwrap_or_default());
                Some(ReceivedDeadLetter {
                    id: m.message_id?,
                    receipt: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                    attributes,
                    metadata: metadata.as_deref().and_then(Metadata::read),
                    sent_at_ms,
                })
            })
            .collect())
    }

    async fn release_dead_letters(&self, receipts: &[String]) -> Vec<(String, String)> {
        let mut failed = Vec::new();
        for chunk in receipts.chunks(MAX_BATCH_ENTRIES) {
            let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, receipt)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            let answer = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.dead_letter_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map(|output| output.failed);
            failed.extend(not_done(chunk, answer));
        }
        failed
    }

    async fn delete_dead_letters(&self, receipts: &[String]) -> Vec<(String, String)> {
        self.delete_batches(&self.dead_letter_url, receipts).await
    }

    /// From `GetQueueAttributes` on the queue and its dead-letter queue.
    /// No oldest age: SQS's API has no such attribute (CloudWatch's
    /// `ApproximateAgeOfOldestMessage` metric has it).
    async fn state(&self) -> anyhow::Result<QueueState> {
        let (visible, in_flight, delayed) = self.counts(&self.url).await?;
        let (dead_visible, dead_in_flight, dead_delayed) =
            self.counts(&self.dead_letter_url).await?;
        Ok(QueueState {
            visible,
            in_flight,
            delayed,
            dead_letters: dead_visible + dead_in_flight + dead_delayed,
            oldest_age: None,
        })
    }
}
