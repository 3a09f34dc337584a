//! The PostgreSQL backend: the store of a cluster of palaver nodes sharing one
//! database.
//!
//! # Threads and runtime
//! A [`PgStore`] owns one thread (`store-postgres`) running a current-thread tokio
//! runtime. Every connection (the writer's and the readers') and the writer task
//! live on it; public methods hand work over (a job on the writer's queue, or a task
//! spawned on the runtime's handle) and answer through `tokio::sync::oneshot`, just
//! as [`crate::SqliteStore`] answers from its threads. So the store works under any
//! executor (or none: [`PgStore::connect`] is a blocking call), the caller's runtime
//! never drives a database socket, and a slow database delays nobody's executor.
//! One thread is plenty: the work on it is waiting for the network.
//!
//! Why `tokio-postgres` (and no pool crate): it is the asynchronous driver with no
//! C library (libpq) to build or install, it pipelines concurrent queries on one
//! connection, and the store needs only a fixed handful of connections (one writer,
//! [`PgOptions::readers`] readers, each re-established when lost), which a few lines
//! manage without a pool's dependencies.
//!
//! # Writes and group commit
//! As with SQLite: [`Store::append`] queues (bounded, never blocks, never awaits) and
//! returns a per-store sequence number; the writer task commits everything queued
//! in **one** transaction (the batch grows while the previous commit is in flight),
//! then raises the committed watermark. Other writes take their place in that order
//! when called, each under a savepoint in the batch. See the `writer` module.
//!
//! # Several nodes, one database
//! Every atomicity promise of [`Store`] holds across processes, through the
//! database rather than in-process locks: unique keys (`AlreadyExists`), a row lock
//! on the account while fingerprints are counted and added, a transaction-scoped
//! advisory lock while server bans are counted and added, and an advisory lock
//! around migrations, so nodes may open the same database at once. Sequence numbers
//! and the watermark are per store (per node); history is shared: a message
//! committed by one node is seen by every node's queries (CHATHISTORY on any node
//! returns the same history). Two nodes' writes that wait for each other's locks in
//! opposite orders (a deadlock PostgreSQL breaks) fail alone: the job is rolled back
//! to its savepoint and its caller gets the error; the rest of the batch commits.
//!
//! # Connection URL
//! `postgres://user:password@host:port/dbname` (or `postgresql://`, or libpq's
//! `key=value` form). TLS is not supported yet: the connection is plain TCP or a
//! Unix socket, so `sslmode` must be `disable` or absent; any other `sslmode` is
//! refused at start with an error saying so. The password never appears in errors or
//! logs: the database is named as `postgres://user@host:port/dbname`.
//!
//! # Differences from SQLite that callers can see
//! None in the conformance suite. A target's latest message time (TARGETS) is
//! computed from the messages present, so it drops back if the latest message is
//! redacted or expired (SQLite keeps the time of the latest message ever stored).

mod schema;
mod sql;
mod writer;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, Config, NoTls};

use self::sql::pg_err;
use self::writer::{BoxFuture, Job, Queue, WriterCache, in_savepoint};
use crate::error::{AppendRejected, StoreError};
use crate::queue::{CommitHook, Completion};
use crate::span::{FIRST, LAST, Resolved, Span};
use crate::store::{Store, StoreFuture};
use crate::types::{
    Account, CertfpAdded, ChannelRegistration, Expired, HistoryMessage, HistoryRef,
    MAX_CERTFPS_PER_ACCOUNT, PasswordUpdate, Retention, ServerBan, ServerBanAdded, ServerBanKind,
    TargetKey, TargetLatest, TargetScope, Timestamp,
};

/// How to open a [`PgStore`].
#[derive(Clone)]
pub struct PgOptions {
    /// Most appends waiting for the writer; past it [`Store::append`] refuses
    /// ([`crate::AppendError::Full`]), as with SQLite.
    pub queue_capacity: usize,
    /// Reader connections serving queries (each pipelines concurrent queries).
    pub readers: usize,
    /// Most queries in flight; past it a query is refused with
    /// [`StoreError::Overloaded`] rather than queued without bound.
    pub max_queries: usize,
    /// How long establishing a connection may take, when the URL does not say
    /// (`connect_timeout`).
    pub connect_timeout: Duration,
    /// Called on the store's thread after every commit with the new watermark (see
    /// [`crate::SqliteOptions::on_commit`]); it must be quick.
    pub on_commit: Option<CommitHook>,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 65_536,
            readers: 2,
            max_queries: 1024,
            connect_timeout: Duration::from_secs(10),
            on_commit: None,
        }
    }
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("queue_capacity", &self.queue_capacity)
            .field("readers", &self.readers)
            .field("max_queries", &self.max_queries)
            .field("connect_timeout", &self.connect_timeout)
            .field("on_commit", &self.on_commit.is_some())
            .finish()
    }
}

/// The PostgreSQL store (for clusters; see the module docs).
pub struct PgStore {
    /// The database as shown to operators: `postgres://user@host:port/db`.
    shown: String,
    queue: Arc<Queue>,
    readers: Arc<Readers>,
    /// The store thread's runtime, where queries run.
    runtime: Handle,
    /// Bounds the queries in flight.
    queries: Arc<Semaphore>,
    /// Set by the first stop: queries are refused from then on.
    closed: AtomicBool,
    /// The store thread; taken (and joined) by the first stop.
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("database", &self.shown)
            .field("committed", &self.queue.committed())
            .finish_non_exhaustive()
    }
}

/// Whether `url` names a PostgreSQL database (rather than, say, a directory): the
/// server's `--store` accepts `postgres://` and `postgresql://`.
pub fn is_postgres_url(url: &str) -> bool {
    let lower = url.get(..13).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// `url` without its password, for messages: `postgres://user@host:port/db`. An
/// unparsable URL is shown as `postgres://(unparsable)` (it might hold a password).
pub fn describe_url(url: &str) -> String {
    url.parse::<Config>()
        .map(|config| describe(&config))
        .unwrap_or_else(|_| "postgres://(unparsable)".to_owned())
}

/// The database of `config`, as shown to operators (never the password).
fn describe(config: &Config) -> String {
    let user = config.get_user().unwrap_or("");
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let name = match host {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(dir) => dir.display().to_string(),
            };
            match ports.get(i).or(ports.first()) {
                Some(port) => format!("{name}:{port}"),
                None => name,
            }
        })
        .collect();
    let db = config.get_dbname().unwrap_or(user);
    let at = if user.is_empty() { "" } else { "@" };
    format!("postgres://{user}{at}{}/{db}", hosts.join(","))
}

/// An error whose text had the password taken out (a driver message could quote
/// the connection string).
fn scrub(error: &dyn std::error::Error, password: Option<&[u8]>) -> crate::BackendError {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    if let Some(password) = password.map(String::from_utf8_lossy)
        && !password.is_empty()
    {
        text = text.replace(password.as_ref(), "********");
    }
    text.into()
}

/// Parses and checks the URL: TLS modes other than `disable` are refused (not
/// supported yet), and the connection is made plain.
fn parse_url(url: &str, options: &PgOptions) -> Result<(Config, String), StoreError> {
    // Checked before parsing: the driver does not even parse some modes
    // (`verify-full`), and the operator deserves the same sentence for all of them.
    let explicit = sslmode(url);
    if let Some(mode) = explicit.as_deref().filter(|mode| *mode != "disable") {
        return Err(StoreError::Open {
            path: describe_url(&without_sslmode(url)).into(),
            operation: "check the database URL",
            source: format!(
                "sslmode={mode} is not supported yet: palaver connects to PostgreSQL without TLS (use sslmode=disable, over a private network or a Unix socket)"
            )
            .into(),
        });
    }
    let mut config: Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| StoreError::Open {
            path: describe_url(url).into(),
            operation: "parse the database URL",
            // The parser's message never holds the URL, but be sure.
            source: scrub(&e, url_password(url).as_deref().map(str::as_bytes)),
        })?;
    let shown = describe(&config);
    config.ssl_mode(SslMode::Disable);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(options.connect_timeout);
    }
    if config.get_application_name().is_none() {
        config.application_name("palaver");
    }
    Ok((config, shown))
}

/// The `sslmode` a connection string sets, if any (URL query or `key=value` form).
fn sslmode(url: &str) -> Option<String> {
    url.split(['?', '&', ' '])
        .filter_map(|part| part.split_once('='))
        .find(|(key, _)| key.trim() == "sslmode")
        .map(|(_, value)| value.trim().trim_matches('\'').to_owned())
}

/// `url` without its `sslmode` setting (to name the database in the refusal).
fn without_sslmode(url: &str) -> String {
    let keep = |part: &&str| !part.trim_start().starts_with("sslmode=");
    match url.split_once('?') {
        Some((base, query)) => {
            let rest: Vec<&str> = query.split('&').filter(keep).collect();
            if rest.is_empty() {
                base.to_owned()
            } else {
                format!("{base}?{}", rest.join("&"))
            }
        }
        None if !url.contains("://") => url.split(' ').filter(keep).collect::<Vec<_>>().join(" "),
        None => url.to_owned(),
    }
}

/// The password of a URL-form connection string, for scrubbing parse errors.
fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    Some(userinfo.split_once(':')?.1.to_owned())
}

/// Opens one connection and runs its I/O as a task on the store's runtime.
async fn connect_client(config: &Config, shown: &str) -> Result<Client, StoreError> {
    let (client, connection) = config.connect(NoTls).await.map_err(|e| StoreError::Open {
        path: shown.into(),
        operation: "connect",
        source: scrub(&e, config.get_password()),
    })?;
    let database = shown.to_owned();
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%database, %error, "store: a PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// The reader connections, handed out round robin; a lost one is re-established
/// by the next query that draws it.
struct Readers {
    slots: Vec<tokio::sync::Mutex<Arc<Client>>>,
    next: AtomicUsize,
    config: Config,
    shown: String,
}

impl Readers {
    async fn client(&self) -> Result<Arc<Client>, StoreError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        if slot.is_closed() {
            *slot = Arc::new(connect_client(&self.config, &self.shown).await?);
            tracing::info!(database = %self.shown, "store: reconnected a PostgreSQL reader");
        }
        Ok(Arc::clone(&slot))
    }
}

/// What the store thread hands back once connected and migrated.
struct Started {
    runtime: Handle,
    queue: Arc<Queue>,
    readers: Arc<Readers>,
}

impl PgStore {
    /// Connects to the database at `url` with default options, migrating its schema;
    /// see [`PgStore::connect_with`].
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PgOptions::default())
    }

    /// Connects to the database at `url`, brings its schema up to date, and starts
    /// the store's thread.
    ///
    /// Blocking (it is called at start-up, before the server's runtime exists): it
    /// returns once every connection is open and the schema migrated. Errors say
    /// which database (without the password) and which step failed:
    /// [`StoreError::Open`] (bad URL, unsupported `sslmode`, refused connection or
    /// authentication, a failing migration), [`StoreError::TooNew`] (a newer
    /// palaver's schema), [`StoreError::Corrupt`] (another application's tables).
    pub fn connect_with(url: &str, options: PgOptions) -> Result<Self, StoreError> {
        let (config, shown) = parse_url(url, &options)?;
        let max_queries = options.max_queries.max(1);
        let (ready, started) = std::sync::mpsc::channel::<Result<Started, StoreError>>();
        let thread_shown = shown.clone();
        let thread = std::thread::Builder::new()
            .name("store-postgres".into())
            .spawn(move || run_thread(config, thread_shown, options, ready))
            .map_err(|source| StoreError::Open {
                path: shown.clone().into(),
                operation: "start the store thread",
                source: Box::new(source),
            })?;
        let started = match started.recv() {
            Ok(Ok(started)) => started,
            Ok(Err(error)) => {
                let _ = thread.join();
                return Err(error);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(StoreError::Open {
                    path: shown.into(),
                    operation: "start the store thread",
                    source: "the store thread stopped before it was ready".into(),
                });
            }
        };
        tracing::debug!(database = %shown, "store: PostgreSQL store open");
        Ok(Self {
            shown,
            queue: started.queue,
            readers: started.readers,
            runtime: started.runtime,
            queries: Arc::new(Semaphore::new(max_queries)),
            closed: AtomicBool::new(false),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The database as shown to operators: `postgres://user@host:port/db`, never
    /// the password.
    pub fn database(&self) -> &str {
        &self.shown
    }

    /// Commits what is queued and stops the store's thread, waiting for it (the
    /// synchronous form of [`Store::close`], also run on drop).
    pub fn shutdown(&self) {
        if let Some(thread) = self.begin_stop() {
            let _ = thread.join();
        }
    }

    /// Refuses new work and hands over the thread to wait for, unless an earlier
    /// stop took it.
    fn begin_stop(&self) -> Option<JoinHandle<()>> {
        self.closed.store(true, Ordering::Release);
        self.queue.close();
        self.thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Runs `f` with a reader connection on the store's runtime.
    fn read<T, F>(&self, operation: &'static str, f: F) -> StoreFuture<'static, T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a Client) -> BoxFuture<'a, Result<T, StoreError>> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let sent = if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed { operation })
        } else {
            match Arc::clone(&self.queries).try_acquire_owned() {
                Ok(permit) => {
                    let readers = Arc::clone(&self.readers);
                    self.runtime.spawn(async move {
                        let result = match readers.client().await {
                            Ok(client) => f(&client).await,
                            Err(e) => Err(e),
                        };
                        drop(permit);
                        // The caller may have stopped waiting; nothing to tell then.
                        let _ = reply.send(result);
                    });
                    Ok(())
                }
                Err(_) => Err(StoreError::Overloaded { operation }),
            }
        };
        Box::pin(async move {
            sent?;
            rx.await.map_err(|_| StoreError::Closed { operation })?
        })
    }

    /// Runs `f` on the writer inside the next batch (under its own savepoint) and
    /// resolves once that batch is committed.
    fn write<T, F>(&self, operation: &'static str, f: F) -> StoreFuture<'static, T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a Client, &'a mut WriterCache) -> BoxFuture<'a, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = make_job(move |client, cache| {
            Box::pin(async move {
                let result = in_savepoint(client, f(client, cache)).await;
                let done: Completion = Box::new(move |commit: Result<(), &str>| {
                    let out = match (result, commit) {
                        (Err(e), _) => Err(e),
                        (Ok(_), Err(why)) => Err(StoreError::Backend {
                            operation,
                            source: why.to_owned().into(),
                        }),
                        (Ok(value), Ok(())) => Ok(value),
                    };
                    let _ = reply.send(out);
                });
                done
            })
        });
        let queued = self.queue.job(job);
        let queue = Arc::clone(&self.queue);
        Box::pin(async move {
            if queued.is_none() {
                return Err(StoreError::Closed { operation });
            }
            match rx.await {
                Ok(result) => result,
                // Dropped unrun: the store stopped, or the batch failed before the
                // job's turn (the connection was lost).
                Err(_) if queue.is_closed() => Err(StoreError::Closed { operation }),
                Err(_) => Err(StoreError::Backend {
                    operation,
                    source: "the history batch it was queued in failed before it ran".into(),
                }),
            }
        })
    }

    fn history(
        &self,
        target: &TargetKey,
        span: Span,
        limit: usize,
    ) -> StoreFuture<'_, Vec<HistoryMessage>> {
        let target = target.clone();
        self.read("history query", move |client| {
            Box::pin(async move { query_history(client, &target, span, limit).await })
        })
    }
}

/// Gives a job closure its higher-ranked type.
fn make_job<F>(f: F) -> Job
where
    F: for<'a> FnOnce(&'a Client, &'a mut WriterCache) -> BoxFuture<'a, Completion>
        + Send
        + 'static,
{
    Box::new(f)
}

/// The store thread: connects, migrates, reports, then runs the writer until the
/// queue is closed and drained. Dropping the runtime at the end closes every
/// connection.
fn run_thread(
    config: Config,
    shown: String,
    options: PgOptions,
    ready: std::sync::mpsc::Sender<Result<Started, StoreError>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(source) => {
            let _ = ready.send(Err(StoreError::Open {
                path: shown.into(),
                operation: "start the store runtime",
                source: Box::new(source),
            }));
            return;
        }
    };
    let handle = runtime.handle().clone();
    runtime.block_on(async move {
        let setup = async {
            let mut writer = connect_client(&config, &shown).await?;
            schema::migrate(&mut writer, &shown).await?;
            let mut slots = Vec::new();
            for _ in 0..options.readers.max(1) {
                let client = connect_client(&config, &shown).await?;
                slots.push(tokio::sync::Mutex::new(Arc::new(client)));
            }
            Ok::<_, StoreError>((writer, slots))
        };
        let (writer, slots) = match setup.await {
            Ok(parts) => parts,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        let queue = Arc::new(Queue::new(options.queue_capacity, options.on_commit));
        let readers = Arc::new(Readers {
            slots,
            next: AtomicUsize::new(0),
            config: config.clone(),
            shown: shown.clone(),
        });
        let started = Started {
            runtime: handle,
            queue: Arc::clone(&queue),
            readers,
        };
        if ready.send(Ok(started)).is_err() {
            return;
        }
        let reconnect: writer::Connect = Box::new(move || {
            let (config, shown) = (config.clone(), shown.clone());
            Box::pin(async move { connect_client(&config, &shown).await })
        });
        writer::run(writer, reconnect, queue).await;
    });
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Runs one CHATHISTORY query (the same positions as the SQLite backend, so both
/// order and page identically: by time, then insertion order).
async fn query_history(
    client: &Client,
    target: &TargetKey,
    span: Span,
    limit: usize,
) -> Result<Vec<HistoryMessage>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let resolve = async |r: &HistoryRef| -> Result<Option<Resolved>, StoreError> {
        Ok(match r {
            HistoryRef::Time(t) => Some(Resolved::Time(t.0)),
            HistoryRef::MsgId(id) => sql::position(client, target.as_str(), id)
                .await
                .map_err(pg_err("history query"))?
                .map(Resolved::Message),
        })
    };
    let range = |lo, hi, from_top, n| sql::range(client, target, lo, hi, from_top, n);
    match span {
        Span::Latest(None) => range(FIRST, LAST, true, limit).await,
        Span::Latest(Some(r)) => match resolve(&r).await? {
            Some(r) => range(r.above(), LAST, true, limit).await,
            None => Ok(Vec::new()),
        },
        Span::Before(r) => match resolve(&r).await? {
            Some(r) => range(FIRST, r.below(), true, limit).await,
            None => Ok(Vec::new()),
        },
        Span::After(r) => match resolve(&r).await? {
            Some(r) => range(r.above(), LAST, false, limit).await,
            None => Ok(Vec::new()),
        },
        Span::Around(r) => match resolve(&r).await? {
            Some(r) => {
                let mut out = range(FIRST, r.below(), true, limit / 2).await?;
                let rest = limit - out.len();
                out.extend(range(r.from(), LAST, false, rest).await?);
                Ok(out)
            }
            None => Ok(Vec::new()),
        },
        Span::Between(a, b) => match (resolve(&a).await?, resolve(&b).await?) {
            (Some(a), Some(b)) => {
                if a.below() <= b.below() {
                    range(a.above(), b.below(), false, limit).await
                } else {
                    range(b.above(), a.below(), true, limit).await
                }
            }
            _ => Ok(Vec::new()),
        },
    }
}

/// Maps a unique violation on insert to [`StoreError::AlreadyExists`].
fn exists_or(
    e: tokio_postgres::Error,
    what: &'static str,
    key: &str,
    operation: &'static str,
) -> StoreError {
    if sql::is_unique_violation(&e) {
        StoreError::AlreadyExists {
            what,
            key: key.to_owned(),
        }
    } else {
        StoreError::backend(operation, e)
    }
}

impl Store for PgStore {
    fn create_account(&self, account: Account) -> StoreFuture<'_, ()> {
        self.write("create_account", move |client, _| {
            Box::pin(async move {
                sql::insert_account(client, &account)
                    .await
                    .map_err(|e| exists_or(e, "account", &account.key, "create_account"))
            })
        })
    }

    fn account(&self, key: &str) -> StoreFuture<'_, Option<Account>> {
        let key = key.to_owned();
        self.read("account", move |client| {
            Box::pin(async move { sql::account(client, &key).await })
        })
    }

    fn account_keys(&self) -> StoreFuture<'_, Vec<String>> {
        self.read("account_keys", |client| {
            Box::pin(async move {
                sql::account_keys(client)
                    .await
                    .map_err(pg_err("account_keys"))
            })
        })
    }

    fn set_password(&self, key: &str, update: PasswordUpdate) -> StoreFuture<'_, ()> {
        let key = key.to_owned();
        self.write("set_password", move |client, _| {
            Box::pin(async move {
                if sql::set_password(client, &key, &update)
                    .await
                    .map_err(pg_err("set_password"))?
                {
                    Ok(())
                } else {
                    Err(StoreError::NotFound {
                        what: "account",
                        key,
                    })
                }
            })
        })
    }

    fn set_verified(&self, key: &str, verified: bool) -> StoreFuture<'_, ()> {
        let key = key.to_owned();
        self.write("set_verified", move |client, _| {
            Box::pin(async move {
                if sql::set_verified(client, &key, verified)
                    .await
                    .map_err(pg_err("set_verified"))?
                {
                    Ok(())
                } else {
                    Err(StoreError::NotFound {
                        what: "account",
                        key,
                    })
                }
            })
        })
    }

    fn delete_account(&self, key: &str) -> StoreFuture<'_, bool> {
        let key = key.to_owned();
        self.write("delete_account", move |client, _| {
            Box::pin(async move {
                sql::delete_account(client, &key)
                    .await
                    .map_err(pg_err("delete_account"))
            })
        })
    }

    fn add_certfp(&self, account_key: &str, certfp: &str) -> StoreFuture<'_, CertfpAdded> {
        let (key, certfp) = (account_key.to_owned(), certfp.to_owned());
        // In the batch transaction, with the account row locked: another node's add
        // to the same account waits for this transaction, so the count holds; the
        // fingerprint's primary key settles a race between two accounts.
        self.write("add_certfp", move |client, _| {
            Box::pin(async move {
                let fail = pg_err("add_certfp");
                if !sql::lock_account(client, &key).await.map_err(&fail)? {
                    return Err(StoreError::NotFound {
                        what: "account",
                        key,
                    });
                }
                let owned = |owner: Option<String>| match owner {
                    Some(owner) if owner == key => CertfpAdded::AlreadyPresent,
                    _ => CertfpAdded::Taken,
                };
                if let Some(owner) = sql::certfp_owner(client, &certfp).await.map_err(&fail)? {
                    return Ok(owned(Some(owner)));
                }
                let count = sql::certfp_count(client, &key).await.map_err(&fail)?;
                if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_CERTFPS_PER_ACCOUNT {
                    return Ok(CertfpAdded::LimitReached);
                }
                if sql::insert_certfp(client, &key, &certfp)
                    .await
                    .map_err(&fail)?
                {
                    Ok(CertfpAdded::Added)
                } else {
                    // Another node added it since we looked.
                    Ok(owned(
                        sql::certfp_owner(client, &certfp).await.map_err(&fail)?,
                    ))
                }
            })
        })
    }

    fn remove_certfp(&self, account_key: &str, certfp: &str) -> StoreFuture<'_, bool> {
        let (key, certfp) = (account_key.to_owned(), certfp.to_owned());
        self.write("remove_certfp", move |client, _| {
            Box::pin(async move {
                sql::delete_certfp(client, &key, &certfp)
                    .await
                    .map_err(pg_err("remove_certfp"))
            })
        })
    }

    fn certfps(&self, account_key: &str) -> StoreFuture<'_, Vec<String>> {
        let key = account_key.to_owned();
        self.read("certfps", move |client| {
            Box::pin(async move { sql::certfps(client, &key).await.map_err(pg_err("certfps")) })
        })
    }

    fn account_by_certfp(&self, certfp: &str) -> StoreFuture<'_, Option<Account>> {
        let certfp = certfp.to_owned();
        self.read("account_by_certfp", move |client| {
            Box::pin(async move { sql::account_by_certfp(client, &certfp).await })
        })
    }

    fn register_channel(&self, channel: ChannelRegistration) -> StoreFuture<'_, ()> {
        self.write("register_channel", move |client, _| {
            Box::pin(async move {
                sql::insert_channel(client, &channel)
                    .await
                    .map_err(|e| exists_or(e, "channel", &channel.key, "register_channel"))
            })
        })
    }

    fn channel(&self, key: &str) -> StoreFuture<'_, Option<ChannelRegistration>> {
        let key = key.to_owned();
        self.read("channel", move |client| {
            Box::pin(async move { Ok(sql::channels(client, Some(&key)).await?.pop()) })
        })
    }

    fn update_channel(&self, channel: ChannelRegistration) -> StoreFuture<'_, ()> {
        self.write("update_channel", move |client, _| {
            Box::pin(async move {
                if sql::update_channel(client, &channel)
                    .await
                    .map_err(pg_err("update_channel"))?
                {
                    Ok(())
                } else {
                    Err(StoreError::NotFound {
                        what: "channel",
                        key: channel.key,
                    })
                }
            })
        })
    }

    fn drop_channel(&self, key: &str) -> StoreFuture<'_, bool> {
        let key = key.to_owned();
        self.write("drop_channel", move |client, _| {
            Box::pin(async move {
                sql::drop_channel(client, &key)
                    .await
                    .map_err(pg_err("drop_channel"))
            })
        })
    }

    fn channels(&self) -> StoreFuture<'_, Vec<ChannelRegistration>> {
        self.read("channels", |client| {
            Box::pin(async move { sql::channels(client, None).await })
        })
    }

    fn add_server_ban(&self, ban: ServerBan, limit: usize) -> StoreFuture<'_, ServerBanAdded> {
        // Under an advisory lock held until the batch commits: another node's add
        // waits, so the count and the insert are one step across the cluster.
        self.write("add_server_ban", move |client, _| {
            Box::pin(async move {
                let fail = pg_err("add_server_ban");
                sql::lock_server_bans(client).await.map_err(&fail)?;
                let replaced = sql::server_ban_exists(client, ban.kind, &ban.mask)
                    .await
                    .map_err(&fail)?;
                if !replaced {
                    let count = sql::server_ban_count(client).await.map_err(&fail)?;
                    if usize::try_from(count).unwrap_or(usize::MAX) >= limit {
                        return Ok(ServerBanAdded::LimitReached);
                    }
                }
                sql::upsert_server_ban(client, &ban).await.map_err(&fail)?;
                Ok(if replaced {
                    ServerBanAdded::Replaced
                } else {
                    ServerBanAdded::Added
                })
            })
        })
    }

    fn remove_server_ban(&self, kind: ServerBanKind, mask: &str) -> StoreFuture<'_, bool> {
        let mask = mask.to_owned();
        self.write("remove_server_ban", move |client, _| {
            Box::pin(async move {
                sql::delete_server_ban(client, kind, &mask)
                    .await
                    .map_err(pg_err("remove_server_ban"))
            })
        })
    }

    fn server_bans(&self) -> StoreFuture<'_, Vec<ServerBan>> {
        self.read("server_bans", |client| {
            Box::pin(async move {
                sql::server_bans(client)
                    .await
                    .map_err(pg_err("server_bans"))
            })
        })
    }

    fn expire_server_bans(&self, now: Timestamp) -> StoreFuture<'_, u64> {
        self.write("expire_server_bans", move |client, _| {
            Box::pin(async move {
                sql::expire_server_bans(client, now)
                    .await
                    .map_err(pg_err("expire_server_bans"))
            })
        })
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
        self.write("redact", move |client, _| {
            Box::pin(async move { sql::redact(client, &msgid).await.map_err(pg_err("redact")) })
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
        self.read("targets", move |client| {
            Box::pin(async move {
                let fail = pg_err("targets");
                let (lo, hi) = (from.min(to).0, from.max(to).0);
                let mut found: Vec<(i64, String)> = Vec::new();
                for (key, latest) in sql::channel_latest(client, &scope.channels)
                    .await
                    .map_err(&fail)?
                {
                    found.push((latest, key));
                }
                let parties: Vec<String> = scope.parties.iter().map(|p| p.encoded()).collect();
                if !parties.is_empty() {
                    for (key, latest) in
                        sql::party_targets(client, &parties).await.map_err(&fail)?
                    {
                        found.push((latest, key));
                    }
                }
                found.retain(|(latest, _)| (lo..=hi).contains(latest));
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
        })
    }

    fn set_read_marker(
        &self,
        account: &str,
        target: &TargetKey,
        at: Timestamp,
    ) -> StoreFuture<'static, Timestamp> {
        let (account, target) = (account.to_owned(), target.as_str().to_owned());
        self.write("set_read_marker", move |client, _| {
            Box::pin(async move {
                sql::set_read_marker(client, &account, &target, at.0)
                    .await
                    .map(Timestamp)
                    .map_err(pg_err("set_read_marker"))
            })
        })
    }

    fn read_marker(&self, account: &str, target: &TargetKey) -> StoreFuture<'_, Option<Timestamp>> {
        let (account, target) = (account.to_owned(), target.as_str().to_owned());
        self.read("read_marker", move |client| {
            Box::pin(async move {
                Ok(sql::read_marker(client, &account, &target)
                    .await
                    .map_err(pg_err("read_marker"))?
                    .map(Timestamp))
            })
        })
    }

    fn all_read_markers(
        &self,
        limit: usize,
    ) -> StoreFuture<'_, Vec<(String, TargetKey, Timestamp)>> {
        self.read("all_read_markers", move |client| {
            Box::pin(async move {
                sql::all_read_markers(client, limit)
                    .await
                    .map_err(pg_err("all_read_markers"))
            })
        })
    }

    fn expire(&self, policy: Retention, now: Timestamp, batch: u32) -> StoreFuture<'_, Expired> {
        self.write("expire", move |client, cache| {
            Box::pin(async move {
                let fail = pg_err("expire");
                let mut out = Expired {
                    removed: 0,
                    complete: true,
                };
                if let Some(age) = policy.max_age_ms {
                    let (n, done) = sql::expire_age(client, now.0.saturating_sub(age), batch)
                        .await
                        .map_err(&fail)?;
                    out.removed += n;
                    out.complete &= done;
                }
                if let Some(keep) = policy.max_messages {
                    let budget = u64::from(batch).saturating_sub(out.removed);
                    if budget == 0 {
                        out.complete = false;
                    } else {
                        let (n, done) =
                            sql::expire_count(client, &mut cache.retention_cursor, keep, budget)
                                .await
                                .map_err(&fail)?;
                        out.removed += n;
                        out.complete &= done;
                    }
                }
                Ok(out)
            })
        })
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        let thread = self.begin_stop();
        let (done, stopped) = oneshot::channel();
        // Joining the thread blocks: that happens on a thread of its own, and the
        // future waits for it.
        let stopper = thread.map(|thread| {
            std::thread::Builder::new()
                .name("store-close".into())
                .spawn(move || {
                    let _ = thread.join();
                    let _ = done.send(());
                })
        });
        Box::pin(async move {
            match stopper {
                None => Ok(()),
                Some(Ok(_)) => stopped
                    .await
                    .map_err(|_| StoreError::Closed { operation: "close" }),
                Some(Err(source)) => Err(StoreError::backend("close", source)),
            }
        })
    }
}
