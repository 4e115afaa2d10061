//! "The database file changed": a wake-up for whoever waits on it (the local
//! queue's long poll), so a message sent by another process (`envmgr send`)
//! or by this one is picked up at once rather than at the next poll.
//!
//! Every commit, by any process, writes the WAL file: on Linux an inotify
//! watch on the data directory sees it. Where there is no watch (another
//! OS, no tokio runtime at open, the inotify limit reached) nothing wakes
//! the waiters and they poll, as they do between wake-ups anyway.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::Notify;

/// Wakes the waiters when the file changes; `watched` says whether it can.
pub struct Changes {
    notify: Arc<Notify>,
    watched: bool,
}

impl Changes {
    /// Watch the database file at `path` (its directory: the WAL file comes
    /// and goes).
    pub fn watch(path: &Path) -> Self {
        let notify = Arc::new(Notify::new());
        let watched = watch(path, &notify)
            .inspect_err(|e| {
                tracing::debug!(error = %e, "no file watch on the database: the local queue polls");
            })
            .is_ok();
        Self { notify, watched }
    }

    /// Nothing to watch (a database in memory): the waiters poll.
    pub fn unwatched() -> Self {
        Self {
            notify: Arc::new(Notify::new()),
            watched: false,
        }
    }

    pub fn notify(&self) -> &Notify {
        &self.notify
    }

    /// Whether commits wake the waiters (else they only poll).
    pub fn watched(&self) -> bool {
        self.watched
    }
}

#[cfg(target_os = "linux")]
fn watch(path: &Path, notify: &Arc<Notify>) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    use inotify::{Inotify, WatchMask};

    let runtime = tokio::runtime::Handle::try_current()?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let inotify = Inotify::init()?;
    inotify.watches().add(dir, WatchMask::MODIFY)?;
    let mut events = inotify.into_event_stream([0u8; 4096])?;
    // Ends with the store: the first change after the last clone is gone.
    let waiters = Arc::downgrade(notify);
    runtime.spawn(async move {
        while let Some(Ok(event)) = events.next().await {
            let ours = event
                .name
                .is_some_and(|n| n.to_string_lossy().starts_with(name.as_str()));
            if !ours {
                continue;
            }
            match waiters.upgrade() {
                Some(notify) => notify.notify_waiters(),
                None => break,
            }
        }
    });
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn watch(_path: &Path, _notify: &Arc<Notify>) -> anyhow::Result<()> {
    anyhow::bail!("file watches are only used on Linux")
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::time::Duration;

    use crate::local::Store;
    use crate::support::random_hex;

    /// A commit by another connection (as `envmgr send` in another process
    /// makes) wakes a waiter on this store: no poll needed.
    #[tokio::test]
    async fn a_commit_by_another_connection_wakes_the_waiters() {
        let dir = std::env::temp_dir().join(format!("envmgr-changes-{}", random_hex(6)));
        let here = Store::open_dir(&dir).unwrap();
        assert!(here.changes().watched(), "no inotify watch on Linux");
        let other = Store::open_dir(&dir).unwrap();
        let changed = here.changes().notify().notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        other
            .write(crate::local::Durability::SurvivesPowerLoss, |connection| {
                connection.execute_batch("CREATE TABLE IF NOT EXISTS touched (x)")
            })
            .await
            .unwrap();
        // The bound only keeps a broken watch from hanging the suite.
        tokio::time::timeout(Duration::from_secs(30), changed)
            .await
            .expect("the commit woke no one");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
