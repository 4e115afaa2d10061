//! Writes as DynamoDB runs them — all conditions checked first, then all
//! writes or none — for the backend that runs them itself (the embedded
//! database) over an [`ItemStore`].

use std::collections::HashSet;

use super::condition::holds;
use super::{Condition, Item, UpdateItem, Write, WriteError, primary_key};
use crate::capabilities::{CapResult, ErrorCode, error};

/// DynamoDB's limit on the writes in one transaction.
pub const MAX_TRANSACTION_WRITES: usize = 100;

/// A table's `(pk, sk)`.
pub type Key = (String, String);

/// Item storage inside one atomic unit (a held lock, a SQLite transaction).
/// Table names are logical; an unknown one is `invalid`.
pub trait ItemStore {
    fn load(&mut self, table: &str, key: &Key) -> CapResult<Option<Item>>;
    fn save(&mut self, table: &str, key: Key, item: Item) -> CapResult<()>;
    fn remove(&mut self, table: &str, key: &Key) -> CapResult<()>;
}

/// The target of one write: table, key, condition.
fn target(write: &Write) -> CapResult<(&str, Key, &Condition)> {
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

/// The item after `update`: the stored one (or the key alone) with the set
/// attributes replaced or added.
fn updated(stored: Option<Item>, update: &UpdateItem) -> Item {
    let mut item = stored.unwrap_or_else(|| update.key.clone());
    for (name, value) in &update.set {
        match item.iter_mut().find(|(n, _)| n == name) {
            Some((_, existing)) => *existing = value.clone(),
            None => item.push((name.clone(), value.clone())),
        }
    }
    item
}

/// TransactWriteItems: `condition-failed` names every write whose condition
/// did not hold, and then nothing is written.
pub fn transact_write(store: &mut impl ItemStore, writes: &[Write]) -> Result<(), WriteError> {
    if writes.is_empty() || writes.len() > MAX_TRANSACTION_WRITES {
        return Err(WriteError::Failed(error(
            ErrorCode::Invalid,
            format!(
                "a transaction holds 1 to {MAX_TRANSACTION_WRITES} writes, not {}",
                writes.len()
            ),
        )));
    }
    let mut seen = HashSet::new();
    let mut refused = Vec::new();
    let mut stored_items = Vec::with_capacity(writes.len());
    for (index, write) in writes.iter().enumerate() {
        let (table, key, condition) = target(write)?;
        if !seen.insert((table.to_string(), key.clone())) {
            return Err(WriteError::Failed(error(
                ErrorCode::Invalid,
                "a transaction cannot include two writes to one item",
            )));
        }
        let stored = store.load(table, &key)?;
        if !holds(condition, stored.as_ref()) {
            refused.push(index as u32);
        }
        stored_items.push(stored);
    }
    if !refused.is_empty() {
        return Err(WriteError::ConditionFailed(refused));
    }
    for (write, stored) in writes.iter().zip(stored_items) {
        let (table, key, _) = target(write)?;
        match write {
            Write::Put(p) => store.save(table, key, p.item.clone())?,
            Write::Update(u) => store.save(table, key, updated(stored, u))?,
            Write::Delete(_) => store.remove(table, &key)?,
            Write::Check(_) => {}
        }
    }
    Ok(())
}

/// UpdateItem: creates the item if absent and the condition allows it.
pub fn update(store: &mut impl ItemStore, request: &UpdateItem) -> Result<(), WriteError> {
    no_empty_set(request)?;
    let key = primary_key(&request.key)?;
    let stored = store.load(&request.table, &key)?;
    if !holds(&request.condition, stored.as_ref()) {
        return Err(WriteError::ConditionFailed(vec![0]));
    }
    store.save(&request.table, key, updated(stored, request))?;
    Ok(())
}
