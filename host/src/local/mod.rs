//! The embedded database behind the `local` backends: one SQLite file holds
//! the queues, the tables, the local KMS key, and the record of every GitHub,
//! Segment and Runtime Service call. Nothing to install or start, and no
//! cloud account: the default when `serve` has no config.
//!
//! Several processes may share the file (`serve` in one terminal, `send` in
//! another): WAL journaling lets readers and one writer work at once, and a
//! busy timeout makes writers wait for each other instead of failing.
//!
//! Within a process, no call hops through a blocking pool: one thread owns
//! the writing connection, fed by a channel, and runs every write with
//! **group commit** (the concurrent messages' transactions committed
//! together, each all-or-nothing: [`writer`]); reads run where they are
//! asked for, on a connection of a small pool: WAL never makes a read wait
//! for a writer, and a read (an indexed lookup, tens of microseconds) costs
//! less than the two thread wake-ups a hop would.
//!
//! **Durability** is chosen per operation ([`Durability`]): what a producer
//! or an operator writes (`send`, admin commands, the logic pointer) is on
//! the disk before the call returns; what the consumer writes (receives,
//! deletes, visibility, the logic's items and records) survives a crash of
//! the process, and a power loss may lose its last commits, which only
//! makes messages come back (docs/performance.md).

mod changes;
mod checkpoint;
pub mod expiry;
pub mod logs;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::capabilities::{Error, ErrorCode, error};
use writer::{Job, Keep};

/// The file name inside a data directory.
pub const FILE_NAME: &str = "envmgr.db";

/// How long a write waits for another process's write to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements kept per connection: every statement the local
/// backends run, so none is parsed twice.
const STATEMENT_CACHE: usize = 64;

/// What a committed write survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Durability {
    /// A crash of the process (`kill -9`): the commit is in the WAL file
    /// (the OS has it) before the caller hears of it, but not yet flushed to
    /// the disk (`synchronous=NORMAL`). A power loss or an OS crash may lose
    /// the last such commits, never a part of one, and never one without
    /// every commit before it (WAL keeps commit order): for the consumer's
    /// writes that means messages come back, nothing more.
    SurvivesCrash,
    /// A power loss too: the WAL is flushed (fsync) before the caller hears
    /// of it (`synchronous=FULL`). Everything committed before it, by any
    /// connection, is flushed with it.
    SurvivesPowerLoss,
}

/// An open database file, shared by every local backend of a process.
#[derive(Clone)]
pub struct Store {
    writes: mpsc::Sender<Job>,
    /// Reading connections not in use; one more is opened when all are
    /// (at most one per thread reading at once).
    readers: Arc<Mutex<Vec<Connection>>>,
    /// For [`Store::read`], opened on first use: synchronous callers
    /// (commands that show what the file holds, tests).
    inspector: Arc<OnceLock<Mutex<Connection>>>,
    /// Dropped with the last clone: the checkpointing thread ([`checkpoint`])
    /// then ends.
    _checkpoints: Arc<mpsc::Sender<()>>,
    /// Wakes a long poll when the file changes (any process's commit).
    changes: Arc<changes::Changes>,
    path: PathBuf,
}

/// Open the file with the settings every connection of envmgr uses.
fn connect(path: &Path) -> anyhow::Result<Connection> {
    let connection = Connection::open(path)
        .with_context(|| format!("opening the database {}", path.display()))?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(connection)
}

/// Switch to WAL. On a file that is new, two processes opening it at once
/// (two `serve` started together) may find the other holding the lock the
/// switch needs, and SQLite answers "locked" at once rather than waiting its
/// busy timeout: try again until that timeout.
fn wal(connection: &Connection) -> rusqlite::Result<()> {
    let started = std::time::Instant::now();
    loop {
        match connection.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            done => return done,
        }
    }
}

impl Store {
    /// Open (or create) the database in `data_dir`.
    pub fn open_dir(data_dir: &Path) -> anyhow::Result<Self> {
        private_dir(data_dir)
            .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
        Self::open(&data_dir.join(FILE_NAME))
    }

    /// Open (or create) the database file at `path` and bring its schema up
    /// to date.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Self::open_with(path, checkpoint::Policy::default())
    }

    fn open_with(path: &Path, policy: checkpoint::Policy) -> anyhow::Result<Self> {
        let connection = connect(path)?;
        wal(&connection).context("switching the database to WAL")?;
        // Until the writer chooses per batch: the schema is as durable as a
        // sent message.
        connection.pragma_update(None, "synchronous", "FULL")?;
        schema::create(&connection)
            .with_context(|| format!("creating the schema in {}", path.display()))?;
        // A checkpoint in a commit would hold up the batch (it copies pages
        // and flushes twice): the checkpointing thread does it instead.
        connection.pragma_update(None, "wal_autocheckpoint", 0)?;
        // Bound: what the WAL is cut to when the writer starts it over (and
        // `checkpoint` makes sure it can).
        connection.pragma_update(None, "journal_size_limit", checkpoint::JOURNAL_SIZE_LIMIT)?;
        let wanted = checkpoint::Wanted::default();
        let checkpoints = checkpoint::start(connect(path)?, policy, wanted.clone())?;
        let reader = connect(path)?;
        let writes = writer::start(connection, "envmgr-db-writer".into(), wanted)
            .context("starting the database writer thread")?;
        Ok(Self {
            writes,
            readers: Arc::new(Mutex::new(vec![reader])),
            inspector: Arc::default(),
            _checkpoints: Arc::new(checkpoints),
            changes: Arc::new(changes::Changes::watch(path)),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What wakes a waiter when the file changes, and whether it can.
    pub fn changes(&self) -> &changes::Changes {
        &self.changes
    }

    /// Run `work` as one all-or-nothing transaction, committed with the
    /// writes of other callers waiting at the same time; answered once
    /// committed. An `Err` from `work` undoes its writes (and only its).
    pub async fn write<T, F>(&self, durability: Durability, work: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.write_or_undo(durability, move |connection| work(connection).map(Ok))
            .await
            .map(|kept: Result<T, std::convert::Infallible>| match kept {
                Ok(value) => value,
            })
    }

    /// Like [`Store::write`], and `Ok(Err(_))` from `work` (a refused
    /// condition) undoes its writes too; it is returned as it is.
    pub async fn write_or_undo<T, E, F>(
        &self,
        durability: Durability,
        work: F,
    ) -> rusqlite::Result<Result<T, E>>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<Result<T, E>> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job = Job {
            durability,
            work: Box::new(move |connection| {
                let outcome = match connection {
                    Ok(connection) => writer::guarded(|| work(connection)),
                    // Not run: the batch failed before it.
                    Err(_) => Ok(Err(writer::failure(rusqlite::ffi::SQLITE_ABORT, "not run"))),
                };
                let keep = match &outcome {
                    Ok(Ok(Ok(_))) => Keep::Commit,
                    _ => Keep::Undo,
                };
                let deliver: writer::Deliver = Box::new(move |failed| {
                    let reply = match (outcome, failed) {
                        (Err(panic), _) => Err(panic),
                        (Ok(_), Some(e)) => Ok(Err(writer::replicate(e))),
                        (Ok(result), None) => Ok(result),
                    };
                    let _ = answer.send(reply);
                });
                (keep, deliver)
            }),
        };
        if self.writes.send(job).is_err() {
            return Err(stopped("writer"));
        }
        match answered.await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(stopped("writer")),
        }
    }

    /// Run a read, here, on a reading connection of the pool. It sees every
    /// write that was answered before it was asked for. (Async for the
    /// callers' sake: a read in WAL mode does not wait for writers.)
    pub async fn query<T, F>(&self, work: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let reader = match pooled {
            Some(reader) => reader,
            None => connect(&self.path)
                .map_err(|e| writer::failure(rusqlite::ffi::SQLITE_CANTOPEN, &format!("{e:#}")))?,
        };
        let result = work(&reader);
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(reader);
        result
    }

    /// Synchronous reading, for commands that show what the file holds.
    pub fn read<T>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> anyhow::Result<T> {
        let inspector = match self.inspector.get() {
            Some(inspector) => inspector,
            None => {
                let connection = connect(&self.path)?;
                self.inspector.get_or_init(|| Mutex::new(connection))
            }
        };
        let connection = inspector.lock().unwrap_or_else(|p| p.into_inner());
        work(&connection).with_context(|| format!("reading {}", self.path.display()))
    }
}

/// The error of a call whose database thread is gone (it ends only when the
/// store is dropped, or on a bug).
fn stopped(which: &str) -> rusqlite::Error {
    writer::failure(
        rusqlite::ffi::SQLITE_ABORT,
        &format!("the database {which} thread has stopped"),
    )
}

/// A database failure as a capability error: retryable, like a backend that
/// is briefly unreachable (a locked file, a full disk).
pub fn unavailable(e: rusqlite::Error) -> Error {
    error(ErrorCode::Unavailable, format!("local database: {e}"))
}

/// Create `dir` (and parents) readable and writable by this user only: the
/// database holds the local KMS key next to the ciphertexts, and the logic
/// cache holds native code the host runs.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::random_hex;

    fn store() -> (Store, PathBuf) {
        let dir = std::env::temp_dir().join(format!("envmgr-store-{}", random_hex(6)));
        let store = Store::open_dir(&dir).unwrap();
        store
            .read(|c| c.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)"))
            .unwrap();
        (store, dir)
    }

    fn rows(store: &Store) -> Vec<(String, i64)> {
        store
            .read(|c| {
                c.prepare("SELECT k, v FROM t ORDER BY k")?
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect()
            })
            .unwrap()
    }

    /// Many callers at once: their jobs share batches, and each is kept or
    /// undone as a whole.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn each_callers_transaction_is_all_or_nothing_within_a_batch() {
        let (store, dir) = store();
        let mut callers = tokio::task::JoinSet::new();
        for i in 0..200 {
            let store = store.clone();
            callers.spawn(async move {
                store
                    .write_or_undo(Durability::SurvivesCrash, move |c| {
                        c.execute("INSERT INTO t VALUES (?1, 1)", [format!("a{i:03}")])?;
                        c.execute("INSERT INTO t VALUES (?1, 2)", [format!("b{i:03}")])?;
                        // Every third caller's condition fails after its writes.
                        Ok(if i % 3 == 0 { Err(i) } else { Ok(i) })
                    })
                    .await
                    .unwrap()
            });
        }
        let mut refused = 0;
        while let Some(answer) = callers.join_next().await {
            if answer.unwrap().is_err() {
                refused += 1;
            }
        }
        assert_eq!(refused, 67);
        let kept = rows(&store);
        assert_eq!(kept.len(), 2 * (200 - 67));
        for i in 0..200 {
            let present = kept
                .iter()
                .filter(|(k, _)| k.ends_with(&format!("{i:03}")))
                .count();
            assert_eq!(present, if i % 3 == 0 { 0 } else { 2 }, "caller {i}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A conditional write evaluated inside a batch sees the jobs before it:
    /// read-increment-write by many callers at once loses no increment, and
    /// of many "insert if absent" exactly one wins.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conditions_are_evaluated_in_order_inside_a_batch() {
        let (store, dir) = store();
        store
            .write(Durability::SurvivesPowerLoss, |c| {
                c.execute("INSERT INTO t VALUES ('counter', 0)", [])
            })
            .await
            .unwrap();
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..100 {
            let store = store.clone();
            callers.spawn(async move {
                let claimed = store
                    .write_or_undo(Durability::SurvivesCrash, |c| {
                        let v: i64 =
                            c.query_row("SELECT v FROM t WHERE k = 'counter'", [], |r| r.get(0))?;
                        c.execute("UPDATE t SET v = ?1 WHERE k = 'counter'", [v + 1])?;
                        let taken = c.execute("INSERT OR IGNORE INTO t VALUES ('lease', 1)", [])?;
                        // The increment stays either way; the claim is the
                        // caller's condition.
                        Ok(if taken == 1 { Ok(()) } else { Err(()) })
                    })
                    .await
                    .unwrap();
                claimed.is_ok()
            });
        }
        let mut winners = 0;
        while let Some(won) = callers.join_next().await {
            winners += usize::from(won.unwrap());
        }
        assert_eq!(winners, 1, "one lease holder");
        // Refused callers undid their increment with their claim.
        assert_eq!(
            rows(&store),
            [("counter".to_string(), 1), ("lease".to_string(), 1)]
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A caller's panic is its own: its writes are undone, it sees the
    /// panic, the other callers and the thread go on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_panicking_job_fails_only_its_caller() {
        let (store, dir) = store();
        let mut callers = tokio::task::JoinSet::new();
        for i in 0..20 {
            let store = store.clone();
            callers.spawn(async move {
                store
                    .write(Durability::SurvivesCrash, move |c| {
                        c.execute("INSERT INTO t VALUES (?1, 1)", [format!("k{i:02}")])?;
                        if i == 7 {
                            panic!("a bug in caller 7");
                        }
                        Ok(())
                    })
                    .await
                    .unwrap()
            });
        }
        let mut panicked = 0;
        while let Some(answer) = callers.join_next().await {
            if let Err(e) = answer {
                assert!(e.is_panic());
                panicked += 1;
            }
        }
        assert_eq!(panicked, 1);
        let kept = rows(&store);
        assert_eq!(kept.len(), 19);
        assert!(!kept.iter().any(|(k, _)| k == "k07"));
        let _ = std::fs::remove_dir_all(dir);
    }

    /// An answered write is seen by the next read, on the other thread.
    #[tokio::test]
    async fn a_read_sees_the_write_answered_before_it() {
        let (store, dir) = store();
        for i in 0..50 {
            store
                .write(Durability::SurvivesCrash, move |c| {
                    c.execute("INSERT OR REPLACE INTO t VALUES ('k', ?1)", [i])
                })
                .await
                .unwrap();
            let seen: i64 = store
                .query(|c| c.query_row("SELECT v FROM t WHERE k = 'k'", [], |r| r.get(0)))
                .await
                .unwrap();
            assert_eq!(seen, i);
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Two readers that always overlap (one opens its snapshot before the
    /// other closes its own) never let the WAL start over by itself; with
    /// the writer's truncating checkpoint it stays near its threshold
    /// while 8 MiB are written.
    #[tokio::test(flavor = "multi_thread")]
    async fn readers_that_always_overlap_do_not_grow_the_wal() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = std::env::temp_dir().join(format!("envmgr-wal-{}", random_hex(6)));
        private_dir(&dir).unwrap();
        let path = dir.join(FILE_NAME);
        let policy = checkpoint::Policy {
            every: Duration::from_millis(20),
            truncate_past_frames: 256,
        };
        let store = Store::open_with(&path, policy).unwrap();
        store
            .read(|c| c.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL)"))
            .unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let readers = {
            let (done, path) = (done.clone(), path.clone());
            std::thread::spawn(move || {
                let (one, other) = (connect(&path).unwrap(), connect(&path).unwrap());
                let read = |c: &Connection| {
                    c.execute_batch("BEGIN").unwrap();
                    c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0))
                        .unwrap();
                };
                read(&one);
                while !done.load(Ordering::Relaxed) {
                    for (next, last) in [(&other, &one), (&one, &other)] {
                        read(next);
                        last.execute_batch("COMMIT").unwrap();
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                one.execute_batch("COMMIT").unwrap();
            })
        };
        let wal = path.with_extension("db-wal");
        let mut largest = 0;
        for k in 0..2_048 {
            store
                .write(Durability::SurvivesCrash, move |c| {
                    c.execute("INSERT INTO t VALUES (?1, zeroblob(4096))", [k])
                })
                .await
                .unwrap();
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        done.store(true, Ordering::Relaxed);
        readers.join().unwrap();
        // 8 MiB (some 24 MiB of WAL) written; the threshold is 1 MiB.
        assert!(largest < 6 << 20, "the WAL grew to {largest} bytes");
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A reader holding one snapshot for long keeps every truncation from
    /// finishing: the writer backs off instead of waiting at every batch.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_long_reader_does_not_stall_every_write() {
        let dir = std::env::temp_dir().join(format!("envmgr-wal-{}", random_hex(6)));
        private_dir(&dir).unwrap();
        let path = dir.join(FILE_NAME);
        let policy = checkpoint::Policy {
            every: Duration::from_millis(10),
            truncate_past_frames: 16,
        };
        let store = Store::open_with(&path, policy).unwrap();
        store
            .read(|c| c.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL)"))
            .unwrap();
        let write = |k: i64| {
            store.write(Durability::SurvivesCrash, move |c| {
                c.execute("INSERT INTO t VALUES (?1, zeroblob(4096))", [k])
            })
        };
        for k in 0..64 {
            write(k).await.unwrap();
        }
        // A snapshot held for the whole burst below.
        let reader = connect(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        reader
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0))
            .unwrap();
        let started = std::time::Instant::now();
        for k in 64..104 {
            write(k).await.unwrap();
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        let took = started.elapsed();
        reader.execute_batch("COMMIT").unwrap();
        // 40 writes: waiting 250 ms after each would take over 10 s.
        assert!(took < Duration::from_secs(4), "40 writes took {took:?}");
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
}
