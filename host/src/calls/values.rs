//! WIT values as the recording writes them: typed JSON that reads back into
//! the same values. Records are objects with the WIT's field names, variants
//! `{"case": payload}`, bytes base64, an item an object of attribute names
//! (DynamoDB keeps no order among them either). A sealed value is written
//! as `{"sealed": true}`: what the guest saw of it is a handle, never the
//! plaintext, so neither is the recording.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::bindings::envmgr::environments::dynamodb::{
    AttributeCheck, AttributeValue, Condition, KeyCondition, Page, PutItem, QueryRequest,
    UpdateItem, Write, WriteError,
};
use crate::bindings::envmgr::environments::github::{
    Comment, Deployment, DeploymentState, DeploymentStatus, NewDeployment, NewDeploymentStatus,
    Repository,
};
use crate::bindings::envmgr::environments::runtime::Created;
use crate::capabilities::github::{state_name, state_named};
use crate::capabilities::{Error, ErrorCode, code_name};

/// A value the recording can hold and give back.
pub trait Recordable: Sized {
    fn record(&self) -> Value;
    /// None when the JSON is not such a value (a recording of another
    /// format, or edited by hand).
    fn replayed(value: &Value) -> Option<Self>;
}

fn text(value: &Value, field: &str) -> Option<String> {
    value.get(field)?.as_str().map(str::to_string)
}

fn number(value: &Value, field: &str) -> Option<u64> {
    value.get(field)?.as_u64()
}

fn optional_text(value: &Value, field: &str) -> Option<Option<String>> {
    match value.get(field) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => None,
    }
}

impl Recordable for () {
    fn record(&self) -> Value {
        Value::Null
    }
    fn replayed(_: &Value) -> Option<Self> {
        Some(())
    }
}

impl Recordable for String {
    fn record(&self) -> Value {
        Value::String(self.clone())
    }
    fn replayed(value: &Value) -> Option<Self> {
        value.as_str().map(str::to_string)
    }
}

impl<T: Recordable> Recordable for Vec<T> {
    fn record(&self) -> Value {
        Value::Array(self.iter().map(Recordable::record).collect())
    }
    fn replayed(value: &Value) -> Option<Self> {
        value.as_array()?.iter().map(T::replayed).collect()
    }
}

impl Recordable for Error {
    fn record(&self) -> Value {
        object([
            ("code", text_value(code_name(self.code))),
            ("message", text_value(&self.message)),
            (
                "retry-after-ms",
                self.retry_after_ms.map_or(Value::Null, Value::from),
            ),
        ])
    }
    fn replayed(value: &Value) -> Option<Self> {
        let code = match value.get("code")?.as_str()? {
            "not-found" => ErrorCode::NotFound,
            "denied" => ErrorCode::Denied,
            "invalid" => ErrorCode::Invalid,
            "conflict" => ErrorCode::Conflict,
            "throttled" => ErrorCode::Throttled,
            "unavailable" => ErrorCode::Unavailable,
            _ => return None,
        };
        Some(Error {
            code,
            message: text(value, "message")?,
            retry_after_ms: number(value, "retry-after-ms"),
        })
    }
}

impl Recordable for WriteError {
    fn record(&self) -> Value {
        match self {
            WriteError::ConditionFailed(indices) => object([(
                "condition-failed",
                Value::Array(indices.iter().map(|&i| Value::from(i)).collect()),
            )]),
            WriteError::Failed(error) => object([("failed", error.record())]),
        }
    }
    fn replayed(value: &Value) -> Option<Self> {
        if let Some(indices) = value.get("condition-failed") {
            let indices = indices
                .as_array()?
                .iter()
                .map(|i| i.as_u64().and_then(|i| u32::try_from(i).ok()))
                .collect::<Option<Vec<u32>>>()?;
            return Some(WriteError::ConditionFailed(indices));
        }
        Error::replayed(value.get("failed")?).map(WriteError::Failed)
    }
}

pub fn repository(repo: &Repository) -> Value {
    object([
        ("owner", text_value(&repo.owner)),
        ("name", text_value(&repo.name)),
    ])
}

impl Recordable for Comment {
    fn record(&self) -> Value {
        object([
            ("id", Value::from(self.id)),
            ("body", text_value(&self.body)),
            ("html-url", text_value(&self.html_url)),
        ])
    }
    fn replayed(value: &Value) -> Option<Self> {
        Some(Comment {
            id: number(value, "id")?,
            body: text(value, "body")?,
            html_url: text(value, "html-url")?,
        })
    }
}

impl Recordable for Deployment {
    fn record(&self) -> Value {
        object([
            ("id", Value::from(self.id)),
            ("sha", text_value(&self.sha)),
            ("environment", text_value(&self.environment)),
            ("task", text_value(&self.task)),
            ("payload-json", text_value(&self.payload_json)),
        ])
    }
    fn replayed(value: &Value) -> Option<Self> {
        Some(Deployment {
            id: number(value, "id")?,
            sha: text(value, "sha")?,
            environment: text(value, "environment")?,
            task: text(value, "task")?,
            payload_json: text(value, "payload-json")?,
        })
    }
}

pub fn new_deployment(deployment: &NewDeployment) -> Value {
    json!({
        "sha": deployment.sha,
        "environment": deployment.environment,
        "task": deployment.task,
        "payload-json": deployment.payload_json,
        "description": deployment.description,
        "transient-environment": deployment.transient_environment,
        "production-environment": deployment.production_environment,
    })
}

fn state(value: &Value) -> Option<DeploymentState> {
    state_named(value.as_str()?)
}

impl Recordable for DeploymentStatus {
    fn record(&self) -> Value {
        let url = |url: &Option<String>| url.as_deref().map_or(Value::Null, text_value);
        object([
            ("id", Value::from(self.id)),
            ("state", text_value(state_name(self.state))),
            ("description", text_value(&self.description)),
            ("environment-url", url(&self.environment_url)),
            ("log-url", url(&self.log_url)),
        ])
    }
    fn replayed(value: &Value) -> Option<Self> {
        Some(DeploymentStatus {
            id: number(value, "id")?,
            state: state(value.get("state")?)?,
            description: text(value, "description")?,
            environment_url: optional_text(value, "environment-url")?,
            log_url: optional_text(value, "log-url")?,
        })
    }
}

pub fn new_deployment_status(status: &NewDeploymentStatus) -> Value {
    json!({
        "state": state_name(status.state),
        "description": status.description,
        "environment-url": status.environment_url,
        "log-url": status.log_url,
    })
}

impl Recordable for Created {
    fn record(&self) -> Value {
        object([
            ("runtime-id", text_value(&self.runtime_id)),
            ("url", self.url.as_deref().map_or(Value::Null, text_value)),
        ])
    }
    fn replayed(value: &Value) -> Option<Self> {
        Some(Created {
            runtime_id: text(value, "runtime-id")?,
            url: optional_text(value, "url")?,
        })
    }
}

fn strings(value: &Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn bytes(value: &Value) -> Option<Vec<u8>> {
    STANDARD.decode(value.as_str()?).ok()
}

pub fn attribute(value: &AttributeValue) -> Value {
    let texts = |texts: &[String]| Value::Array(texts.iter().map(|t| text_value(t)).collect());
    match value {
        AttributeValue::S(s) => object([("s", text_value(s))]),
        AttributeValue::N(n) => object([("n", text_value(n))]),
        AttributeValue::B(b) => object([("b", Value::String(STANDARD.encode(b)))]),
        AttributeValue::Bool(b) => object([("bool", Value::Bool(*b))]),
        AttributeValue::Null => object([("null", Value::Bool(true))]),
        AttributeValue::Ss(ss) => object([("ss", texts(ss))]),
        AttributeValue::Ns(ns) => object([("ns", texts(ns))]),
        AttributeValue::Bs(bs) => object([(
            "bs",
            Value::Array(
                bs.iter()
                    .map(|b| Value::String(STANDARD.encode(b)))
                    .collect(),
            ),
        )]),
        AttributeValue::Json(j) => object([("json", text_value(j))]),
    }
}

fn attribute_replayed(value: &Value) -> Option<AttributeValue> {
    let (case, payload) = value.as_object()?.iter().next()?;
    Some(match case.as_str() {
        "s" => AttributeValue::S(payload.as_str()?.to_string()),
        "n" => AttributeValue::N(payload.as_str()?.to_string()),
        "b" => AttributeValue::B(bytes(payload)?),
        "bool" => AttributeValue::Bool(payload.as_bool()?),
        "null" => AttributeValue::Null,
        "ss" => AttributeValue::Ss(strings(payload)?),
        "ns" => AttributeValue::Ns(strings(payload)?),
        "bs" => AttributeValue::Bs(
            payload
                .as_array()?
                .iter()
                .map(bytes)
                .collect::<Option<_>>()?,
        ),
        "json" => AttributeValue::Json(payload.as_str()?.to_string()),
        _ => return None,
    })
}

/// An item (or a key) as an object of its attributes.
pub fn item(item: &[(String, AttributeValue)]) -> Value {
    Value::Object(
        item.iter()
            .map(|(name, value)| (name.clone(), attribute(value)))
            .collect::<Map<_, _>>(),
    )
}

fn item_replayed(value: &Value) -> Option<Vec<(String, AttributeValue)>> {
    value
        .as_object()?
        .iter()
        .map(|(name, value)| Some((name.clone(), attribute_replayed(value)?)))
        .collect()
}

/// The answer of `dynamodb.get`.
impl Recordable for Option<Vec<(String, AttributeValue)>> {
    fn record(&self) -> Value {
        self.as_deref().map_or(Value::Null, item)
    }
    fn replayed(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            value => item_replayed(value).map(Some),
        }
    }
}

impl Recordable for Page {
    fn record(&self) -> Value {
        object([
            (
                "items",
                Value::Array(self.items.iter().map(|i| item(i)).collect()),
            ),
            ("next", self.next.as_deref().map_or(Value::Null, item)),
        ])
    }
    fn replayed(value: &Value) -> Option<Self> {
        Some(Page {
            items: value
                .get("items")?
                .as_array()?
                .iter()
                .map(item_replayed)
                .collect::<Option<_>>()?,
            next: match value.get("next") {
                None | Some(Value::Null) => None,
                Some(next) => Some(item_replayed(next)?),
            },
        })
    }
}

/// An object of these fields, each moved in: `json!` would copy a nested
/// value (it serialises every field it is given), and the requests of a
/// transaction nest items in writes in a list.
fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(name, value)| (name.to_string(), value))
            .collect(),
    )
}

fn text_value(text: &str) -> Value {
    Value::String(text.to_string())
}

/// A `dynamodb.get` request.
pub fn get(table: &str, key: &[(String, AttributeValue)]) -> Value {
    object([("table", text_value(table)), ("key", item(key))])
}

pub fn query(request: &QueryRequest) -> Value {
    object([
        ("table", text_value(&request.table)),
        ("partition", text_value(&request.partition)),
        (
            "sort-prefix",
            request
                .sort_prefix
                .as_deref()
                .map_or(Value::Null, text_value),
        ),
        ("limit", request.limit.map_or(Value::Null, Value::from)),
        (
            "start-after",
            request.start_after.as_deref().map_or(Value::Null, item),
        ),
    ])
}

fn check(check: &AttributeCheck) -> Value {
    object([
        ("name", text_value(&check.name)),
        ("value", attribute(&check.value)),
    ])
}

fn condition(condition: &Condition) -> Value {
    match condition {
        Condition::None => text_value("none"),
        Condition::ItemAbsent => text_value("item-absent"),
        Condition::ItemPresent => text_value("item-present"),
        Condition::Equals(c) => object([("equals", check(c))]),
        Condition::AbsentOrAtMost(c) => object([("absent-or-at-most", check(c))]),
    }
}

fn key_condition(k: &KeyCondition) -> Value {
    object([
        ("table", text_value(&k.table)),
        ("key", item(&k.key)),
        ("condition", condition(&k.condition)),
    ])
}

pub fn put(p: &PutItem) -> Value {
    object([
        ("table", text_value(&p.table)),
        ("item", item(&p.item)),
        ("condition", condition(&p.condition)),
    ])
}

pub fn update(u: &UpdateItem) -> Value {
    object([
        ("table", text_value(&u.table)),
        ("key", item(&u.key)),
        ("set", item(&u.set)),
        ("condition", condition(&u.condition)),
    ])
}

pub fn write(w: &Write) -> Value {
    match w {
        Write::Put(p) => object([("put", put(p))]),
        Write::Update(u) => object([("update", update(u))]),
        Write::Delete(k) => object([("delete", key_condition(k))]),
        Write::Check(k) => object([("check", key_condition(k))]),
    }
}

pub fn writes(ws: &[Write]) -> Value {
    object([("writes", Value::Array(ws.iter().map(write).collect()))])
}

/// What the guest held of a sealed value was a handle: the recording keeps
/// that there was one, and a replay hands the guest a stand-in.
impl Recordable for crate::redact::Secret {
    fn record(&self) -> serde_json::Value {
        serde_json::json!({ "sealed": true })
    }
    fn replayed(value: &serde_json::Value) -> Option<Self> {
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
        STANDARD.encode(&self.0).into()
    }
    fn replayed(value: &Value) -> Option<Self> {
        STANDARD.decode(value.as_str()?).ok().map(Ciphertext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Recordable>(value: T) {
        let json = value.record();
        let text = json.to_string();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(T::replayed(&back).map(|v| v.record()), Some(json), "{text}");
    }

    #[test]
    fn answers_read_back_as_the_values_they_were() {
        round_trip(Comment {
            id: 7,
            body: "<!-- envmgr -->\nhi".into(),
            html_url: "https://github.com/acme/shop/pull/7#issuecomment-7".into(),
        });
        round_trip(vec![DeploymentStatus {
            id: 3,
            state: DeploymentState::InProgress,
            description: "creating".into(),
            environment_url: Some("https://x".into()),
            log_url: None,
        }]);
        round_trip(Some(vec![
            ("pk".to_string(), AttributeValue::S("ENV#1".into())),
            ("n".to_string(), AttributeValue::N("12.5".into())),
            ("b".to_string(), AttributeValue::B(vec![0, 1, 255])),
            ("flag".to_string(), AttributeValue::Bool(true)),
            ("gone".to_string(), AttributeValue::Null),
            ("ss".to_string(), AttributeValue::Ss(vec!["a".into()])),
            ("bs".to_string(), AttributeValue::Bs(vec![vec![9]])),
            ("m".to_string(), AttributeValue::Json("{\"M\":{}}".into())),
        ]));
        round_trip(WriteError::ConditionFailed(vec![0, 2]));
        round_trip(WriteError::Failed(Error {
            code: ErrorCode::Throttled,
            message: "slow down".into(),
            retry_after_ms: Some(1_500),
        }));
        round_trip(Created {
            runtime_id: "rt-1".into(),
            url: None,
        });
    }
}
