//! An item as the database file holds it: DynamoDB JSON
//! (`{"pk":{"S":"..."},"n":{"N":"1"}}`), attributes in name order, written
//! and read straight from and into the typed item.
//!
//! Every read of the local tables decodes items and every write encodes
//! one: through `serde_json::Value` trees that was a tree built and freed
//! per item both ways, about 5 % of a busy `serve`'s samples
//! (docs/performance.md). The text is the one the trees wrote (compact,
//! names in order, a name given twice keeping its last value), so files
//! written before read the same and the same item is stored the same.
//! Nested maps and lists (`M`, `L`) are DynamoDB JSON already: they still
//! pass through a tree, to be kept in the same canonical form.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::bindings::json::{write_named, write_str};
use crate::capabilities::dynamodb::{AttributeValue, Item};
use crate::capabilities::{CapResult, ErrorCode, error};

/// The item's text: its attributes by name, the last of a name given twice.
pub fn encode(item: &Item) -> CapResult<String> {
    let mut out = Vec::with_capacity(256);
    write_named(item, &mut out, encode_value)?;
    Ok(String::from_utf8(out).expect("JSON written from text is text"))
}

fn encode_value(value: &AttributeValue, out: &mut Vec<u8>) -> CapResult<()> {
    let tagged = |tag: &[u8], out: &mut Vec<u8>, inner: &dyn Fn(&mut Vec<u8>)| {
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(tag);
        out.extend_from_slice(b"\":");
        inner(out);
        out.push(b'}');
    };
    match value {
        AttributeValue::S(s) => tagged(b"S", out, &|out| write_str(s, out)),
        AttributeValue::N(n) => tagged(b"N", out, &|out| write_str(n, out)),
        AttributeValue::B(b) => tagged(b"B", out, &|out| write_str(&BASE64.encode(b), out)),
        AttributeValue::Bool(b) => tagged(b"BOOL", out, &|out| {
            out.extend_from_slice(if *b { b"true" } else { b"false" })
        }),
        AttributeValue::Null => out.extend_from_slice(br#"{"NULL":true}"#),
        AttributeValue::Ss(v) => tagged(b"SS", out, &|out| strings(v.iter(), out)),
        AttributeValue::Ns(v) => tagged(b"NS", out, &|out| strings(v.iter(), out)),
        AttributeValue::Bs(v) => tagged(b"BS", out, &|out| {
            strings(v.iter().map(|b| BASE64.encode(b)), out)
        }),
        AttributeValue::Json(text) => {
            let tree: Value = serde_json::from_str(text).map_err(|e| {
                error(
                    ErrorCode::Invalid,
                    format!("attribute JSON is not JSON: {e}"),
                )
            })?;
            serde_json::to_writer(out, &tree).expect("JSON to memory");
        }
    }
    Ok(())
}

/// A list of texts as a JSON array (a string set, a number set, a binary
/// set's base64), each borrowed where it can be.
fn strings<S: AsRef<str>>(list: impl Iterator<Item = S>, out: &mut Vec<u8>) {
    out.push(b'[');
    for (i, text) in list.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(text.as_ref(), out);
    }
    out.push(b']');
}

/// The item the text holds: keys first, then the other attributes by name
/// (like the AWS backend).
pub fn decode(text: &str) -> CapResult<Item> {
    let corrupt = |e: serde_json::Error| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "an item is not DynamoDB JSON",
            _ => "an item is not JSON",
        };
        error(ErrorCode::Unavailable, format!("local database: {what}"))
    };
    let mut item = serde_json::Deserializer::from_str(text)
        .deserialize_map(ItemVisitor)
        .map_err(corrupt)?;
    let rank = |n: &str| match n {
        "pk" => 0,
        "sk" => 1,
        _ => 2,
    };
    // Stable: of a name given twice, the later stays last, and is kept.
    item.sort_by(|(a, _), (b, _)| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    let mut kept = Vec::with_capacity(item.len());
    let mut attributes = item.into_iter().peekable();
    while let Some(attribute) = attributes.next() {
        if attributes.peek().is_none_or(|next| next.0 != attribute.0) {
            kept.push(attribute);
        }
    }
    Ok(kept)
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an item: an object of attributes")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
        let mut item = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            let Attribute(value) = map.next_value()?;
            item.push((name, value));
        }
        Ok(item)
    }
}

/// One attribute: an object of one type tag.
struct Attribute(AttributeValue);

impl<'de> serde::Deserialize<'de> for Attribute {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(AttributeVisitor)
            .map(Attribute)
    }
}

struct AttributeVisitor;

impl<'de> Visitor<'de> for AttributeVisitor {
    type Value = AttributeValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an attribute: an object of one DynamoDB type tag")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AttributeValue, A::Error> {
        let not_dynamodb = || de::Error::custom("an attribute is not DynamoDB JSON");
        let tag: String = map.next_key()?.ok_or_else(not_dynamodb)?;
        let bytes = |text: String| BASE64.decode(text).map_err(|_| not_dynamodb());
        let value = match tag.as_str() {
            "S" => AttributeValue::S(map.next_value()?),
            "N" => AttributeValue::N(map.next_value()?),
            "B" => AttributeValue::B(bytes(map.next_value()?)?),
            "BOOL" => AttributeValue::Bool(map.next_value()?),
            "NULL" => {
                map.next_value::<IgnoredAny>()?;
                AttributeValue::Null
            }
            "SS" => AttributeValue::Ss(map.next_value()?),
            "NS" => AttributeValue::Ns(map.next_value()?),
            "BS" => AttributeValue::Bs(
                map.next_value::<Vec<String>>()?
                    .into_iter()
                    .map(bytes)
                    .collect::<Result<_, _>>()?,
            ),
            "M" | "L" => {
                let inner: Value = map.next_value()?;
                let mut tree = serde_json::Map::new();
                tree.insert(tag, inner);
                AttributeValue::Json(Value::Object(tree).to_string())
            }
            _ => return Err(not_dynamodb()),
        };
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(not_dynamodb());
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests;
