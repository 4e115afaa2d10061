//! The embedded database behind the `local` backends: one SQLite file holds
//! the queues, the tables, the local KMS key, and the record of every GitHub,
//! Segment and Runtime Service call. Nothing to install or start, and no
//! cloud account: the default when `serve` has no config.
//!
//! Several processes may share the file (`serve` in one terminal, `send` in
//! another): WAL journaling lets readers and one writer work at once, and a
//! busy timeout makes writers wait for each other instead of failing. Every
//! change is one SQLite transaction, so a crash loses nothing committed.

mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::Connection;

use crate::capabilities::{Error, ErrorCode, error};

/// The file name inside a data directory.
pub const FILE_NAME: &str = "envmgr.db";

/// How long a write waits for another process's write to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// An open database file, shared by every local backend of a process.
///
/// Two connections: writes queue for SQLite's one write lock (which another
/// process may hold for a while), reads never wait behind them — WAL lets a
/// reader see the last commit while a write is under way.
#[derive(Clone)]
pub struct Store {
    connection: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
    path: PathBuf,
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
        let connection = Connection::open(path)
            .with_context(|| format!("opening the database {}", path.display()))?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .context("switching the database to WAL")?;
        // Every commit reaches the disk before the call returns: a message
        // acknowledged, then lost to a power cut, would break at-least-once.
        connection.pragma_update(None, "synchronous", "FULL")?;
        schema::create(&connection)
            .with_context(|| format!("creating the schema in {}", path.display()))?;
        let reader = Connection::open(path)
            .with_context(|| format!("opening the database {}", path.display()))?;
        reader.busy_timeout(BUSY_TIMEOUT)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            reader: Arc::new(Mutex::new(reader)),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `work` on the connection off the async threads (SQLite blocks,
    /// and may wait for another process's write).
    pub async fn run<T, F>(&self, work: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(|p| p.into_inner());
            work(&mut connection)
        })
        .await
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()))
    }

    /// Run a read on the reading connection, off the async threads.
    pub async fn query<T, F>(&self, work: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let reader = reader.lock().unwrap_or_else(|p| p.into_inner());
            work(&reader)
        })
        .await
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()))
    }

    /// Like [`Store::run`], inside one immediate transaction: it holds the
    /// write lock from the start, so a read-check-write cannot interleave
    /// with another process's.
    pub async fn transaction<T, F>(&self, work: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        self.run(move |connection| {
            let transaction =
                connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let value = work(&transaction)?;
            transaction.commit()?;
            Ok(value)
        })
        .await
    }

    /// Synchronous access, for commands that show what the file holds.
    pub fn read<T>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> anyhow::Result<T> {
        let connection = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        work(&connection).with_context(|| format!("reading {}", self.path.display()))
    }
}

/// A database failure as a capability error: retryable, like a backend that
/// is briefly unreachable (a locked file, a full disk).
pub fn unavailable(e: rusqlite::Error) -> Error {
    error(ErrorCode::Unavailable, format!("local database: {e}"))
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `bytes` random bytes as lowercase hex (receipts, ids, local tokens).
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the OS random source is available");
    buffer.iter().map(|b| format!("{b:02x}")).collect()
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
