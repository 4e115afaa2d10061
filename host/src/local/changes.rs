//! "The database file changed": a wake-up for whoever waits on it (the local
//! queue's long poll), so a message sent by another process (`envmgr send`)
//! or by this one is picked up at once rather than at the next poll.
//!
//! Every commit that inserted or updated a message, by any process of this
//! release, is **announced** (other commits wake no one: nothing waits for
//! them; [`super::writer`]): the writer wakes this process's waiters
//! directly and reads the one byte of
//! the wake file beside the database (`envmgr.db-wake`), which every
//! process watches (inotify, Linux: a read is an `IN_ACCESS` event). The
//! watch is on that one file, not on the directory: a watch on the
//! directory made the kernel queue an event for each of the WAL's writes
//! (two per page), ~6 % of a busy `serve`'s CPU (docs/performance.md);
//! the announcement is one event per commit. A read, not a touch: a
//! touch changes the inode, which the file system journals, and a commit
//! then waited for the journal (tens of ms after a large write-back); a
//! read changes nothing (`relatime`: the access time at most once a day).
//! Where there is no watch (another OS, no tokio runtime at open, the
//! inotify limit reached, a file that cannot be made) nothing wakes the
//! waiters from outside and they poll, as they do between wake-ups anyway
//! — as they do for an older release's `send`, which does not announce.

use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Notify;

/// The wake file's name: the database file's with this suffix (as SQLite
/// names its `-wal` and `-shm`).
const WAKE_SUFFIX: &str = "-wake";

/// Wakes the waiters when the file changes; `watched` says whether it can.
pub struct Changes {
    notify: Arc<Notify>,
    watched: bool,
    /// The wake file (one byte, whatever the traffic), open for reading it;
    /// `None` in memory or when it could not be made.
    wake: Option<std::fs::File>,
}

/// The wake file of the database at `path`.
pub fn wake_file(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(WAKE_SUFFIX);
    PathBuf::from(name)
}

impl Changes {
    /// Watch the wake file of the database file at `path` (made if
    /// missing).
    pub fn watch(path: &Path) -> Self {
        let notify = Arc::new(Notify::new());
        let wake_path = wake_file(path);
        let wake = open_wake_file(&wake_path)
            .inspect_err(|e| {
                tracing::debug!(error = %e, "no wake file beside the database: the local queue polls");
            })
            .ok();
        let watched = wake.is_some()
            && watch(&wake_path, &notify)
                .inspect_err(|e| {
                    tracing::debug!(error = %e, "no file watch on the database: the local queue polls");
                })
                .is_ok();
        Self {
            notify,
            watched,
            wake,
        }
    }

    /// Nothing to watch (a database in memory): the waiters poll.
    pub fn unwatched() -> Self {
        Self {
            notify: Arc::new(Notify::new()),
            watched: false,
            wake: None,
        }
    }

    pub fn notify(&self) -> &Notify {
        &self.notify
    }

    /// Whether commits wake the waiters (else they only poll).
    pub fn watched(&self) -> bool {
        self.watched
    }

    /// A commit changed the messages: wake this process's waiters, and
    /// every other process's through the wake file. A failed read only leaves the
    /// others to their poll.
    pub fn announce(&self) {
        self.notify.notify_waiters();
        if let Some(wake) = &self.wake {
            let _ = wake.read_at(&mut [0u8; 1], 0);
        }
    }
}

/// The wake file, holding one byte (a read of nothing is no event).
fn open_wake_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    if file.metadata()?.len() == 0 {
        file.write_at(b"\n", 0)?;
    }
    Ok(file)
}

#[cfg(target_os = "linux")]
fn watch(wake: &Path, notify: &Arc<Notify>) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    use inotify::{Inotify, WatchMask};

    let runtime = tokio::runtime::Handle::try_current()?;
    let inotify = Inotify::init()?;
    // An announcement is a read; a write or a touch counts too.
    inotify.watches().add(
        wake,
        WatchMask::ACCESS | WatchMask::MODIFY | WatchMask::ATTRIB | WatchMask::CLOSE_WRITE,
    )?;
    let mut events = inotify.into_event_stream([0u8; 1024])?;
    // Ends with the store: the first change after the last clone is gone.
    let waiters = Arc::downgrade(notify);
    runtime.spawn(async move {
        while let Some(Ok(_event)) = events.next().await {
            match waiters.upgrade() {
                Some(notify) => notify.notify_waiters(),
                None => break,
            }
        }
    });
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn watch(_wake: &Path, _notify: &Arc<Notify>) -> anyhow::Result<()> {
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
        a_commit_by(&other).wakes(&here).await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    struct Committer<'a>(&'a Store);

    fn a_commit_by(store: &Store) -> Committer<'_> {
        Committer(store)
    }

    impl Committer<'_> {
        /// Commit a message with `self`'s store and wait for `listener`'s
        /// waiters to be woken.
        async fn wakes(self, listener: &Store) {
            let changed = listener.changes().notify().notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            self.0
                .write(crate::local::Durability::SurvivesCrash, |connection| {
                    connection.execute(
                        "INSERT INTO messages (id, queue, body, attributes, sent_at_ms, visible_at_ms)
                         VALUES (?1, 'q', '{}', '{}', 0, 0)",
                        [crate::support::random_hex(8)],
                    )
                })
                .await
                .unwrap();
            // The bound only keeps a broken watch from hanging the suite.
            tokio::time::timeout(Duration::from_secs(30), changed)
                .await
                .expect("the commit woke no one");
        }
    }

    /// The wake file is the database's with `-wake`, private, one byte;
    /// a commit wakes this process's waiters without going through the
    /// kernel (the other test: another process's, through it).
    #[tokio::test]
    async fn a_commit_wakes_this_process_and_the_wake_file_is_private() {
        use std::os::unix::fs::PermissionsExt as _;

        let dir = std::env::temp_dir().join(format!("envmgr-changes-{}", random_hex(6)));
        let store = Store::open_dir(&dir).unwrap();
        let wake = super::wake_file(&dir.join(crate::local::FILE_NAME));
        assert_eq!(wake.file_name().unwrap(), "envmgr.db-wake");
        let meta = std::fs::metadata(&wake).expect("the wake file was made at open");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 1, "a read of an empty file is no event");
        a_commit_by(&store).wakes(&store).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
