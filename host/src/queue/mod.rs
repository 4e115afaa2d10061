//! The queues the daemon consumes: SQS, or the embedded database. Both keep
//! SQS's contract: a received message stays hidden for its visibility
//! timeout, comes back if not deleted, counts its receives, and moves to the
//! dead-letter queue after `max_receive_count` of them.

pub mod local;
pub mod sqs;

use std::time::Duration;

use async_trait::async_trait;

use crate::bindings::Message;

/// A received message and the handle to act on it.
pub struct Received {
    pub message: Message,
    pub receipt: String,
    /// The producer's own message attributes, of every type, as sent
    /// (envmgr's own metadata left out): what a copy of the message keeps.
    pub attributes: Vec<(String, Attribute)>,
}

/// A message attribute as SQS defines one: a data type (`String`, `Number`,
/// `Binary`, each with an optional `.custom` suffix) and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    pub data_type: String,
    pub value: AttributeData,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttributeData {
    Text(String),
    Binary(Vec<u8>),
}

impl Attribute {
    pub fn text(data_type: &str, value: impl Into<String>) -> Self {
        Self {
            data_type: data_type.to_string(),
            value: AttributeData::Text(value.into()),
        }
    }
}

/// The String and Number attributes, as the logic sees them.
pub fn text_attributes(attributes: &[(String, Attribute)]) -> Vec<(String, String)> {
    attributes
        .iter()
        .filter_map(|(name, attribute)| match &attribute.value {
            AttributeData::Text(text) => Some((name.clone(), text.clone())),
            AttributeData::Binary(_) => None,
        })
        .collect()
}

/// The one attribute envmgr adds to a message it puts back on a queue: a
/// JSON object (SQS allows ten attributes a message; the producer's keep
/// the other nine).
pub const METADATA_ATTRIBUTE: &str = "envmgr";

/// envmgr's metadata on a message: how often it was deferred.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub deferrals: u32,
}

impl Metadata {
    /// From the attribute's text; absent or unreadable: none.
    pub fn parse(text: Option<&str>) -> Self {
        text.and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default()
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }
}

/// Bytes of a queue's `MaximumMessageSize` kept free for what envmgr adds
/// to a message it puts back (the dead-letter reason, the deferral count).
pub const ENVMGR_ATTRIBUTES_RESERVE: usize = 8 << 10;

/// How SQS counts a message's size: the body, and each attribute's name,
/// data type and value.
pub fn message_size(body: &str, attributes: &[(String, Attribute)]) -> usize {
    body.len()
        + attributes
            .iter()
            .map(|(name, attribute)| {
                name.len()
                    + attribute.data_type.len()
                    + match &attribute.value {
                        AttributeData::Text(text) => text.len(),
                        AttributeData::Binary(blob) => blob.len(),
                    }
            })
            .sum::<usize>()
}

/// Refuse a message a queue of `max_message_bytes` cannot take with room
/// for envmgr's own attributes later.
pub fn check_size(
    body: &str,
    attributes: &[(String, Attribute)],
    max_message_bytes: u32,
) -> anyhow::Result<()> {
    let size = message_size(body, attributes);
    let limit = (max_message_bytes as usize).saturating_sub(ENVMGR_ATTRIBUTES_RESERVE);
    if size > limit {
        anyhow::bail!(
            "the message has {size} bytes (body and attributes); the queue takes {max_message_bytes} \
             and envmgr keeps {ENVMGR_ATTRIBUTES_RESERVE} of them for its own attributes, so at most {limit}"
        );
    }
    Ok(())
}

/// SQS's most attributes on one message.
pub const MAX_ATTRIBUTES: usize = 10;
/// SQS's longest delay of a message.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// How a deferral was carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deferral {
    /// A delayed copy was sent; the caller deletes the original.
    Copied,
    /// The message itself was hidden until then; its receive not counted.
    InPlace,
    /// Only its visibility was changed (no room for envmgr's attribute):
    /// the next receive counts.
    Hidden,
}

/// Why and from where a message was dead-lettered; stored on the copy in the
/// dead-letter queue as `envmgr-*` attributes.
pub struct DeadLetter<'a> {
    pub reason: &'a str,
    pub source_queue: &'a str,
    pub logic_version: &'a str,
}

impl DeadLetter<'_> {
    /// The attributes of the dead-letter copy of `message`.
    pub fn attributes(&self, message: &Message) -> Vec<(&'static str, String)> {
        // SQS caps an attribute value; a longer reason is cut.
        const MAX_REASON_CHARS: usize = 4_000;
        vec![
            (
                "envmgr-reason",
                self.reason.chars().take(MAX_REASON_CHARS).collect(),
            ),
            ("envmgr-source-queue", self.source_queue.to_string()),
            ("envmgr-message-id", message.id.clone()),
            ("envmgr-logic-version", self.logic_version.to_string()),
            ("envmgr-receive-count", message.receive_count.to_string()),
        ]
    }
}

/// One queue with its dead-letter queue, as its settings configure them.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Up to `max` messages (at most 10), long-polling for the first one.
    async fn receive(&self, max: usize) -> anyhow::Result<Vec<Received>>;
    /// Hide a received message for `seconds` more (0: visible at once).
    async fn change_visibility(&self, receipt: &str, seconds: i32) -> anyhow::Result<()>;
    /// Delete finished messages. A receipt that no longer holds (the message
    /// was received again since) is logged: that message will return.
    async fn delete(&self, receipts: &[String]);
    /// Put a copy on the dead-letter queue, annotated with why.
    async fn dead_letter(&self, message: &Message, why: &DeadLetter<'_>) -> anyhow::Result<()>;
    /// Put a new message on the queue; returns its id.
    async fn send(&self, body: &str) -> anyhow::Result<String>;
    /// Put a received message back for `delay` (at most [`MAX_DELAY`])
    /// without spending its receive budget, its deferral count one higher.
    async fn defer(&self, received: &Received, delay: Duration) -> anyhow::Result<Deferral>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_copy_fits_sqs_attribute_limits() {
        let message = Message {
            id: "m".into(),
            source_queue: "probot".into(),
            body: "{}".into(),
            attributes: Vec::new(),
            receive_count: 3,
            sent_at_ms: 0,
            delivery_token: "t".into(),
            deferrals: 0,
        };
        let reason = "r".repeat(10_000);
        let why = DeadLetter {
            reason: &reason,
            source_queue: "probot",
            logic_version: "abc",
        };
        let attributes = why.attributes(&message);
        // SQS: at most 10 attributes a message (moto does not check).
        assert!(attributes.len() <= 10);
        let reason = &attributes
            .iter()
            .find(|(n, _)| *n == "envmgr-reason")
            .unwrap()
            .1;
        assert_eq!(reason.chars().count(), 4_000);
    }
}
