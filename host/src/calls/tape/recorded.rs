//! One call as the recording keeps it: its request and its answer as JSON
//! text, written once.
//!
//! A recorded message makes about 20 calls, and its answers carry whole
//! items. Built as `serde_json::Value` trees and serialised when the
//! recording was stored, each answer was allocated node by node, walked
//! again to be written and freed node by node: 10 % of a busy `serve`'s
//! samples (docs/performance.md). Now an answer is written as text straight
//! from its typed value ([`Recordable::write_json`], the same JSON that
//! [`Recordable::record`] builds: format 1 does not change), checked to be
//! JSON, and kept as that text until the recording is stored. A request
//! is written the same way, field by field
//! ([`Request::write_json`](crate::calls::requests::Request::write_json)).
//!
//! Read back (replay, shadow runs, `record export`), the text is parsed
//! into trees where the replay compares them.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::bindings::json::Recordable;

/// One call as recorded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordedCall {
    /// `interface.function`, as in the WIT.
    pub call: String,
    #[serde(deserialize_with = "text_of_value")]
    pub request: Box<RawValue>,
    /// `{"ok": value}` or `{"err": error}`.
    #[serde(deserialize_with = "text_of_value")]
    pub answer: Box<RawValue>,
}

impl RecordedCall {
    /// A call from trees (tests, and recordings made by hand).
    pub fn new(call: &str, request: &Value, answer: &Value) -> Self {
        Self {
            call: call.to_string(),
            request: text(request),
            answer: text(answer),
        }
    }

    pub fn request(&self) -> Value {
        tree(&self.request)
    }

    pub fn answer(&self) -> Value {
        tree(&self.answer)
    }
}

/// The same call: the same JSON. (Both texts are written compact with keys
/// in order, so equal texts are equal trees and the other way round.)
impl PartialEq for RecordedCall {
    fn eq(&self, other: &Self) -> bool {
        self.call == other.call
            && self.request.get() == other.request.get()
            && self.answer.get() == other.answer.get()
    }
}

/// A result as the tape holds it: `{"ok": value}` or `{"err": error}`,
/// written straight from the typed value.
pub fn answer<T: Recordable, E: Recordable>(result: &Result<T, E>) -> Box<RawValue> {
    let mut out = Vec::with_capacity(256);
    match result {
        Ok(value) => {
            out.extend_from_slice(br#"{"ok":"#);
            value.write_json(&mut out);
        }
        Err(error) => {
            out.extend_from_slice(br#"{"err":"#);
            error.write_json(&mut out);
        }
    }
    out.push(b'}');
    String::from_utf8(out)
        .ok()
        .and_then(|json| RawValue::from_string(json).ok())
        // Never taken while `write_json` keeps to JSON (the unit tests
        // compare it with `record` for every kind of value); if it did
        // not, the tree is the answer.
        .unwrap_or_else(|| text(&tree_answer(result)))
}

fn tree_answer<T: Recordable, E: Recordable>(result: &Result<T, E>) -> Value {
    match result {
        Ok(value) => serde_json::json!({ "ok": value.record() }),
        Err(error) => serde_json::json!({ "err": error.record() }),
    }
}

/// A tree as compact JSON text with its keys in order.
pub fn text(value: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("a JSON tree is JSON")
}

/// A recorded text as a tree (what a replay compares).
pub fn tree(text: &RawValue) -> Value {
    serde_json::from_str(text.get()).expect("a recorded call's JSON")
}

/// A recording is read through a tree (a recorded call sits inside the
/// recording's flattened fields, where serde cannot hand a text over as it
/// was): the tree written again compact and in key order, which is how
/// the recording wrote it.
fn text_of_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Box<RawValue>, D::Error> {
    Value::deserialize(deserializer).map(|value| text(&value))
}
