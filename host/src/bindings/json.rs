//! WIT values as the recording writes them (format 1): typed JSON that reads
//! back into the same values. Every record and variant bindgen writes
//! derives [`Recordable`] from its WIT names (`host/derive`); this file
//! holds what the derive builds on: the WIT's primitive types, lists,
//! options, and the values that are not WIT types.
//!
//! Records are objects with the WIT's field names, variants `{"case":
//! payload}` (a case without one its name), bytes base64, an item an object
//! of attribute names (DynamoDB keeps no order among them either). A sealed
//! value is written as `{"sealed": true}`: what the guest saw of it is a
//! handle, never the plaintext, so neither is the recording.
//!
//! The same JSON carries a value from one contract version's types to the
//! other's ([`convert`]): both bindgens derive it from the same names.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use wasmtime::component::Resource;

/// A value the recording can hold and give back.
pub trait Recordable: Sized {
    fn record(&self) -> Value;
    /// None when the JSON is not such a value (a recording of another
    /// format, or edited by hand).
    fn replayed(value: &Value) -> Option<Self>;

    /// A list of these: an array unless the element says otherwise (bytes,
    /// an item's attributes).
    fn record_list(list: &[Self]) -> Value {
        Value::Array(list.iter().map(Self::record).collect())
    }
    fn replayed_list(value: &Value) -> Option<Vec<Self>> {
        value.as_array()?.iter().map(Self::replayed).collect()
    }

    /// The JSON [`record`](Self::record) builds, byte for byte as
    /// `serde_json` writes it (compact, an object's keys in order), written
    /// to `out` without building it (the tape's path: `calls/tape/recorded.rs`).
    fn write_json(&self, out: &mut Vec<u8>) {
        write_tree(&self.record(), out);
    }
    fn write_list(list: &[Self], out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, element) in list.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            element.write_json(out);
        }
        out.push(b']');
    }
}

/// A tree as `serde_json` writes it.
fn write_tree(value: &Value, out: &mut Vec<u8>) {
    serde_json::to_writer(out, value).expect("JSON to memory");
}

/// `text` as a JSON string, escaped as `serde_json` escapes it.
pub fn write_str(text: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(out, text).expect("JSON to memory");
}

/// Named values as the object a map of them makes: names in order, a name
/// given twice with its last value (an item's attributes, as the recording
/// and the local tables write them).
pub fn write_named<V, E>(
    named: &[(String, V)],
    out: &mut Vec<u8>,
    mut write_value: impl FnMut(&V, &mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    let mut sorted: Vec<&(String, V)> = named.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    out.push(b'{');
    let mut first = true;
    for (i, (name, value)) in sorted.iter().map(|a| (&a.0, &a.1)).enumerate() {
        if sorted.get(i + 1).is_some_and(|next| next.0 == *name) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write_str(name, out);
        out.push(b':');
        write_value(value, out)?;
    }
    out.push(b'}');
    Ok(())
}

/// A value a request's field holds, written as the recording writes it.
pub trait Field {
    fn write_field(&self, out: &mut Vec<u8>);
}

impl<T: Recordable> Field for T {
    fn write_field(&self, out: &mut Vec<u8>) {
        self.write_json(out);
    }
}

impl<T: Recordable> Field for [T] {
    fn write_field(&self, out: &mut Vec<u8>) {
        T::write_list(self, out);
    }
}

impl Field for str {
    fn write_field(&self, out: &mut Vec<u8>) {
        write_str(self, out);
    }
}

impl Field for &str {
    fn write_field(&self, out: &mut Vec<u8>) {
        write_str(self, out);
    }
}

/// An object of `fields` given in any order, written as [`Object`] writes
/// it (the names sorted here).
pub fn write_object(fields: &mut [(&'static str, &dyn Field)], out: &mut Vec<u8>) {
    fields.sort_unstable_by_key(|(name, _)| *name);
    let mut object = Object::new(out);
    for (name, value) in fields.iter() {
        object = object.field(name, *value);
    }
    object.end();
}

/// A JSON object written field by field, as `json!` would build it and
/// `serde_json` write it: the caller gives the names in byte order (the
/// order a tree keeps them in; checked in debug builds and tests).
pub struct Object<'a> {
    out: &'a mut Vec<u8>,
    last: Option<&'static str>,
}

impl<'a> Object<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, last: None }
    }

    pub fn field<V: Field + ?Sized>(self, name: &'static str, value: &V) -> Self {
        self.with(name, |out| value.write_field(out))
    }

    /// A field whose value `write` writes.
    pub fn with(mut self, name: &'static str, write: impl FnOnce(&mut Vec<u8>)) -> Self {
        debug_assert!(
            self.last.is_none_or(|last| last < name),
            "`{name}` written after `{:?}`",
            self.last
        );
        if self.last.is_some() {
            self.out.push(b',');
        }
        write_str(name, self.out);
        self.out.push(b':');
        write(self.out);
        self.last = Some(name);
        self
    }

    pub fn end(self) {
        self.out.push(b'}');
    }
}

/// An unsigned number as JSON.
fn write_number(n: u64, out: &mut Vec<u8>) {
    use std::io::Write as _;
    write!(out, "{n}").expect("JSON to memory");
}

/// `value` as the other contract version's type of the same WIT shape.
/// None when the shapes differ (a field one version lacks).
pub fn convert<A: Recordable, B: Recordable>(value: &A) -> Option<B> {
    B::replayed(&value.record())
}

impl Recordable for () {
    fn record(&self) -> Value {
        Value::Null
    }
    fn replayed(_: &Value) -> Option<Self> {
        Some(())
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"null");
    }
}

impl Recordable for String {
    fn record(&self) -> Value {
        Value::String(self.clone())
    }
    fn replayed(value: &Value) -> Option<Self> {
        value.as_str().map(str::to_string)
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        write_str(self, out);
    }
}

impl Recordable for bool {
    fn record(&self) -> Value {
        Value::Bool(*self)
    }
    fn replayed(value: &Value) -> Option<Self> {
        value.as_bool()
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if *self { b"true" } else { b"false" });
    }
}

macro_rules! numbers {
    ($($t:ty),*) => {$(
        impl Recordable for $t {
            fn record(&self) -> Value {
                Value::from(*self)
            }
            fn replayed(value: &Value) -> Option<Self> {
                value.as_u64().and_then(|n| <$t>::try_from(n).ok())
            }
            fn write_json(&self, out: &mut Vec<u8>) {
                write_number(u64::from(*self), out);
            }
        }
    )*};
}
numbers!(u16, u32, u64);

/// A byte is never recorded alone: `list<u8>` is base64.
impl Recordable for u8 {
    fn record(&self) -> Value {
        Value::from(*self)
    }
    fn replayed(value: &Value) -> Option<Self> {
        value.as_u64().and_then(|n| u8::try_from(n).ok())
    }
    fn record_list(list: &[Self]) -> Value {
        Value::String(STANDARD.encode(list))
    }
    fn replayed_list(value: &Value) -> Option<Vec<Self>> {
        STANDARD.decode(value.as_str()?).ok()
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        write_number(u64::from(*self), out);
    }
    /// Base64 needs no escape: the quotes around it make the string.
    fn write_list(list: &[Self], out: &mut Vec<u8>) {
        out.push(b'"');
        out.extend_from_slice(STANDARD.encode(list).as_bytes());
        out.push(b'"');
    }
}

impl<T: Recordable> Recordable for Vec<T> {
    fn record(&self) -> Value {
        T::record_list(self)
    }
    fn replayed(value: &Value) -> Option<Self> {
        T::replayed_list(value)
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        T::write_list(self, out);
    }
}

impl<T: Recordable> Recordable for Option<T> {
    fn record(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::record)
    }
    fn replayed(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            value => T::replayed(value).map(Some),
        }
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Some(value) => value.write_json(out),
            None => out.extend_from_slice(b"null"),
        }
    }
}

/// A pair (`list<tuple<string, string>>`: a message's attributes, an
/// encryption context) as a two-element array.
impl Recordable for (String, String) {
    fn record(&self) -> Value {
        Value::Array(vec![self.0.record(), self.1.record()])
    }
    fn replayed(value: &Value) -> Option<Self> {
        match value.as_array()?.as_slice() {
            [name, value] => Some((String::replayed(name)?, String::replayed(value)?)),
            _ => None,
        }
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        write_str(&self.0, out);
        out.push(b',');
        write_str(&self.1, out);
        out.push(b']');
    }
}

/// A handle is never recorded: the boundary records what it stands for (a
/// [`crate::redact::Secret`] as `{"sealed": true}`). The derive needs the
/// impl for the records that carry one (a runtime secret, a signing key).
impl<T: 'static> Recordable for Resource<T> {
    fn record(&self) -> Value {
        serde_json::json!({ "handle": true })
    }
    fn replayed(_: &Value) -> Option<Self> {
        None
    }
}

/// What the guest held of a sealed value was a handle: the recording keeps
/// that there was one, and a replay hands the guest a stand-in.
impl Recordable for crate::redact::Secret {
    fn record(&self) -> Value {
        serde_json::json!({ "sealed": true })
    }
    fn replayed(value: &Value) -> Option<Self> {
        value
            .get("sealed")
            .map(|_| crate::redact::Secret::new("replayed sealed value"))
    }
}

/// A ciphertext KMS made (`keys.generate`'s answer): nothing a dependency
/// could have echoed into it; recorded as base64.
pub struct Ciphertext(pub Vec<u8>);
crate::nothing_to_scrub!(Ciphertext);

impl Recordable for Ciphertext {
    fn record(&self) -> Value {
        self.0.record()
    }
    fn replayed(value: &Value) -> Option<Self> {
        Recordable::replayed(value).map(Ciphertext)
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        self.0.write_json(out);
    }
}

#[cfg(test)]
mod tests;
