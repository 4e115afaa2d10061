//! The queues envmgr consumes: each logical queue (the message's source,
//! `probot` and `api` by default) with its SQS queue and how it is
//! consumed. A `[queues.NAME]` section in the file or an
//! `ENVMGR__QUEUES__NAME__KEY` variable refines the default queue of that
//! name rather than replacing the defaults.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::bail;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Queue {
    /// The SQS queue name.
    pub name: String,
    /// Its dead-letter queue; `{name}-dlq` when unset.
    pub dead_letter: Option<String>,
    /// Messages handled at once from this queue (no receive while full).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Long-poll wait, 0 to 20 seconds.
    #[serde(default = "default_wait")]
    pub wait_seconds: i32,
    /// How long a received message stays hidden; extended while it runs.
    #[serde(default = "default_visibility")]
    pub visibility_timeout_seconds: i32,
    /// Deliveries before SQS moves a message to the dead-letter queue.
    #[serde(default = "default_max_receive")]
    pub max_receive_count: u32,
    /// Retry backoff: base × 2^(receive count − 1), capped.
    #[serde(default = "default_backoff_base")]
    pub backoff_base_seconds: u32,
    #[serde(default = "default_backoff_max")]
    pub backoff_max_seconds: u32,
    /// How often a message may wait for an environment another delivery
    /// holds before the wait counts as a failed try.
    #[serde(default = "default_max_deferrals")]
    pub max_deferrals: u32,
    /// The queue's `MaximumMessageSize` (body and attributes), set by
    /// `init`; `send` refuses a message that would not leave room for the
    /// dead-letter attributes within it.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u32,
}

impl Queue {
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            dead_letter: None,
            max_in_flight: default_in_flight(),
            wait_seconds: default_wait(),
            visibility_timeout_seconds: default_visibility(),
            max_receive_count: default_max_receive(),
            backoff_base_seconds: default_backoff_base(),
            backoff_max_seconds: default_backoff_max(),
            max_deferrals: default_max_deferrals(),
            max_message_bytes: default_max_message_bytes(),
        }
    }

    pub fn dead_letter_name(&self) -> String {
        self.dead_letter
            .clone()
            .unwrap_or_else(|| format!("{}-dlq", self.name))
    }

    /// How long a failed message stays invisible before its next try.
    pub fn backoff(&self, receive_count: u32) -> Duration {
        let exponent = receive_count.saturating_sub(1).min(16);
        let seconds = u64::from(self.backoff_base_seconds).saturating_mul(1 << exponent);
        Duration::from_secs(seconds.min(u64::from(self.backoff_max_seconds)))
    }
}

pub(super) fn default_queues() -> BTreeMap<String, Queue> {
    [
        ("probot".to_string(), Queue::named("envmgr-probot")),
        ("api".to_string(), Queue::named("envmgr-api")),
    ]
    .into()
}

fn default_in_flight() -> usize {
    10
}
fn default_wait() -> i32 {
    20
}
fn default_visibility() -> i32 {
    90
}
fn default_max_receive() -> u32 {
    5
}
fn default_backoff_base() -> u32 {
    2
}
fn default_backoff_max() -> u32 {
    300
}
fn default_max_deferrals() -> u32 {
    30
}
fn default_max_message_bytes() -> u32 {
    256 << 10
}

/// Each `[queues.NAME]` merged over the default queue of that name (a new
/// name's queue is called `envmgr-NAME` unless it says otherwise); a queue
/// with `enabled = false` is left out.
pub(super) fn merge_queues(table: &mut toml::Table) -> anyhow::Result<()> {
    let given = match table.remove("queues") {
        Some(toml::Value::Table(given)) => given,
        Some(_) => bail!("config key `queues`: a table of queues"),
        None => toml::Table::new(),
    };
    let mut queues = toml::Table::new();
    for (logical, queue) in default_queues() {
        let mut entry = toml::Table::new();
        entry.insert("name".into(), toml::Value::String(queue.name));
        queues.insert(logical, toml::Value::Table(entry));
    }
    for (logical, value) in given {
        let toml::Value::Table(keys) = value else {
            bail!("config key `queues.{logical}`: a table of the queue's settings");
        };
        let entry = queues
            .entry(logical.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("made a table");
        entry
            .entry("name")
            .or_insert_with(|| toml::Value::String(format!("envmgr-{logical}")));
        entry.extend(keys);
    }
    let mut disabled = Vec::new();
    for (logical, queue) in queues.iter_mut() {
        let entry = queue.as_table_mut().expect("made a table");
        match entry.remove("enabled") {
            None | Some(toml::Value::Boolean(true)) => {}
            Some(toml::Value::Boolean(false)) => disabled.push(logical.clone()),
            Some(_) => bail!("config key `queues.{logical}.enabled`: true or false"),
        }
    }
    for logical in disabled {
        queues.remove(&logical);
    }
    table.insert("queues".into(), toml::Value::Table(queues));
    Ok(())
}
