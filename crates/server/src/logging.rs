//! Log and status output that can never take the server down.
//!
//! The server's log goes to stderr, and its status lines (the address it listens
//! on, "palaver stopped") to stdout; both are often pipes (`chat-server … 2>&1 | tee
//! log`, a supervisor). When the reader of such a pipe goes away, every write fails
//! with `EPIPE`. Rust's `println!`/`eprintln!` panic on a failed write, and
//! tracing-subscriber's fmt layer reports its own write errors with `eprintln!`, so a
//! lost log reader used to panic whichever thread logged next: a connection thread,
//! taking thousands of connections with it.
//!
//! Here, failed writes are ignored and counted instead ([`WRITE_ERRORS`]): logging is
//! best effort, serving clients is not. The binary installs [`Stderr`] as the fmt
//! layer's writer (with `log_internal_errors(false)`) and prints its status lines
//! with [`print_stdout`] / [`print_stderr`].

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes of log or status output that failed and were dropped since the process
/// started (one per log event or status line).
///
/// Why a counter and not a log line: the log is what failed. The binary reports the
/// count when it stops, on whichever of stderr and stdout still works, and a later
/// metrics endpoint can export it.
pub static WRITE_ERRORS: AtomicU64 = AtomicU64::new(0);

/// How many writes of log or status output have failed so far (see [`WRITE_ERRORS`]).
pub fn write_errors() -> u64 {
    WRITE_ERRORS.load(Ordering::Relaxed)
}

/// A `MakeWriter` for tracing-subscriber's fmt layer: the process's stderr, where a
/// failed write is counted in [`WRITE_ERRORS`] and otherwise ignored, so that losing
/// the log reader never panics the thread that logged.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Self::Writer {
        Stderr
    }
}

impl Write for Stderr {
    /// Writes all of `buf` or nothing that matters: the fmt layer hands over one
    /// formatted event per call, so one failure counts one lost event.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if io::stderr().lock().write_all(buf).is_err() {
            WRITE_ERRORS.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // stderr is unbuffered; a failure here would already have been counted.
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// `println!` that cannot panic: a failed write is counted in [`WRITE_ERRORS`].
/// Returns whether the line was written.
pub fn print_stdout(line: fmt::Arguments<'_>) -> bool {
    let mut out = io::stdout().lock();
    let written = writeln!(out, "{line}").and_then(|()| out.flush());
    count(written)
}

/// `eprintln!` that cannot panic: a failed write is counted in [`WRITE_ERRORS`].
/// Returns whether the line was written.
pub fn print_stderr(line: fmt::Arguments<'_>) -> bool {
    let mut err = io::stderr().lock();
    count(writeln!(err, "{line}"))
}

fn count(written: io::Result<()>) -> bool {
    let ok = written.is_ok();
    if !ok {
        WRITE_ERRORS.fetch_add(1, Ordering::Relaxed);
    }
    ok
}
