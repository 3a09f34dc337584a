//! Plain line mode, for pipes and scripts: each input line goes to the current
//! buffer, each conversation line comes out as `[HH:MM] <nick> text`.
//!
//! Input is read only once the client is [`Change::Ready`] (registered and in its
//! channels), and only once the connection has written every line handed to it, so
//! `printf 'hi\n' | chat-client ...` delivers its line to the channel, and a large
//! file is fed at the pace the connection sends, never buffered whole. At end of
//! input the client sends QUIT after every line and waits (briefly) for the server
//! to close, which proves everything before it was processed. A line that could not
//! be sent makes the exit status non-zero, with a count on stderr. After `/join`
//! the next line waits for the server's answer, so it goes to the joined channel.
//!
//! Conversation (messages, actions, notices, joins and parts) goes to `out`; errors,
//! hints and connection trouble go to `err`; server chatter such as the MOTD only to
//! the log. Lines for a buffer other than the current one are prefixed with
//! `[name] `. Our own messages are not echoed: the input already shows them.
//! History (CHATHISTORY) is neither asked for nor printed unless `--history`
//! is given: a script reading the output would take replayed lines for new ones.

use std::io::{self, Write};
use std::time::Duration;

use tokio::io::{AsyncBufRead, Lines};
use tokio::time::{Instant, sleep_until};

use crate::client::{Change, Client};
use crate::connection::{self, ConnEvent, ConnectConfig, Refusal, ToConn};
use crate::state::{BufferKind, Line, LineKind, SERVER_BUFFER, Stamp};

/// How long we wait for the connection to close once everything, QUIT included,
/// was written (the connection itself waits up to 3 s for the server to close), and
/// after a signal.
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
    /// The server refused us in a way retrying will not fix; the message says what
    /// to do.
    #[error("{0}")]
    Refused(String),
    /// Some lines never reached the server.
    #[error("{count} line{} not sent ({why})", if *count == 1 { " was" } else { "s were" })]
    Unsent {
        /// How many lines (input lines, and lines the client made such as JOIN).
        count: usize,
        /// What stopped them, in words.
        why: &'static str,
    },
}

/// Runs line mode until end of input, `/quit`, a signal or a closed output.
///
/// Every input line is sent before the client leaves, however long pacing takes:
/// the next input line is read only once the connection has written everything
/// handed to it (it reports each line as [`ConnEvent::Sent`] or
/// [`ConnEvent::Unsent`]), and the QUIT at end of input goes out after them. Only
/// then does a deadline ([`QUIT_GRACE`]) apply. Lines that could not be sent (the
/// connection dropped under them, or a signal stopped the client first) are
/// counted and returned as [`LineModeError::Unsent`].
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
    // The QUIT is queued: read no more input.
    let mut quitting = false;
    // Leave at this time whatever is still on its way.
    let mut quit_by: Option<Instant> = None;
    // Lines handed to the connection, and those it reported sent or unsent.
    let mut handed = 0usize;
    let mut settled = 0usize;
    let mut unsent = 0usize;
    tokio::pin!(shutdown);
    let mut shutdown_seen = false;
    let result = loop {
        let in_flight = handed - settled;
        if quitting && quit_by.is_none() && in_flight == 0 && !client.has_outgoing() {
            quit_by = Some(Instant::now() + QUIT_GRACE);
        }
        let deadline = quit_by.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
        let may_read = ready
            && client.is_registered()
            && !client.is_settling()
            && in_flight == 0
            && !client.has_outgoing()
            && !input_done
            && !quitting;
        let changes = tokio::select! {
            event = events.recv() => match event {
                Some(ConnEvent::Sent) => {
                    settled += 1;
                    continue;
                }
                Some(ConnEvent::Unsent) => {
                    settled += 1;
                    unsent += 1;
                    continue;
                }
                Some(event) => client.handle(event, clock()),
                None => break Ok(()),
            },
            permit = to_conn.reserve(), if client.has_outgoing() => {
                match (permit, client.pop_outgoing()) {
                    (Ok(permit), Some(message)) => {
                        if matches!(message, ToConn::Line { .. }) {
                            handed += 1;
                        }
                        permit.send(message);
                    }
                    (Err(_), _) => break Ok(()),
                    (Ok(_), None) => {}
                }
                continue;
            }
            line = input.next_line(), if may_read => {
                match line {
                    Ok(Some(text)) => {
                        let before = client.state().active;
                        let mut changes = client.input(&text, clock());
                        // `/list` opens its buffer; here it only prints, and the
                        // next line still goes where the one before went.
                        if client.state().active_buffer().kind == BufferKind::List {
                            changes.extend(client.switch_to(before));
                        }
                        changes
                    }
                    Ok(None) | Err(_) => {
                        input_done = true;
                        client.quit(None)
                    }
                }
            }
            () = &mut shutdown, if !shutdown_seen => {
                shutdown_seen = true;
                // A signal means now: what is still on its way gets a short grace.
                quit_by = Some(Instant::now() + QUIT_GRACE);
                client.quit(None)
            }
            () = sleep_until(deadline), if quit_by.is_some() => break Ok(()),
        };
        match show(&client, changes, &mut out, &mut err) {
            Ok(Shown::Fatal(message)) => break Err(LineModeError::Connect(message)),
            Ok(Shown::Refused(refusal, reason)) => {
                break Err(LineModeError::Refused(advice(refusal, &reason)));
            }
            Ok(Shown::Closed) => break Ok(()),
            Ok(Shown::Ready) => ready = true,
            Ok(Shown::Quit) => quitting = true,
            Ok(Shown::Nothing) => {}
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
                // Nobody reads our output any more: leave politely.
                client.quit(None);
                quitting = true;
            }
            Err(error) => break Err(error.into()),
        }
        if !client.is_registered() {
            // Disconnected: wait for the rejoin before reading more input.
            ready = false;
        }
    };
    drop(to_conn);
    if tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .is_err()
    {
        tracing::warn!("connection task did not stop in time");
    }
    // Reports the connection made before it stopped still count.
    while let Ok(event) = events.try_recv() {
        match event {
            ConnEvent::Sent => settled += 1,
            ConnEvent::Unsent => {
                settled += 1;
                unsent += 1;
            }
            _ => {}
        }
    }
    let dropped = unsent;
    let stopped = handed - settled + client.pending_lines();
    match result {
        Ok(()) if dropped + stopped > 0 => {
            let why = if stopped == 0 {
                "the connection dropped before they went out"
            } else {
                "the client stopped before they went out"
            };
            let error = LineModeError::Unsent {
                count: dropped + stopped,
                why,
            };
            tracing::error!("{error}");
            Err(error)
        }
        other => other,
    }
}

/// What a batch of changes means for the loop.
enum Shown {
    Nothing,
    Ready,
    Quit,
    Closed,
    Fatal(String),
    Refused(Refusal, String),
}

/// What a refusal means for someone running `chat-client` from a shell.
fn advice(refusal: Refusal, reason: &str) -> String {
    match refusal {
        Refusal::Password => format!(
            "the server refused the password ({reason}): give the right one with --password or PALAVER_PASSWORD"
        ),
        Refusal::Full => {
            format!("the server takes no more connections ({reason}): try again later")
        }
        // Says what happened, what is pinned and which line to edit.
        Refusal::Certificate => reason.to_owned(),
        _ => format!("the server refused the connection ({reason}): retrying will not help"),
    }
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
    // A refusal is the exit message; the lines saying the same in every buffer
    // are for the full-screen UI.
    if let Some((refusal, reason)) = changes.iter().find_map(|c| match c {
        Change::Refused { refusal, reason } => Some((*refusal, reason.clone())),
        _ => None,
    }) {
        return Ok(Shown::Refused(refusal, reason));
    }
    let server_name = &client.state().buffers[SERVER_BUFFER].name;
    for change in changes {
        match change {
            Change::Line {
                buffer,
                active,
                line,
            } => {
                // Our own messages are already in the input; from history
                // (with --history) they are not.
                if line.own && !line.history {
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
            Change::Refused { refusal, reason } => return Ok(Shown::Refused(refusal, reason)),
            Change::Search(query) => {
                let buffer = client.state().active_buffer();
                let found = buffer.search(&query);
                for &index in &found {
                    writeln!(out, "{}", format_line(&buffer.lines[index], None))?;
                }
                writeln!(err, "{} lines contain {query:?}", found.len())?;
            }
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
