//! Apps and secrets in the format docs/data-model.md documents, as
//! `add-app`, `set-secret`, the demo and the mock host's seed helpers write
//! them.

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

/// The rules of the documented format (docs/data-model.md, "Rules"), which
/// `add-app` and `set-secret` enforce on write, the logic on read, and
/// `check-data` over what is stored.
pub mod rules {
    use anyhow::bail;

    /// `[A-Za-z0-9_.-]{1,64}`: safe in keys (`APP#{id}`), the comment's
    /// hidden marker, and the Runtime Service contract.
    pub fn app_id(id: &str) -> anyhow::Result<()> {
        let valid = (1..=64).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            bail!("app id `{id}` must be 1 to 64 of letters, digits, `_`, `.` and `-`");
        }
        Ok(())
    }

    /// Not blank, at most 100 characters, no control characters.
    pub fn app_name(name: &str) -> anyhow::Result<()> {
        if name.trim().is_empty()
            || name.chars().count() > 100
            || name.chars().any(char::is_control)
        {
            bail!(
                "app name `{name}` must be 1 to 100 characters, not blank, without control characters"
            );
        }
        Ok(())
    }

    /// `owner/name` as GitHub allows them: the owner 1 to 39 of letters,
    /// digits and `-`; the name 1 to 100 of letters, digits, `-`, `_`, `.`.
    pub fn repository(repository: &str) -> anyhow::Result<()> {
        let valid = match repository.split_once('/') {
            Some((owner, name)) => {
                (1..=39).contains(&owner.len())
                    && owner.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && (1..=100).contains(&name.len())
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            }
            None => false,
        };
        if !valid {
            bail!("repository `{repository}` is not a GitHub owner/name");
        }
        Ok(())
    }

    /// A GitHub login: 1 to 39 of letters, digits and `-`.
    pub fn login(login: &str) -> anyhow::Result<()> {
        if !(1..=39).contains(&login.len())
            || !login.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            bail!("`{login}` is not a GitHub login");
        }
        Ok(())
    }

    /// 1 to 1024 characters, not blank, no control characters.
    pub fn entrypoint(entrypoint: &str) -> anyhow::Result<()> {
        if entrypoint.trim().is_empty()
            || entrypoint.chars().count() > 1_024
            || entrypoint.chars().any(char::is_control)
        {
            bail!(
                "entrypoint `{entrypoint}` must be 1 to 1024 characters without control characters"
            );
        }
        Ok(())
    }

    /// `[A-Za-z_][A-Za-z0-9_]*`, at most 128: usable as the runtime's
    /// environment variable.
    pub fn secret_name(name: &str) -> anyhow::Result<()> {
        let mut chars = name.chars();
        let valid = name.len() <= 128
            && chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            bail!("secret name `{name}` must match [A-Za-z_][A-Za-z0-9_]* (at most 128)");
        }
        Ok(())
    }

    /// `global`, `preview`, `production`, or `environment:env_` + 20 hex
    /// digits (an environment id).
    pub fn scope(scope: &str) -> anyhow::Result<()> {
        let valid = match scope.strip_prefix("environment:") {
            Some(id) => {
                id.len() == 24
                    && id.starts_with("env_")
                    && id[4..]
                        .chars()
                        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
            }
            None => matches!(scope, "global" | "preview" | "production"),
        };
        if !valid {
            bail!(
                "scope `{scope}` is not global, preview, production or environment:env_<20 hex digits>"
            );
        }
        Ok(())
    }

    /// No KMS (nor envmgr's local key) makes a ciphertext shorter; AWS KMS
    /// none longer.
    pub const CIPHERTEXT_BYTES: std::ops::RangeInclusive<usize> = 28..=6_144;
}

/// The app record `APP#{id} / #` and its index item `REPO#{owner/name} / #`.
pub fn app_items(
    app_id: &str,
    name: &str,
    repository: &str,
    entrypoint: Option<&str>,
    trust: &Trust,
) -> anyhow::Result<[Item; 2]> {
    rules::app_id(app_id)?;
    rules::app_name(name)?;
    rules::repository(repository)?;
    if let Some(entrypoint) = entrypoint {
        rules::entrypoint(entrypoint)?;
    }
    for login in &trust.trusted_authors {
        rules::login(login)?;
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
    Ok([record, repository_index(repository, app_id)])
}

/// The index item `REPO#{owner/name lower-cased} / #` naming the app.
pub fn repository_index(repository: &str, app_id: &str) -> Item {
    let mut index = repository_key(repository);
    index.push(("appId".into(), s(app_id)));
    index
}

/// The key of a repository's index item.
pub fn repository_key(repository: &str) -> Item {
    key(format!("REPO#{}", repository.to_ascii_lowercase()), "#")
}

/// The key of an app's record.
pub fn app_key(app_id: &str) -> Item {
    key(format!("APP#{app_id}"), "#")
}

/// Refuse a scope the logic would never read.
pub fn check_scope(scope: &str) -> anyhow::Result<()> {
    rules::scope(scope)
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
