//! Tables in the embedded database. Items are stored as DynamoDB JSON under
//! (physical table, pk, sk); a transaction is one job of the store's group
//! commit (a savepoint inside a transaction holding the write lock), so
//! conditions and writes are atomic across processes too, and a refused
//! condition undoes the transaction's writes alone.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension as _, params};

mod item_text;

use super::transaction::{self, ItemStore, Key};
use super::{
    Condition, Item, KeyCondition, Page, PutItem, QueryRequest, Tables, UpdateItem, Write,
    WriteError, page, primary_key, query_limit,
};
use crate::capabilities::{CapResult, ErrorCode, error};
use crate::local::{Durability, Store, unavailable};
use item_text::{decode, encode};

pub struct LocalTables {
    store: Store,
    /// Logical → physical table name (shared with each transaction).
    tables: Arc<BTreeMap<String, String>>,
    /// What its writes survive: admin commands and the logic pointer a
    /// power loss; the consumer's (the logic's items) a crash.
    durability: Durability,
}

impl LocalTables {
    /// Tables whose writes are on the disk before they return (admin
    /// commands, the logic pointer).
    pub fn new<'a>(store: Store, mapping: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            store,
            tables: Arc::new(
                mapping
                    .into_iter()
                    .map(|(logical, physical)| (logical.to_string(), physical.to_string()))
                    .collect(),
            ),
            durability: Durability::SurvivesPowerLoss,
        }
    }

    /// Tables of these logical names (each its own physical one) in a
    /// database of their own, in memory (tests).
    pub fn in_memory(names: &[&str]) -> anyhow::Result<Self> {
        Ok(Self::new(
            Store::in_memory()?,
            names.iter().map(|name| (*name, *name)),
        ))
    }

    /// The same tables with writes of `durability`.
    pub fn with_durability(self, durability: Durability) -> Self {
        Self { durability, ..self }
    }

    /// Store an item unconditionally, here (seeding; an operator's hand
    /// edit, in tests).
    pub fn put(&self, table: &str, item: Item) -> CapResult<()> {
        self.write_now(Write::Put(PutItem {
            table: table.to_string(),
            item,
            condition: Condition::None,
        }))
    }

    /// Remove the item under `key` unconditionally, here (an operator's
    /// hand edit, in tests).
    pub fn remove(&self, table: &str, key: &Item) -> CapResult<()> {
        self.write_now(Write::Delete(KeyCondition {
            table: table.to_string(),
            key: key.clone(),
            condition: Condition::None,
        }))
    }

    fn write_now(&self, write: Write) -> CapResult<()> {
        match futures::executor::block_on(self.transact_write(&[write])) {
            Ok(()) => Ok(()),
            Err(WriteError::Failed(e)) => Err(e),
            Err(WriteError::ConditionFailed(_)) => Err(error(
                ErrorCode::Conflict,
                "an unconditional write was refused",
            )),
        }
    }

    /// Every item of a logical table in key order (for `show` and tests).
    pub fn scan(&self, table: &str) -> anyhow::Result<Vec<Item>> {
        let physical = physical(&self.tables, table)?;
        let texts = self.store.read(|connection| {
            let mut statement =
                connection.prepare("SELECT item FROM items WHERE tbl = ?1 ORDER BY pk, sk")?;
            statement
                .query_map([physical], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        texts
            .iter()
            .map(|text| decode(text).map_err(|e| anyhow::anyhow!(e.message)))
            .collect()
    }
}

fn physical(tables: &BTreeMap<String, String>, logical: &str) -> CapResult<String> {
    tables
        .get(logical)
        .cloned()
        .ok_or_else(|| error(ErrorCode::Invalid, format!("unknown table `{logical}`")))
}

/// A SQLite transaction seen as item storage.
struct InTransaction<'a> {
    tx: &'a Connection,
    tables: &'a BTreeMap<String, String>,
}

impl ItemStore for InTransaction<'_> {
    fn load(&mut self, table: &str, key: &Key) -> CapResult<Option<Item>> {
        let physical = physical(self.tables, table)?;
        let text: Option<String> = self
            .tx
            .prepare_cached("SELECT item FROM items WHERE tbl = ?1 AND pk = ?2 AND sk = ?3")
            .and_then(|mut statement| {
                statement
                    .query_row(params![physical, key.0, key.1], |row| row.get(0))
                    .optional()
            })
            .map_err(unavailable)?;
        text.as_deref().map(decode).transpose()
    }

    fn save(&mut self, table: &str, key: Key, item: Item) -> CapResult<()> {
        let (physical, text) = (physical(self.tables, table)?, encode(&item)?);
        self.tx
            .prepare_cached(
                // In place: the row keeps its place, the key's index is
                // not touched.
                "INSERT INTO items (tbl, pk, sk, item) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tbl, pk, sk) DO UPDATE SET item = excluded.item",
            )
            .and_then(|mut statement| statement.execute(params![physical, key.0, key.1, text]))
            .map(drop)
            .map_err(unavailable)
    }

    fn remove(&mut self, table: &str, key: &Key) -> CapResult<()> {
        let physical = physical(self.tables, table)?;
        self.tx
            .prepare_cached("DELETE FROM items WHERE tbl = ?1 AND pk = ?2 AND sk = ?3")
            .and_then(|mut statement| statement.execute(params![physical, key.0, key.1]))
            .map(drop)
            .map_err(unavailable)
    }
}

impl LocalTables {
    /// Run `work` on the items as one all-or-nothing transaction; an `Err`
    /// undoes it.
    async fn atomically<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: Send + 'static + From<crate::capabilities::Error>,
        F: FnOnce(&mut InTransaction<'_>) -> Result<T, E> + Send + 'static,
    {
        let tables = self.tables.clone();
        let result = self
            .store
            .write_or_undo(self.durability, move |connection| {
                Ok(work(&mut InTransaction {
                    tx: connection,
                    tables: &tables,
                }))
            })
            .await;
        result.unwrap_or_else(|e| Err(E::from(unavailable(e))))
    }
}

#[async_trait]
impl Tables for LocalTables {
    async fn scan_all(&self, table: &str) -> CapResult<Vec<Item>> {
        self.scan(table)
            .map_err(|e| error(ErrorCode::Unavailable, format!("local database: {e:#}")))
    }

    async fn get(&self, table: &str, key: &Item) -> CapResult<Option<Item>> {
        let (pk, sk) = primary_key(key)?;
        let table = physical(&self.tables, table)?;
        let text: Option<String> = self
            .store
            .query(move |connection| {
                connection
                    .prepare_cached(
                        "SELECT item FROM items WHERE tbl = ?1 AND pk = ?2 AND sk = ?3",
                    )?
                    .query_row(params![table, pk, sk], |row| row.get(0))
                    .optional()
            })
            .await
            .map_err(unavailable)?;
        text.as_deref().map(decode).transpose()
    }

    async fn query(&self, request: &QueryRequest) -> CapResult<Page> {
        let table = physical(&self.tables, &request.table)?;
        let partition = request.partition.clone();
        let prefix = request.sort_prefix.clone().unwrap_or_default();
        let after = match &request.start_after {
            Some(key) => Some(primary_key(key)?.1),
            None => None,
        };
        let limit = query_limit(request);
        let texts = self
            .store
            .query(move |connection| {
                let range = SortKeyRange::new(&prefix, after.as_deref());
                let mut statement = connection.prepare_cached(range.sql())?;
                let mut bound: Vec<(&str, &dyn rusqlite::ToSql)> =
                    vec![(":tbl", &table), (":pk", &partition), (":prefix", &prefix)];
                range.bind(&mut bound);
                let limit = limit.min(i64::MAX as usize) as i64;
                bound.push((":limit", &limit));
                statement
                    .query_map(bound.as_slice(), |row| row.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .map_err(unavailable)?;
        let items = texts
            .iter()
            .map(|text| decode(text))
            .collect::<CapResult<Vec<_>>>()?;
        Ok(page(items, limit))
    }

    async fn transact_write(&self, writes: &[Write]) -> Result<(), WriteError> {
        let writes = writes.to_vec();
        self.atomically(move |items| transaction::transact_write(items, &writes))
            .await
    }

    async fn update(&self, request: &UpdateItem) -> Result<(), WriteError> {
        let request = request.clone();
        self.atomically(move |items| transaction::update(items, &request))
            .await
    }
}

/// The sort keys a query reads, as a range of the primary key: SQLite seeks
/// to its start and stops at its end. (A `substr` test alone read every item
/// of the partition, and an app's partition grows with every environment it
/// ever had.) Byte order, SQLite's BINARY collation, as DynamoDB sorts.
struct SortKeyRange<'a> {
    /// Above this key (the previous page's last), or from the prefix.
    after: Option<&'a str>,
    /// Below this: the least byte string above every key with the prefix.
    before: Option<TextBytes>,
}

impl<'a> SortKeyRange<'a> {
    fn new(prefix: &str, after: Option<&'a str>) -> Self {
        Self {
            // A page that ended before the prefix starts at the prefix.
            after: after.filter(|after| *after >= prefix),
            before: past_prefix(prefix),
        }
    }

    /// One of four statements, each parsed once per connection (no text
    /// is built per query).
    fn sql(&self) -> &'static str {
        macro_rules! select {
            ($range:literal) => {
                concat!(
                    "SELECT item FROM items WHERE tbl = :tbl AND pk = :pk AND ",
                    $range,
                    " AND substr(sk, 1, length(:prefix)) = :prefix ORDER BY sk LIMIT :limit"
                )
            };
        }
        match (self.after.is_some(), self.before.is_some()) {
            (false, false) => select!("sk >= :prefix"),
            (false, true) => select!("sk >= :prefix AND sk < :before"),
            (true, false) => select!("sk > :after"),
            (true, true) => select!("sk > :after AND sk < :before"),
        }
    }

    fn bind<'b>(&'b self, bound: &mut Vec<(&'static str, &'b dyn rusqlite::ToSql)>) {
        if let Some(after) = &self.after {
            bound.push((":after", after));
        }
        if let Some(before) = &self.before {
            bound.push((":before", before));
        }
    }
}

/// The least byte string above every string that starts with `prefix`
/// (byte order): the prefix with its last byte raised by one, bytes of 0xFF
/// dropped first; `None` when nothing is above (an empty prefix). Bound as
/// text even where the bytes are not UTF-8 (`"a\u{7f}"` becomes `a` and
/// 0x80): SQLite compares text byte by byte.
fn past_prefix(prefix: &str) -> Option<TextBytes> {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0xFF {
            bytes.push(last + 1);
            return Some(TextBytes(bytes));
        }
    }
    None
}

/// Bytes bound as SQLite text, UTF-8 or not.
struct TextBytes(Vec<u8>);

impl rusqlite::ToSql for TextBytes {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Borrowed(ValueRef::Text(
            &self.0,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::dynamodb::{AttributeCheck, AttributeValue, Condition, PutItem};

    fn item(pk: &str, sk: &str, version: &str) -> Item {
        vec![
            ("pk".into(), AttributeValue::S(pk.into())),
            ("sk".into(), AttributeValue::S(sk.into())),
            ("v".into(), AttributeValue::S(version.into())),
            ("blob".into(), AttributeValue::B(vec![0, 255, 7])),
            (
                "nested".into(),
                AttributeValue::Json(r#"{"M":{"a":{"N":"1"}}}"#.into()),
            ),
        ]
    }

    fn put(item: Item, condition: Condition) -> Write {
        Write::Put(PutItem {
            table: "environments".into(),
            item,
            condition,
        })
    }

    fn tables() -> (LocalTables, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("envmgr-tables-{}", crate::support::random_hex(6)));
        let store = Store::open_dir(&dir).unwrap();
        (LocalTables::new(store, [("environments", "envs")]), dir)
    }

    #[tokio::test]
    async fn a_refused_condition_writes_nothing_and_names_the_write() {
        let (tables, dir) = tables();
        tables
            .transact_write(&[put(item("A", "#", "2"), Condition::ItemAbsent)])
            .await
            .unwrap();
        let at_most_1 = Condition::AbsentOrAtMost(AttributeCheck {
            name: "v".into(),
            value: AttributeValue::S("1".into()),
        });
        let refused = tables
            .transact_write(&[
                put(item("B", "#", "1"), Condition::None),
                put(item("A", "#", "1"), at_most_1),
            ])
            .await
            .unwrap_err();
        assert!(matches!(refused, WriteError::ConditionFailed(ref i) if i == &vec![1]));
        let key = item("B", "#", "")[..2].to_vec();
        assert!(
            tables.get("environments", &key).await.unwrap().is_none(),
            "rolled back"
        );
        let stored = tables
            .get("environments", &item("A", "#", "")[..2].to_vec())
            .await
            .unwrap()
            .unwrap();
        assert!(stored.iter().any(
            |(n, v)| n == "blob" && matches!(v, AttributeValue::B(b) if b == &[0, 255, 7])
        ));
        assert!(stored.iter().any(|(n, v)| n == "nested"
            && matches!(v, AttributeValue::Json(j) if j.contains("\"N\":\"1\""))));
        let _ = std::fs::remove_dir_all(dir);
    }

    /// An item written again is changed where it is: its row stays (so
    /// the key's index is not written), and the new text is what is read.
    #[tokio::test]
    async fn an_item_written_again_keeps_its_row() {
        let (tables, dir) = tables();
        let row = |tables: &LocalTables| -> i64 {
            tables
                .store
                .read(|c| c.query_row("SELECT rowid FROM items WHERE pk = 'A'", [], |r| r.get(0)))
                .unwrap()
        };
        tables
            .transact_write(&[put(item("A", "#", "1"), Condition::None)])
            .await
            .unwrap();
        let first = row(&tables);
        tables
            .transact_write(&[put(item("A", "#", "2"), Condition::None)])
            .await
            .unwrap();
        assert_eq!(row(&tables), first);
        let stored = tables
            .get("environments", &item("A", "#", "")[..2].to_vec())
            .await
            .unwrap()
            .unwrap();
        assert!(
            stored
                .iter()
                .any(|(n, v)| n == "v" && matches!(v, AttributeValue::S(s) if s == "2"))
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_query_pages_by_prefix_in_byte_order() {
        let (tables, dir) = tables();
        for sk in ["SECRET#b", "SECRET#a", "OTHER#x", "SECRET#c"] {
            tables
                .transact_write(&[put(item("APP#1", sk, "1"), Condition::None)])
                .await
                .unwrap();
        }
        let mut request = QueryRequest {
            table: "environments".into(),
            partition: "APP#1".into(),
            sort_prefix: Some("SECRET#".into()),
            limit: Some(2),
            start_after: None,
        };
        let first = tables.query(&request).await.unwrap();
        let sks = |page: &Page| -> Vec<String> {
            page.items
                .iter()
                .map(|i| primary_key(i).unwrap().1)
                .collect()
        };
        assert_eq!(sks(&first), ["SECRET#a", "SECRET#b"]);
        request.start_after = first.next.clone();
        let second = tables.query(&request).await.unwrap();
        assert_eq!(sks(&second), ["SECRET#c"]);
        assert!(second.next.is_none());
        assert!(
            tables
                .get("apps", &item("A", "#", "")[..2].to_vec())
                .await
                .is_err(),
            "unmapped table"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_query_reads_only_its_prefix_whatever_its_last_character() {
        let (tables, dir) = tables();
        // Around each prefix: the keys just below and just above it in byte
        // order, and a prefix ending in the last one-byte character (its
        // bound, `E` and 0x80, is not UTF-8).
        let keys = [
            "ENV\"",
            "ENV#",
            "ENV#a",
            "ENV#\u{10FFFF}",
            "ENV$",
            "ENV#é",
            "ENV#éa",
            "ENV#ê",
            "ENV#\u{7f}",
            "ENV#\u{7f}z",
            "ENV#\u{80}",
        ];
        for sk in keys {
            tables
                .transact_write(&[put(item("APP#1", sk, "1"), Condition::None)])
                .await
                .unwrap();
        }
        let read = |prefix: &str| {
            let request = QueryRequest {
                table: "environments".into(),
                partition: "APP#1".into(),
                sort_prefix: Some(prefix.into()),
                limit: None,
                start_after: None,
            };
            let tables = &tables;
            async move {
                let page = tables.query(&request).await.unwrap();
                page.items
                    .iter()
                    .map(|i| primary_key(i).unwrap().1)
                    .collect::<Vec<_>>()
            }
        };
        let mut expected: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| k.starts_with("ENV#"))
            .collect();
        expected.sort();
        assert_eq!(read("ENV#").await, expected);
        assert_eq!(read("ENV#é").await, ["ENV#é", "ENV#éa"]);
        assert_eq!(read("ENV#\u{7f}").await, ["ENV#\u{7f}", "ENV#\u{7f}z"]);
        assert_eq!(read("").await.len(), keys.len());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_query_seeks_to_its_range_instead_of_reading_the_partition() {
        let connection = Connection::open_in_memory().unwrap();
        crate::local::schema_for_tests(&connection);
        for (prefix, after) in [("ENV#", None), ("ENV#", Some("ENV#b")), ("", Some("A"))] {
            let range = SortKeyRange::new(prefix, after);
            let mut explain = connection
                .prepare(&format!("EXPLAIN QUERY PLAN {}", range.sql()))
                .unwrap();
            let mut rows = explain.raw_query();
            let mut plan = String::new();
            while let Some(row) = rows.next().unwrap() {
                plan.push_str(&row.get::<_, String>(3).unwrap());
            }
            let seek = if prefix.is_empty() {
                "sk>?)"
            } else {
                "sk>? AND sk<?)"
            };
            assert!(plan.contains(seek), "{prefix:?} {after:?}: {plan}");
        }
    }
}
