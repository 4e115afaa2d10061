//! The stack's queues looked into on either backend: depths, dead letters
//! with their attributes, the first message, and a message sent with
//! attributes of any type.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;

use super::{Backend, Stack};

impl Stack {
    /// Messages in a queue (by its full name): visible, in flight or delayed.
    pub async fn messages_in(&self, queue: &str) -> u64 {
        match self.backend {
            Backend::Local => {
                let (visible, in_flight) =
                    envmgr::queue::local::depth(&self.store(), queue).expect("queue depth");
                visible + in_flight
            }
            Backend::Aws => {
                // A deferred message waits as a delayed copy.
                let counts = self
                    .queue_counts(
                        queue,
                        &[
                            QueueAttributeName::ApproximateNumberOfMessages,
                            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                            QueueAttributeName::ApproximateNumberOfMessagesDelayed,
                        ],
                    )
                    .await;
                counts.iter().sum()
            }
        }
    }

    /// Messages in a queue (by its full name): (visible, in flight). A
    /// deferred message (SQS: a delayed copy) counts in neither on SQS and
    /// as in flight locally.
    pub async fn depths(&self, queue: &str) -> (u64, u64) {
        match self.backend {
            Backend::Local => {
                envmgr::queue::local::depth(&self.store(), queue).expect("queue depth")
            }
            Backend::Aws => {
                let counts = self
                    .queue_counts(
                        queue,
                        &[
                            QueueAttributeName::ApproximateNumberOfMessages,
                            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                        ],
                    )
                    .await;
                (counts[0], counts[1])
            }
        }
    }

    /// SQS's counts `names` of a queue (by its full name), in that order.
    async fn queue_counts(&self, queue: &str, names: &[QueueAttributeName]) -> Vec<u64> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk().await);
        let url = self.queue_url(&sqs, queue).await;
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .expect("attributes")
            .attributes
            .unwrap_or_default();
        names
            .iter()
            .map(|name| {
                attributes
                    .get(name)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .collect()
    }

    /// Every message in the dead-letter queue of a logical queue: (body,
    /// attributes): the producer's String and Number attributes, and the
    /// fields of envmgr's metadata attribute flattened as `envmgr.reason`,
    /// `envmgr.sourceQueue`, `envmgr.messageId`, `envmgr.logicVersion`,
    /// `envmgr.receiveCount`, `envmgr.deadLetteredAt`, `envmgr.deferrals`.
    /// Leaves them there.
    pub async fn dead_letters(&self, logical: &str) -> Vec<(String, BTreeMap<String, String>)> {
        let queue = format!("{}-dlq", self.queue_name(logical));
        match self.backend {
            Backend::Local => envmgr::queue::local::messages(&self.store(), &queue)
                .expect("dead letters")
                .into_iter()
                .map(|m| (m.body.clone(), local_dead_letter_attributes(m)))
                .collect(),
            Backend::Aws => {
                let sqs = aws_sdk_sqs::Client::new(&self.sdk().await);
                let url = self.queue_url(&sqs, &queue).await;
                let mut found = BTreeMap::new();
                for _ in 0..5 {
                    let received = sqs
                        .receive_message()
                        .queue_url(&url)
                        .message_attribute_names("All")
                        .max_number_of_messages(10)
                        .visibility_timeout(0)
                        .wait_time_seconds(0)
                        .send()
                        .await
                        .expect("receive from the dead-letter queue");
                    for m in received.messages.unwrap_or_default() {
                        let attributes =
                            sqs_dead_letter_attributes(m.message_attributes.unwrap_or_default());
                        found.insert(
                            m.message_id.unwrap_or_default(),
                            (m.body.unwrap_or_default(), attributes),
                        );
                    }
                }
                found.into_values().collect()
            }
        }
    }

    /// The attributes of the first message in the dead-letter queue of a
    /// logical queue, once there is one (waits up to `limit`), as
    /// [`Stack::dead_letters`] gives them.
    pub async fn dead_letter(&self, logical: &str, limit: Duration) -> BTreeMap<String, String> {
        let queue = format!("{}-dlq", self.queue_name(logical));
        let started = Instant::now();
        loop {
            let found = match self.backend {
                Backend::Local => envmgr::queue::local::messages(&self.store(), &queue)
                    .expect("dead letters")
                    .into_iter()
                    .next()
                    .map(local_dead_letter_attributes),
                Backend::Aws => self
                    .peek_sqs(&queue)
                    .await
                    .map(|m| sqs_dead_letter_attributes(m.message_attributes.unwrap_or_default())),
            };
            if let Some(attributes) = found {
                return attributes;
            }
            assert!(
                started.elapsed() < limit,
                "nothing reached the dead-letter queue"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Put a message with attributes of any type on a logical queue, as a
    /// producer other than `envmgr send` would: with the AWS SDK on moto,
    /// or straight into the local database. Returns its id.
    pub async fn send_with_attributes(
        &self,
        logical: &str,
        body: &str,
        attributes: &[(String, envmgr::queue::Attribute)],
    ) -> String {
        let queue = self.queue_name(logical);
        match self.backend {
            Backend::Local => envmgr::queue::local::enqueue_with_attributes(
                &self.store(),
                &queue,
                body,
                attributes,
            )
            .await
            .expect("enqueue"),
            Backend::Aws => {
                let sqs = aws_sdk_sqs::Client::new(&self.sdk().await);
                let url = self.queue_url(&sqs, &queue).await;
                let mut send = sqs.send_message().queue_url(url).message_body(body);
                for (name, attribute) in attributes {
                    let value = aws_sdk_sqs::types::MessageAttributeValue::builder()
                        .data_type(&attribute.data_type);
                    let value = match &attribute.value {
                        envmgr::queue::AttributeData::Text(text) => value.string_value(text),
                        envmgr::queue::AttributeData::Binary(blob) => {
                            value.binary_value(aws_sdk_sqs::primitives::Blob::new(blob.clone()))
                        }
                    };
                    send = send.message_attributes(name, value.build().expect("data type set"));
                }
                send.send()
                    .await
                    .expect("send with attributes")
                    .message_id
                    .expect("a message id")
            }
        }
    }

    /// The first message on a logical queue, once there is one (waits up to
    /// `limit`): its body and every attribute with its type, sorted by name
    /// (envmgr's own included, under `envmgr`). On SQS this receives it
    /// once (visible again at once), which counts one receive.
    pub async fn first_message(
        &self,
        logical: &str,
        limit: Duration,
    ) -> (String, Vec<(String, envmgr::queue::Attribute)>) {
        use envmgr::queue::{Attribute, AttributeData, METADATA_ATTRIBUTE};
        let queue = self.queue_name(logical);
        let started = Instant::now();
        loop {
            let found = match self.backend {
                Backend::Local => envmgr::queue::local::messages(&self.store(), &queue)
                    .expect("messages")
                    .into_iter()
                    .next()
                    .map(|m| {
                        let mut attributes = m.typed_attributes;
                        if let Some(metadata) = m.metadata {
                            attributes.push((
                                METADATA_ATTRIBUTE.to_string(),
                                Attribute::text("String", metadata.to_text()),
                            ));
                        }
                        (m.body, attributes)
                    }),
                Backend::Aws => self.peek_sqs(&queue).await.map(|m| {
                    let attributes = m
                        .message_attributes
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|(name, v)| {
                            let value = match (v.string_value, v.binary_value) {
                                (Some(text), _) => AttributeData::Text(text),
                                (None, Some(blob)) => AttributeData::Binary(blob.into_inner()),
                                (None, None) => return None,
                            };
                            Some((
                                name,
                                Attribute {
                                    data_type: v.data_type,
                                    value,
                                },
                            ))
                        })
                        .collect();
                    (m.body.unwrap_or_default(), attributes)
                }),
            };
            if let Some((body, mut attributes)) = found {
                attributes.sort_by(|a, b| a.0.cmp(&b.0));
                return (body, attributes);
            }
            assert!(started.elapsed() < limit, "no message on {queue}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The first message of an SQS queue with all its attributes, left
    /// visible for whoever looks next (the receive is counted).
    async fn peek_sqs(&self, queue: &str) -> Option<aws_sdk_sqs::types::Message> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk().await);
        let url = self.queue_url(&sqs, queue).await;
        let received = sqs
            .receive_message()
            .queue_url(&url)
            .message_attribute_names("All")
            .visibility_timeout(0)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        received.messages.unwrap_or_default().into_iter().next()
    }

    async fn queue_url(&self, sqs: &aws_sdk_sqs::Client, queue: &str) -> String {
        sqs.get_queue_url()
            .queue_name(queue)
            .send()
            .await
            .expect("queue url")
            .queue_url
            .expect("a queue url")
    }
}

/// envmgr's metadata JSON flattened into `envmgr.{field}` entries
/// (strings as they are, numbers as digits).
fn flatten_metadata(metadata: serde_json::Value, into: &mut BTreeMap<String, String>) {
    if let serde_json::Value::Object(fields) = metadata {
        for (field, value) in fields {
            let text = match value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            into.insert(format!("envmgr.{field}"), text);
        }
    }
}

/// A local dead letter's String and Number attributes and flattened
/// metadata.
fn local_dead_letter_attributes(
    message: envmgr::queue::local::StoredMessage,
) -> BTreeMap<String, String> {
    let mut attributes = message.attributes;
    if let Some(metadata) = message.metadata {
        flatten_metadata(
            serde_json::to_value(metadata).expect("metadata as JSON"),
            &mut attributes,
        );
    }
    attributes
}

/// An SQS dead letter's String and Number attributes, with envmgr's
/// metadata attribute flattened.
fn sqs_dead_letter_attributes(
    received: std::collections::HashMap<String, aws_sdk_sqs::types::MessageAttributeValue>,
) -> BTreeMap<String, String> {
    let mut attributes = BTreeMap::new();
    for (name, value) in received {
        let Some(text) = value.string_value else {
            continue;
        };
        if name == envmgr::queue::METADATA_ATTRIBUTE {
            let metadata = serde_json::from_str(&text).expect("envmgr's metadata is JSON");
            flatten_metadata(metadata, &mut attributes);
        } else {
            attributes.insert(name, text);
        }
    }
    attributes
}
