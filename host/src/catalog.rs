//! Apps and secrets in the format docs/data-model.md documents, as
//! `add-app`, `set-secret`, the demo and the mock host's seed helpers write
//! them.

use anyhow::bail;

use crate::capabilities::dynamodb::{AttributeValue, Condition, Item, PutItem, Write};

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn key(pk: String, sk: &str) -> Item {
    vec![("pk".into(), AttributeValue::S(pk)), ("sk".into(), s(sk))]
}

/// The KMS encryption context a secret of `app_id` is bound to.
pub fn secret_context(app_id: &str, scope: &str, name: &str) -> Vec<(String, String)> {
    vec![
        ("envmgr:app".to_string(), app_id.to_string()),
        ("envmgr:scope".to_string(), scope.to_string()),
        ("envmgr:name".to_string(), name.to_string()),
    ]
}

/// Who may get the app's secrets and a token besides the repository's own
/// branches (docs/data-model.md, "Secrets for forks and untrusted authors").
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// `forkSecrets`: pull requests from forks get them too.
    pub fork_secrets: bool,
    /// `trustedAuthors`: when not empty, only these GitHub logins' pull
    /// requests get them.
    pub trusted_authors: Vec<String>,
}

/// The app record `APP#{id} / #` and its index item `REPO#{owner/name} / #`.
pub fn app_items(
    app_id: &str,
    name: &str,
    repository: &str,
    entrypoint: Option<&str>,
    trust: &Trust,
) -> anyhow::Result<[Item; 2]> {
    let mut parts = repository.split('/');
    let well_formed = matches!((parts.next(), parts.next(), parts.next()),
        (Some(owner), Some(repo), None) if !owner.is_empty() && !repo.is_empty());
    if !well_formed {
        bail!("repository `{repository}` is not of the form owner/name");
    }
    if app_id.is_empty() || app_id.contains('#') {
        bail!("app id `{app_id}` must be non-empty and without `#`");
    }
    let mut record = key(format!("APP#{app_id}"), "#");
    record.extend([
        ("name".into(), s(name)),
        ("repository".into(), s(repository)),
    ]);
    if let Some(entrypoint) = entrypoint {
        record.push(("entrypoint".into(), s(entrypoint)));
    }
    if trust.fork_secrets {
        record.push(("forkSecrets".into(), AttributeValue::Bool(true)));
    }
    if !trust.trusted_authors.is_empty() {
        record.push((
            "trustedAuthors".into(),
            AttributeValue::Ss(trust.trusted_authors.clone()),
        ));
    }
    let mut index = key(format!("REPO#{}", repository.to_ascii_lowercase()), "#");
    index.push(("appId".into(), s(app_id)));
    Ok([record, index])
}

/// Refuse a scope the logic would never read.
pub fn check_scope(scope: &str) -> anyhow::Result<()> {
    let valid = matches!(scope, "global" | "preview" | "production")
        || scope
            .strip_prefix("environment:")
            .is_some_and(|id| !id.is_empty());
    if !valid {
        bail!("scope `{scope}` is not global, preview, production or environment:<id>");
    }
    Ok(())
}

/// The secret item `APP#{id} / SECRET#{scope}#{name}` holding `ciphertext`.
pub fn secret_item(app_id: &str, scope: &str, name: &str, ciphertext: Vec<u8>) -> Item {
    let mut item = key(format!("APP#{app_id}"), &format!("SECRET#{scope}#{name}"));
    item.extend([
        ("name".into(), s(name)),
        ("scope".into(), s(scope)),
        ("ciphertext".into(), AttributeValue::B(ciphertext)),
    ]);
    item
}

/// An unconditional put of `item` into a logical table.
pub fn put(table: &str, item: Item) -> Write {
    Write::Put(PutItem {
        table: table.to_string(),
        item,
        condition: Condition::None,
    })
}
