//! The full-screen front end: ratatui + crossterm on top of the core.
//!
//! One `select!` loop feeds the core from three sources (connection events, terminal
//! events, signals) and forwards the core's lines to the connection task; after
//! anything changed it redraws the whole screen from state ([`render::render`]).
//! The loop never touches a socket, and the core never touches the terminal.
//!
//! The terminal is always restored: by a guard on every return path, by ratatui's
//! panic hook on a panic, and a closed terminal (SIGHUP, or the event stream ending)
//! takes the normal quit path, which sends QUIT first.

pub mod format;
pub mod input;
pub mod render;
pub mod width;

use std::io::{self, Write as _};
use std::time::Duration;

use crossterm::event::{
    Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEventKind,
};
use futures_util::StreamExt;
use ratatui::layout::Size;
use tokio::time::{Instant, sleep_until};

use crate::client::{Change, Client};
use crate::commands::COMMANDS;
use crate::connection::{self, ConnEvent, ConnectConfig, ToConn};
use crate::state::{BufferKind, Stamp, State};
pub use render::{Search, View, render, tab_at};

/// How long after QUIT we wait for the connection to close before leaving anyway.
const QUIT_GRACE: Duration = Duration::from_secs(3);

/// Why the full-screen UI ended badly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TuiError {
    /// The connection could not be established.
    #[error("{0}")]
    Connect(String),
    /// The terminal could not be set up.
    #[error("cannot use the terminal: {0}")]
    Terminal(#[from] io::Error),
}

/// Choices for the full-screen UI that the user makes on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TuiOptions {
    /// Ring the terminal bell on a mention or a private message.
    pub bell: bool,
    /// Take the mouse: wheel scrolling and clicks on tabs (the terminal's own
    /// selection then needs Shift held, as in most full-screen programs).
    pub mouse: bool,
}

impl Default for TuiOptions {
    fn default() -> Self {
        Self {
            bell: true,
            mouse: true,
        }
    }
}

/// The bell rings at most this often, so a burst of mentions is one ring.
const BELL_GAP: Duration = Duration::from_secs(2);

/// Whether `changes` call for the bell: a line that highlights (a mention of our
/// nick, or a private message), not one of our own, and said now rather than
/// brought back from history (which may be days old).
pub fn rings(changes: &[Change]) -> bool {
    changes.iter().any(
        |c| matches!(c, Change::Line { line, .. } if line.highlight && !line.own && !line.history),
    )
}

/// Restores the terminal when dropped, whichever way `run` returns.
struct Restore {
    mouse: bool,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if self.mouse {
            let _ = crossterm::execute!(io::stdout(), crossterm::event::DisableMouseCapture);
        }
        ratatui::restore();
    }
}

/// Runs the full-screen UI until the user quits or the terminal goes away.
///
/// The first connection is made before the screen switches, so a server that cannot
/// be reached is reported as a plain error on the normal screen.
pub async fn run(
    mut client: Client,
    connect: ConnectConfig,
    options: TuiOptions,
    clock: impl Fn() -> Stamp,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), TuiError> {
    let (to_conn, mut events, task) = connection::spawn(connect);
    loop {
        match events.recv().await {
            Some(ConnEvent::Fatal(message)) => return Err(TuiError::Connect(message)),
            Some(event @ ConnEvent::Connected { .. }) => {
                client.handle(event, clock());
                break;
            }
            Some(event) => {
                client.handle(event, clock());
            }
            None => return Ok(()),
        }
    }

    let mut terminal = ratatui::try_init()?;
    let _restore = Restore {
        mouse: options.mouse,
    };
    if options.mouse {
        crossterm::execute!(io::stdout(), crossterm::event::EnableMouseCapture)?;
    }
    // A paste arrives as one event, not as typed lines each sent on its "Enter".
    // (The legacy Windows console cannot: there a paste is typed lines.)
    if let Err(error) = crossterm::execute!(io::stdout(), crossterm::event::EnableBracketedPaste) {
        tracing::info!("no bracketed paste: {error}");
    }
    let mut last_bell: Option<Instant> = None;
    // Lines handed to the connection task, and those it reported written (or
    // dropped): the difference is what its pacing still holds back.
    let (mut handed, mut written) = (0u64, 0u64);
    let mut view = View {
        joins: width::probe(&mut io::stdout())?,
        ..View::default()
    };
    tracing::info!(joins = ?view.joins, "emoji clusters the terminal joins");
    let mut keys = EventStream::new();
    let mut quit_by: Option<Instant> = None;
    // When the connection task retries after a drop: the status line counts down.
    let mut retry_at: Option<Instant> = None;
    let mut dirty = true;
    tokio::pin!(shutdown);
    let mut shutdown_seen = false;
    loop {
        if dirty {
            let paced = usize::try_from(handed.saturating_sub(written)).unwrap_or(usize::MAX);
            view.sending = paced.saturating_add(client.pending_lines());
            view.retry_left = retry_at.map(|at| at.saturating_duration_since(Instant::now()));
            let drawn = terminal.draw(|frame| render(frame, client.state(), &view));
            if drawn.is_err() && quit_by.is_none() {
                // The terminal is gone: leave the way /quit does.
                client.quit(None);
                quit_by = Some(Instant::now() + QUIT_GRACE);
            }
            dirty = false;
        }
        let size = terminal.size().unwrap_or(Size::new(80, 24));
        let deadline = quit_by.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
        // The next whole second of the countdown, to redraw it.
        let tick = retry_at.map(|at| {
            let left = at.saturating_duration_since(Instant::now());
            let part = Duration::from_millis((left.as_millis() % 1000) as u64);
            Instant::now()
                + if part.is_zero() {
                    Duration::from_secs(1)
                } else {
                    part
                }
        });
        let changes = tokio::select! {
            event = events.recv() => match event {
                Some(event) => {
                    if matches!(event, ConnEvent::Sent | ConnEvent::Unsent) {
                        written += 1;
                    }
                    retry_at = match &event {
                        ConnEvent::Disconnected { retry_in, .. } => Some(Instant::now() + *retry_in),
                        ConnEvent::Sent | ConnEvent::Unsent | ConnEvent::Lag(_) => retry_at,
                        _ => None,
                    };
                    client.handle(event, clock())
                }
                None => break,
            },
            () = sleep_until(tick.unwrap_or(deadline)), if tick.is_some() => {
                dirty = true;
                continue;
            }
            permit = to_conn.reserve(), if client.has_outgoing() => {
                match (permit, client.pop_outgoing()) {
                    (Ok(permit), Some(message)) => {
                        if matches!(message, ToConn::Line { .. }) {
                            handed += 1;
                        }
                        permit.send(message);
                    }
                    (Err(_), _) => break,
                    (Ok(_), None) => {}
                }
                continue;
            }
            key = keys.next(), if quit_by.is_none() => match key {
                Some(Ok(Event::Key(KeyEvent { code: KeyCode::Char('l'), modifiers, kind, .. })))
                    if modifiers.contains(KeyModifiers::CONTROL) && kind != KeyEventKind::Release =>
                {
                    // Ctrl+L: forget what ratatui believes is on screen and draw
                    // every cell again, whatever a terminal or tmux left behind.
                    if terminal.clear().is_err() {
                        client.quit(None);
                    }
                    Vec::new()
                }
                // Mouse capture reports every move; none of them changes the screen.
                Some(Ok(Event::Mouse(crossterm::event::MouseEvent {
                    kind: MouseEventKind::Moved | MouseEventKind::Drag(_),
                    ..
                }))) => continue,
                Some(Ok(event)) => handle_terminal_event(&mut client, &mut view, &event, size, &clock),
                Some(Err(_)) | None => client.quit(None),
            },
            () = &mut shutdown, if !shutdown_seen => {
                shutdown_seen = true;
                client.quit(None)
            }
            () = sleep_until(deadline), if quit_by.is_some() => break,
        };
        dirty = true;
        if options.bell && rings(&changes) && last_bell.is_none_or(|at| at.elapsed() >= BELL_GAP) {
            last_bell = Some(Instant::now());
            let backend = terminal.backend_mut();
            if backend
                .write_all(b"\x07")
                .and_then(|()| backend.flush())
                .is_err()
            {
                client.quit(None);
            }
        }
        for change in changes {
            match change {
                Change::Quit => {
                    quit_by.get_or_insert_with(|| Instant::now() + QUIT_GRACE);
                }
                Change::Closed => quit_by = Some(Instant::now()),
                Change::Buffers => clamp_scroll(&mut view, client.state()),
                Change::Search(query) => start_search(&mut view, client.state(), query),
                _ => {}
            }
        }
        // A search belongs to the buffer it started in.
        if view.search.is_some()
            && view.searched_in.as_ref() != Some(&client.state().active_buffer().key)
        {
            view.search = None;
        }
        if quit_by.is_some_and(|t| t <= Instant::now()) {
            break;
        }
    }
    drop(to_conn);
    let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
    Ok(())
}

fn clamp_scroll(view: &mut View, state: &State) {
    view.scroll
        .retain(|key, _| state.buffers.iter().any(|b| &b.key == key));
}

/// Applies one terminal event; returns the core's changes (empty for UI-only keys).
fn handle_terminal_event(
    client: &mut Client,
    view: &mut View,
    event: &Event,
    size: Size,
    clock: &impl Fn() -> Stamp,
) -> Vec<Change> {
    let key = match event {
        Event::Key(key) => key,
        Event::Paste(text) => return paste(client, view, text, clock),
        Event::Mouse(mouse) => return handle_mouse(client, view, mouse, size.width),
        // Resizes and focus changes only need the redraw that follows every event.
        _ => return Vec::new(),
    };
    if key.kind == KeyEventKind::Release {
        return Vec::new();
    }
    let KeyEvent {
        code, modifiers, ..
    } = *key;
    let ctrl = modifiers.contains(KeyModifiers::CONTROL);
    let alt = modifiers.contains(KeyModifiers::ALT);
    if let Some(lines) = view.paste.take() {
        // The question "send N lines?": y or Enter sends, anything else cancels.
        return match code {
            KeyCode::Char('y' | 'Y') | KeyCode::Enter => send_lines(client, &lines, clock),
            _ => Vec::new(),
        };
    }
    if view.search.is_some() {
        search_key(client, view, code, ctrl);
        return Vec::new();
    }
    if ctrl && code == KeyCode::Char('r') {
        start_search(view, client.state(), String::new());
        return Vec::new();
    }
    // Alt+J then a buffer number (two digits, or one and Enter), as in weechat.
    if let Some(digits) = view.jump.as_mut() {
        let number = match code {
            KeyCode::Char(digit @ '0'..='9') if !alt && !ctrl => {
                digits.push(digit);
                if digits.len() < 2 {
                    return Vec::new();
                }
                digits.parse::<usize>().ok()
            }
            KeyCode::Enter => digits.parse::<usize>().ok(),
            _ => None,
        };
        view.jump = None;
        if let Some(number) = number {
            return match number.checked_sub(1) {
                Some(index) => client.switch_to(index),
                None => Vec::new(),
            };
        }
        if matches!(code, KeyCode::Enter | KeyCode::Char('0'..='9')) {
            return Vec::new();
        }
    }
    match code {
        KeyCode::Char('j') if alt => {
            view.jump = Some(String::new());
            Vec::new()
        }
        KeyCode::Char('c') | KeyCode::Char('d') if ctrl => {
            if code == KeyCode::Char('d') && !view.input.value().is_empty() {
                view.input.handle_event(event);
                return Vec::new();
            }
            client.quit(None)
        }
        KeyCode::Char('n') if ctrl => client.cycle(1),
        KeyCode::Char('p') if ctrl => client.cycle(-1),
        KeyCode::Char(digit @ '0'..='9') if alt => {
            let index = match digit.to_digit(10) {
                Some(0) => 9,
                Some(n) => n as usize - 1,
                None => return Vec::new(),
            };
            client.switch_to(index)
        }
        KeyCode::Enter => {
            let text = view.input.submit();
            let active = client.state().active_buffer().key.clone();
            view.scroll.remove(&active);
            client.input(&text, clock())
        }
        KeyCode::PageUp | KeyCode::PageDown => {
            let page = (render::pane_height(size.height) / 2).max(1) as isize;
            let rows = if code == KeyCode::PageUp { page } else { -page };
            scroll_by(client.state(), view, rows);
            Vec::new()
        }
        KeyCode::Up => {
            view.input.history_up();
            Vec::new()
        }
        KeyCode::Down => {
            view.input.history_down();
            Vec::new()
        }
        KeyCode::Tab if topic_to_edit(client.state(), view.input.value()).is_some() => {
            if let Some(line) = topic_to_edit(client.state(), view.input.value()) {
                view.input.set(&line);
            }
            Vec::new()
        }
        KeyCode::Tab => {
            let state = client.state();
            view.input
                .complete(|word, at_start| candidates(state, word, at_start));
            Vec::new()
        }
        _ => {
            view.input.handle_event(event);
            Vec::new()
        }
    }
}

/// Starts a search for `query` in the active buffer.
fn start_search(view: &mut View, state: &State, query: String) {
    view.search = Some(Search { query, nth: 0 });
    view.searched_in = Some(state.active_buffer().key.clone());
}

/// Pasted lines sent without asking; more are only sent once the user says so.
pub const PASTE_LINES_WITHOUT_ASKING: usize = 5;

/// The lines of a paste, without the empty last one a trailing newline makes.
pub fn paste_lines(text: &str) -> Vec<String> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

/// A bracketed paste: one line goes into the input line; a few are sent as
/// messages; more than [`PASTE_LINES_WITHOUT_ASKING`] wait for a yes.
fn paste(
    client: &mut Client,
    view: &mut View,
    text: &str,
    clock: &impl Fn() -> Stamp,
) -> Vec<Change> {
    let lines = paste_lines(text);
    match lines.len() {
        0 => Vec::new(),
        1 => {
            for c in lines[0].chars() {
                view.input.request(tui_input::InputRequest::InsertChar(c));
            }
            Vec::new()
        }
        n if n <= PASTE_LINES_WITHOUT_ASKING => send_lines(client, &lines, clock),
        _ => {
            view.paste = Some(lines);
            Vec::new()
        }
    }
}

/// Sends pasted lines as messages to the active buffer: text, never commands
/// (a pasted `/quit` is a message saying "/quit"); one multiline message where
/// the server offers it.
fn send_lines(client: &mut Client, lines: &[String], clock: &impl Fn() -> Stamp) -> Vec<Change> {
    client.say_lines(lines, clock())
}

/// A key while searching: text edits the query, Ctrl+R goes to an older match,
/// Enter leaves the view where the match is, Esc (or Ctrl+C/G) goes back to the
/// newest lines.
fn search_key(client: &Client, view: &mut View, code: KeyCode, ctrl: bool) {
    let Some(search) = view.search.as_mut() else {
        return;
    };
    match code {
        KeyCode::Char('r') if ctrl => search.nth += 1,
        KeyCode::Char('s') if ctrl => search.nth = search.nth.saturating_sub(1),
        KeyCode::Char('c' | 'g') if ctrl => view.search = None,
        KeyCode::Esc => view.search = None,
        KeyCode::Enter => {
            let key = client.state().active_buffer().key.clone();
            if let Some(scroll) = view.search_scroll.take() {
                view.scroll.insert(key, scroll);
            }
            view.search = None;
        }
        KeyCode::Backspace => {
            search.query.pop();
            search.nth = 0;
        }
        KeyCode::Char(c) if !ctrl => {
            search.query.push(c);
            search.nth = 0;
        }
        _ => {}
    }
    if view.search.is_none() {
        view.search_scroll.set(None);
    }
}

/// Rows the mouse wheel scrolls per notch.
const WHEEL_ROWS: usize = 3;

/// The wheel scrolls the messages; a click on a tab switches to its buffer.
fn handle_mouse(
    client: &mut Client,
    view: &mut View,
    mouse: &crossterm::event::MouseEvent,
    width: u16,
) -> Vec<Change> {
    use crossterm::event::MouseButton;
    match mouse.kind {
        MouseEventKind::ScrollUp => {
            scroll_by(client.state(), view, WHEEL_ROWS as isize);
            Vec::new()
        }
        MouseEventKind::ScrollDown => {
            scroll_by(client.state(), view, -(WHEEL_ROWS as isize));
            Vec::new()
        }
        MouseEventKind::Down(MouseButton::Left) if mouse.row == 0 => {
            match tab_at(client.state(), width, view.joins, mouse.column) {
                Some(index) => client.switch_to(index),
                None => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

/// Scrolls the active buffer `rows` up (negative: down), within what it holds.
fn scroll_by(state: &State, view: &mut View, rows: isize) {
    let buffer = state.active_buffer();
    let key = buffer.key.clone();
    let current = view.scroll.get(&key).copied().unwrap_or(0);
    let max = view.max_scroll.get().unwrap_or(buffer.lines.len() * 4);
    let next = current.min(max).saturating_add_signed(rows).min(max);
    view.scroll.insert(key, next);
}

/// `/topic ` and Tab: the channel's current topic, to edit rather than retype.
pub fn topic_to_edit(state: &State, input: &str) -> Option<String> {
    let rest = input.strip_prefix("/topic")?;
    if !rest.trim().is_empty() {
        return None;
    }
    let buffer = state.active_buffer();
    let topic = buffer
        .topic
        .as_deref()
        .filter(|_| buffer.kind == BufferKind::Channel)?;
    Some(format!("/topic {topic}"))
}

/// Completion candidates for `word`: commands at the start of the line, channel
/// names for `#...`, otherwise the active buffer's nicks (ours last).
pub fn candidates(state: &State, word: &str, at_start: bool) -> Vec<String> {
    let lower = word.to_lowercase();
    let matches = |name: &str| name.to_lowercase().starts_with(&lower);
    if at_start && word.starts_with('/') {
        return COMMANDS
            .iter()
            .map(|(name, _, _)| (*name).to_owned())
            .filter(|name| matches(name))
            .collect();
    }
    if state.is_channel(word) {
        return state
            .buffers
            .iter()
            .filter(|b| b.kind == BufferKind::Channel && matches(&b.name))
            .map(|b| b.name.clone())
            .collect();
    }
    if word.is_empty() {
        return Vec::new();
    }
    let buffer = state.active_buffer();
    let mut nicks: Vec<String> = match buffer.kind {
        BufferKind::Channel => buffer.members.values().map(|m| m.nick.clone()).collect(),
        BufferKind::Query => vec![buffer.name.clone()],
        BufferKind::Server | BufferKind::List => Vec::new(),
    };
    nicks.retain(|n| matches(n));
    nicks.sort_by_key(|n| (state.is_me(n), n.to_lowercase()));
    nicks
}
