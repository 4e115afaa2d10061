//! The tables of the embedded database. `IF NOT EXISTS` throughout: opening
//! a file brings it up to date, and any number of processes may do so.

use rusqlite::Connection;

pub fn create(connection: &Connection) -> rusqlite::Result<()> {
    items_out_of_their_key(connection)?;
    // In this order: the indexes of `PRUNED_BY_TIME` need the tables above.
    for statements in [
        DYNAMODB,
        QUEUES,
        KMS,
        GITHUB,
        SEGMENT,
        RUNTIME_SERVICE,
        PRUNED_BY_TIME,
    ] {
        connection.execute_batch(statements)?;
    }
    Ok(())
}

/// The DynamoDB tables: items as DynamoDB JSON, found by their key.
///
/// The item is in a table of its own and the key in an index of small
/// cells: a leaf of the table holds an item of up to ~4 KB, and finding a
/// key compares keys alone. (Items and keys in one `WITHOUT ROWID` tree,
/// as before: an index tree keeps at most ~1 KB of a cell in its page, so
/// most environments spilled to an overflow page, which SQLite reads from
/// the file, past its page cache — and a search compares whole cells, so
/// every lookup that passed such an item read it: ~60 reads from the file
/// per create. [`items_out_of_their_key`] moves a file's items over.)
///
/// Bound: the key's index holds one entry (the key and a row id) per item,
/// so it is bounded by what bounds the items: an environment's tombstone
/// goes at its `purgeAt` (`local::expiry`), recordings at their retention
/// and `max_entries` (`record::store`), the rest is one app's apps,
/// secrets and live environments.
const DYNAMODB: &str = "
    CREATE TABLE IF NOT EXISTS items (
        tbl  TEXT NOT NULL,
        pk   TEXT NOT NULL,
        sk   TEXT NOT NULL,
        item TEXT NOT NULL
    );
    CREATE UNIQUE INDEX IF NOT EXISTS items_key ON items (tbl, pk, sk);
";

/// Move the items of a file made before [`DYNAMODB`]'s layout into it, in
/// one transaction (once: another process opening the file at the same
/// time finds it done). A process of the older release still running
/// reads and writes the new table as it did the old one: same columns,
/// same key, `INSERT OR REPLACE` answered by the unique index.
fn items_out_of_their_key(connection: &Connection) -> rusqlite::Result<()> {
    let old_layout = |connection: &Connection| -> rusqlite::Result<bool> {
        connection.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema
              WHERE type = 'table' AND name = 'items' AND sql LIKE '%WITHOUT ROWID%')",
            [],
            |row| row.get(0),
        )
    };
    if !old_layout(connection)? {
        return Ok(());
    }
    connection.execute_batch("BEGIN IMMEDIATE")?;
    let moved = old_layout(connection).and_then(|old| match old {
        false => Ok(()),
        true => connection.execute_batch(
            "ALTER TABLE items RENAME TO items_in_their_key;
             CREATE TABLE items (
                 tbl  TEXT NOT NULL,
                 pk   TEXT NOT NULL,
                 sk   TEXT NOT NULL,
                 item TEXT NOT NULL
             );
             INSERT INTO items (tbl, pk, sk, item)
                 SELECT tbl, pk, sk, item FROM items_in_their_key ORDER BY tbl, pk, sk;
             DROP TABLE items_in_their_key;
             CREATE UNIQUE INDEX items_key ON items (tbl, pk, sk);",
        ),
    });
    match moved {
        Ok(()) => connection.execute_batch("COMMIT"),
        Err(e) => {
            let _ = connection.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// The table of the queues' messages: a commit that inserted or updated a
/// row of it is announced to the waiting receivers ([`super::writer`]).
pub const MESSAGES: &str = "messages";

/// The queues and their dead-letter queues. A message is visible when
/// `visible_at_ms` has passed; each receive gives it a new receipt.
const QUEUES: &str = "
    CREATE TABLE IF NOT EXISTS messages (
        seq           INTEGER PRIMARY KEY AUTOINCREMENT,
        id            TEXT NOT NULL UNIQUE,
        queue         TEXT NOT NULL,
        body          TEXT NOT NULL,
        attributes    TEXT NOT NULL,
        sent_at_ms    INTEGER NOT NULL,
        visible_at_ms INTEGER NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0,
        receipt       TEXT UNIQUE
    );
    CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, visible_at_ms);
";

/// The local KMS keys (AES-256-GCM), by alias.
const KMS: &str = "
    CREATE TABLE IF NOT EXISTS kms_keys (
        alias         TEXT PRIMARY KEY,
        key           BLOB NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
";

/// What the local GitHub recorded: comments as they would appear,
/// deployments, and which installation tokens were issued (never their
/// value).
const GITHUB: &str = "
    CREATE TABLE IF NOT EXISTS github_comments (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        repository    TEXT NOT NULL,
        issue         INTEGER NOT NULL,
        body          TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL
    );
    -- A pull request's comments, looked up for every message.
    CREATE INDEX IF NOT EXISTS github_comments_by_issue
        ON github_comments (repository, issue);
    -- Deployments as GitHub would list them on the environments page,
    -- with their statuses (the newest is the deployment's state).
    CREATE TABLE IF NOT EXISTS github_deployments (
        id                     INTEGER PRIMARY KEY AUTOINCREMENT,
        repository             TEXT NOT NULL,
        sha                    TEXT NOT NULL,
        environment            TEXT NOT NULL,
        task                   TEXT NOT NULL,
        payload                TEXT NOT NULL,
        description            TEXT NOT NULL,
        transient_environment  INTEGER NOT NULL,
        production_environment INTEGER NOT NULL,
        created_at_ms          INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS github_deployments_by_sha
        ON github_deployments (repository, sha, environment);
    CREATE TABLE IF NOT EXISTS github_deployment_statuses (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        deployment      INTEGER NOT NULL,
        state           TEXT NOT NULL,
        description     TEXT NOT NULL,
        environment_url TEXT,
        log_url         TEXT,
        created_at_ms   INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS github_deployment_statuses_by_deployment
        ON github_deployment_statuses (deployment);
    -- The open pull requests the embedded GitHub knows of (from the events
    -- `envmgr send` puts on its queue, the demo, tests), for
    -- `list-open-pull-requests`. A close deletes the row (`open` is 1 in
    -- every row written since), so the table is bounded by the pull
    -- requests open at once, not by how many there ever were.
    CREATE TABLE IF NOT EXISTS github_pull_requests (
        repository TEXT NOT NULL,
        number     INTEGER NOT NULL,
        head       TEXT NOT NULL,
        head_sha   TEXT NOT NULL,
        open       INTEGER NOT NULL,
        PRIMARY KEY (repository, number)
    );
    -- Environments deleted (`delete-environment`), with when: a log,
    -- pruned after `[local] retention_days` (`local/logs.rs`).
    CREATE TABLE IF NOT EXISTS github_deleted_environments (
        repository    TEXT NOT NULL,
        name          TEXT NOT NULL,
        deleted_at_ms INTEGER NOT NULL,
        PRIMARY KEY (repository, name)
    );
    CREATE TABLE IF NOT EXISTS github_tokens (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        installation  INTEGER NOT NULL,
        repository    TEXT NOT NULL,
        issued_at_ms  INTEGER NOT NULL
    );
";

/// Segment events, one per message id (Segment deduplicates on it).
const SEGMENT: &str = "
    CREATE TABLE IF NOT EXISTS analytics_events (
        message_id    TEXT PRIMARY KEY,
        event         TEXT NOT NULL,
        user_id       TEXT NOT NULL,
        properties    TEXT NOT NULL,
        tracked_at_ms INTEGER NOT NULL
    );
";

/// Runtime Service calls: one runtime per idempotency key; the request as
/// sent, secret values masked.
const RUNTIME_SERVICE: &str = "
    CREATE TABLE IF NOT EXISTS runtime_requests (
        idempotency_key TEXT PRIMARY KEY,
        runtime_id      TEXT NOT NULL,
        url             TEXT NOT NULL,
        request         TEXT NOT NULL,
        calls           INTEGER NOT NULL,
        created_at_ms   INTEGER NOT NULL
    );
    -- The newest request accepted per environment (the fencing check of
    -- every create): without it each create reads every request.
    CREATE INDEX IF NOT EXISTS runtime_requests_by_environment
        ON runtime_requests (json_extract(request, '$.environmentId'));
    -- Deletes: one per idempotency key, with the runtimes each removed; a
    -- delete moves the environment's fence as a create does.
    CREATE TABLE IF NOT EXISTS runtime_deletions (
        idempotency_key TEXT PRIMARY KEY,
        environment_id  TEXT NOT NULL,
        request_version TEXT NOT NULL,
        request         TEXT NOT NULL,
        deleted         TEXT NOT NULL,
        deleted_at_ms   INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS runtime_deletions_by_environment
        ON runtime_deletions (environment_id, request_version);
";

/// What `local::logs` prunes by.
const PRUNED_BY_TIME: &str = "
    CREATE INDEX IF NOT EXISTS github_tokens_by_time ON github_tokens (issued_at_ms);
    CREATE INDEX IF NOT EXISTS analytics_events_by_time ON analytics_events (tracked_at_ms);
    CREATE INDEX IF NOT EXISTS runtime_requests_by_time ON runtime_requests (created_at_ms);
    CREATE INDEX IF NOT EXISTS runtime_deletions_by_time ON runtime_deletions (deleted_at_ms);
    CREATE INDEX IF NOT EXISTS github_deleted_environments_by_time
        ON github_deleted_environments (deleted_at_ms);
";
