//! DynamoDB's time to live, for the embedded tables: an item whose
//! `purgeAt` (seconds since the epoch, a number) has passed is deleted by
//! `serve`'s hourly pass, a thousand at a time. Only a deleted
//! environment's tombstone has one (docs/data-model.md, "Time to live");
//! as with DynamoDB, deletion is lazy, and a reader that finds a tombstone
//! still there finds it in force.

use anyhow::Context as _;

use super::{Durability, Store};

/// Items deleted per write.
const PER_WRITE: i64 = 1_000;

/// Delete every item whose `purgeAt` is before `now_s`; how many went.
pub async fn purge(store: &Store, now_s: i64) -> anyhow::Result<usize> {
    let mut removed = 0;
    loop {
        let went = store
            .write(Durability::SurvivesCrash, move |c| {
                c.execute(
                    "DELETE FROM items WHERE (tbl, pk, sk) IN (
                       SELECT tbl, pk, sk FROM items
                        WHERE json_extract(item, '$.purgeAt.N') IS NOT NULL
                          AND CAST(json_extract(item, '$.purgeAt.N') AS INTEGER) < ?1
                        LIMIT ?2)",
                    rusqlite::params![now_s, PER_WRITE],
                )
            })
            .await
            .context("purging expired items")?;
        removed += went;
        if (went as i64) < PER_WRITE {
            return Ok(removed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_past_their_purge_at_go_and_nothing_else() {
        let dir =
            std::env::temp_dir().join(format!("envmgr-expiry-{}", crate::support::random_hex(6)));
        let store = Store::open_dir(&dir).unwrap();
        store
            .write(Durability::SurvivesCrash, |c| {
                for (sk, item) in [
                    ("gone", r#"{"purgeAt":{"N":"99"}}"#),
                    ("due-later", r#"{"purgeAt":{"N":"101"}}"#),
                    ("no-ttl", r#"{"expiresAt":{"N":"1"}}"#),
                    ("null", r#"{"purgeAt":{"NULL":true}}"#),
                ] {
                    c.execute(
                        "INSERT INTO items VALUES ('environments', 'ENVIRONMENT#e', ?1, ?2)",
                        [sk, item],
                    )?;
                }
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(purge(&store, 100).await.unwrap(), 1);
        let left: Vec<String> = store
            .read(|c| {
                c.prepare("SELECT sk FROM items ORDER BY sk")?
                    .query_map([], |row| row.get(0))?
                    .collect()
            })
            .unwrap();
        assert_eq!(left, ["due-later", "no-ttl", "null"]);
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
}
