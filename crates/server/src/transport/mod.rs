//! The byte streams a client connection can arrive on, behind one type.
//!
//! Plain TCP, TLS and WebSocket (over either) all end up as a [`Transport`]: an
//! `AsyncRead + AsyncWrite` that the connection ([`crate::connection`]) reads lines
//! from and writes lines to, with the same framing, pacing, sendq and
//! one-write-per-pass rule whatever is underneath. What a transport is, is decided
//! once, when the connection opens ([`opening`]): the first bytes tell TLS
//! (`0x16`), an HTTP request (a browser page, a health check or a WebSocket
//! upgrade) and IRC apart, and the same again inside TLS.
//!
//! An enum rather than a boxed trait object: the plain TCP arm, which carries most
//! traffic, stays a direct call, and an idle connection costs no extra allocation.

pub(crate) mod client_hello;
pub(crate) mod http;
pub(crate) mod lean_tls;
pub(crate) mod opening;
pub(crate) mod tls;
pub(crate) mod websocket;

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A client's byte stream.
pub(crate) enum Transport {
    /// IRC over plain TCP.
    Tcp(TcpStream),
    /// IRC over TLS, on rustls's unbuffered API (boxed: the TLS state is about a
    /// kilobyte).
    Tls(Box<lean_tls::LeanTls>),
    /// IRC over WebSocket, over plain HTTP or TLS; one IRC line per message.
    WebSocket(Box<websocket::WebSocketTransport>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tcp(_) => "Transport::Tcp",
            Self::Tls(_) => "Transport::Tls",
            Self::WebSocket(_) => "Transport::WebSocket",
        })
    }
}

/// A connection whose transport is settled, ready to become a client.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) transport: Transport,
    /// The address the connection came from.
    pub(crate) ip: IpAddr,
    /// What the client's certificate and the transport say about it.
    pub(crate) security: Security,
    /// Bytes read while deciding what the stream is (inside TLS, where they cannot
    /// be peeked): the start of the client's first line.
    pub(crate) early_input: BytesMut,
}

/// How a connection is protected, for WHOIS (671, 276), `+z` channels and SASL
/// EXTERNAL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Security {
    /// The connection is encrypted (TLS, or WebSocket over TLS).
    pub(crate) tls: bool,
    /// The SHA-256 fingerprint of the client's certificate, lowercase hex without
    /// separators (as clients and other servers print it), if it sent one.
    pub(crate) certfp: Option<String>,
    /// The transport, as operators read it in logs: `plain`, `tls`, `websocket` or
    /// `websocket+tls`.
    pub(crate) kind: &'static str,
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
            Self::WebSocket(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
            Self::WebSocket(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    /// Plain TCP has nothing to flush; TLS records and WebSocket frames may wait in
    /// the transport's own buffer for the socket.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(_) => Poll::Ready(Ok(())),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
            Self::WebSocket(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
            Self::WebSocket(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A stream with bytes already read from it put back in front: what was read to
/// decide between HTTP and IRC inside TLS is then read again by the HTTP server.
pub(crate) struct Prefixed<S> {
    prefix: BytesMut,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(prefix: BytesMut, inner: S) -> Self {
        Self { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
