//! `envmgr check-data`: the stored apps, repository index and secrets
//! against the rules of docs/data-model.md.

use std::collections::BTreeMap;

use crate::capabilities::Describe as _;
use crate::capabilities::dynamodb::fields::text;
use crate::capabilities::dynamodb::{AttributeValue, Item};
use crate::catalog;
use crate::platform::Platform;

/// Every stored app, index and secret item that breaks the rules of
/// docs/data-model.md, one line each: what to fix before an upgrade (a new
/// logic version may read more strictly). Empty when all is well.
pub async fn check_data(platform: &Platform) -> anyhow::Result<Vec<String>> {
    let scan = |table: &'static str| async move {
        platform
            .tables
            .scan_all(table)
            .await
            .map_err(|e| anyhow::anyhow!("reading the {table} table: {}", e.describe()))
    };
    let apps = scan("apps").await?;
    let secrets = scan("secrets").await?;
    let mut problems = Vec::new();
    let records = check_app_records(&apps, &mut problems);
    check_repository_index(&apps, &records, &mut problems);
    check_secrets(&secrets, &records, &mut problems);
    check_secret_values(platform, &secrets, &mut problems).await;
    Ok(problems)
}

/// App id → the repository its record names, for every app record.
type AppRecords = BTreeMap<String, Option<String>>;

/// An item as a problem names it: its table and key.
fn place(table: &str, item: &Item) -> String {
    format!(
        "{table} {} / {}",
        text(item, "pk").unwrap_or_default(),
        text(item, "sk").unwrap_or_default()
    )
}

/// The app records (`APP#` items) of `apps`.
fn check_app_records(apps: &[Item], problems: &mut Vec<String>) -> AppRecords {
    let mut records = AppRecords::new();
    for item in apps {
        let pk = text(item, "pk").unwrap_or_default();
        let Some(id) = pk.strip_prefix("APP#") else {
            continue;
        };
        let place = place("apps", item);
        if let Err(e) = catalog::rules::app_id(id) {
            problems.push(format!("{place}: {e}"));
        }
        match text(item, "name") {
            Some(name) => {
                if let Err(e) = catalog::rules::app_name(&name) {
                    problems.push(format!("{place}: {e}"));
                }
            }
            None => problems.push(format!("{place}: no string `name`")),
        }
        let repository = text(item, "repository");
        match &repository {
            Some(repository) => {
                if let Err(e) = catalog::rules::repository(repository) {
                    problems.push(format!("{place}: {e}"));
                }
            }
            None => problems.push(format!("{place}: no `repository` (no webhook reaches it)")),
        }
        if let Some(entrypoint) = text(item, "entrypoint")
            && let Err(e) = catalog::rules::entrypoint(&entrypoint)
        {
            problems.push(format!("{place}: {e}"));
        }
        records.insert(id.to_string(), repository);
    }
    records
}

/// The repository index (`REPO#` items) of `apps`: each must lead to an
/// app whose record names that repository.
fn check_repository_index(apps: &[Item], records: &AppRecords, problems: &mut Vec<String>) {
    for item in apps {
        let pk = text(item, "pk").unwrap_or_default();
        let Some(repository) = pk.strip_prefix("REPO#") else {
            continue;
        };
        let place = place("apps", item);
        match text(item, "appId") {
            None => problems.push(format!("{place}: no string `appId`")),
            Some(app) => match records.get(&app) {
                None => problems.push(format!("{place}: app {app} does not exist")),
                Some(owned)
                    if !owned
                        .as_deref()
                        .is_some_and(|o| o.eq_ignore_ascii_case(repository)) =>
                {
                    problems.push(format!(
                        "{place}: app {app}'s record names {} instead",
                        owned.as_deref().unwrap_or("no repository")
                    ))
                }
                Some(_) => {}
            },
        }
    }
}

fn check_secrets(secrets: &[Item], records: &AppRecords, problems: &mut Vec<String>) {
    for item in secrets {
        let place = place("secrets", item);
        let pk = text(item, "pk").unwrap_or_default();
        let app = pk.strip_prefix("APP#").unwrap_or_default();
        if !records.contains_key(app) {
            problems.push(format!("{place}: app {app} does not exist"));
        }
        let name = text(item, "name").unwrap_or_default();
        let scope = text(item, "scope").unwrap_or_default();
        for check in [
            catalog::rules::secret_name(&name),
            catalog::rules::scope(&scope),
        ] {
            if let Err(e) = check {
                problems.push(format!("{place}: {e}"));
            }
        }
        if text(item, "sk").as_deref() != Some(format!("SECRET#{scope}#{name}").as_str()) {
            problems.push(format!(
                "{place}: the sort key does not match its scope and name"
            ));
        }
        let size = item.iter().find_map(|(n, v)| match v {
            AttributeValue::B(b) if n == "ciphertext" => Some(b.len()),
            _ => None,
        });
        match size {
            None => problems.push(format!("{place}: no binary `ciphertext`")),
            Some(size) if !catalog::rules::CIPHERTEXT_BYTES.contains(&size) => problems.push(
                format!("{place}: a ciphertext of {size} bytes is not one KMS or set-secret makes"),
            ),
            Some(_) => {}
        }
    }
}

/// A secret whose value is empty (stored before `set-secret` refused one):
/// decrypted here, in the host, and only its emptiness said. One KMS call
/// per secret: an operator's command. A ciphertext no configured key
/// decrypts is `secrets re-encrypt`'s to report, not this rule's.
async fn check_secret_values(platform: &Platform, secrets: &[Item], problems: &mut Vec<String>) {
    for item in secrets {
        let ciphertext = item.iter().find_map(|(n, v)| match v {
            AttributeValue::B(b) if n == "ciphertext" => Some(b),
            _ => None,
        });
        let (Some(ciphertext), Some(pk)) = (ciphertext, text(item, "pk")) else {
            continue;
        };
        let app = pk.strip_prefix("APP#").unwrap_or_default();
        let name = text(item, "name").unwrap_or_default();
        let scope = text(item, "scope").unwrap_or_default();
        let context = catalog::secret_context(app, &scope, &name);
        if let Ok(value) = platform.kms.decrypt(ciphertext, &context).await
            && value.expose().is_empty()
        {
            problems.push(format!(
                "{}: the value is empty; set it again with `envmgr set-secret`",
                place("secrets", item)
            ));
        }
    }
}
