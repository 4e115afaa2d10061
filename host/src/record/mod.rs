//! Real traffic, kept to try the next logic version on: `serve` records the
//! messages it handles, `envmgr logic replay` runs them through a candidate
//! and the version that handled them, and a shadow version runs beside the
//! active one on live traffic without applying anything.
//!
//! | part | what it does |
//! |---|---|
//! | [`crate::calls::tape`] | one message's calls, clock reads and random bytes as they happen; the same tape answering a replay |
//! | [`store`] | recordings on the deployment's own backend, compressed ([`packed`]), chunked, bounded |
//! | [`handlers`] | which versions handled the recordings still kept (what `logic gc` keeps) |
//! | [`recorder`] | after the ack: a bounded queue to the store (dropping and counting under load), and the shadow runs |
//! | [`replay`] | a recording through two versions in the mock host; identical, differs, fails or not replayable |
//! | [`files`] | recordings as files: `envmgr record export [--scrub]`, `logic replay --from DIR` |
//!
//! A recording holds what the guest saw, after redaction: requests it
//! made, answers it got, sealed values as labels only. It does hold what
//! messages carry (pull-request titles, logins, private repository
//! names): see docs/security.md.

pub mod commands;
pub mod files;
pub mod handlers;
pub mod packed;
pub mod recorder;
pub mod replay;
pub mod store;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bindings::Message;
use crate::calls::tape::Taped;

/// The recording format this host writes; it reads this one only.
pub const FORMAT: u32 = 1;

/// One handled message and every call it made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Recording {
    pub format: u32,
    /// The envmgr build that recorded it.
    pub build: String,
    /// The logic version that handled it (sha256 of the component).
    pub logic: String,
    /// The contract that version was built for.
    pub contract: String,
    /// The logical queue (`probot`, `api`).
    pub queue: String,
    pub message: RecordedMessage,
    /// The operator's config the logic could read.
    pub config: BTreeMap<String, String>,
    pub handled_at_ms: u64,
    /// How the run ended, as logs say it (`done: …`).
    pub outcome: String,
    #[serde(flatten)]
    pub taped: Taped,
}

/// The message as the logic got it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RecordedMessage {
    pub id: String,
    pub source_queue: String,
    pub body: String,
    pub attributes: Vec<(String, String)>,
    pub receive_count: u32,
    pub sent_at_ms: u64,
    pub delivery_token: String,
    pub deferrals: u32,
}

impl From<&Message> for RecordedMessage {
    fn from(m: &Message) -> Self {
        Self {
            id: m.id.clone(),
            source_queue: m.source_queue.clone(),
            body: m.body.clone(),
            attributes: m.attributes.clone(),
            receive_count: m.receive_count,
            sent_at_ms: m.sent_at_ms,
            delivery_token: m.delivery_token.clone(),
            deferrals: m.deferrals,
        }
    }
}

impl RecordedMessage {
    pub fn message(&self) -> Message {
        Message {
            id: self.id.clone(),
            source_queue: self.source_queue.clone(),
            body: self.body.clone(),
            attributes: self.attributes.clone(),
            receive_count: self.receive_count,
            sent_at_ms: self.sent_at_ms,
            delivery_token: self.delivery_token.clone(),
            deferrals: self.deferrals,
        }
    }
}

impl Recording {
    /// What one run left on its tape, as a recording.
    pub fn of(
        logic: &crate::engine::Logic,
        queue: &str,
        message: &Message,
        config: &crate::capabilities::config::Config,
        handled_at_ms: u64,
        outcome: String,
        taped: Taped,
    ) -> Self {
        Self {
            format: FORMAT,
            build: env!("CARGO_PKG_VERSION").to_string(),
            logic: logic.id.clone(),
            contract: logic.contract.to_string(),
            queue: queue.to_string(),
            message: message.into(),
            config: config.values().clone(),
            handled_at_ms,
            outcome,
            taped,
        }
    }

    /// How lists name it: when, which message, which delivery.
    pub fn name(&self) -> String {
        format!("{}#{}", self.message.id, self.message.receive_count)
    }
}
