//! One client connection: a reader that frames, paces and dispatches lines, and a
//! writer that drains the outbox, running side by side in one task.
//!
//! The reader owns everything time-related for the client: the registration deadline,
//! the keepalive PING, and command pacing. Every way a connection can end (QUIT, EOF,
//! an I/O error, a timeout, a flood, a sendq overrun, server shutdown) comes back to
//! one place, [`serve`], which removes the client from the world, tells its peers why,
//! and lets the writer flush a final `ERROR` before the socket closes.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use palaver_proto::numeric::ERR_INPUTTOOLONG;
use palaver_proto::{Frame, LineFramer, LineWriter, Message};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::flood::TokenBucket;
use crate::handlers::{Ctx, deferred, dispatch};
use crate::outbox::Outbox;
use crate::world::ClientId;
use crate::{Shared, labeled};

/// How much the reader asks the socket for at once.
const READ_CHUNK: usize = 4096;
/// What an idle connection reserves for its next read: enough for a typical line.
/// Most connections are idle most of the time, so this is most of their read memory;
/// a client that sends more gets [`READ_CHUNK`] for the reads that follow.
const IDLE_READ: usize = 512;
/// Largest batch vector the writer keeps for reuse; a bigger one (after a burst such
/// as the welcome) is freed so an idle connection does not hold it.
const KEPT_BATCH_CAPACITY: usize = 16;
/// Most buffers handed to one vectored write.
const MAX_IOVECS: usize = 64;
/// Time the writer gets to deliver the final lines (the `ERROR`) of a closing
/// connection before the socket is dropped anyway.
const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a connection ended, and whether its channel peers hear about it.
#[derive(Debug)]
struct Ending {
    reason: String,
    /// Broadcast `QUIT :reason` to peers (not on shutdown, when everyone is leaving).
    tell_peers: bool,
}

impl Ending {
    fn quit(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            tell_peers: true,
        }
    }
}

/// Serves one accepted connection until it ends.
pub(crate) async fn serve<R, W>(
    reader: R,
    writer: W,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let outbox = Arc::new(Outbox::new(shared.config.limits.sendq_bytes));
    let id = shared
        .lock_world()
        .add_client(peer.ip(), Arc::clone(&outbox));
    tracing::info!(client = id.0, %peer, "connection opened");

    let writer_done = CancellationToken::new();
    let read_side = async {
        let ending = read_loop(reader, id, &shared, &outbox, &shutdown).await;
        let nick = {
            let mut world = shared.lock_world();
            let nick = world.clients.get(&id).map(|c| c.nick().to_owned());
            world.remove_client(id, ending.tell_peers.then_some(ending.reason.as_str()));
            nick
        };
        let mut error = LineWriter::new();
        error.command("ERROR").trailing(&ending.reason);
        outbox.close_with(Some(error.finish()));
        if tokio::time::timeout(FLUSH_TIMEOUT, writer_done.cancelled())
            .await
            .is_err()
        {
            outbox.abort("Flush timeout");
        }
        tracing::info!(client = id.0, %peer, nick = nick.as_deref().unwrap_or("*"), reason = %ending.reason, "connection closed");
    };
    let write_side = async {
        if let Err(error) = write_loop(writer, &outbox).await {
            tracing::debug!(client = id.0, %error, "write failed");
            outbox.abort(&format!("Write error: {error}"));
        }
        writer_done.cancel();
    };
    tokio::join!(read_side, write_side);
}

/// Reads, paces and dispatches lines until the connection must end.
async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: R,
    id: ClientId,
    shared: &Shared,
    outbox: &Outbox,
    shutdown: &CancellationToken,
) -> Ending {
    let limits = &shared.config.limits;
    let now = Instant::now();
    let mut buf = BytesMut::new();
    let mut framer = LineFramer::new();
    let mut pending: VecDeque<Frame> = VecDeque::new();
    let mut pending_bytes = 0usize;
    let mut bucket = limits.flood.map(|limit| TokenBucket::new(limit, now));
    let registration_deadline = now + limits.registration_timeout;
    let mut registered = false;
    let mut last_activity = now;
    let mut ping_sent: Option<Instant> = None;

    loop {
        let timer = if !registered {
            registration_deadline
        } else if let Some(sent) = ping_sent {
            sent + limits.ping_timeout
        } else {
            last_activity + limits.ping_interval
        };
        let next_token = match (&bucket, pending.is_empty()) {
            (Some(bucket), false) => bucket.next_token_at(),
            _ => timer,
        };
        if buf.is_empty() {
            buf.reserve(IDLE_READ);
        } else if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                return Ending { reason: "Server shutting down".to_owned(), tell_peers: false };
            }
            () = outbox.wait_aborted() => {
                let reason = outbox.abort_reason().unwrap_or_else(|| "Closed".to_owned());
                return Ending::quit(reason);
            }
            reason = outbox.wait_disconnect_request() => return Ending::quit(reason),
            () = sleep_until(timer) => {
                if !registered {
                    return Ending::quit("Registration timed out");
                }
                if ping_sent.is_some() {
                    let silent = Instant::now().saturating_duration_since(last_activity);
                    return Ending::quit(format!("Ping timeout: {} seconds", silent.as_secs()));
                }
                let mut ping = LineWriter::new();
                ping.command("PING").trailing(&shared.config.server_name);
                outbox.push(ping.finish());
                ping_sent = Some(Instant::now());
            }
            () = sleep_until(next_token), if !pending.is_empty() => {}
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) => return Ending::quit("Connection closed"),
                Ok(_) => {
                    last_activity = Instant::now();
                    ping_sent = None;
                    while let Some(frame) = framer.next_frame(&mut buf) {
                        if let Frame::Line(line) = &frame {
                            pending_bytes += line.len();
                        }
                        pending.push_back(frame);
                    }
                    if pending_bytes > limits.recvq_bytes {
                        return Ending::quit("Excess Flood");
                    }
                }
                Err(error) => return Ending::quit(format!("Read error: {error}")),
            },
        }

        let now = Instant::now();
        while !pending.is_empty() {
            if let Some(bucket) = bucket.as_mut()
                && !bucket.try_take(now)
            {
                break;
            }
            let Some(frame) = pending.pop_front() else {
                break;
            };
            let outcome = match frame {
                Frame::Line(line) => {
                    pending_bytes -= line.len();
                    process_line(shared, id, &line)
                }
                Frame::TooLong => {
                    shared
                        .lock_world()
                        .numeric(id, ERR_INPUTTOOLONG)
                        .trailing("Input line was too long")
                        .send();
                    Outcome::default()
                }
            };
            registered = outcome.registered || registered;
            if let Some(reason) = outcome.quit {
                return Ending::quit(reason);
            }
            // Slow work (password checks) runs here, without the world lock and
            // before this client's next line (see handlers::deferred).
            if let Some(job) = outcome.deferred
                && let Some(reason) = deferred::run(shared, id, job, outcome.labeled).await
            {
                return Ending::quit(reason);
            }
        }
        if buf.is_empty() && pending.is_empty() {
            // Idle connections keep no read buffer.
            buf = BytesMut::new();
        }
    }
}

#[derive(Debug, Default)]
struct Outcome {
    registered: bool,
    quit: Option<String>,
    /// Slow work the command left to run outside the world lock.
    deferred: Option<deferred::Deferred>,
    /// The label of a labeled command whose replies are not complete until its
    /// deferred work is done.
    labeled: Option<labeled::Pending>,
}

/// Decodes, parses and dispatches one line with the world locked.
fn process_line(shared: &Shared, id: ClientId, raw: &[u8]) -> Outcome {
    let (text, valid_utf8) = decode(raw);
    let Ok(message) = Message::parse(&text) else {
        // Only whitespace, or tags/source without a command: nothing to answer.
        return Outcome::default();
    };
    tracing::trace!(client = id.0, line = %text, "received");
    let mut world = shared.lock_world();
    // The tag section, with its '@' and the space after it, is bounded for clients.
    if message.raw_tags().map_or(0, |tags| tags.len() + 2) > palaver_proto::MAX_CLIENT_TAGS_LEN {
        world
            .numeric(id, ERR_INPUTTOOLONG)
            .trailing("Input line was too long")
            .send();
        return Outcome::default();
    }
    let Some(me) = world.clients.get(&id) else {
        return Outcome::default();
    };
    let label = labeled::label_of(&message, me.caps);
    let outbox = Arc::clone(&me.outbox);
    if label.is_some() {
        outbox.begin_capture();
    }
    let mut ctx = Ctx::new(&mut world, id);
    ctx.label = label.as_ref().map(|l| l.to_string());
    if valid_utf8 {
        dispatch(&mut ctx, &message);
    } else {
        ctx.world.standard_reply(
            id,
            "FAIL",
            message.command(),
            "INVALID_UTF8",
            &[],
            "Message refused: your client must send UTF-8",
        );
    }
    let quit = ctx.quit.take();
    let deferred = ctx.deferred.take();
    let label_taken = ctx.label.is_none();
    let mut pending_label = None;
    if let Some(label) = label {
        let replies = outbox.end_capture();
        if label_taken {
            // The handler answers later and labels that answer itself.
            for reply in replies {
                outbox.push(reply);
            }
        } else if deferred.is_some() {
            pending_label = Some(labeled::Pending {
                label: label.into_owned(),
                replies,
            });
        } else {
            labeled::deliver(&mut world, id, &label, replies);
        }
    }
    let registered = world.clients.get(&id).is_some_and(|c| c.is_registered());
    Outcome {
        registered,
        quit,
        deferred,
        labeled: pending_label,
    }
}

/// Turns received bytes into text, and says whether they were valid UTF-8.
///
/// Lines that are not UTF-8 are refused (we announce `UTF8ONLY`): they are decoded
/// lossily only so the refusal can name the command. NUL bytes, valid UTF-8 but
/// meaningless in IRC, become U+FFFD. Valid lines (the common case) are borrowed.
fn decode(raw: &[u8]) -> (Cow<'_, str>, bool) {
    let text = String::from_utf8_lossy(raw);
    let valid = matches!(text, Cow::Borrowed(_));
    let text = if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        text
    };
    (text, valid)
}

/// Drains the outbox into the socket, one vectored write per batch, until it closes.
async fn write_loop<W: AsyncWrite + Unpin>(mut writer: W, outbox: &Outbox) -> io::Result<()> {
    let mut spare = Vec::new();
    while let Some(mut batch) = outbox.next_batch(spare).await {
        let total: usize = batch.iter().map(Bytes::len).sum();
        tokio::select! {
            written = write_batch(&mut writer, &mut batch) => written?,
            // A client that stops reading blocks the write; the sendq overrun aborts it.
            () = outbox.wait_aborted() => return Ok(()),
        }
        outbox.written(total);
        batch.clear();
        spare = if batch.capacity() <= KEPT_BATCH_CAPACITY {
            batch
        } else {
            Vec::new()
        };
    }
    if outbox.abort_reason().is_none() {
        writer.shutdown().await?;
    }
    Ok(())
}

/// Writes every buffer of `batch`, as few syscalls as the kernel allows.
async fn write_batch<W: AsyncWrite + Unpin>(writer: &mut W, batch: &mut [Bytes]) -> io::Result<()> {
    let mut index = 0;
    while index < batch.len() {
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let count = batch.len().saturating_sub(index).min(MAX_IOVECS);
        for (slot, bytes) in slices.iter_mut().zip(&batch[index..index + count]) {
            *slot = IoSlice::new(bytes);
        }
        let mut written = writer.write_vectored(&slices[..count]).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while written > 0 && index < batch.len() {
            let len = batch[index].len();
            if written >= len {
                written -= len;
                index += 1;
            } else {
                batch[index].advance(written);
                written = 0;
            }
        }
    }
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn invalid_utf8_is_flagged_and_nul_is_replaced() {
        assert_eq!(
            decode(b"PRIVMSG #a :caf\xe9"),
            ("PRIVMSG #a :caf\u{FFFD}".into(), false)
        );
        assert_eq!(
            decode(b"PRIVMSG #a :a\0b"),
            ("PRIVMSG #a :a\u{FFFD}b".into(), true)
        );
        assert!(matches!(
            decode(b"PING x"),
            (std::borrow::Cow::Borrowed(_), true)
        ));
    }
}
