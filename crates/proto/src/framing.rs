//! Splitting a byte stream into IRC lines, with the length limit enforced *before*
//! anything is buffered beyond it.
//!
//! A line ends at CR, LF or CRLF; empty lines are skipped (RFC 1459 allows a client to
//! send bare `\n`, and some send `\r\n\r\n`). A line whose tag section exceeds
//! [`MAX_TAGS_LEN`] or whose body exceeds [`MAX_LINE_BODY`] is discarded up to its end
//! and reported once as [`Frame::TooLong`], so the caller can answer
//! `417 ERR_INPUTTOOLONG` and keep the connection: the buffer never holds more than
//! one maximal line plus one read.

use bytes::{Buf, BytesMut};

use crate::{MAX_LINE_BODY, MAX_TAGS_LEN};

/// Most bytes one line may occupy in the buffer, tags and CRLF included.
pub const MAX_FRAME_LEN: usize = MAX_TAGS_LEN + MAX_LINE_BODY;

/// One result of framing: a whole line, or the news that a line was too long.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete line without its terminator. Never empty.
    Line(BytesMut),
    /// A line over the limits was discarded (answer with ERR_INPUTTOOLONG).
    TooLong,
}

/// Incremental line splitter. It remembers how far it has already searched the buffer
/// for a line end, so a line trickling in byte by byte is scanned once, not once per
/// read; the caller must therefore only append to the buffer between calls.
#[derive(Debug, Default)]
pub struct LineFramer {
    discarding: bool,
    /// Bytes at the start of the buffer already known to hold no line end. A `u32`
    /// keeps the framer at 8 bytes in every connection; a buffer is never near 4 GiB,
    /// and a larger one would only be scanned again.
    scanned: u32,
}

impl LineFramer {
    /// A framer at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next complete frame out of `buf`, or returns `None` when more bytes are
    /// needed. Bytes of an oversize line are dropped as they arrive, so `buf` stays
    /// bounded by [`MAX_FRAME_LEN`] plus what the caller reads at once.
    pub fn next_frame(&mut self, buf: &mut BytesMut) -> Option<Frame> {
        loop {
            let from = (self.scanned as usize).min(buf.len());
            let Some(offset) = memchr::memchr2(b'\n', b'\r', &buf[from..]) else {
                self.scanned = u32::try_from(buf.len()).unwrap_or(0);
                if buf.len() > MAX_FRAME_LEN {
                    self.discarding = true;
                }
                if self.discarding {
                    buf.clear();
                    self.scanned = 0;
                }
                return None;
            };
            self.scanned = 0;
            let line = buf.split_to(from + offset);
            buf.advance(1);
            if self.discarding {
                self.discarding = false;
                return Some(Frame::TooLong);
            }
            if line.is_empty() {
                continue;
            }
            return Some(if fits_limits(&line) {
                Frame::Line(line)
            } else {
                Frame::TooLong
            });
        }
    }
}

/// Whether a line (without terminator) respects both parts of the IRC length limit.
pub fn fits_limits(line: &[u8]) -> bool {
    let body = if line.first() == Some(&b'@') {
        match memchr::memchr(b' ', line) {
            // The tag section counts its '@' and the separating space.
            Some(space) if space < MAX_TAGS_LEN => &line[space + 1..],
            Some(_) => return false,
            None => return line.len() < MAX_TAGS_LEN,
        }
    } else {
        line
    };
    body.len() + 2 <= MAX_LINE_BODY
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8]) -> Vec<Frame> {
        let mut framer = LineFramer::new();
        let mut buf = BytesMut::from(input);
        std::iter::from_fn(|| framer.next_frame(&mut buf)).collect()
    }

    fn line(s: &str) -> Frame {
        Frame::Line(BytesMut::from(s))
    }

    #[test]
    fn splits_on_crlf_lf_and_cr_and_skips_empty_lines() {
        assert_eq!(
            frames(b"A\r\nB\nC\r\r\n\nD"),
            vec![line("A"), line("B"), line("C")]
        );
    }

    #[test]
    fn body_limit_counts_crlf() {
        let ok = "a".repeat(510);
        let long = "a".repeat(511);
        let input = format!("{ok}\r\n{long}\r\nPING x\r\n");
        assert_eq!(
            frames(input.as_bytes()),
            vec![line(&ok), Frame::TooLong, line("PING x")]
        );
    }

    #[test]
    fn tags_have_their_own_allowance() {
        let tags = format!("@{}", "t".repeat(8000));
        let input = format!("{tags} {}\r\n", "b".repeat(500));
        assert_eq!(frames(input.as_bytes()).len(), 1);
        assert!(matches!(frames(input.as_bytes())[0], Frame::Line(_)));
        let too_many_tags = format!("@{} PING\r\n", "t".repeat(8200));
        assert_eq!(frames(too_many_tags.as_bytes()), vec![Frame::TooLong]);
    }

    #[test]
    fn an_endless_line_is_discarded_as_it_arrives() {
        let mut framer = LineFramer::new();
        let mut buf = BytesMut::new();
        for _ in 0..100 {
            buf.extend_from_slice(&[b'x'; 4096]);
            assert_eq!(framer.next_frame(&mut buf), None);
            assert!(buf.len() <= MAX_FRAME_LEN + 4096);
        }
        buf.extend_from_slice(b"tail\r\nPING ok\r\n");
        assert_eq!(framer.next_frame(&mut buf), Some(Frame::TooLong));
        assert_eq!(framer.next_frame(&mut buf), Some(line("PING ok")));
    }
}
