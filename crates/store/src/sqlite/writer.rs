//! The writer thread and its group commit.
//!
//! One thread owns the only write connection. It waits on the shared write queue
//! ([`crate::queue`], with [`crate::queue::Queue::take_blocking`]: a condvar, as
//! this is a plain thread), runs each batch it takes as **one** transaction,
//! commits, and publishes "settled up to N". The cost of a commit (one WAL append,
//! and one fsync with `synchronous=FULL`) is shared by everything in the batch.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::sql;
use crate::error::StoreError;
use crate::queue::{Completion, DeathWatch, Op};

/// A write other than an append: runs inside the batch transaction (under a
/// savepoint of its own) and returns how to report its outcome after the commit.
pub(crate) type Job = Box<dyn FnOnce(&Transaction<'_>, &mut WriterCache) -> Completion + Send>;

/// The write queue of a SQLite store.
pub(crate) type Queue = crate::queue::Queue<Job>;

/// State the writer keeps between batches.
#[derive(Default)]
pub(crate) struct WriterCache {
    /// Target key → row id, so an append does not look its target up. Cleared when a
    /// transaction fails (ids created in it were rolled back).
    pub(crate) targets: HashMap<String, i64>,
    /// `mask\0account` → sender row id (same rules as `targets`).
    pub(crate) senders: HashMap<String, i64>,
    /// Scratch buffer for building `senders` keys without allocating.
    pub(crate) key: String,
    /// Where the per-target retention pass resumes (a target id).
    pub(crate) retention_cursor: i64,
}

/// Most targets remembered by [`WriterCache::targets`]; past it the map starts over
/// (a lookup is one indexed read, so this is only a cache).
const TARGET_CACHE_MAX: usize = 100_000;

/// The writer thread's body: batches until the queue is closed and drained.
pub(crate) fn run(mut conn: Connection, queue: Arc<Queue>) {
    let _death_watch = DeathWatch(&queue);
    let mut batch = Vec::new();
    let mut cache = WriterCache::default();
    let mut latest: HashMap<i64, i64> = HashMap::new();
    let mut completions: Vec<Completion> = Vec::new();
    while let Some(seq) = queue.take_blocking(&mut batch) {
        let outcome = commit_batch(
            &mut conn,
            &mut batch,
            &mut cache,
            &mut latest,
            &mut completions,
            &queue,
        );
        let error = outcome.as_ref().err().map(ToString::to_string);
        if outcome.is_err() {
            cache.targets.clear();
            cache.senders.clear();
        }
        // Ops still in `batch` never ran (the transaction did not begin): appends
        // count as failures; a dropped job drops its reply channel, and its caller
        // sees `Closed`.
        let lost = batch.iter().filter(|op| op.is_append()).count() as u64;
        batch.clear();
        if let Err(e) = &outcome {
            queue.add_failures(lost + e.lost_appends);
        }
        for done in completions.drain(..) {
            done(error.as_deref().map_or(Ok(()), Err));
        }
        queue.settle(seq);
    }
}

/// A failed batch: what went wrong and how many appends it took down with it.
#[derive(Debug)]
struct BatchError {
    error: rusqlite::Error,
    lost_appends: u64,
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the history transaction failed: {}", self.error)
    }
}

fn commit_batch(
    conn: &mut Connection,
    batch: &mut Vec<Op<Job>>,
    cache: &mut WriterCache,
    latest: &mut HashMap<i64, i64>,
    completions: &mut Vec<Completion>,
    queue: &Queue,
) -> Result<(), BatchError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|error| BatchError {
            error,
            lost_appends: 0,
        })?;
    let mut appended = 0u64;
    latest.clear();
    {
        let mut insert = tx
            .prepare_cached(sql::INSERT_MESSAGE)
            .map_err(|error| BatchError {
                error,
                lost_appends: 0,
            })?;
        for op in batch.drain(..) {
            match op {
                Op::Append(message) => {
                    // A failing statement (e.g. a duplicate msgid) is undone alone;
                    // the rest of the batch still commits (SQLite's statement-level
                    // atomicity).
                    match sql::insert_message(&tx, &mut insert, cache, &message) {
                        Ok(target) => {
                            appended += 1;
                            let at = latest.entry(target).or_insert(i64::MIN);
                            *at = (*at).max(message.time.0);
                        }
                        Err(_) => queue.add_failures(1),
                    }
                }
                Op::Job(job) => completions.push(job(&tx, cache)),
            }
        }
    }
    let fail = |error| BatchError {
        error,
        lost_appends: appended,
    };
    for (&target, &at) in latest.iter() {
        sql::bump_latest(&tx, target, at).map_err(fail)?;
    }
    if cache.targets.len() > TARGET_CACHE_MAX {
        cache.targets.clear();
    }
    if cache.senders.len() > TARGET_CACHE_MAX {
        cache.senders.clear();
    }
    tx.commit().map_err(fail)
}

/// Runs `f` under a savepoint, so a job that fails halfway leaves nothing behind.
pub(crate) fn in_savepoint<T>(
    tx: &Transaction<'_>,
    f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    tx.execute_batch("SAVEPOINT job")
        .map_err(|e| StoreError::backend("savepoint", e))?;
    let result = f(tx);
    let end = if result.is_ok() {
        "RELEASE job"
    } else {
        "ROLLBACK TO job; RELEASE job"
    };
    tx.execute_batch(end)
        .map_err(|e| StoreError::backend("savepoint", e))?;
    result
}
