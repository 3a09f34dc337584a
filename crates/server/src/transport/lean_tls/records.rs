//! Answering rustls's unbuffered API: what each [`ConnectionState`] asks for.
//!
//! `process_tls_records` looks at the received bytes it is given and says what it
//! needs next: decrypted data to take ([`ConnectionState::ReadTraffic`]), TLS
//! messages of its own to send (handshake flights, session tickets, alerts:
//! [`ConnectionState::EncodeTlsData`], then [`ConnectionState::TransmitTlsData`]),
//! more bytes from the peer ([`ConnectionState::BlockedHandshake`], or
//! [`ConnectionState::WriteTraffic`] once the handshake is done), or that the
//! peer closed. [`process`] answers all of them until rustls needs bytes that have
//! not arrived, so the reading, writing and handshake code above it only ever sees
//! "here is what was decrypted, here is what to send".

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, InsufficientSizeError, UnbufferedStatus};
use tokio::io::ReadBuf;

/// What a connection holds between polls. Every buffer is empty, without an
/// allocation, while the connection is idle.
#[derive(Debug, Default)]
pub(super) struct Held {
    /// Decrypted bytes no reader has taken yet, from `plaintext_start`: data that
    /// arrived with the handshake, or more than the reader's buffer had room for.
    plaintext: Vec<u8>,
    plaintext_start: usize,
    /// TLS bytes the socket has not taken yet, from `outgoing_start`.
    pub(super) outgoing: Vec<u8>,
    pub(super) outgoing_start: usize,
    /// The peer sent close_notify: nothing more will come from it.
    pub(super) peer_closed: bool,
}

impl Held {
    /// Gives `payload` to `reader` as far as it has room (and nothing older
    /// waits), and keeps the rest.
    fn deliver(&mut self, payload: &[u8], reader: Option<&mut ReadBuf<'_>>) {
        let taken = match reader {
            Some(buf) if self.plaintext.is_empty() => {
                let n = payload.len().min(buf.remaining());
                buf.put_slice(&payload[..n]);
                n
            }
            _ => 0,
        };
        if taken < payload.len() {
            self.plaintext.extend_from_slice(&payload[taken..]);
        }
    }

    /// Moves kept plaintext into `reader`; returns whether there was any. The
    /// buffer is freed once it is all taken.
    pub(super) fn take_plaintext(&mut self, reader: &mut ReadBuf<'_>) -> bool {
        let waiting = &self.plaintext[self.plaintext_start..];
        if waiting.is_empty() {
            return false;
        }
        let n = waiting.len().min(reader.remaining());
        reader.put_slice(&waiting[..n]);
        self.plaintext_start += n;
        if self.plaintext_start == self.plaintext.len() {
            self.plaintext = Vec::new();
            self.plaintext_start = 0;
        }
        true
    }

    /// Whether decrypted bytes wait for a reader.
    pub(super) fn has_plaintext(&self) -> bool {
        self.plaintext_start < self.plaintext.len()
    }

    /// Whether TLS bytes wait for the socket.
    pub(super) fn has_outgoing(&self) -> bool {
        self.outgoing_start < self.outgoing.len()
    }

    /// Forgets the TLS bytes the socket took; frees the buffer once all are sent.
    pub(super) fn sent(&mut self, n: usize) {
        self.outgoing_start += n;
        if self.outgoing_start >= self.outgoing.len() {
            self.outgoing = Vec::new();
            self.outgoing_start = 0;
        }
    }
}

/// Lets rustls act on `incoming` (received TLS bytes, starting with whatever it
/// left unprocessed last time) until it needs more. Decrypted data goes to
/// `reader` (or is kept in `held`), TLS messages rustls wants sent are queued in
/// `held.outgoing`. Returns how many bytes of `incoming` are done with: the
/// caller keeps the rest (a record not yet complete) and puts it in front of the
/// next bytes received.
pub(super) fn process(
    session: &mut UnbufferedServerConnection,
    incoming: &mut [u8],
    held: &mut Held,
    mut reader: Option<&mut ReadBuf<'_>>,
) -> Result<usize, rustls::Error> {
    let mut consumed = 0;
    loop {
        // rustls never asks to discard more than it was given; should it, the
        // connection ends rather than the slice panicking.
        let Some(rest) = incoming.get_mut(consumed..) else {
            return Err(rustls::Error::General(
                "TLS records discarded past the received bytes".to_owned(),
            ));
        };
        let UnbufferedStatus { mut discard, state } = session.process_tls_records(rest);
        let more = match state? {
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    let record = record?;
                    discard += record.discard;
                    held.deliver(record.payload, reader.as_deref_mut());
                }
                true
            }
            // Never offered (the configuration accepts no early data); taken as
            // ordinary data should rustls ever give it.
            ConnectionState::ReadEarlyData(mut early) => {
                while let Some(record) = early.next_record() {
                    let record = record?;
                    discard += record.discard;
                    held.deliver(record.payload, reader.as_deref_mut());
                }
                true
            }
            ConnectionState::EncodeTlsData(mut encode) => {
                append(
                    &mut held.outgoing,
                    512,
                    |out| encode.encode(out),
                    |e| match e {
                        EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => {
                            Some(*required_size)
                        }
                        _ => None,
                    },
                )
                .map_err(|e| rustls::Error::General(e.to_string()))?;
                true
            }
            // The encoded bytes are queued in order behind everything encoded
            // before them, so they count as sent: later bytes can only follow them.
            ConnectionState::TransmitTlsData(transmit) => {
                transmit.done();
                true
            }
            ConnectionState::PeerClosed => {
                held.peer_closed = true;
                true
            }
            ConnectionState::Closed => {
                held.peer_closed = true;
                false
            }
            // Waiting for the peer (during or after the handshake), or a state a
            // later rustls adds: nothing more to do with what has arrived.
            _ => false,
        };
        consumed += discard;
        if !more {
            return Ok(consumed);
        }
    }
}

/// Appends what `write` puts into a slice to `out`: first with `room` bytes, then
/// with as many as its error says it needs (`needed`); other errors are returned
/// with `out` as it was.
pub(super) fn append<E>(
    out: &mut Vec<u8>,
    mut room: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, E>,
    needed: impl Fn(&E) -> Option<usize>,
) -> Result<(), E> {
    let start = out.len();
    loop {
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(error) => match needed(&error) {
                Some(required) if required > room => room = required,
                _ => {
                    out.truncate(start);
                    return Err(error);
                }
            },
        }
    }
}
