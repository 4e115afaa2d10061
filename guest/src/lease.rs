//! One writer per environment: a lease on the environment's `LEASE` item.
//!
//! Effects outside the record (the Runtime Service, the comment, GitHub
//! deployments) are check-then-act, so two deliveries working on one
//! environment at once could interleave them. Before its first effect a
//! delivery takes the environment's lease by compare-and-set; right before
//! each later effect it renews the lease under the same compare-and-set (a
//! *fence*); at the end it releases it. Every write of the item gives it a new
//! `leaseRev`, so a fence fails as soon as anyone else wrote the item.
//!
//! - A request meeting a **newer** holder, a newer record, or a newer request
//!   waiting (`wanted`) is stale: it is skipped.
//! - A request meeting an **older** holder writes itself as `wanted` and
//!   waits; the holder stops at its next fence (it finds `wanted` newer than
//!   itself) and releases, so a newer request never starves.
//! - A delivery meeting another delivery of the **same** request waits.
//! - A lease whose holder crashed expires `lease-ttl-ms` after its last
//!   renewal; the host checks at start that the message deadline plus a
//!   clock-skew margin fits in it, so a live holder never outlasts its lease.
//!
//! The item also keeps what the holders did on GitHub (`github_state.rs`):
//! the comment, the deployment and its last status, and a deployment about
//! to be created. The next holder cleans up exactly that, with no walk over
//! the branch's history. docs/data-model.md describes the item as a contract:
//! every logic version must follow it, and `logic install` checks a candidate
//! against it.

mod take;

use crate::capabilities::{
    Capabilities, CapabilityError, Condition, Item, LogLevel, Update, Value, Write, WriteError,
};
use crate::environment::TABLE;
use crate::github_state::GitHubState;
use crate::item::{get_s, get_u64, key, n, s};
use crate::outcome::{Failure, Outcome};
pub use take::Claim;
use take::take;

/// The lease item's sort key; its partition is the environment's
/// (`ENVIRONMENT#{id}`), beside the canonical record item (`#`).
pub const SORT_KEY: &str = "LEASE";
/// Config key: how long a lease lasts after its last renewal, in ms.
pub const TTL_KEY: &str = "lease-ttl-ms";
/// Without the config key (an older host): the host's default.
pub const DEFAULT_TTL_MS: u64 = 75_000;
/// The shortest wait behind another delivery.
const MIN_WAIT_MS: u64 = 1_000;

/// The lease item's key.
pub fn lease_key(environment_id: &str) -> Item {
    key(
        format!("ENVIRONMENT#{environment_id}"),
        SORT_KEY.to_string(),
    )
}

/// The lease item as read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseState {
    /// None: no lease item yet.
    pub rev: Option<String>,
    pub holder: String,
    pub holder_version: String,
    pub expires_at_ms: u64,
    pub renewed_at_ms: u64,
    /// The newest request waiting for the environment ("" when none).
    pub wanted: String,
    /// Until when `wanted` counts (0: written by a logic version that set
    /// no end; it counts while the environment is held).
    pub wanted_until_ms: u64,
    pub github: GitHubState,
    /// The item expires with a tombstone (`purgeAt`): whoever takes it for
    /// a create clears that.
    pub purge_at: bool,
    /// The environment's record was read with the lease and exists: a
    /// missing lease item (deleted by hand, or an environment from before
    /// leases) is then no sign that nothing of it is on GitHub.
    pub record_exists: bool,
}

impl LeaseState {
    pub fn read(item: Option<&Item>) -> Self {
        let Some(item) = item else {
            return Self::default();
        };
        let text = |name| get_s(item, name).unwrap_or_default().to_string();
        Self {
            rev: get_s(item, "leaseRev").map(str::to_string),
            holder: text("holder"),
            holder_version: text("holderVersion"),
            expires_at_ms: get_u64(item, "expiresAt").unwrap_or(0),
            renewed_at_ms: get_u64(item, "renewedAt").unwrap_or(0),
            wanted: text("wanted"),
            wanted_until_ms: get_u64(item, "wantedUntil").unwrap_or(0),
            github: GitHubState::read(item),
            purge_at: get_u64(item, "purgeAt").is_some(),
            record_exists: false,
        }
    }

    /// The request waiting for the environment at `now`, if one still
    /// does. A waiting request renews its mark each time it comes back; a
    /// mark whose request ended for good (its app removed, its
    /// installation gone) lapses instead of making the environment's
    /// current request stale forever.
    pub fn waiting(&self, now_ms: u64) -> &str {
        let live = if self.wanted_until_ms == 0 {
            self.held(now_ms)
        } else {
            self.wanted_until_ms > now_ms
        };
        if live { &self.wanted } else { "" }
    }

    /// Neither the lease item nor the record exists: the environment is
    /// new, and nothing of it can be on GitHub.
    pub fn new_environment(&self) -> bool {
        self.rev.is_none() && !self.record_exists
    }

    /// Whether a delivery holds the environment at `now`.
    pub fn held(&self, now_ms: u64) -> bool {
        !self.holder.is_empty() && self.expires_at_ms > now_ms
    }

    /// The condition under which this state is still current.
    fn unchanged(&self) -> Condition {
        match &self.rev {
            Some(rev) => crate::capabilities::equals("leaseRev".into(), Value::S(rev.clone())),
            None => Condition::ItemAbsent,
        }
    }
}

/// An environment's items as one query reads them.
#[derive(Clone, Debug, Default)]
pub struct Partition {
    /// The canonical record item (`#`); None while the environment is new.
    pub record: Option<Item>,
    /// The lease item (`LEASE`).
    pub lease: LeaseState,
    /// The runtime's newest status report (`REPORT`), if one is stored.
    pub report: Option<Item>,
}

/// The record item, the lease item and the status report item of an
/// environment, in one query (their sort keys `#` < `LEASE` < `REPORT` come
/// first in the partition).
pub fn read_all<C: Capabilities>(caps: &mut C, environment_id: &str) -> Result<Partition, Failure> {
    let page = caps
        .db_query(&crate::capabilities::Query {
            table: TABLE.to_string(),
            partition: format!("ENVIRONMENT#{environment_id}"),
            sort_prefix: None,
            limit: Some(10),
            start_after: None,
        })
        .map_err(crate::outcome::failed("read the environment"))?;
    let mut record = None;
    let mut lease = None;
    let mut report = None;
    for item in page.items {
        match get_s(&item, "sk") {
            Some("#") => record = Some(item),
            Some(SORT_KEY) => lease = Some(item),
            Some(crate::report::SORT_KEY) => report = Some(item),
            _ => {}
        }
    }
    let lease = LeaseState {
        record_exists: record.is_some(),
        ..LeaseState::read(lease.as_ref())
    };
    Ok(Partition {
        record,
        lease,
        report,
    })
}

/// Why a delivery does not get the environment now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contended {
    /// A newer request holds it, or waits for it: this one is stale.
    Stale { newer: String },
    /// Another delivery holds it: try again then.
    Wait { until_ms: u64, reason: String },
}

/// Why a holder stops before its next effect.
#[derive(Clone, Debug, PartialEq)]
pub enum Stop {
    /// A newer request waits for the environment (or took it): this one is
    /// stale and leaves the rest to it.
    Stale { newer: String },
    /// The lease expired and another delivery took it: try again later.
    Lost { until_ms: u64, reason: String },
    /// The lease could not be read or written; or, from the work done
    /// holding it ([`hold`]), that work failed.
    Failed(Failure),
}

impl From<Failure> for Stop {
    fn from(failure: Failure) -> Self {
        Self::Failed(failure)
    }
}

/// Why writes made holding the lease ([`Lease::write_holding`]) were not.
#[derive(Debug)]
pub enum Refused {
    /// The lease is no longer as this holder last wrote it
    /// ([`Lease::why_lost`] says why).
    Lease,
    /// These writes (by index) found their items changed.
    Writes(Vec<u32>),
    Failed(CapabilityError),
}

/// A held lease.
#[derive(Debug)]
pub struct Lease {
    environment_id: String,
    token: String,
    version: String,
    ttl_ms: u64,
    rev: String,
    writes: u32,
    /// What the holders did on GitHub, as far as this holder knows.
    pub github: GitHubState,
    /// When the lease item expires with its environment's tombstone
    /// (`purgeAt`, seconds): set by a delete, written with every renewal.
    pub purge_at_s: Option<u64>,
}

/// Take the environment for `claim`, do `work` holding it, and release it
/// whatever the work's outcome, so the next delivery need not wait for the
/// lease to expire (a failed release is logged: it expires by itself). A
/// delivery that does not get the environment, or has to stop holding it,
/// ends as the lease decides: skipped when a newer request has it, deferred
/// when it must wait.
pub fn hold<C, E>(
    caps: &mut C,
    claim: Claim<'_>,
    work: impl FnOnce(&mut C, &mut Lease) -> Result<Outcome, E>,
) -> Result<Outcome, Failure>
where
    C: Capabilities,
    E: Into<Stop>,
{
    let (environment_id, version) = (claim.environment_id, claim.version);
    let ttl_ms = caps
        .config(TTL_KEY)
        .and_then(|ttl| ttl.parse().ok())
        .unwrap_or(DEFAULT_TTL_MS);
    let mut lease = match take(caps, claim, ttl_ms)? {
        Ok(lease) => lease,
        Err(Contended::Stale { newer }) => {
            return Ok(Outcome::Skipped(stale_reason(
                environment_id,
                version,
                &newer,
            )));
        }
        Err(Contended::Wait { until_ms, reason }) => {
            return Ok(Outcome::Deferred { until_ms, reason });
        }
    };
    let ended = match work(caps, &mut lease).map_err(Into::into) {
        Ok(outcome) => Ok(outcome),
        Err(Stop::Stale { newer }) => Ok(Outcome::Skipped(stale_reason(
            environment_id,
            version,
            &newer,
        ))),
        Err(Stop::Lost { until_ms, reason }) => Ok(Outcome::Deferred { until_ms, reason }),
        Err(Stop::Failed(failure)) => Err(failure),
    };
    if let Err(not_released) = lease.release(caps) {
        caps.log(
            LogLevel::Warn,
            "lease",
            &format!(
                "lease not released (it expires by itself): {}",
                not_released.reason
            ),
        );
    }
    ended
}

/// Why a request does not apply: a newer one holds the environment.
pub fn stale_reason(environment_id: &str, version: &str, newer: &str) -> String {
    format!(
        "stale request: environment {environment_id} already holds request {newer}, newer than {version}"
    )
}

/// How long to wait behind a holder: as long as it has been silent (at
/// least a second), never past its lease.
fn wait_until(seen: &LeaseState, now: u64) -> u64 {
    let silent = now.saturating_sub(seen.renewed_at_ms).max(MIN_WAIT_MS);
    (now + silent).min(seen.expires_at_ms.max(now + MIN_WAIT_MS))
}

/// The lease item as it is now.
fn reread<C: Capabilities>(caps: &mut C, environment_id: &str) -> Result<LeaseState, Failure> {
    read_all(caps, environment_id).map(|partition| partition.lease)
}

/// A lease revision no one else can make: the delivery token is unique.
fn new_rev(token: &str, count: u32) -> String {
    format!("{token}.{count}")
}

impl Lease {
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The condition a write guarded by this lease carries: the lease item
    /// is as this holder last wrote it.
    pub fn held_condition(&self) -> Condition {
        crate::capabilities::equals("leaseRev".into(), Value::S(self.rev.clone()))
    }

    /// The lease write to put in a transaction with other writes: renews the
    /// lease and records `self.github`. Call [`Lease::committed`] after the
    /// transaction succeeded.
    fn renewal(&mut self, now_ms: u64) -> (Write, String) {
        let rev = new_rev(&self.token, self.writes + 1);
        let mut set = vec![
            n("expiresAt", now_ms + self.ttl_ms),
            n("renewedAt", now_ms),
            s("leaseRev", &rev),
        ];
        set.extend(self.github.attributes());
        set.extend(self.purge_at_s.map(|at| n("purgeAt", at)));
        let write = Write::Update(Update {
            table: TABLE.to_string(),
            key: lease_key(&self.environment_id),
            set,
            condition: self.held_condition(),
        });
        (write, rev)
    }

    /// The transaction holding [`Lease::renewal`] committed with `rev`.
    fn committed(&mut self, rev: String) {
        self.rev = rev;
        self.writes += 1;
    }

    /// Make `writes` in one transaction with the lease's renewal at `now_ms`
    /// (recording what it knows of GitHub): only while this delivery holds
    /// the environment.
    pub fn write_holding<C: Capabilities>(
        &mut self,
        caps: &mut C,
        now_ms: u64,
        mut writes: Vec<Write>,
    ) -> Result<(), Refused> {
        let (renewal, rev) = self.renewal(now_ms);
        let lease_index = writes.len() as u32;
        writes.push(renewal);
        match caps.db_transact_write(&writes) {
            Ok(()) => {
                self.committed(rev);
                Ok(())
            }
            Err(WriteError::ConditionFailed(failed)) if failed.contains(&lease_index) => {
                Err(Refused::Lease)
            }
            Err(WriteError::ConditionFailed(failed)) => Err(Refused::Writes(failed)),
            Err(WriteError::Failed(error)) => Err(Refused::Failed(error)),
        }
    }

    /// Renew the lease (and record what it knows of GitHub) right before an
    /// effect; stop if it is no longer this holder's to use.
    pub fn fence<C: Capabilities>(&mut self, caps: &mut C) -> Result<(), Stop> {
        let now = caps.now_ms();
        let (write, rev) = self.renewal(now);
        let Write::Update(update) = write else {
            unreachable!("a renewal is an update")
        };
        match caps.db_update(&update) {
            Ok(()) => {
                self.committed(rev);
                Ok(())
            }
            Err(WriteError::ConditionFailed(_)) => Err(self.why_lost(caps)?),
            Err(WriteError::Failed(error)) => Err(Stop::Failed(Failure::at(
                "renew the environment's lease",
                &error,
            ))),
        }
    }

    /// After a guarded write was refused: why the lease is not ours to use.
    pub fn why_lost<C: Capabilities>(&mut self, caps: &mut C) -> Result<Stop, Failure> {
        let seen = reread(caps, &self.environment_id)?;
        let now = caps.now_ms();
        if seen.holder == self.token {
            if let Some(rev) = seen.rev.clone() {
                // Still ours: someone wrote `wanted`.
                self.rev = rev;
            }
            let waiting = seen.waiting(now);
            if !waiting.is_empty() && waiting > self.version.as_str() {
                return Ok(Stop::Stale {
                    newer: waiting.to_string(),
                });
            }
            return Ok(Stop::Lost {
                until_ms: now + MIN_WAIT_MS,
                reason: format!(
                    "the lease of environment {} changed under its holder",
                    self.environment_id
                ),
            });
        }
        // Expired and taken by another delivery.
        self.rev.clear();
        if seen.holder_version.as_str() > self.version.as_str() {
            return Ok(Stop::Stale {
                newer: seen.holder_version,
            });
        }
        Ok(Stop::Lost {
            until_ms: wait_until(&seen, now),
            reason: format!(
                "the lease of environment {} expired and request {} took it",
                self.environment_id, seen.holder_version
            ),
        })
    }

    /// Give the environment back (recording what this holder did on
    /// GitHub). Best effort: an unreleased lease expires by itself.
    pub fn release<C: Capabilities>(&mut self, caps: &mut C) -> Result<(), Failure> {
        for _ in 0..3 {
            if self.rev.is_empty() {
                return Ok(()); // taken by another delivery already
            }
            let now = caps.now_ms();
            let rev = new_rev(&self.token, self.writes + 1);
            let mut set = vec![
                s("holder", ""),
                n("expiresAt", 0),
                n("renewedAt", now),
                s("leaseRev", &rev),
            ];
            set.extend(self.github.attributes());
            set.extend(self.purge_at_s.map(|at| n("purgeAt", at)));
            let update = Update {
                table: TABLE.to_string(),
                key: lease_key(&self.environment_id),
                set,
                condition: self.held_condition(),
            };
            match caps.db_update(&update) {
                Ok(()) => {
                    self.committed(rev);
                    self.rev.clear();
                    return Ok(());
                }
                Err(WriteError::ConditionFailed(_)) => {
                    // Someone wrote `wanted` (the lease is still ours: release
                    // it at its new revision) or took it after it expired.
                    let _ = self.why_lost(caps)?;
                }
                Err(WriteError::Failed(error)) => {
                    return Err(Failure::at("release the environment's lease", &error));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(holder_version: &str, renewed_at_ms: u64, expires_at_ms: u64) -> LeaseState {
        LeaseState {
            rev: Some("r".into()),
            holder: "t".into(),
            holder_version: holder_version.into(),
            expires_at_ms,
            renewed_at_ms,
            ..LeaseState::default()
        }
    }

    #[test]
    fn a_wait_lasts_as_long_as_the_holder_was_silent_and_never_past_its_lease() {
        // Renewed just now: the shortest wait.
        assert_eq!(wait_until(&held("v", 10_000, 80_000), 10_000), 11_000);
        // Silent for 5 s: wait 5 s more.
        assert_eq!(wait_until(&held("v", 10_000, 80_000), 15_000), 20_000);
        // Silent for long: until the lease ends.
        assert_eq!(wait_until(&held("v", 0, 80_000), 60_000), 80_000);
    }
}
