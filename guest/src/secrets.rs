//! The environment's secrets: read from the `secrets` table, decrypted by KMS
//! into sealed handles, merged global → type → environment.
//!
//! Items (docs/data-model.md): `pk = APP#{appId}`,
//! `sk = SECRET#{scope}#{NAME}`, with `name`, `scope` and `ciphertext` (the
//! KMS Encrypt output). Scope is `global`, `preview`, `production` or
//! `environment:{environmentId}`. Each value is encrypted under the context
//! `{"envmgr:app": appId, "envmgr:scope": scope, "envmgr:name": NAME}`, so a
//! ciphertext copied to another app, scope or name does not decrypt.

use crate::capabilities::{CapResult, Capabilities, ErrorCode, Item, LogLevel, Query, Started};
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

/// A secret item as stored, once it passed the rules.
#[derive(Clone, Debug)]
pub struct Stored {
    name: String,
    scope: String,
    ciphertext: Vec<u8>,
    precedence: u8,
}

/// The secrets that apply to an environment, before decryption, and the
/// items skipped for breaking the rules (one bad row written by another
/// tool must not fail every request of the app).
#[derive(Clone, Debug, Default)]
pub struct Chosen {
    pub secrets: Vec<Stored>,
    /// `NAME (scope): why`, for the record and the log.
    pub skipped: Vec<String>,
}

/// The rules a secret item must keep (docs/data-model.md): a name the
/// runtime can use as a variable, a known scope, a key that matches both,
/// and a ciphertext of a plausible size — no KMS (nor envmgr's local key)
/// makes one shorter than 28 bytes, and AWS KMS none longer than 6144.
pub const NAME_MAX: usize = 128;
const CIPHERTEXT_MIN: usize = 28;
const CIPHERTEXT_MAX: usize = 6_144;

/// Whether `name` is a secret name: `[A-Za-z_][A-Za-z0-9_]*`, at most 128.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= NAME_MAX
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `scope` is one: `global`, `preview`, `production` or
/// `environment:env_` + 20 hex digits.
pub fn valid_scope(scope: &str) -> bool {
    match scope.strip_prefix("environment:") {
        Some(id) => {
            id.len() == 24
                && id.starts_with("env_")
                && id[4..]
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        }
        None => matches!(scope, "global" | "preview" | "production"),
    }
}

/// Read the app's secret items and choose, by name, the most specific that
/// applies to the environment (global → type → environment). Reads only:
/// nothing is decrypted yet.
pub fn choose<C: Capabilities>(
    caps: &mut C,
    app_id: &str,
    environment_type: EnvironmentType,
    environment_id: &str,
) -> Result<Chosen, Failure> {
    let mut chosen = Chosen::default();
    for item in read_all(caps, app_id).map_err(failed("read the app's secrets"))? {
        let stored = match parse(&item) {
            Ok(stored) => stored,
            Err(why) => {
                caps.log(
                    LogLevel::Warn,
                    "secrets",
                    &format!("a secret item of app {app_id} skipped: {why}"),
                );
                chosen.skipped.push(why);
                continue;
            }
        };
        let Some(precedence) = precedence(&stored.scope, environment_type, environment_id) else {
            continue;
        };
        let stored = Stored {
            precedence,
            ..stored
        };
        match chosen.secrets.iter_mut().find(|c| c.name == stored.name) {
            Some(existing) if existing.precedence < stored.precedence => *existing = stored,
            Some(_) => {}
            None => chosen.secrets.push(stored),
        }
    }
    chosen.secrets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(chosen)
}

/// The chosen secrets being decrypted, all at once.
pub struct Decrypting<S> {
    app_id: String,
    started: Vec<(Stored, Started<CapResult<S>>)>,
}

/// Start decrypting the chosen secrets; [`Decrypting::wait`] gives them.
pub fn start_decrypt<C: Capabilities>(
    caps: &mut C,
    app_id: &str,
    chosen: Vec<Stored>,
) -> Decrypting<C::Sealed> {
    let started = chosen
        .into_iter()
        .map(|secret| {
            let context = encryption_context(app_id, &secret.scope, &secret.name);
            let label = format!("secret:{}", secret.name);
            let decrypting = caps.start_kms_decrypt(&secret.ciphertext, &context, &label);
            (secret, decrypting)
        })
        .collect();
    Decrypting {
        app_id: app_id.to_string(),
        started,
    }
}

impl<S: 'static> Decrypting<S> {
    /// Nothing to decrypt (code not trusted with the secrets).
    pub fn none() -> Self {
        Self {
            app_id: String::new(),
            started: Vec::new(),
        }
    }

    /// The sealed handles, sorted by name; the first secret that does not
    /// decrypt fails them all.
    pub fn wait(self) -> Result<Vec<(String, S)>, Failure> {
        let app_id = self.app_id;
        let mut sealed = Vec::with_capacity(self.started.len());
        for (secret, decrypting) in self.started {
            let value = decrypting.wait().map_err(|error| match error.code {
                // KMS cannot tell a ciphertext made under another key or
                // context from a damaged one: say both.
                ErrorCode::Denied | ErrorCode::Invalid | ErrorCode::NotFound => {
                    Failure::permanent(format!(
                        "secret {name} (scope {scope}) of app {app_id} does not decrypt with the \
                         configured key under its encryption context: it was encrypted for another \
                         key, app, scope or name, or it is damaged ({error}); set it again with \
                         `envmgr set-secret --app {app_id} --scope {scope} --name {name}`",
                        name = secret.name,
                        scope = secret.scope
                    ))
                }
                _ => Failure::at(&format!("decrypt secret {}", secret.name), &error),
            })?;
            sealed.push((secret.name, value));
        }
        Ok(sealed)
    }
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

/// A secret item, or why it breaks the rules (`NAME (scope): why`).
fn parse(item: &Item) -> Result<Stored, String> {
    let sort_key = get_s(item, "sk").unwrap_or("?");
    let name = get_s(item, "name").unwrap_or("");
    let scope = get_s(item, "scope").unwrap_or("");
    let which = if name.is_empty() {
        format!("item {sort_key}")
    } else {
        format!("{name} ({scope})")
    };
    let refuse = |why: &str| {
        Err(format!(
            "{which}: {why} (docs/data-model.md, secrets table)"
        ))
    };
    if !valid_name(name) {
        return refuse("the name is not [A-Za-z_][A-Za-z0-9_]* of at most 128 characters");
    }
    if !valid_scope(scope) {
        return refuse("the scope is not global, preview, production or environment:<id>");
    }
    if sort_key != format!("SECRET#{scope}#{name}") {
        return refuse("the sort key does not match its scope and name");
    }
    let Some(ciphertext) = get_b(item, "ciphertext") else {
        return refuse("it has no binary `ciphertext`");
    };
    if !(CIPHERTEXT_MIN..=CIPHERTEXT_MAX).contains(&ciphertext.len()) {
        return refuse(&format!(
            "its ciphertext of {} bytes is not one KMS or `envmgr set-secret` makes",
            ciphertext.len()
        ));
    }
    Ok(Stored {
        name: name.to_string(),
        scope: scope.to_string(),
        ciphertext: ciphertext.to_vec(),
        precedence: 0,
    })
}
