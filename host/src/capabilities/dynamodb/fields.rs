//! The host's own items (the logic registry, recordings, probes, the
//! operator's commands): one way to write a string or a number attribute and
//! read one back, and to read a whole partition.

use super::{AttributeValue, Item, QueryRequest, Tables};
use crate::capabilities::CapResult;

/// A string attribute.
pub fn s(name: &str, value: impl Into<String>) -> (String, AttributeValue) {
    (name.to_string(), AttributeValue::S(value.into()))
}

/// A number attribute.
pub fn n(name: &str, value: u64) -> (String, AttributeValue) {
    (name.to_string(), AttributeValue::N(value.to_string()))
}

/// The string attribute `name`, if the item has one.
pub fn text(item: &Item, name: &str) -> Option<String> {
    item.iter().find_map(|(n, v)| match v {
        AttributeValue::S(s) if n == name => Some(s.clone()),
        _ => None,
    })
}

/// The number attribute `name`, if the item has one that is a whole number.
pub fn number(item: &Item, name: &str) -> Option<u64> {
    item.iter().find_map(|(n, v)| match v {
        AttributeValue::N(s) if n == name => s.parse().ok(),
        _ => None,
    })
}

/// Every item of one partition, across pages, in sort-key order.
pub async fn partition(tables: &dyn Tables, table: &str, pk: &str) -> CapResult<Vec<Item>> {
    let mut items = Vec::new();
    let mut start_after = None;
    loop {
        let page = tables
            .query(&QueryRequest {
                table: table.into(),
                partition: pk.into(),
                sort_prefix: None,
                limit: None,
                start_after: start_after.take(),
            })
            .await?;
        items.extend(page.items);
        match page.next {
            Some(next) => start_after = Some(next),
            None => return Ok(items),
        }
    }
}
