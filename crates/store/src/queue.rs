//! The write queue both backends share: callers on one side, the one writer on the
//! other, and the committed watermark it publishes.
//!
//! Callers push work onto a bounded queue under a short mutex (assigning the
//! sequence number under the same lock, so queue order is sequence order); the
//! writer swaps the whole queue out in O(1), runs it as **one** transaction,
//! commits, and publishes "settled up to N" ([`Queue::settle`]). While the writer is
//! busy committing, new work just accumulates: the more load, the bigger the
//! batches, and the cost of a commit is shared by everything in it. What a batch
//! *is* (SQL, caches, reconnection) belongs to each backend's `writer.rs`; this
//! module only knows operations, sequence numbers and the watermark.
//!
//! Why a mutex and not a channel: the sequence number must be assigned in queue
//! order (a watermark over out-of-order sequence numbers would lie), the writer
//! wants everything queued at once rather than one message per receive, and a
//! producer only signals the writer when it is actually asleep, so under load a
//! submit is two uncontended atomic operations and a `Vec::push` into capacity that
//! earlier batches already grew: no syscall and no allocation.
//!
//! Why std's `Mutex` (not tokio's): every critical section is a push or a swap,
//! never held across an `.await`.
//!
//! Why one type with two ways to wait: SQLite's writer is a blocking thread (it
//! sleeps on a [`Condvar`], [`Queue::take_blocking`]) and PostgreSQL's is an async
//! task (it awaits a [`Notify`], [`Queue::take`]). The queue carries both and a
//! producer that finds the writer asleep signals both: a condvar nobody waits on
//! ignores the signal, and a `Notify` nobody awaits keeps one permit that is never
//! used, so the spare signal costs a few atomic operations, and only on the rare
//! push that wakes the writer. A trait over the wake-up would save those and cost a
//! second type parameter and an abstraction over "wait while holding the lock"
//! (which a condvar needs and a `Notify` must not do); not worth it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, watch};

use crate::error::{AppendError, AppendRejected};
use crate::types::HistoryMessage;

/// Called after each commit with the new watermark.
pub type CommitHook = Arc<dyn Fn(u64) + Send + Sync>;

/// What a job tells its caller once the transaction it ran in has finished
/// (`Err` carries why the transaction failed), so no caller hears "done" before the
/// commit.
pub(crate) type Completion = Box<dyn FnOnce(Result<(), &str>) + Send>;

/// One queued operation; `J` is the backend's job type (a boxed closure over its
/// connection).
// Clippy measures `J` as if it could be empty; it is always a box, and boxing the
// message instead would cost an allocation per append, the one hot operation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Op<J> {
    /// A history message.
    Append(HistoryMessage),
    /// Anything else (accounts, channels, markers, redaction, expiry).
    Job(J),
}

impl<J> Op<J> {
    /// Whether this is an append (what the capacity bound and the failure count are
    /// about).
    pub(crate) fn is_append(&self) -> bool {
        matches!(self, Self::Append(_))
    }
}

struct QueueState<J> {
    ops: Vec<Op<J>>,
    /// Appends waiting (jobs do not count against the bound: they are awaited, so
    /// each caller has at most a few in flight).
    appends: usize,
    next_seq: u64,
    closed: bool,
    writer_asleep: bool,
}

/// The queue between callers and the writer, and the watermark it publishes.
pub(crate) struct Queue<J> {
    state: Mutex<QueueState<J>>,
    /// Wakes a writer thread sleeping in [`Queue::take_blocking`].
    wake_thread: Condvar,
    /// Wakes a writer task awaiting in [`Queue::take`] (it keeps a permit, so no
    /// wake-up is lost between unlocking and awaiting).
    wake_task: Notify,
    capacity: usize,
    committed: AtomicU64,
    failures: AtomicU64,
    watch: watch::Sender<u64>,
    hook: Option<CommitHook>,
}

impl<J> Queue<J> {
    /// An empty, open queue holding at most `capacity` appends (at least one).
    pub(crate) fn new(capacity: usize, hook: Option<CommitHook>) -> Self {
        Self {
            state: Mutex::new(QueueState {
                ops: Vec::new(),
                appends: 0,
                next_seq: 1,
                closed: false,
                writer_asleep: false,
            }),
            wake_thread: Condvar::new(),
            wake_task: Notify::new(),
            capacity: capacity.max(1),
            committed: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            watch: watch::Sender::new(0),
            hook,
        }
    }

    /// Locks the state; a poisoned lock (a panic while pushing, which cannot
    /// happen short of out-of-memory) is taken over, as the state stays consistent:
    /// every critical section is a push or a swap.
    fn lock(&self) -> MutexGuard<'_, QueueState<J>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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
    pub(crate) fn job(&self, job: J) -> Option<u64> {
        let state = self.lock();
        if state.closed {
            return None;
        }
        Some(self.push(state, Op::Job(job)))
    }

    /// Assigns the next sequence number and queues `op` under it; signals the
    /// writer only if it is asleep.
    fn push(&self, mut state: MutexGuard<'_, QueueState<J>>, op: Op<J>) -> u64 {
        let seq = state.next_seq;
        state.next_seq += 1;
        state.ops.push(op);
        let wake = std::mem::replace(&mut state.writer_asleep, false);
        drop(state);
        if wake {
            self.wake();
        }
        seq
    }

    /// Wakes the writer, whichever way it waits (see the module docs).
    fn wake(&self) {
        self.wake_thread.notify_one();
        self.wake_task.notify_one();
    }

    /// The highest sequence number handed out so far.
    pub(crate) fn last_seq(&self) -> u64 {
        self.lock().next_seq - 1
    }

    /// Whether [`Queue::close`] was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Refuses new work; the writer finishes what is queued, then exits.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        drop(state);
        self.wake();
    }

    /// The committed watermark: every sequence number up to it is settled.
    pub(crate) fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// How many operations were settled without being stored.
    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Counts `n` more operations settled without being stored.
    pub(crate) fn add_failures(&self, n: u64) {
        if n > 0 {
            self.failures.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// A receiver of the watermark, for waiting on it.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.watch.subscribe()
    }

    /// Swaps the queued operations into `batch` and returns the highest sequence
    /// number in it (the last one handed out: the queue is now empty).
    fn swap_out(state: &mut QueueState<J>, batch: &mut Vec<Op<J>>) -> u64 {
        std::mem::swap(&mut state.ops, batch);
        state.appends = 0;
        state.next_seq - 1
    }

    /// For a writer thread: blocks for the next batch, swaps the queued operations
    /// into `batch` (which is empty, and keeps its capacity from earlier batches)
    /// and returns the highest sequence number in it, or `None` once closed and
    /// drained.
    pub(crate) fn take_blocking(&self, batch: &mut Vec<Op<J>>) -> Option<u64> {
        let mut state = self.lock();
        while state.ops.is_empty() {
            if state.closed {
                return None;
            }
            state.writer_asleep = true;
            state = self
                .wake_thread
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        Some(Self::swap_out(&mut state, batch))
    }

    /// For a writer task: [`Queue::take_blocking`], awaiting instead of blocking.
    pub(crate) async fn take(&self, batch: &mut Vec<Op<J>>) -> Option<u64> {
        loop {
            {
                let mut state = self.lock();
                if !state.ops.is_empty() {
                    return Some(Self::swap_out(&mut state, batch));
                }
                if state.closed {
                    return None;
                }
                state.writer_asleep = true;
            }
            self.wake_task.notified().await;
        }
    }

    /// Publishes the watermark after a batch: the atomic first (so a hook reading
    /// `committed()` sees it), then the hook, then the watch, so whoever awaits the
    /// watch (`flush`) knows the hook has run too.
    pub(crate) fn settle(&self, seq: u64) {
        self.committed.store(seq, Ordering::Release);
        if let Some(hook) = &self.hook {
            hook(seq);
        }
        self.watch.send_replace(seq);
    }
}

/// Held by the writer for as long as it runs: if the writer dies (a panic: a bug,
/// or the database library aborting), nothing may wait for its watermark forever:
/// the queue closes, and everything handed out counts as settled and failed.
pub(crate) struct DeathWatch<'a, J>(pub(crate) &'a Queue<J>);

impl<J> Drop for DeathWatch<'_, J> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.close();
            let last = self.0.last_seq();
            let lost = last.saturating_sub(self.0.committed());
            self.0.add_failures(lost);
            self.0.settle(last);
        }
    }
}
