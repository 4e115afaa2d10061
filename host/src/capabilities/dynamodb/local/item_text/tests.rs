//! The typed codec against the trees it replaced: the same text written,
//! the same item read, the same refusals.

use serde_json::{Value, json};

use super::*;

/// The codec as it was: through `serde_json::Value` trees.
fn tree_encode(item: &Item) -> String {
    let mut object = serde_json::Map::new();
    for (name, value) in item {
        let value = match value {
            AttributeValue::S(s) => json!({ "S": s }),
            AttributeValue::N(n) => json!({ "N": n }),
            AttributeValue::B(b) => json!({ "B": BASE64.encode(b) }),
            AttributeValue::Bool(b) => json!({ "BOOL": b }),
            AttributeValue::Null => json!({ "NULL": true }),
            AttributeValue::Ss(v) => json!({ "SS": v }),
            AttributeValue::Ns(v) => json!({ "NS": v }),
            AttributeValue::Bs(v) => {
                json!({ "BS": v.iter().map(|b| BASE64.encode(b)).collect::<Vec<_>>() })
            }
            AttributeValue::Json(text) => serde_json::from_str(text).unwrap(),
        };
        object.insert(name.clone(), value);
    }
    Value::Object(object).to_string()
}

fn items() -> Vec<Item> {
    let s = |t: &str| AttributeValue::S(t.into());
    vec![
        Vec::new(),
        vec![
            ("version".into(), AttributeValue::N("12.50".into())),
            ("sk".into(), s("#")),
            ("pk".into(), s("ENVIRONMENT#env_1")),
            (
                "title".into(),
                s("\"quoted\" \\ \u{1}\u{7f} é 🦀 </script>\n"),
            ),
            ("key".into(), AttributeValue::B(vec![0, 1, 254, 255])),
            ("empty".into(), AttributeValue::B(Vec::new())),
            ("ready".into(), AttributeValue::Bool(true)),
            ("gone".into(), AttributeValue::Null),
            (
                "tags".into(),
                AttributeValue::Ss(vec!["b".into(), "a".into()]),
            ),
            ("sizes".into(), AttributeValue::Ns(Vec::new())),
            (
                "blobs".into(),
                AttributeValue::Bs(vec![vec![9], Vec::new()]),
            ),
            (
                "config".into(),
                AttributeValue::Json(
                    r#"{ "M": {"z": {"S": "1"}, "a": {"L": [ {"N": "2"} ]}} }"#.into(),
                ),
            ),
            ("list".into(), AttributeValue::Json(r#"{"L":[]}"#.into())),
        ],
        // A name given twice: the last value is the item's.
        vec![
            ("a".into(), s("first")),
            ("b".into(), s("b")),
            ("a".into(), s("last")),
        ],
    ]
}

#[test]
fn an_item_is_written_as_the_trees_wrote_it_and_reads_back() {
    for item in items() {
        let text = encode(&item).unwrap();
        assert_eq!(text, tree_encode(&item));
        let back = decode(&text).unwrap();
        assert_eq!(encode(&back).unwrap(), text, "{text}");
        let names: Vec<&str> = back.iter().map(|(n, _)| n.as_str()).collect();
        let mut expected: Vec<&str> = names.clone();
        expected.sort_by_key(|n| (!matches!(*n, "pk"), !matches!(*n, "sk"), *n));
        assert_eq!(names, expected, "keys first, then by name");
    }
}

#[test]
fn a_text_in_another_layout_reads_as_its_item() {
    let item = decode(
        r##"{ "title": {"S": "t"}, "sk": {"S": "#"}, "pk" : {"S":"P"},
             "title": {"S": "again"}, "m": {"M": {"b": {"N": "1"}, "a": {"NULL": true}}},
             "n": {"NULL": false} }"##,
    )
    .unwrap();
    let expected: Item = vec![
        ("pk".into(), AttributeValue::S("P".into())),
        ("sk".into(), AttributeValue::S("#".into())),
        (
            "m".into(),
            AttributeValue::Json(r#"{"M":{"a":{"NULL":true},"b":{"N":"1"}}}"#.into()),
        ),
        ("n".into(), AttributeValue::Null),
        ("title".into(), AttributeValue::S("again".into())),
    ];
    // (No equality on the WIT's types: compared as what the recording
    // writes of them, which keeps their order.)
    use crate::bindings::json::Recordable as _;
    let listed = |item: &Item| Value::Array(item.iter().map(|a| a.record()).collect());
    assert_eq!(listed(&item), listed(&expected));
}

#[test]
fn what_is_not_an_item_is_refused_as_the_database_being_wrong() {
    for (text, says) in [
        ("{", "an item is not JSON"),
        ("[]", "an item is not DynamoDB JSON"),
        (r#"{"a": "plain"}"#, "an item is not DynamoDB JSON"),
        (r#"{"a": {}}"#, "an item is not DynamoDB JSON"),
        (
            r#"{"a": {"S": "x", "N": "1"}}"#,
            "an item is not DynamoDB JSON",
        ),
        (r#"{"a": {"X": "x"}}"#, "an item is not DynamoDB JSON"),
        (r#"{"a": {"S": 1}}"#, "an item is not DynamoDB JSON"),
        (
            r#"{"a": {"B": "not base64!"}}"#,
            "an item is not DynamoDB JSON",
        ),
    ] {
        let refused = decode(text).unwrap_err();
        assert_eq!(refused.code, ErrorCode::Unavailable, "{text}");
        assert!(
            refused.message.ends_with(says),
            "{text}: {}",
            refused.message
        );
    }
    let json = vec![("a".into(), AttributeValue::Json("{not json".into()))];
    assert_eq!(encode(&json).unwrap_err().code, ErrorCode::Invalid);
}
