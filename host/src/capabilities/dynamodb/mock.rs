//! In-memory tables with DynamoDB's transaction and condition semantics.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::transaction::{self, ItemStore, Key};
use super::{
    Item, Page, QueryRequest, Tables, UpdateItem, Write, WriteError, page, primary_key, query_limit,
};
use crate::capabilities::{CapResult, ErrorCode, error};

type Table = BTreeMap<Key, Item>;

pub struct MockTables {
    tables: Mutex<BTreeMap<String, Table>>,
}

impl MockTables {
    /// Tables with these logical names; any other name is `invalid`, as an
    /// unmapped table would be in production.
    pub fn new(names: &[&str]) -> Self {
        Self {
            tables: Mutex::new(
                names
                    .iter()
                    .map(|n| (n.to_string(), Table::new()))
                    .collect(),
            ),
        }
    }

    /// Store an item unconditionally (seeding).
    pub fn put(&self, table: &str, item: Item) -> CapResult<()> {
        let key = primary_key(&item)?;
        table_mut(&mut self.lock(), table)?.insert(key, item);
        Ok(())
    }

    /// Remove an item unconditionally (an operator's hand edit, in tests).
    pub fn remove(&self, table: &str, key: &Item) -> CapResult<()> {
        let key = primary_key(key)?;
        table_mut(&mut self.lock(), table)?.remove(&key);
        Ok(())
    }

    /// Every item of a table in key order.
    pub fn scan(&self, table: &str) -> Vec<Item> {
        self.lock()
            .get(table)
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Table>> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn table_mut<'a>(tables: &'a mut BTreeMap<String, Table>, name: &str) -> CapResult<&'a mut Table> {
    tables
        .get_mut(name)
        .ok_or_else(|| error(ErrorCode::Invalid, format!("unknown table `{name}`")))
}

/// The locked tables, for one atomic write.
struct Locked<'a>(MutexGuard<'a, BTreeMap<String, Table>>);

impl ItemStore for Locked<'_> {
    fn load(&mut self, table: &str, key: &Key) -> CapResult<Option<Item>> {
        Ok(table_mut(&mut self.0, table)?.get(key).cloned())
    }

    fn save(&mut self, table: &str, key: Key, item: Item) -> CapResult<()> {
        table_mut(&mut self.0, table)?.insert(key, item);
        Ok(())
    }

    fn remove(&mut self, table: &str, key: &Key) -> CapResult<()> {
        table_mut(&mut self.0, table)?.remove(key);
        Ok(())
    }
}

#[async_trait]
impl Tables for MockTables {
    async fn scan_all(&self, table: &str) -> CapResult<Vec<Item>> {
        table_mut(&mut self.lock(), table)?;
        Ok(self.scan(table))
    }

    async fn get(&self, table: &str, key: &Item) -> CapResult<Option<Item>> {
        let key = primary_key(key)?;
        Ok(table_mut(&mut self.lock(), table)?.get(&key).cloned())
    }

    async fn query(&self, request: &QueryRequest) -> CapResult<Page> {
        let mut tables = self.lock();
        let table = table_mut(&mut tables, &request.table)?;
        let prefix = request.sort_prefix.as_deref().unwrap_or("");
        let after = request.start_after.as_ref().map(primary_key).transpose()?;
        let limit = query_limit(request);
        let items: Vec<Item> = table
            .range((request.partition.clone(), String::new())..)
            .take_while(|((pk, _), _)| *pk == request.partition)
            .filter(|((_, sk), _)| sk.starts_with(prefix))
            .filter(|(key, _)| after.as_ref().is_none_or(|after| *key > after))
            .take(limit)
            .map(|(_, item)| item.clone())
            .collect();
        Ok(page(items, limit))
    }

    async fn transact_write(&self, writes: &[Write]) -> Result<(), WriteError> {
        transaction::transact_write(&mut Locked(self.lock()), writes)
    }

    async fn update(&self, request: &UpdateItem) -> Result<(), WriteError> {
        transaction::update(&mut Locked(self.lock()), request)
    }
}
