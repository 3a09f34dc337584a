//! The framer never panics, never holds more than one maximal line plus one read, and
//! frames a stream the same way however it is cut into reads.
//!
//! The first byte picks the size of small reads (1 to 256 bytes), also tried mixed with
//! large ones; the second repeats the rest 1 to 64 times to make the stream, so short
//! inputs reach lines over the limits too.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use palaver_proto::framing::{Frame, LineFramer, MAX_FRAME_LEN, fits_limits};

fn frame(input: &[u8], reads: &[usize]) -> Vec<Frame> {
    let mut framer = LineFramer::new();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut sizes = reads.iter().cycle();
    let mut rest = input;
    while !rest.is_empty() {
        let size = sizes.next().copied().unwrap_or(1).min(rest.len());
        let (read, tail) = rest.split_at(size);
        rest = tail;
        assert!(
            buf.len() <= MAX_FRAME_LEN,
            "{} bytes held between reads",
            buf.len()
        );
        buf.extend_from_slice(read);
        while let Some(frame) = framer.next_frame(&mut buf) {
            if let Frame::Line(line) = &frame {
                assert!(!line.is_empty());
                assert!(!line.iter().any(|&b| b == b'\r' || b == b'\n'));
                assert!(fits_limits(line));
            }
            frames.push(frame);
        }
        assert!(buf.len() <= MAX_FRAME_LEN + size);
    }
    frames
}

fuzz_target!(|data: &[u8]| {
    let [first, second, rest @ ..] = data else {
        return;
    };
    let small = usize::from(*first) + 1;
    let mut stream = rest.repeat(usize::from(*second % 64) + 1);
    // Enough for a few maximal lines; more only slows the fuzzer down.
    stream.truncate(2 * MAX_FRAME_LEN + 1024);
    let stream = &stream[..];
    let in_small_reads = frame(stream, &[small]);
    let in_mixed_reads = frame(stream, &[small, 4096, 1]);
    let at_once = frame(stream, &[stream.len().max(1)]);
    assert_eq!(in_small_reads, at_once);
    assert_eq!(in_mixed_reads, at_once);
});
