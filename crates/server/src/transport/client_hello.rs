//! Choosing a TLS connection's configuration from its ClientHello, left unread.
//!
//! IRC clients are asked for a certificate and browsers are not, so the
//! configuration depends on the ClientHello (ALPN `http/1.1` means a browser).
//! tokio-rustls reads the ClientHello with rustls's `Acceptor` and goes on with
//! the same bytes; rustls's unbuffered API, which IRC connections use
//! ([`super::lean_tls`]), has no such step. So the ClientHello is peeked at (the
//! bytes stay in the socket), parsed with an `Acceptor` of its own, and the
//! connection made with the chosen configuration then reads it as if nothing
//! had looked. A browser's connection goes to tokio-rustls, which reads it again.

use std::io;
use std::time::Duration;

use rustls::server::Acceptor;
use tokio::net::TcpStream;

use super::tls::is_browser;

/// Most bytes a ClientHello may take: a few records. Real ones fit in one (a few
/// hundred bytes to 2 KB with post-quantum key shares).
const MOST_HELLO_BYTES: usize = 4 * (5 + (1 << 14));
/// Pause between two peeks that found no new bytes (a ClientHello split across
/// packets).
const PEEK_PAUSE: Duration = Duration::from_millis(5);

/// Who is on the other end of a TLS connection, by its ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    /// A browser (ALPN `http/1.1`): HTTP or WebSocket, no client certificate.
    Browser,
    /// Anyone else: IRC, asked for a client certificate.
    Irc,
}

/// Peeks at `stream` until its ClientHello is complete, and says who sent it. A
/// malformed ClientHello is an error (the connection is dropped).
pub(crate) async fn peek(stream: &TcpStream) -> io::Result<Peer> {
    let mut buf = vec![0; MOST_HELLO_BYTES];
    let mut seen = 0;
    loop {
        let peeked = stream.peek(&mut buf).await?;
        if peeked == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if peeked > seen {
            if let Some(peer) = parse(&buf[..peeked])? {
                return Ok(peer);
            }
            if peeked == buf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "ClientHello too large",
                ));
            }
        } else {
            // A peek returns at once while the same bytes wait: pause before
            // looking again rather than spin.
            tokio::time::sleep(PEEK_PAUSE).await;
        }
        seen = peeked;
    }
}

/// Who sent the ClientHello at the start of `bytes`, or `None` if it is not
/// complete yet.
fn parse(mut bytes: &[u8]) -> io::Result<Option<Peer>> {
    let mut acceptor = Acceptor::default();
    while !bytes.is_empty() {
        if acceptor.read_tls(&mut bytes)? == 0 {
            break;
        }
    }
    match acceptor.accept() {
        Ok(Some(accepted)) => Ok(Some(if is_browser(&accepted.client_hello()) {
            Peer::Browser
        } else {
            Peer::Irc
        })),
        Ok(None) => Ok(None),
        Err((error, _alert)) => Err(io::Error::new(io::ErrorKind::InvalidData, error)),
    }
}
