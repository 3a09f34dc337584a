//! The writer thread and its group commit.
//!
//! One thread owns the only write connection. Callers push work onto a bounded
//! queue under a short mutex (assigning the sequence number under the same lock, so
//! queue order is sequence order); the thread swaps the whole queue out in O(1),
//! runs it as **one** transaction, commits, and publishes "settled up to N". While
//! the thread is busy committing, new work just accumulates: the more load, the
//! bigger the batches, and the cost of a commit (one WAL append, and one fsync with
//! `synchronous=FULL`) is shared by everything in it.
//!
//! Why a mutex + condvar and not a channel: the sequence number must be assigned in
//! queue order (a watermark over out-of-order sequence numbers would lie), the
//! writer wants everything queued at once rather than one message per receive, and
//! a producer only signals the condvar when the writer is actually asleep, so under
//! load a submit is two uncontended atomic operations and a `Vec::push` into
//! capacity that earlier batches already grew: no syscall and no allocation.
//!
//! Why std's `Mutex` (not tokio's): the critical section is a push, never held
//! across an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::watch;

use super::sql;
use crate::error::{AppendError, AppendRejected, StoreError};
use crate::types::HistoryMessage;

/// Called after each commit with the new watermark.
pub type CommitHook = Arc<dyn Fn(u64) + Send + Sync>;

/// What a job tells its caller once the transaction it ran in has finished.
pub(crate) type Completion = Box<dyn FnOnce(Result<(), &str>) + Send>;

/// A write other than an append: runs inside the batch transaction (under a
/// savepoint of its own) and returns how to report its outcome after the commit.
pub(crate) type Job = Box<dyn FnOnce(&Transaction<'_>, &mut WriterCache) -> Completion + Send>;

/// One queued operation.
pub(crate) enum Op {
    /// A history message.
    Append(HistoryMessage),
    /// Anything else (accounts, channels, markers, redaction, expiry).
    Job(Job),
}

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

struct QueueState {
    ops: Vec<Op>,
    /// Appends waiting (jobs do not count against the bound: they are awaited, so
    /// each caller has at most a few in flight).
    appends: usize,
    next_seq: u64,
    closed: bool,
    writer_asleep: bool,
}

/// The queue between callers and the writer thread, and the watermark it publishes.
pub(crate) struct Queue {
    state: Mutex<QueueState>,
    wake: Condvar,
    capacity: usize,
    committed: AtomicU64,
    failures: AtomicU64,
    watch: watch::Sender<u64>,
    hook: Option<CommitHook>,
}

impl Queue {
    pub(crate) fn new(capacity: usize, hook: Option<CommitHook>) -> Self {
        Self {
            state: Mutex::new(QueueState {
                ops: Vec::new(),
                appends: 0,
                next_seq: 1,
                closed: false,
                writer_asleep: false,
            }),
            wake: Condvar::new(),
            capacity: capacity.max(1),
            committed: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            watch: watch::Sender::new(0),
            hook,
        }
    }

    /// Locks the state; a poisoned lock (a panic while pushing, which cannot
    /// happen short of out-of-memory) is taken over, as the state stays consistent.
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues an append; see [`crate::Store::append`].
    #[allow(clippy::result_large_err)] // Hands the message back; see the trait.
    pub(crate) fn append(&self, message: HistoryMessage) -> Result<u64, AppendRejected> {
        let mut state = self.lock();
        let reason = if state.closed {
            AppendError::Closed
        } else if state.appends >= self.capacity {
            AppendError::Full
        } else {
            state.appends += 1;
            return Ok(self.push(state, Op::Append(message)));
        };
        Err(AppendRejected { reason, message })
    }

    /// Queues a job; `None` if the store is closed.
    pub(crate) fn job(&self, job: Job) -> Option<u64> {
        let state = self.lock();
        if state.closed {
            return None;
        }
        Some(self.push(state, Op::Job(job)))
    }

    fn push(&self, mut state: MutexGuard<'_, QueueState>, op: Op) -> u64 {
        let seq = state.next_seq;
        state.next_seq += 1;
        state.ops.push(op);
        let wake = std::mem::replace(&mut state.writer_asleep, false);
        drop(state);
        if wake {
            self.wake.notify_one();
        }
        seq
    }

    /// The highest sequence number handed out so far.
    pub(crate) fn last_seq(&self) -> u64 {
        self.lock().next_seq - 1
    }

    /// Refuses new work; the writer finishes what is queued, then exits.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        drop(state);
        self.wake.notify_one();
    }

    pub(crate) fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.watch.subscribe()
    }

    /// Waits for the next batch: swaps the queued operations into `batch` (which is
    /// empty, and keeps its capacity from earlier batches) and returns the highest
    /// sequence number in it, or `None` once closed and drained.
    fn take(&self, batch: &mut Vec<Op>) -> Option<u64> {
        let mut state = self.lock();
        while state.ops.is_empty() {
            if state.closed {
                return None;
            }
            state.writer_asleep = true;
            state = self
                .wake
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        std::mem::swap(&mut state.ops, batch);
        state.appends = 0;
        Some(state.next_seq - 1)
    }

    /// Publishes the watermark after a batch: the atomic first (so a hook reading
    /// `committed()` sees it), then the hook, then the watch, so whoever awaits the
    /// watch (`flush`) knows the hook has run too.
    fn settle(&self, seq: u64) {
        self.committed.store(seq, Ordering::Release);
        if let Some(hook) = &self.hook {
            hook(seq);
        }
        self.watch.send_replace(seq);
    }
}

/// If the writer thread dies (a panic: a bug, or SQLite aborting), nothing may wait
/// for its watermark forever: the queue closes, and everything handed out counts as
/// settled and failed.
struct DeathWatch<'a>(&'a Queue);

impl Drop for DeathWatch<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.close();
            let last = self.0.last_seq();
            let lost = last.saturating_sub(self.0.committed());
            self.0.failures.fetch_add(lost, Ordering::Relaxed);
            self.0.settle(last);
        }
    }
}

/// The writer thread's body: batches until the queue is closed and drained.
pub(crate) fn run(mut conn: Connection, queue: Arc<Queue>) {
    let _death_watch = DeathWatch(&queue);
    let mut batch = Vec::new();
    let mut cache = WriterCache::default();
    let mut latest: HashMap<i64, i64> = HashMap::new();
    let mut completions: Vec<Completion> = Vec::new();
    while let Some(seq) = queue.take(&mut batch) {
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
        let lost = batch
            .iter()
            .filter(|op| matches!(op, Op::Append(_)))
            .count() as u64;
        batch.clear();
        if let Err(e) = &outcome {
            queue
                .failures
                .fetch_add(lost + e.lost_appends, Ordering::Relaxed);
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
    batch: &mut Vec<Op>,
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
                        Err(_) => {
                            queue.failures.fetch_add(1, Ordering::Relaxed);
                        }
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
