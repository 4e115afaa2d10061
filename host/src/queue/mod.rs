//! The queues the daemon consumes: SQS, or the embedded database. Both keep
//! SQS's contract: a received message stays hidden for its visibility
//! timeout, comes back if not deleted, counts its receives, and moves to the
//! dead-letter queue after `max_receive_count` of them.

pub mod dead_letters;
pub mod local;
pub mod provenance;
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
    /// SQS's `AWSTraceHeader` system attribute (X-Ray's trace context),
    /// which a copy gets set explicitly: SQS does not copy system
    /// attributes. None on the local queue.
    pub trace_header: Option<String>,
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

/// The String and Number attributes, borrowed.
pub fn text_attributes_of(attributes: &[(String, Attribute)]) -> Vec<(&str, &str)> {
    attributes
        .iter()
        .filter_map(|(name, attribute)| match &attribute.value {
            AttributeData::Text(text) => Some((name.as_str(), text.as_str())),
            AttributeData::Binary(_) => None,
        })
        .collect()
}

/// The String and Number attributes, as the logic sees them.
pub fn text_attributes(attributes: &[(String, Attribute)]) -> Vec<(String, String)> {
    text_attributes_of(attributes)
        .into_iter()
        .map(|(name, text)| (name.to_string(), text.to_string()))
        .collect()
}

/// The one attribute envmgr adds to a message it puts back on a queue: a
/// JSON object, [`Metadata`] (SQS allows ten attributes a message; the
/// producer's keep the other nine).
pub const METADATA_ATTRIBUTE: &str = "envmgr";

/// envmgr's metadata on a message, the JSON text of its `envmgr` attribute:
/// how often it was deferred (`{"deferrals": n}` on a deferred copy), and on
/// a dead-letter copy why and from where it was dead-lettered.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(default)]
    pub deferrals: u32,
    /// Why the logic failed permanently (at most [`MAX_REASON_CHARS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The logical queue (`probot`, `api`) the message came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_queue: Option<String>,
    /// The original message's id (the copy has an id of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The sha256 of the logic version that failed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logic_version: Option<String>,
    /// Its receives when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_count: Option<u32>,
    /// When it was dead-lettered, in ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_lettered_at: Option<u64>,
    /// On envmgr's copies (SQS): when the message was first sent, in ms
    /// since the Unix epoch, and the seal that makes it count
    /// (`provenance.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at_seal: Option<String>,
}

impl Metadata {
    /// From the attribute's text; absent or unreadable: none.
    pub fn parse(text: Option<&str>) -> Self {
        text.and_then(Self::read).unwrap_or_default()
    }

    /// From the attribute's text; None when it is not envmgr's JSON.
    pub fn read(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
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

/// The longest dead-letter reason kept on the copy; a longer one is cut.
pub const MAX_REASON_CHARS: usize = 4_000;

/// Why and from where a message was dead-lettered; stored on the copy in the
/// dead-letter queue as envmgr's metadata attribute.
pub struct DeadLetter<'a> {
    pub reason: &'a str,
    pub source_queue: &'a str,
    pub logic_version: &'a str,
    /// The original send time and its seal, for a queue that seals them.
    pub sent: Option<(u64, String)>,
}

impl DeadLetter<'_> {
    /// envmgr's metadata on the dead-letter copy of `message`, dead-lettered
    /// at `at_ms`. The reason is cut to [`MAX_REASON_CHARS`], and further if
    /// its JSON would not fit in [`ENVMGR_ATTRIBUTES_RESERVE`] (characters
    /// outside ASCII and escapes take more than a byte each).
    pub fn metadata(&self, message: &Message, at_ms: u64) -> Metadata {
        let mut metadata = Metadata {
            deferrals: message.deferrals,
            reason: None,
            source_queue: Some(self.source_queue.to_string()),
            message_id: Some(message.id.clone()),
            logic_version: Some(self.logic_version.to_string()),
            receive_count: Some(message.receive_count),
            dead_lettered_at: Some(at_ms),
            sent_at: self.sent.as_ref().map(|(at, _)| *at),
            sent_at_seal: self.sent.as_ref().map(|(_, seal)| seal.clone()),
        };
        let budget =
            ENVMGR_ATTRIBUTES_RESERVE - METADATA_ATTRIBUTE.len() - METADATA_DATA_TYPE.len();
        let chars: Vec<char> = self.reason.chars().take(MAX_REASON_CHARS).collect();
        let with_reason = |metadata: &mut Metadata, count: usize| {
            metadata.reason = Some(chars[..count].iter().collect());
            metadata.to_text().len() <= budget
        };
        if !with_reason(&mut metadata, chars.len()) {
            // The longest prefix that fits: found by halving (the JSON
            // grows with the prefix).
            let (mut fits, mut too_long) = (0, chars.len());
            while too_long - fits > 1 {
                let middle = (fits + too_long) / 2;
                if with_reason(&mut metadata, middle) {
                    fits = middle;
                } else {
                    too_long = middle;
                }
            }
            with_reason(&mut metadata, fits);
        }
        metadata
    }

    /// The attributes of the dead-letter copy of `received`: the producer's
    /// own, of every type, and envmgr's metadata when they leave room for it
    /// (fewer than [`MAX_ATTRIBUTES`]). With ten of the producer's the copy
    /// carries those only, and the reason is in the `dead-lettered` log
    /// line alone.
    pub fn attributes(&self, received: &Received, at_ms: u64) -> Vec<(String, Attribute)> {
        let mut attributes = received.attributes.clone();
        if attributes.len() < MAX_ATTRIBUTES {
            attributes.push((
                METADATA_ATTRIBUTE.to_string(),
                Attribute::text(
                    METADATA_DATA_TYPE,
                    self.metadata(&received.message, at_ms).to_text(),
                ),
            ));
        } else {
            tracing::warn!(
                attributes = attributes.len(),
                "the message has ten attributes of its own: its dead-letter copy has no room \
                 for envmgr's metadata, so the reason is in this log only"
            );
        }
        attributes
    }
}

/// How long a dead letter is kept: SQS's longest retention, set on every
/// dead-letter queue by `init` (SQS's default, 4 days, counted from the
/// original send for a message the redrive policy moved, is too short to
/// notice a weekend's failures); the local queue prunes to the same.
pub const DEAD_LETTER_RETENTION: Duration = Duration::from_secs(14 * 24 * 3_600);

/// The data type of envmgr's metadata attribute.
const METADATA_DATA_TYPE: &str = "String";

/// What a queue holds, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueState {
    /// Ready to be received.
    pub visible: u64,
    /// Received and not yet deleted or made visible again.
    pub in_flight: u64,
    /// Not yet visible: a deferred message (SQS: a delayed copy; local: the
    /// message hidden until its time).
    pub delayed: u64,
    /// Every message in its dead-letter queue.
    pub dead_letters: u64,
    /// How long the oldest message has been on the queue; None where the
    /// queue does not say (SQS's API has no such attribute: CloudWatch's
    /// `ApproximateAgeOfOldestMessage` metric is where it is) or the queue
    /// is empty.
    pub oldest_age: Option<Duration>,
}

/// A message received from a dead-letter queue (by `envmgr dlq`).
#[derive(Clone, Debug)]
pub struct ReceivedDeadLetter {
    /// Its id in the dead-letter queue: the copy's own when envmgr
    /// dead-lettered it, the original's when the redrive policy moved it.
    pub id: String,
    pub receipt: String,
    pub body: String,
    /// The producer's attributes, of every type (envmgr's left out).
    pub attributes: Vec<(String, Attribute)>,
    /// envmgr's metadata attribute, when the message has one (a message
    /// the redrive policy moved may carry a deferral count only).
    pub metadata: Option<Metadata>,
    /// When it was sent: for a copy envmgr made, when it was dead-lettered;
    /// for a message the redrive policy moved, when it was first sent.
    pub sent_at_ms: u64,
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
    /// Put a copy on the dead-letter queue with the producer's attributes
    /// and envmgr's metadata saying why ([`DeadLetter::attributes`]).
    async fn dead_letter(&self, received: &Received, why: &DeadLetter<'_>) -> anyhow::Result<()>;
    /// Put a new message on the queue; returns its id.
    async fn send(&self, body: &str) -> anyhow::Result<String>;
    /// Put a new message with these attributes on the queue (refused past
    /// [`check_size`]); returns its id.
    async fn send_with_attributes(
        &self,
        body: &str,
        attributes: &[(String, Attribute)],
    ) -> anyhow::Result<String>;
    /// Put a received message back for `delay` (at most [`MAX_DELAY`])
    /// without spending its receive budget, its deferral count one higher.
    async fn defer(&self, received: &Received, delay: Duration) -> anyhow::Result<Deferral>;
    /// Up to `max` (at most 10) messages of the dead-letter queue, each
    /// hidden for `hide_for` under a receipt of its own. Empty when none is
    /// visible (SQS: after a one-second long poll, which asks every server).
    async fn receive_dead_letters(
        &self,
        max: usize,
        hide_for: Duration,
    ) -> anyhow::Result<Vec<ReceivedDeadLetter>>;
    /// Make received dead letters visible again at once; returns each
    /// receipt that could not be, with why (that one returns when its
    /// `hide_for` ends).
    async fn release_dead_letters(&self, receipts: &[String]) -> Vec<(String, String)>;
    /// Delete received dead letters; returns each receipt not deleted, with
    /// why.
    async fn delete_dead_letters(&self, receipts: &[String]) -> Vec<(String, String)>;
    /// How many messages the queue and its dead-letter queue hold.
    async fn state(&self) -> anyhow::Result<QueueState>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(producer_attributes: usize) -> Received {
        let attributes: Vec<(String, Attribute)> = (0..producer_attributes)
            .map(|i| (format!("a{i}"), Attribute::text("String", format!("v{i}"))))
            .collect();
        Received {
            message: Message {
                id: "m".into(),
                source_queue: "probot".into(),
                body: "{}".into(),
                attributes: text_attributes(&attributes),
                receive_count: 3,
                sent_at_ms: 0,
                delivery_token: "t".into(),
                deferrals: 2,
            },
            receipt: "r".into(),
            attributes,
            trace_header: None,
        }
    }

    fn why(reason: &str) -> DeadLetter<'_> {
        DeadLetter {
            reason,
            source_queue: "probot",
            logic_version: "abc",
            sent: None,
        }
    }

    fn metadata_of(attributes: &[(String, Attribute)]) -> Option<Metadata> {
        attributes
            .iter()
            .find(|(name, _)| name == METADATA_ATTRIBUTE)
            .map(|(_, attribute)| match &attribute.value {
                AttributeData::Text(text) => Metadata::read(text).expect("envmgr's JSON"),
                AttributeData::Binary(_) => panic!("envmgr's attribute is a String"),
            })
    }

    #[test]
    fn a_sealed_send_time_fits_beside_the_longest_reason() {
        let reason = "é".repeat(5_000);
        let why = DeadLetter {
            sent: Some((1_800_000_000_000, "ab".repeat(32))),
            ..why(&reason)
        };
        let attributes = why.attributes(&received(9), 1_234);
        let metadata = metadata_of(&attributes).expect("envmgr's attribute");
        assert_eq!(metadata.sent_at, Some(1_800_000_000_000));
        let text = metadata.to_text();
        assert!(
            METADATA_ATTRIBUTE.len() + "String".len() + text.len() <= ENVMGR_ATTRIBUTES_RESERVE
        );
    }

    #[test]
    fn nine_producer_attributes_leave_room_for_envmgrs_metadata() {
        let attributes = why("the body is not valid JSON").attributes(&received(9), 1_234);
        assert_eq!(attributes.len(), MAX_ATTRIBUTES);
        for i in 0..9 {
            assert!(attributes.iter().any(|(name, _)| *name == format!("a{i}")));
        }
        let metadata = metadata_of(&attributes).expect("envmgr's attribute");
        assert_eq!(
            metadata,
            Metadata {
                deferrals: 2,
                reason: Some("the body is not valid JSON".into()),
                source_queue: Some("probot".into()),
                message_id: Some("m".into()),
                logic_version: Some("abc".into()),
                receive_count: Some(3),
                dead_lettered_at: Some(1_234),
                sent_at: None,
                sent_at_seal: None,
            }
        );
    }

    #[test]
    fn ten_producer_attributes_leave_no_room_for_envmgrs_metadata() {
        let attributes = why("anything").attributes(&received(10), 1_234);
        assert_eq!(attributes.len(), MAX_ATTRIBUTES);
        assert!(metadata_of(&attributes).is_none());
        assert_eq!(attributes, received(10).attributes);
    }

    #[test]
    fn the_metadata_names_its_fields_in_camel_case() {
        let text = why("r").metadata(&received(0).message, 5).to_text();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "deferrals": 2,
                "reason": "r",
                "sourceQueue": "probot",
                "messageId": "m",
                "logicVersion": "abc",
                "receiveCount": 3,
                "deadLetteredAt": 5,
            })
        );
        // A deferred copy's metadata stays as it was.
        let deferral = Metadata {
            deferrals: 4,
            ..Metadata::default()
        };
        assert_eq!(deferral.to_text(), r#"{"deferrals":4}"#);
        assert_eq!(Metadata::parse(Some(r#"{"deferrals":4}"#)), deferral);
    }

    #[test]
    fn a_long_reason_is_cut_to_4000_characters() {
        let reason = "r".repeat(10_000);
        let metadata = why(&reason).metadata(&received(0).message, 0);
        assert_eq!(metadata.reason.unwrap().chars().count(), MAX_REASON_CHARS);
    }

    #[test]
    fn a_reason_of_wide_characters_is_cut_to_fit_the_reserve() {
        // 4000 four-byte characters and 4000 escaped control characters are
        // each more than the 8 KiB kept free for envmgr's attribute.
        for wide in ["🦀", "\u{1}"] {
            let reason = wide.repeat(MAX_REASON_CHARS);
            let metadata = why(&reason).metadata(&received(0).message, 0);
            let text = metadata.to_text();
            assert!(
                METADATA_ATTRIBUTE.len() + "String".len() + text.len() <= ENVMGR_ATTRIBUTES_RESERVE
            );
            let kept = metadata.reason.unwrap().chars().count();
            assert!(kept > 1_000 && kept < MAX_REASON_CHARS, "{kept}");
        }
    }
}
