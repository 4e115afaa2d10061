//! The App JWT, installations and installation tokens, as GitHub checks
//! them (docs: "Authenticating as a GitHub App", "Generating an installation
//! access token", "Create an installation access token for an app").

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{APP_ID, FakeGitHub, PUBLIC_KEY, bearer, refuse, rfc3339, unix_now};

/// GitHub refuses an App JWT whose `exp` is more than ten minutes after its
/// `iat`.
const JWT_MAX_LIFETIME_SECONDS: u64 = 600;
/// How far ahead of GitHub's clock `iat` may be.
const CLOCK_DRIFT_SECONDS: u64 = 60;
/// An installation token lives one hour unless the test says otherwise.
const TOKEN_TTL: Duration = Duration::from_secs(3_600);

/// Permission names GitHub knows (the ones envmgr's App could hold).
const PERMISSIONS: [&str; 8] = [
    "administration",
    "contents",
    "deployments",
    "issues",
    "metadata",
    "pull_requests",
    "statuses",
    "checks",
];

/// The App installed on one account.
#[derive(Clone, Debug)]
pub struct Installation {
    pub id: u64,
    /// The owner login (`acme`).
    pub account: String,
    /// None: every repository of the account. Some: only these names.
    pub repositories: Option<Vec<String>>,
    /// Permission → `read` or `write`.
    pub permissions: BTreeMap<String, String>,
}

impl Installation {
    /// The App on every repository of `account` with the permissions
    /// docs/iam.md ("The GitHub App") asks for: issues and pull requests write (the
    /// comment), deployments write, contents read (the runtime's clone),
    /// metadata read (every App has it).
    pub fn new(id: u64, account: &str) -> Self {
        let permissions = [
            ("contents", "read"),
            ("deployments", "write"),
            ("issues", "write"),
            ("metadata", "read"),
            ("pull_requests", "write"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Self {
            id,
            account: account.to_string(),
            repositories: None,
            permissions,
        }
    }

    /// The same, with `name` at `level` among its permissions.
    pub fn with(mut self, name: &str, level: &str) -> Self {
        self.permissions.insert(name.to_string(), level.to_string());
        self
    }

    /// The same, without `name` among its permissions.
    pub fn without(mut self, name: &str) -> Self {
        self.permissions.remove(name);
        self
    }

    fn sees(&self, owner: &str, repo: &str) -> bool {
        self.account.eq_ignore_ascii_case(owner)
            && self
                .repositories
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| n.eq_ignore_ascii_case(repo)))
    }
}

/// An installation token the fake issued.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub installation: u64,
    /// None: every repository the installation sees.
    pub repositories: Option<Vec<String>>,
    pub permissions: BTreeMap<String, String>,
    pub expires_at: SystemTime,
}

/// One token minted, as a test counts them.
#[derive(Clone, Debug)]
pub struct Mint {
    pub installation: u64,
    /// The repositories asked for (None: all the installation sees).
    pub repositories: Option<Vec<String>>,
    /// The permissions asked for (None: all the installation has).
    pub requested_permissions: Option<BTreeMap<String, String>>,
    /// The permissions the token carries.
    pub permissions: BTreeMap<String, String>,
    pub at: SystemTime,
}

#[derive(serde::Deserialize)]
struct Claims {
    /// GitHub takes the app id as a number or a string.
    iss: Value,
    iat: u64,
    exp: u64,
}

/// Check the App JWT of a request; the refusal to answer otherwise.
fn app_jwt(fake: &FakeGitHub, headers: &HeaderMap, what: &str) -> Result<(), Response> {
    let Some(jwt) = bearer(headers) else {
        return Err(refuse(
            fake,
            StatusCode::UNAUTHORIZED,
            format!("{what} without a JWT"),
        ));
    };
    let (key_deleted, keys) = {
        let mut inner = fake.lock();
        inner.jwt_checks += 1;
        (
            inner.app_key_deleted,
            inner.app_keys.clone().unwrap_or_else(|| vec![PUBLIC_KEY]),
        )
    };
    if key_deleted {
        return Err(refuse(
            fake,
            StatusCode::UNAUTHORIZED,
            format!("{what}: A JSON web token could not be decoded"),
        ));
    }
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // Judged below, the way GitHub words its refusals.
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["exp", "iat"]);
    // Any of the App's keys (GitHub: an App may have several private keys
    // active at once, for rotating them).
    let mut decoded = Err(jsonwebtoken::errors::ErrorKind::InvalidSignature.into());
    for public in &keys {
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(public.as_bytes()).expect("test key");
        decoded = jsonwebtoken::decode::<Claims>(&jwt, &key, &validation);
        if decoded.is_ok() {
            break;
        }
    }
    let claims = match decoded {
        Ok(data) => data.claims,
        Err(e) => {
            return Err(refuse(
                fake,
                StatusCode::UNAUTHORIZED,
                format!("{what}: A JSON web token could not be decoded ({e})"),
            ));
        }
    };
    let now = unix_now();
    let why = if claims.iss != APP_ID && claims.iss != APP_ID.to_string().as_str() {
        Some(format!("'Issuer' claim ('iss') names app {}", claims.iss))
    } else if claims.exp <= now {
        Some("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires".to_string())
    } else if claims.exp.saturating_sub(claims.iat) > JWT_MAX_LIFETIME_SECONDS {
        Some("'Expiration time' claim ('exp') is too far in the future".to_string())
    } else if claims.iat > now + CLOCK_DRIFT_SECONDS {
        Some("'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued".to_string())
    } else {
        None
    };
    match why {
        Some(why) => Err(refuse(
            fake,
            StatusCode::UNAUTHORIZED,
            format!("{what}: {why}"),
        )),
        None => Ok(()),
    }
}

/// GET /app: the authenticated App (a probe of the App's key).
pub(crate) async fn get_app(State(fake): State<FakeGitHub>, headers: HeaderMap) -> Response {
    if let Err(refused) = app_jwt(&fake, &headers, "get app") {
        return refused;
    }
    Json(json!({
        "id": APP_ID,
        "slug": "envmgr",
        "name": "envmgr",
        "owner": super::user_json("envmgr-dev", 9_002, "Organization"),
        "permissions": { "contents": "read", "deployments": "write", "issues": "write", "metadata": "read", "pull_requests": "write" },
        "events": ["pull_request"],
    }))
    .into_response()
}

/// POST /app/installations/{installation_id}/access_tokens
pub(crate) async fn access_token(
    State(fake): State<FakeGitHub>,
    Path(installation_id): Path<u64>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(refused) = app_jwt(&fake, &headers, "access_tokens") {
        return refused;
    }
    let body = match super::json_body(&body) {
        Ok(body) => body.unwrap_or_else(|| json!({})),
        Err(refused) => return refused,
    };
    let Some(installation) = fake.lock().installations.get(&installation_id).cloned() else {
        return refuse(
            &fake,
            StatusCode::NOT_FOUND,
            format!("access_tokens: installation {installation_id}: Not Found"),
        );
    };
    let invalid = |why: String| {
        refuse(
            &fake,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("access_tokens: {why}"),
        )
    };
    if let Err(why) = documented_parameters(&body) {
        return invalid(why);
    }
    let repositories = match requested_repositories(&body, &installation) {
        Ok(repositories) => repositories,
        Err(why) => return invalid(why),
    };
    let requested_permissions = match requested_permissions(&body, &installation) {
        Ok(permissions) => permissions,
        Err(why) => return invalid(why),
    };
    let permissions = requested_permissions
        .clone()
        .unwrap_or_else(|| installation.permissions.clone());

    let mut inner = fake.lock();
    inner.next_id += 1;
    let token = format!("ghs_fake{installation_id}x{:08}", inner.next_id);
    let now = SystemTime::now();
    let expires_at = now + inner.token_ttl.unwrap_or(TOKEN_TTL);
    inner.tokens.insert(
        token.clone(),
        Token {
            installation: installation_id,
            repositories: repositories.clone(),
            permissions: permissions.clone(),
            expires_at,
        },
    );
    inner.mints.push(Mint {
        installation: installation_id,
        repositories: repositories.clone(),
        requested_permissions,
        permissions: permissions.clone(),
        at: now,
    });
    let mut answer = json!({
        "token": token,
        "expires_at": rfc3339(expires_at),
        "permissions": permissions,
        "repository_selection": if repositories.is_some() || installation.repositories.is_some() { "selected" } else { "all" },
    });
    if let Some(names) = &repositories {
        answer["repositories"] = names
            .iter()
            .map(|name| repository_json(&installation.account, name))
            .collect();
    }
    (StatusCode::CREATED, Json(answer)).into_response()
}

/// Why a token request's body is refused: a parameter GitHub does not
/// document, or one this fake does not model.
fn documented_parameters(body: &Value) -> Result<(), String> {
    if let Some(object) = body.as_object() {
        for key in object.keys() {
            if !["repositories", "repository_ids", "permissions"].contains(&key.as_str()) {
                return Err(format!("`{key}` is not a documented parameter"));
            }
        }
    } else {
        return Err("the body is not a JSON object".into());
    }
    if body.get("repository_ids").is_some() {
        return Err("this fake knows repositories by name only".into());
    }
    Ok(())
}

/// The repositories a token request narrows to (`None`: the
/// installation's), or why GitHub would refuse them.
fn requested_repositories(
    body: &Value,
    installation: &Installation,
) -> Result<Option<Vec<String>>, String> {
    match body.get("repositories") {
        None => Ok(None),
        Some(Value::Array(names)) => {
            let mut wanted = Vec::new();
            for name in names {
                let Some(name) = name.as_str() else {
                    return Err(format!("`repositories` must be names, got {name}"));
                };
                if !installation.sees(&installation.account, name) {
                    return Err(format!(
                        "There is at least one repository that does not exist or is not accessible to the parent installation ({name})"
                    ));
                }
                wanted.push(name.to_string());
            }
            if wanted.len() > 500 {
                return Err("at most 500 repositories".into());
            }
            Ok(Some(wanted))
        }
        Some(other) => Err(format!("`repositories` must be an array, got {other}")),
    }
}

/// The permissions a token request narrows to (`None`: the
/// installation's), or why GitHub would refuse them.
fn requested_permissions(
    body: &Value,
    installation: &Installation,
) -> Result<Option<BTreeMap<String, String>>, String> {
    match body.get("permissions") {
        None => Ok(None),
        Some(Value::Object(asked)) => {
            let mut wanted = BTreeMap::new();
            for (name, level) in asked {
                let level = level.as_str().unwrap_or("");
                if !PERMISSIONS.contains(&name.as_str()) || !["read", "write"].contains(&level) {
                    return Err(format!(
                        "permission `{name}: {level}` is not one GitHub knows"
                    ));
                }
                let granted = installation.permissions.get(name).map(String::as_str);
                if !covers(granted, level) {
                    return Err(format!(
                        "The permissions requested are not granted to this installation ({name}: {level})"
                    ));
                }
                wanted.insert(name.clone(), level.to_string());
            }
            Ok(Some(wanted))
        }
        Some(other) => Err(format!("`permissions` must be an object, got {other}")),
    }
}

/// A repository as GitHub lists it in a token's answer (the fields every
/// client may rely on).
fn repository_json(owner: &str, name: &str) -> Value {
    let id = name.bytes().fold(81_000_000u64, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b)) % 1_000_000_000
    });
    json!({
        "id": id,
        "node_id": format!("R_fake{id}"),
        "name": name,
        "full_name": format!("{owner}/{name}"),
        "private": true,
        "owner": super::user_json(owner, 9_001, "Organization"),
        "html_url": format!("https://github.com/{owner}/{name}"),
        "url": format!("https://api.github.com/repos/{owner}/{name}"),
        "fork": false,
        "default_branch": "main"
    })
}

/// Whether a granted level covers the one needed (`write` covers `read`).
fn covers(granted: Option<&str>, needed: &str) -> bool {
    matches!(
        (granted, needed),
        (Some("write"), _) | (Some("read"), "read")
    )
}

/// What a repository route needs of a token: any one of these permissions
/// at this level.
pub(crate) type Need = &'static [(&'static str, &'static str)];

pub(crate) const ISSUES_READ: Need = &[("issues", "read"), ("pull_requests", "read")];
pub(crate) const ISSUES_WRITE: Need = &[("issues", "write"), ("pull_requests", "write")];
pub(crate) const DEPLOYMENTS_READ: Need = &[("deployments", "read")];
pub(crate) const DEPLOYMENTS_WRITE: Need = &[("deployments", "write")];
pub(crate) const PULL_REQUESTS_READ: Need = &[("pull_requests", "read")];
pub(crate) const ADMINISTRATION_WRITE: Need = &[("administration", "write")];

/// Let a request on `owner/repo` through, or answer as GitHub does: an
/// unknown or expired token 401, a repository the token cannot see 404, a
/// permission it lacks 403. Returns the token's installation.
pub(crate) fn authorize(
    fake: &FakeGitHub,
    headers: &HeaderMap,
    owner: &str,
    repo: &str,
    need: Need,
    what: &str,
) -> Result<u64, Response> {
    let presented = bearer(headers).unwrap_or_default();
    let (token, installation) = {
        let inner = fake.lock();
        let token = inner.tokens.get(&presented).cloned();
        let installation = token
            .as_ref()
            .and_then(|t| inner.installations.get(&t.installation).cloned());
        (token, installation)
    };
    let (Some(token), Some(installation)) = (token, installation) else {
        return Err(refuse(
            fake,
            StatusCode::UNAUTHORIZED,
            format!("{what}: Bad credentials (unknown token `{presented}`)"),
        ));
    };
    if token.expires_at <= SystemTime::now() {
        return Err(refuse(
            fake,
            StatusCode::UNAUTHORIZED,
            format!("{what}: Bad credentials (token `{presented}` expired)"),
        ));
    }
    let in_scope = installation.sees(owner, repo)
        && token
            .repositories
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n.eq_ignore_ascii_case(repo)));
    if !in_scope {
        return Err(refuse(
            fake,
            StatusCode::NOT_FOUND,
            format!("{what}: Not Found ({owner}/{repo} is outside the token's scope)"),
        ));
    }
    let allowed = need
        .iter()
        .any(|(name, level)| covers(token.permissions.get(*name).map(String::as_str), level));
    if !allowed {
        return Err(refuse(
            fake,
            StatusCode::FORBIDDEN,
            format!("{what}: Resource not accessible by integration (needs one of {need:?})"),
        ));
    }
    Ok(token.installation)
}
