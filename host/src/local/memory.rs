//! The database in memory (the mock host's, and tests'): one connection,
//! no file, no thread.
//!
//! Every read and write runs where it is asked for, one at a time, on that
//! connection. Group commit saves flushes, and memory has none to save; a
//! hop to the writer's thread would cost two wake-ups, and would make the
//! backends' futures wait where they now finish on their first poll (the
//! native baseline, `tests/src/native.rs`, and the tests on tokio's paused
//! clock count on that). A write is still one job as [`writer`] runs it —
//! `BEGIN IMMEDIATE`, a savepoint of its own, kept or undone, `COMMIT` —
//! so a refused condition undoes its own writes and nothing else, as in a
//! file. No WAL, no checkpoints, no file watch: those are the file's.
//!
//! Bound: the database lives as long as its store (the last clone of it:
//! the mock host, its peers and the backends they share); nothing of it
//! outlives them, and each store's database is its own.

use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context as _;
use rusqlite::Connection;

use super::schema;
use super::writer::{self, Job};

#[derive(Clone)]
pub struct Memory {
    connection: Arc<Mutex<Connection>>,
}

impl Memory {
    /// A new, empty database with the schema.
    pub fn open() -> anyhow::Result<Self> {
        let connection = Connection::open_in_memory().context("opening a database in memory")?;
        super::settle(&connection).context("setting up a database in memory")?;
        schema::create(&connection).context("creating the schema in memory")?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Run `work` on the connection, here, when no other work is on it.
    pub fn run<T>(&self, work: impl FnOnce(&Connection) -> T) -> T {
        work(&self.lock())
    }

    /// Run a write job here, as the writer's thread runs a batch of one.
    pub fn write(&self, job: Job) {
        writer::run_alone(&self.lock(), job);
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A job's panic is caught inside it ([`writer::guarded`]); a read's
        // leaves no transaction open.
        self.connection.lock().unwrap_or_else(|p| p.into_inner())
    }
}
