//! The UI-free client core: turns connection events, server lines and user input into
//! state changes and lines to send.
//!
//! [`Client`] is a plain synchronous state machine. It is fed [`ConnEvent`]s from the
//! connection task ([`Client::handle`]) and text the user typed ([`Client::input`]),
//! updates its [`State`], queues lines for the server (taken with
//! [`Client::pop_outgoing`]) and returns the [`Change`]s a front end may want to show.
//! It owns registration (PASS/NICK/USER, retrying with `nick_` on 433), joining the
//! configured channels and rejoining them after a reconnect; the connection task owns
//! PING/PONG. Time comes in as a [`Stamp`] argument, so every behaviour here is
//! testable with scripted lines and no clock, socket or terminal.

use std::collections::{HashSet, VecDeque};

use bytes::Bytes;
use palaver_proto::{CaseKey, LineWriter, Message};

mod execute;
mod history;
mod inbound;
mod login;
pub mod sasl;

pub use history::{JOIN_HISTORY, MAX_HELD};
pub use sasl::{Account, Secret};

use crate::commands::{self, Hint};
use crate::connection::{ConnEvent, Refusal, ToConn};
use crate::state::{ConnState, Delivery, Line, LineKind, SERVER_BUFFER, Stamp, State};

/// Most lines waiting for the connection task; beyond it input is refused with a
/// message rather than queued without bound.
pub const MAX_OUTGOING: usize = 256;

/// Bytes of text per PRIVMSG: the 512-byte line minus the command, the target and
/// room for the `:nick!user@host` prefix the server adds when relaying.
const TEXT_BUDGET: usize = 400;

/// Channels kept from one `/list` reply: the buffer holds no more lines than this.
const MAX_LIST: usize = crate::state::MAX_SCROLLBACK - 2;

/// Nick retries (`nick_`, `nick__`, ...) during registration before asking the user.
const MAX_NICK_RETRIES: u32 = 8;

/// Who to register as and where to go.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The nick we want.
    pub nick: String,
    /// The username (ident) for USER.
    pub username: String,
    /// The real name for USER.
    pub realname: String,
    /// The server password (PASS), if any.
    pub password: Option<String>,
    /// The account to log in to with SASL during registration, if any.
    pub account: Option<Account>,
    /// Channels joined after registering.
    pub channels: Vec<String>,
    /// Write every line of the conversation to the log (target
    /// [`CONVERSATION_LOG`]), as the seed client's `client.log` did.
    pub log_messages: bool,
    /// Fill buffers from the server's history (`draft/chathistory`) on join and
    /// after a reconnect, where the server offers it.
    pub history: bool,
    /// The local time's offset from UTC, for showing server times (`server-time`)
    /// as local times of day. The core reads no clock, so it is given.
    pub utc_offset: time::UtcOffset,
}

/// The tracing target of the conversation's lines in the log, so a filter can
/// keep or drop them (`--no-log-messages`).
pub const CONVERSATION_LOG: &str = "palaver_client::conversation";

impl ClientConfig {
    /// A configuration for `nick` joining `channels`, deriving the username from it.
    pub fn new(nick: &str, channels: Vec<String>) -> Self {
        let mut username: String = nick
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(10)
            .collect();
        if username.is_empty() {
            username = "palaver".to_owned();
        }
        Self {
            nick: nick.to_owned(),
            username,
            realname: format!("{nick} (palaver)"),
            password: None,
            account: None,
            channels,
            log_messages: true,
            history: true,
            utc_offset: time::UtcOffset::UTC,
        }
    }
}

/// Something a front end may want to react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A line was added to a buffer.
    Line {
        /// The buffer's name.
        buffer: String,
        /// It is the active buffer.
        active: bool,
        /// The line.
        line: Line,
    },
    /// Connection state, nick, lag or away status changed.
    Status,
    /// Buffers were opened, closed or switched.
    Buffers,
    /// Registered, and every configured channel was joined or refused.
    Ready,
    /// The user asked to quit; the QUIT line is queued.
    Quit,
    /// The connection could not be established at all; the message says why.
    Fatal(String),
    /// The server refused us for good (wrong password, full, banned); no retry
    /// follows until `/reconnect`. Line mode exits on it.
    Refused {
        /// The kind of refusal.
        refusal: Refusal,
        /// The server's words.
        reason: String,
    },
    /// The connection task ended after a quit.
    Closed,
    /// The user asked to search the active buffer for this text (`/search`).
    Search(String),
}

/// The client core. See the module documentation.
#[derive(Debug)]
pub struct Client {
    state: State,
    /// What we dial, as given (`host:port`); `state.server` becomes the server's
    /// own name after 001, which is not where we connect.
    address: String,
    config: ClientConfig,
    generation: u64,
    registered: bool,
    registered_once: bool,
    nick_retries: u32,
    pending_joins: HashSet<CaseKey>,
    focus_on_join: HashSet<CaseKey>,
    names_requested: HashSet<CaseKey>,
    chanmodes: [String; 4],
    /// Mode changes with an argument the server takes per MODE line (ISUPPORT
    /// `MODES`); `/op a b c d` is sent in lines of this many.
    modes_per_line: usize,
    /// `RPL_LIST` entries (channel, users, topic) gathered until `RPL_LISTEND`,
    /// at most [`MAX_LIST`], and how many more there were.
    listing: Vec<(String, usize, String)>,
    listing_dropped: usize,
    outgoing: VecDeque<ToConn>,
    changes: Vec<Change>,
    now: Stamp,
    /// Sync PINGs sent after commands whose answer changes where input goes
    /// (`/join`), and not yet answered; see [`Client::is_settling`].
    barriers: u64,
    /// Numbers the sync PINGs.
    barrier_seq: u64,
    /// The server acknowledged `echo-message` on this connection: our messages
    /// come back when delivered, so they stay [`Delivery::Pending`] until then.
    echo: bool,
    /// The capabilities the server listed (`CAP LS`), gathered over its lines.
    offered: Vec<String>,
    /// The server took `draft/multiline` (with `batch`): several lines can go as
    /// one message, within these limits.
    multiline: Option<Multiline>,
    /// Numbers the batches we open.
    batch_seq: u64,
    /// The server took `draft/chathistory` with `batch` and `message-tags` on
    /// this connection: buffers are filled from its history.
    history_on: bool,
    /// Most messages per CHATHISTORY request (ISUPPORT `CHATHISTORY`; 0: no limit).
    history_max: Option<usize>,
    /// The fill in flight and those waiting their turn (see `history.rs`).
    fill: Option<history::Fill>,
    fills: VecDeque<history::Fill>,
    /// Numbers the PINGs that follow history requests.
    fill_seq: u64,
    /// Live lines for buffers being filled, with their buffer's key, shown
    /// after the history; at most [`MAX_HELD`].
    held: VecDeque<(CaseKey, String)>,
    /// The SASL login in progress on this connection (see `sasl.rs`).
    sasl: Option<sasl::Exchange>,
    /// The mechanisms the server offers (`sasl=` value, or its 908 list).
    sasl_offer: String,
    /// Mechanisms tried on this connection, so a 904 can move to the next one.
    sasl_tried: Vec<sasl::Mechanism>,
    /// The pieces of the server's AUTHENTICATE message received so far.
    sasl_inbound: String,
    /// The `draft/multiline` batches received lately (open or just closed), so
    /// the lines inside get the batch's msgid and time, numbered: a multiline
    /// message is then recognised line by line when history brings it again.
    /// Also the lines held during a fill find their batch after it closed.
    multiline_batches: VecDeque<history::MultilineBatch>,
    /// CAP END went out on this connection: registration no longer waits for us.
    cap_ended: bool,
}

/// The limits of one `draft/multiline` batch, from the capability's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Multiline {
    /// Bytes of text in all the lines together (`max-bytes`).
    max_bytes: usize,
    /// Lines in one batch (`max-lines`).
    max_lines: usize,
}

impl Multiline {
    /// Reads `max-bytes=4096,max-lines=24`; `max-bytes` is required, and without
    /// `max-lines` a batch is only limited by it.
    fn parse(value: &str) -> Option<Self> {
        let mut max_bytes = None;
        let mut max_lines = usize::MAX;
        for item in value.split(',') {
            match item.split_once('=') {
                Some(("max-bytes", n)) => max_bytes = n.parse().ok(),
                Some(("max-lines", n)) => max_lines = n.parse().ok()?,
                _ => {}
            }
        }
        Some(Self {
            max_bytes: max_bytes?,
            max_lines,
        })
    }
}

// Numerics the client matches that `palaver_proto::numeric` (the server's table)
// does not list, because palaver never sends them; other servers do.
/// `330 RPL_WHOISACCOUNT`: the account a nick is logged in as.
const RPL_WHOISACCOUNT: &str = "330";
/// `477 ERR_NEEDREGGEDNICK`: the channel wants a registered nick.
const ERR_NEEDREGGEDNICK: &str = "477";
/// `479 ERR_BADCHANNAME`: not a valid channel name.
const ERR_BADCHANNAME: &str = "479";

/// Token prefix of the PINGs that mark "the server has answered everything before".
const SYNC_TOKEN: &str = "palaver-sync-";

impl Client {
    /// A client for `server` (a label such as `host:port`), not yet connected.
    pub fn new(server: &str, config: ClientConfig) -> Self {
        let mut focus_on_join = HashSet::new();
        let state = State::new(server, &config.nick);
        if let Some(first) = config.channels.first() {
            focus_on_join.insert(state.key(first));
        }
        Self {
            state,
            address: server.to_owned(),
            config,
            generation: 0,
            registered: false,
            registered_once: false,
            nick_retries: 0,
            pending_joins: HashSet::new(),
            focus_on_join,
            names_requested: HashSet::new(),
            chanmodes: ["beI".into(), "k".into(), "l".into(), "imnpst".into()],
            modes_per_line: 3,
            listing: Vec::new(),
            listing_dropped: 0,
            outgoing: VecDeque::new(),
            changes: Vec::new(),
            now: Stamp::default(),
            barriers: 0,
            barrier_seq: 0,
            echo: false,
            offered: Vec::new(),
            multiline: None,
            batch_seq: 0,
            history_on: false,
            history_max: None,
            fill: None,
            fills: VecDeque::new(),
            fill_seq: 0,
            held: VecDeque::new(),
            sasl: None,
            sasl_offer: String::new(),
            sasl_tried: Vec::new(),
            sasl_inbound: String::new(),
            cap_ended: false,
            multiline_batches: VecDeque::new(),
        }
    }

    /// The account the server says we are logged in to, on this connection.
    pub fn logged_in(&self) -> Option<&str> {
        self.state.account.as_deref()
    }

    /// What the client knows, for drawing.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Whether the server accepted our registration on the current connection.
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// Whether the server has yet to answer a command that may move the active
    /// buffer (`/join` focuses the channel once the server confirms it). Line mode
    /// reads no more input meanwhile, so the next line goes where the user expects.
    pub fn is_settling(&self) -> bool {
        self.barriers > 0
    }

    /// Sends a PING the server answers only after everything sent before it: when
    /// its PONG arrives, so have the earlier commands' replies.
    fn barrier(&mut self) {
        self.barrier_seq += 1;
        self.barriers += 1;
        let token = format!("{SYNC_TOKEN}{}", self.barrier_seq);
        self.send("PING", &[&token]);
    }

    /// Whether lines are waiting for the connection task.
    pub fn has_outgoing(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// How many [`ToConn::Line`]s wait in the outbox (the QUIT not counted).
    pub fn pending_lines(&self) -> usize {
        self.outgoing
            .iter()
            .filter(|t| matches!(t, ToConn::Line { .. }))
            .count()
    }

    /// Takes the next line for the connection task.
    pub fn pop_outgoing(&mut self) -> Option<ToConn> {
        self.outgoing.pop_front()
    }

    /// Applies an event from the connection task.
    pub fn handle(&mut self, event: ConnEvent, now: Stamp) -> Vec<Change> {
        self.now = now;
        match event {
            ConnEvent::Connecting { attempt } => {
                self.state.conn = ConnState::Connecting;
                let text = if attempt > 1 {
                    format!("Connecting to {} (attempt {attempt})", self.address)
                } else {
                    format!("Connecting to {}", self.address)
                };
                self.info(SERVER_BUFFER, LineKind::Info, text);
                self.changes.push(Change::Status);
            }
            ConnEvent::Connected { generation, peer } => {
                self.generation = generation;
                self.barriers = 0;
                self.registered = false;
                self.nick_retries = 0;
                self.state.conn = ConnState::Registering;
                self.state.nick = self.config.nick.clone();
                self.info(
                    SERVER_BUFFER,
                    LineKind::Info,
                    format!("Connected to {peer}"),
                );
                self.echo = false;
                self.multiline = None;
                self.history_on = false;
                self.history_max = None;
                self.drop_fills();
                self.sasl = None;
                self.sasl_offer.clear();
                self.sasl_tried.clear();
                self.sasl_inbound.clear();
                self.cap_ended = false;
                self.multiline_batches.clear();
                self.state.account = None;
                self.offered.clear();
                if let Some(password) = self.config.password.clone() {
                    self.send("PASS", &[&password]);
                }
                // We ask what the server offers, then for echo-message (which tells
                // which of our messages were delivered) and draft/multiline (a paste
                // as one message) among it. A server without CAP ignores this (or
                // answers 421) and registers us anyway; one with CAP waits for CAP
                // END, sent on its answer to our request.
                self.send("CAP", &["LS", "302"]);
                let nick = self.config.nick.clone();
                let username = self.config.username.clone();
                let realname = self.config.realname.clone();
                self.send("NICK", &[&nick]);
                self.send_trailing("USER", &[&username, "0", "*"], &realname);
                self.changes.push(Change::Status);
            }
            ConnEvent::Line(text) => self.handle_line(&text),
            // Delivery accounting is the front end's business (see line mode).
            ConnEvent::Sent | ConnEvent::Unsent => {}
            ConnEvent::Lag(lag) => {
                self.state.lag = Some(lag);
                self.changes.push(Change::Status);
            }
            ConnEvent::Disconnected { reason, retry_in } => {
                self.drop_fills();
                self.state.account = None;
                self.registered = false;
                self.state.lag = None;
                let text = format!(
                    "Disconnected: {reason}; reconnecting in {}s",
                    retry_in.as_secs().max(1)
                );
                self.leave_all(&text);
                self.state.conn = ConnState::Disconnected { reason, retry_in };
                self.changes.push(Change::Status);
            }
            ConnEvent::Refused { refusal, reason } => {
                self.drop_fills();
                self.state.account = None;
                self.registered = false;
                self.state.lag = None;
                let advice = match refusal {
                    Refusal::Password => "set the password with /password SECRET, then /reconnect",
                    Refusal::Full => "not retrying: /reconnect to try again later",
                    Refusal::Banned => "retrying will not help (/reconnect tries anyway)",
                    Refusal::Certificate => {
                        "not retrying: /reconnect checks the same pin; after editing the file, restart chat-client"
                    }
                };
                let text = format!("The server refused the connection: {reason}; {advice}");
                self.leave_all(&text);
                self.state.conn = ConnState::Stopped {
                    reason: reason.clone(),
                };
                self.changes.push(Change::Status);
                self.changes.push(Change::Refused { refusal, reason });
            }
            ConnEvent::Fatal(message) => {
                // Not a line: the front end reports it once, as its exit message.
                self.state.conn = ConnState::Closed;
                self.changes.push(Change::Fatal(message));
            }
            ConnEvent::Closed => {
                self.state.conn = ConnState::Closed;
                self.changes.push(Change::Closed);
            }
        }
        std::mem::take(&mut self.changes)
    }

    /// Marks every channel as left and tells every buffer why.
    fn leave_all(&mut self, text: &str) {
        for index in 0..self.state.buffers.len() {
            let buffer = &mut self.state.buffers[index];
            buffer.joined = false;
            buffer.members.clear();
            self.info(index, LineKind::Error, text.to_owned());
        }
    }

    /// Applies a line the user typed in the active buffer.
    pub fn input(&mut self, text: &str, now: Stamp) -> Vec<Change> {
        self.now = now;
        match commands::parse(text) {
            Ok(None) => {}
            Ok(Some(command)) => self.execute(command),
            Err(Hint(hint)) => self.hint(hint),
        }
        std::mem::take(&mut self.changes)
    }

    /// Queues QUIT with `message` and reports [`Change::Quit`].
    pub fn quit(&mut self, message: Option<&str>) -> Vec<Change> {
        let mut line = LineWriter::new();
        line.command("QUIT")
            .trailing(&sanitize(message.unwrap_or("palaver-client")));
        self.outgoing.push_back(ToConn::Quit(line.finish()));
        self.changes.push(Change::Quit);
        std::mem::take(&mut self.changes)
    }

    /// Makes buffer `index` active (ignored if out of range).
    pub fn switch_to(&mut self, index: usize) -> Vec<Change> {
        if index < self.state.buffers.len() && index != self.state.active {
            self.state.set_active(index);
            self.changes.push(Change::Buffers);
        }
        std::mem::take(&mut self.changes)
    }

    /// Moves to the next (`+1`) or previous (`-1`) buffer, wrapping around.
    pub fn cycle(&mut self, step: isize) -> Vec<Change> {
        let count = self.state.buffers.len() as isize;
        let next = (self.state.active as isize + step).rem_euclid(count);
        self.switch_to(next as usize)
    }

    // --- helpers -------------------------------------------------------------------

    fn send(&mut self, command: &str, params: &[&str]) {
        let mut line = LineWriter::new();
        line.command(command);
        for param in params {
            line.param(&sanitize(param));
        }
        self.enqueue(line.finish());
    }

    fn send_trailing(&mut self, command: &str, middle: &[&str], trailing: &str) {
        let mut line = LineWriter::new();
        line.command(command);
        for param in middle {
            line.param(&sanitize(param));
        }
        line.trailing(&sanitize(trailing));
        self.enqueue(line.finish());
    }

    fn enqueue(&mut self, line: Bytes) {
        if self.outgoing.len() >= MAX_OUTGOING {
            self.hint("too much is waiting to be sent: slow down (line dropped)".to_owned());
            return;
        }
        self.outgoing.push_back(ToConn::Line {
            generation: self.generation,
            line,
        });
    }

    fn push(&mut self, index: usize, line: Line) {
        self.state.push(index, line.clone());
        if let Some(buffer) = self.state.buffers.get(index) {
            if self.config.log_messages {
                tracing::info!(target: CONVERSATION_LOG, "[{}] {}", buffer.name, line.plain());
            }
            self.changes.push(Change::Line {
                buffer: buffer.name.clone(),
                active: index == self.state.active,
                line,
            });
        }
    }

    fn push_message(&mut self, index: usize, kind: LineKind, nick: &str, text: &str, own: bool) {
        let line = Line {
            time: self.now,
            kind,
            nick: Some(nick.to_owned()),
            text: text.to_owned(),
            highlight: false,
            own,
            delivery: Delivery::Sent,
            msgid: None,
            history: false,
        };
        self.push(index, line);
    }

    fn info(&mut self, index: usize, kind: LineKind, text: impl Into<String>) {
        let line = Line::info(self.now, kind, text);
        self.push(index, line);
    }

    fn hint(&mut self, text: String) {
        self.info(self.state.active, LineKind::Error, text);
    }
}

/// The last parameter, or "".
fn last<'a>(msg: &Message<'a>) -> &'a str {
    msg.params().last().copied().unwrap_or("")
}

/// Replaces the bytes that would break or end an IRC line.
fn sanitize(text: &str) -> String {
    text.replace(['\r', '\n', '\0'], " ")
}

/// Splits `text` into pieces of at most `budget` bytes, at a space near the end when
/// there is one and always on a character boundary.
fn split_text(text: &str, budget: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.len() > budget {
        let mut cut = budget;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if let Some(space) = rest[..cut].rfind(' ').filter(|&s| s > budget / 2) {
            cut = space;
        }
        pieces.push(&rest[..cut]);
        rest = rest[cut..].strip_prefix(' ').unwrap_or(&rest[cut..]);
    }
    if !rest.is_empty() {
        pieces.push(rest);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const NOW: Stamp = Stamp {
        hour: 12,
        minute: 34,
        date: None,
        utc: None,
    };

    fn client() -> Client {
        Client::new(
            "test:6667",
            ClientConfig::new("alice", vec!["#lobby".into()]),
        )
    }

    fn sent(client: &mut Client) -> Vec<String> {
        std::iter::from_fn(|| client.pop_outgoing())
            .map(|t| match t {
                ToConn::Line { line, .. } | ToConn::Quit(line) => {
                    String::from_utf8_lossy(&line).trim_end().to_owned()
                }
                ToConn::Reconnect => "(reconnect)".to_owned(),
            })
            .collect()
    }

    fn lines(client: &mut Client, lines: &[&str]) -> Vec<Change> {
        lines
            .iter()
            .flat_map(|l| client.handle(ConnEvent::Line((*l).to_owned()), NOW))
            .collect()
    }

    fn connect(client: &mut Client) {
        let peer = "127.0.0.1:6667".parse().expect("address");
        client.handle(
            ConnEvent::Connected {
                generation: 1,
                peer,
            },
            NOW,
        );
    }

    /// A client registered as alice and in #lobby with bob and an op, carol.
    fn in_lobby() -> Client {
        let mut c = client();
        connect(&mut c);
        lines(
            &mut c,
            &[
                ":srv 001 alice :Welcome",
                ":srv 005 alice PREFIX=(ov)@+ CHANTYPES=# :are supported",
                ":alice!a@h JOIN #lobby",
                ":srv 353 alice = #lobby :alice +bob @carol",
                ":srv 366 alice #lobby :End of /NAMES list.",
            ],
        );
        sent(&mut c);
        c
    }

    fn texts(client: &Client, buffer: &str) -> Vec<String> {
        let index = if buffer == "*server*" {
            SERVER_BUFFER
        } else {
            client.state().find(buffer).expect("buffer exists")
        };
        client.state().buffers[index]
            .lines
            .iter()
            .map(Line::plain)
            .collect()
    }

    #[test]
    fn registers_retries_a_taken_nick_then_joins() {
        let mut c = client();
        c.config.password = Some("pw".into());
        connect(&mut c);
        assert_eq!(
            sent(&mut c),
            [
                "PASS pw",
                "CAP LS 302",
                "NICK alice",
                "USER alice 0 * :alice (palaver)"
            ]
        );
        // A listing over two lines; we ask for what we use among it.
        lines(
            &mut c,
            &[
                ":srv CAP * LS * :sasl echo-message batch",
                ":srv CAP * LS :draft/multiline=max-bytes=4096,max-lines=24 server-time",
            ],
        );
        assert_eq!(
            sent(&mut c),
            ["CAP REQ :echo-message batch draft/multiline"]
        );
        lines(
            &mut c,
            &[":srv CAP * ACK :echo-message batch draft/multiline"],
        );
        assert_eq!(sent(&mut c), ["CAP END"]);
        assert_eq!(
            c.multiline,
            Some(Multiline {
                max_bytes: 4096,
                max_lines: 24
            })
        );
        lines(&mut c, &[":srv 433 * alice :Nickname is already in use"]);
        assert_eq!(sent(&mut c), ["NICK alice_"]);
        let changes = lines(&mut c, &[":srv 001 alice_ :Welcome alice_"]);
        assert!(
            !changes.contains(&Change::Ready),
            "not ready before joining"
        );
        assert_eq!(c.state().nick, "alice_");
        assert_eq!(sent(&mut c), ["JOIN #lobby"]);
        let changes = lines(&mut c, &[":alice_!a@h JOIN #lobby"]);
        assert!(changes.contains(&Change::Ready));
        assert_eq!(c.state().active_buffer().name, "#lobby");
        assert_eq!(c.state().conn, ConnState::Connected);
    }

    /// A client that negotiated history, registered, with the server's
    /// CHATHISTORY limit `max`, and the JOIN of #lobby seen.
    fn with_history(max: usize) -> Client {
        let mut c = client();
        connect(&mut c);
        lines(
            &mut c,
            &[":srv CAP * LS :batch draft/chathistory message-tags server-time echo-message"],
        );
        assert_eq!(
            sent(&mut c)[3..],
            ["CAP REQ :echo-message batch message-tags draft/chathistory server-time"]
        );
        lines(
            &mut c,
            &[
                ":srv CAP * ACK :echo-message batch message-tags draft/chathistory server-time",
                ":srv 001 alice :Welcome",
                &format!(":srv 005 alice CHATHISTORY={max} :are supported"),
                ":alice!a@h JOIN #lobby",
            ],
        );
        c
    }

    fn said(at: &str, id: &str, nick: &str, text: &str, batch: Option<&str>) -> String {
        let batch = batch.map(|b| format!("batch={b};")).unwrap_or_default();
        format!("@{batch}time=2026-12-02T{at}Z;msgid={id} :{nick}!u@h PRIVMSG #lobby :{text}")
    }

    /// Issue 10: a join fills the buffer with the latest history, shown with the
    /// server's times; a live line that came meanwhile waits, and is not shown
    /// twice when the history brought it too.
    #[test]
    fn a_join_fills_the_buffer_from_history_in_order_and_once() {
        let mut c = with_history(50);
        assert_eq!(
            sent(&mut c),
            [
                "CAP END",
                "JOIN #lobby",
                "CHATHISTORY LATEST #lobby * 50",
                "PING palaver-history-1"
            ]
        );
        let live = said("10:05:00.000", "c", "bob", "live", None);
        lines(&mut c, &[&live]);
        assert!(!texts(&c, "#lobby").iter().any(|l| l.contains("live")));
        lines(
            &mut c,
            &[
                ":srv BATCH +h1 chathistory #lobby",
                &said("08:00:00.000", "a", "bob", "old", Some("h1")),
                &said("09:00:00.000", "b", "alice", "mine", Some("h1")),
                &said("10:05:00.000", "c", "bob", "live", Some("h1")),
                ":srv BATCH -h1",
            ],
        );
        let shown = texts(&c, "#lobby");
        assert_eq!(
            shown[1..],
            [
                "- Recent history of #lobby:",
                "<bob> old",
                "<alice> mine",
                "<bob> live",
                "- End of history (3 messages)",
            ]
        );
        let lobby = &c.state().buffers[c.state().find("#lobby").expect("lobby")];
        let times: Vec<String> = lobby.lines.iter().map(|l| l.time.to_string()).collect();
        assert_eq!(times[2..5], ["08:00", "09:00", "10:05"]);
        assert!(lobby.lines[2].history && lobby.lines[3].own);
        // The PONG after it ends nothing more; later lines come as they are said.
        lines(
            &mut c,
            &[
                ":srv PONG srv :palaver-history-1",
                &said("10:06:00.000", "d", "bob", "now", None),
            ],
        );
        assert_eq!(
            texts(&c, "#lobby").last().map(String::as_str),
            Some("<bob> now")
        );
    }

    /// Issue 10: after a reconnect the buffer asks for what came after the last
    /// message it saw, page by page, and shows each missed message once.
    #[test]
    fn a_reconnect_fills_the_gap_page_by_page() {
        let mut c = with_history(2);
        sent(&mut c);
        lines(
            &mut c,
            &[
                ":srv BATCH +h1 chathistory #lobby",
                ":srv BATCH -h1",
                &said("10:00:00.000", "a", "bob", "before the drop", None),
            ],
        );
        c.handle(
            ConnEvent::Disconnected {
                reason: "reset".into(),
                retry_in: Duration::from_secs(1),
            },
            NOW,
        );
        connect(&mut c);
        lines(
            &mut c,
            &[
                ":srv CAP * LS :batch draft/chathistory message-tags",
                ":srv CAP * ACK :batch message-tags draft/chathistory",
                ":srv 001 alice :Welcome back",
                ":srv 005 alice CHATHISTORY=2 :are supported",
                ":alice!a@h JOIN #lobby",
            ],
        );
        let out = sent(&mut c);
        assert_eq!(
            out[out.len() - 2..],
            [
                "CHATHISTORY AFTER #lobby timestamp=2026-12-02T09:59:59.999Z 2",
                "PING palaver-history-2"
            ]
        );
        lines(
            &mut c,
            &[
                ":srv BATCH +h2 chathistory #lobby",
                &said("10:00:00.000", "a", "bob", "before the drop", Some("h2")),
                &said("10:01:00.000", "b", "bob", "missed 1", Some("h2")),
                ":srv BATCH -h2",
                ":srv PONG srv :palaver-history-2",
            ],
        );
        assert_eq!(
            sent(&mut c),
            [
                "CHATHISTORY AFTER #lobby timestamp=2026-12-02T10:00:59.999Z 2",
                "PING palaver-history-3"
            ]
        );
        lines(
            &mut c,
            &[
                ":srv BATCH +h3 chathistory #lobby",
                &said("10:01:00.000", "b", "bob", "missed 1", Some("h3")),
                ":srv BATCH -h3",
            ],
        );
        assert!(sent(&mut c).is_empty(), "a short page ends the fill");
        let shown = texts(&c, "#lobby");
        let from = shown
            .iter()
            .position(|l| l == "<bob> before the drop")
            .expect("seen before");
        assert_eq!(
            shown[from + 1..]
                .iter()
                .filter(|l| !l.starts_with('!'))
                .cloned()
                .collect::<Vec<_>>(),
            [
                "* alice has joined #lobby",
                "- Said in #lobby since you were last there (from the server's history):",
                "<bob> missed 1",
                "- End of history (1 message)",
            ]
        );
    }

    /// Issue 10: a gap larger than the scrollback is fetched up to the
    /// scrollback's size, then the latest page follows a note: bounded work,
    /// and the newest messages are never the ones missing.
    #[test]
    fn a_gap_beyond_the_scrollback_jumps_to_the_latest_page() {
        let mut c = with_history(1000);
        lines(
            &mut c,
            &[
                ":srv BATCH +h1 chathistory #lobby",
                ":srv BATCH -h1",
                &said("09:00:00.000", "start", "bob", "seen", None),
            ],
        );
        c.handle(
            ConnEvent::Disconnected {
                reason: "reset".into(),
                retry_in: Duration::from_secs(1),
            },
            NOW,
        );
        connect(&mut c);
        lines(
            &mut c,
            &[
                ":srv CAP * LS :batch draft/chathistory message-tags",
                ":srv CAP * ACK :batch message-tags draft/chathistory",
                ":srv 001 alice :Welcome back",
                ":srv 005 alice CHATHISTORY=1000 :are supported",
                ":alice!a@h JOIN #lobby",
            ],
        );
        sent(&mut c);
        for page in 0..2 {
            let mut batch = vec![format!(":srv BATCH +p{page} chathistory #lobby")];
            for i in page * 1000..(page + 1) * 1000 {
                let at = format!("10:00:{:02}.{:03}", i / 1000, i % 1000);
                batch.push(said(
                    &at,
                    &format!("m{i}"),
                    "bob",
                    &format!("missed {i}"),
                    Some(&format!("p{page}")),
                ));
            }
            batch.push(format!(":srv BATCH -p{page}"));
            let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
            lines(&mut c, &batch);
            let out = sent(&mut c);
            if page == 0 {
                assert_eq!(
                    out[0],
                    "CHATHISTORY AFTER #lobby timestamp=2026-12-02T10:00:00.998Z 1000"
                );
            } else {
                assert_eq!(
                    out[0], "CHATHISTORY LATEST #lobby * 1000",
                    "no third AFTER page"
                );
            }
        }
        let shown = texts(&c, "#lobby");
        assert!(shown.len() <= crate::state::MAX_SCROLLBACK);
        assert!(
            shown
                .last()
                .is_some_and(|l| l.starts_with("- More than 2000 messages")),
            "{:?}",
            shown.last()
        );
    }

    /// Issue 10: a multiline message in history (a nested `draft/multiline`
    /// batch) is shown as its lines, joined where concatenated, with the batch's
    /// time, counted once; brought again by a later fill, it is not repeated.
    #[test]
    fn multiline_messages_in_history_are_shown_once() {
        let mut c = with_history(50);
        let batch = |outer: &str, inner: &str| -> Vec<String> {
            vec![
                format!(":srv BATCH +{outer} chathistory #lobby"),
                format!(
                    "@batch={outer};time=2026-12-02T08:00:00.000Z;msgid=m1 :bob!u@h BATCH +{inner} draft/multiline #lobby"
                ),
                format!("@batch={inner} :bob!u@h PRIVMSG #lobby :hello"),
                format!("@batch={inner};draft/multiline-concat :bob!u@h PRIVMSG #lobby : world"),
                format!("@batch={inner} :bob!u@h PRIVMSG #lobby :second"),
                format!("@batch={outer} :bob!u@h BATCH -{inner}"),
                format!(":srv BATCH -{outer}"),
            ]
        };
        let first = batch("h1", "ml1");
        lines(
            &mut c,
            &first.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let shown = texts(&c, "#lobby");
        assert_eq!(
            shown[1..],
            [
                "- Recent history of #lobby:",
                "<bob> hello world",
                "<bob> second",
                "- End of history (1 message)",
            ]
        );
        let lobby = &c.state().buffers[c.state().find("#lobby").expect("lobby")];
        assert_eq!(lobby.lines[2].time.to_string(), "08:00");
        lines(
            &mut c,
            &[":alice!a@h PART #lobby", ":alice!a@h JOIN #lobby"],
        );
        let again = batch("h2", "ml2");
        lines(
            &mut c,
            &again.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let shown = texts(&c, "#lobby");
        assert_eq!(
            shown[5..],
            ["* alice has left #lobby", "* alice has joined #lobby"]
        );
    }

    /// Issue 10: a server that answers a history request with nothing (no batch,
    /// only the PONG after it) does not keep live lines waiting.
    #[test]
    fn a_silent_server_ends_the_fill_at_the_pong() {
        let mut c = with_history(50);
        sent(&mut c);
        lines(
            &mut c,
            &[
                &said("10:00:00.000", "a", "bob", "held", None),
                ":srv PONG srv :palaver-history-1",
            ],
        );
        assert_eq!(
            texts(&c, "#lobby").last().map(String::as_str),
            Some("<bob> held")
        );
    }

    fn with_account(offer: &str) -> Client {
        let mut c = client();
        c.config.account = Some(Account {
            name: "alice".into(),
            password: Secret::new("pencil"),
            mechanism: None,
        });
        connect(&mut c);
        sent(&mut c);
        lines(&mut c, &[&format!(":srv CAP * LS :{offer}")]);
        c
    }

    /// Issue 10: PLAIN where the server offers only it; CAP END waits for 903.
    #[test]
    fn sasl_plain_logs_in_before_registration_ends() {
        let mut c = with_account("sasl=PLAIN");
        assert_eq!(sent(&mut c), ["CAP REQ :sasl"]);
        lines(&mut c, &[":srv CAP * ACK :sasl"]);
        assert_eq!(sent(&mut c), ["AUTHENTICATE PLAIN"]);
        lines(&mut c, &["AUTHENTICATE +"]);
        // base64 of "\0alice\0pencil"
        assert_eq!(sent(&mut c), ["AUTHENTICATE AGFsaWNlAHBlbmNpbA=="]);
        lines(
            &mut c,
            &[
                ":srv 900 alice alice!a@h alice :You are now logged in as alice",
                ":srv 903 alice :SASL authentication successful",
            ],
        );
        assert_eq!(sent(&mut c), ["CAP END"]);
        assert_eq!(c.logged_in(), Some("alice"));
        assert!(format!("{:?}", c.config).contains("<redacted>"));
        assert!(!format!("{:?}", c.config).contains("pencil"));
    }

    /// Issue 10: SCRAM-SHA-256 is chosen where offered; a wrong password is said
    /// in words and registration goes on without an account.
    #[test]
    fn sasl_scram_is_preferred_and_a_failure_is_explained() {
        let mut c = with_account("sasl=PLAIN,SCRAM-SHA-256 server-time");
        assert_eq!(sent(&mut c), ["CAP REQ :sasl"]);
        lines(&mut c, &[":srv CAP * ACK :sasl"]);
        assert_eq!(sent(&mut c), ["AUTHENTICATE SCRAM-SHA-256"]);
        lines(&mut c, &["AUTHENTICATE +"]);
        let first = sent(&mut c);
        let payload = first[0].strip_prefix("AUTHENTICATE ").expect("a payload");
        let first = sasl::decode(payload).expect("base64");
        assert!(first.starts_with(b"n,,n=alice,r="), "{first:?}");
        lines(&mut c, &[":srv 904 alice :SASL authentication failed"]);
        assert_eq!(sent(&mut c), ["CAP END"]);
        assert_eq!(
            texts(&c, "*server*").last().map(String::as_str),
            Some(
                "! Login to the account alice failed: SASL authentication failed; continuing without an account"
            )
        );
        assert_eq!(c.logged_in(), None);
    }

    /// Issue 10: a server that turns the mechanism down (908 lists its own) gets
    /// the next one we speak.
    #[test]
    fn sasl_moves_to_plain_when_scram_is_turned_down() {
        let mut c = with_account("sasl");
        lines(&mut c, &[":srv CAP * ACK :sasl"]);
        assert_eq!(sent(&mut c)[1..], ["AUTHENTICATE SCRAM-SHA-256"]);
        lines(
            &mut c,
            &[
                ":srv 908 alice PLAIN :are available SASL mechanisms",
                ":srv 904 alice :SASL authentication failed",
            ],
        );
        assert_eq!(sent(&mut c), ["AUTHENTICATE PLAIN"]);
    }

    /// Issue 10: a server without history says so once; the client stops
    /// asking on that connection and shows what was held.
    #[test]
    fn history_refused_by_the_server_is_not_asked_again() {
        let mut c = with_history(50);
        sent(&mut c);
        lines(
            &mut c,
            &[
                &said("10:00:00.000", "a", "bob", "held", None),
                ":srv FAIL CHATHISTORY MESSAGE_ERROR LATEST :History is off on this server",
                ":alice!a@h JOIN #rust",
            ],
        );
        let shown = texts(&c, "#lobby");
        assert_eq!(
            shown[shown.len() - 2..],
            [
                "- No history for #lobby: History is off on this server",
                "<bob> held"
            ]
        );
        assert!(sent(&mut c).is_empty(), "no request for #rust");
    }

    /// Issue 10: when logged in, private conversations that had messages are
    /// filled after the welcome burst of a reconnect.
    #[test]
    fn private_conversations_are_filled_when_logged_in() {
        let mut c = with_history(50);
        lines(
            &mut c,
            &[
                ":srv BATCH +h1 chathistory #lobby",
                ":srv BATCH -h1",
                "@time=2026-12-02T10:00:00.000Z;msgid=p1 :bob!b@h PRIVMSG alice :psst",
                ":srv 376 alice :End of MOTD",
            ],
        );
        sent(&mut c);
        c.state.account = Some("alice".into());
        lines(&mut c, &[":srv 376 alice :End of MOTD"]);
        assert_eq!(
            sent(&mut c),
            [
                "CHATHISTORY AFTER bob timestamp=2026-12-02T09:59:59.999Z 50",
                "PING palaver-history-2"
            ]
        );
    }

    #[test]
    fn a_refused_join_still_makes_the_client_ready() {
        let mut c = client();
        connect(&mut c);
        lines(&mut c, &[":srv 001 alice :Welcome"]);
        let changes = lines(&mut c, &[":srv 474 alice #lobby :Cannot join channel (+b)"]);
        assert!(changes.contains(&Change::Ready));
        assert_eq!(
            texts(&c, "*server*").last().map(String::as_str),
            Some("! #lobby: Cannot join channel (+b)")
        );
    }

    #[test]
    fn names_modes_nicks_and_quits_keep_the_nick_list() {
        let mut c = in_lobby();
        let lobby = c.state().find("#lobby").expect("lobby");
        let list = |c: &Client| -> Vec<String> {
            let order = c.state().prefix_order();
            c.state().buffers[lobby]
                .sorted_members(&order)
                .iter()
                .map(|m| format!("{}{}", m.prefixes, m.nick))
                .collect()
        };
        assert_eq!(list(&c), ["@carol", "+bob", "alice"]);
        lines(
            &mut c,
            &[
                ":carol!c@h MODE #lobby +o-v bob bob",
                ":dave!d@h JOIN #LOBBY",
                ":bob!b@h NICK Bobby",
                ":carol!c@h QUIT :gone",
                ":dave!d@h PART #lobby :bye",
            ],
        );
        assert_eq!(list(&c), ["@Bobby", "alice"]);
        assert_eq!(
            texts(&c, "#lobby")[2..],
            [
                "* carol sets mode +o-v bob bob",
                "* dave has joined #LOBBY",
                "* bob is now known as Bobby",
                "* carol has quit (gone)",
                "* dave has left #lobby (bye)",
            ]
        );
    }

    #[test]
    fn messages_go_to_their_buffers_and_mentions_are_counted() {
        let mut c = in_lobby();
        lines(
            &mut c,
            &[
                ":bob!b@h PRIVMSG #lobby :hello all",
                ":bob!b@h PRIVMSG alice :psst",
                ":bob!b@h PRIVMSG #lobby :\u{1}ACTION waves at Alice\u{1}",
            ],
        );
        let query = c.state().find("bob").expect("query opened");
        assert_eq!(texts(&c, "bob"), ["<bob> psst"]);
        assert_eq!(c.state().buffers[query].mentions, 1);
        let lobby = &c.state().buffers[c.state().active];
        let last = lobby.lines.back().expect("line");
        assert_eq!(last.plain(), "* bob waves at Alice");
        assert!(last.highlight);
        // The active buffer does not count unread lines.
        assert_eq!((lobby.unread, lobby.mentions), (0, 0));
    }

    /// Issue 12: a multiline message from another client shows its lines, with
    /// the concatenated ones joined, and nothing of the batch framing.
    #[test]
    fn multiline_batches_show_their_lines() {
        let mut c = in_lobby();
        lines(
            &mut c,
            &[
                ":bob!b@h BATCH +a draft/multiline #lobby",
                "@batch=a :bob!b@h PRIVMSG #lobby :hello",
                "@batch=a;draft/multiline-concat :bob!b@h PRIVMSG #lobby : world",
                "@batch=a :bob!b@h PRIVMSG #lobby :second line",
                ":bob!b@h BATCH -a",
            ],
        );
        let shown = texts(&c, "#lobby");
        assert_eq!(
            shown[shown.len() - 2..],
            ["<bob> hello world", "<bob> second line"]
        );
        assert!(texts(&c, "*server*").iter().all(|l| !l.contains("BATCH")));
    }

    #[test]
    fn input_becomes_lines_and_own_echo() {
        let mut c = in_lobby();
        let changes = c.input("hi there", NOW);
        assert!(matches!(&changes[..], [Change::Line { line, .. }] if line.own));
        c.input("/me dances", NOW);
        c.input("/msg bob secret", NOW);
        c.input("/quote MODE #lobby +m", NOW);
        c.input("/topic new topic", NOW);
        assert_eq!(
            sent(&mut c),
            [
                "PRIVMSG #lobby :hi there",
                "PRIVMSG #lobby :\u{1}ACTION dances\u{1}",
                "PRIVMSG bob :secret",
                "MODE #lobby +m",
                "TOPIC #lobby :new topic",
            ]
        );
        assert_eq!(
            texts(&c, "#lobby").last().map(String::as_str),
            Some("* alice dances")
        );
    }

    #[test]
    fn unknown_commands_send_nothing() {
        let mut c = in_lobby();
        let changes = c.input("/frob x", NOW);
        assert!(!c.has_outgoing());
        assert!(
            matches!(&changes[..], [Change::Line { line, .. }] if line.kind == LineKind::Error)
        );
    }

    #[test]
    fn long_text_is_split_without_losing_bytes() {
        let mut c = in_lobby();
        let text = "word ".repeat(200);
        c.input(&text, NOW);
        let out = sent(&mut c);
        assert!(out.len() >= 3, "{out:?}");
        assert!(out.iter().all(|l| l.len() + 2 <= 512));
        let joined: Vec<&str> = out
            .iter()
            .map(|l| l.trim_start_matches("PRIVMSG #lobby :"))
            .collect();
        assert_eq!(joined.join(" ").split_whitespace().count(), 200);
    }

    #[test]
    fn reconnect_rejoins_wanted_channels_only() {
        let mut c = in_lobby();
        lines(
            &mut c,
            &[
                ":alice!a@h JOIN #rust",
                ":alice!a@h JOIN #tmp",
                ":alice!a@h PART #tmp",
            ],
        );
        let changes = c.handle(
            ConnEvent::Disconnected {
                reason: "reset".into(),
                retry_in: Duration::from_secs(2),
            },
            NOW,
        );
        assert!(changes.contains(&Change::Status));
        assert!(
            c.state()
                .buffers
                .iter()
                .all(|b| !b.joined && b.members.is_empty())
        );
        assert!(
            c.input("still there?", NOW)
                .iter()
                .any(|ch| matches!(ch, Change::Line { line, .. } if line.kind == LineKind::Error))
        );
        let peer = "127.0.0.1:6667".parse().expect("address");
        c.handle(
            ConnEvent::Connected {
                generation: 2,
                peer,
            },
            NOW,
        );
        lines(&mut c, &[":srv 001 alice :Welcome back"]);
        assert_eq!(
            sent(&mut c),
            [
                "CAP LS 302",
                "NICK alice",
                "USER alice 0 * :alice (palaver)",
                "JOIN #lobby",
                "JOIN #rust"
            ]
        );
        // The rejoin does not steal focus from where the user is.
        let active = c.state().active;
        lines(&mut c, &[":alice!a@h JOIN #rust"]);
        assert_eq!(c.state().active, active);
    }

    /// Issue 12, bug 6: "Connecting to" names the address dialled, not the name
    /// the server gave itself.
    #[test]
    fn connecting_names_the_address_dialled() {
        let mut c = in_lobby();
        assert_eq!(c.state().server, "srv");
        c.handle(
            ConnEvent::Disconnected {
                reason: "reset".into(),
                retry_in: Duration::from_secs(1),
            },
            NOW,
        );
        c.handle(ConnEvent::Connecting { attempt: 2 }, NOW);
        assert_eq!(
            texts(&c, "*server*").last().map(String::as_str),
            Some("- Connecting to test:6667 (attempt 2)")
        );
    }

    /// Issue 12, bug 8: `/nick` is checked against the server's NICKLEN.
    #[test]
    fn nick_is_checked_against_nicklen() {
        let mut c = in_lobby();
        lines(&mut c, &[":srv 005 alice NICKLEN=9 :are supported"]);
        let changes = c.input("/nick abcdefghij", NOW);
        assert!(sent(&mut c).is_empty());
        assert!(changes.iter().any(|ch| matches!(ch,
            Change::Line { line, .. } if line.text.contains("at most 9 characters"))));
        c.input("/nick abcdefghi", NOW);
        assert_eq!(sent(&mut c), ["NICK abcdefghi"]);
    }

    /// Issue 12: `/help COMMAND` explains one command; unknown ones say so.
    #[test]
    fn help_explains_one_command() {
        let mut c = in_lobby();
        c.input("/help kick", NOW);
        let shown = texts(&c, "#lobby");
        assert!(
            shown.contains(
                &"- /kick [#channel] nick [reason]: remove someone from the channel".to_owned()
            ),
            "{shown:?}"
        );
        assert!(shown.iter().any(|l| l.contains("operators only")));
        c.input("/help frob", NOW);
        assert_eq!(
            texts(&c, "#lobby").last().map(String::as_str),
            Some("! there is no command /frob: /help lists them")
        );
        assert!(sent(&mut c).is_empty());
    }

    #[test]
    fn close_parts_and_quit_queues_quit() {
        let mut c = in_lobby();
        c.input("/close", NOW);
        assert_eq!(c.state().active, SERVER_BUFFER);
        assert!(c.input("/quit bye", NOW).contains(&Change::Quit));
        assert_eq!(sent(&mut c), ["PART #lobby", "QUIT :bye"]);
    }

    #[test]
    fn split_text_respects_char_boundaries() {
        let text = "é".repeat(100);
        let pieces = split_text(&text, 51);
        assert!(pieces.iter().all(|p| p.len() <= 51));
        assert_eq!(pieces.concat(), text);
    }
}
