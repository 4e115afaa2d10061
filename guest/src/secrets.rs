//! The environment's secrets: read from the `secrets` table, decrypted by KMS
//! into sealed handles, merged global → type → environment.
//!
//! Items (docs/data-model.md): `pk = APP#{appId}`,
//! `sk = SECRET#{scope}#{NAME}`, with `name`, `scope` and `ciphertext` (the
//! KMS Encrypt output). Scope is `global`, `preview`, `production` or
//! `environment:{environmentId}`. Each value is encrypted under the context
//! `{"envmgr:app": appId, "envmgr:scope": scope, "envmgr:name": NAME}`, so a
//! ciphertext copied to another app, scope or name does not decrypt.

use crate::capabilities::{CapResult, Capabilities, ErrorCode, Item, Query};
use crate::item::{get_b, get_s};
use crate::outcome::{Failure, failed};
use crate::request::EnvironmentType;

/// Logical table name; the host maps it to a physical table.
pub const TABLE: &str = "secrets";

/// Items read per query page.
const PAGE_SIZE: u32 = 100;

/// How specific a scope is: a more specific value wins by name.
fn precedence(scope: &str, environment_type: EnvironmentType, environment_id: &str) -> Option<u8> {
    if scope == "global" {
        Some(0)
    } else if scope == environment_type.as_str() {
        Some(1)
    } else if scope.strip_prefix("environment:") == Some(environment_id) {
        Some(2)
    } else {
        None
    }
}

/// The KMS encryption context a secret is bound to.
pub fn encryption_context(app_id: &str, scope: &str, name: &str) -> Vec<(String, String)> {
    vec![
        ("envmgr:app".to_string(), app_id.to_string()),
        ("envmgr:scope".to_string(), scope.to_string()),
        ("envmgr:name".to_string(), name.to_string()),
    ]
}

struct Stored {
    name: String,
    scope: String,
    ciphertext: Vec<u8>,
    precedence: u8,
}

/// Every secret that applies to the environment, decrypted and sealed,
/// sorted by name.
pub fn load<C: Capabilities>(
    caps: &mut C,
    app_id: &str,
    environment_type: EnvironmentType,
    environment_id: &str,
) -> Result<Vec<(String, C::Sealed)>, Failure> {
    let mut chosen: Vec<Stored> = Vec::new();
    for item in read_all(caps, app_id).map_err(failed("read the app's secrets"))? {
        let stored = parse(app_id, &item)?;
        let Some(precedence) = precedence(&stored.scope, environment_type, environment_id) else {
            continue;
        };
        let stored = Stored {
            precedence,
            ..stored
        };
        match chosen.iter_mut().find(|c| c.name == stored.name) {
            Some(existing) if existing.precedence < stored.precedence => *existing = stored,
            Some(_) => {}
            None => chosen.push(stored),
        }
    }
    chosen.sort_by(|a, b| a.name.cmp(&b.name));

    let mut sealed = Vec::with_capacity(chosen.len());
    for secret in chosen {
        let context = encryption_context(app_id, &secret.scope, &secret.name);
        let label = format!("secret:{}", secret.name);
        let value = caps
            .kms_decrypt(&secret.ciphertext, &context, &label)
            .map_err(|error| match error.code {
                ErrorCode::Denied | ErrorCode::Invalid | ErrorCode::NotFound => {
                    Failure::permanent(format!(
                        "secret {} (scope {}) of app {app_id} does not decrypt under its \
                         encryption context ({error}); set it again with envmgr's secret command",
                        secret.name, secret.scope
                    ))
                }
                _ => Failure::at(&format!("decrypt secret {}", secret.name), &error),
            })?;
        sealed.push((secret.name, value));
    }
    Ok(sealed)
}

fn read_all<C: Capabilities>(caps: &mut C, app_id: &str) -> CapResult<Vec<Item>> {
    let mut items = Vec::new();
    let mut start_after = None;
    loop {
        let page = caps.db_query(&Query {
            table: TABLE.to_string(),
            partition: format!("APP#{app_id}"),
            sort_prefix: Some("SECRET#".to_string()),
            limit: Some(PAGE_SIZE),
            start_after: start_after.take(),
        })?;
        items.extend(page.items);
        match page.next {
            Some(next) => start_after = Some(next),
            None => return Ok(items),
        }
    }
}

fn parse(app_id: &str, item: &Item) -> Result<Stored, Failure> {
    let sort_key = get_s(item, "sk").unwrap_or("?");
    let malformed = |what: &str| {
        Failure::permanent(format!(
            "secret item APP#{app_id} / {sort_key} {what} (docs/data-model.md, secrets table)"
        ))
    };
    let name = get_s(item, "name").ok_or_else(|| malformed("has no string `name`"))?;
    let scope = get_s(item, "scope").ok_or_else(|| malformed("has no string `scope`"))?;
    let ciphertext =
        get_b(item, "ciphertext").ok_or_else(|| malformed("has no binary `ciphertext`"))?;
    if sort_key != format!("SECRET#{scope}#{name}") {
        return Err(malformed(
            "has a sort key that does not match its scope and name",
        ));
    }
    Ok(Stored {
        name: name.to_string(),
        scope: scope.to_string(),
        ciphertext: ciphertext.to_vec(),
        precedence: 0,
    })
}
