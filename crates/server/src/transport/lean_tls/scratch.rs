//! Buffers the TLS connections of one thread share for the bytes in flight.
//!
//! Received TLS records are read from the socket into a buffer of the thread's and
//! decrypted from there; records are encrypted into another one and written from
//! there. A connection copies into buffers of its own only what the socket left
//! over: a partial record (the rest has not arrived) or encrypted bytes the socket
//! did not take. Most of the time there is neither, so an idle connection holds no
//! buffer at all, as a plain TCP connection reads into the driver's scratch buffer
//! and keeps nothing.
//!
//! The buffers are thread-local rather than lent by the driver because the
//! connection is read and written through `AsyncRead`/`AsyncWrite` (the same
//! interface for every transport), and the handshake runs in the opening task on
//! the same threads. They are borrowed only inside one synchronous poll, never
//! across an `.await`; a nested borrow (which nothing does) gets a fresh buffer
//! rather than a panic.

use std::cell::RefCell;

/// The largest TLS record on the wire: a 5-byte header and up to 2^14 bytes of
/// plaintext, plus the most a TLS 1.2 cipher may add (TLS 1.3 allows only 256).
pub(super) const MAX_RECORD: usize = 5 + (1 << 14) + 2048;

/// Room each socket read gets after the partial record already held: at least a
/// whole record, so a record split anywhere completes with the next read.
pub(super) const READ_ROOM: usize = 2 * MAX_RECORD;

/// Room the encryption buffer starts with: a driver write (64 KiB of lines) in
/// records, with their headers and tags.
const WRITE_ROOM: usize = 64 * 1024 + 8 * 64;

thread_local! {
    static INCOMING: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static OUTGOING: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Calls `f` with the thread's receive buffer, zero-filled and at least `len`
/// bytes long (kept initialized, so socket reads can go into it as a slice).
pub(super) fn with_incoming<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    with(&INCOMING, len.max(READ_ROOM), f)
}

/// Calls `f` with the thread's encryption buffer, at least `len` bytes long.
pub(super) fn with_outgoing<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    with(&OUTGOING, len.max(WRITE_ROOM), f)
}

fn with<R>(
    key: &'static std::thread::LocalKey<RefCell<Vec<u8>>>,
    len: usize,
    f: impl FnOnce(&mut [u8]) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0);
            }
            f(&mut buf[..])
        }
        Err(_) => f(&mut vec![0; len]),
    })
}
