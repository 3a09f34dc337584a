//! The PostgreSQL writer task and its group commit.
//!
//! The same design as the SQLite writer (`crate::sqlite::writer`), on the same
//! write queue ([`crate::queue`]: callers push work under a short std mutex, the
//! sequence number is assigned under the same lock, so queue order is sequence
//! order), and one writer swaps the whole queue out, runs it as **one**
//! transaction, commits, and publishes "settled up to N". While a commit is in
//! flight (a network round trip, and the server's WAL flush) new work accumulates,
//! so the batch grows with the load.
//!
//! What differs from SQLite:
//! - The writer is a task on the store's own runtime, waiting with
//!   [`crate::queue::Queue::take`] on a [`tokio::sync::Notify`] instead of a
//!   condvar (a producer still only signals when the writer is asleep; `Notify`
//!   keeps a permit, so no wake-up is lost).
//! - A batch of appends only (the usual case) is a single statement in autocommit
//!   (its own transaction): the commit costs one round trip, with the insert
//!   prepared once per connection.
//! - The appends queued between two other writes go to the server as **one**
//!   `INSERT … SELECT FROM unnest(…) WITH ORDINALITY` statement (one round trip for
//!   the whole run of messages; identity values follow the queue order), with
//!   `ON CONFLICT (msgid) DO NOTHING`, so a duplicate msgid is skipped and counted
//!   as a failure rather than aborting the transaction (PostgreSQL aborts the whole
//!   transaction on any statement error, unlike SQLite).
//! - Target keys new to this writer are registered (with the parties of a private
//!   conversation) in short autocommit statements *before* the batch transaction
//!   begins, so the batch itself takes no row locks that another node's batch could
//!   wait for: several nodes commit history side by side without deadlocks.
//! - Other writes (accounts, channels, markers, redaction, expiry) run inside the
//!   batch under a savepoint each, exactly as with SQLite; a job that fails (a
//!   constraint, a deadlock with another node's job) is rolled back to its savepoint
//!   alone and the batch goes on.
//! - A lost connection is re-established before the next batch (the batch that
//!   found it lost counts as failed, like any refused write).

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_postgres::{Client, Statement};

use super::sql;
use crate::error::StoreError;
use crate::queue::{Completion, DeathWatch, Op};
use crate::types::HistoryMessage;

/// A boxed future borrowing the writer's connection.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A write other than an append: runs inside the batch transaction (under a
/// savepoint of its own) and returns how to report its outcome after the commit.
pub(crate) type Job =
    Box<dyn for<'a> FnOnce(&'a Client, &'a mut WriterCache) -> BoxFuture<'a, Completion> + Send>;

/// The write queue of a PostgreSQL store.
pub(crate) type Queue = crate::queue::Queue<Job>;

/// State the writer keeps between batches.
#[derive(Default)]
pub(crate) struct WriterCache {
    /// Target keys known to be registered (row in `target`, and in `target_party`
    /// for a private conversation), so an append registers nothing. Only a cache:
    /// registration is idempotent.
    pub(crate) targets: HashSet<String>,
    /// Where the per-target retention pass resumes (a target key; targets are
    /// visited in byte order).
    pub(crate) retention_cursor: String,
}

/// Most targets remembered by [`WriterCache::targets`]; past it the set starts over.
const TARGET_CACHE_MAX: usize = 100_000;

/// Makes (and re-makes, after a lost connection) the writer's connection.
pub(crate) type Connect = Box<dyn Fn() -> BoxFuture<'static, Result<Client, StoreError>> + Send>;

/// The writer's connection and its prepared insert (prepared on first use, again
/// after a reconnection).
struct Writer {
    client: Client,
    insert: Option<Statement>,
}

impl Writer {
    async fn insert(&mut self) -> Result<Statement, StoreError> {
        if let Some(insert) = &self.insert {
            return Ok(insert.clone());
        }
        let insert = self
            .client
            .prepare(sql::INSERT_MESSAGES)
            .await
            .map_err(|e| StoreError::backend("prepare the history insert", e))?;
        self.insert = Some(insert.clone());
        Ok(insert)
    }
}

/// The writer task's body: batches until the queue is closed and drained.
pub(crate) async fn run(client: Client, connect: Connect, queue: Arc<Queue>) {
    let _death_watch = DeathWatch(&queue);
    let mut writer = Writer {
        client,
        insert: None,
    };
    let mut batch = Vec::new();
    let mut cache = WriterCache::default();
    let mut completions: Vec<Completion> = Vec::new();
    while let Some(seq) = queue.take(&mut batch).await {
        let appends = batch.iter().filter(|op| op.is_append()).count() as u64;
        if writer.client.is_closed() {
            match connect().await {
                Ok(fresh) => {
                    tracing::info!("store: reconnected the PostgreSQL writer");
                    writer = Writer {
                        client: fresh,
                        insert: None,
                    };
                }
                Err(error) => {
                    tracing::error!(%error, "store: cannot reconnect the PostgreSQL writer");
                }
            }
        }
        let outcome = commit_batch(&mut writer, &mut batch, &mut cache, &mut completions).await;
        let client = &writer.client;
        let error = match outcome {
            Ok(skipped) => {
                queue.add_failures(skipped);
                None
            }
            Err(error) => {
                tracing::error!(%error, appends, "store: a history batch was not committed");
                cache.targets.clear();
                // Everything in the batch is lost (the transaction rolled back),
                // whether or not it had been sent yet. Jobs not yet run are dropped
                // with the batch: their callers see the failure.
                queue.add_failures(appends);
                if !client.is_closed() {
                    let _ = client.batch_execute("ROLLBACK").await;
                }
                Some(error.to_string())
            }
        };
        batch.clear();
        for done in completions.drain(..) {
            done(error.as_deref().map_or(Ok(()), Err));
        }
        queue.settle(seq);
    }
}

/// Commits one batch; returns how many appends were skipped (a duplicate msgid, a
/// NUL character PostgreSQL text cannot hold).
///
/// A batch of appends only (the usual case) is one `INSERT` in autocommit: a single
/// statement is its own transaction, so the commit costs one round trip. A batch
/// with other writes is wrapped in `BEGIN` … `COMMIT`.
async fn commit_batch(
    writer: &mut Writer,
    batch: &mut Vec<Op<Job>>,
    cache: &mut WriterCache,
    completions: &mut Vec<Completion>,
) -> Result<u64, StoreError> {
    if cache.targets.len() > TARGET_CACHE_MAX {
        cache.targets.clear();
    }
    // Registration first, outside the transaction (see the module docs).
    for op in batch.iter() {
        if let Op::Append(message) = op
            && !cache.targets.contains(message.target.as_str())
        {
            sql::register_target(&writer.client, &message.target).await?;
            cache.targets.insert(message.target.as_str().to_owned());
        }
    }
    let insert = writer.insert().await?;
    let client = &writer.client;
    let mut skipped = 0u64;
    let mut pending: Vec<HistoryMessage> = Vec::new();
    if batch.iter().all(|op| matches!(op, Op::Append(_))) {
        for op in batch.drain(..) {
            if let Op::Append(message) = op {
                if sql::storable(&message) {
                    pending.push(message);
                } else {
                    skipped += 1;
                }
            }
        }
        return Ok(skipped + insert_pending(client, &insert, &mut pending).await?);
    }
    client
        .batch_execute("BEGIN")
        .await
        .map_err(|e| StoreError::backend("begin history batch", e))?;
    for op in batch.drain(..) {
        match op {
            Op::Append(message) => {
                if sql::storable(&message) {
                    pending.push(message);
                } else {
                    skipped += 1;
                }
            }
            Op::Job(job) => {
                skipped += insert_pending(client, &insert, &mut pending).await?;
                completions.push(job(client, cache).await);
            }
        }
    }
    skipped += insert_pending(client, &insert, &mut pending).await?;
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| StoreError::backend("commit history batch", e))?;
    Ok(skipped)
}

/// Inserts the appends gathered so far in one statement; returns how many were
/// skipped as duplicates.
async fn insert_pending(
    client: &Client,
    insert: &Statement,
    pending: &mut Vec<HistoryMessage>,
) -> Result<u64, StoreError> {
    if pending.is_empty() {
        return Ok(0);
    }
    let inserted = sql::insert_messages(client, insert, pending)
        .await
        .map_err(|e| StoreError::backend("insert history", e))?;
    let skipped = (pending.len() as u64).saturating_sub(inserted);
    pending.clear();
    Ok(skipped)
}

/// Runs `f` under a savepoint, so a job that fails halfway leaves nothing behind
/// and the batch transaction goes on.
pub(crate) async fn in_savepoint<T>(
    client: &Client,
    f: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    client
        .batch_execute("SAVEPOINT job")
        .await
        .map_err(|e| StoreError::backend("savepoint", e))?;
    let result = f.await;
    let end = if result.is_ok() {
        "RELEASE SAVEPOINT job"
    } else {
        "ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job"
    };
    client
        .batch_execute(end)
        .await
        .map_err(|e| StoreError::backend("savepoint", e))?;
    result
}
