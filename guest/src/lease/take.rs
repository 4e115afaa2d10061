//! Taking an environment's lease: the protocol's decisions at the door.
//!
//! A delivery decides from the lease item as it read it whether it is
//! stale, waits, or takes the environment, and writes what it decided under
//! the condition that the item is still as read. Someone else may write
//! first; then it reads again and decides again. Apart from holding
//! (`lease.rs`), because these decisions are the part of the protocol most
//! easily got wrong, and each one should be read on its own.

use super::{
    Contended, Lease, LeaseState, MIN_WAIT_MS, lease_key, new_rev, read_all, reread, wait_until,
};
use crate::capabilities::{Capabilities, Update, Value, Write, WriteError};
use crate::environment::TABLE;
use crate::github_state::GitHubState;
use crate::item::{get_s, n, s};
use crate::outcome::Failure;

/// How many lease lifetimes a `wanted` mark lasts unless its request comes
/// back to renew it (it comes back once the holder's lease is out, at most
/// one lifetime).
const WANTED_FOR_TTLS: u64 = 2;

/// A delivery asking for an environment.
#[derive(Debug)]
pub struct Claim<'a> {
    pub environment_id: &'a str,
    /// The request it delivers.
    pub version: &'a str,
    /// Unique to the delivery: the holder's name.
    pub token: &'a str,
    /// The lease as the delivery last read it.
    pub seen: LeaseState,
    /// When some, written in the same transaction as the lease: the record
    /// at this request.
    pub record_writes: Option<Vec<Write>>,
}

/// What one attempt at taking the environment came to.
#[allow(
    clippy::large_enum_variant,
    reason = "returned once per attempt and taken apart at once, never kept"
)]
enum Attempt {
    Decided(Result<Lease, Contended>),
    /// The lease item changed since it was read: read it again, decide again.
    Changed,
}

/// Take the environment for `claim`. On a refused write the lease is read
/// again and the decision made again, a few times.
pub(super) fn take<C: Capabilities>(
    caps: &mut C,
    mut claim: Claim<'_>,
    ttl_ms: u64,
) -> Result<Result<Lease, Contended>, Failure> {
    for _ in 0..4 {
        let now = caps.now_ms();
        let waiting = claim.seen.waiting(now).to_string();
        if !waiting.is_empty() && waiting.as_str() > claim.version {
            return Ok(Err(Contended::Stale { newer: waiting }));
        }
        let attempt = if claim.seen.held(now) && claim.seen.holder != claim.token {
            wait_behind(caps, &claim, &waiting, now, ttl_ms)?
        } else {
            write_lease(caps, &claim, &waiting, now, ttl_ms)?
        };
        match attempt {
            Attempt::Decided(decided) => return Ok(decided),
            Attempt::Changed => claim.seen = reread(caps, claim.environment_id)?,
        }
    }
    Err(Failure::retryable(format!(
        "the lease of environment {} kept changing while taking it",
        claim.environment_id
    )))
}

/// Another delivery holds the environment: a newer request makes this one
/// stale, any other makes it wait.
fn wait_behind<C: Capabilities>(
    caps: &mut C,
    claim: &Claim<'_>,
    waiting: &str,
    now: u64,
    ttl_ms: u64,
) -> Result<Attempt, Failure> {
    let (environment_id, version) = (claim.environment_id, claim.version);
    let holder = claim.seen.holder_version.as_str();
    if holder > version {
        return Ok(Attempt::Decided(Err(Contended::Stale {
            newer: holder.to_string(),
        })));
    }
    let until_ms = wait_until(&claim.seen, now);
    if holder == version {
        return Ok(Attempt::Decided(Err(Contended::Wait {
            until_ms,
            reason: format!(
                "another delivery of request {version} holds environment {environment_id}"
            ),
        })));
    }
    // An older request holds it: say that a newer one waits, so it stops at
    // its next fence instead of finishing.
    if waiting <= version && !mark_wanted(caps, claim, now, ttl_ms)? {
        return Ok(Attempt::Changed);
    }
    Ok(Attempt::Decided(Err(Contended::Wait {
        until_ms,
        reason: format!(
            "older request {holder} holds environment {environment_id}; it stops at its next step"
        ),
    })))
}

/// Write the claim's request as the one waiting for the environment; false
/// when the lease item changed since it was read. The mark lasts a while
/// (renewed each time the request comes back), so a mark whose request
/// never does lapses.
fn mark_wanted<C: Capabilities>(
    caps: &mut C,
    claim: &Claim<'_>,
    now: u64,
    ttl_ms: u64,
) -> Result<bool, Failure> {
    let rev = new_rev(claim.token, 0);
    let update = Update {
        table: TABLE.to_string(),
        key: lease_key(claim.environment_id),
        set: vec![
            s("wanted", claim.version),
            n("wantedUntil", now + WANTED_FOR_TTLS * ttl_ms),
            s("leaseRev", &rev),
        ],
        condition: claim.seen.unchanged(),
    };
    match caps.db_update(&update) {
        Ok(()) => Ok(true),
        Err(WriteError::ConditionFailed(_)) => Ok(false),
        Err(WriteError::Failed(error)) => Err(Failure::at("mark the environment wanted", &error)),
    }
}

/// The environment is free, its lease expired, or this very delivery holds
/// it (a second take): take it, in one transaction with the claim's record
/// writes.
fn write_lease<C: Capabilities>(
    caps: &mut C,
    claim: &Claim<'_>,
    waiting: &str,
    now: u64,
    ttl_ms: u64,
) -> Result<Attempt, Failure> {
    let rev = new_rev(claim.token, 1);
    let mut writes = vec![lease_write(claim, waiting, now, ttl_ms, &rev)];
    writes.extend(claim.record_writes.iter().flatten().cloned());
    match caps.db_transact_write(&writes) {
        Ok(()) => {
            let first_holder = claim.seen.new_environment();
            Ok(Attempt::Decided(Ok(Lease {
                environment_id: claim.environment_id.to_string(),
                token: claim.token.to_string(),
                version: claim.version.to_string(),
                ttl_ms,
                rev,
                writes: 1,
                github: GitHubState {
                    first_holder,
                    history_complete: claim.seen.github.history_complete || first_holder,
                    ..claim.seen.github.clone()
                },
                purge_at_s: None,
            })))
        }
        Err(WriteError::ConditionFailed(failed)) if failed.iter().any(|i| *i != 0) => {
            Ok(Attempt::Decided(Err(record_moved(caps, claim, now)?)))
        }
        Err(WriteError::ConditionFailed(_)) => Ok(Attempt::Changed),
        Err(WriteError::Failed(error)) => Err(Failure::at("take the environment's lease", &error)),
    }
}

/// The lease item as the claim takes it: held by this delivery, and clear
/// of a `wanted` mark this request answers.
fn lease_write(claim: &Claim<'_>, waiting: &str, now: u64, ttl_ms: u64, rev: &str) -> Write {
    let mut set = vec![
        s("entity", "lease"),
        s("holder", claim.token),
        s("holderVersion", claim.version),
        n("expiresAt", now + ttl_ms),
        n("renewedAt", now),
        s("leaseRev", rev),
    ];
    if waiting <= claim.version {
        set.push(s("wanted", ""));
        set.push(n("wantedUntil", 0));
    }
    if claim.seen.purge_at {
        // A tombstone's lease, taken again (a reopen): it no longer expires
        // (NULL: the time to live reads only a number; the contract's update
        // only sets). A delete sets it again when it ends.
        set.push(("purgeAt".to_string(), Value::Null));
    }
    if claim.seen.new_environment() {
        // A new environment: nothing of it on GitHub, its history whole.
        set.extend(
            GitHubState {
                history_complete: true,
                ..GitHubState::default()
            }
            .attributes(),
        );
    }
    Write::Update(Update {
        table: TABLE.to_string(),
        key: lease_key(claim.environment_id),
        set,
        condition: claim.seen.unchanged(),
    })
}

/// A record write was refused: the record is no longer as read.
fn record_moved<C: Capabilities>(
    caps: &mut C,
    claim: &Claim<'_>,
    now: u64,
) -> Result<Contended, Failure> {
    let environment_id = claim.environment_id;
    let record = read_all(caps, environment_id)?.record;
    let held = record
        .as_ref()
        .and_then(|r| get_s(r, "requestVersion"))
        .unwrap_or("")
        .to_string();
    if held.as_str() > claim.version {
        return Ok(Contended::Stale { newer: held });
    }
    // Another delivery of this request (or an older one) wrote it since:
    // never put over it. The message comes back at once and goes on from
    // the record as it is now (its signing key, its runtime).
    Ok(Contended::Wait {
        until_ms: now + MIN_WAIT_MS,
        reason: format!(
            "the record of environment {environment_id} changed while taking it (now at request {held}); read again"
        ),
    })
}
