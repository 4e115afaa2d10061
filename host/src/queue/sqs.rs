//! Queues on SQS (aws-sdk-sqs). The redrive policy `envmgr init` sets does
//! the dead-lettering after `max_receive_count`.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
};

use std::time::Duration;

use super::{
    Attribute, AttributeData, DeadLetter, Deferral, MAX_ATTRIBUTES, MAX_DELAY, METADATA_ATTRIBUTE,
    Metadata, Queue, Received, text_attributes,
};
use crate::aws::operation_failed;
use crate::bindings::Message;
use crate::config::Queue as QueueSettings;
use crate::local::random_hex;

/// One SQS queue and its dead-letter queue.
pub struct SqsQueue {
    client: Client,
    logical: String,
    settings: QueueSettings,
    url: String,
    dead_letter_url: String,
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
                let mut metadata = Metadata::default();
                let mut attributes = Vec::new();
                for (name, value) in m.message_attributes.unwrap_or_default() {
                    if name == METADATA_ATTRIBUTE {
                        metadata = Metadata::parse(value.string_value.as_deref());
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
                Some(Received {
                    message: Message {
                        id: m.message_id.unwrap_or_default(),
                        source_queue: self.logical.clone(),
                        body: m.body.unwrap_or_default(),
                        attributes: text_attributes(&attributes),
                        receive_count: number(MessageSystemAttributeName::ApproximateReceiveCount)
                            .unwrap_or(1) as u32,
                        sent_at_ms: number(MessageSystemAttributeName::SentTimestamp).unwrap_or(0),
                        delivery_token: random_hex(16),
                        deferrals: metadata.deferrals,
                    },
                    receipt: m.receipt_handle?,
                    attributes,
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
            .await
            .map(drop)
            .map_err(|e| operation_failed("sqs ChangeMessageVisibility", &e))
    }

    async fn delete(&self, receipts: &[String]) {
        if receipts.is_empty() {
            return;
        }
        let entries: Vec<DeleteMessageBatchRequestEntry> = receipts
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
        match self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => {
                for failed in output.failed {
                    tracing::warn!(entry = %failed.id, code = %failed.code, "delete failed; the message will return");
                }
            }
            Err(e) => {
                tracing::warn!(error = %crate::aws::error_chain(&e), count = receipts.len(), "batch delete failed; the messages will return")
            }
        }
    }

    async fn dead_letter(&self, message: &Message, why: &DeadLetter<'_>) -> anyhow::Result<()> {
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.dead_letter_url)
            .message_body(&message.body);
        for (name, value) in why.attributes(message) {
            send = send.message_attributes(name, attribute(&value));
        }
        send.send()
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
        let metadata = Metadata {
            deferrals: received.message.deferrals + 1,
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
        send.send()
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
}
