//! A client's outbound queue: shared lines waiting for the socket, under a byte budget.
//!
//! Handlers push [`Bytes`] (often the very same bytes for every member of a channel)
//! while holding the world lock. The first line pushed into an empty queue wakes the
//! connection (its `Waker` puts it on its driver's ready list); the driver takes the
//! whole queue at the end of its pass and writes it with one write, so a busy
//! client costs one syscall per pass rather than one per line. The lock here is a std
//! mutex held only to move a few pointers, never across a socket write.
//!
//! The queue counts bytes from the moment they are pushed until the socket has taken
//! them. When a push would pass the budget (the sendq), the outbox closes itself, drops
//! what it holds and wakes the connection, which disconnects the client with
//! "SendQ exceeded": a client that stops reading can never make the server hold more
//! than its budget, and nobody else waits for it.
//!
//! **Held lines.** A message that history stores must be committed before anyone is
//! sent it (the durability promise, see `palaver_store`). Its lines are queued with
//! [`Outbox::push_held`] and the store's sequence number; [`Outbox::take`] hands over
//! only the lines before the first one whose sequence number the store has not
//! committed yet, so everything queued after a held line waits with it and the
//! order never changes. The connection reports [`Taken::Held`] to its driver, which
//! polls it again after the next commit. Two barriers ([`Holds`]) are enough:
//! group commit advances the watermark past everything appended before a commit
//! began, so a line waits for at most one commit more than it must, and the outbox
//! stays within its 128-byte allocation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::Wake;

use bytes::Bytes;

use crate::caps::CapSet;
use crate::wakeup::Wakeup;

/// The reason a client whose sendq overflowed is given (and how `/metrics` tells
/// that ending from the others).
pub(crate) const SENDQ_EXCEEDED: &str = "SendQ exceeded";

/// Why an outbox stopped accepting lines, or was asked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Closed {
    /// Orderly close: the writer flushes what is queued, then ends.
    Flush,
    /// Forced close (sendq overrun, killed): queued lines are dropped.
    Abort(String),
    /// Still open, but someone else asked this connection to end (KILL) with this
    /// reason; unlike an abort, the queue stays and is flushed, ending with the
    /// `ERROR` line.
    Disconnect(String),
}

impl State {
    /// No more lines are accepted (a disconnect request still accepts them).
    fn refuses_lines(&self) -> bool {
        matches!(
            self.closed.as_deref(),
            Some(Closed::Flush | Closed::Abort(_))
        )
    }
}

#[derive(Debug, Default)]
/// The rarely used parts (capture, closing, disconnect request) are boxed: every
/// connection has an outbox, and it stays within a 128-byte allocation this way.
struct State {
    queue: Vec<Bytes>,
    /// While a labeled command runs, its replies are collected here instead
    /// (labeled-response), to be labeled or batched before they are queued.
    #[allow(
        clippy::box_collection,
        reason = "8 bytes in every outbox instead of 24 for a vector that is rarely used"
    )]
    capture: Option<Box<Vec<Bytes>>>,
    /// Closed, or asked to disconnect (see [`Closed`]).
    closed: Option<Box<Closed>>,
    /// Lines that wait for the store to commit a message (see the module doc).
    holds: Holds,
    /// Bytes pushed and not yet written to the socket (queued plus in flight).
    pending_bytes: u32,
    /// Bytes written to the socket so far, for `STATS l` (stops counting at 4 GiB;
    /// it fits in what was padding, so no connection grows for it).
    sent_bytes: u32,
}

/// Where the queue waits for commits: lines at index `>= first_at` wait until the
/// store has committed sequence number `first_seq`, and lines at `>= second_at`
/// until `second_seq` (`>= first_seq`). A sequence number of 0 means no barrier.
/// A third held line joins the second barrier (raising its number), which only
/// delays lines that were already behind a held one. (Four plain fields rather
/// than two tuples: 24 bytes instead of 32.)
#[derive(Debug, Default, Clone, Copy)]
struct Holds {
    first_at: u32,
    second_at: u32,
    first_seq: u64,
    second_seq: u64,
}

impl Holds {
    /// A line at `index` (or, for a captured reply, everything pushed from `index`
    /// on) waits for `seq`.
    fn add(&mut self, index: usize, seq: u64) {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        if self.first_seq == 0 {
            self.first_at = index;
            self.first_seq = seq;
        } else if self.second_seq == 0 {
            self.second_at = index;
            self.second_seq = seq.max(self.first_seq);
        } else {
            self.second_seq = self.second_seq.max(seq);
        }
    }

    /// How many lines from the front may go with `committed` settled, given `len`
    /// queued; the barriers are moved to match the shorter queue.
    fn release(&mut self, len: usize, committed: u64) -> usize {
        let count = if self.first_seq == 0 || committed >= self.first_seq.max(self.second_seq) {
            *self = Holds::default();
            len
        } else if committed < self.first_seq {
            self.first_at as usize
        } else {
            // The first barrier is settled, the second is not: it becomes the first.
            let count = self.second_at as usize;
            *self = Holds {
                first_at: self.second_at,
                first_seq: self.second_seq,
                ..Holds::default()
            };
            count
        };
        let count = count.min(len);
        let shift = u32::try_from(count).unwrap_or(u32::MAX);
        self.first_at = self.first_at.saturating_sub(shift);
        self.second_at = self.second_at.saturating_sub(shift);
        count
    }

    fn is_empty(&self) -> bool {
        self.first_seq == 0
    }
}

/// The outbox is its connection's waker: the socket's readiness, like a new line,
/// puts the connection on its driver's ready list.
impl Wake for Outbox {
    fn wake(self: Arc<Self>) {
        self.wakeup.wake();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakeup.wake();
    }
}

/// What [`Outbox::take`] found besides the lines.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// Still open: more lines may come.
    Open,
    /// Still open (or closing), and lines are queued that wait for the store to
    /// commit: take again after the next commit.
    Held,
    /// Closed in order: these were the last lines.
    Closed,
    /// Still open, but another client asked this connection to end (KILL) with
    /// this reason: the connection should close, flushing what is queued.
    Disconnect(String),
    /// Aborted with this reason: nothing more is written.
    Aborted(String),
}

/// The outbound side of one connection.
#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    budget: u32,
    /// Puts the connection on its driver's ready list: lines arrived, the outbox
    /// closed, or someone asked the connection to end.
    wakeup: Wakeup,
    /// The capabilities the client negotiated, mirrored from `Client::caps` so a
    /// broadcast can pick each member's line format without looking the client up.
    caps: AtomicU32,
}

impl Outbox {
    pub(crate) fn new(budget: usize, wakeup: Wakeup) -> Self {
        Self {
            state: Mutex::new(State::default()),
            budget: u32::try_from(budget).unwrap_or(u32::MAX),
            wakeup,
            caps: AtomicU32::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves only a queue of bytes behind, which
        // is still consistent: keep going rather than poisoning every sender.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The most bytes it holds before the client is dropped (the sendq).
    pub(crate) fn budget(&self) -> usize {
        self.budget as usize
    }

    /// Puts the connection that owns this outbox on its driver's ready list.
    pub(crate) fn wake_connection(&self) {
        self.wakeup.wake();
    }

    /// The connection's place on its driver's ready list.
    pub(crate) fn wakeup(&self) -> &Wakeup {
        &self.wakeup
    }

    /// The client's negotiated capabilities (see [`CapSet`]).
    pub(crate) fn caps(&self) -> CapSet {
        CapSet::from_bits(self.caps.load(Ordering::Relaxed))
    }

    /// Records the client's capabilities after a CAP change.
    pub(crate) fn set_caps(&self, caps: CapSet) {
        self.caps.store(caps.bits(), Ordering::Relaxed);
    }

    /// Starts collecting pushed lines instead of queueing them.
    pub(crate) fn begin_capture(&self) {
        self.lock().capture = Some(Box::default());
    }

    /// Stops collecting and returns what was pushed since [`Outbox::begin_capture`].
    ///
    /// A held line among them (see [`Outbox::push_held`]) left a barrier at the
    /// end of the queue, so the replies, labeled and queued afterwards, wait for
    /// its commit.
    pub(crate) fn end_capture(&self) -> Vec<Bytes> {
        self.lock()
            .capture
            .take()
            .map(|lines| *lines)
            .unwrap_or_default()
    }

    /// Queues a line. Past the budget, the outbox aborts with "SendQ exceeded".
    pub(crate) fn push(&self, line: Bytes) {
        self.push_inner(line, true);
    }

    /// Queues a line carrying a message history stores: it (and everything queued
    /// after it) waits until the store has committed `seq`. Captured as a reply
    /// (labeled-response), the hold moves to the labeled lines when they are queued.
    pub(crate) fn push_held(&self, line: Bytes, seq: u64) {
        self.push_inner_held(line, true, seq);
    }

    /// [`Outbox::push_held`] for a line that is not a reply to the command being
    /// run, even while replies are being captured: a message a client sends to
    /// itself arrives as a delivery, and only its `echo-message` copy is the
    /// (labeled) reply. With `seq` 0 nothing is held.
    pub(crate) fn push_delivery_held(&self, line: Bytes, seq: u64) {
        self.push_inner_held(line, false, seq);
    }

    fn push_inner(&self, line: Bytes, capturable: bool) {
        self.push_inner_held(line, capturable, 0);
    }

    fn push_inner_held(&self, line: Bytes, capturable: bool, seq: u64) {
        let mut state = self.lock();
        if state.refuses_lines() {
            return;
        }
        if let Some(capture) = state.capture.as_mut().filter(|_| capturable) {
            capture.push(line);
            if seq != 0 {
                // The labeled reply is queued after the capture: whatever is
                // pushed from here on waits for this message's commit.
                let at = state.queue.len();
                state.holds.add(at, seq);
            }
            return;
        }
        let len = u32::try_from(line.len()).unwrap_or(u32::MAX);
        if state.pending_bytes.saturating_add(len) > self.budget {
            state.queue = Vec::new();
            state.holds = Holds::default();
            state.closed = Some(Box::new(Closed::Abort(SENDQ_EXCEEDED.to_owned())));
            drop(state);
            self.wakeup.wake();
            return;
        }
        state.pending_bytes += len;
        let was_empty = state.queue.is_empty();
        if seq != 0 {
            let at = state.queue.len();
            state.holds.add(at, seq);
        }
        state.queue.push(line);
        drop(state);
        if was_empty {
            self.wakeup.wake();
        }
    }

    /// Queues a last line and closes the outbox; the writer flushes, then ends.
    pub(crate) fn close_with(&self, last: Option<Bytes>) {
        let mut state = self.lock();
        if state.refuses_lines() {
            return;
        }
        if let Some(line) = last {
            state.pending_bytes = state
                .pending_bytes
                .saturating_add(u32::try_from(line.len()).unwrap_or(u32::MAX));
            state.queue.push(line);
        }
        state.closed = Some(Box::new(Closed::Flush));
        drop(state);
        self.wakeup.wake();
    }

    /// Closes the outbox at once, dropping what is queued (sendq overrun, KILL).
    pub(crate) fn abort(&self, reason: &str) {
        let mut state = self.lock();
        if matches!(state.closed.as_deref(), Some(Closed::Abort(_))) {
            return;
        }
        state.queue = Vec::new();
        state.holds = Holds::default();
        state.closed = Some(Box::new(Closed::Abort(reason.to_owned())));
        drop(state);
        self.wakeup.wake();
    }

    /// The abort reason, if the outbox was aborted.
    #[cfg(test)]
    pub(crate) fn abort_reason(&self) -> Option<String> {
        match self.lock().closed.as_deref() {
            Some(Closed::Abort(reason)) => Some(reason.clone()),
            _ => None,
        }
    }

    /// Moves the queued lines that may go to the end of `out` (the connection's write
    /// buffer): all of them, except those that wait for the store to commit past
    /// `committed` (see [`Outbox::push_held`]).
    pub(crate) fn take(&self, out: &mut Vec<Bytes>, committed: u64) -> Taken {
        Self::take_from(&mut self.lock(), out, committed)
    }

    /// Moves every queued line to `out`, held or not, for a forwarder that keeps
    /// the hold itself (the cluster link, `world::forward`); also returns the
    /// highest commit any of them waits for (0: none).
    pub(crate) fn take_all(&self, out: &mut Vec<Bytes>) -> (Taken, u64) {
        let mut state = self.lock();
        let hold = state.holds.first_seq.max(state.holds.second_seq);
        (Self::take_from(&mut state, out, u64::MAX), hold)
    }

    fn take_from(state: &mut State, out: &mut Vec<Bytes>, committed: u64) -> Taken {
        if let Some(Closed::Abort(reason)) = state.closed.as_deref() {
            return Taken::Aborted(reason.clone());
        }
        let len = state.queue.len();
        let count = state.holds.release(len, committed);
        if count == len {
            if out.is_empty() {
                // Hand over the allocation instead of copying into it.
                std::mem::swap(out, &mut state.queue);
            } else {
                out.append(&mut state.queue);
            }
        } else {
            out.extend(state.queue.drain(..count));
        }
        let held = !state.holds.is_empty();
        match state.closed.as_deref() {
            Some(Closed::Disconnect(reason)) => Taken::Disconnect(reason.clone()),
            _ if held => Taken::Held,
            Some(Closed::Flush) => Taken::Closed,
            _ => Taken::Open,
        }
    }

    /// Asks the connection to end with `reason` (KILL): it wakes, sees the request
    /// in [`Outbox::take`] and ends the usual way (peers see `QUIT :reason`, the
    /// client gets `ERROR :reason` after everything already queued). The first
    /// request wins.
    pub(crate) fn request_disconnect(&self, reason: &str) {
        let mut state = self.lock();
        if state.closed.is_some() {
            return;
        }
        state.closed = Some(Box::new(Closed::Disconnect(reason.to_owned())));
        drop(state);
        self.wakeup.wake();
    }

    /// Records that `bytes` left for the socket, freeing budget; returns the bytes
    /// still pending.
    pub(crate) fn written(&self, bytes: usize) -> usize {
        let mut state = self.lock();
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        state.pending_bytes = state.pending_bytes.saturating_sub(bytes);
        state.sent_bytes = state.sent_bytes.saturating_add(bytes);
        state.pending_bytes as usize
    }

    /// Bytes written to the socket so far (at most 4 GiB are counted).
    pub(crate) fn sent_bytes(&self) -> u64 {
        u64::from(self.lock().sent_bytes)
    }

    /// Bytes pushed and not yet written.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.lock().pending_bytes as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(budget: usize) -> Outbox {
        Outbox::new(budget, Wakeup::new(0, Arc::default()))
    }

    #[test]
    fn batches_lines_and_aborts_past_the_budget() {
        let outbox = outbox(10);
        outbox.push(Bytes::from_static(b"12345"));
        outbox.push(Bytes::from_static(b"678"));
        let mut batch = Vec::new();
        assert_eq!(outbox.take(&mut batch, 0), Taken::Open);
        assert_eq!(batch.len(), 2);
        assert_eq!(outbox.pending_bytes(), 8);
        outbox.written(8);
        outbox.push(Bytes::from_static(b"123456"));
        outbox.push(Bytes::from_static(b"12345"));
        assert_eq!(outbox.abort_reason().as_deref(), Some("SendQ exceeded"));
        assert_eq!(
            outbox.take(&mut Vec::new(), 0),
            Taken::Aborted("SendQ exceeded".to_owned())
        );
    }

    #[test]
    fn a_disconnect_request_is_seen_with_the_queued_lines() {
        let outbox = outbox(100);
        outbox.push(Bytes::from_static(b"a"));
        outbox.request_disconnect("Killed");
        let mut batch = Vec::new();
        assert_eq!(
            outbox.take(&mut batch, 0),
            Taken::Disconnect("Killed".to_owned())
        );
        assert_eq!(batch, vec![Bytes::from_static(b"a")]);
    }

    #[test]
    fn close_flushes_the_last_line() {
        let outbox = outbox(100);
        outbox.push(Bytes::from_static(b"a"));
        outbox.close_with(Some(Bytes::from_static(b"ERROR")));
        outbox.push(Bytes::from_static(b"ignored"));
        let mut batch = Vec::new();
        assert_eq!(outbox.take(&mut batch, 0), Taken::Closed);
        assert_eq!(
            batch,
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"ERROR")]
        );
    }

    #[test]
    fn held_lines_and_those_after_them_wait_for_their_commit() {
        let outbox = outbox(1000);
        outbox.push(Bytes::from_static(b"a"));
        outbox.push_held(Bytes::from_static(b"m5"), 5);
        outbox.push(Bytes::from_static(b"b"));
        outbox.push_held(Bytes::from_static(b"m7"), 7);
        outbox.push_held(Bytes::from_static(b"m9"), 9);
        outbox.push(Bytes::from_static(b"c"));
        let mut batch = Vec::new();
        assert_eq!(outbox.take(&mut batch, 4), Taken::Held);
        assert_eq!(batch, vec![Bytes::from_static(b"a")]);
        batch.clear();
        // 5 committed: up to the second barrier (m7), which waits for 7.
        assert_eq!(outbox.take(&mut batch, 6), Taken::Held);
        assert_eq!(
            batch,
            vec![Bytes::from_static(b"m5"), Bytes::from_static(b"b")]
        );
        batch.clear();
        // m9 joined m7's barrier: both wait for 9.
        assert_eq!(outbox.take(&mut batch, 8), Taken::Held);
        assert!(batch.is_empty());
        outbox.push(Bytes::from_static(b"d"));
        assert_eq!(outbox.take(&mut batch, 9), Taken::Open);
        assert_eq!(batch.len(), 4);
        assert_eq!(batch[3], Bytes::from_static(b"d"));
    }

    #[test]
    fn a_captured_held_line_holds_the_labeled_reply_queued_after_it() {
        let outbox = outbox(1000);
        outbox.push(Bytes::from_static(b"before"));
        outbox.begin_capture();
        outbox.push_held(Bytes::from_static(b"echo"), 3);
        let replies = outbox.end_capture();
        assert_eq!(replies, vec![Bytes::from_static(b"echo")]);
        outbox.push(Bytes::from_static(b"@label=x echo"));
        let mut batch = Vec::new();
        assert_eq!(outbox.take(&mut batch, 2), Taken::Held);
        assert_eq!(batch, vec![Bytes::from_static(b"before")]);
        assert_eq!(outbox.take(&mut batch, 3), Taken::Open);
        assert_eq!(batch.len(), 2);
    }

    #[test]
    fn closing_still_waits_for_held_lines() {
        let outbox = outbox(1000);
        outbox.push_held(Bytes::from_static(b"m1"), 1);
        outbox.close_with(Some(Bytes::from_static(b"ERROR")));
        let mut batch = Vec::new();
        assert_eq!(outbox.take(&mut batch, 0), Taken::Held);
        assert!(batch.is_empty());
        assert_eq!(outbox.take(&mut batch, 1), Taken::Closed);
        assert_eq!(batch.len(), 2);
    }

    #[test]
    fn take_all_hands_over_held_lines_with_the_commit_they_wait_for() {
        let outbox = outbox(1000);
        outbox.push(Bytes::from_static(b"a"));
        outbox.push_held(Bytes::from_static(b"m3"), 3);
        outbox.push_held(Bytes::from_static(b"m9"), 9);
        outbox.push_held(Bytes::from_static(b"m5"), 5);
        let mut batch = Vec::new();
        assert_eq!(outbox.take_all(&mut batch), (Taken::Open, 9));
        assert_eq!(batch.len(), 4);
        // Nothing is held any more: the forwarder holds them.
        outbox.push(Bytes::from_static(b"b"));
        batch.clear();
        assert_eq!(outbox.take_all(&mut batch), (Taken::Open, 0));
        assert_eq!(batch, [Bytes::from_static(b"b")]);
    }
}
