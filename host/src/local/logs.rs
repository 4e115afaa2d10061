//! The local backend's records of calls to GitHub's token endpoint,
//! Segment and the Runtime Service (`envmgr show` reads them) are logs:
//! bounded by `[local] retention_days`. Older rows are deleted by `serve`
//! every hour, a thousand at a time so no batch holds the write lock long.
//!
//! Not logs, and never pruned here: the local GitHub's comments,
//! deployments and statuses, which lease items point at.
//!
//! `runtime_requests` and `runtime_deletions` also make the local Runtime
//! Service idempotent (one runtime, one delete per key) and fence older
//! requests: the retention is at least
//! the 14 days a dead letter is kept (`queue::DEAD_LETTER_RETENTION`), so
//! any message that can still come back finds its request.

use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;

use super::{Durability, Store};

/// Each log and the column that says when a row was written (ms).
const LOGS: [(&str, &str); 5] = [
    ("github_tokens", "issued_at_ms"),
    ("analytics_events", "tracked_at_ms"),
    ("runtime_requests", "created_at_ms"),
    ("runtime_deletions", "deleted_at_ms"),
    ("github_deleted_environments", "deleted_at_ms"),
];
/// Rows deleted per write.
const PER_WRITE: i64 = 1_000;
/// How often `serve` prunes.
pub const EVERY: Duration = Duration::from_secs(3_600);

/// Delete every row older than `keep` at `now_ms`; how many went.
pub async fn prune(store: &Store, keep: Duration, now_ms: i64) -> anyhow::Result<usize> {
    let before = now_ms - keep.as_millis() as i64;
    let mut removed = 0;
    for (table, at) in LOGS {
        loop {
            let sql = format!(
                "DELETE FROM {table} WHERE rowid IN
                   (SELECT rowid FROM {table} WHERE {at} < ?1 LIMIT ?2)"
            );
            let went = store
                .write(Durability::SurvivesCrash, move |c| {
                    c.execute(&sql, rusqlite::params![before, PER_WRITE])
                })
                .await
                .with_context(|| format!("pruning {table}"))?;
            removed += went;
            if (went as i64) < PER_WRITE {
                break;
            }
        }
    }
    Ok(removed)
}

/// `serve`'s pruning, every [`EVERY`] from its start, until `stop`.
pub async fn prune_every(store: Store, keep: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        let now = crate::support::now_ms();
        match prune(&store, keep, now).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "local logs pruned"),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "local logs not pruned; trying again later")
            }
        }
        // The tables' time to live rides the same hourly pass.
        match super::expiry::purge(&store, now / 1_000).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "expired items purged"),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "expired items not purged; trying again later")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: i64 = 86_400_000;

    /// Old rows of the three logs go (more than one write's worth), newer
    /// ones stay, and the local GitHub's state is not touched however old.
    #[tokio::test]
    async fn logs_older_than_the_retention_go_and_nothing_else() {
        let dir =
            std::env::temp_dir().join(format!("envmgr-logs-{}", crate::support::random_hex(6)));
        let store = Store::open_dir(&dir).unwrap();
        let now = 100 * DAY_MS;
        let keep = Duration::from_secs(30 * 86_400);
        let old = now - 31 * DAY_MS;
        let kept = now - 29 * DAY_MS;
        store
            .write(Durability::SurvivesCrash, move |c| {
                for i in 0..2_500_i64 {
                    let at = if i < 2_400 { old } else { kept };
                    c.execute(
                        "INSERT INTO github_tokens (installation, repository, issued_at_ms) VALUES (1, 'a/b', ?1)",
                        [at],
                    )?;
                    c.execute(
                        "INSERT INTO analytics_events VALUES (?1, 'e', 'u', '{}', ?2)",
                        rusqlite::params![format!("m{i}"), at],
                    )?;
                    c.execute(
                        "INSERT INTO runtime_requests VALUES (?1, 'r', 'u', '{}', 1, ?2)",
                        rusqlite::params![format!("k{i}"), at],
                    )?;
                    c.execute(
                        "INSERT INTO runtime_deletions VALUES (?1, 'env', 'v', '{}', '[]', ?2)",
                        rusqlite::params![format!("d{i}"), at],
                    )?;
                    c.execute(
                        "INSERT INTO github_deleted_environments VALUES ('a/b', ?1, ?2)",
                        rusqlite::params![format!("preview/{i}"), at],
                    )?;
                }
                c.execute(
                    "INSERT INTO github_comments (repository, issue, body, created_at_ms, updated_at_ms)
                     VALUES ('a/b', 7, 'body', 0, 0)",
                    [],
                )
            })
            .await
            .unwrap();
        assert_eq!(prune(&store, keep, now).await.unwrap(), 5 * 2_400);
        let count = |table: &str| {
            store
                .read(|c| {
                    c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
                        r.get::<_, i64>(0)
                    })
                })
                .unwrap()
        };
        for (table, _) in LOGS {
            assert_eq!(count(table), 100, "{table}");
        }
        assert_eq!(count("github_comments"), 1);
        assert_eq!(prune(&store, keep, now).await.unwrap(), 0);
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
}
