//! Installation access tokens: the App JWT that mints them, how long a
//! minted token is kept, and the permissions a token may be asked for.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use octocrab::models::AppId;
use secrecy::SecretString;
use serde::Deserialize;

/// The config key of the runtime token's permissions, named in errors.
pub const RUNTIME_TOKEN_PERMISSIONS_KEY: &str = "github.runtime_token_permissions";

/// A token is minted again this long before it expires at the latest ...
const REFRESH_MARGIN_CAP: Duration = Duration::from_secs(5 * 60);
/// ... or a tenth of its lifetime before, if that is less, so a short-lived
/// token is still used for most of its life.
const REFRESH_MARGIN_DIVISOR: u32 = 10;

/// Permission names GitHub documents for installation access tokens (the
/// `permissions` body parameter of "Create an installation access token for
/// an app", REST API 2022-11-28: repository, organization and user
/// permissions).
pub const INSTALLATION_PERMISSIONS: [&str; 53] = [
    // Repository permissions.
    "actions",
    "administration",
    "artifact_metadata",
    "attestations",
    "checks",
    "codespaces",
    "contents",
    "dependabot_secrets",
    "deployments",
    "discussions",
    "environments",
    "issues",
    "merge_queues",
    "metadata",
    "packages",
    "pages",
    "pull_requests",
    "repository_custom_properties",
    "repository_hooks",
    "repository_projects",
    "secret_scanning_alerts",
    "secrets",
    "security_events",
    "single_file",
    "statuses",
    "vulnerability_alerts",
    "workflows",
    // Organization permissions.
    "custom_properties_for_organizations",
    "members",
    "organization_administration",
    "organization_announcement_banners",
    "organization_copilot_seat_management",
    "organization_custom_org_roles",
    "organization_custom_properties",
    "organization_custom_roles",
    "organization_events",
    "organization_hooks",
    "organization_packages",
    "organization_personal_access_token_requests",
    "organization_personal_access_tokens",
    "organization_plan",
    "organization_projects",
    "organization_secrets",
    "organization_self_hosted_runners",
    "organization_user_blocking",
    "enterprise_custom_properties_for_organizations",
    // User permissions.
    "email_addresses",
    "followers",
    "git_ssh_keys",
    "gpg_keys",
    "interaction_limits",
    "profile",
    "starring",
];

/// The runtime token's permissions as the config gives them: at least one,
/// each a documented permission at `read` or `write`. The error names the
/// config key.
pub fn check_runtime_token_permissions(
    permissions: &BTreeMap<String, String>,
) -> Result<(), String> {
    if permissions.is_empty() {
        return Err(format!(
            "config key `{RUNTIME_TOKEN_PERMISSIONS_KEY}`: at least one permission (e.g. `{{ contents = \"read\" }}`)"
        ));
    }
    for (name, level) in permissions {
        if !INSTALLATION_PERMISSIONS.contains(&name.as_str()) {
            return Err(format!(
                "config key `{RUNTIME_TOKEN_PERMISSIONS_KEY}.{name}`: not a permission GitHub grants installation tokens (e.g. contents, pull_requests, checks)"
            ));
        }
        if level != "read" && level != "write" {
            return Err(format!(
                "config key `{RUNTIME_TOKEN_PERMISSIONS_KEY}.{name}`: `read` or `write`, not `{level}`"
            ));
        }
    }
    Ok(())
}

/// How long an App JWT is good for, at most (its `exp`).
pub const APP_JWT_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// The App's JWT: RS256, `iss` the App id, issued 60 s in the past (clock
/// drift) and expiring 9 minutes from now (GitHub refuses more than 10).
/// octocrab's `create_jwt` makes exactly these claims.
pub fn app_jwt(
    app_id: u64,
    key: &jsonwebtoken::EncodingKey,
) -> Result<String, jsonwebtoken::errors::Error> {
    octocrab::auth::create_jwt(AppId(app_id), key)
}

/// GitHub's answer to a mint (the fields envmgr reads).
#[derive(Deserialize)]
pub struct MintAnswer {
    token: String,
    /// RFC 3339.
    expires_at: String,
}

/// A token just minted.
pub struct Minted {
    pub secret: SecretString,
    /// How long GitHub lets it live from now; None when `expires_at` did
    /// not parse (then it is used once and not kept).
    pub lifetime: Option<Duration>,
}

impl Minted {
    pub fn from_answer(answer: MintAnswer, now: SystemTime) -> Self {
        Self {
            secret: SecretString::from(answer.token),
            lifetime: lifetime(&answer.expires_at, now),
        }
    }
}

/// How long from `now` until `expires_at` (RFC 3339); None if it does not
/// parse; zero if it is past.
pub fn lifetime(expires_at: &str, now: SystemTime) -> Option<Duration> {
    let expires =
        time::OffsetDateTime::parse(expires_at, &time::format_description::well_known::Rfc3339)
            .ok()?;
    Some(
        SystemTime::from(expires)
            .duration_since(now)
            .unwrap_or_default(),
    )
}

/// How long before its expiry a token of this lifetime is replaced:
/// min(5 minutes, 10 % of its lifetime).
pub fn refresh_margin(lifetime: Duration) -> Duration {
    REFRESH_MARGIN_CAP.min(lifetime / REFRESH_MARGIN_DIVISOR)
}

/// An installation's API token, kept until its refresh margin.
pub struct CachedToken {
    pub secret: SecretString,
    refresh_at: Instant,
}

impl CachedToken {
    /// Keep `minted` (received at `received`), if its lifetime is known and
    /// leaves time to use it.
    pub fn keep(minted: &Minted, received: Instant) -> Option<Self> {
        let lifetime = minted.lifetime?;
        let usable_for = lifetime.checked_sub(refresh_margin(lifetime))?;
        (!usable_for.is_zero()).then(|| Self {
            secret: minted.secret.clone(),
            refresh_at: received + usable_for,
        })
    }

    pub fn usable(&self, now: Instant) -> bool {
        now < self.refresh_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_five_minutes_or_a_tenth_of_the_lifetime() {
        assert_eq!(
            refresh_margin(Duration::from_secs(3_600)),
            Duration::from_secs(300)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(3)),
            Duration::from_millis(300)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(50 * 60)),
            Duration::from_secs(300)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(40 * 60)),
            Duration::from_secs(240)
        );
    }

    #[test]
    fn expires_at_is_read_as_rfc_3339() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        // 2027-01-15T08:00:00Z is 1_800_000_000 s after the epoch.
        assert_eq!(
            lifetime("2027-01-15T09:00:00Z", now),
            Some(Duration::from_secs(3_600))
        );
        assert_eq!(
            lifetime("2027-01-15T10:00:00+01:00", now),
            Some(Duration::from_secs(3_600))
        );
        assert_eq!(lifetime("2027-01-15T07:00:00Z", now), Some(Duration::ZERO));
        assert_eq!(lifetime("in an hour", now), None);
    }

    #[test]
    fn a_token_is_kept_until_its_margin() {
        let received = Instant::now();
        let minted = Minted {
            secret: SecretString::from("ghs_x".to_string()),
            lifetime: Some(Duration::from_secs(3_600)),
        };
        let kept = CachedToken::keep(&minted, received).expect("kept");
        assert!(kept.usable(received + Duration::from_secs(54 * 60)));
        assert!(!kept.usable(received + Duration::from_secs(55 * 60)));
        let unknown = Minted {
            lifetime: None,
            ..minted
        };
        assert!(CachedToken::keep(&unknown, received).is_none());
    }

    #[test]
    fn permissions_must_be_documented_and_read_or_write() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(check_runtime_token_permissions(&map(&[("contents", "read")])).is_ok());
        assert!(
            check_runtime_token_permissions(&map(&[("contents", "read"), ("checks", "write")]))
                .is_ok()
        );
        let unknown = check_runtime_token_permissions(&map(&[("contnets", "read")])).unwrap_err();
        assert!(
            unknown.contains("`github.runtime_token_permissions.contnets`"),
            "{unknown}"
        );
        let level = check_runtime_token_permissions(&map(&[("contents", "admin")])).unwrap_err();
        assert!(
            level.contains("`github.runtime_token_permissions.contents`"),
            "{level}"
        );
        let empty = check_runtime_token_permissions(&BTreeMap::new()).unwrap_err();
        assert!(
            empty.contains("`github.runtime_token_permissions`"),
            "{empty}"
        );
    }
}
