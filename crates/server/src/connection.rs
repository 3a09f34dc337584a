//! One client connection, as a state machine its [driver](crate::driver) polls.
//!
//! A connection is not a task of its own: an idle one is only this struct, its socket
//! and its outbox, with no read buffer and no future. When its socket becomes readable
//! or writable, or a line lands in its outbox, its outbox (which is its waker) puts
//! it on the driver's ready list, and the driver calls [`Conn::poll_input`] (read,
//! frame, pace and dispatch lines) and later [`Conn::poll_output`] (one write of
//! everything queued).
//!
//! The connection owns everything time-related for its client: the registration
//! deadline, the keepalive PING and command pacing; the driver only tells it the time
//! ([`Conn::on_tick`]). Every way a connection can end (QUIT, EOF, an I/O error, a
//! timeout, a flood, a sendq overrun, KILL, server shutdown) goes through one place,
//! [`Conn::begin_close`], which removes the client from the world, tells its peers
//! why, and queues a final `ERROR` that is flushed before the socket closes.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use palaver_proto::numeric::ERR_INPUTTOOLONG;
use palaver_proto::{Frame, LineFramer, LineWriter};
use tokio::io::AsyncWrite;
use tokio::time::Instant;

use crate::Shared;
use crate::admission::Ticket;
use crate::flood::TokenBucket;
use crate::handlers::deferred::Jobs;
use crate::handlers::line::{Outcome, process_line};
use crate::handlers::paged::{self, Paged, Progress};
use crate::metrics::{Disconnect, DriverCounters};
use crate::outbox::{Outbox, Taken};
use crate::transport::Transport;
use crate::world::ClientId;

/// Most bytes one connection may read in one driver pass, so one fast sender cannot
/// keep the others waiting; the rest is read on the next pass.
const READ_BUDGET_PER_PASS: usize = 64 * 1024;
/// Spare room a connection's own input buffer gets for a read. Used only while it
/// holds a partial line or lines waiting for flood tokens; otherwise the driver's
/// shared scratch buffer takes the read.
const READ_CHUNK: usize = 4096;
/// Most bytes copied together for one write.
pub(crate) const WRITE_CHUNK: usize = 64 * 1024;
/// Most time a driver pass spends on pages of long replies (`handlers::paged`); the
/// connections whose pages would pass it wait for the next pass, so the lines of
/// everyone else on the driver (a PING, a PRIVMSG) wait for at most this much of it.
pub(crate) const PAGING_PER_PASS: Duration = Duration::from_millis(2);
/// Time a closing connection gets to deliver its final lines (the `ERROR`) before
/// the socket is dropped anyway.
pub(crate) const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection ended, and whether its channel peers hear about it.
#[derive(Debug)]
pub(crate) struct Ending {
    reason: String,
    /// Broadcast `QUIT :reason` to peers (not on shutdown, when everyone is
    /// leaving; on a cluster the other nodes' users are told anyway).
    tell_peers: bool,
    /// How `/metrics` counts it.
    why: Disconnect,
}

impl Ending {
    /// An ending the client's peers hear about as `QUIT :reason`, counted as `why`.
    pub(crate) fn quit(why: Disconnect, reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            tell_peers: true,
            why,
        }
    }

    /// Server shutdown (`reason`: shutting down, or restarting): everyone leaves
    /// at once, so nobody is told about anyone.
    pub(crate) fn shutdown(reason: &str) -> Self {
        Self {
            reason: reason.to_owned(),
            tell_peers: false,
            why: Disconnect::Shutdown,
        }
    }

    /// The connection failed with `reason` (`OutputStep::Failed`): a sendq overrun,
    /// or an error.
    pub(crate) fn failed(reason: String) -> Self {
        let why = if reason == crate::outbox::SENDQ_EXCEEDED {
            Disconnect::Sendq
        } else {
            Disconnect::Error
        };
        Self::quit(why, reason)
    }
}

/// Where a connection is in its life; each phase gives the deadline its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not registered yet: the deadline ends the connection.
    Registering,
    /// Registered and heard from: the deadline sends a keepalive PING.
    Active,
    /// PING sent and unanswered: the deadline ends the connection.
    Pinged,
    /// Ended: flushing the final lines; the deadline drops the socket.
    Closing,
}

/// What one call to [`Conn::poll_input`] left behind.
#[derive(Debug)]
pub(crate) enum InputStep {
    /// Nothing more to do until the connection is woken.
    Idle,
    /// Whole lines wait for flood tokens: poll the connection again at this instant.
    Throttled(Instant),
    /// The connection must end.
    End(Ending),
}

/// What one call to [`Conn::poll_output`] left behind.
#[derive(Debug)]
pub(crate) enum OutputStep {
    /// Everything queued is written, or the socket will wake the connection when it
    /// can take more.
    Waiting,
    /// Lines are queued that wait for the store to commit a message they follow
    /// (see `Outbox::push_held`): poll again after the next commit.
    AwaitingCommit,
    /// The connection is finished: drop it.
    Finished,
    /// The connection must end (KILL), flushing what is queued.
    End(Ending),
    /// The outbox was aborted (sendq overrun) or the socket failed: end the
    /// connection with this reason, without flushing.
    Failed(String),
}

/// What the driver lends a connection for one poll.
pub(crate) struct PassCtx<'a> {
    pub(crate) shared: &'a Arc<Shared>,
    /// Where an idle connection's read lands, so idle connections own no read buffer.
    pub(crate) scratch: &'a mut BytesMut,
    /// Results of deferred jobs, by client.
    pub(crate) jobs: &'a Arc<Jobs>,
    /// Time the driver spent on pages of long replies in this pass.
    pub(crate) paging: &'a mut Duration,
    /// Bytes read in this pass: the driver adds them to its counters once per pass.
    pub(crate) read: &'a mut u64,
}

/// One client connection.
pub(crate) struct Conn {
    stream: Transport,
    id: ClientId,
    outbox: Arc<Outbox>,
    /// Unprocessed input: a partial line, or whole lines waiting for flood tokens.
    /// Empty, with no allocation, while the connection is idle.
    input: BytesMut,
    framer: LineFramer,
    bucket: Option<TokenBucket>,
    /// Lines taken from the outbox, written up to `output_start`.
    output: Vec<Bytes>,
    output_start: u32,
    /// The outbox was closed: once `output` is written, the connection is finished.
    outbox_closed: bool,
    phase: Phase,
    /// When the current phase's timer acts (see [`Phase`]).
    deadline: Instant,
    /// The client sent something since the last tick (keeps the PING away).
    heard: bool,
    /// A deferred job runs for this client; its lines wait until it is done.
    busy: bool,
    /// A reply being sent a page at a time (LIST, WHO); the client's next lines
    /// wait until it is complete.
    paged: Option<Box<Paged>>,
    /// The driver already holds a timer to resume this throttled connection.
    pub(crate) throttle_armed: bool,
    /// How it came in (`metrics::transport_slot`), for the open-connections gauge.
    pub(crate) transport: u8,
    /// Its place in the admission counts, freed when the connection is dropped.
    _ticket: Ticket,
}

impl Conn {
    /// A connection just accepted, its client already added to the world as `id`.
    pub(crate) fn new(
        stream: Transport,
        kind: &str,
        early_input: BytesMut,
        id: ClientId,
        outbox: Arc<Outbox>,
        shared: &Shared,
        ticket: Ticket,
    ) -> Self {
        let limits = &shared.config().limits;
        let now = Instant::now();
        Self {
            stream,
            id,
            outbox,
            // Bytes read while telling TLS, HTTP and IRC apart: the start of the
            // first line (usually empty, with no allocation).
            input: early_input,
            framer: LineFramer::new(),
            bucket: limits
                .flood
                .as_ref()
                .map(|limit| TokenBucket::new(limit, now)),
            output: Vec::new(),
            output_start: 0,
            outbox_closed: false,
            phase: Phase::Registering,
            deadline: now + limits.registration_timeout,
            heard: false,
            busy: false,
            paged: None,
            throttle_armed: false,
            transport: crate::metrics::transport_slot(kind),
            _ticket: ticket,
        }
    }

    /// The connection's outbox, which is also its waker.
    pub(crate) fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// A waker for polling this connection: its outbox puts it on its driver's
    /// ready list.
    pub(crate) fn waker(&self) -> std::task::Waker {
        std::task::Waker::from(Arc::clone(&self.outbox))
    }

    /// The client this connection serves.
    pub(crate) fn id(&self) -> ClientId {
        self.id
    }

    /// Whether the connection has ended and only flushes its last lines.
    pub(crate) fn is_closing(&self) -> bool {
        self.phase == Phase::Closing
    }

    /// Reads what the client sent and handles the lines that flood pacing allows.
    pub(crate) fn poll_input(&mut self, cx: &mut Context<'_>, pass: &mut PassCtx<'_>) -> InputStep {
        if self.phase == Phase::Closing {
            return InputStep::Idle;
        }
        if self.busy {
            match pass.jobs.take(self.id) {
                None => return InputStep::Idle,
                Some(Some(reason)) => {
                    return InputStep::End(Ending::quit(Disconnect::Quit, reason));
                }
                Some(None) => {
                    self.busy = false;
                    // The job's completion may have completed registration (SASL
                    // ending after CAP END): the keepalive then replaces the deadline.
                    if self.phase == Phase::Registering
                        && pass
                            .shared
                            .lock_world()
                            .clients
                            .get(&self.id)
                            .is_some_and(|c| c.is_registered())
                    {
                        self.phase = Phase::Active;
                        self.deadline = Instant::now() + pass.shared.config().limits.ping_interval;
                    }
                }
            }
        }
        if let Some(step) = self.continue_paged(pass) {
            return step;
        }
        // Lines that waited for flood tokens or a deferred job go first.
        if !self.input.is_empty()
            && let Some(step) = self.handle_own_input(pass)
        {
            return step;
        }
        let mut budget = READ_BUDGET_PER_PASS;
        loop {
            // An idle connection reads into the driver's scratch buffer and keeps only
            // what is left over (a partial line); a busy one reads into its own.
            let own = !self.input.is_empty();
            let buf: &mut BytesMut = if own {
                self.input.reserve(READ_CHUNK);
                &mut self.input
            } else {
                pass.scratch.reserve(READ_CHUNK);
                &mut *pass.scratch
            };
            let read = match tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, buf) {
                Poll::Pending => return InputStep::Idle,
                Poll::Ready(Ok(0)) => {
                    return InputStep::End(Ending::quit(Disconnect::Eof, "Connection closed"));
                }
                Poll::Ready(Ok(read)) => read,
                Poll::Ready(Err(error)) => {
                    return InputStep::End(Ending::quit(
                        Disconnect::Error,
                        format!("Read error: {error}"),
                    ));
                }
            };
            *pass.read += read as u64;
            // Only a whole line shows the client is alive: one that dribbles a
            // partial line forever is timed out like a silent one.
            let fresh = &buf[buf.len().saturating_sub(read)..];
            if memchr::memchr2(b'\n', b'\r', fresh).is_some() {
                self.heard_from();
            }
            let step = if own {
                self.handle_own_input(pass)
            } else {
                let mut scratch = std::mem::take(pass.scratch);
                let step = self.handle_lines(&mut scratch, pass);
                if !scratch.is_empty() {
                    self.input = BytesMut::from(&scratch[..]);
                    scratch.clear();
                }
                *pass.scratch = scratch;
                step
            };
            if let Some(step) = step {
                return step;
            }
            budget = budget.saturating_sub(read);
            if budget == 0 {
                // Come back on the next pass rather than starve the others.
                cx.waker().wake_by_ref();
                return InputStep::Idle;
            }
        }
    }

    /// [`Conn::handle_lines`] on the connection's own input buffer.
    ///
    /// Once every line in it is handled the buffer is freed, not kept empty, so an
    /// idle connection holds no input allocation (its next read goes to the
    /// driver's scratch buffer). Every TLS connection starts with its own input
    /// (the bytes read to tell IRC from HTTP inside TLS); kept, the 4 KiB it grew
    /// to for the first read was a third of an idle TLS connection's memory.
    fn handle_own_input(&mut self, pass: &mut PassCtx<'_>) -> Option<InputStep> {
        let mut input = std::mem::take(&mut self.input);
        let step = self.handle_lines(&mut input, pass);
        if !input.is_empty() {
            self.input = input;
        }
        step
    }

    /// Handles the whole lines in `buf` while flood tokens last. Returns a step when
    /// the connection must stop reading for now: it ends, waits for tokens, or waits
    /// for a deferred job.
    fn handle_lines(&mut self, buf: &mut BytesMut, pass: &mut PassCtx<'_>) -> Option<InputStep> {
        let shared = pass.shared;
        loop {
            // The clock is read only when pacing is on (not per line otherwise).
            let config = shared.config();
            let flood = config.limits.flood.as_ref();
            let now = flood.map(|_| Instant::now());
            if let (Some(bucket), Some(limit), Some(now)) = (self.bucket.as_mut(), flood, now)
                && memchr::memchr2(b'\n', b'\r', buf).is_some()
                && !bucket.has_token(limit, now)
            {
                if buf.len() > shared.config().limits.recvq_bytes {
                    return Some(InputStep::End(Ending::quit(
                        Disconnect::Flood,
                        "Excess Flood",
                    )));
                }
                return Some(InputStep::Throttled(bucket.next_token_at(limit)));
            }
            let frame = self.framer.next_frame(buf)?;
            if let (Some(bucket), Some(limit), Some(now)) = (self.bucket.as_mut(), flood, now) {
                bucket.take(limit, now);
            }
            let outcome = match frame {
                Frame::Line(line) => {
                    let outcome = process_line(shared, self.id, &line);
                    if let (Some(bucket), Some(limit), Some(started)) =
                        (self.bucket.as_mut(), flood, now)
                    {
                        // Pay for the work a command caused, not only for the line:
                        // a token per millisecond it held the world.
                        let now = Instant::now();
                        bucket.charge(limit, now, millis(now.saturating_duration_since(started)));
                    }
                    outcome
                }
                Frame::TooLong => {
                    shared
                        .lock_world()
                        .numeric(self.id, ERR_INPUTTOOLONG)
                        .trailing("Input line was too long")
                        .send();
                    Outcome::default()
                }
            };
            if outcome.registered && self.phase == Phase::Registering {
                self.phase = Phase::Active;
                self.deadline = Instant::now() + shared.config().limits.ping_interval;
            }
            if let Some(reason) = outcome.quit {
                return Some(InputStep::End(Ending::quit(Disconnect::Quit, reason)));
            }
            if let Some(reply) = outcome.paged {
                self.paged = Some(reply);
                if let Some(step) = self.continue_paged(pass) {
                    return Some(step);
                }
            }
            if let Some(job) = outcome.deferred {
                // Slow work (password checks) runs off the driver, without the world
                // lock; this client's next line waits for it (see handlers::deferred).
                self.busy = true;
                pass.jobs.spawn(
                    Arc::clone(shared),
                    self.id,
                    job,
                    outcome.labeled,
                    Arc::clone(&self.outbox),
                );
                return Some(InputStep::Idle);
            }
        }
    }

    /// Sends the next page of a reply in progress (see `handlers::paged`). Returns
    /// `None` once there is no reply in progress, so input goes on; otherwise the
    /// step to return: the page is sent and the next one waits for the client to read
    /// it, or for a flood token (every page after the first costs one).
    fn continue_paged(&mut self, pass: &mut PassCtx<'_>) -> Option<InputStep> {
        let reply = self.paged.as_mut()?;
        if self.outbox.pending_bytes() > paged::low_water(self.outbox.budget()) {
            // `poll_output` wakes the connection once the client has read enough.
            return Some(InputStep::Idle);
        }
        if *pass.paging >= PAGING_PER_PASS {
            // Other connections' pages took this pass's share: the next pass.
            self.outbox.wake_connection();
            return Some(InputStep::Idle);
        }
        let shared = pass.shared;
        let config = shared.config();
        let flood = config.limits.flood.as_ref();
        let started = Instant::now();
        let first = !reply.started();
        if let (Some(bucket), Some(limit)) = (self.bucket.as_mut(), flood)
            && !first
        {
            if !bucket.has_token(limit, started) {
                return Some(InputStep::Throttled(bucket.next_token_at(limit)));
            }
            bucket.take(limit, started);
        }
        let progress = reply.page(&mut shared.lock_world(), self.id);
        let now = Instant::now();
        let spent = now.saturating_duration_since(started);
        *pass.paging += spent;
        if let (Some(bucket), Some(limit)) = (self.bucket.as_mut(), flood) {
            // A page costs a token per millisecond of work, at least the one taken
            // above; the first page's work is the command's own, on top of its line.
            let extra = if first {
                millis(spent)
            } else {
                millis(spent) - 1.0
            };
            if extra > 0.0 {
                bucket.charge(limit, now, extra);
            }
        }
        // A client that reads its long reply is alive, though it sends nothing.
        self.heard = true;
        match progress {
            Progress::Done => {
                self.paged = None;
                None
            }
            Progress::More => {
                self.outbox.wake_connection();
                Some(InputStep::Idle)
            }
        }
    }

    /// Reads and drops what the client sent that was never read, up to 64 KiB,
    /// just before the socket closes: closing with unread input makes the kernel
    /// reset the connection, and a reset can make the client's kernel drop our
    /// last lines (the ERROR with the reason) before the client reads them.
    fn discard_unread_input(&mut self, cx: &mut Context<'_>) {
        let mut scratch = [0u8; 4096];
        for _ in 0..16 {
            let mut buf = tokio::io::ReadBuf::new(&mut scratch);
            match tokio::io::AsyncRead::poll_read(Pin::new(&mut self.stream), cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {}
                _ => return,
            }
        }
    }

    /// The client sent something: it is alive.
    fn heard_from(&mut self) {
        self.heard = true;
        if self.phase == Phase::Pinged {
            self.phase = Phase::Active;
        }
    }

    /// Writes what the outbox holds: one line as it is, several gathered into one
    /// write of up to [`WRITE_CHUNK`] bytes. Lines behind a message the store has
    /// not committed (`committed` is its watermark) stay queued.
    pub(crate) fn poll_output(
        &mut self,
        cx: &mut Context<'_>,
        write_buf: &mut Vec<u8>,
        committed: u64,
        written_bytes: &mut u64,
    ) -> OutputStep {
        let mut held = false;
        loop {
            let start = self.output_start as usize;
            if start == self.output.len() {
                self.output.clear();
                self.output_start = 0;
            } else if start > self.output.len() / 2 {
                self.output.drain(..start);
                self.output_start = 0;
            }
            // Take new lines even while earlier ones wait for the socket: they join
            // the next write, and an abort (sendq overrun) is seen at once.
            if !self.outbox_closed {
                held = false;
                match self.outbox.take(&mut self.output, committed) {
                    Taken::Open => {}
                    Taken::Held => held = true,
                    Taken::Closed => self.outbox_closed = true,
                    Taken::Aborted(reason) => return OutputStep::Failed(reason),
                    // KILL: end the usual way; the queued lines and the ERROR are
                    // written once the connection is closing.
                    Taken::Disconnect(reason) => {
                        return OutputStep::End(Ending::quit(Disconnect::Killed, reason));
                    }
                }
            }
            if self.output.is_empty() {
                // An idle connection holds no output buffer either.
                self.output = Vec::new();
                // TLS records and WebSocket frames may still wait in the
                // transport's buffer (plain TCP has none): the socket wakes the
                // connection when they can go.
                match Pin::new(&mut self.stream).poll_flush(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Pending if held => return OutputStep::AwaitingCommit,
                    Poll::Pending => return OutputStep::Waiting,
                    Poll::Ready(Err(error)) => {
                        return OutputStep::Failed(format!("Write error: {error}"));
                    }
                }
                if self.outbox_closed {
                    let _ = Pin::new(&mut self.stream).poll_shutdown(cx);
                    self.discard_unread_input(cx);
                    return OutputStep::Finished;
                }
                return if held {
                    OutputStep::AwaitingCommit
                } else {
                    OutputStep::Waiting
                };
            }
            let pending = &mut self.output[self.output_start as usize..];
            // One line goes as it is; several are copied into one buffer and written
            // with one plain write, which costs the kernel less than a vectored write
            // of as many pieces (measured: docs/PERFORMANCE.md).
            let chunk: &[u8] = if pending.len() == 1 {
                &pending[0]
            } else {
                write_buf.clear();
                for bytes in pending.iter() {
                    if !write_buf.is_empty() && write_buf.len() + bytes.len() > WRITE_CHUNK {
                        break;
                    }
                    write_buf.extend_from_slice(bytes);
                }
                write_buf
            };
            let written = match Pin::new(&mut self.stream).poll_write(cx, chunk) {
                // The socket wakes the connection when it drains; held lines also
                // need the commit.
                Poll::Pending if held => return OutputStep::AwaitingCommit,
                Poll::Pending => return OutputStep::Waiting,
                Poll::Ready(Ok(0)) => {
                    return OutputStep::Failed("Write error: connection closed".to_owned());
                }
                Poll::Ready(Ok(written)) => {
                    *written_bytes += written as u64;
                    written
                }
                Poll::Ready(Err(error)) => {
                    tracing::debug!(client = self.id.0, %error, "write failed");
                    return OutputStep::Failed(format!("Write error: {error}"));
                }
            };
            let still_pending = self.outbox.written(written);
            if self.paged.is_some() && still_pending <= paged::low_water(self.outbox.budget()) {
                // The client read what it had of a long reply: time for the next page.
                cx.waker().wake_by_ref();
            }
            let mut left = written;
            for bytes in pending.iter_mut() {
                if left >= bytes.len() {
                    left -= bytes.len();
                    self.output_start += 1;
                    // Release the shared line now rather than at the next batch.
                    *bytes = Bytes::new();
                } else {
                    bytes.advance(left);
                    break;
                }
            }
        }
    }

    /// Acts on the connection's timer if it is due: registration timeout, keepalive
    /// PING, ping timeout; a closing connection whose flush time is up is aborted.
    pub(crate) fn on_tick(&mut self, now: Instant, shared: &Shared) -> Option<Ending> {
        let limits = &shared.config().limits;
        if self.phase == Phase::Active && self.heard {
            // Heard from since the last tick: the keepalive PING can wait.
            self.heard = false;
            self.deadline = now + limits.ping_interval;
        }
        if now < self.deadline {
            return None;
        }
        match self.phase {
            Phase::Registering => Some(Ending::quit(
                Disconnect::RegistrationTimeout,
                "Registration timed out",
            )),
            Phase::Active => {
                let mut ping = LineWriter::new();
                ping.command("PING").trailing(&shared.config().server_name);
                self.outbox.push(ping.finish());
                self.phase = Phase::Pinged;
                self.deadline = now + limits.ping_timeout;
                None
            }
            Phase::Pinged => {
                // Silent since before the PING was due, to within a tick.
                let silent = limits.ping_interval + limits.ping_timeout;
                Some(Ending::quit(
                    Disconnect::PingTimeout,
                    format!("Ping timeout: {} seconds", silent.as_secs()),
                ))
            }
            Phase::Closing => {
                self.outbox.abort("Flush timeout");
                None
            }
        }
    }

    /// Ends the connection: removes the client from the world (its peers see the
    /// QUIT unless the server is shutting down) and queues `ERROR :reason` as the
    /// last line. The connection then only flushes, for at most [`FLUSH_TIMEOUT`].
    ///
    /// The open-connections gauge counts it closed here, once, before its peers or
    /// the client itself can see it end.
    pub(crate) fn begin_close(
        &mut self,
        shared: &Shared,
        ending: Ending,
        counters: &DriverCounters,
    ) {
        if self.phase == Phase::Closing {
            return;
        }
        counters.closed(self.transport);
        let nick = {
            let mut world = shared.lock_world();
            let nick = world.clients.get(&self.id).map(|c| c.nick().to_owned());
            world.counters.disconnected(ending.why);
            // On a cluster the other nodes' users stay: they see the QUIT even
            // when this node is shutting down.
            let tell_peers = ending.tell_peers || world.remote.is_some();
            world.remove_client(self.id, tell_peers.then_some(ending.reason.as_str()));
            nick
        };
        let mut error = LineWriter::new();
        error.command("ERROR").trailing(&ending.reason);
        self.outbox.close_with(Some(error.finish()));
        self.phase = Phase::Closing;
        self.deadline = Instant::now() + FLUSH_TIMEOUT;
        self.input = BytesMut::new();
        self.paged = None;
        tracing::info!(
            client = self.id.0,
            nick = nick.as_deref().unwrap_or("*"),
            reason = %ending.reason,
            "connection closed"
        );
    }
}

/// Milliseconds, as flood tokens: a command or page pays one per millisecond of work.
fn millis(spent: Duration) -> f32 {
    spent.as_secs_f32() * 1000.0
}
