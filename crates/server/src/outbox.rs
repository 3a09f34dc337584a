//! A client's outbound queue: shared lines waiting for the socket, under a byte budget.
//!
//! Handlers push [`Bytes`] (often the very same bytes for every member of a channel)
//! while holding the world lock; the connection's writer drains the whole queue at once
//! and writes it with one vectored write, so a busy client costs one syscall per loop
//! pass rather than one per line. The lock here is a std mutex held only to move a few
//! pointers, never across an `.await` or a socket write.
//!
//! The queue counts bytes from the moment they are pushed until the socket has taken
//! them. When a push would pass the budget (the sendq), the outbox closes itself, drops
//! what it holds and wakes the connection, which disconnects the client with
//! "SendQ exceeded": a client that stops reading can never make the server hold more
//! than its budget, and nobody else waits for it.

use std::sync::{Mutex, MutexGuard};

use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::caps::CapSet;

/// Why an outbox stopped accepting lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Closed {
    /// Orderly close: the writer flushes what is queued, then ends.
    Flush,
    /// Forced close (sendq overrun, killed): queued lines are dropped.
    Abort(String),
}

#[derive(Debug, Default)]
struct State {
    queue: Vec<Bytes>,
    /// While a labeled command runs, its replies are collected here instead
    /// (labeled-response), to be labeled or batched before they are queued.
    capture: Option<Vec<Bytes>>,
    /// Bytes pushed and not yet written to the socket (queued plus in flight).
    pending_bytes: usize,
    closed: Option<Closed>,
    /// Someone else asked this connection to end (KILL), with this reason; unlike an
    /// abort, the queue stays and is flushed, ending with the `ERROR` line.
    disconnect: Option<String>,
}

/// The outbound side of one connection.
#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    budget: usize,
    /// Wakes the writer: lines arrived or the outbox closed.
    writer_wakeup: Notify,
    /// Wakes the connection's reader when the outbox was aborted.
    aborted: Notify,
    /// Wakes the connection's reader when another client asked it to end (KILL).
    disconnect_wakeup: Notify,
    /// The capabilities the client negotiated, mirrored from `Client::caps` so a
    /// broadcast can pick each member's line format without looking the client up.
    caps: AtomicU32,
}

impl Outbox {
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            budget,
            writer_wakeup: Notify::new(),
            aborted: Notify::new(),
            disconnect_wakeup: Notify::new(),
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
        self.lock().capture = Some(Vec::new());
    }

    /// Stops collecting and returns what was pushed since [`Outbox::begin_capture`].
    pub(crate) fn end_capture(&self) -> Vec<Bytes> {
        self.lock().capture.take().unwrap_or_default()
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
            state.closed = Some(Closed::Abort("SendQ exceeded".to_owned()));
            drop(state);
            self.writer_wakeup.notify_one();
            self.aborted.notify_one();
            return;
        }
        state.pending_bytes += line.len();
        let was_empty = state.queue.is_empty();
        state.queue.push(line);
        drop(state);
        if was_empty {
            self.writer_wakeup.notify_one();
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
        state.closed = Some(Closed::Flush);
        drop(state);
        self.writer_wakeup.notify_one();
    }

    /// Closes the outbox at once, dropping what is queued (sendq overrun, KILL).
    pub(crate) fn abort(&self, reason: &str) {
        let mut state = self.lock();
        if matches!(state.closed, Some(Closed::Abort(_))) {
            return;
        }
        state.queue = Vec::new();
        state.closed = Some(Closed::Abort(reason.to_owned()));
        drop(state);
        self.writer_wakeup.notify_one();
        self.aborted.notify_one();
    }

    /// The abort reason, if the outbox was aborted.
    pub(crate) fn abort_reason(&self) -> Option<String> {
        match &self.lock().closed {
            Some(Closed::Abort(reason)) => Some(reason.clone()),
            _ => None,
        }
    }

    /// Resolves once the outbox has been aborted.
    pub(crate) async fn wait_aborted(&self) {
        loop {
            if self.abort_reason().is_some() {
                return;
            }
            self.aborted.notified().await;
        }
    }

    /// Waits for lines and takes them all, swapping in `spare` (an empty vector whose
    /// allocation is reused). Returns `None` once closed and drained.
    pub(crate) async fn next_batch(&self, spare: Vec<Bytes>) -> Option<Vec<Bytes>> {
        let mut spare = Some(spare);
        loop {
            {
                let mut state = self.lock();
                match state.closed {
                    Some(Closed::Abort(_)) => return None,
                    _ if !state.queue.is_empty() => {
                        let mut batch = spare.take().unwrap_or_default();
                        batch.clear();
                        std::mem::swap(&mut batch, &mut state.queue);
                        return Some(batch);
                    }
                    Some(Closed::Flush) => return None,
                    None => {}
                }
            }
            self.writer_wakeup.notified().await;
        }
    }

    /// Asks the connection to end with `reason` (KILL): its reader wakes and ends it
    /// the usual way (peers see `QUIT :reason`, the client gets `ERROR :reason` after
    /// everything already queued). The first request wins.
    pub(crate) fn request_disconnect(&self, reason: &str) {
        let mut state = self.lock();
        if state.disconnect.is_some() {
            return;
        }
        state.disconnect = Some(reason.to_owned());
        drop(state);
        self.disconnect_wakeup.notify_one();
    }

    /// Resolves with the reason once [`Outbox::request_disconnect`] was called.
    pub(crate) async fn wait_disconnect_request(&self) -> String {
        loop {
            if let Some(reason) = self.lock().disconnect.clone() {
                return reason;
            }
            self.disconnect_wakeup.notified().await;
        }
    }

    /// Records that `bytes` left for the socket, freeing budget.
    pub(crate) fn written(&self, bytes: usize) {
        let mut state = self.lock();
        state.pending_bytes = state.pending_bytes.saturating_sub(bytes);
    }

    /// Bytes pushed and not yet written.
    #[cfg(test)]
    pub(crate) fn pending_bytes(&self) -> usize {
        self.lock().pending_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_lines_and_aborts_past_the_budget() {
        let outbox = Outbox::new(10);
        outbox.push(Bytes::from_static(b"12345"));
        outbox.push(Bytes::from_static(b"678"));
        let batch = outbox.next_batch(Vec::new()).await.expect("open");
        assert_eq!(batch.len(), 2);
        assert_eq!(outbox.pending_bytes(), 8);
        outbox.written(8);
        outbox.push(Bytes::from_static(b"123456"));
        outbox.push(Bytes::from_static(b"12345"));
        assert_eq!(outbox.abort_reason().as_deref(), Some("SendQ exceeded"));
        outbox.wait_aborted().await;
        assert!(outbox.next_batch(Vec::new()).await.is_none());
    }

    #[tokio::test]
    async fn close_flushes_the_last_line() {
        let outbox = Outbox::new(100);
        outbox.push(Bytes::from_static(b"a"));
        outbox.close_with(Some(Bytes::from_static(b"ERROR")));
        outbox.push(Bytes::from_static(b"ignored"));
        let batch = outbox.next_batch(Vec::new()).await.expect("queued lines");
        assert_eq!(
            batch,
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"ERROR")]
        );
        assert!(outbox.next_batch(Vec::new()).await.is_none());
    }
}
