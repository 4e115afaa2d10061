//! Looking into the local queues without receiving: depths and the
//! messages as stored, for `show`, `demo` and tests.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension as _, params};

use super::super::{Attribute, Metadata};
use super::attributes::decode_attributes;
use crate::local::Store;
use crate::support::now_ms;

/// How many messages a queue holds: (visible, in flight).
pub fn depth(store: &Store, queue: &str) -> anyhow::Result<(u64, u64)> {
    store.read(|connection| {
        let now = now_ms();
        let count = |sql: &str| -> rusqlite::Result<u64> {
            connection
                .query_row(sql, params![queue, now], |row| row.get::<_, i64>(0))
                .optional()
                .map(|n| n.unwrap_or(0) as u64)
        };
        Ok((
            count("SELECT COUNT(*) FROM messages WHERE queue = ?1 AND visible_at_ms <= ?2")?,
            count("SELECT COUNT(*) FROM messages WHERE queue = ?1 AND visible_at_ms > ?2")?,
        ))
    })
}

/// The messages of a queue, as they are (none received).
pub fn messages(store: &Store, queue: &str) -> anyhow::Result<Vec<StoredMessage>> {
    store.read(|connection| {
        let mut statement = connection.prepare(
            "SELECT id, body, attributes, receive_count FROM messages WHERE queue = ?1 ORDER BY seq",
        )?;
        statement
            .query_map([queue], |row| {
                let (typed_attributes, metadata) = decode_attributes(&row.get::<_, String>(2)?);
                Ok(StoredMessage {
                    id: row.get(0)?,
                    body: row.get(1)?,
                    attributes: super::super::text_attributes(&typed_attributes)
                        .into_iter()
                        .collect(),
                    typed_attributes,
                    metadata,
                    receive_count: row.get::<_, i64>(3)? as u32,
                })
            })?
            .collect()
    })
}

/// A message as the database holds it, for `show` and tests.
#[derive(Clone, Debug)]
pub struct StoredMessage {
    pub id: String,
    pub body: String,
    /// The producer's String and Number attributes.
    pub attributes: BTreeMap<String, String>,
    /// The producer's attributes of every type.
    pub typed_attributes: Vec<(String, Attribute)>,
    /// envmgr's metadata attribute, if the message has one.
    pub metadata: Option<Metadata>,
    pub receive_count: u32,
}
