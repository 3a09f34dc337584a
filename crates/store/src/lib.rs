//! Persistence for palaver: accounts, registered channels, message history and read
//! markers, behind one domain-level [`Store`] trait, with an embedded SQLite backend
//! ([`SqliteStore`]) as the default, and a PostgreSQL backend ([`PgStore`]) for a
//! cluster of nodes sharing one database. Both implement the same trait and pass the
//! same `conformance` suite (module `palaver_store::conformance`, feature
//! `conformance`; for PostgreSQL against a real server, `scripts/test-cluster.sh`).
//!
//! # Why a domain trait, not an SQL abstraction
//! SQLite and PostgreSQL differ in placeholders, upserts, types and locking. A trait
//! over *domain* operations (create an account, the latest 100 messages of a channel)
//! lets each backend write idiomatic SQL, and keeps SQL out of the server entirely.
//!
//! # Async without a runtime dependency
//! Trait methods return [`StoreFuture`] (a boxed `Send` future) so the server can
//! hold an `Arc<dyn Store>`. The SQLite backend runs all SQL on its own threads and
//! answers through `tokio::sync::oneshot`, which works under any executor; the
//! server's threads never block on the disk. The PostgreSQL backend does the same
//! with one thread of its own running a tokio runtime, on which its connections
//! and its writer live: the caller's executor never drives a database socket.
//!
//! # The durability promise and group commit
//! *A message is committed to the WAL before any recipient is sent it.* The server
//! [`Store::append`]s a message (queueing it; cheap, never blocks) and gets a
//! sequence number; the writer thread commits everything queued in **one**
//! transaction, then raises the **committed watermark** ([`Store::committed`],
//! [`Store::watch_committed`], or [`SqliteOptions::on_commit`]). The server holds
//! the message's deliveries until the watermark reaches its sequence number. After a
//! crash (`kill -9`) every delivered message is therefore in the database, exactly
//! once (msgids are unique), with the time its recipients saw. With
//! `synchronous=NORMAL` (default) that holds for process crashes; with
//! [`SyncMode::Full`] (`--fsync always`) for power loss too, at one fsync per batch.
//!
//! The batch size adapts to load: while the writer commits one batch the next one
//! accumulates, so a commit's fixed cost is shared by all messages that arrived
//! during the previous commit. A message is stored once, whatever the number of
//! recipients: there is never a row per recipient.
//!
//! If the database refuses a write (disk full, I/O error), the operations in it
//! still count as *settled* so nothing waits forever, and [`Store::write_failures`]
//! counts them: the server decides whether to log, alert, or stop.
//!
//! # Schema (SQLite)
//! `message(id, target, time, msgid, kind, sender, account, tags, text)` with an
//! index on `(target, time)` (every history query is one index range scan) and a
//! unique index on `msgid`; `target(id, key, latest)` interns channel and
//! conversation keys and answers TARGETS; `target_party` finds a user's private
//! conversations; `account_certfps(certfp, account_key)` maps client-certificate
//! fingerprints to accounts (SASL EXTERNAL), indexed by account; `account`,
//! `channel`, `channel_list`, `channel_access`, `read_marker` hold the rest, and
//! `server_ban(kind, mask, reason, set_by, set_at, expires_at)` the K- and D-lines.
//! Migrations are versioned in `PRAGMA user_version`; a database from a newer
//! palaver is refused ([`StoreError::TooNew`]).
//!
//! # Schema (PostgreSQL)
//! The same tables, in PostgreSQL's types (`BIGINT` milliseconds, `BYTEA`, keys
//! `COLLATE "C"` so they order byte for byte as in SQLite); the message row keeps
//! its target key and sender as text, indexed on `(target, time, id)` and unique on
//! `msgid`. The version is the row of `palaver_schema_version`, migrated under an
//! advisory lock so several nodes may start at once; see [`PgStore`].
//!
//! # Backups
//! The database is `palaver.db` (plus `palaver.db-wal` and `palaver.db-shm` while
//! open) in the data directory. Do not copy the files of a running server: [`backup`]
//! (`chat-server backup`) takes a consistent snapshot with SQLite's online backup
//! while the server keeps writing, and [`restore`] (`chat-server restore`) puts one
//! back into a stopped server's directory, keeping the database it replaces. A
//! PostgreSQL store is backed up with PostgreSQL's own tools (`pg_dump`).

mod error;
mod postgres;
mod queue;
mod span;
mod sqlite;
mod store;
mod types;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use crate::error::{AppendError, AppendRejected, BackendError, StoreError};
pub use crate::postgres::{PgOptions, PgStore, describe_url, is_postgres_url};
pub use crate::queue::CommitHook;
pub use crate::sqlite::{
    BackupSummary, DATABASE_FILE, LOCK_FILE, RestoreSummary, SqliteOptions, SqliteStore, SyncMode,
    backup, restore,
};
pub use crate::store::{Store, StoreFuture};
pub use crate::types::{
    AccessEntry, Account, CertfpAdded, ChannelRegistration, Expired, HistoryMessage, HistoryRef,
    ListEntry, ListKind, MAX_CERTFPS_PER_ACCOUNT, MessageKind, Party, PasswordUpdate, Retention,
    ScramVerifier, ServerBan, ServerBanAdded, ServerBanKind, TargetKey, TargetLatest, TargetScope,
    Timestamp, Topic,
};
