//! `apps list` and `secrets list`: what was registered, read back in the
//! documented format (docs/data-model.md). A secret's value is never read
//! here: its item is listed by name and scope only.

use serde::Serialize;

use crate::capabilities::Describe as _;
use crate::capabilities::dynamodb::fields::{partition, text};
use crate::capabilities::dynamodb::{AttributeValue, Item};
use crate::catalog;
use crate::platform::Platform;

/// An app record `APP#{id} / #`, as `apps list --json` prints it.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct App {
    pub id: String,
    pub name: String,
    /// None when another app took its repository (`add-app --replace`).
    pub repository: Option<String>,
    pub entrypoint: Option<String>,
    pub fork_secrets: bool,
    pub trusted_authors: Vec<String>,
}

/// A secret item, without its ciphertext.
#[derive(Debug, Serialize, PartialEq)]
pub struct SecretName {
    pub name: String,
    pub scope: String,
}

/// Every app record, by id. One scan of the apps table: an operator's
/// command, bounded by the number of apps.
pub async fn apps(platform: &Platform) -> anyhow::Result<Vec<App>> {
    let items = platform
        .tables
        .scan_all("apps")
        .await
        .map_err(|e| anyhow::anyhow!("reading the apps table: {}", e.describe()))?;
    let mut apps: Vec<App> = items.iter().filter_map(app).collect();
    apps.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(apps)
}

fn app(item: &Item) -> Option<App> {
    let id = text(item, "pk")?.strip_prefix("APP#")?.to_string();
    if text(item, "sk").as_deref() != Some("#") {
        return None;
    }
    Some(App {
        id,
        name: text(item, "name").unwrap_or_default(),
        repository: text(item, "repository"),
        entrypoint: text(item, "entrypoint"),
        fork_secrets: item
            .iter()
            .any(|(n, v)| n == "forkSecrets" && matches!(v, AttributeValue::Bool(true))),
        trusted_authors: item
            .iter()
            .find_map(|(n, v)| match v {
                AttributeValue::Ss(logins) if n == "trustedAuthors" => Some(logins.clone()),
                _ => None,
            })
            .unwrap_or_default(),
    })
}

/// The names and scopes of `app_id`'s secrets (one partition of the
/// secrets table), by scope then name. An app that does not exist is an
/// error, so a mistyped id is not answered with "no secrets".
pub async fn secrets(platform: &Platform, app_id: &str) -> anyhow::Result<Vec<SecretName>> {
    catalog::rules::app_id(app_id)?;
    let record = platform
        .tables
        .get("apps", &catalog::app_key(app_id))
        .await
        .map_err(|e| anyhow::anyhow!("reading the apps table: {}", e.describe()))?;
    if record.is_none() {
        anyhow::bail!("there is no app `{app_id}` (see `envmgr apps list`)");
    }
    let items = partition(
        platform.tables.as_ref(),
        "secrets",
        &format!("APP#{app_id}"),
    )
    .await
    .map_err(|e| anyhow::anyhow!("reading the secrets table: {}", e.describe()))?;
    let mut secrets: Vec<SecretName> = items
        .iter()
        .filter(|item| text(item, "sk").is_some_and(|sk| sk.starts_with("SECRET#")))
        .map(|item| SecretName {
            name: text(item, "name").unwrap_or_default(),
            scope: text(item, "scope").unwrap_or_default(),
        })
        .collect();
    secrets.sort_by(|a, b| (&a.scope, &a.name).cmp(&(&b.scope, &b.name)));
    Ok(secrets)
}
