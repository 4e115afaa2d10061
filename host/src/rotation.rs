//! Credentials read from files rotate without a restart: the GitHub App's
//! private key, the Runtime Service token and the Segment write key are
//! re-read when their file changes (looked at every [`LOOK_EVERY`]) and on
//! SIGHUP, and the running `serve` uses the new one from its next request.
//!
//! A changed file is read once it stays the same across two looks, taken
//! only if it did not change while read, and only if it is valid (an App
//! key must parse; no credential may be empty): a file being written is
//! waited for, a broken one refused with an error line, and the previous
//! credential stays, so a rotation cannot take the host down. The new credential is registered
//! with the redactor before anything uses it. Credentials given in the
//! environment (`ENVMGR_GITHUB_PRIVATE_KEY`, …) are not watched: a process's
//! environment does not change.
//!
//! The order for an operator (docs/guides/rotate-credentials.md): add the new credential
//! where it is checked (a second key of the App, a second token of the
//! Runtime Service), write it to the file, wait for `credential rotated`
//! on every host, then remove the old one.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};
use tokio::sync::watch;
use tracing::{error, info};

/// How often the watched files are looked at.
pub const LOOK_EVERY: Duration = Duration::from_secs(2);

/// SIGHUP's handler, installed as `serve` starts ([`catch_hangups`]):
/// SIGHUP's default action ends the process, and `serve` may take a while
/// (compiling logic, waiting for SQS) before [`Rotation::run`] listens.
static HANGUPS: Mutex<Option<tokio::signal::unix::Signal>> = Mutex::new(None);

/// From now on SIGHUP is caught (and kept for [`Rotation::run`]), not
/// fatal. Needs a tokio runtime.
pub fn catch_hangups() -> std::io::Result<()> {
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    *HANGUPS.lock().unwrap_or_else(|p| p.into_inner()) = Some(hangups);
    Ok(())
}

/// A value that rotates: readers take the current one per use.
pub struct Current<T>(RwLock<Arc<T>>);

impl<T> Current<T> {
    pub fn new(value: T) -> Self {
        Self(RwLock::new(Arc::new(value)))
    }

    pub fn get(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, value: T) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(value);
    }
}

/// Takes a credential's new text: checks it, and puts it in use; an error
/// leaves the previous one in use.
pub type Apply = Box<dyn Fn(&str) -> anyhow::Result<()> + Send + Sync>;

/// The credential files a host watches.
#[derive(Default)]
pub struct Rotation {
    watched: Mutex<Vec<Watched>>,
}

struct Watched {
    what: &'static str,
    path: PathBuf,
    /// The file's identity and size when last read: a change of any is a
    /// change (a Kubernetes secret volume swaps a symlink: a new inode).
    stamp: Option<Stamp>,
    /// A change seen on the last look, read when the next one sees it too.
    pending: Option<Option<Stamp>>,
    /// The sha256 of the text in use, so a SIGHUP without a change is
    /// quiet.
    digest: [u8; 32],
    apply: Apply,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
    device: u64,
}

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
        device: meta.dev(),
    })
}

/// What one look did to one file.
#[derive(Debug, PartialEq, Eq)]
pub enum Looked {
    Unchanged,
    Rotated,
    Refused(String),
}

impl Rotation {
    /// Watch `path`, whose text `current` is in use now; `apply` takes
    /// each new text.
    pub fn watch(&self, what: &'static str, path: PathBuf, current: &str, apply: Apply) {
        let watched = Watched {
            what,
            stamp: stamp(&path),
            pending: None,
            path,
            digest: Sha256::digest(current.as_bytes()).into(),
            apply,
        };
        self.lock().push(watched);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Watched>> {
        self.watched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-read the files that changed (every one when `all`, as on SIGHUP)
    /// and put new credentials in use; what became of each. A change is
    /// read once the file looks the same on two looks in a row (a writer
    /// that truncates and writes in place is done by then), and taken only
    /// if it did not change while it was read.
    pub fn look(&self, all: bool) -> Vec<(&'static str, Looked)> {
        let mut looked = Vec::new();
        for watched in self.lock().iter_mut() {
            let now = stamp(&watched.path);
            if !all {
                if now == watched.stamp {
                    watched.pending = None;
                    continue;
                }
                if watched.pending != Some(now) {
                    watched.pending = Some(now);
                    continue;
                }
            }
            watched.pending = None;
            watched.stamp = now;
            let outcome = watched.reload();
            if stamp(&watched.path) != now {
                // Written to while read: judged again once it settles.
                watched.stamp = None;
                continue;
            }
            match &outcome {
                Looked::Rotated => info!(
                    credential = watched.what,
                    path = %watched.path.display(),
                    "credential rotated"
                ),
                Looked::Refused(why) => error!(
                    credential = watched.what,
                    path = %watched.path.display(),
                    error = %why,
                    "credential file changed but not taken; still using the previous one"
                ),
                Looked::Unchanged => {}
            }
            looked.push((watched.what, outcome));
        }
        looked
    }

    /// Look every [`LOOK_EVERY`], and at every file on SIGHUP, until `stop`.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let caught = HANGUPS.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut hangups = match caught {
            Some(hangups) => Some(hangups),
            None => match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(hangups) => Some(hangups),
                Err(e) => {
                    error!(error = %e, "SIGHUP not handled; credential files are still looked at");
                    None
                }
            },
        };
        loop {
            let all = tokio::select! {
                _ = tokio::time::sleep(LOOK_EVERY) => false,
                Some(()) = async { hangups.as_mut()?.recv().await } => {
                    info!("SIGHUP: reading every credential file again");
                    true
                }
                _ = stop.changed() => return,
            };
            // A few file reads: off the runtime's threads.
            let rotation = self.clone();
            let _ = tokio::task::spawn_blocking(move || rotation.look(all)).await;
        }
    }
}

impl Watched {
    fn reload(&mut self) -> Looked {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text.trim().to_string(),
            Err(e) => return Looked::Refused(format!("reading it: {e}")),
        };
        if text.is_empty() {
            return Looked::Refused("it is empty".into());
        }
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if digest == self.digest {
            return Looked::Unchanged;
        }
        match (self.apply)(&text) {
            Ok(()) => {
                self.digest = digest;
                Looked::Rotated
            }
            Err(e) => Looked::Refused(format!("{e:#}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("envmgr-rotation-{}", crate::support::random_hex(6)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A changed file is taken when it checks out; an empty or refused one
    /// leaves the previous credential; SIGHUP without a change is quiet.
    #[test]
    fn a_changed_file_is_taken_once_valid_and_only_then() {
        let path = file("token", "old\n");
        let current = Arc::new(Current::new("old".to_string()));
        let rotation = Rotation::default();
        let target = current.clone();
        rotation.watch(
            "token",
            path.clone(),
            "old",
            Box::new(move |text| {
                anyhow::ensure!(!text.contains("broken"), "not a token");
                target.set(text.to_string());
                Ok(())
            }),
        );
        assert!(rotation.look(false).is_empty(), "nothing changed");
        assert_eq!(rotation.look(true), [("token", Looked::Unchanged)]);

        // A change is read on the second look that sees it.
        std::fs::write(&path, "").unwrap();
        assert!(
            rotation.look(false).is_empty(),
            "read while it may be written"
        );
        let refused = rotation.look(false);
        assert!(
            matches!(refused[..], [(_, Looked::Refused(_))]),
            "{refused:?}"
        );
        std::fs::write(&path, "broken-token").unwrap();
        rotation.look(false);
        let refused = rotation.look(false);
        assert!(
            matches!(refused[..], [(_, Looked::Refused(_))]),
            "{refused:?}"
        );
        assert_eq!(*current.get(), "old");

        // Same length as before, written by rename (a new inode).
        let next = path.with_extension("next");
        std::fs::write(&next, "new-token!!!").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert!(rotation.look(false).is_empty());
        assert_eq!(rotation.look(false), [("token", Looked::Rotated)]);
        assert_eq!(*current.get(), "new-token!!!");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
