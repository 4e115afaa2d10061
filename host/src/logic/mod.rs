//! Logic versions: a new create flow goes live on running hosts with no
//! redeploy, and a bad one never takes traffic.
//!
//! - A version is a component file named by its sha256, with an optional
//!   tag. `install` validates it (the world matches the contract; a
//!   self-check runs it through the mock host on built-in create scenarios),
//!   caches its native code, and stores it in the [`registry`].
//! - The **active pointer** (active version, optional canary with its share,
//!   the previous actives for rollback) is one item in the host's `logic`
//!   table: in DynamoDB with the aws backend, in the database file with the
//!   local one. Every host polls it and swaps atomically ([`serving`]); a
//!   message runs to the end on the version it started with.
//! - A canary takes a share of messages; a host rolls it back by itself when
//!   its failure rate exceeds the active version's by the configured margin.

pub mod cache;
pub mod commands;
pub mod ending;
pub mod install;
pub mod registry;
pub mod retention;
pub mod serving;

/// Earlier actives kept for `rollback`: the pointer stays one small item.
const HISTORY: usize = 50;

/// The builtin version's tag: always installed, needs no file.
pub const BUILTIN_TAG: &str = "builtin";

/// The shared pointer every host follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pointer {
    /// Bumped by every change; changes are compare-and-set on it.
    pub revision: u64,
    pub active: String,
    pub canary: Option<Canary>,
    /// Runs beside the active version on recorded live traffic, applying
    /// nothing (`logic activate --shadow`); its verdicts are counted.
    pub shadow: Option<String>,
    /// Earlier actives, the latest last: what `rollback` returns to.
    pub history: Vec<String>,
    pub changed_at_ms: u64,
    /// Why it last changed (the command, or the automatic rollback's reason).
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canary {
    pub version: String,
    /// Share of messages, 1 to 99.
    pub percent: u8,
}

/// An installed version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    pub id: String,
    pub tag: Option<String>,
    pub size: u64,
    pub installed_at_ms: u64,
    /// The contract version it was built for; None for versions installed
    /// before hosts recorded it.
    pub contract: Option<String>,
}

/// The pointer after `activate` (all traffic, or a canary share).
pub fn activated(
    current: Option<&Pointer>,
    builtin: &str,
    version: &str,
    canary_percent: Option<u8>,
    now_ms: u64,
) -> anyhow::Result<Pointer> {
    let revision = current.map_or(1, |p| p.revision + 1);
    let active = current.map_or(builtin, |p| p.active.as_str()).to_string();
    let mut history = current.map(|p| p.history.clone()).unwrap_or_default();
    Ok(match canary_percent {
        Some(percent) => {
            if !(1..=99).contains(&percent) {
                anyhow::bail!("a canary takes 1 to 99 percent of messages, not {percent}");
            }
            if version == active {
                anyhow::bail!("{version} is already the active version");
            }
            Pointer {
                revision,
                shadow: current.and_then(|p| p.shadow.clone()),
                active,
                canary: Some(Canary {
                    version: version.to_string(),
                    percent,
                }),
                history,
                changed_at_ms: now_ms,
                reason: format!("canary {} at {percent}%", short(version)),
            }
        }
        None => {
            if version != active {
                history.push(active);
                trim(&mut history);
            }
            Pointer {
                revision,
                // The shadow has served its purpose once it is active.
                shadow: current
                    .and_then(|p| p.shadow.clone())
                    .filter(|shadow| shadow != version),
                active: version.to_string(),
                canary: None,
                history,
                changed_at_ms: now_ms,
                reason: format!("activated {}", short(version)),
            }
        }
    })
}

/// The pointer with `version` as the shadow (none: no shadow).
pub fn shadowed(
    current: Option<&Pointer>,
    builtin: &str,
    version: Option<&str>,
    now_ms: u64,
) -> anyhow::Result<Pointer> {
    let active = current.map_or(builtin, |p| p.active.as_str());
    if version == Some(active) {
        anyhow::bail!("{active} is the active version; a shadow runs beside it");
    }
    Ok(Pointer {
        revision: current.map_or(1, |p| p.revision + 1),
        active: active.to_string(),
        canary: current.and_then(|p| p.canary.clone()),
        shadow: version.map(str::to_string),
        history: current.map(|p| p.history.clone()).unwrap_or_default(),
        changed_at_ms: now_ms,
        reason: match version {
            Some(version) => format!("shadow {}", short(version)),
            None => "shadow stopped".to_string(),
        },
    })
}

/// The pointer after `promote`: the canary takes all traffic.
pub fn promoted(current: &Pointer, now_ms: u64) -> anyhow::Result<Pointer> {
    let canary = current
        .canary
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("there is no canary to promote"))?;
    let mut history = current.history.clone();
    history.push(current.active.clone());
    trim(&mut history);
    Ok(Pointer {
        revision: current.revision + 1,
        shadow: current
            .shadow
            .clone()
            .filter(|shadow| *shadow != canary.version),
        active: canary.version.clone(),
        canary: None,
        history,
        changed_at_ms: now_ms,
        reason: format!("promoted canary {}", short(&canary.version)),
    })
}

/// The pointer after `rollback`: a canary is dropped; without one, the
/// previous active version returns.
pub fn rolled_back(current: &Pointer, reason: &str, now_ms: u64) -> anyhow::Result<Pointer> {
    if current.canary.is_some() {
        return Ok(Pointer {
            revision: current.revision + 1,
            canary: None,
            changed_at_ms: now_ms,
            reason: reason.to_string(),
            ..current.clone()
        });
    }
    let mut history = current.history.clone();
    let previous = history
        .pop()
        .ok_or_else(|| anyhow::anyhow!("there is no previous version to roll back to"))?;
    Ok(Pointer {
        revision: current.revision + 1,
        shadow: current.shadow.clone(),
        active: previous,
        canary: None,
        history,
        changed_at_ms: now_ms,
        reason: reason.to_string(),
    })
}

fn trim(history: &mut Vec<String>) {
    let excess = history.len().saturating_sub(HISTORY);
    history.drain(..excess);
}

/// The first 12 hex digits: how logs and the comment name a version.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activate_canary_promote_and_roll_back() {
        let first = activated(None, "b", "v1", None, 1).unwrap();
        assert_eq!(
            (first.active.as_str(), first.history.clone()),
            ("v1", vec!["b".to_string()])
        );
        let canary = activated(Some(&first), "b", "v2", Some(10), 2).unwrap();
        assert_eq!(canary.active, "v1");
        assert_eq!(canary.canary.as_ref().unwrap().percent, 10);
        let dropped = rolled_back(&canary, "too many failures", 3).unwrap();
        assert_eq!(
            (dropped.active.as_str(), dropped.canary.clone()),
            ("v1", None)
        );
        assert_eq!(
            dropped.history, first.history,
            "dropping a canary keeps history"
        );
        let promoted = promoted(&canary, 3).unwrap();
        assert_eq!(promoted.active, "v2");
        assert_eq!(promoted.history, ["b", "v1"]);
        let back = rolled_back(&promoted, "rollback", 4).unwrap();
        assert_eq!(back.active, "v1");
        let back = rolled_back(&back, "rollback", 5).unwrap();
        assert_eq!(back.active, "b");
        assert!(rolled_back(&back, "rollback", 6).is_err());
        assert!(activated(Some(&back), "b", "v2", Some(100), 7).is_err());
        assert!(activated(Some(&back), "b", "b", Some(5), 7).is_err());
    }
}
