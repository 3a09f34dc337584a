//! The SQLite schema and its versioned migrations.
//!
//! Why our own runner rather than refinery: the version lives in SQLite's header
//! (`PRAGMA user_version`), read without touching a table, so "is this database from
//! a newer palaver?" is answered before anything runs and becomes a typed
//! [`StoreError::TooNew`]; each migration runs in the same `BEGIN IMMEDIATE`
//! transaction that checked the version, so two processes cannot both migrate; and
//! it costs ~40 lines instead of a dependency tree on a 2-core build machine. A
//! PostgreSQL backend keeps its own migration list (dialects differ anyway), with
//! the version in a one-row table.
//!
//! Size budget (issue 10: ≤ 200 bytes per stored 64-byte PRIVMSG): the message row
//! refers to its target and its sender by small integer ids (`target`, `sender`
//! tables), and the only two
//! indexes are `(target, time)` (every CHATHISTORY query; the rowid rides along as
//! the tie-breaker) and `msgid` (references and redaction).

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::classify;
use crate::error::StoreError;

/// `PRAGMA application_id`: marks the file as ours ("plvr"), so a different
/// application's SQLite database is refused rather than migrated.
pub(crate) const APPLICATION_ID: i32 = 0x706c_7672;

/// Migration `i` takes the schema from version `i` to `i + 1`. Never edit a released
/// entry: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r"
    CREATE TABLE account (
        key TEXT PRIMARY KEY NOT NULL,
        name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        scram_salt BLOB NOT NULL,
        scram_iterations INTEGER NOT NULL,
        scram_stored_key BLOB NOT NULL,
        scram_server_key BLOB NOT NULL,
        email TEXT,
        verified INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE channel (
        key TEXT PRIMARY KEY NOT NULL,
        name TEXT NOT NULL,
        founder TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        topic TEXT,
        topic_set_by TEXT,
        topic_set_at INTEGER,
        modes TEXT NOT NULL,
        key_mode TEXT,
        user_limit INTEGER
    ) WITHOUT ROWID;

    CREATE TABLE channel_list (
        channel TEXT NOT NULL,
        kind INTEGER NOT NULL,
        mask TEXT NOT NULL,
        set_by TEXT NOT NULL,
        set_at INTEGER NOT NULL,
        PRIMARY KEY (channel, kind, mask)
    ) WITHOUT ROWID;

    CREATE TABLE channel_access (
        channel TEXT NOT NULL,
        account TEXT NOT NULL,
        level INTEGER NOT NULL,
        PRIMARY KEY (channel, account)
    ) WITHOUT ROWID;

    -- One row per channel or conversation that has history; `latest` answers
    -- CHATHISTORY TARGETS without touching the message table.
    CREATE TABLE target (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        latest INTEGER NOT NULL
    );

    -- The parties of each private conversation, to find a user's conversations.
    CREATE TABLE target_party (
        party TEXT NOT NULL,
        target INTEGER NOT NULL,
        PRIMARY KEY (party, target)
    ) WITHOUT ROWID;

    -- Senders (`nick!user@host` + account, '' for none) are interned: the same
    -- people write most messages, and ~45 bytes per row is a quarter of the budget.
    CREATE TABLE sender (
        id INTEGER PRIMARY KEY,
        mask TEXT NOT NULL,
        account TEXT NOT NULL,
        UNIQUE (mask, account)
    );

    CREATE TABLE message (
        id INTEGER PRIMARY KEY,
        target INTEGER NOT NULL,
        time INTEGER NOT NULL,
        msgid TEXT NOT NULL,
        kind INTEGER NOT NULL,
        sender INTEGER NOT NULL,
        tags TEXT,
        text TEXT NOT NULL
    );
    CREATE INDEX message_target_time ON message (target, time);
    CREATE UNIQUE INDEX message_msgid ON message (msgid);

    CREATE TABLE read_marker (
        account TEXT NOT NULL,
        target TEXT NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (account, target)
    ) WITHOUT ROWID;
    ",
    // 2: client-certificate fingerprints (SASL EXTERNAL). The primary key makes a
    // fingerprint identify at most one account and is the EXTERNAL lookup; the
    // index serves CERT LIST, the per-account limit and account deletion. No
    // foreign key (foreign_keys is off): delete_account deletes the rows itself.
    r"
    CREATE TABLE account_certfps (
        certfp TEXT PRIMARY KEY NOT NULL,
        account_key TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX account_certfps_account ON account_certfps (account_key);
    ",
    // 3: server bans (K-lines, D-lines). Few rows, all loaded at start-up; the key
    // makes a mask unique within its kind. `expires_at` is NULL for a permanent ban.
    r"
    CREATE TABLE server_ban (
        kind INTEGER NOT NULL,
        mask TEXT NOT NULL,
        reason TEXT NOT NULL,
        set_by TEXT NOT NULL,
        set_at INTEGER NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (kind, mask)
    ) WITHOUT ROWID;
    ",
];

/// The schema version this build writes.
pub(crate) const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database at `path` (already open as `conn`) to [`CURRENT_VERSION`],
/// refusing a newer or foreign one. Runs under `BEGIN IMMEDIATE`, which doubles as
/// the check that we can write at all (a lock held elsewhere shows up here, at
/// start, as [`StoreError::Locked`], not later on the first message).
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let fail = |operation: &'static str| move |e: rusqlite::Error| classify(e, path, operation);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fail("begin migration"))?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(fail("read schema version"))?;
    let app_id: i32 = tx
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .map_err(fail("read application id"))?;
    if version > CURRENT_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found: version,
            supported: CURRENT_VERSION,
        });
    }
    let foreign = if version == 0 {
        let tables: i64 = tx
            .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
            .map_err(fail("read schema"))?;
        tables > 0 || app_id != 0
    } else {
        app_id != APPLICATION_ID
    };
    if foreign {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            source: "the file is an SQLite database of another application".into(),
        });
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql).map_err(fail("migrate schema"))?;
        tx.pragma_update(None, "user_version", from as i64 + 1)
            .map_err(fail("set schema version"))?;
    }
    if version == 0 {
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(fail("set application id"))?;
    }
    tx.commit().map_err(fail("commit migration"))
}
