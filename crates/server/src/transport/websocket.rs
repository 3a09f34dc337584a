//! IRC over WebSocket (the IRCv3 `websocket` extension) as a byte stream.
//!
//! The connection reads and writes IRC lines; a WebSocket carries one line per
//! message, without the line ending. [`WebSocketTransport`] turns each incoming
//! message into a line (the `\r\n` appended) and each outgoing line into one message,
//! so the connection's framing, pacing and limits apply unchanged.
//!
//! Subprotocols: `binary.ircv3.net` sends lines as binary messages, byte for byte;
//! `text.ircv3.net` (and no subprotocol, as most servers do) as text messages, with
//! bytes that are not UTF-8 replaced by U+FFFD, since a text message must be UTF-8.
//! Either way a client may send text or binary messages. WebSocket pings are
//! answered by the library; keepalive is IRC's own PING, as on every transport.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Sink, Stream};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

/// The subprotocol names of the IRCv3 WebSocket specification.
pub(crate) const BINARY: &str = "binary.ircv3.net";
/// See [`BINARY`].
pub(crate) const TEXT: &str = "text.ircv3.net";

/// Largest WebSocket message a client may send: one line with the longest tags
/// allowed (8,191 bytes) and room to spare; larger ones close the connection (1009).
const MAX_MESSAGE: usize = 16 * 1024;
/// Bytes read from the socket at a time (the library's default, 128 KiB, would be
/// kept by every idle connection).
const READ_BUFFER: usize = 4096;
/// Frames gather in the library's buffer up to this size before it writes them
/// itself; [`WebSocketTransport::poll_write`] flushes after each batch of lines, so
/// a batch goes in one write, as on the other transports (the connection writes
/// at most 64 KiB at a time).
const WRITE_BUFFER: usize = 64 * 1024;
/// Most bytes of frames waiting for the socket; the connection's sendq bounds what
/// is queued before them.
const MAX_WRITE_BUFFER: usize = 4 * WRITE_BUFFER;

/// How lines go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `binary.ircv3.net`: binary messages, bytes as they are.
    Binary,
    /// `text.ircv3.net`, or no subprotocol: text messages, UTF-8 enforced.
    Text,
}

impl Framing {
    /// The subprotocol to answer among those the client offered
    /// (`Sec-WebSocket-Protocol`), in the client's order of preference: the first one
    /// this server speaks. `None` (no header in the answer) if the client offered
    /// none of them; lines then go as text.
    pub(crate) fn choose(offered: &str) -> (Self, Option<&'static str>) {
        for name in offered.split(',').map(str::trim) {
            if name.eq_ignore_ascii_case(BINARY) {
                return (Self::Binary, Some(BINARY));
            }
            if name.eq_ignore_ascii_case(TEXT) {
                return (Self::Text, Some(TEXT));
            }
        }
        (Self::Text, None)
    }
}

/// The library's settings for a client connection.
pub(crate) fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// A WebSocket seen as the byte stream of IRC lines it carries.
pub(crate) struct WebSocketTransport {
    socket: WebSocketStream<TokioIo<Upgraded>>,
    framing: Framing,
    /// The rest of the last message read (with its `\r\n`), for a short read buffer.
    pending: Bytes,
    /// A line written without its end yet (a write cut inside a line); completed by
    /// the next write.
    partial: BytesMut,
}

impl WebSocketTransport {
    pub(crate) fn new(socket: WebSocketStream<TokioIo<Upgraded>>, framing: Framing) -> Self {
        Self {
            socket,
            framing,
            pending: Bytes::new(),
            partial: BytesMut::new(),
        }
    }

    fn message(&self, line: &[u8]) -> Message {
        match self.framing {
            Framing::Binary => Message::Binary(Bytes::copy_from_slice(line)),
            Framing::Text => Message::Text(String::from_utf8_lossy(line).into_owned().into()),
        }
    }
}

/// A library error as the connection reports it.
fn io_error(error: tungstenite::Error) -> io::Error {
    match error {
        tungstenite::Error::Io(error) => error,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            io::ErrorKind::BrokenPipe.into()
        }
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

impl AsyncRead for WebSocketTransport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            let message = match Pin::new(&mut this.socket).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                // The end of the stream: EOF.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(io_error(error))),
                Poll::Ready(Some(Ok(message))) => message,
            };
            let payload: Bytes = match message {
                Message::Text(text) => Bytes::from(text),
                Message::Binary(bytes) => bytes,
                // The library queued the answer: send it now rather than with the
                // next line.
                Message::Ping(_) => {
                    if let Poll::Ready(Err(error)) = Pin::new(&mut this.socket).poll_flush(cx) {
                        return Poll::Ready(Err(io_error(error)));
                    }
                    continue;
                }
                Message::Pong(_) | Message::Frame(_) => continue,
                Message::Close(_) => return Poll::Ready(Ok(())),
            };
            // A client that ends its message with the line ending anyway is
            // forgiven; the connection's framer splits anything else.
            let line = payload.strip_suffix(b"\n").map_or(&payload[..], |line| {
                line.strip_suffix(b"\r").unwrap_or(line)
            });
            let mut framed = BytesMut::with_capacity(line.len() + 2);
            framed.extend_from_slice(line);
            framed.extend_from_slice(b"\r\n");
            this.pending = framed.freeze();
        }
    }
}

impl AsyncWrite for WebSocketTransport {
    /// Takes the whole lines of `buf` (each `\r\n`-terminated), one message each,
    /// as far as the library's buffer takes them.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut taken = 0;
        while taken < buf.len() {
            match Pin::new(&mut this.socket).poll_ready(cx) {
                Poll::Pending if taken == 0 => return Poll::Pending,
                Poll::Pending => break,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(io_error(error))),
                Poll::Ready(Ok(())) => {}
            }
            let rest = &buf[taken..];
            let Some(end) = memchr::memchr(b'\n', rest) else {
                // No line end: keep it for the next write.
                this.partial.extend_from_slice(rest);
                taken = buf.len();
                break;
            };
            let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
            let message = if this.partial.is_empty() {
                this.message(line)
            } else {
                this.partial.extend_from_slice(line);
                let whole = std::mem::take(&mut this.partial);
                this.message(&whole)
            };
            if let Err(error) = Pin::new(&mut this.socket).start_send(message) {
                return Poll::Ready(Err(io_error(error)));
            }
            taken += end + 1;
        }
        // Push the frames towards the socket; what does not fit yet is flushed by
        // the connection's next poll.
        if let Poll::Ready(Err(error)) = Pin::new(&mut this.socket).poll_flush(cx) {
            return Poll::Ready(Err(io_error(error)));
        }
        Poll::Ready(Ok(taken))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket)
            .poll_flush(cx)
            .map_err(io_error)
    }

    /// Sends a Close frame (1000, normal closure) after the last lines.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket)
            .poll_close(cx)
            .map_err(io_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_order_of_preference_decides() {
        assert_eq!(
            Framing::choose("binary.ircv3.net, text.ircv3.net"),
            (Framing::Binary, Some(BINARY))
        );
        assert_eq!(
            Framing::choose("text.ircv3.net,binary.ircv3.net"),
            (Framing::Text, Some(TEXT))
        );
        assert_eq!(
            Framing::choose("chat, TEXT.ircv3.net"),
            (Framing::Text, Some(TEXT))
        );
        assert_eq!(Framing::choose(""), (Framing::Text, None));
        assert_eq!(Framing::choose("mqtt"), (Framing::Text, None));
    }
}
