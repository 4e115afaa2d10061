//! What the holders of an environment did on GitHub: its pull-request
//! comment, its deployments and their last status, and a deployment about
//! to be created.
//!
//! GitHub has no transaction to join, so what a holder did there is only
//! known if it is written down as it happens. It is kept on the
//! environment's lease item (`lease.rs`) and written with every renewal,
//! under the same condition: the next holder reads exactly what the last
//! one left, cleans up exactly that, and needs no walk over the branch's
//! history on GitHub. docs/data-model.md describes the attributes as part
//! of the lease item's contract.

use crate::capabilities::Item;
use crate::item::{get_s, get_u64, n, s};

/// What the holders of an environment did on GitHub, kept on the lease item.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GitHubState {
    /// The pull-request comment, and a digest of the body it was last given.
    pub comment_id: Option<u64>,
    pub comment_url: Option<String>,
    pub comment_digest: Option<String>,
    /// The newest deployment, its commit, and a digest of the last status it
    /// was given.
    pub deployment_id: Option<u64>,
    pub deployment_sha: Option<String>,
    pub deployment_status: Option<String>,
    /// A deployment is about to be (or was, by a delivery that did not live
    /// to record its id) created for this commit.
    pub pending_sha: Option<String>,
    /// The environment's earlier deployments, retired, by commit (oldest
    /// first, at most [`RETIRED_KEPT`]): a push back to one of them shows
    /// its state on that deployment again instead of making a second.
    pub retired: Vec<(String, u64)>,
    /// `retired` names every deployment the environment ever had besides
    /// the newest (true from the environment's first holder until the list
    /// drops one): a commit not in it never had one, so none is looked for.
    pub history_complete: bool,
    /// This holder made the lease item: no delivery held the environment
    /// before, so nothing of it exists on GitHub and nothing need be looked
    /// for. Not stored.
    pub first_holder: bool,
}

/// How many retired deployments the lease item remembers by commit.
pub const RETIRED_KEPT: usize = 32;

impl GitHubState {
    /// Remember a deployment retired for `sha` (the oldest is forgotten past
    /// [`RETIRED_KEPT`], and the history is then no longer complete).
    pub fn remember_retired(&mut self, sha: &str, id: u64) {
        self.retired.retain(|(kept, _)| kept != sha);
        self.retired.push((sha.to_string(), id));
        if self.retired.len() > RETIRED_KEPT {
            self.retired.remove(0);
            self.history_complete = false;
        }
    }

    /// The retired deployment of `sha`, taken out of the list.
    pub fn take_retired(&mut self, sha: &str) -> Option<u64> {
        let at = self.retired.iter().position(|(kept, _)| kept == sha)?;
        Some(self.retired.remove(at).1)
    }
}

impl GitHubState {
    /// As the lease item holds it.
    pub(crate) fn read(item: &Item) -> Self {
        let text = |name| {
            get_s(item, name)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let number = |name| get_u64(item, name).filter(|v| *v != 0);
        Self {
            comment_id: number("commentId"),
            comment_url: text("commentUrl"),
            comment_digest: text("commentDigest"),
            deployment_id: number("deploymentId"),
            deployment_sha: text("deploymentSha"),
            deployment_status: text("deploymentStatus"),
            pending_sha: text("pendingDeploymentSha"),
            retired: get_s(item, "retiredDeployments")
                .unwrap_or("")
                .split(',')
                .filter_map(|entry| {
                    let (sha, id) = entry.split_once('=')?;
                    Some((sha.to_string(), id.parse().ok()?))
                })
                .collect(),
            // Absent on a lease item written before the list was kept.
            history_complete: get_s(item, "deploymentHistory") == Some("complete"),
            first_holder: false,
        }
    }

    /// As attributes to set (absent values as 0 or "").
    pub(crate) fn attributes(&self) -> Item {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        vec![
            n("commentId", self.comment_id.unwrap_or(0)),
            s("commentUrl", &text(&self.comment_url)),
            s("commentDigest", &text(&self.comment_digest)),
            n("deploymentId", self.deployment_id.unwrap_or(0)),
            s("deploymentSha", &text(&self.deployment_sha)),
            s("deploymentStatus", &text(&self.deployment_status)),
            s("pendingDeploymentSha", &text(&self.pending_sha)),
            s(
                "retiredDeployments",
                &self
                    .retired
                    .iter()
                    .map(|(sha, id)| format!("{sha}={id}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            s(
                "deploymentHistory",
                if self.history_complete {
                    "complete"
                } else {
                    "partial"
                },
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_github_state_round_trips_through_the_item() {
        let state = GitHubState {
            comment_id: Some(7),
            comment_url: Some("https://github.com/acme/shop/pull/7#issuecomment-7".into()),
            comment_digest: Some("abc".into()),
            deployment_id: Some(9),
            deployment_sha: Some("s".into()),
            deployment_status: None,
            pending_sha: Some("p".into()),
            retired: vec![("a".into(), 3), ("b".into(), 5)],
            history_complete: true,
            first_holder: false,
        };
        let item = state.attributes();
        assert_eq!(GitHubState::read(&item), state);
        let none = GitHubState::default();
        assert_eq!(GitHubState::read(&none.attributes()), none);
    }

    #[test]
    fn the_retired_list_forgets_the_oldest_and_then_is_partial() {
        let mut state = GitHubState {
            history_complete: true,
            ..GitHubState::default()
        };
        for i in 0..RETIRED_KEPT as u64 {
            state.remember_retired(&format!("sha{i}"), i);
        }
        state.remember_retired("sha0", 100);
        assert!(
            state.history_complete,
            "a commit seen again is not a new entry"
        );
        assert_eq!(state.retired.last(), Some(&("sha0".to_string(), 100)));
        state.remember_retired("one-more", 200);
        assert!(!state.history_complete);
        assert_eq!(state.retired.len(), RETIRED_KEPT);
        assert_eq!(state.take_retired("one-more"), Some(200));
        assert_eq!(state.take_retired("one-more"), None);
    }
}
