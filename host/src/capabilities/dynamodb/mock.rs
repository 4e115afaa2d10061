//! In-memory tables with DynamoDB's transaction and condition semantics.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::condition::holds;
use super::{Item, Page, QueryRequest, Tables, UpdateItem, Write, WriteError, primary_key};
use crate::capabilities::{CapResult, Error, ErrorCode, error};

type Table = BTreeMap<(String, String), Item>;

/// DynamoDB's limit on the writes in one transaction.
const MAX_TRANSACTION_WRITES: usize = 100;

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

/// The target of one write: table, key, condition.
fn target(write: &Write) -> CapResult<(&str, (String, String), &super::Condition)> {
    if let Write::Update(u) = write {
        no_empty_set(u)?;
    }
    Ok(match write {
        Write::Put(p) => (&p.table, primary_key(&p.item)?, &p.condition),
        Write::Update(u) => (&u.table, primary_key(&u.key)?, &u.condition),
        Write::Delete(d) => (&d.table, primary_key(&d.key)?, &d.condition),
        Write::Check(c) => (&c.table, primary_key(&c.key)?, &c.condition),
    })
}

/// DynamoDB refuses `SET` with nothing to set.
fn no_empty_set(update: &UpdateItem) -> CapResult<()> {
    if update.set.is_empty() {
        Err(error(
            ErrorCode::Invalid,
            "an update must set at least one attribute",
        ))
    } else {
        Ok(())
    }
}

fn apply_update(table: &mut Table, key: (String, String), update: &UpdateItem) {
    let item = table.entry(key).or_insert_with(|| update.key.clone());
    for (name, value) in &update.set {
        match item.iter_mut().find(|(n, _)| n == name) {
            Some((_, existing)) => *existing = value.clone(),
            None => item.push((name.clone(), value.clone())),
        }
    }
}

fn failed(e: Error) -> WriteError {
    WriteError::Failed(e)
}

#[async_trait]
impl Tables for MockTables {
    async fn get(&self, table: &str, key: &Item) -> CapResult<Option<Item>> {
        let key = primary_key(key)?;
        Ok(table_mut(&mut self.lock(), table)?.get(&key).cloned())
    }

    async fn query(&self, request: &QueryRequest) -> CapResult<Page> {
        let mut tables = self.lock();
        let table = table_mut(&mut tables, &request.table)?;
        let prefix = request.sort_prefix.as_deref().unwrap_or("");
        let after = request.start_after.as_ref().map(primary_key).transpose()?;
        let limit = request.limit.map_or(usize::MAX, |l| l.max(1) as usize);
        let items: Vec<Item> = table
            .range((request.partition.clone(), String::new())..)
            .take_while(|((pk, _), _)| *pk == request.partition)
            .filter(|((_, sk), _)| sk.starts_with(prefix))
            .filter(|(key, _)| after.as_ref().is_none_or(|after| *key > after))
            .take(limit)
            .map(|(_, item)| item.clone())
            .collect();
        // Like DynamoDB: a full page says where it ended, even if nothing follows.
        let next = if items.len() == limit {
            items.last().map(|last| {
                last.iter()
                    .filter(|(n, _)| n == "pk" || n == "sk")
                    .cloned()
                    .collect()
            })
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn transact_write(&self, writes: &[Write]) -> Result<(), WriteError> {
        if writes.is_empty() || writes.len() > MAX_TRANSACTION_WRITES {
            return Err(failed(error(
                ErrorCode::Invalid,
                format!(
                    "a transaction holds 1 to {MAX_TRANSACTION_WRITES} writes, not {}",
                    writes.len()
                ),
            )));
        }
        let mut tables = self.lock();
        let mut seen = HashSet::new();
        let mut refused = Vec::new();
        for (index, write) in writes.iter().enumerate() {
            let (table, key, condition) = target(write).map_err(failed)?;
            if !seen.insert((table.to_string(), key.clone())) {
                return Err(failed(error(
                    ErrorCode::Invalid,
                    "a transaction cannot include two writes to one item",
                )));
            }
            let stored = table_mut(&mut tables, table).map_err(failed)?.get(&key);
            if !holds(condition, stored) {
                refused.push(index as u32);
            }
        }
        if !refused.is_empty() {
            return Err(WriteError::ConditionFailed(refused));
        }
        for write in writes {
            let (table, key, _) = target(write).map_err(failed)?;
            let table = table_mut(&mut tables, table).map_err(failed)?;
            match write {
                Write::Put(p) => {
                    table.insert(key, p.item.clone());
                }
                Write::Update(u) => apply_update(table, key, u),
                Write::Delete(_) => {
                    table.remove(&key);
                }
                Write::Check(_) => {}
            }
        }
        Ok(())
    }

    async fn update(&self, request: &UpdateItem) -> Result<(), WriteError> {
        no_empty_set(request).map_err(failed)?;
        let mut tables = self.lock();
        let key = primary_key(&request.key).map_err(failed)?;
        let table = table_mut(&mut tables, &request.table).map_err(failed)?;
        if !holds(&request.condition, table.get(&key)) {
            return Err(WriteError::ConditionFailed(vec![0]));
        }
        apply_update(table, key, request);
        Ok(())
    }
}
