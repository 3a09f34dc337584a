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

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::Wake;

use bytes::Bytes;

use crate::caps::CapSet;
use crate::driver::Wakeup;

/// Why an outbox stopped accepting lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Closed {
    /// Orderly close: the writer flushes what is queued, then ends.
    Flush,
    /// Forced close (sendq overrun, killed): queued lines are dropped.
    Abort(String),
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
    /// Bytes pushed and not yet written to the socket (queued plus in flight).
    pending_bytes: usize,
    closed: Option<Box<Closed>>,
    /// Someone else asked this connection to end (KILL), with this reason; unlike an
    /// abort, the queue stays and is flushed, ending with the `ERROR` line.
    disconnect: Option<Box<str>>,
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
    budget: usize,
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
            budget,
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
        self.budget
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

    /// Queues a line that is not a reply to the command being run, even while replies
    /// are being captured: a message a client sends to itself arrives as a delivery,
    /// and only its `echo-message` copy is the (labeled) reply.
    pub(crate) fn push_delivery(&self, line: Bytes) {
        self.push_inner(line, false);
    }

    fn push_inner(&self, line: Bytes, capturable: bool) {
        let mut state = self.lock();
        if state.closed.is_some() {
            return;
        }
        if let Some(capture) = state.capture.as_mut().filter(|_| capturable) {
            capture.push(line);
            return;
        }
        if state.pending_bytes + line.len() > self.budget {
            state.queue = Vec::new();
            state.closed = Some(Box::new(Closed::Abort("SendQ exceeded".to_owned())));
            drop(state);
            self.wakeup.wake();
            return;
        }
        state.pending_bytes += line.len();
        let was_empty = state.queue.is_empty();
        state.queue.push(line);
        drop(state);
        if was_empty {
            self.wakeup.wake();
        }
    }

    /// Queues a last line and closes the outbox; the writer flushes, then ends.
    pub(crate) fn close_with(&self, last: Option<Bytes>) {
        let mut state = self.lock();
        if state.closed.is_some() {
            return;
        }
        if let Some(line) = last {
            state.pending_bytes += line.len();
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

    /// Moves every queued line to the end of `out` (the connection's write buffer).
    pub(crate) fn take(&self, out: &mut Vec<Bytes>) -> Taken {
        let mut state = self.lock();
        match state.closed.as_deref() {
            Some(Closed::Abort(reason)) => return Taken::Aborted(reason.clone()),
            Some(Closed::Flush) => {
                out.append(&mut state.queue);
                return Taken::Closed;
            }
            None => {}
        }
        if out.is_empty() {
            // Hand over the allocation instead of copying into it.
            std::mem::swap(out, &mut state.queue);
        } else {
            out.append(&mut state.queue);
        }
        match state.disconnect.as_deref() {
            Some(reason) => Taken::Disconnect(reason.to_owned()),
            None => Taken::Open,
        }
    }

    /// Asks the connection to end with `reason` (KILL): it wakes, sees the request
    /// in [`Outbox::take`] and ends the usual way (peers see `QUIT :reason`, the client gets `ERROR :reason` after
    /// everything already queued). The first request wins.
    pub(crate) fn request_disconnect(&self, reason: &str) {
        let mut state = self.lock();
        if state.disconnect.is_some() {
            return;
        }
        state.disconnect = Some(reason.into());
        drop(state);
        self.wakeup.wake();
    }

    /// Records that `bytes` left for the socket, freeing budget; returns the bytes
    /// still pending.
    pub(crate) fn written(&self, bytes: usize) -> usize {
        let mut state = self.lock();
        state.pending_bytes = state.pending_bytes.saturating_sub(bytes);
        state.pending_bytes
    }

    /// Bytes pushed and not yet written.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.lock().pending_bytes
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
        assert_eq!(outbox.take(&mut batch), Taken::Open);
        assert_eq!(batch.len(), 2);
        assert_eq!(outbox.pending_bytes(), 8);
        outbox.written(8);
        outbox.push(Bytes::from_static(b"123456"));
        outbox.push(Bytes::from_static(b"12345"));
        assert_eq!(outbox.abort_reason().as_deref(), Some("SendQ exceeded"));
        assert_eq!(
            outbox.take(&mut Vec::new()),
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
            outbox.take(&mut batch),
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
        assert_eq!(outbox.take(&mut batch), Taken::Closed);
        assert_eq!(
            batch,
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"ERROR")]
        );
    }
}
