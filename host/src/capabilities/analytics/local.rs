//! Segment recorded in the embedded database: one row per event message id
//! (Segment deduplicates on it too). The consumer's record: it survives a
//! crash of the process ([`Durability::SurvivesCrash`]).

use async_trait::async_trait;
use rusqlite::params;

use super::{Analytics, TrackEvent};
use crate::capabilities::CapResult;
use crate::local::{Durability, Store, unavailable};

pub struct LocalAnalytics {
    store: Store,
}

impl LocalAnalytics {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Every event recorded, in the order tracked (tests).
    pub fn events(&self) -> anyhow::Result<Vec<TrackEvent>> {
        events(&self.store)
    }
}

/// Every recorded event, in the order tracked.
pub fn events(store: &Store) -> anyhow::Result<Vec<TrackEvent>> {
    store.read(|connection| {
        let mut statement = connection.prepare(
            "SELECT event, user_id, properties, message_id FROM analytics_events
             ORDER BY tracked_at_ms, rowid",
        )?;
        statement
            .query_map([], |row| {
                Ok(TrackEvent {
                    event: row.get(0)?,
                    user_id: row.get(1)?,
                    properties_json: row.get(2)?,
                    message_id: row.get(3)?,
                })
            })?
            .collect()
    })
}

#[async_trait]
impl Analytics for LocalAnalytics {
    async fn track(&self, event: &TrackEvent) -> CapResult<()> {
        let event = event.clone();
        let name = event.event.clone();
        let now = self.store.now_ms();
        let added = self
            .store
            .write(Durability::SurvivesCrash, move |connection| {
                connection
                    .prepare_cached(
                        "INSERT OR IGNORE INTO analytics_events
                       (message_id, event, user_id, properties, tracked_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![
                        event.message_id,
                        event.event,
                        event.user_id,
                        event.properties_json,
                        now
                    ])
            })
            .await
            .map_err(unavailable)?;
        if added > 0 {
            tracing::info!(event = %name, "analytics (local): event recorded");
        }
        Ok(())
    }
}
