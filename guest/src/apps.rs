//! The app an environment belongs to, from the `apps` table.

use crate::capabilities::{Capabilities, Item, Repository, Value};
use crate::item::{get, get_s, key};
use crate::outcome::{Failure, failed};
use crate::request::{AppRef, CreateRequest};

/// Logical table name; the host maps it to a physical table.
pub const TABLE: &str = "apps";

/// Used when neither the request nor the app names an entrypoint.
const DEFAULT_ENTRYPOINT: &str = "index.ts";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    pub id: String,
    pub name: String,
    /// `owner/name` of the app's repository.
    pub repository: String,
    pub entrypoint: String,
    /// Whether pull requests from forks get the app's secrets and a GitHub
    /// token (`forkSecrets`; absent: no).
    pub fork_secrets: bool,
    /// The GitHub logins whose pull requests get the app's secrets and a
    /// token (`trustedAuthors`); None: every author.
    pub trusted_authors: Option<Vec<String>>,
}

/// Read the app the request is for. A webhook names only the repository, so
/// the app is found through the `REPO#{owner/name}` index item first.
pub fn resolve<C: Capabilities>(caps: &mut C, request: &CreateRequest) -> Result<App, Failure> {
    resolve_ref(caps, &request.app, Some(&request.repository))
}

/// Read the app `app` names; by `repository` when that is how it does.
pub fn resolve_ref<C: Capabilities>(
    caps: &mut C,
    app: &AppRef,
    repository: Option<&Repository>,
) -> Result<App, Failure> {
    let app_id = match (app, repository) {
        (AppRef::Id(id), _) => id.clone(),
        (AppRef::Repository, None) => {
            return Err(Failure::permanent(
                "the request names neither an app nor a repository",
            ));
        }
        (AppRef::Repository, Some(repository)) => {
            let full_name = repository.to_string().to_ascii_lowercase();
            let index = caps
                .db_get(TABLE, &key(format!("REPO#{full_name}"), "#".into()))
                .map_err(failed("find the app of the repository"))?
                .ok_or_else(|| {
                    Failure::permanent(format!(
                        "no app is registered for repository {repository}: add the app \
                         (docs/data-model.md, apps table) or uninstall the GitHub App there"
                    ))
                })?;
            get_s(&index, "appId")
                .ok_or_else(|| {
                    Failure::permanent(format!(
                        "the apps index item REPO#{full_name} has no string appId"
                    ))
                })?
                .to_string()
        }
    };
    read(caps, &app_id)
}

/// The app record of `app_id`.
pub fn read<C: Capabilities>(caps: &mut C, app_id: &str) -> Result<App, Failure> {
    let record = caps
        .db_get(TABLE, &key(format!("APP#{app_id}"), "#".into()))
        .map_err(failed("read the app record"))?
        .ok_or_else(|| Failure::permanent(format!("app {app_id} not found in the apps table")))?;
    parse(app_id, &record)
}

fn parse(app_id: &str, record: &Item) -> Result<App, Failure> {
    let field = |name: &str| {
        get_s(record, name).ok_or_else(|| {
            Failure::permanent(format!(
                "app {app_id}: the record has no string attribute `{name}`"
            ))
        })
    };
    // A trust setting of the wrong type is refused rather than read as its
    // default: whoever wrote it meant something, and guessing wrong either
    // leaks secrets or silently withholds them.
    let mistyped = |name: &str, expected: &str| {
        Failure::permanent(format!(
            "app {app_id}: the record's `{name}` must be {expected} (docs/data-model.md, apps table)"
        ))
    };
    let fork_secrets = match get(record, "forkSecrets") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(allowed)) => *allowed,
        Some(_) => return Err(mistyped("forkSecrets", "a boolean (BOOL)")),
    };
    let trusted_authors = match get(record, "trustedAuthors") {
        None | Some(Value::Null) => None,
        Some(Value::Ss(logins)) => Some(logins.clone()),
        Some(_) => {
            return Err(mistyped(
                "trustedAuthors",
                "a string set (SS) of GitHub logins",
            ));
        }
    };
    Ok(App {
        id: app_id.to_string(),
        name: field("name")?.to_string(),
        repository: field("repository")?.to_string(),
        entrypoint: get_s(record, "entrypoint")
            .unwrap_or(DEFAULT_ENTRYPOINT)
            .to_string(),
        fork_secrets,
        trusted_authors,
    })
}
