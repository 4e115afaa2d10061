//! Copying the WAL back into the database file, off the writer's thread,
//! and keeping the WAL file bounded.
//!
//! A passive checkpoint never waits for, nor blocks, readers and the
//! writer; but it cannot copy past the oldest open read, and the WAL file
//! only starts over when no reader uses it. Readers that overlap without
//! a gap (a busy `serve`'s queue polls and lookups, `show` in a loop, a
//! second process) therefore starve it: the file grows with every commit,
//! and every read of a page searches a longer index. So when the WAL holds
//! more than [`RESTART_PAST_FRAMES`] pages after a passive pass, this
//! thread asks the writer's thread ([`Wanted`]) for a restarting
//! checkpoint between two batches: it waits (at most [`RESTART_WAIT`],
//! holding off the next batch that long at worst) for the readers of older
//! snapshots to finish — readers that start meanwhile read the file, not
//! the WAL — and the writer's next commit writes the WAL from its start
//! again. It must run there: the checkpoint needs the write lock too, and
//! from another connection it would wait in vain for a busy writer's gaps.
//!
//! Restarted, not truncated: the file keeps its length and its blocks, so
//! the commits after overwrite pages the file system already has. A WAL
//! truncated to nothing had every block allocated again as it grew back
//! (the file system's part of each WAL write) and its cached pages dropped
//! by the truncation (docs/performance.md, "seventh session").
//!
//! Bound: the WAL file is as long as the most it held before a restart
//! ([`RESTART_PAST_FRAMES`] pages and the commits of one wait, more while
//! readers keep restarts off), and `journal_size_limit`
//! ([`JOURNAL_SIZE_LIMIT`]) cuts it back to that when the WAL starts over
//! past it. When the process ends, SQLite checkpoints and removes the WAL
//! as the last connection closes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::Connection;

/// How often the WAL is copied back into the database file (the flush that
/// comes with it is what makes the consumer's writes survive a power loss,
/// at the latest this long after).
pub const EVERY: Duration = Duration::from_millis(100);
/// Past this many pages in the WAL (16 MiB of 4 KiB pages), a checkpoint
/// that readers held up waits for them and restarts the WAL.
pub const RESTART_PAST_FRAMES: i64 = 4_096;
/// The longest a restarting checkpoint waits for readers (and holds off the
/// writer); if they are not done by then, it is tried again next time.
pub const RESTART_WAIT: Duration = Duration::from_millis(250);
/// The length the WAL file is cut back to when it starts over past it.
pub const JOURNAL_SIZE_LIMIT: i64 = 64 << 20;

/// When to restart the WAL.
#[derive(Clone, Copy)]
pub struct Policy {
    pub every: Duration,
    pub restart_past_frames: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            every: EVERY,
            restart_past_frames: RESTART_PAST_FRAMES,
        }
    }
}

/// A restarting checkpoint the writer's thread owes, between two batches.
#[derive(Clone, Default)]
pub struct Wanted {
    asked: Arc<AtomicBool>,
    /// After a restart readers kept from finishing, the next waits this
    /// long (doubling to [`BACKOFF_MAX`]): one reader that holds its
    /// snapshot for long must not cost every batch [`RESTART_WAIT`].
    backoff: Arc<std::sync::Mutex<Backoff>>,
}

#[derive(Default)]
struct Backoff {
    not_before: Option<std::time::Instant>,
    wait: Duration,
}

/// The longest wait between restarts readers keep failing.
pub const BACKOFF_MAX: Duration = Duration::from_secs(8);

impl Wanted {
    /// On the writer's thread, after a batch: checkpoint the whole WAL so
    /// the next commit starts it over, if asked to and not backing off.
    pub fn restart_if_wanted(&self, writer: &Connection) {
        if !self.asked.swap(false, Ordering::Relaxed) {
            return;
        }
        let mut backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        if backoff.not_before.is_some_and(|at| now < at) {
            return;
        }
        let restarted = writer.busy_timeout(RESTART_WAIT).and_then(|()| {
            let done = writer.query_row("PRAGMA wal_checkpoint(RESTART)", [], |row| {
                row.get::<_, i64>(0)
            });
            writer.busy_timeout(super::BUSY_TIMEOUT)?;
            done
        });
        match restarted {
            Ok(0) => *backoff = Backoff::default(),
            // Readers (or another process's writer) outlasted the wait.
            Ok(_busy) => {
                backoff.wait = (backoff.wait * 2).clamp(RESTART_WAIT, BACKOFF_MAX);
                backoff.not_before = Some(now + backoff.wait);
            }
            Err(e) => {
                backoff.wait = BACKOFF_MAX;
                backoff.not_before = Some(now + backoff.wait);
                // The event's name is kept from when the WAL was truncated
                // here (operators alert on it).
                tracing::warn!(error = %e, "local database: truncating the WAL failed; retrying");
            }
        }
    }
}

/// A thread that checkpoints `connection`'s database by `policy`, asking
/// `wanted` for a restart when the WAL is long, until the returned
/// sender is dropped.
pub fn start(
    connection: Connection,
    policy: Policy,
    wanted: Wanted,
) -> anyhow::Result<mpsc::Sender<()>> {
    let (alive, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("envmgr-db-checkpoint".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(policy.every) {
                match checkpoint(&connection, "PASSIVE") {
                    // Readers still on the WAL keep it from starting over,
                    // whether or not every page was copied.
                    Ok((log, _copied)) if log > policy.restart_past_frames => {
                        wanted.asked.store(true, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "local database: checkpoint failed; retrying")
                    }
                }
            }
        })
        .context("starting the database checkpoint thread")?;
    Ok(alive)
}

/// `PRAGMA wal_checkpoint(mode)`: the pages in the WAL and those copied.
/// A checkpoint that could not finish for a busy reader or writer is not
/// an error: it answers with what it did.
fn checkpoint(connection: &Connection, mode: &str) -> rusqlite::Result<(i64, i64)> {
    connection.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok((row.get(1)?, row.get(2)?))
    })
}
