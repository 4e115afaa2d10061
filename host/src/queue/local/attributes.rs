//! How the database keeps a message's attributes (SQS's typed message
//! attributes, and envmgr's metadata among them).

use std::collections::BTreeMap;

use super::super::{Attribute, AttributeData, METADATA_ATTRIBUTE, Metadata};

/// How the database keeps a message's attributes: a JSON object, name →
/// `{"dataType": ..., "text": ...}` or `{"dataType": ..., "base64": ...}`.
/// A plain string value (files from before typed attributes) is a String.
/// Returns the producer's attributes and envmgr's metadata, if there.
pub(super) fn decode_attributes(stored: &str) -> (Vec<(String, Attribute)>, Option<Metadata>) {
    use base64::Engine as _;
    let map: BTreeMap<String, serde_json::Value> = serde_json::from_str(stored).unwrap_or_default();
    let mut metadata = None;
    let mut attributes = Vec::new();
    for (name, value) in map {
        let attribute = match value {
            serde_json::Value::String(text) => Attribute::text("String", text),
            serde_json::Value::Object(fields) => {
                let data_type = fields
                    .get("dataType")
                    .and_then(|t| t.as_str())
                    .unwrap_or("String")
                    .to_string();
                let value = match (fields.get("text"), fields.get("base64")) {
                    (Some(serde_json::Value::String(text)), _) => AttributeData::Text(text.clone()),
                    (_, Some(serde_json::Value::String(encoded))) => AttributeData::Binary(
                        base64::engine::general_purpose::STANDARD
                            .decode(encoded)
                            .unwrap_or_default(),
                    ),
                    _ => continue,
                };
                Attribute { data_type, value }
            }
            _ => continue,
        };
        if name == METADATA_ATTRIBUTE {
            if let AttributeData::Text(text) = &attribute.value {
                metadata = Metadata::read(text);
            }
            continue;
        }
        attributes.push((name, attribute));
    }
    (attributes, metadata)
}

pub(super) fn encode_attributes(attributes: &[(String, Attribute)]) -> String {
    use base64::Engine as _;
    let map: BTreeMap<&str, serde_json::Value> = attributes
        .iter()
        .map(|(name, attribute)| {
            let value = match &attribute.value {
                AttributeData::Text(text) => {
                    serde_json::json!({ "dataType": attribute.data_type, "text": text })
                }
                AttributeData::Binary(blob) => serde_json::json!({
                    "dataType": attribute.data_type,
                    "base64": base64::engine::general_purpose::STANDARD.encode(blob),
                }),
            };
            (name.as_str(), value)
        })
        .collect();
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".to_string())
}
