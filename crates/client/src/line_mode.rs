//! Plain line mode, for pipes and scripts: each input line goes to the current
//! buffer, each conversation line comes out as `[HH:MM] <nick> text`.
//!
//! Input is read only once the client is [`Change::Ready`] (registered and in its
//! channels), and only while nothing is waiting to be sent, so `printf 'hi\n' |
//! chat-client ...` delivers its line to the channel, and a large file is fed at the
//! pace the connection sends, never buffered whole. At end of input the client sends
//! QUIT and waits (briefly) for the server to close, which proves everything before
//! it was processed.
//!
//! Conversation (messages, actions, notices, joins and parts) goes to `out`; errors,
//! hints and connection trouble go to `err`; server chatter such as the MOTD only to
//! the log. Lines for a buffer other than the current one are prefixed with
//! `[name] `. Our own messages are not echoed: the input already shows them.

use std::io::{self, Write};
use std::time::Duration;

use tokio::io::{AsyncBufRead, Lines};
use tokio::time::{Instant, sleep_until};

use crate::client::{Change, Client};
use crate::connection::{self, ConnectConfig};
use crate::state::{Line, LineKind, SERVER_BUFFER, Stamp};

/// How long after QUIT (or a signal) we wait for the connection to close.
const QUIT_GRACE: Duration = Duration::from_secs(5);

/// Why line mode ended badly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LineModeError {
    /// The connection could not be established.
    #[error("{0}")]
    Connect(String),
    /// Writing the output failed (other than a closed pipe, which is a normal end).
    #[error("cannot write output: {0}")]
    Output(#[from] io::Error),
}

/// Runs line mode until end of input, `/quit`, a signal or a closed output.
///
/// `clock` gives the time of day for new lines; `shutdown` resolves on Ctrl+C or
/// SIGTERM (the caller decides which signals count).
pub async fn run<R, O, E>(
    mut client: Client,
    connect: ConnectConfig,
    mut input: Lines<R>,
    mut out: O,
    mut err: E,
    clock: impl Fn() -> Stamp,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), LineModeError>
where
    R: AsyncBufRead + Unpin,
    O: Write,
    E: Write,
{
    let (to_conn, mut events, task) = connection::spawn(connect);
    let mut ready = false;
    let mut input_done = false;
    let mut quit_by: Option<Instant> = None;
    tokio::pin!(shutdown);
    let mut shutdown_seen = false;
    let result = loop {
        let deadline = quit_by.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
        let changes = tokio::select! {
            event = events.recv() => match event {
                Some(event) => client.handle(event, clock()),
                None => break Ok(()),
            },
            permit = to_conn.reserve(), if client.has_outgoing() => {
                match (permit, client.pop_outgoing()) {
                    (Ok(permit), Some(message)) => permit.send(message),
                    (Err(_), _) => break Ok(()),
                    (Ok(_), None) => {}
                }
                continue;
            }
            line = input.next_line(), if ready && !input_done && quit_by.is_none() && !client.has_outgoing() => {
                match line {
                    Ok(Some(text)) => client.input(&text, clock()),
                    Ok(None) | Err(_) => {
                        input_done = true;
                        client.quit(None)
                    }
                }
            }
            () = &mut shutdown, if !shutdown_seen => {
                shutdown_seen = true;
                client.quit(None)
            }
            () = sleep_until(deadline), if quit_by.is_some() => break Ok(()),
        };
        match show(&client, changes, &mut out, &mut err) {
            Ok(Shown::Fatal(message)) => break Err(LineModeError::Connect(message)),
            Ok(Shown::Closed) => break Ok(()),
            Ok(Shown::Ready) => ready = true,
            Ok(Shown::Quit) => {
                quit_by.get_or_insert_with(|| Instant::now() + QUIT_GRACE);
            }
            Ok(Shown::Nothing) => {}
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
                // Nobody reads our output any more: leave politely.
                client.quit(None);
                quit_by.get_or_insert_with(|| Instant::now() + QUIT_GRACE);
            }
            Err(error) => break Err(error.into()),
        }
    };
    drop(to_conn);
    if tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .is_err()
    {
        tracing::warn!("connection task did not stop in time");
    }
    result
}

/// What a batch of changes means for the loop.
enum Shown {
    Nothing,
    Ready,
    Quit,
    Closed,
    Fatal(String),
}

fn show(
    client: &Client,
    changes: Vec<Change>,
    out: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<Shown> {
    let mut shown = Shown::Nothing;
    // One event can add the same error to several buffers (a disconnect is noted in
    // every channel); line mode has one stream, so it says it once.
    let mut last_error: Option<String> = None;
    let server_name = &client.state().buffers[SERVER_BUFFER].name;
    for change in changes {
        match change {
            Change::Line {
                buffer,
                active,
                line,
            } => {
                if line.own {
                    continue;
                }
                if line.kind == LineKind::Error {
                    if last_error.as_deref() != Some(line.text.as_str()) {
                        writeln!(err, "{}", format_line(&line, None))?;
                        last_error = Some(line.text.clone());
                    }
                } else if &buffer != server_name {
                    let label = (!active).then_some(buffer.as_str());
                    writeln!(out, "{}", format_line(&line, label))?;
                }
            }
            Change::Ready => shown = Shown::Ready,
            Change::Quit => shown = Shown::Quit,
            Change::Closed => return Ok(Shown::Closed),
            Change::Fatal(message) => return Ok(Shown::Fatal(message)),
            Change::Status | Change::Buffers => {}
        }
    }
    out.flush()?;
    Ok(shown)
}

/// `[HH:MM] <nick> text`, with `[buffer] ` after the time for another buffer.
pub fn format_line(line: &Line, buffer: Option<&str>) -> String {
    match buffer {
        Some(buffer) => format!("[{}] [{buffer}] {}", line.time, line.plain()),
        None => format!("[{}] {}", line.time, line.plain()),
    }
}
