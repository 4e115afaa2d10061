//! Apps and secrets written in the documented format (docs/data-model.md),
//! for mock hosts in tests, examples and `envmgr try`.

use crate::capabilities::dynamodb::{AttributeValue, Item};
use crate::mock::MockHost;

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn key(pk: String, sk: String) -> Item {
    vec![
        ("pk".into(), AttributeValue::S(pk)),
        ("sk".into(), AttributeValue::S(sk)),
    ]
}

/// The KMS encryption context a secret of `app_id` is bound to.
pub fn secret_context(app_id: &str, scope: &str, name: &str) -> Vec<(String, String)> {
    vec![
        ("envmgr:app".to_string(), app_id.to_string()),
        ("envmgr:scope".to_string(), scope.to_string()),
        ("envmgr:name".to_string(), name.to_string()),
    ]
}

/// The app record `APP#{id} / #` and its index item `REPO#{owner/name} / #`.
pub fn app(host: &MockHost, app_id: &str, name: &str, repository: &str, entrypoint: &str) {
    let mut record = key(format!("APP#{app_id}"), "#".into());
    record.extend([
        ("name".into(), s(name)),
        ("repository".into(), s(repository)),
        ("entrypoint".into(), s(entrypoint)),
    ]);
    let mut index = key(
        format!("REPO#{}", repository.to_ascii_lowercase()),
        "#".into(),
    );
    index.push(("appId".into(), s(app_id)));
    for item in [record, index] {
        host.tables
            .put("apps", item)
            .expect("the mock has an apps table");
    }
}

/// A secret item holding `ciphertext` (normally from [`secret`]).
pub fn secret_item(host: &MockHost, app_id: &str, scope: &str, name: &str, ciphertext: Vec<u8>) {
    let mut item = key(format!("APP#{app_id}"), format!("SECRET#{scope}#{name}"));
    item.extend([
        ("name".into(), s(name)),
        ("scope".into(), s(scope)),
        ("ciphertext".into(), AttributeValue::B(ciphertext)),
    ]);
    host.tables
        .put("secrets", item)
        .expect("the mock has a secrets table");
}

/// A secret encrypted by the mock KMS under its documented context.
pub fn secret(host: &MockHost, app_id: &str, scope: &str, name: &str, value: &str) {
    let ciphertext = host
        .kms
        .encrypt(value, &secret_context(app_id, scope, name));
    secret_item(host, app_id, scope, name, ciphertext);
}
