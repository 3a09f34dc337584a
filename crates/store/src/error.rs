//! Typed errors. Each says what was being done and to what, in one sentence, so the
//! server can print it and exit non-zero without adding context of its own.

use std::path::PathBuf;

use crate::types::HistoryMessage;

/// The underlying database error, boxed so no backend's error type appears in the
/// public API (a PostgreSQL backend returns the same [`StoreError`]).
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Anything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another process (or another store in this one) holds the database.
    #[error(
        "the database {path} is locked by another process (is another palaver server using this data directory?)"
    )]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// The file is not a database, or is damaged.
    #[error("the database {path} is corrupt or not a palaver database; restore it from a backup")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What the database engine said.
        #[source]
        source: BackendError,
    },
    /// The database was written by a newer palaver.
    #[error(
        "the database {path} has schema version {found}, newer than the {supported} this palaver understands; run a newer palaver or restore a backup"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// Opening or migrating failed for another reason (permissions, disk).
    #[error("cannot open the database {path} ({operation})")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The step that failed.
        operation: &'static str,
        /// What the database engine said.
        #[source]
        source: BackendError,
    },
    /// A query or write failed.
    #[error("store operation {operation} failed")]
    Backend {
        /// The operation (e.g. `"create_account"`).
        operation: &'static str,
        /// What the database engine said.
        #[source]
        source: BackendError,
    },
    /// A row read back made no sense (a value out of range): the database was
    /// edited by hand or is damaged.
    #[error("store operation {operation} read an invalid {what}")]
    Invalid {
        /// The operation.
        operation: &'static str,
        /// What was invalid.
        what: &'static str,
    },
    /// Creating something whose key is taken.
    #[error("{what} {key} already exists")]
    AlreadyExists {
        /// `"account"` or `"channel"`.
        what: &'static str,
        /// The folded key.
        key: String,
    },
    /// Changing something that does not exist.
    #[error("{what} {key} does not exist")]
    NotFound {
        /// `"account"` or `"channel"`.
        what: &'static str,
        /// The folded key.
        key: String,
    },
    /// The request queue is full: the database cannot keep up. The caller may retry
    /// after the next commit (see [`crate::Store::watch_committed`]).
    #[error("the store is overloaded ({operation} not queued)")]
    Overloaded {
        /// The operation refused.
        operation: &'static str,
    },
    /// The store was shut down, or its thread died.
    #[error("the store is closed ({operation} not done)")]
    Closed {
        /// The operation refused.
        operation: &'static str,
    },
}

impl StoreError {
    /// Wraps a backend error for `operation`.
    pub fn backend(
        operation: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Backend {
            operation,
            source: Box::new(source),
        }
    }
}

/// Why [`crate::Store::append`] did not queue a message. Cheap (no allocation): it
/// is on the hot path, and the message is handed back in [`AppendRejected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The queue is full: the database is behind by a whole queue of messages. The
    /// caller decides: wait for the next commit and retry, or deliver without history.
    #[error("the history queue is full")]
    Full,
    /// The store is shut down, or its writer died.
    #[error("the store is closed")]
    Closed,
}

/// A message [`crate::Store::append`] refused, handed back so the caller can retry
/// without having cloned it.
#[derive(Debug, thiserror::Error)]
#[error("history message {} not stored: {reason}", message.msgid)]
pub struct AppendRejected {
    /// Why.
    pub reason: AppendError,
    /// The message, unchanged.
    pub message: HistoryMessage,
}
