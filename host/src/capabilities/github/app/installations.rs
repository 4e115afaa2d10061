//! What envmgr holds per GitHub App installation, and its bound.
//!
//! A platform serves thousands of installations over months; each one seen
//! gets a state (its turn, its API token, its rate-limit figures). An
//! installation idle for longer than a token lives ([`IDLE`], GitHub's
//! hour) has nothing worth keeping — its token has expired, its rate-limit
//! window has reset — so it is dropped, unless a request holds it right
//! now. Bound: the installations used in the last hour, swept at most
//! every [`SWEEP_EVERY`] as they are used.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::client::InstallationState;

/// An installation unused this long is forgotten.
pub const IDLE: Duration = Duration::from_secs(3_600);
/// How often idle installations are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Installations {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Each with when it was last used.
    states: HashMap<u64, (Arc<InstallationState>, Instant)>,
    last_sweep: Option<Instant>,
}

impl Installations {
    /// The installation's state (made when first used), marked used now.
    pub fn get(&self, installation: u64) -> Arc<InstallationState> {
        self.get_at(installation, Instant::now())
    }

    fn get_at(&self, installation: u64, now: Instant) -> Arc<InstallationState> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner
            .last_sweep
            .is_none_or(|swept| now.duration_since(swept) >= SWEEP_EVERY)
        {
            inner.last_sweep = Some(now);
            evict_idle(&mut inner.states, now);
        }
        let (state, used) = inner
            .states
            .entry(installation)
            .or_insert_with(|| (Arc::default(), now));
        *used = now;
        state.clone()
    }

    /// Every installation held, by id.
    pub fn each(&self) -> Vec<(u64, Arc<InstallationState>)> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .states
            .iter()
            .map(|(id, (state, _))| (*id, state.clone()))
            .collect()
    }

    /// How many installations are held.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .states
            .len()
    }
}

/// Drop the installations idle past [`IDLE`] that no request holds.
fn evict_idle(states: &mut HashMap<u64, (Arc<InstallationState>, Instant)>, now: Instant) {
    states.retain(|_, (state, used)| {
        Arc::strong_count(state) > 1 || now.duration_since(*used) < IDLE
    });
    states.shrink_to(states.len() * 2);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installations_idle_past_a_token_lifetime_are_forgotten_unless_in_use() {
        let installations = Installations::default();
        let start = Instant::now();
        for id in 0..1_000 {
            installations.get_at(id, start);
        }
        let busy = installations.get_at(7, start);
        assert_eq!(installations.len(), 1_000);
        // An hour on, one more installation is used: the sweep keeps it and
        // the one a request still holds.
        installations.get_at(5_000, start + IDLE + SWEEP_EVERY);
        let mut left: Vec<u64> = installations.each().into_iter().map(|(id, _)| id).collect();
        left.sort();
        assert_eq!(left, [7, 5_000]);
        drop(busy);
    }
}
