//! DynamoDB with logical table names. The key schema belongs to the guest;
//! every table has string keys `pk` and `sk`.

pub mod aws;
pub mod condition;
pub mod fields;
pub mod local;
pub mod transaction;

use async_trait::async_trait;

pub use crate::bindings::envmgr::environments::dynamodb::{
    AttributeCheck, AttributeValue, Condition, Item, KeyCondition, Page, PutItem, QueryRequest,
    UpdateItem, Write, WriteError,
};
use crate::capabilities::{CapResult, ErrorCode, error};

/// A table store (aws-sdk-dynamodb, or the embedded database, in a file or
/// in memory).
#[async_trait]
pub trait Tables: Send + Sync {
    async fn get(&self, table: &str, key: &Item) -> CapResult<Option<Item>>;
    async fn query(&self, request: &QueryRequest) -> CapResult<Page>;
    /// All or nothing; `condition-failed` names the writes whose condition
    /// did not hold.
    async fn transact_write(&self, writes: &[Write]) -> Result<(), WriteError>;
    /// Like DynamoDB's UpdateItem: creates the item if absent and the
    /// condition allows it.
    async fn update(&self, request: &UpdateItem) -> Result<(), WriteError>;
    /// Every item of a table (consistent, across pages). For operators'
    /// commands (`check-data`); never offered to the logic.
    async fn scan_all(&self, table: &str) -> CapResult<Vec<Item>>;
}

/// The `pk` / `sk` strings of a key or item.
pub fn primary_key(item: &Item) -> CapResult<(String, String)> {
    let find = |name: &str| {
        item.iter().find_map(|(n, v)| match v {
            AttributeValue::S(s) if n == name => Some(s.clone()),
            _ => None,
        })
    };
    match (find("pk"), find("sk")) {
        (Some(pk), Some(sk)) => Ok((pk, sk)),
        _ => Err(error(
            ErrorCode::Invalid,
            "a key needs string attributes `pk` and `sk`",
        )),
    }
}

/// How many items a query page holds at most.
pub fn query_limit(request: &QueryRequest) -> usize {
    request.limit.map_or(usize::MAX, |l| l.max(1) as usize)
}

/// A page of query results. Like DynamoDB, a full page says where it ended
/// (its last key), even if nothing follows.
pub fn page(items: Vec<Item>, limit: usize) -> Page {
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
    Page { items, next }
}

/// `{pk=APP#a, sk=#, ciphertext=<32 bytes>}`: short, and never a value's bytes.
pub fn show_item(item: &Item) -> String {
    let fields: Vec<String> = item
        .iter()
        .map(|(name, value)| format!("{name}={}", show_value(value)))
        .collect();
    format!("{{{}}}", fields.join(", "))
}

fn show_value(value: &AttributeValue) -> String {
    match value {
        AttributeValue::S(s) => s.clone(),
        AttributeValue::N(n) => n.clone(),
        AttributeValue::B(b) => format!("<{} bytes>", b.len()),
        AttributeValue::Bool(b) => b.to_string(),
        AttributeValue::Null => "null".to_string(),
        AttributeValue::Ss(v) | AttributeValue::Ns(v) => format!("{v:?}"),
        AttributeValue::Bs(v) => format!("<{} binaries>", v.len()),
        AttributeValue::Json(j) => j.clone(),
    }
}

fn show_condition(condition: &Condition) -> String {
    match condition {
        Condition::None => "always".to_string(),
        Condition::ItemAbsent => "absent".to_string(),
        Condition::ItemPresent => "present".to_string(),
        Condition::Equals(c) => format!("{} = {}", c.name, show_value(&c.value)),
        Condition::AbsentOrAtMost(c) => {
            format!("absent or {} <= {}", c.name, show_value(&c.value))
        }
    }
}

/// The (logical) table a write goes to.
pub fn write_table(write: &Write) -> &str {
    match write {
        Write::Put(p) => &p.table,
        Write::Update(u) => &u.table,
        Write::Delete(d) | Write::Check(d) => &d.table,
    }
}

pub(crate) fn show_write(write: &Write) -> String {
    match write {
        Write::Put(p) => format!(
            "put {} {} if {}",
            p.table,
            show_item(&p.item),
            show_condition(&p.condition)
        ),
        Write::Update(u) => format!(
            "update {} {} set {} if {}",
            u.table,
            show_item(&u.key),
            show_item(&u.set),
            show_condition(&u.condition)
        ),
        Write::Delete(d) => format!(
            "delete {} {} if {}",
            d.table,
            show_item(&d.key),
            show_condition(&d.condition)
        ),
        Write::Check(c) => format!(
            "check {} {} if {}",
            c.table,
            show_item(&c.key),
            show_condition(&c.condition)
        ),
    }
}

/// A query as the transcript shows it.
pub(crate) fn show_query(request: &QueryRequest) -> String {
    format!(
        "{} pk={} sk^={} limit={} after={}",
        request.table,
        request.partition,
        request.sort_prefix.as_deref().unwrap_or(""),
        request
            .limit
            .map_or_else(|| "none".to_string(), |l| l.to_string()),
        request
            .start_after
            .as_ref()
            .map(show_item)
            .unwrap_or_default()
    )
}

/// A transaction as the transcript shows it.
pub(crate) fn show_writes(writes: &[Write]) -> String {
    let writes: Vec<String> = writes.iter().map(show_write).collect();
    format!("[{}]", writes.join("; "))
}

// Our own tables: what comes back is what envmgr (or the operator's tools)
// wrote, never a dependency's echo.
crate::nothing_to_scrub!(Option<Item>, Page);
