//! The process's own credentials, shared by every redactor of the process.
//!
//! What is in it: the GitHub App's private key, the Runtime Service token,
//! the Segment write key, userinfo in configured URLs (for the life of the
//! process), and what is minted or refreshed while it runs — installation
//! tokens, App JWTs, AWS credentials — each until it expires plus
//! [`GRACE`]: a service may still quote a token shortly after it stopped
//! working, never for long, and a token past its expiry opens nothing.
//!
//! Bound: the set holds the static credentials and the tokens alive in the
//! last expiry + [`GRACE`]; expired ones are dropped every [`SWEEP_EVERY`]
//! when something is registered (if nothing is, nothing grows). Adding or
//! dropping one is a map operation ([`Needles`]): nothing is rebuilt, and a
//! scrub's cost does not depend on how many came and went.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, SystemTime};

use super::needles::{Needles, Slot};
use super::{MIN_SECRET_BYTES, parts};

/// How long a credential is still looked for after it expired.
pub const GRACE: Duration = Duration::from_secs(10 * 60);
/// How often expired credentials are looked for.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

#[derive(Clone)]
pub struct Credentials(Arc<Shared>);

struct Shared {
    state: RwLock<State>,
    clock: Clock,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) needles: Needles,
    entries: HashMap<Box<str>, Entry>,
    next_sweep: Option<SystemTime>,
}

struct Entry {
    /// None: for the life of the process.
    until: Option<SystemTime>,
    slots: Vec<Slot>,
}

impl Default for Credentials {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemTime::now))
    }
}

/// Never their values: how many there are.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({} registered)", self.len())
    }
}

impl Credentials {
    /// On another clock than the system's (tests of expiry).
    pub fn with_clock(clock: Clock) -> Self {
        Self(Arc::new(Shared {
            state: RwLock::default(),
            clock,
        }))
    }

    /// How many credentials are known now.
    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many needles (credentials and their parts) are searched for.
    pub fn needles(&self) -> usize {
        self.read().needles.len()
    }

    /// Remember a credential for the life of the process. One shorter than
    /// [`MIN_SECRET_BYTES`] is not a credential any service issues (only
    /// test setups have them, e.g. moto's `test` keys) and would match
    /// ordinary text: it is left out.
    pub fn register(&self, secret: &str) {
        self.remember(secret, None);
    }

    /// Remember a credential that stops working at `expires`: it is looked
    /// for until then plus [`GRACE`].
    pub fn register_until(&self, secret: &str, expires: SystemTime) {
        self.remember(secret, Some(expires + GRACE));
    }

    /// Remember a credential that lives `lifetime` from now (None: not
    /// known, then as long as GitHub's longest, an hour).
    pub fn register_for(&self, secret: &str, lifetime: Option<Duration>) {
        let lifetime = lifetime.unwrap_or(Duration::from_secs(3600));
        self.register_until(secret, (self.0.clock)() + lifetime);
    }

    /// The userinfo of a configured URL, if any (with its parts).
    pub fn register_url(&self, url: &str) {
        for part in parts::of(url).into_iter().filter(|p| p != url) {
            self.register(&part);
        }
    }

    /// A PEM key: its body, every line of it (with its parts).
    pub fn register_pem(&self, pem: &str) {
        self.register(pem);
    }

    fn remember(&self, secret: &str, until: Option<SystemTime>) {
        if secret.len() < MIN_SECRET_BYTES {
            return;
        }
        let now = (self.0.clock)();
        let mut state = self.0.state.write().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = state.entries.get_mut(secret) {
            entry.until = match (entry.until, until) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        } else {
            let slots = parts::of(secret)
                .iter()
                .filter_map(|part| state.needles.insert(part.as_bytes()))
                .collect();
            state.entries.insert(secret.into(), Entry { until, slots });
        }
        if state.next_sweep.is_none_or(|due| now >= due) {
            state.next_sweep = Some(now + SWEEP_EVERY);
            sweep(&mut state, now);
        }
    }

    /// Drop every credential whose time is up, now.
    pub fn sweep(&self) {
        let now = (self.0.clock)();
        sweep(
            &mut self.0.state.write().unwrap_or_else(|p| p.into_inner()),
            now,
        );
    }

    pub(super) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.0.state.read().unwrap_or_else(|p| p.into_inner())
    }
}

fn sweep(state: &mut State, now: SystemTime) {
    let State {
        needles, entries, ..
    } = state;
    entries.retain(|_, entry| {
        let keep = entry.until.is_none_or(|until| now < until);
        if !keep {
            entry.slots.iter().for_each(|slot| needles.remove(*slot));
        }
        keep
    });
    needles.tidy();
    entries.shrink_to(entries.len() * 2);
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn expired_credentials_leave_the_set_after_the_grace() {
        let now = Arc::new(Mutex::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1e9 as u64),
        ));
        let clock = now.clone();
        let credentials = Credentials::with_clock(Arc::new(move || *clock.lock().unwrap()));
        credentials.register("static-runtime-token");
        credentials.register_for("ghs_short_lived_0001", Some(Duration::from_secs(90)));
        assert_eq!(credentials.len(), 2);
        *now.lock().unwrap() += Duration::from_secs(90) + GRACE - Duration::from_secs(1);
        credentials.sweep();
        assert_eq!(credentials.len(), 2, "still within the grace");
        *now.lock().unwrap() += Duration::from_secs(2);
        credentials.sweep();
        assert_eq!(credentials.len(), 1);
        assert_eq!(credentials.needles(), 1);
        // Registered again: the longest life wins, and none beats forever.
        credentials.register_for("static-runtime-token", Some(Duration::from_secs(1)));
        *now.lock().unwrap() += Duration::from_secs(86_400);
        credentials.sweep();
        assert_eq!(credentials.len(), 1);
    }

    #[test]
    fn registering_sweeps_on_its_own() {
        let now = Arc::new(Mutex::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1e9 as u64),
        ));
        let clock = now.clone();
        let credentials = Credentials::with_clock(Arc::new(move || *clock.lock().unwrap()));
        for minted in 0..1_000 {
            credentials.register_for(
                &format!("ghs_token_{minted:08}"),
                Some(Duration::from_secs(60)),
            );
            *now.lock().unwrap() += Duration::from_secs(1);
        }
        // Alive: the last 60 s of tokens plus the grace, plus one sweep's lag.
        let bound = (60 + GRACE.as_secs() + SWEEP_EVERY.as_secs()) as usize;
        assert!(credentials.len() <= bound, "{}", credentials.len());
    }
}
