//! The derived JSON, spelled out: the corpus (`tests/corpus.rs`) holds it to
//! the recordings of earlier hosts byte for byte; these name each rule.

use serde_json::{Value, json};

use super::*;
use crate::bindings::envmgr::environments::dynamodb::{
    AttributeCheck, AttributeValue, Condition, Page, Write, WriteError,
};
use crate::bindings::envmgr::environments::github::{Comment, DeploymentState, DeploymentStatus};
use crate::bindings::envmgr::environments::runtime::Created;
use crate::bindings::{Error, ErrorCode};

/// `value` records as `expected`, is written as the tree's text without
/// building it, and reads back as itself.
fn recorded_as<T: Recordable>(value: T, expected: Value) {
    assert_eq!(value.record(), expected);
    let text = expected.to_string();
    assert_eq!(written(&value), text);
    let back: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        T::replayed(&back).map(|v| v.record()),
        Some(expected),
        "{text}"
    );
}

#[test]
fn records_are_objects_under_the_wit_names() {
    recorded_as(
        Comment {
            id: 7,
            body: "<!-- envmgr -->\nhi".into(),
            html_url: "https://github.com/acme/shop/pull/7#issuecomment-7".into(),
        },
        json!({"id": 7, "body": "<!-- envmgr -->\nhi",
               "html-url": "https://github.com/acme/shop/pull/7#issuecomment-7"}),
    );
    recorded_as(
        Created {
            runtime_id: "rt-1".into(),
            url: None,
        },
        json!({"runtime-id": "rt-1", "url": null}),
    );
}

#[test]
fn cases_are_names_or_objects_of_one_and_enums_names() {
    recorded_as(
        WriteError::ConditionFailed(vec![0, 2]),
        json!({"condition-failed": [0, 2]}),
    );
    recorded_as(
        WriteError::Failed(Error {
            code: ErrorCode::NotFound,
            message: "gone".into(),
            retry_after_ms: Some(1_500),
        }),
        json!({"failed": {"code": "not-found", "message": "gone", "retry-after-ms": 1500}}),
    );
    recorded_as(Condition::ItemAbsent, json!("item-absent"));
    recorded_as(
        Write::Check(
            crate::bindings::envmgr::environments::dynamodb::KeyCondition {
                table: "apps".into(),
                key: vec![("pk".into(), AttributeValue::S("APP#1".into()))],
                condition: Condition::Equals(AttributeCheck {
                    name: "v".into(),
                    value: AttributeValue::N("3".into()),
                }),
            },
        ),
        json!({"check": {"table": "apps", "key": {"pk": {"s": "APP#1"}},
               "condition": {"equals": {"name": "v", "value": {"n": "3"}}}}}),
    );
}

#[test]
fn services_keep_their_spelling() {
    recorded_as(
        vec![DeploymentStatus {
            id: 3,
            state: DeploymentState::InProgress,
            description: "creating".into(),
            environment_url: Some("https://x".into()),
            log_url: None,
        }],
        json!([{"id": 3, "state": "in_progress", "description": "creating",
                "environment-url": "https://x", "log-url": null}]),
    );
    recorded_as(
        Some(vec![
            ("pk".to_string(), AttributeValue::S("ENV#1".into())),
            ("n".to_string(), AttributeValue::N("12.5".into())),
            ("b".to_string(), AttributeValue::B(vec![0, 1, 255])),
            ("flag".to_string(), AttributeValue::Bool(true)),
            ("gone".to_string(), AttributeValue::Null),
            ("ss".to_string(), AttributeValue::Ss(vec!["a".into()])),
            ("bs".to_string(), AttributeValue::Bs(vec![vec![9]])),
            ("m".to_string(), AttributeValue::Json("{\"M\":{}}".into())),
        ]),
        json!({"pk": {"s": "ENV#1"}, "n": {"n": "12.5"}, "b": {"b": "AAH/"},
               "flag": {"bool": true}, "gone": {"null": true}, "ss": {"ss": ["a"]},
               "bs": {"bs": ["CQ=="]}, "m": {"json": "{\"M\":{}}"}}),
    );
    recorded_as(
        Page {
            items: vec![vec![("pk".into(), AttributeValue::S("A".into()))]],
            next: None,
        },
        json!({"items": [{"pk": {"s": "A"}}], "next": null}),
    );
}

#[test]
fn what_is_not_such_a_value_reads_as_none() {
    assert!(Comment::replayed(&json!({"id": 7, "body": "x"})).is_none());
    assert!(ErrorCode::replayed(&json!("teapot")).is_none());
    assert!(WriteError::replayed(&json!({"exploded": 1})).is_none());
    assert!(u8::replayed(&json!(256)).is_none());
}

fn written<T: Recordable>(value: &T) -> String {
    let mut out = Vec::new();
    value.write_json(&mut out);
    String::from_utf8(out).unwrap()
}

/// The text written without a tree is the tree's text, where the tree
/// decides something: an item's attribute named twice (the last is kept,
/// as in a map), escapes, characters beyond ASCII, empty values.
#[test]
fn the_text_written_without_a_tree_is_the_trees() {
    let item: Vec<(String, AttributeValue)> = vec![
        ("sk".into(), AttributeValue::S("first".into())),
        (
            "pk".into(),
            AttributeValue::S("\"quoted\"\\ \u{1}\u{7f} é 🦀 </script>".into()),
        ),
        ("sk".into(), AttributeValue::S("last".into())),
        (
            "sets".into(),
            AttributeValue::Ss(vec!["b".into(), "a".into()]),
        ),
        ("numbers".into(), AttributeValue::Ns(Vec::new())),
        (
            "blobs".into(),
            AttributeValue::Bs(vec![vec![0, 255], Vec::new()]),
        ),
        ("flag".into(), AttributeValue::Bool(false)),
        ("nothing".into(), AttributeValue::Null),
        (
            "json".into(),
            AttributeValue::Json("{\"b\":1,\"a\":[]}".into()),
        ),
        ("count".into(), AttributeValue::N("12.50".into())),
        ("bytes".into(), AttributeValue::B(Vec::new())),
    ];
    let page = Page {
        items: vec![item.clone(), Vec::new()],
        next: Some(item.clone()),
    };
    for (text, tree) in [
        (written(&item), item.record()),
        (written(&page), page.record()),
        (written(&Some(item.clone())), Some(item).record()),
        (
            written(&DeploymentState::InProgress),
            DeploymentState::InProgress.record(),
        ),
    ] {
        assert_eq!(text, tree.to_string());
    }
}
