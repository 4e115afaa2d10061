//! The environment ended (`flow/teardown.rs`): its GitHub deployment
//! `inactive`, which GitHub shows as a transient environment destroyed.

use super::{Ensured, Target, clip, find, give_inactive, report};
use crate::capabilities::{Capabilities, DeploymentState, NewDeploymentStatus};
use crate::lease::Lease;
use crate::outcome::Failure;

/// The environment ended: its deployment, and any a holder was about to
/// make, `inactive` (GitHub shows a transient environment destroyed), with
/// `why` as the status's description.
pub fn remove<C: Capabilities>(
    caps: &mut C,
    target: &Target<'_>,
    lease: &mut Lease,
    why: &str,
) -> Result<(), Failure> {
    let description = clip(&format!("Removed: {why}"));
    if let Some(pending) = lease.github.pending_sha.clone() {
        let step = "find a deployment an earlier request left";
        for stray in find(caps, target, &pending, step)?.unwrap_or_default() {
            give_inactive(caps, target, stray.id, false, &description)?;
        }
        lease.github.pending_sha = None;
    }
    if let Some(id) = lease.github.deployment_id {
        let inactive = NewDeploymentStatus {
            state: DeploymentState::Inactive,
            description,
            environment_url: None,
            log_url: None,
        };
        let ensured = Ensured { id, created: false };
        report(caps, target, ensured, &inactive, lease)?;
    }
    Ok(())
}
