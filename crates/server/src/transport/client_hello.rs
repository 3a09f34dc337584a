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
const MOST_HELLO_BYTES: usize = 4 * (RECORD_HEADER + MOST_RECORD_BODY);
/// A TLS record's header: type, version, length.
const RECORD_HEADER: usize = 5;
/// The longest record body a ClientHello may come in (2^14 bytes of plaintext).
const MOST_RECORD_BODY: usize = 1 << 14;
/// What the peek buffer starts at; it doubles when a ClientHello needs more.
const FIRST_PEEK: usize = 512;
/// Pauses between two peeks that found no new bytes (a ClientHello split across
/// packets, or a client that stopped): from the first to the last, doubling, so
/// a stalled connection costs a few wake-ups a second until the registration
/// timeout drops it.
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const LAST_PAUSE: Duration = Duration::from_millis(250);

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
///
/// The bytes are parsed only when a record is complete, so a client sending its
/// ClientHello a byte at a time does not have it parsed once per byte, and the
/// buffer grows with what arrives rather than being reserved for the largest.
pub(crate) async fn peek(stream: &TcpStream) -> io::Result<Peer> {
    let mut buf = vec![0; FIRST_PEEK];
    let mut seen = 0;
    let mut parsed_records = 0;
    let mut pause = FIRST_PAUSE;
    loop {
        let peeked = stream.peek(&mut buf).await?;
        if peeked == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let records = complete_records(&buf[..peeked])?;
        if records > parsed_records {
            parsed_records = records;
            if let Some(peer) = parse(&buf[..peeked])? {
                return Ok(peer);
            }
        }
        if peeked == buf.len() {
            if buf.len() >= MOST_HELLO_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "ClientHello too large",
                ));
            }
            buf.resize((buf.len() * 2).min(MOST_HELLO_BYTES), 0);
        } else if peeked > seen {
            pause = FIRST_PAUSE;
        } else {
            // A peek returns at once while the same bytes wait: pause before
            // looking again rather than spin.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LAST_PAUSE);
        }
        seen = peeked;
    }
}

/// How many whole TLS records `bytes` starts with; an error for a record longer
/// than a ClientHello's may be.
fn complete_records(bytes: &[u8]) -> io::Result<usize> {
    let mut at = 0;
    let mut records = 0;
    while let Some(header) = bytes.get(at..at + RECORD_HEADER) {
        let body = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if body > MOST_RECORD_BODY {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "TLS record too long for a ClientHello",
            ));
        }
        at += RECORD_HEADER + body;
        if at > bytes.len() {
            break;
        }
        records += 1;
    }
    Ok(records)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_counted_once_whole() {
        let record = [0x16, 0x03, 0x01, 0x00, 0x03, 1, 2, 3];
        assert_eq!(complete_records(&record[..4]).ok(), Some(0));
        assert_eq!(complete_records(&record[..7]).ok(), Some(0));
        assert_eq!(complete_records(&record).ok(), Some(1));
        let two: Vec<u8> = record.iter().chain(&record[..6]).copied().collect();
        assert_eq!(complete_records(&two).ok(), Some(1));
        assert!(complete_records(&[0x16, 0x03, 0x01, 0xff, 0xff]).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_wait() {
        // A handshake record holding an empty ServerHello, not a ClientHello.
        assert!(parse(&[0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0, 0, 0]).is_err());
        // Part of a ClientHello: more is needed.
        assert!(matches!(
            parse(&[0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0, 1, 0]),
            Ok(None)
        ));
    }
}
