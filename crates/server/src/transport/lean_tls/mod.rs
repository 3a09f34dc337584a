//! IRC over TLS with no buffers of ours held while the connection is idle.
//!
//! tokio-rustls (rustls's buffered API) keeps, for a connection's whole life, a
//! 4 KiB read buffer rustls never shrinks: almost half of what an idle TLS
//! connection cost (docs/PERFORMANCE.md, 2026-12-02). Here the connection is
//! rustls's unbuffered API ([`UnbufferedServerConnection`]), where the caller owns
//! the TLS bytes: received records are read into a buffer the thread's
//! connections share, rustls decrypts them from there (record by record; rustls
//! 0.23 still copies each record's plaintext into a `Vec` of its own) and the
//! plaintext is copied into the reader's buffer (the driver's scratch buffer);
//! records to send are encrypted into another shared buffer and written from it
//! ([`scratch`]). A connection keeps bytes of its own only while they wait: the
//! unread tail of a record split across reads, TLS bytes the socket did not take,
//! plaintext a reader had no room for. Each of those buffers is freed when it
//! empties, so an idle connection is its socket and rustls's own state (the
//! connection, its keys, its deframer's span list and empty queues).
//!
//! [`LeanTls`] is an `AsyncRead + AsyncWrite` like the other transports, so the
//! connection code reads and writes it the same way (one write per pass: a write
//! is encrypted and handed to the socket in one system call, what the socket does
//! not take waits for `poll_flush`).

mod records;
mod scratch;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustls::CommonState;
use rustls::server::{ServerConfig, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncryptError, InsufficientSizeError, UnbufferedStatus};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use records::Held;

/// Most bytes TLS adds to one record: header, explicit nonce or content type, tag
/// (29 at most with the suites offered; with room to spare).
const RECORD_OVERHEAD: usize = 64;

/// Most socket reads one `poll_read` makes while they bring no data for the
/// reader, so a peer sending records without data cannot hold the driver.
const READS_PER_POLL: usize = 8;

/// A TLS server connection over a TCP socket, on rustls's unbuffered API.
pub(crate) struct LeanTls {
    socket: TcpStream,
    session: UnbufferedServerConnection,
    /// Received bytes rustls could not use yet (a record, or a handshake message
    /// split across records, whose rest has not arrived). Empty, with no
    /// allocation, between records.
    incoming: Vec<u8>,
    held: Held,
    /// close_notify was queued (or found impossible): shutting down again does
    /// not queue another.
    closing: bool,
    /// rustls reported an error (a peer's garbage, a failed handshake): it is not
    /// called again (its state may no longer match the bytes kept), and reads
    /// and writes fail from here on.
    broken: bool,
}

/// What one read from the socket brought.
enum Received {
    /// Bytes, processed.
    Records,
    /// The peer closed the TCP connection.
    Eof,
}

impl LeanTls {
    /// A connection whose handshake is still to be done, with `config` (chosen
    /// from the ClientHello, which is still unread in the socket).
    pub(crate) fn new(socket: TcpStream, config: Arc<ServerConfig>) -> Result<Self, rustls::Error> {
        Ok(Self {
            socket,
            session: UnbufferedServerConnection::new(config)?,
            incoming: Vec::new(),
            held: Held::default(),
            closing: false,
            broken: false,
        })
    }

    /// Does the handshake (and sends the session ticket that follows it).
    /// Application data that arrives with the client's last flight is kept for
    /// the first read.
    pub(crate) async fn handshake(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_handshake(cx)).await
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.broken {
                return Poll::Ready(Err(broken()));
            }
            ready!(self.poll_send(cx))?;
            if !self.session.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            if self.held.peer_closed {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            if let Received::Eof = ready!(self.poll_receive(cx, None))? {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// What the handshake settled: the client's certificate, ALPN.
    pub(crate) fn session(&self) -> &CommonState {
        &self.session
    }

    /// One read from the socket, into the thread's receive buffer behind the
    /// bytes kept from last time, and everything rustls can do with it:
    /// decrypted data goes to `reader` (or is kept), what rustls has to send is
    /// queued, and the unused tail is kept in the connection's own buffer
    /// (allocated to its size, only if there is one).
    fn poll_receive(
        &mut self,
        cx: &mut Context<'_>,
        reader: Option<&mut ReadBuf<'_>>,
    ) -> Poll<io::Result<Received>> {
        let Self {
            socket,
            session,
            incoming,
            held,
            broken,
            ..
        } = self;
        let kept = incoming.len();
        scratch::with_incoming(kept + scratch::READ_ROOM, |buf| {
            buf[..kept].copy_from_slice(incoming);
            let mut room = ReadBuf::new(&mut buf[kept..]);
            ready!(Pin::new(&mut *socket).poll_read(cx, &mut room))?;
            let read = room.filled().len();
            if read == 0 {
                return Poll::Ready(Ok(Received::Eof));
            }
            let end = kept + read;
            let done = records::process(session, &mut buf[..end], held, reader).map_err(|e| {
                *broken = true;
                tls_error(e)
            })?;
            *incoming = buf[done.min(end)..end].to_vec();
            Poll::Ready(Ok(Received::Records))
        })
    }

    /// Lets rustls act on what it already has, with no new bytes: queues what it
    /// must send (its key update, a pending alert) and keeps any plaintext for
    /// the next read (waking the reader).
    fn settle(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let had = self.held.has_plaintext();
        let done = records::process(&mut self.session, &mut self.incoming, &mut self.held, None)
            .map_err(|e| {
                self.broken = true;
                tls_error(e)
            })?;
        self.forget_incoming(done);
        if !had && self.held.has_plaintext() {
            cx.waker().wake_by_ref();
        }
        Ok(())
    }

    fn forget_incoming(&mut self, n: usize) {
        if n > 0 {
            self.incoming.drain(..n.min(self.incoming.len()));
            if self.incoming.is_empty() {
                self.incoming = Vec::new();
            }
        }
    }

    /// Writes the queued TLS bytes to the socket; ready once all are written.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.held.has_outgoing() {
            let pending = &self.held.outgoing[self.held.outgoing_start..];
            match ready!(Pin::new(&mut self.socket).poll_write(cx, pending))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => self.held.sent(n),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// [`Self::poll_send`] as far as the socket takes the bytes now; an error is
    /// returned, a full socket is not (the bytes wait for `poll_flush`).
    fn send_some(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.poll_send(cx) {
            Poll::Ready(Err(error)) => Err(error),
            _ => Ok(()),
        }
    }

    /// Encrypts `data` into `out`: the bytes written, or `Err(size)` if `out` needs
    /// `size` bytes.
    fn seal(
        &mut self,
        cx: &mut Context<'_>,
        data: &[u8],
        out: &mut [u8],
    ) -> io::Result<Result<usize, usize>> {
        // rustls answers with `WriteTraffic` only once what it has to say
        // itself (an alert, a ticket) is taken: queued before these records.
        self.settle(cx)?;
        let UnbufferedStatus { discard, state } =
            self.session.process_tls_records(&mut self.incoming);
        let sealed = match state {
            Ok(ConnectionState::WriteTraffic(mut traffic)) => match traffic.encrypt(data, out) {
                Ok(n) => Ok(Ok(n)),
                Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
                    Ok(Err(required_size))
                }
                Err(error) => Err(io::Error::other(error)),
            },
            Ok(ConnectionState::Closed) => Err(io::ErrorKind::BrokenPipe.into()),
            Ok(other) => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                format!("TLS cannot send data now ({other:?})"),
            )),
            Err(error) => {
                self.broken = true;
                Err(tls_error(error))
            }
        };
        self.forget_incoming(discard);
        sealed
    }

    /// Encrypts `data` into the thread's buffer (`room` bytes at least) and writes
    /// it: straight to the socket if nothing else waits, keeping what the socket
    /// does not take. `Err(size)` if `room` was too small.
    fn seal_and_send(
        &mut self,
        cx: &mut Context<'_>,
        data: &[u8],
        room: usize,
    ) -> io::Result<Result<(), usize>> {
        scratch::with_outgoing(room, |out| {
            let sealed = match self.seal(cx, data, out)? {
                Ok(n) => n,
                Err(needed) => return Ok(Err(needed)),
            };
            // A key update rustls owes the peer (it asked for one) is part of
            // `out`, before the records sealed with the new keys (rustls writes
            // what it has queued first).
            let mut written = 0;
            if !self.held.has_outgoing() {
                while written < sealed {
                    match Pin::new(&mut self.socket).poll_write(cx, &out[written..sealed]) {
                        Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                        Poll::Ready(Ok(n)) => written += n,
                        Poll::Ready(Err(error)) => return Err(error),
                        Poll::Pending => break,
                    }
                }
            }
            self.held.outgoing.extend_from_slice(&out[written..sealed]);
            Ok(Ok(()))
        })
    }

    /// Queues close_notify behind whatever is queued, if the connection can still
    /// send (not during a handshake, not after it already did).
    fn queue_close_notify(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        self.settle(cx)?;
        let UnbufferedStatus { discard, state } =
            self.session.process_tls_records(&mut self.incoming);
        let queued = match state {
            Ok(ConnectionState::WriteTraffic(mut traffic)) => records::append(
                &mut self.held.outgoing,
                RECORD_OVERHEAD,
                |out| traffic.queue_close_notify(out),
                |e| match e {
                    EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
                        Some(*required_size)
                    }
                    _ => None,
                },
            )
            .map_err(io::Error::other),
            _ => Ok(()),
        };
        self.forget_incoming(discard);
        queued
    }
}

/// Room to encrypt `len` bytes of data: every record's overhead, and a spare one.
fn sealed_room(len: usize) -> usize {
    len + (len / (1 << 14) + 2) * RECORD_OVERHEAD
}

/// A TLS error as an I/O error, as the connection reports it ("Read error: …").
fn tls_error(error: rustls::Error) -> io::Error {
    tracing::debug!(%error, "TLS error");
    io::Error::new(io::ErrorKind::InvalidData, error)
}

/// What reads and writes return once the connection is broken.
fn broken() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "the TLS connection failed")
}

impl AsyncRead for LeanTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.broken {
            return Poll::Ready(Err(broken()));
        }
        if buf.remaining() == 0 || this.held.take_plaintext(buf) {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        for _ in 0..READS_PER_POLL {
            // After close_notify the stream ends here, as a TCP stream at EOF.
            if this.held.peer_closed {
                return Poll::Ready(Ok(()));
            }
            if let Received::Eof = ready!(this.poll_receive(cx, Some(&mut *buf)))? {
                return Poll::Ready(Ok(()));
            }
            // What the records asked for (a session ticket, an alert) goes now if
            // the socket takes it; otherwise it waits for the next flush.
            this.send_some(cx)?;
            if buf.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
        }
        // Records with no data in them (alerts, key updates, empty records) kept
        // coming: the other connections get their turn first.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl AsyncWrite for LeanTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.broken {
            return Poll::Ready(Err(broken()));
        }
        // Records already queued go first; a new write waits until they are out.
        ready!(this.poll_send(cx))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut room = sealed_room(data.len());
        loop {
            match this.seal_and_send(cx, data, room)? {
                Ok(()) => break,
                Err(needed) if needed > room => room = needed,
                Err(_) => {
                    return Poll::Ready(Err(io::Error::other("TLS record buffer too small")));
                }
            }
        }
        this.send_some(cx)?;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing && !this.broken {
            this.closing = true;
            if let Err(error) = this.queue_close_notify(cx) {
                tracing::debug!(%error, "close_notify not sent");
            }
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.socket).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The connection is boxed in `Transport::Tls`: kept within jemalloc's
    /// 1,280-byte class (rustls's own connection is 1,088 of it).
    #[test]
    fn an_idle_connection_stays_in_its_size_class() {
        let size = std::mem::size_of::<LeanTls>();
        assert!(size <= 1280, "LeanTls is {size} bytes");
    }
}
