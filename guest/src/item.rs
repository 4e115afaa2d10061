//! Building and reading DynamoDB items.

use crate::capabilities::{Item, Value};

/// A primary key: every table has string keys `pk` and `sk`.
pub fn key(pk: String, sk: String) -> Item {
    vec![
        ("pk".to_string(), Value::S(pk)),
        ("sk".to_string(), Value::S(sk)),
    ]
}

pub fn s(name: &str, value: &str) -> (String, Value) {
    (name.to_string(), Value::S(value.to_string()))
}

pub fn b(name: &str, value: &[u8]) -> (String, Value) {
    (name.to_string(), Value::B(value.to_vec()))
}

pub fn n(name: &str, value: u64) -> (String, Value) {
    (name.to_string(), Value::N(value.to_string()))
}

/// The attribute `name` of an item, of whatever type, if present.
pub fn get<'a>(item: &'a Item, name: &str) -> Option<&'a Value> {
    item.iter().find_map(|(k, v)| (k == name).then_some(v))
}

/// The string attribute `name` of an item, if present.
pub fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.iter().find_map(|(k, v)| match v {
        Value::S(s) if k == name => Some(s.as_str()),
        _ => None,
    })
}

/// The binary attribute `name` of an item, if present.
pub fn get_b<'a>(item: &'a Item, name: &str) -> Option<&'a [u8]> {
    item.iter().find_map(|(k, v)| match v {
        Value::B(b) if k == name => Some(b.as_slice()),
        _ => None,
    })
}

/// The number attribute `name` of an item, if present and an integer.
pub fn get_u64(item: &Item, name: &str) -> Option<u64> {
    item.iter().find_map(|(k, v)| match v {
        Value::N(n) if k == name => n.parse().ok(),
        _ => None,
    })
}
