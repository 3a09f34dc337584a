//! Opening a connection: what its first bytes say it is.
//!
//! One port serves everything. The first byte `0x16` is a TLS handshake; a first
//! word that is an HTTP method is a browser, a health check or a WebSocket upgrade
//! ([`super::http`]); anything else is IRC. Inside TLS the same question is asked
//! again: ALPN `http/1.1` means HTTP, otherwise the first decrypted bytes decide.
//!
//! Deciding takes a peek at the socket (nothing is consumed, so an IRC connection's
//! first line is read by the connection as usual); inside TLS, where peeking is not
//! possible, the bytes read to decide are handed over with the connection. All of
//! it (and a TLS handshake) must be done within the registration timeout: a
//! connection that sends nothing is dropped when it runs out.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::client_hello::{self, Peer};
use super::lean_tls::LeanTls;
use super::tls::ServerTls;
use super::{Opened, Security, Transport};
use crate::config::Config;
use crate::metrics::Status;

/// Receives the connection once its transport is settled (it becomes a client on
/// the driver that called [`open`]). Dropped unused if the connection ends first,
/// which frees whatever it holds (the admission ticket).
pub(crate) type Handoff = Box<dyn FnOnce(Opened) + Send>;

/// What a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListenMode {
    /// IRC, TLS and HTTP, told apart by their first bytes (the default).
    #[default]
    Auto,
    /// TLS only (IRC or HTTP inside it), as on port 6697 or 443.
    Tls,
    /// Plain IRC only, nothing sniffed (a port for clients or bouncers that must
    /// not be second-guessed).
    Plain,
}

/// Most bytes looked at to decide: enough for the longest HTTP method and a space.
const SNIFF_BYTES: usize = 8;
/// Pause between two peeks that found too few bytes to decide (a client typing by
/// hand, or a request split across packets).
const PEEK_PAUSE: Duration = Duration::from_millis(5);

/// Said to a connection that sent nothing before the registration timeout.
const REGISTRATION_TIMED_OUT: &[u8] = b"ERROR :Registration timed out\r\n";

/// What the first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tls,
    Http,
    Irc,
}

/// Settles what `stream` is and hands it over (IRC, also WebSocket) or serves it
/// here (HTTP requests). Logs and drops a connection that fails or runs out of time.
pub(crate) async fn open(
    stream: TcpStream,
    ip: IpAddr,
    mode: ListenMode,
    config: Arc<Config>,
    status: Arc<dyn Status>,
    handoff: Handoff,
) {
    let deadline = Instant::now() + config.limits.registration_timeout;
    let plain = Security {
        tls: false,
        certfp: None,
        kind: "plain",
    };
    if mode == ListenMode::Plain {
        return handoff(opened(Transport::Tcp(stream), ip, plain, BytesMut::new()));
    }
    let kind = match within(deadline, ip, "the first bytes", peek_kind(&stream)).await {
        Ok(kind) => kind,
        Err(Missed::Late) => {
            // Most likely someone at a terminal (nc, telnet) who does not know to
            // speak first: told in IRC's words, as a registered-too-late client is.
            let _ = stream.try_write(REGISTRATION_TIMED_OUT);
            return;
        }
        Err(Missed::Failed) => return,
    };
    match (kind, mode) {
        (Kind::Tls, _) => {
            let Some(tls) = config.tls.clone() else {
                tracing::debug!(peer = %ip, "TLS handshake refused: TLS is off");
                return;
            };
            open_tls(stream, ip, &tls, deadline, config, status, handoff).await;
        }
        (_, ListenMode::Tls) => {
            tracing::debug!(peer = %ip, "plain connection refused on a TLS-only listener");
        }
        (Kind::Http, _) => super::http::serve(stream, ip, plain, config, status, handoff).await,
        (Kind::Irc, _) => handoff(opened(Transport::Tcp(stream), ip, plain, BytesMut::new())),
    }
}

async fn open_tls(
    stream: TcpStream,
    ip: IpAddr,
    tls: &ServerTls,
    deadline: Instant,
    config: Arc<Config>,
    status: Arc<dyn Status>,
    handoff: Handoff,
) {
    let Ok(peer) = within(deadline, ip, "the ClientHello", client_hello::peek(&stream)).await
    else {
        return;
    };
    match peer {
        Peer::Browser => open_browser(stream, ip, tls, deadline, config, status, handoff).await,
        Peer::Irc => open_irc(stream, ip, tls, deadline, config, status, handoff).await,
    }
}

/// What a TLS connection tells the rest of the server: that it is encrypted, and
/// the fingerprint of the client's certificate if it showed one (WHOIS, SASL
/// EXTERNAL).
fn tls_security(chain: Option<&[rustls_pki_types::CertificateDer<'_>]>) -> Security {
    Security {
        tls: true,
        certfp: chain
            .and_then(|chain| chain.first())
            .map(palaver_tls::certfp),
        kind: "tls",
    }
}

/// A browser (ALPN `http/1.1`) on tokio-rustls: HTTP, or WebSocket over TLS.
/// Browsers are few next to IRC clients, so their connections are not made lean.
async fn open_browser(
    stream: TcpStream,
    ip: IpAddr,
    tls: &ServerTls,
    deadline: Instant,
    config: Arc<Config>,
    status: Arc<dyn Status>,
    handoff: Handoff,
) {
    let handshake = async {
        let start =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream)
                .await?;
        let server_config = tls.config_for(&start.client_hello());
        start.into_stream(server_config).await
    };
    let Ok(stream) = within(deadline, ip, "the TLS handshake", handshake).await else {
        return;
    };
    let security = tls_security(stream.get_ref().1.peer_certificates());
    super::http::serve(stream, ip, security, config, status, handoff).await;
}

/// An IRC client (or anything but a browser) on rustls's unbuffered API
/// ([`super::lean_tls`]); HTTP without ALPN inside it is still served.
async fn open_irc(
    stream: TcpStream,
    ip: IpAddr,
    tls: &ServerTls,
    deadline: Instant,
    config: Arc<Config>,
    status: Arc<dyn Status>,
    handoff: Handoff,
) {
    let mut stream = match LeanTls::new(stream, tls.irc_config()) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::warn!(peer = %ip, %error, "cannot start a TLS connection");
            return;
        }
    };
    if within(deadline, ip, "the TLS handshake", stream.handshake())
        .await
        .is_err()
    {
        return;
    }
    let security = tls_security(stream.session().peer_certificates());
    let mut early = BytesMut::with_capacity(SNIFF_BYTES);
    let kind = loop {
        match classify(&early) {
            Some(kind) => break kind,
            None => {
                let read = stream.read_buf(&mut early);
                if let Ok(0) | Err(_) =
                    within(deadline, ip, "the first bytes inside TLS", read).await
                {
                    return;
                }
            }
        }
    };
    match kind {
        Kind::Http => {
            let stream = super::Prefixed::new(early, stream);
            super::http::serve(stream, ip, security, config, status, handoff).await;
        }
        // A second handshake inside the first is not something anyone does.
        Kind::Tls => tracing::debug!(peer = %ip, "TLS inside TLS refused"),
        Kind::Irc => handoff(opened(
            Transport::Tls(Box::new(stream)),
            ip,
            security,
            early,
        )),
    }
}

/// Why an opening step did not give its result.
enum Missed {
    /// The connection failed (or closed) first.
    Failed,
    /// The registration timeout ran out first.
    Late,
}

/// `step`'s result if it succeeds before `deadline`; otherwise says (in the debug
/// log) which step of the opening did not finish, and why.
async fn within<T, E: std::fmt::Display>(
    deadline: Instant,
    ip: IpAddr,
    step_name: &str,
    step: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, Missed> {
    match timeout_at(deadline, step).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => {
            tracing::debug!(peer = %ip, %error, "connection failed during {step_name}");
            Err(Missed::Failed)
        }
        Err(_) => {
            tracing::debug!(peer = %ip, "connection did not finish {step_name} in time");
            Err(Missed::Late)
        }
    }
}

fn opened(transport: Transport, ip: IpAddr, security: Security, early_input: BytesMut) -> Opened {
    Opened {
        transport,
        ip,
        security,
        early_input,
    }
}

/// Peeks at the socket until its first bytes decide.
async fn peek_kind(stream: &TcpStream) -> std::io::Result<Kind> {
    let mut buf = [0u8; SNIFF_BYTES];
    let mut seen = 0;
    loop {
        let peeked = stream.peek(&mut buf).await?;
        if peeked == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(kind) = classify(&buf[..peeked]) {
            return Ok(kind);
        }
        // A peek returns at once while the same bytes wait: pause before looking
        // again rather than spin.
        if peeked == seen {
            tokio::time::sleep(PEEK_PAUSE).await;
        }
        seen = peeked;
    }
}

/// The HTTP methods a first line may start with.
const HTTP_METHODS: [&[u8]; 7] = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
];

/// What `start` (the first bytes of a stream) is, or `None` if more bytes are
/// needed to tell.
fn classify(start: &[u8]) -> Option<Kind> {
    let first = *start.first()?;
    if first == 0x16 {
        return Some(Kind::Tls);
    }
    let mut undecided = false;
    for method in HTTP_METHODS {
        let n = start.len().min(method.len());
        if start[..n] == method[..n] {
            if n == method.len() {
                return Some(Kind::Http);
            }
            undecided = true;
        }
    }
    // A line that ends before it could be a method is IRC (a bare "PING\r\n").
    let ended = memchr::memchr2(b'\r', b'\n', start).is_some();
    if undecided && !ended && start.len() < SNIFF_BYTES {
        return None;
    }
    Some(Kind::Irc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_decide() {
        assert_eq!(classify(b"\x16\x03\x01"), Some(Kind::Tls));
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Kind::Http));
        assert_eq!(classify(b"OPTIONS * HTTP/1.1"), Some(Kind::Http));
        assert_eq!(classify(b"CAP LS 302\r\n"), Some(Kind::Irc));
        assert_eq!(classify(b"NICK a\r\n"), Some(Kind::Irc));
        // PASS, PING and POST share a first letter: wait until they part.
        assert_eq!(classify(b"P"), None);
        assert_eq!(classify(b"PO"), None);
        assert_eq!(classify(b"PA"), None);
        assert_eq!(classify(b"PAS"), Some(Kind::Irc));
        assert_eq!(classify(b"POST "), Some(Kind::Http));
        assert_eq!(classify(b"PUT\r\n"), Some(Kind::Irc));
        assert_eq!(classify(b"GETX"), Some(Kind::Irc));
        assert_eq!(classify(b""), None);
    }
}
