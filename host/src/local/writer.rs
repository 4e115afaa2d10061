//! The writing connection and its thread: **group commit**.
//!
//! Every write of the process is a job sent to one thread that owns the
//! writing connection. The thread takes whatever jobs are waiting, opens one
//! `BEGIN IMMEDIATE` transaction, runs each job inside a `SAVEPOINT` of its
//! own, and commits them together; only then is each caller answered. So:
//!
//! - a job is all-or-nothing: an error (or a refused condition, for
//!   [`Store::write_or_undo`](super::Store::write_or_undo)) rolls back to its
//!   savepoint and leaves the other jobs of the batch as they were;
//! - jobs run in the order they were sent, each seeing the writes of the
//!   jobs before it: a conditional write is evaluated inside the batch, as
//!   if the jobs had committed one by one;
//! - a caller hears of its write only once it is committed, so what it reads
//!   next sees it; if the commit fails, every job of the batch fails (what a
//!   job read or refused was seen in a transaction that did not happen);
//! - a batch holds SQLite's write lock for at most [`BATCH_BUDGET`] of work,
//!   so a writer in another process (`envmgr send`) waits a batch at most.
//!
//! One commit writes each page a batch changed once, instead of once per
//! job, and the callers of a batch share one wake-up of this thread. A
//! commit that inserted or updated a message ([`schema::MESSAGES`]) is
//! announced ([`Changes::announce`]) before its callers are answered: the
//! local queue's waiters, in this process and others, look again. Other
//! commits wake no one — nothing waits for them, and an announcement costs
//! a read of the wake file here and a wake-up in every watching process.
//!
//! (Running a write on its caller's thread when this one is idle, without
//! the two wake-ups of a hand-off, was measured and not kept: writes that
//! no longer waited for this thread no longer shared commits, and the
//! pages those extra commits wrote cost what the wake-ups saved;
//! docs/performance.md.)

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::hooks::Action;

use super::changes::Changes;
use super::{Durability, schema};

/// The most work one batch does while holding the write lock; the jobs left
/// over go into the next batch.
pub const BATCH_BUDGET: Duration = Duration::from_millis(2);
/// The most jobs one batch takes from the channel before it begins.
const MAX_BATCH_JOBS: usize = 256;

/// How a job learns the fate of its batch: `None` committed, `Some(e)` the
/// batch failed with `e` and nothing of it was kept.
pub type Deliver = Box<dyn FnOnce(Option<&rusqlite::Error>) + Send>;

/// A job's work: given the connection (inside its savepoint), or the error
/// that keeps it from running.
pub type Work = Box<dyn FnOnce(Result<&Connection, &rusqlite::Error>) -> (Keep, Deliver) + Send>;

/// One caller's transaction.
pub struct Job {
    pub durability: Durability,
    /// Runs the caller's work inside its savepoint; returns whether to keep
    /// it, and how to answer the caller once the batch is decided. Given an
    /// error instead of the connection, the work does not run and the
    /// caller is answered with that error.
    pub work: Work,
}

/// Whether a job's writes stay in the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    Commit,
    Undo,
}

/// Start the thread that owns `connection`; it ends when every sender is
/// dropped, once the jobs already sent are done.
/// Between batches it restarts the WAL when `checkpoints` asks.
pub fn start(
    connection: Connection,
    name: String,
    checkpoints: super::checkpoint::Wanted,
    changes: Arc<Changes>,
) -> std::io::Result<mpsc::Sender<Job>> {
    let (sender, receiver) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || run(connection, receiver, checkpoints, &changes))?;
    Ok(sender)
}

/// Watch `connection` for a change of the messages: the flag is set when a
/// row of them is inserted or updated (a delete makes nothing receivable).
/// Set by a job that was undone too: one wake-up too many, never one few.
fn watch_messages(connection: &Connection) -> Arc<AtomicBool> {
    let changed = Arc::new(AtomicBool::new(false));
    let flag = changed.clone();
    connection.update_hook(Some(move |action, _: &str, table: &str, _: i64| {
        if matches!(action, Action::SQLITE_INSERT | Action::SQLITE_UPDATE)
            && table == schema::MESSAGES
        {
            flag.store(true, Ordering::Relaxed);
        }
    }));
    changed
}

fn run(
    connection: Connection,
    receiver: mpsc::Receiver<Job>,
    checkpoints: super::checkpoint::Wanted,
    changes: &Changes,
) {
    let messages_changed = watch_messages(&connection);
    let announce = |kept: bool| {
        if messages_changed.swap(false, Ordering::Relaxed) && kept {
            changes.announce();
        }
    };
    let mut pending: VecDeque<Job> = VecDeque::new();
    // What `PRAGMA synchronous` is set to now (it can only change between
    // transactions).
    let mut synchronous = None;
    loop {
        if pending.is_empty() {
            match receiver.recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => return,
            }
        }
        while pending.len() < MAX_BATCH_JOBS {
            match receiver.try_recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => break,
            }
        }
        // A batch is as durable as its most demanding job.
        let wanted = pending
            .iter()
            .map(|job| job.durability)
            .max()
            .unwrap_or(Durability::SurvivesCrash);
        if synchronous != Some(wanted) {
            let level = match wanted {
                Durability::SurvivesPowerLoss => "FULL",
                Durability::SurvivesCrash => "NORMAL",
            };
            match connection.pragma_update(None, "synchronous", level) {
                Ok(()) => synchronous = Some(wanted),
                Err(e) => {
                    fail_all(pending.drain(..), &e);
                    continue;
                }
            }
        }
        batch(&connection, &mut pending, &announce);
        checkpoints.restart_if_wanted(&connection);
    }
}

/// Run `job` alone, on the caller's thread: a batch of one (the database
/// in memory, which has no writer thread; [`super::memory`]).
pub fn run_alone(connection: &Connection, job: Job) {
    batch(connection, &mut VecDeque::from([job]), &|_| {});
}

/// Run jobs from the front of `pending` in one transaction until it is
/// empty or the budget is spent, and commit them. Once committed, and
/// before any caller is answered, `committed` hears whether a write was
/// kept (not every job undone).
fn batch(connection: &Connection, pending: &mut VecDeque<Job>, committed: &dyn Fn(bool)) {
    if let Err(e) = run_cached(connection, "BEGIN IMMEDIATE") {
        // Another process held the write lock past the busy timeout (or the
        // file is unusable): every waiting job hears of it.
        fail_all(pending.drain(..), &e);
        return;
    }
    let started = Instant::now();
    let mut ran: Vec<Deliver> = Vec::new();
    let mut kept = false;
    while let Some(job) = pending.pop_front() {
        if let Err(e) = run_cached(connection, "SAVEPOINT job") {
            abandon(connection, ran, Some(job), &e);
            return;
        }
        let (keep, deliver) = (job.work)(Ok(connection));
        if connection.is_autocommit() {
            // SQLite rolled the whole transaction back itself (a full disk,
            // an I/O error): none of the batch happened.
            let e = gone();
            ran.push(deliver);
            abandon(connection, ran, None, &e);
            return;
        }
        kept |= keep == Keep::Commit;
        let end = match keep {
            Keep::Commit => run_cached(connection, "RELEASE job"),
            Keep::Undo => run_cached(connection, "ROLLBACK TO job")
                .and_then(|()| run_cached(connection, "RELEASE job")),
        };
        ran.push(deliver);
        if let Err(e) = end {
            abandon(connection, ran, None, &e);
            return;
        }
        if started.elapsed() >= BATCH_BUDGET {
            break;
        }
    }
    match run_cached(connection, "COMMIT") {
        Ok(()) => {
            committed(kept);
            ran.into_iter().for_each(|deliver| deliver(None));
        }
        Err(e) => abandon(connection, ran, None, &e),
    }
}

/// A statement the writer runs for every job, parsed once.
fn run_cached(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([]).map(drop)
}

/// The batch cannot commit: roll back what is left of it and fail every job
/// that ran in it (and `unstarted`, if given).
fn abandon(
    connection: &Connection,
    ran: Vec<Deliver>,
    unstarted: Option<Job>,
    e: &rusqlite::Error,
) {
    if !connection.is_autocommit() {
        let _ = connection.execute_batch("ROLLBACK");
    }
    for deliver in ran {
        deliver(Some(e));
    }
    if let Some(job) = unstarted {
        fail_all(std::iter::once(job), e);
    }
}

/// Answer jobs that never ran with `e`.
fn fail_all(jobs: impl Iterator<Item = Job>, e: &rusqlite::Error) {
    for job in jobs {
        let (_, deliver) = (job.work)(Err(e));
        deliver(Some(e));
    }
}

fn gone() -> rusqlite::Error {
    failure(
        rusqlite::ffi::SQLITE_ABORT,
        "the transaction was rolled back by SQLite",
    )
}

/// A new error with `code` and `message` (rusqlite's errors cannot be
/// cloned, and a batch's failure is every job's).
pub fn failure(code: std::ffi::c_int, message: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(message.to_string()))
}

/// `e` again, for one more caller.
pub fn replicate(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => failure(rusqlite::ffi::SQLITE_ERROR, &other.to_string()),
    }
}

/// Run `work` catching a panic, so the thread survives a caller's bug; the
/// panic is handed back to the caller.
pub fn guarded<R>(work: impl FnOnce() -> R) -> Result<R, Box<dyn std::any::Any + Send>> {
    std::panic::catch_unwind(AssertUnwindSafe(work))
}
