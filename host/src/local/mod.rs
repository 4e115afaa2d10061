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
//!
//! A store may also be **in memory** ([`Store::in_memory`],
//! [`Store::reproducible`]): the same schema and the same backends, no file
//! (the mock host's; [`memory`] says how it differs).

mod changes;
mod checkpoint;
pub mod expiry;
pub mod logs;
mod memory;
mod schema;
mod sources;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::capabilities::{Error, ErrorCode, error};
use sources::Sources;
use writer::{Job, Keep};

/// The file name inside a data directory.
pub const FILE_NAME: &str = "envmgr.db";

/// What [`Store::path`] says of a store in memory.
pub const IN_MEMORY: &str = ":memory:";

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

/// An open database, shared by every local backend of a process.
#[derive(Clone)]
pub struct Store {
    backing: Backing,
    /// Wakes a long poll when the database changes (any process's commit).
    changes: Arc<changes::Changes>,
    /// What the backends take as "now" and as fresh random bytes.
    sources: Sources,
    path: PathBuf,
}

#[derive(Clone)]
enum Backing {
    File(File),
    Memory(memory::Memory),
}

/// A file's connections and threads.
#[derive(Clone)]
struct File {
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
}

/// Open the file with the settings every connection of envmgr uses.
fn connect(path: &Path) -> anyhow::Result<Connection> {
    let connection = Connection::open(path)
        .with_context(|| format!("opening the database {}", path.display()))?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    settle(&connection)?;
    Ok(connection)
}

/// What every connection does, file or memory: keeps every statement it
/// runs parsed, and parsed once. SQLite (3.4x, as bundled) plans a `LIMIT`
/// bound to a parameter by its value, and so throws the statement away and
/// parses it again each time the parameter is bound; the query planner
/// stability guarantee turns that off (a plan never depends on a bound
/// value: these tables have no statistics that could use one).
fn settle(connection: &Connection) -> rusqlite::Result<()> {
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    connection
        .set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .map(drop)
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
        let changes = Arc::new(changes::Changes::watch(path));
        let writes = writer::start(
            connection,
            "envmgr-db-writer".into(),
            wanted,
            changes.clone(),
        )
        .context("starting the database writer thread")?;
        Ok(Self {
            backing: Backing::File(File {
                writes,
                readers: Arc::new(Mutex::new(vec![reader])),
                inspector: Arc::default(),
                _checkpoints: Arc::new(checkpoints),
            }),
            changes,
            sources: Sources::System,
            path: path.to_path_buf(),
        })
    }

    /// A new, empty database in memory, its own (tests).
    pub fn in_memory() -> anyhow::Result<Self> {
        Self::memory(Sources::System)
    }

    /// A new, empty database in memory whose backends take "now" from
    /// `now_ms` and draw their "random" bytes from a counter: a run makes
    /// the same keys, nonces and tokens every time (the mock host, whose
    /// manual clock `now_ms` reads).
    pub fn reproducible(now_ms: impl Fn() -> u64 + Send + Sync + 'static) -> anyhow::Result<Self> {
        Self::memory(Sources::reproducible(Arc::new(now_ms)))
    }

    fn memory(sources: Sources) -> anyhow::Result<Self> {
        Ok(Self {
            backing: Backing::Memory(memory::Memory::open()?),
            changes: Arc::new(changes::Changes::unwatched()),
            sources,
            path: PathBuf::from(IN_MEMORY),
        })
    }

    /// The database file; [`IN_MEMORY`] for a store in memory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Now, as the backends of this store record it (ms since the epoch).
    pub fn now_ms(&self) -> i64 {
        self.sources.now_ms()
    }

    /// `out` filled with fresh random bytes (reproducible ones, for a
    /// [`reproducible`](Self::reproducible) store).
    pub fn fill_random(&self, out: &mut [u8]) -> Result<(), getrandom::Error> {
        self.sources.fill(out)
    }

    /// `bytes` fresh random bytes as lowercase hex.
    pub fn random_hex(&self, bytes: usize) -> String {
        self.sources.hex(bytes)
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
        let (answer, mut answered) = oneshot::channel();
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
        let answer = match &self.backing {
            Backing::File(file) => {
                if file.writes.send(job).is_err() {
                    return Err(stopped("writer"));
                }
                answered.await.ok()
            }
            // Answered before `write` returns: no wait, not even on tokio's
            // budget (a finished channel read is still counted against it).
            Backing::Memory(memory) => {
                memory.write(job);
                answered.try_recv().ok()
            }
        };
        match answer {
            Some(Ok(result)) => result,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Err(stopped("writer")),
        }
    }

    /// [`Store::write`] from synchronous code (seeding, tests): blocks the
    /// calling thread until the write is committed (in memory it runs
    /// here, and blocks nothing).
    pub fn write_now<T, F>(&self, durability: Durability, work: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        futures::executor::block_on(self.write(durability, work))
    }

    /// Run a read, here, on a reading connection of the pool. It sees every
    /// write that was answered before it was asked for. (Async for the
    /// callers' sake: a read in WAL mode does not wait for writers.)
    pub async fn query<T, F>(&self, work: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let file = match &self.backing {
            Backing::File(file) => file,
            Backing::Memory(memory) => return memory.run(work),
        };
        let pooled = file.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let reader = match pooled {
            Some(reader) => reader,
            None => connect(&self.path)
                .map_err(|e| writer::failure(rusqlite::ffi::SQLITE_CANTOPEN, &format!("{e:#}")))?,
        };
        let result = work(&reader);
        file.readers
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
        let file = match &self.backing {
            Backing::File(file) => file,
            Backing::Memory(memory) => {
                return memory.run(work).context("reading the database in memory");
            }
        };
        let inspector = match file.inspector.get() {
            Some(inspector) => inspector,
            None => {
                let connection = connect(&self.path)?;
                file.inspector.get_or_init(|| Mutex::new(connection))
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

/// The schema on `connection` (unit tests of the backends' SQL).
#[cfg(test)]
pub fn schema_for_tests(connection: &Connection) {
    schema::create(connection).expect("the schema");
}

#[cfg(test)]
mod tests;
