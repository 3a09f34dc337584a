//! What a connection's bytes travel over: plain TCP, TLS, WebSocket, or WebSocket
//! over TLS (`--tls`, `--websocket`, both).
//!
//! [`Stream`] is one enum over the four, reading and writing IRC lines as a byte
//! stream ([`AsyncRead`] + [`AsyncWrite`]), so every scenario works unchanged on
//! each; plain TCP costs one `match` per call and nothing else.
//!
//! TLS accepts any server certificate (the servers under test present self-signed
//! ones) but still checks the handshake's signatures, so the server does all the
//! work of a real handshake. WebSocket follows the IRCv3 `websocket` extension:
//! `binary.ircv3.net` is offered, each line goes out as one binary message without
//! its line ending, and each message received is one line (`\r\n` appended). The
//! frames are made and read here, directly between the line buffers and the socket
//! ([`WsStream`]): no message objects, no allocation per line.
//!
//! Writes to a TLS or WebSocket stream may stay buffered until the next write or a
//! flush: write with [`write_flush`].

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use palaver_tls::AnyServerCert;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::Interest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::client::TlsStream;

use crate::conn::READ_CHUNK;

/// The WebSocket subprotocol offered: lines as binary messages.
pub const SUBPROTOCOL: &str = "binary.ircv3.net";
/// Longest HTTP response to the upgrade request.
const MAX_UPGRADE_RESPONSE: usize = 16 * 1024;
/// Bytes a [`WsStream`] reads at a time until reads fill that ([`READ_CHUNK`] then).
const SMALL_READ: usize = 4096;
/// Framed bytes a [`WsStream`] holds before a write waits for the socket.
const WS_HIGH_WATER: usize = 64 * 1024;

/// What connections travel over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Plain TCP.
    #[default]
    Plain,
    /// TLS over TCP.
    Tls,
    /// WebSocket over TCP.
    WebSocket,
    /// WebSocket over TLS.
    WebSocketTls,
}

impl Transport {
    /// The transport for the `--tls` and `--websocket` flags.
    pub fn new(tls: bool, websocket: bool) -> Self {
        match (tls, websocket) {
            (false, false) => Self::Plain,
            (true, false) => Self::Tls,
            (false, true) => Self::WebSocket,
            (true, true) => Self::WebSocketTls,
        }
    }

    /// The name reports use: `plain`, `tls`, `websocket` or `websocket+tls`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Tls => "tls",
            Self::WebSocket => "websocket",
            Self::WebSocketTls => "websocket+tls",
        }
    }
}

/// The transport of every connection this process opens (set once from the
/// command line, like the source-address spread).
static TRANSPORT: AtomicU8 = AtomicU8::new(0);

/// Makes every connection opened from now on use `transport`.
pub fn set(transport: Transport) {
    TRANSPORT.store(transport as u8, Ordering::Relaxed);
}

/// The transport connections are opened with (see [`set`]).
pub fn current() -> Transport {
    match TRANSPORT.load(Ordering::Relaxed) {
        1 => Transport::Tls,
        2 => Transport::WebSocket,
        3 => Transport::WebSocketTls,
        _ => Transport::Plain,
    }
}

/// A connection's byte stream.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS.
    Tls(Box<TlsStream<Tcp>>),
    /// WebSocket.
    WebSocket(Box<WsStream<Tcp>>),
    /// WebSocket over TLS.
    WebSocketTls(Box<WsStream<TlsStream<Tcp>>>),
}

impl Stream {
    /// Runs `transport`'s handshakes (TLS, WebSocket upgrade) over `tcp`, connected
    /// to `addr`.
    pub async fn open(tcp: TcpStream, addr: SocketAddr, transport: Transport) -> io::Result<Self> {
        let host = addr.to_string();
        let tcp_under = |stream| Tcp {
            stream,
            stamp: None,
        };
        Ok(match transport {
            Transport::Plain => Self::Plain(tcp),
            Transport::Tls => Self::Tls(Box::new(tls(tcp_under(tcp), addr, false).await?)),
            Transport::WebSocket => {
                Self::WebSocket(Box::new(WsStream::connect(tcp_under(tcp), &host).await?))
            }
            Transport::WebSocketTls => {
                let tls = tls(tcp_under(tcp), addr, true).await?;
                Self::WebSocketTls(Box::new(WsStream::connect(tls, &host).await?))
            }
        })
    }

    /// The TCP stream, for the scenarios that work on plain TCP only.
    pub fn into_tcp(self) -> io::Result<TcpStream> {
        match self {
            Self::Plain(tcp) => Ok(tcp),
            _ => Err(io::Error::other("this needs a plain TCP connection")),
        }
    }

    /// Asks the kernel to stamp what arrives, for a TLS or WebSocket stream: the
    /// receive time (real-time clock, ns since the Unix epoch) of the data of the
    /// socket's last read is kept in the cell returned, since the layers above it
    /// hide the reads. `None` for plain TCP, whose reads [`crate::rxtime`] stamps
    /// itself.
    pub fn stamp_receives(&mut self) -> io::Result<Option<Arc<AtomicU64>>> {
        let tcp = match self {
            Self::Plain(_) => return Ok(None),
            Self::Tls(tls) => &mut tls.get_mut().0,
            Self::WebSocket(ws) => &mut ws.inner,
            Self::WebSocketTls(ws) => &mut ws.inner.get_mut().0,
        };
        crate::rxtime::enable_on(&tcp.stream)?;
        let cell = Arc::new(AtomicU64::new(0));
        tcp.stamp = Some(Arc::clone(&cell));
        Ok(Some(cell))
    }

    /// Splits the stream into halves that read and write independently: the TCP
    /// halves for plain TCP (no lock), tokio's locked halves otherwise.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Self::Plain(tcp) => {
                let (read, write) = tcp.into_split();
                (ReadHalf::Plain(read), WriteHalf::Plain(write))
            }
            other => {
                let (read, write) = tokio::io::split(other);
                (ReadHalf::Other(read), WriteHalf::Other(write))
            }
        }
    }
}

/// Writes `bytes` and flushes what a TLS or WebSocket layer kept back (on plain
/// TCP the flush does nothing).
pub async fn write_flush<W: AsyncWrite + Unpin + ?Sized>(
    write: &mut W,
    bytes: &[u8],
) -> io::Result<()> {
    write.write_all(bytes).await?;
    write.flush().await
}

/// Calls `$method` on whichever stream `$self` holds.
macro_rules! each {
    ($self:expr, $s:ident => $body:expr) => {
        match $self.get_mut() {
            Stream::Plain($s) => {
                let $s = Pin::new($s);
                $body
            }
            Stream::Tls($s) => {
                let $s = Pin::new(&mut **$s);
                $body
            }
            Stream::WebSocket($s) => {
                let $s = Pin::new(&mut **$s);
                $body
            }
            Stream::WebSocketTls($s) => {
                let $s = Pin::new(&mut **$s);
                $body
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_shutdown(cx))
    }
}

/// The reading half of a [`Stream`].
#[derive(Debug)]
pub enum ReadHalf {
    /// Plain TCP's own half.
    Plain(OwnedReadHalf),
    /// TLS or WebSocket, shared with the [`WriteHalf`] through a lock.
    Other(tokio::io::ReadHalf<Stream>),
}

impl ReadHalf {
    /// The TCP half, if the stream is plain TCP (for kernel receive stamps).
    pub fn plain(&self) -> Option<&OwnedReadHalf> {
        match self {
            Self::Plain(read) => Some(read),
            Self::Other(_) => None,
        }
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(read) => Pin::new(read).poll_read(cx, buf),
            Self::Other(read) => Pin::new(read).poll_read(cx, buf),
        }
    }
}

/// The writing half of a [`Stream`].
#[derive(Debug)]
pub enum WriteHalf {
    /// Plain TCP's own half.
    Plain(OwnedWriteHalf),
    /// TLS or WebSocket, shared with the [`ReadHalf`] through a lock.
    Other(tokio::io::WriteHalf<Stream>),
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(write) => Pin::new(write).poll_write(cx, buf),
            Self::Other(write) => Pin::new(write).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(write) => Pin::new(write).poll_flush(cx),
            Self::Other(write) => Pin::new(write).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(write) => Pin::new(write).poll_shutdown(cx),
            Self::Other(write) => Pin::new(write).poll_shutdown(cx),
        }
    }
}

/// The TCP socket under TLS or WebSocket: reads through `recvmsg` with the kernel's
/// receive stamps once [`Stream::stamp_receives`] asked, plain reads before.
#[derive(Debug)]
pub struct Tcp {
    stream: TcpStream,
    /// Where the stamp of the last read goes, once asked.
    stamp: Option<Arc<AtomicU64>>,
}

impl AsyncRead for Tcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(stamp) = &this.stamp else {
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        };
        loop {
            ready!(this.stream.poll_read_ready(cx))?;
            let fd = this.stream.as_raw_fd();
            let read = this.stream.try_io(Interest::READABLE, || {
                crate::rxtime::recv_stamped(fd, buf.initialize_unfilled())
            });
            match read {
                Ok((n, at)) => {
                    if let Some(at) = at {
                        stamp.store(at, Ordering::Relaxed);
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Tcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

// ---------------------------------------------------------------------------
// TLS

/// The client configuration: any certificate, real signature checks. With `http`
/// the ALPN `http/1.1` is offered, as browsers do for a WebSocket.
fn tls_config(http: bool) -> io::Result<Arc<ClientConfig>> {
    static PLAIN: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    static HTTP: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    let cell = if http { &HTTP } else { &PLAIN };
    cell.get_or_init(|| {
        let provider = palaver_tls::ring_provider();
        let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert::new(provider)))
            .with_no_client_auth();
        if http {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
        }
        Ok(Arc::new(config))
    })
    .clone()
    .map_err(io::Error::other)
}

/// The TLS handshake over `tcp` (no SNI: the server name is `addr`'s address).
async fn tls(tcp: Tcp, addr: SocketAddr, http: bool) -> io::Result<TlsStream<Tcp>> {
    let connector = tokio_rustls::TlsConnector::from(tls_config(http)?);
    connector.connect(ServerName::from(addr.ip()), tcp).await
}

// ---------------------------------------------------------------------------
// WebSocket

/// Where the reader is in the incoming frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RxState {
    /// At a frame header.
    Header,
    /// Inside a data frame's payload: bytes left, and whether it ends the message.
    Payload { remaining: u64, fin: bool },
    /// A message ended: this much of its `\r\n` is still to be given out.
    LineEnd(u8),
    /// The server closed the WebSocket.
    Closed,
}

/// IRC lines over a WebSocket (client side): each line written becomes one masked
/// binary message, each message read one line ending in `\r\n`.
#[derive(Debug)]
pub struct WsStream<S> {
    inner: S,
    /// Bytes from the socket not yet decoded.
    rx: BytesMut,
    /// Whether reads have filled the space offered, so large reads pay off: an idle
    /// connection keeps a small buffer, a busy fan-out member a large one.
    busy: bool,
    state: RxState,
    /// Frames not yet written to the socket.
    tx: BytesMut,
    /// The start of an outgoing line whose end has not been written yet.
    partial: Vec<u8>,
    /// Masking-key generator (xorshift).
    mask: u32,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsStream<S> {
    /// Upgrades `inner` to a WebSocket with an HTTP/1.1 request for `/` on `host`,
    /// offering [`SUBPROTOCOL`].
    pub async fn connect(mut inner: S, host: &str) -> io::Result<Self> {
        use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};
        let key = generate_key();
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
        );
        write_flush(&mut inner, request.as_bytes()).await?;
        let mut rx = BytesMut::with_capacity(4096);
        let end = loop {
            if let Some(at) = rx.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if rx.len() > MAX_UPGRADE_RESPONSE {
                return Err(bad("WebSocket upgrade: response headers too long"));
            }
            if inner.read_buf(&mut rx).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "WebSocket upgrade: connection closed before the response",
                ));
            }
        };
        let head = rx.split_to(end);
        let head = String::from_utf8_lossy(&head);
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or_default();
        if status.split(' ').nth(1) != Some("101") {
            return Err(bad(&format!("WebSocket upgrade refused: {status}")));
        }
        let mut accepted = false;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("sec-websocket-accept") {
                accepted = value == derive_accept_key(key.as_bytes());
            } else if name.eq_ignore_ascii_case("sec-websocket-protocol")
                && !value.eq_ignore_ascii_case(SUBPROTOCOL)
            {
                return Err(bad(&format!(
                    "WebSocket upgrade: the server chose the subprotocol {value:?}"
                )));
            }
        }
        if !accepted {
            return Err(bad(
                "WebSocket upgrade: wrong or missing Sec-WebSocket-Accept",
            ));
        }
        Ok(Self::new(inner, rx))
    }
}

impl<S> WsStream<S> {
    /// A WebSocket already upgraded, with `rx` the bytes read past the handshake.
    fn new(inner: S, rx: BytesMut) -> Self {
        static SEED: AtomicU32 = AtomicU32::new(0x9e37_79b9);
        let seed = SEED.fetch_add(0x6d2b_79f5, Ordering::Relaxed) | 1;
        Self {
            inner,
            rx,
            busy: false,
            state: RxState::Header,
            tx: BytesMut::with_capacity(4096),
            partial: Vec::new(),
            mask: seed,
        }
    }

    fn next_mask(&mut self) -> [u8; 4] {
        let mut x = self.mask;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask = x;
        x.to_ne_bytes()
    }

    /// Appends one masked frame with `opcode` (FIN set) carrying `payload`.
    fn frame(&mut self, opcode: u8, payload: &[u8]) {
        let key = self.next_mask();
        let len = payload.len();
        self.tx.reserve(len + 14);
        self.tx.extend_from_slice(&[0x80 | opcode]);
        if len < 126 {
            self.tx.extend_from_slice(&[0x80 | len as u8]);
        } else if len <= usize::from(u16::MAX) {
            self.tx.extend_from_slice(&[0x80 | 126]);
            self.tx.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            self.tx.extend_from_slice(&[0x80 | 127]);
            self.tx.extend_from_slice(&(len as u64).to_be_bytes());
        }
        self.tx.extend_from_slice(&key);
        let start = self.tx.len();
        self.tx.extend_from_slice(payload);
        for (i, byte) in self.tx[start..].iter_mut().enumerate() {
            *byte ^= key[i & 3];
        }
    }

    /// Frames every complete line of `bytes` as one binary message (line ending
    /// removed, empty lines dropped); keeps an unfinished last line for later.
    fn frame_lines(&mut self, mut bytes: &[u8]) {
        while let Some(at) = bytes.iter().position(|&b| b == b'\n') {
            let (line, rest) = (&bytes[..at], &bytes[at + 1..]);
            bytes = rest;
            if self.partial.is_empty() {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if !line.is_empty() {
                    self.frame(0x2, line);
                }
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                let line = whole.strip_suffix(b"\r").unwrap_or(&whole);
                if !line.is_empty() {
                    self.frame(0x2, line);
                }
                whole.clear();
                self.partial = whole;
            }
        }
        self.partial.extend_from_slice(bytes);
    }

    /// Decodes frames from `rx` into `out` as far as both allow: message payloads
    /// followed by `\r\n`; a ping is answered (into `tx`), a pong skipped, a close
    /// ends the stream.
    fn decode(&mut self, out: &mut ReadBuf<'_>) -> io::Result<()> {
        loop {
            match self.state {
                RxState::Closed => return Ok(()),
                RxState::LineEnd(done) => {
                    let end = &b"\r\n"[usize::from(done)..];
                    let n = end.len().min(out.remaining());
                    out.put_slice(&end[..n]);
                    if n < end.len() {
                        self.state = RxState::LineEnd(done + n as u8);
                        return Ok(());
                    }
                    self.state = RxState::Header;
                }
                RxState::Payload { remaining, fin } => {
                    let n = (remaining.min(self.rx.len() as u64) as usize).min(out.remaining());
                    if n == 0 && remaining > 0 {
                        return Ok(());
                    }
                    out.put_slice(&self.rx[..n]);
                    self.rx.advance(n);
                    let remaining = remaining - n as u64;
                    self.state = match (remaining, fin) {
                        (0, true) => RxState::LineEnd(0),
                        (0, false) => RxState::Header,
                        _ => RxState::Payload { remaining, fin },
                    };
                }
                RxState::Header => {
                    let Some((opcode, fin, len, header)) = parse_header(&self.rx)? else {
                        return Ok(());
                    };
                    match opcode {
                        0x0..=0x2 => {
                            self.rx.advance(header);
                            self.state = RxState::Payload {
                                remaining: len,
                                fin,
                            };
                        }
                        0x8..=0xa => {
                            // Control frames carry at most 125 bytes: wait for all of it.
                            let total = header + len as usize;
                            if self.rx.len() < total {
                                return Ok(());
                            }
                            let frame = self.rx.split_to(total);
                            match opcode {
                                0x8 => {
                                    self.state = RxState::Closed;
                                    return Ok(());
                                }
                                0x9 => self.frame(0xa, &frame[header..]),
                                _ => {}
                            }
                        }
                        _ => return Err(bad(&format!("WebSocket opcode {opcode:#x}"))),
                    }
                }
            }
        }
    }
}

/// A frame header from the server at the start of `rx`: opcode, FIN, payload length
/// and header length; `None` until all of it has arrived.
fn parse_header(rx: &[u8]) -> io::Result<Option<(u8, bool, u64, usize)>> {
    let [b0, b1, ..] = *rx else {
        return Ok(None);
    };
    if b1 & 0x80 != 0 {
        return Err(bad("masked WebSocket frame from the server"));
    }
    let (opcode, fin) = (b0 & 0x0f, b0 & 0x80 != 0);
    let (len, header) = match b1 & 0x7f {
        126 => match rx.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match rx.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(b) => (u64::from_be_bytes(b), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if opcode >= 0x8 && (len > 125 || !fin) {
        return Err(bad("invalid WebSocket control frame"));
    }
    Ok(Some((opcode, fin, len, header)))
}

fn bad(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_owned())
}

impl<S: AsyncWrite + Unpin> WsStream<S> {
    /// Writes `tx` to the socket until it is empty or the socket is full.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.tx.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.tx))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.tx.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            // Pong answers (and anything written but not flushed) go out first.
            if !this.tx.is_empty()
                && let Poll::Ready(Err(e)) = this.poll_drain(cx)
            {
                return Poll::Ready(Err(e));
            }
            let before = out.filled().len();
            this.decode(out)?;
            if out.filled().len() > before || out.remaining() == 0 || this.state == RxState::Closed
            {
                return Poll::Ready(Ok(()));
            }
            let chunk = if this.busy { READ_CHUNK } else { SMALL_READ };
            if this.rx.capacity() - this.rx.len() < chunk / 4 {
                this.rx.reserve(chunk);
            }
            let space = this.rx.capacity() - this.rx.len();
            let n = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut this.inner),
                cx,
                &mut this.rx
            ))?;
            this.busy = n == space;
            if n == 0 {
                return Poll::Ready(if this.rx.is_empty() && this.state == RxState::Header {
                    Ok(())
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                });
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.tx.len() >= WS_HIGH_WATER {
            ready!(this.poll_drain(cx))?;
        }
        this.frame_lines(buf);
        // Send at once when the socket takes it; what it does not stays for later.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unmasks the client frames in `wire`: (opcode, payload) each.
    fn client_frames(mut wire: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut frames = Vec::new();
        while !wire.is_empty() {
            assert_eq!(wire[0] & 0x80, 0x80, "FIN");
            assert_eq!(wire[1] & 0x80, 0x80, "masked");
            let (len, mut at) = match wire[1] & 0x7f {
                126 => (usize::from(u16::from_be_bytes([wire[2], wire[3]])), 4),
                127 => panic!("no frame here is that long"),
                n => (usize::from(n), 2),
            };
            let key = [wire[at], wire[at + 1], wire[at + 2], wire[at + 3]];
            at += 4;
            let payload = wire[at..at + len]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            frames.push((wire[0] & 0x0f, payload));
            wire = &wire[at + len..];
        }
        frames
    }

    fn server_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        if payload.len() < 126 {
            out.push(payload.len() as u8);
        } else {
            out.push(126);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn each_line_written_is_one_binary_message() {
        let mut ws = WsStream::new((), BytesMut::new());
        ws.frame_lines(b"NICK a\r\nUSER a 0 * :x\r\nPI");
        ws.frame_lines(b"NG :1\n\r\n");
        let long = vec![b'x'; 300];
        let mut line = b"PRIVMSG #c :".to_vec();
        line.extend_from_slice(&long);
        line.extend_from_slice(b"\r\n");
        ws.frame_lines(&line);
        let frames = client_frames(&ws.tx);
        let expected: Vec<(u8, Vec<u8>)> = vec![
            (2, b"NICK a".to_vec()),
            (2, b"USER a 0 * :x".to_vec()),
            (2, b"PING :1".to_vec()),
            (2, line[..line.len() - 2].to_vec()),
        ];
        assert_eq!(frames, expected);
        assert!(ws.partial.is_empty());
    }

    fn decode_all(ws: &mut WsStream<()>, space: usize) -> Vec<u8> {
        let mut got = Vec::new();
        loop {
            let mut storage = vec![0u8; space];
            let mut out = ReadBuf::new(&mut storage);
            ws.decode(&mut out).expect("valid frames");
            if out.filled().is_empty() {
                return got;
            }
            got.extend_from_slice(out.filled());
        }
    }

    #[test]
    fn each_message_read_is_one_line() {
        let mut wire = Vec::new();
        wire.extend(server_frame(0x2, true, b":s 001 a :hi"));
        wire.extend(server_frame(0x9, true, b"p")); // a ping between messages
        wire.extend(server_frame(0x1, false, b":s NOTICE a :"));
        wire.extend(server_frame(0x0, true, &[b'y'; 200]));
        let mut expected = b":s 001 a :hi\r\n:s NOTICE a :".to_vec();
        expected.extend_from_slice(&[b'y'; 200]);
        expected.extend_from_slice(b"\r\n");
        for space in [1, 3, 7, 4096] {
            // Fed whole, and one byte at a time.
            let mut ws = WsStream::new((), BytesMut::from(&wire[..]));
            assert_eq!(decode_all(&mut ws, space), expected, "space {space}");
            assert_eq!(client_frames(&ws.tx), vec![(0xa, b"p".to_vec())]);
            let mut ws = WsStream::new((), BytesMut::new());
            let mut got = Vec::new();
            for byte in &wire {
                ws.rx.extend_from_slice(&[*byte]);
                got.extend(decode_all(&mut ws, space));
            }
            assert_eq!(got, expected, "space {space}, byte by byte");
        }
    }

    #[test]
    fn a_close_frame_ends_the_stream() {
        let mut wire = server_frame(0x2, true, b"ERROR :bye");
        wire.extend(server_frame(0x8, true, &[0x03, 0xe8]));
        wire.extend(server_frame(0x2, true, b"after"));
        let mut ws = WsStream::new((), BytesMut::from(&wire[..]));
        assert_eq!(decode_all(&mut ws, 4096), b"ERROR :bye\r\n");
        assert_eq!(ws.state, RxState::Closed);
    }

    /// Against tungstenite's server side: the upgrade, the subprotocol, lines out as
    /// binary messages, messages in as lines, a ping answered.
    #[tokio::test]
    #[allow(clippy::result_large_err)] // the handshake callback's type is tungstenite's
    async fn talks_to_a_real_websocket_server() {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

        let (client, server) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move {
            let choose = |request: &Request, mut response: Response| {
                let offered = request.headers()["sec-websocket-protocol"].clone();
                assert_eq!(offered, SUBPROTOCOL);
                response
                    .headers_mut()
                    .insert("sec-websocket-protocol", offered);
                Ok(response)
            };
            let mut ws = tokio_tungstenite::accept_hdr_async(server, choose)
                .await
                .expect("upgrade");
            // Lines sent before the client reads anything arrive after the handshake.
            ws.send(Message::binary(&b":s 001 a :hi"[..]))
                .await
                .expect("send");
            ws.send(Message::Ping(b"p"[..].into())).await.expect("ping");
            ws.send(Message::text(":s PING :x")).await.expect("send");
            let mut got = Vec::new();
            while got.len() < 2 {
                match ws.next().await.expect("a message").expect("valid") {
                    Message::Binary(line) => got.push(line.to_vec()),
                    Message::Pong(p) => assert_eq!(&p[..], b"p"),
                    other => panic!("unexpected {other:?}"),
                }
            }
            got
        });
        let mut ws = WsStream::connect(client, "localhost:1")
            .await
            .expect("upgrade");
        let mut read = BytesMut::new();
        while !read.ends_with(b":s PING :x\r\n") {
            assert_ne!(ws.read_buf(&mut read).await.expect("read"), 0);
        }
        assert_eq!(&read[..], b":s 001 a :hi\r\n:s PING :x\r\n");
        write_flush(&mut ws, b"PONG :x\r\nPRIVMSG #c :two")
            .await
            .expect("write");
        write_flush(&mut ws, b" words\r\n").await.expect("write");
        let got = server.await.expect("server");
        assert_eq!(
            got,
            vec![b"PONG :x".to_vec(), b"PRIVMSG #c :two words".to_vec()]
        );
    }

    /// Over a real socket: `Stream::open` upgrades, and once asked the kernel's
    /// receive stamps of the socket's reads come through the WebSocket layer.
    #[tokio::test]
    async fn websocket_reads_carry_kernel_stamps() {
        use futures_util::SinkExt;
        use tokio_tungstenite::tungstenite::Message;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let (go_tx, mut go_rx) = tokio::sync::mpsc::channel::<()>(1);
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
            while go_rx.recv().await.is_some() {
                ws.send(Message::binary(&b"PING :x"[..]))
                    .await
                    .expect("send");
            }
        });
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let mut stream = Stream::open(tcp, addr, Transport::WebSocket)
            .await
            .expect("open");
        let stamps = stream
            .stamp_receives()
            .expect("stamps enabled")
            .expect("a cell for WebSocket");
        // The kernel turns stamping on for the whole system in the background the
        // first time a socket asks: what arrives just before that has no stamp.
        for _ in 0..100 {
            go_tx.send(()).await.expect("server alive");
            let mut read = BytesMut::new();
            while !read.ends_with(b"\r\n") {
                assert_ne!(stream.read_buf(&mut read).await.expect("read"), 0);
            }
            assert_eq!(&read[..], b"PING :x\r\n");
            if stamps.load(Ordering::Relaxed) > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos() as u64;
        let stamp = stamps.load(Ordering::Relaxed);
        assert!(
            stamp > 0 && stamp <= now && now - stamp < 10_000_000_000,
            "{stamp} vs {now}"
        );
        drop(go_tx);
        server.await.expect("server");
    }

    #[test]
    fn transport_names() {
        assert_eq!(Transport::new(false, false).name(), "plain");
        assert_eq!(Transport::new(true, false).name(), "tls");
        assert_eq!(Transport::new(false, true).name(), "websocket");
        assert_eq!(Transport::new(true, true).name(), "websocket+tls");
    }
}
