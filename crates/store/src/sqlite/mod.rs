//! The SQLite backend: one writer thread with group commit, a few reader threads.
//!
//! Connections: the writer thread owns the only connection that writes (so there is
//! never write contention between our own connections, and batching is possible);
//! reader threads each own a `query_only` connection and, thanks to WAL, read while
//! the writer commits. Async callers hand work to these threads and await a oneshot
//! reply, so the store needs no particular async runtime and a slow query never
//! blocks a server thread.

mod backup;
mod schema;
mod sql;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, Transaction};
use tokio::sync::{oneshot, watch};

pub use self::backup::{BackupSummary, RestoreSummary, backup, restore};
use self::writer::{Job, Queue, WriterCache, in_savepoint};
use crate::error::{AppendRejected, StoreError};
use crate::queue::CommitHook;
use crate::span::{FIRST, LAST, Resolved, Span};
use crate::store::{Store, StoreFuture};
use crate::types::{
    Account, CertfpAdded, ChannelRegistration, Expired, HistoryMessage, HistoryRef,
    MAX_CERTFPS_PER_ACCOUNT, PasswordUpdate, Retention, ServerBan, ServerBanAdded, ServerBanKind,
    TargetKey, TargetLatest, TargetScope, Timestamp,
};

/// The database file's name inside the data directory.
pub const DATABASE_FILE: &str = "palaver.db";
/// The lock file beside it: held for the store's life so a second palaver on the
/// same directory is refused at once with [`StoreError::Locked`], instead of two
/// servers interleaving history.
pub const LOCK_FILE: &str = "palaver.lock";

/// How hard each commit is pushed to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// `synchronous=NORMAL` (the default): a commit is in the WAL before it counts,
    /// so it survives the process being killed at any moment; the WAL is synced at
    /// checkpoints, so a power loss or kernel crash may roll back the last commits.
    #[default]
    Normal,
    /// `synchronous=FULL` (`--fsync always`): the WAL is synced on every commit, so
    /// committed messages also survive a power loss. Group commit keeps the cost to
    /// one fsync per batch, not per message.
    Full,
}

/// How to open a [`SqliteStore`].
#[derive(Clone)]
pub struct SqliteOptions {
    /// Commit durability; see [`SyncMode`].
    pub sync: SyncMode,
    /// How long a connection waits for a lock held elsewhere before giving up (at
    /// open: before reporting [`StoreError::Locked`]).
    pub busy_timeout: Duration,
    /// Most appends waiting for the writer; past it [`Store::append`] refuses
    /// ([`crate::AppendError::Full`]). Memory grows with batches up to this bound
    /// and is then reused.
    pub queue_capacity: usize,
    /// Reader threads (each with its own connection) serving queries.
    pub readers: usize,
    /// Called on the writer thread after every commit with the new watermark: for a
    /// server that wants to release held deliveries without polling. It must be
    /// quick (it delays the next batch).
    pub on_commit: Option<CommitHook>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            sync: SyncMode::Normal,
            busy_timeout: Duration::from_secs(5),
            queue_capacity: 65_536,
            readers: 2,
            on_commit: None,
        }
    }
}

impl std::fmt::Debug for SqliteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteOptions")
            .field("sync", &self.sync)
            .field("busy_timeout", &self.busy_timeout)
            .field("queue_capacity", &self.queue_capacity)
            .field("readers", &self.readers)
            .field("on_commit", &self.on_commit.is_some())
            .finish()
    }
}

/// WAL pages after which the writer checkpoints by itself (the checkpoint
/// thread normally keeps the WAL far below this).
const FALLBACK_CHECKPOINT_PAGES: i64 = 65_536;

/// How often the checkpoint thread copies the WAL into the database.
const CHECKPOINT_PERIOD: Duration = Duration::from_millis(250);

/// A query for a reader thread.
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// Queries waiting for a reader, at most (beyond it: [`StoreError::Overloaded`]).
const READ_QUEUE: usize = 1024;

/// The embedded SQLite store (the default backend).
pub struct SqliteStore {
    path: PathBuf,
    queue: Arc<Queue>,
    /// Queries go to the reader threads through this; taken (closing the channel)
    /// when the store stops.
    read_tx: Mutex<Option<SyncSender<ReadJob>>>,
    /// What must be stopped and waited for; taken by the first stop.
    running: Mutex<Option<Running>>,
}

/// The threads of an open store and its directory lock, stopped together.
struct Running {
    writer: JoinHandle<()>,
    /// The reader threads and the checkpoint thread.
    helpers: Vec<JoinHandle<()>>,
    /// Dropped to stop the checkpoint thread (file databases only).
    checkpoint_stop: Option<std::sync::mpsc::Sender<()>>,
    /// Held (locked) until every thread has stopped, so that another store may
    /// open the directory as soon as this one is closed (not only once the last
    /// reference to it is dropped).
    lock: Option<File>,
}

impl Running {
    /// Waits for the writer to commit what is queued (its queue must be closed
    /// first), then for the other threads (the readers' channel must be closed),
    /// then releases the lock.
    fn stop(self) {
        // A writer that panicked has already settled what it could.
        let _ = self.writer.join();
        drop(self.checkpoint_stop);
        for helper in self.helpers {
            let _ = helper.join();
        }
        drop(self.lock);
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("committed", &self.queue.committed())
            .finish_non_exhaustive()
    }
}

/// Turns an SQLite error at open into the one-sentence error the operator needs.
pub(crate) fn classify(e: rusqlite::Error, path: &Path, operation: &'static str) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked {
            path: path.to_owned(),
        },
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path: path.to_owned(),
            source: Box::new(e),
        },
        _ => StoreError::Open {
            path: path.to_owned(),
            operation,
            source: Box::new(e),
        },
    }
}

/// Takes the data directory's lock (`palaver.lock`), which a store holds for its
/// whole life and `restore` while it swaps files: one process at a time.
fn lock_data_dir(data_dir: &Path) -> Result<File, StoreError> {
    let lock_path = data_dir.join(LOCK_FILE);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| StoreError::Open {
            path: lock_path.clone(),
            operation: "open lock file",
            source: Box::new(source),
        })?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
            path: data_dir.join(DATABASE_FILE),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Open {
            path: lock_path,
            operation: "lock",
            source: Box::new(source),
        }),
    }
}

/// Distinguishes in-memory databases of one process.
static MEMORY_DATABASES: AtomicU64 = AtomicU64::new(0);

impl SqliteStore {
    /// Opens (creating if needed) `data_dir/palaver.db`, creating `data_dir` too,
    /// with default options.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(data_dir, SqliteOptions::default())
    }

    /// Opens `data_dir/palaver.db` with `options`.
    ///
    /// Errors are one sentence each: [`StoreError::Locked`] (another process holds
    /// it), [`StoreError::Corrupt`] (not a database, or another application's),
    /// [`StoreError::TooNew`] (a newer palaver's schema). Opening reads only the
    /// header and the schema, never the tables, so it takes the same time at any
    /// size.
    pub fn open_with(data_dir: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::CreateDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(DATABASE_FILE);
        let lock = lock_data_dir(data_dir)?;
        let uri = path.to_string_lossy().into_owned();
        Self::start(path, &uri, true, options, Some(lock))
    }

    /// An in-memory store (`--ephemeral`, tests): everything is lost when it is
    /// dropped. It behaves like a file store, threads and group commit included,
    /// so tests exercise the same paths.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::open_in_memory_with(SqliteOptions::default())
    }

    /// An in-memory store with `options` (`sync` is irrelevant there).
    pub fn open_in_memory_with(options: SqliteOptions) -> Result<Self, StoreError> {
        let n = MEMORY_DATABASES.fetch_add(1, Ordering::Relaxed);
        // The memdb VFS shares a database between the connections of one process
        // that name it with a leading '/'.
        let name = format!("/palaver-{}-{n}", std::process::id());
        let uri = format!("file:{name}?vfs=memdb");
        Self::start(PathBuf::from(name), &uri, false, options, None)
    }

    fn start(
        path: PathBuf,
        uri: &str,
        wal: bool,
        options: SqliteOptions,
        lock: Option<File>,
    ) -> Result<Self, StoreError> {
        let mut conn = connect(&path, uri, &options)?;
        let fail = |operation| {
            let path = path.clone();
            move |e| classify(e, &path, operation)
        };
        if wal {
            // Fails on a file that is not a database (NotADatabase) and on one a
            // process holds exclusively (Busy).
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
                .map_err(fail("set WAL mode"))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Open {
                    path,
                    operation: "set WAL mode",
                    source: format!("the journal mode stayed {mode}").into(),
                });
            }
            let sync = match options.sync {
                SyncMode::Normal => "NORMAL",
                SyncMode::Full => "FULL",
            };
            conn.pragma_update(None, "synchronous", sync)
                .map_err(fail("set synchronous"))?;
            // Checkpoints (copying the WAL into the database, with two fsyncs) run
            // on a thread of their own (`checkpoints`), so a commit, and the
            // deliveries waiting for it, never waits for an fsync of the database
            // file. The writer checkpoints itself only if that thread falls far
            // behind (256 MiB of WAL), which bounds the WAL.
            conn.pragma_update(None, "wal_autocheckpoint", FALLBACK_CHECKPOINT_PAGES)
                .map_err(fail("set checkpoint interval"))?;
        }
        // The writer touches the tail page of each active target's index range:
        // 64 MiB of page cache keeps those hot for ~10,000 busy targets.
        conn.pragma_update(None, "cache_size", -65_536)
            .map_err(fail("set cache size"))?;
        schema::migrate(&mut conn, &path)?;

        let mut readers = Vec::new();
        let (read_tx, read_rx) = std::sync::mpsc::sync_channel::<ReadJob>(READ_QUEUE);
        let read_rx = Arc::new(Mutex::new(read_rx));
        for i in 0..options.readers.max(1) {
            let reader = connect(&path, uri, &options)?;
            reader
                .pragma_update(None, "query_only", true)
                .map_err(fail("open reader"))?;
            let rx = Arc::clone(&read_rx);
            let thread = std::thread::Builder::new()
                .name(format!("store-reader-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&reader),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|source| StoreError::Open {
                    path: path.clone(),
                    operation: "start reader thread",
                    source: Box::new(source),
                })?;
            readers.push(thread);
        }

        let checkpoint_stop = if wal {
            let (stop, stopped) = std::sync::mpsc::channel::<()>();
            let conn = connect(&path, uri, &options)?;
            let thread = std::thread::Builder::new()
                .name("store-checkpoint".into())
                .spawn(move || checkpoints(&conn, &stopped))
                .map_err(|source| StoreError::Open {
                    path: path.clone(),
                    operation: "start checkpoint thread",
                    source: Box::new(source),
                })?;
            readers.push(thread);
            Some(stop)
        } else {
            None
        };
        let queue = Arc::new(Queue::new(options.queue_capacity, options.on_commit));
        let writer_queue = Arc::clone(&queue);
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer::run(conn, writer_queue))
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                operation: "start writer thread",
                source: Box::new(source),
            })?;
        Ok(Self {
            path,
            queue,
            read_tx: Mutex::new(Some(read_tx)),
            running: Mutex::new(Some(Running {
                writer,
                helpers: readers,
                checkpoint_stop,
                lock,
            })),
        })
    }

    /// The database file (for an in-memory store, its memdb name).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Commits what is queued and stops the threads, waiting for them (the
    /// synchronous form of [`Store::close`], also run on drop).
    pub fn shutdown(&self) {
        if let Some(running) = self.begin_stop() {
            running.stop();
        }
    }

    /// Refuses new work (writes and queries) and hands over what is left to stop,
    /// unless an earlier stop took it.
    fn begin_stop(&self) -> Option<Running> {
        self.queue.close();
        self.read_tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Runs `f` on a reader thread.
    fn read<T, F>(&self, operation: &'static str, f: F) -> StoreFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            // The caller may have stopped waiting; nothing to tell then.
            let _ = reply.send(f(conn));
        });
        let sent = match &*self
            .read_tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some(tx) => match tx.try_send(job) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(_)) => Err(StoreError::Overloaded { operation }),
                Err(TrySendError::Disconnected(_)) => Err(StoreError::Closed { operation }),
            },
            None => Err(StoreError::Closed { operation }),
        };
        Box::pin(async move {
            sent?;
            rx.await.map_err(|_| StoreError::Closed { operation })?
        })
    }

    /// Runs `f` on the writer thread inside the next batch (under its own
    /// savepoint) and resolves once that batch is committed.
    fn write<T, F>(&self, operation: &'static str, f: F) -> StoreFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, &mut WriterCache) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |tx, cache| {
            let result = in_savepoint(tx, |tx| f(tx, cache));
            Box::new(move |commit: Result<(), &str>| {
                let out = match (result, commit) {
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(why)) => Err(StoreError::Backend {
                        operation,
                        source: why.to_owned().into(),
                    }),
                    (Ok(value), Ok(())) => Ok(value),
                };
                let _ = reply.send(out);
            })
        });
        let queued = self.queue.job(job);
        Box::pin(async move {
            if queued.is_none() {
                return Err(StoreError::Closed { operation });
            }
            rx.await.map_err(|_| StoreError::Closed { operation })?
        })
    }

    fn history(
        &self,
        target: &TargetKey,
        span: Span,
        limit: usize,
    ) -> StoreFuture<'_, Vec<HistoryMessage>> {
        let target = target.clone();
        self.read("history query", move |conn| {
            query_history(conn, &target, span, limit)
                .map_err(|e| StoreError::backend("history query", e))?
        })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The checkpoint thread: every [`CHECKPOINT_PERIOD`], a PASSIVE checkpoint (it
/// copies what it can without waiting for the writer or the readers), until the
/// store shuts down. Its fsyncs of the database file then delay nobody.
fn checkpoints(conn: &Connection, stopped: &std::sync::mpsc::Receiver<()>) {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
        stopped.recv_timeout(CHECKPOINT_PERIOD)
    {
        // A busy database or an I/O error: the next period tries again, and the
        // writer's fallback bounds the WAL meanwhile.
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
}

fn connect(path: &Path, uri: &str, options: &SqliteOptions) -> Result<Connection, StoreError> {
    let conn = Connection::open(uri).map_err(|e| classify(e, path, "open"))?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(|e| classify(e, path, "set busy timeout"))?;
    Ok(conn)
}

/// Runs one CHATHISTORY query; the outer `Result` carries SQL errors from the
/// reference lookups, the inner one the query's.
fn query_history(
    conn: &Connection,
    target: &TargetKey,
    span: Span,
    limit: usize,
) -> rusqlite::Result<Result<Vec<HistoryMessage>, StoreError>> {
    if limit == 0 {
        return Ok(Ok(Vec::new()));
    }
    let Some(tid) = sql::target_id(conn, target.as_str())? else {
        return Ok(Ok(Vec::new()));
    };
    let resolve = |r: &HistoryRef| -> rusqlite::Result<Option<Resolved>> {
        Ok(match r {
            HistoryRef::Time(t) => Some(Resolved::Time(t.0)),
            HistoryRef::MsgId(id) => sql::position(conn, tid, id)?.map(Resolved::Message),
        })
    };
    let range = |lo, hi, from_top, n| sql::range(conn, target, tid, lo, hi, from_top, n);
    Ok(match span {
        Span::Latest(None) => range(FIRST, LAST, true, limit),
        Span::Latest(Some(r)) => match resolve(&r)? {
            Some(r) => range(r.above(), LAST, true, limit),
            None => Ok(Vec::new()),
        },
        Span::Before(r) => match resolve(&r)? {
            Some(r) => range(FIRST, r.below(), true, limit),
            None => Ok(Vec::new()),
        },
        Span::After(r) => match resolve(&r)? {
            Some(r) => range(r.above(), LAST, false, limit),
            None => Ok(Vec::new()),
        },
        Span::Around(r) => match resolve(&r)? {
            Some(r) => (|| {
                let mut out = range(FIRST, r.below(), true, limit / 2)?;
                let rest = limit - out.len();
                out.extend(range(r.from(), LAST, false, rest)?);
                Ok(out)
            })(),
            None => Ok(Vec::new()),
        },
        Span::Between(a, b) => match (resolve(&a)?, resolve(&b)?) {
            (Some(a), Some(b)) => {
                if a.below() <= b.below() {
                    range(a.above(), b.below(), false, limit)
                } else {
                    range(b.above(), a.below(), true, limit)
                }
            }
            _ => Ok(Vec::new()),
        },
    })
}

fn sql_err(operation: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend(operation, e)
}

/// Maps a constraint violation on insert to [`StoreError::AlreadyExists`].
fn exists_or(
    e: rusqlite::Error,
    what: &'static str,
    key: &str,
    operation: &'static str,
) -> StoreError {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) {
        StoreError::AlreadyExists {
            what,
            key: key.to_owned(),
        }
    } else {
        StoreError::backend(operation, e)
    }
}

impl Store for SqliteStore {
    fn create_account(&self, account: Account) -> StoreFuture<'_, ()> {
        self.write("create_account", move |tx, _| {
            sql::insert_account(tx, &account)
                .map_err(|e| exists_or(e, "account", &account.key, "create_account"))
        })
    }

    fn account_keys(&self) -> StoreFuture<'_, Vec<String>> {
        self.read("account_keys", |conn| {
            sql::account_keys(conn).map_err(sql_err("account_keys"))
        })
    }

    fn account(&self, key: &str) -> StoreFuture<'_, Option<Account>> {
        let key = key.to_owned();
        self.read("account", move |conn| {
            sql::account(conn, &key).map_err(sql_err("account"))
        })
    }

    fn set_password(&self, key: &str, update: PasswordUpdate) -> StoreFuture<'_, ()> {
        let key = key.to_owned();
        self.write("set_password", move |tx, _| {
            if sql::set_password(tx, &key, &update).map_err(sql_err("set_password"))? {
                Ok(())
            } else {
                Err(StoreError::NotFound {
                    what: "account",
                    key,
                })
            }
        })
    }

    fn set_verified(&self, key: &str, verified: bool) -> StoreFuture<'_, ()> {
        let key = key.to_owned();
        self.write("set_verified", move |tx, _| {
            if sql::set_verified(tx, &key, verified).map_err(sql_err("set_verified"))? {
                Ok(())
            } else {
                Err(StoreError::NotFound {
                    what: "account",
                    key,
                })
            }
        })
    }

    fn delete_account(&self, key: &str) -> StoreFuture<'_, bool> {
        let key = key.to_owned();
        self.write("delete_account", move |tx, _| {
            sql::delete_account(tx, &key).map_err(sql_err("delete_account"))
        })
    }

    fn add_certfp(&self, account_key: &str, certfp: &str) -> StoreFuture<'_, CertfpAdded> {
        let (key, certfp) = (account_key.to_owned(), certfp.to_owned());
        // On the writer thread, inside one transaction: the checks and the insert
        // cannot interleave with another add.
        self.write("add_certfp", move |tx, _| {
            let fail = sql_err("add_certfp");
            if sql::account(tx, &key).map_err(&fail)?.is_none() {
                return Err(StoreError::NotFound {
                    what: "account",
                    key,
                });
            }
            match sql::certfp_owner(tx, &certfp).map_err(&fail)? {
                Some(owner) if owner == key => return Ok(CertfpAdded::AlreadyPresent),
                Some(_) => return Ok(CertfpAdded::Taken),
                None => {}
            }
            let count = sql::certfp_count(tx, &key).map_err(&fail)?;
            if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_CERTFPS_PER_ACCOUNT {
                return Ok(CertfpAdded::LimitReached);
            }
            sql::insert_certfp(tx, &key, &certfp).map_err(&fail)?;
            Ok(CertfpAdded::Added)
        })
    }

    fn remove_certfp(&self, account_key: &str, certfp: &str) -> StoreFuture<'_, bool> {
        let (key, certfp) = (account_key.to_owned(), certfp.to_owned());
        self.write("remove_certfp", move |tx, _| {
            sql::delete_certfp(tx, &key, &certfp).map_err(sql_err("remove_certfp"))
        })
    }

    fn certfps(&self, account_key: &str) -> StoreFuture<'_, Vec<String>> {
        let key = account_key.to_owned();
        self.read("certfps", move |conn| {
            sql::certfps(conn, &key).map_err(sql_err("certfps"))
        })
    }

    fn account_by_certfp(&self, certfp: &str) -> StoreFuture<'_, Option<Account>> {
        let certfp = certfp.to_owned();
        self.read("account_by_certfp", move |conn| {
            sql::account_by_certfp(conn, &certfp).map_err(sql_err("account_by_certfp"))
        })
    }

    fn add_server_ban(&self, ban: ServerBan, limit: usize) -> StoreFuture<'_, ServerBanAdded> {
        // On the writer thread, in one transaction: the count and the insert cannot
        // interleave with another add.
        self.write("add_server_ban", move |tx, _| {
            let fail = sql_err("add_server_ban");
            let replaced = sql::server_ban_exists(tx, ban.kind, &ban.mask).map_err(&fail)?;
            if !replaced {
                let count = sql::server_ban_count(tx).map_err(&fail)?;
                if usize::try_from(count).unwrap_or(usize::MAX) >= limit {
                    return Ok(ServerBanAdded::LimitReached);
                }
            }
            sql::upsert_server_ban(tx, &ban).map_err(&fail)?;
            Ok(if replaced {
                ServerBanAdded::Replaced
            } else {
                ServerBanAdded::Added
            })
        })
    }

    fn remove_server_ban(&self, kind: ServerBanKind, mask: &str) -> StoreFuture<'_, bool> {
        let mask = mask.to_owned();
        self.write("remove_server_ban", move |tx, _| {
            sql::delete_server_ban(tx, kind, &mask).map_err(sql_err("remove_server_ban"))
        })
    }

    fn server_bans(&self) -> StoreFuture<'_, Vec<ServerBan>> {
        self.read("server_bans", |conn| {
            sql::server_bans(conn).map_err(sql_err("server_bans"))
        })
    }

    fn expire_server_bans(&self, now: Timestamp) -> StoreFuture<'_, u64> {
        self.write("expire_server_bans", move |tx, _| {
            sql::expire_server_bans(tx, now).map_err(sql_err("expire_server_bans"))
        })
    }

    fn register_channel(&self, channel: ChannelRegistration) -> StoreFuture<'_, ()> {
        self.write("register_channel", move |tx, _| {
            sql::insert_channel(tx, &channel)
                .map_err(|e| exists_or(e, "channel", &channel.key, "register_channel"))
        })
    }

    fn channel(&self, key: &str) -> StoreFuture<'_, Option<ChannelRegistration>> {
        let key = key.to_owned();
        self.read("channel", move |conn| {
            Ok(sql::channels(conn, Some(&key))?.pop())
        })
    }

    fn update_channel(&self, channel: ChannelRegistration) -> StoreFuture<'_, ()> {
        self.write("update_channel", move |tx, _| {
            if sql::update_channel(tx, &channel).map_err(sql_err("update_channel"))? {
                Ok(())
            } else {
                Err(StoreError::NotFound {
                    what: "channel",
                    key: channel.key,
                })
            }
        })
    }

    fn drop_channel(&self, key: &str) -> StoreFuture<'_, bool> {
        let key = key.to_owned();
        self.write("drop_channel", move |tx, _| {
            sql::drop_channel(tx, &key).map_err(sql_err("drop_channel"))
        })
    }

    fn channels(&self) -> StoreFuture<'_, Vec<ChannelRegistration>> {
        self.read("channels", |conn| sql::channels(conn, None))
    }

    #[allow(clippy::result_large_err)] // Hands the message back; see the trait.
    fn append(&self, message: HistoryMessage) -> Result<u64, AppendRejected> {
        self.queue.append(message)
    }

    fn committed(&self) -> u64 {
        self.queue.committed()
    }

    fn watch_committed(&self) -> watch::Receiver<u64> {
        self.queue.subscribe()
    }

    fn write_failures(&self) -> u64 {
        self.queue.failures()
    }

    fn flush(&self) -> StoreFuture<'_, u64> {
        let upto = self.queue.last_seq();
        let mut rx = self.queue.subscribe();
        Box::pin(async move {
            let seen = rx
                .wait_for(|&c| c >= upto)
                .await
                .map_err(|_| StoreError::Closed { operation: "flush" })?;
            Ok(*seen)
        })
    }

    fn redact(&self, msgid: &str) -> StoreFuture<'static, bool> {
        let msgid = msgid.to_owned();
        self.write("redact", move |tx, _| {
            sql::redact(tx, &msgid).map_err(sql_err("redact"))
        })
    }

    fn latest(
        &self,
        target: &TargetKey,
        after: Option<HistoryRef>,
        limit: usize,
    ) -> StoreFuture<'_, Vec<HistoryMessage>> {
        self.history(target, Span::Latest(after), limit)
    }

    fn before(
        &self,
        target: &TargetKey,
        at: HistoryRef,
        limit: usize,
    ) -> StoreFuture<'_, Vec<HistoryMessage>> {
        self.history(target, Span::Before(at), limit)
    }

    fn after(
        &self,
        target: &TargetKey,
        at: HistoryRef,
        limit: usize,
    ) -> StoreFuture<'_, Vec<HistoryMessage>> {
        self.history(target, Span::After(at), limit)
    }

    fn around(
        &self,
        target: &TargetKey,
        at: HistoryRef,
        limit: usize,
    ) -> StoreFuture<'_, Vec<HistoryMessage>> {
        self.history(target, Span::Around(at), limit)
    }

    fn between(
        &self,
        target: &TargetKey,
        from: HistoryRef,
        to: HistoryRef,
        limit: usize,
    ) -> StoreFuture<'_, Vec<HistoryMessage>> {
        self.history(target, Span::Between(from, to), limit)
    }

    fn targets(
        &self,
        scope: &TargetScope,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> StoreFuture<'_, Vec<TargetLatest>> {
        let scope = scope.clone();
        self.read("targets", move |conn| {
            let fail = sql_err("targets");
            let (lo, hi) = (from.min(to).0, from.max(to).0);
            let mut found: Vec<(i64, String)> = Vec::new();
            for channel in &scope.channels {
                if let Some(latest) = sql::target_latest(conn, channel).map_err(&fail)?
                    && (lo..=hi).contains(&latest)
                {
                    found.push((latest, channel.clone()));
                }
            }
            for party in &scope.parties {
                for (key, latest) in
                    sql::party_targets(conn, &party.encoded(), lo, hi).map_err(&fail)?
                {
                    found.push((latest, key));
                }
            }
            found.sort();
            found.dedup_by(|a, b| a.1 == b.1);
            if from <= to {
                found.truncate(limit);
            } else {
                let skip = found.len().saturating_sub(limit);
                found.drain(..skip);
            }
            Ok(found
                .into_iter()
                .map(|(latest, key)| TargetLatest {
                    target: TargetKey::from_stored(key),
                    latest: Timestamp(latest),
                })
                .collect())
        })
    }

    fn set_read_marker(
        &self,
        account: &str,
        target: &TargetKey,
        at: Timestamp,
    ) -> StoreFuture<'static, Timestamp> {
        let (account, target) = (account.to_owned(), target.as_str().to_owned());
        self.write("set_read_marker", move |tx, _| {
            sql::set_read_marker(tx, &account, &target, at.0)
                .map(Timestamp)
                .map_err(sql_err("set_read_marker"))
        })
    }

    fn read_marker(&self, account: &str, target: &TargetKey) -> StoreFuture<'_, Option<Timestamp>> {
        let (account, target) = (account.to_owned(), target.as_str().to_owned());
        self.read("read_marker", move |conn| {
            Ok(sql::read_marker(conn, &account, &target)
                .map_err(sql_err("read_marker"))?
                .map(Timestamp))
        })
    }

    fn all_read_markers(
        &self,
        limit: usize,
    ) -> StoreFuture<'_, Vec<(String, TargetKey, Timestamp)>> {
        self.read("all_read_markers", move |conn| {
            sql::all_read_markers(conn, limit).map_err(sql_err("all_read_markers"))
        })
    }

    fn expire(&self, policy: Retention, now: Timestamp, batch: u32) -> StoreFuture<'_, Expired> {
        self.write("expire", move |tx, cache| {
            let fail = sql_err("expire");
            let mut out = Expired {
                removed: 0,
                complete: true,
            };
            if let Some(age) = policy.max_age_ms {
                let (n, done) =
                    sql::expire_age(tx, now.0.saturating_sub(age), batch).map_err(&fail)?;
                out.removed += n;
                out.complete &= done;
            }
            if let Some(keep) = policy.max_messages {
                let budget = u64::from(batch).saturating_sub(out.removed);
                if budget == 0 {
                    out.complete = false;
                } else {
                    let (n, done) =
                        sql::expire_count(tx, &mut cache.retention_cursor, keep, budget)
                            .map_err(&fail)?;
                    out.removed += n;
                    out.complete &= done;
                }
            }
            Ok(out)
        })
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        let running = self.begin_stop();
        let (done, stopped) = oneshot::channel();
        // Joining the threads blocks: that happens on a thread of its own, and the
        // future waits for it.
        let stopper = running.map(|running| {
            std::thread::Builder::new()
                .name("store-close".into())
                .spawn(move || {
                    running.stop();
                    let _ = done.send(());
                })
        });
        Box::pin(async move {
            match stopper {
                // Stopped (or being stopped) by an earlier call.
                None => Ok(()),
                Some(Ok(_)) => stopped
                    .await
                    .map_err(|_| StoreError::Closed { operation: "close" }),
                // Out of threads: the closure, and with it the lock, is dropped;
                // the writer still commits what is queued before it exits.
                Some(Err(source)) => Err(StoreError::backend("close", source)),
            }
        })
    }
}
