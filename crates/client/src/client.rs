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
use palaver_proto::writer::write_message;
use palaver_proto::{CaseKey, CaseMapping, LineWriter, Message, Source, numeric};

use crate::commands::{self, Command, Hint};
use crate::connection::{ConnEvent, Refusal, ToConn, refusal};
use crate::state::{
    BufferKind, ConnState, Delivery, Line, LineKind, SERVER_BUFFER, Stamp, State, mentions,
};

/// Most lines waiting for the connection task; beyond it input is refused with a
/// message rather than queued without bound.
pub const MAX_OUTGOING: usize = 256;

/// Bytes of text per PRIVMSG: the 512-byte line minus the command, the target and
/// room for the `:nick!user@host` prefix the server adds when relaying.
const TEXT_BUDGET: usize = 400;

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
    /// Channels joined after registering.
    pub channels: Vec<String>,
}

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
            channels,
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
            outgoing: VecDeque::new(),
            changes: Vec::new(),
            now: Stamp::default(),
            barriers: 0,
            barrier_seq: 0,
            echo: false,
        }
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
                if let Some(password) = self.config.password.clone() {
                    self.send("PASS", &[&password]);
                }
                // echo-message tells which of our messages were delivered. A server
                // without CAP ignores this (or answers 421) and registers us anyway;
                // one with CAP waits for CAP END, sent on its ACK or NAK.
                self.send_trailing("CAP", &["REQ"], "echo-message");
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
                self.registered = false;
                self.state.lag = None;
                let advice = match refusal {
                    Refusal::Password => "set the password with /password SECRET, then /reconnect",
                    Refusal::Full => "not retrying: /reconnect to try again later",
                    Refusal::Banned => "retrying will not help (/reconnect tries anyway)",
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

    // --- server lines -------------------------------------------------------------

    fn handle_line(&mut self, text: &str) {
        let Ok(msg) = Message::parse(text) else {
            return;
        };
        let from = msg.source().map(Source::split);
        let nick = from.map(|s| s.nick).unwrap_or("");
        let command = msg.command().to_ascii_uppercase();
        match command.as_str() {
            numeric::RPL_WELCOME => self.on_welcome(&msg),
            numeric::RPL_ISUPPORT => self.on_isupport(&msg),
            numeric::ERR_NICKNAMEINUSE
            | numeric::ERR_ERRONEUSNICKNAME
            | numeric::ERR_NICKCOLLISION
                if !self.registered =>
            {
                self.on_nick_refused(&msg)
            }
            "JOIN" => self.on_join(nick, msg.param(0).unwrap_or("")),
            "PART" => {
                let reason = msg.param(1).filter(|r| !r.is_empty());
                self.on_leave(nick, msg.param(0).unwrap_or(""), None, reason);
            }
            "KICK" => self.on_leave(
                msg.param(1).unwrap_or(""),
                msg.param(0).unwrap_or(""),
                Some(nick),
                msg.param(2),
            ),
            "QUIT" => self.on_quit(nick, msg.param(0).unwrap_or("")),
            "NICK" => self.on_nick(nick, msg.param(0).unwrap_or("")),
            "PRIVMSG" | "NOTICE" => self.on_message(&msg, from, &command),
            "TOPIC" => {
                let channel = msg.param(0).unwrap_or("");
                let topic = msg.param(1).unwrap_or("");
                if let Some(index) = self.state.find(channel) {
                    self.state.buffers[index].topic = (!topic.is_empty()).then(|| topic.to_owned());
                    let text = format!("{nick} changed the topic to: {topic}");
                    self.info(index, LineKind::Event, text);
                }
            }
            numeric::RPL_TOPIC => {
                let (channel, topic) = (msg.param(1).unwrap_or(""), msg.param(2).unwrap_or(""));
                let index = self.state.find(channel).unwrap_or(self.state.active);
                if self.state.buffers[index].kind == BufferKind::Channel {
                    self.state.buffers[index].topic = Some(topic.to_owned());
                }
                self.info(
                    index,
                    LineKind::Event,
                    format!("Topic for {channel}: {topic}"),
                );
            }
            numeric::RPL_NOTOPIC => {
                let channel = msg.param(1).unwrap_or("");
                let index = self.state.find(channel).unwrap_or(self.state.active);
                self.info(
                    index,
                    LineKind::Event,
                    format!("No topic is set for {channel}"),
                );
            }
            numeric::RPL_TOPICWHOTIME => {}
            numeric::RPL_NAMREPLY => self.on_names(&msg),
            numeric::RPL_ENDOFNAMES => self.on_end_of_names(msg.param(1).unwrap_or("")),
            "MODE" => self.on_mode(nick, &msg),
            // A refusal is told once, by the connection's `Refused` event.
            "ERROR" if refusal(&command, last(&msg)).is_some() => {}
            numeric::ERR_PASSWDMISMATCH => {}
            "ERROR" => {
                let text = format!("Server error: {}", msg.param(0).unwrap_or(""));
                self.info(SERVER_BUFFER, LineKind::Error, text);
            }
            "INVITE" => {
                let channel = msg.param(1).unwrap_or("");
                let text = format!("{nick} invites you to {channel}: /join {channel}");
                self.info(self.state.active, LineKind::Event, text);
            }
            numeric::RPL_UNAWAY | numeric::RPL_NOWAWAY => {
                self.state.away = command == numeric::RPL_NOWAWAY;
                self.changes.push(Change::Status);
                self.info(SERVER_BUFFER, LineKind::Info, last(&msg).to_owned());
            }
            numeric::RPL_AWAY => {
                let who = msg.param(1).unwrap_or("");
                let index = self.state.find(who).unwrap_or(self.state.active);
                self.info(
                    index,
                    LineKind::Info,
                    format!("{who} is away: {}", last(&msg)),
                );
            }
            numeric::RPL_WHOISUSER
            | numeric::RPL_WHOISSERVER
            | numeric::RPL_WHOISOPERATOR
            | numeric::RPL_WHOISIDLE
            | numeric::RPL_WHOISCHANNELS
            | RPL_WHOISACCOUNT
            | numeric::RPL_WHOISSECURE
            | numeric::RPL_ENDOFWHOIS => {
                self.on_whois(&command, &msg);
            }
            "PONG" if last(&msg).starts_with(SYNC_TOKEN) => {
                self.barriers = self.barriers.saturating_sub(1);
            }
            "CAP" => self.on_cap(&msg),
            numeric::ERR_UNKNOWNCOMMAND if msg.param(1) == Some("CAP") => {}
            numeric::ERR_CANNOTSENDTOCHAN | numeric::ERR_NOSUCHNICK => {
                self.not_delivered(msg.param(1).unwrap_or(""));
                self.on_other(&command, &msg);
            }
            "PONG" | "PING" => {}
            _ => self.on_other(&command, &msg),
        }
    }

    fn on_cap(&mut self, msg: &Message<'_>) {
        let Some(verb) = msg.param(1) else {
            return;
        };
        if self.registered {
            return;
        }
        match verb.to_ascii_uppercase().as_str() {
            "ACK" => {
                self.echo = last(msg)
                    .split(' ')
                    .any(|cap| cap.eq_ignore_ascii_case("echo-message"));
                self.send("CAP", &["END"]);
            }
            "NAK" => self.send("CAP", &["END"]),
            _ => {}
        }
    }

    /// Marks our message to `target` that the server just refused as not delivered:
    /// with echo-message the oldest still pending (replies come in order), without
    /// it the newest sent.
    fn not_delivered(&mut self, target: &str) {
        let Some(index) = self.state.find(target) else {
            return;
        };
        let lines = &mut self.state.buffers[index].lines;
        let line = if self.echo {
            lines
                .iter_mut()
                .find(|l| l.own && l.delivery == Delivery::Pending)
        } else {
            lines
                .iter_mut()
                .rev()
                .find(|l| l.own && l.delivery == Delivery::Sent)
        };
        if let Some(line) = line {
            line.delivery = Delivery::Failed;
            self.changes.push(Change::Buffers);
        }
    }

    /// With echo-message: our message to `index` came back, so it was delivered.
    /// Returns false when no pending line matches (sent by another client of ours,
    /// or with /quote), which is then shown like any message.
    fn delivered(&mut self, index: usize, kind: LineKind, text: &str) -> bool {
        let line = self.state.buffers[index]
            .lines
            .iter_mut()
            .find(|l| l.own && l.delivery == Delivery::Pending && l.kind == kind && l.text == text);
        match line {
            Some(line) => {
                line.delivery = Delivery::Sent;
                self.changes.push(Change::Buffers);
                true
            }
            None => false,
        }
    }

    fn on_welcome(&mut self, msg: &Message<'_>) {
        self.registered = true;
        if let Some(nick) = msg.param(0) {
            self.state.nick = nick.to_owned();
            self.config.nick = nick.to_owned();
        }
        if let Some(server) = msg.source() {
            self.state.server = server.to_owned();
        }
        self.state.conn = ConnState::Connected;
        self.changes.push(Change::Status);
        self.info(SERVER_BUFFER, LineKind::Info, last(msg).to_owned());
        let channels: Vec<String> = if self.registered_once {
            self.state
                .buffers
                .iter()
                .filter(|b| b.kind == BufferKind::Channel && b.wanted)
                .map(|b| b.name.clone())
                .collect()
        } else {
            self.config.channels.clone()
        };
        self.registered_once = true;
        self.pending_joins.clear();
        for channel in channels {
            self.pending_joins.insert(self.state.key(&channel));
            self.send("JOIN", &[&channel]);
        }
        if self.pending_joins.is_empty() {
            self.changes.push(Change::Ready);
        }
    }

    fn on_isupport(&mut self, msg: &Message<'_>) {
        let params = msg.params();
        let tokens = params.get(1..params.len().saturating_sub(1)).unwrap_or(&[]);
        for token in tokens {
            let (key, value) = token.split_once('=').unwrap_or((token, ""));
            match key {
                "CASEMAPPING" => {
                    let mapping = match value {
                        "ascii" => CaseMapping::Ascii,
                        _ => CaseMapping::Rfc1459,
                    };
                    self.state.set_casemapping(mapping);
                }
                "PREFIX" => {
                    if let Some((modes, prefixes)) =
                        value.strip_prefix('(').and_then(|v| v.split_once(')'))
                    {
                        self.state.prefixes = modes.chars().zip(prefixes.chars()).collect();
                    }
                }
                "CHANTYPES" if !value.is_empty() => self.state.chantypes = value.to_owned(),
                "NICKLEN" => {
                    if let Ok(len) = value.parse::<usize>()
                        && len > 0
                    {
                        self.state.nicklen = len;
                    }
                }
                "CHANMODES" => {
                    for (slot, kind) in self.chanmodes.iter_mut().zip(value.split(',')) {
                        *slot = kind.to_owned();
                    }
                }
                _ => {}
            }
        }
    }

    fn on_nick_refused(&mut self, msg: &Message<'_>) {
        let refused = msg.param(1).unwrap_or(&self.state.nick).to_owned();
        let reason = last(msg).to_owned();
        if msg.command() == numeric::ERR_NICKNAMEINUSE && self.nick_retries < MAX_NICK_RETRIES {
            self.nick_retries += 1;
            let next = format!("{refused}_");
            let text = format!("Nick {refused} is taken, trying {next}");
            self.info(SERVER_BUFFER, LineKind::Info, text);
            self.state.nick = next.clone();
            self.send("NICK", &[&next]);
            self.changes.push(Change::Status);
        } else {
            let text = format!(
                "The server refused the nick {refused} ({reason}): choose one with /nick NAME"
            );
            self.info(SERVER_BUFFER, LineKind::Error, text);
            self.state.set_active(SERVER_BUFFER);
            self.changes.push(Change::Buffers);
        }
    }

    fn on_join(&mut self, nick: &str, channel: &str) {
        if channel.is_empty() {
            return;
        }
        if self.state.is_me(nick) {
            let index = self.state.ensure(channel, BufferKind::Channel);
            let key = self.state.buffers[index].key.clone();
            let buffer = &mut self.state.buffers[index];
            buffer.joined = true;
            buffer.wanted = true;
            buffer.members.clear();
            buffer.names_done = true;
            self.add_member(index, nick, String::new());
            if self.focus_on_join.remove(&key) {
                self.state.set_active(index);
            }
            self.info(
                index,
                LineKind::Event,
                format!("{nick} has joined {channel}"),
            );
            self.changes.push(Change::Buffers);
            self.join_settled(&key);
        } else if let Some(index) = self.state.find(channel) {
            self.add_member(index, nick, String::new());
            self.info(
                index,
                LineKind::Event,
                format!("{nick} has joined {channel}"),
            );
        }
    }

    fn join_settled(&mut self, key: &CaseKey) {
        if self.pending_joins.remove(key) && self.pending_joins.is_empty() {
            self.changes.push(Change::Ready);
        }
    }

    /// A PART (`by` is None) or a KICK of `nick` from `channel`.
    fn on_leave(&mut self, nick: &str, channel: &str, by: Option<&str>, reason: Option<&str>) {
        let Some(index) = self.state.find(channel) else {
            return;
        };
        let reason = reason.map(|r| format!(" ({r})")).unwrap_or_default();
        let text = match by {
            Some(kicker) => format!("{kicker} kicked {nick} from {channel}{reason}"),
            None => format!("{nick} has left {channel}{reason}"),
        };
        if self.state.is_me(nick) {
            let buffer = &mut self.state.buffers[index];
            buffer.joined = false;
            buffer.wanted = false;
            buffer.members.clear();
            self.changes.push(Change::Buffers);
        } else {
            let key = self.state.key(nick);
            self.state.buffers[index].members.remove(&key);
        }
        self.info(index, LineKind::Event, text);
    }

    fn on_quit(&mut self, nick: &str, reason: &str) {
        let text = format!("{nick} has quit ({reason})");
        let key = self.state.key(nick);
        for index in self.state.channels_with(nick) {
            self.state.buffers[index].members.remove(&key);
            self.info(index, LineKind::Event, text.clone());
        }
        if let Some(index) = self.state.find(nick) {
            self.info(index, LineKind::Event, text);
        }
    }

    fn on_nick(&mut self, old: &str, new: &str) {
        if new.is_empty() {
            return;
        }
        let me = self.state.is_me(old);
        let text = if me {
            format!("You are now known as {new}")
        } else {
            format!("{old} is now known as {new}")
        };
        let (old_key, new_key) = (self.state.key(old), self.state.key(new));
        let mut shown = Vec::new();
        for index in self.state.channels_with(old) {
            let members = &mut self.state.buffers[index].members;
            if let Some(mut member) = members.remove(&old_key) {
                member.nick = new.to_owned();
                members.insert(new_key.clone(), member);
            }
            shown.push(index);
        }
        if let Some(index) = self.state.find(old) {
            let buffer = &mut self.state.buffers[index];
            if buffer.kind == BufferKind::Query {
                buffer.name = new.to_owned();
                buffer.key = new_key.clone();
                shown.push(index);
                self.changes.push(Change::Buffers);
            }
        }
        if me {
            self.state.nick = new.to_owned();
            self.config.nick = new.to_owned();
            self.changes.push(Change::Status);
            shown.push(SERVER_BUFFER);
        }
        for index in shown {
            self.info(index, LineKind::Event, text.clone());
        }
    }

    fn on_message(&mut self, msg: &Message<'_>, from: Option<Source<'_>>, command: &str) {
        let target = msg.param(0).unwrap_or("");
        let mut text = msg.param(1).unwrap_or("");
        let nick = from.map(|s| s.nick).unwrap_or("");
        let notice = command == "NOTICE";
        let from_server =
            from.is_none_or(|s| s.user.is_none() && s.host.is_none()) || nick.is_empty();
        let mut kind = if notice {
            LineKind::Notice
        } else {
            LineKind::Message
        };
        if let Some(ctcp) = text.strip_prefix('\u{1}') {
            let ctcp = ctcp.strip_suffix('\u{1}').unwrap_or(ctcp);
            let (verb, rest) = ctcp.split_once(' ').unwrap_or((ctcp, ""));
            if verb.eq_ignore_ascii_case("ACTION") {
                kind = LineKind::Action;
                text = rest;
            } else {
                self.on_ctcp(nick, verb, rest, notice);
                return;
            }
        }
        if from_server && notice {
            self.push_message(SERVER_BUFFER, kind, nick, text, false);
            return;
        }
        let own = self.state.is_me(nick);
        let channel_target = target.trim_start_matches(|c| self.state.prefix_order().contains(c));
        let index = if self.state.is_channel(channel_target) {
            self.state.ensure(channel_target, BufferKind::Channel)
        } else if own {
            self.state.ensure(target, BufferKind::Query)
        } else if notice {
            self.state.find(nick).unwrap_or(self.state.active)
        } else {
            self.state.ensure(nick, BufferKind::Query)
        };
        if own && self.echo && !notice && self.delivered(index, kind, text) {
            return;
        }
        let private = self.state.buffers[index].kind == BufferKind::Query;
        let highlight = !own
            && ((private && !notice) || mentions(self.state.casemapping, text, &self.state.nick));
        let line = Line {
            time: self.now,
            kind,
            nick: Some(nick.to_owned()),
            text: text.to_owned(),
            highlight,
            own,
            delivery: Delivery::Sent,
        };
        self.push(index, line);
    }

    fn on_ctcp(&mut self, nick: &str, verb: &str, rest: &str, reply: bool) {
        if reply {
            let text = format!("CTCP {verb} reply from {nick}: {rest}");
            self.info(self.state.active, LineKind::Info, text);
            return;
        }
        let answer = match verb.to_ascii_uppercase().as_str() {
            "VERSION" => Some(format!(
                "VERSION palaver-client {}",
                env!("CARGO_PKG_VERSION")
            )),
            "PING" => Some(format!("PING {rest}")),
            _ => None,
        };
        if let Some(answer) = answer
            && self.registered
        {
            self.send_trailing("NOTICE", &[nick], &format!("\u{1}{answer}\u{1}"));
        }
        let text = format!("{nick} sent CTCP {verb}");
        self.info(SERVER_BUFFER, LineKind::Info, text);
    }

    fn on_names(&mut self, msg: &Message<'_>) {
        let channel = msg.param(2).unwrap_or("");
        let names = msg.param(3).unwrap_or("");
        match self.state.find(channel) {
            Some(index) if self.state.buffers[index].joined => {
                if self.state.buffers[index].names_done {
                    self.state.buffers[index].members.clear();
                    self.state.buffers[index].names_done = false;
                }
                for entry in names.split(' ').filter(|e| !e.is_empty()) {
                    let (prefixes, nick) = self.state.split_prefixes(entry);
                    self.add_member(index, nick, prefixes);
                }
            }
            _ => {
                let text = format!("Users on {channel}: {names}");
                self.info(self.state.active, LineKind::Info, text);
            }
        }
    }

    fn on_end_of_names(&mut self, channel: &str) {
        let Some(index) = self.state.find(channel) else {
            return;
        };
        self.state.buffers[index].names_done = true;
        let key = self.state.buffers[index].key.clone();
        let count = self.state.buffers[index].members.len();
        if self.names_requested.remove(&key) {
            let order = self.state.prefix_order();
            let names: Vec<String> = self.state.buffers[index]
                .sorted_members(&order)
                .iter()
                .map(|m| {
                    format!(
                        "{}{}",
                        m.prefix().map(String::from).unwrap_or_default(),
                        m.nick
                    )
                })
                .collect();
            let text = format!("Users on {channel} ({count}): {}", names.join(" "));
            self.info(index, LineKind::Info, text);
        } else if self.state.buffers[index].joined {
            let text = format!(
                "{channel}: {count} user{}",
                if count == 1 { "" } else { "s" }
            );
            self.info(index, LineKind::Info, text);
        }
    }

    fn on_mode(&mut self, nick: &str, msg: &Message<'_>) {
        let target = msg.param(0).unwrap_or("");
        let params = msg.params();
        let change = params.get(1..).unwrap_or(&[]).join(" ");
        if !self.state.is_channel(target) {
            let text = format!("Mode {change} for {target}");
            self.info(SERVER_BUFFER, LineKind::Info, text);
            return;
        }
        let Some(index) = self.state.find(target) else {
            return;
        };
        let modes = msg.param(1).unwrap_or("");
        let mut args = params.get(2..).unwrap_or(&[]).iter();
        let mut adding = true;
        for mode in modes.chars() {
            match mode {
                '+' => adding = true,
                '-' => adding = false,
                _ => {
                    let prefix = self
                        .state
                        .prefixes
                        .iter()
                        .find(|&&(m, _)| m == mode)
                        .map(|&(_, p)| p);
                    let takes_arg = prefix.is_some()
                        || self.chanmodes[0].contains(mode)
                        || self.chanmodes[1].contains(mode)
                        || (adding && self.chanmodes[2].contains(mode));
                    let arg = if takes_arg {
                        args.next().copied()
                    } else {
                        None
                    };
                    if let (Some(prefix), Some(who)) = (prefix, arg) {
                        let key = self.state.key(who);
                        let order = self.state.prefix_order();
                        if let Some(member) = self.state.buffers[index].members.get_mut(&key) {
                            let mut held: Vec<char> = member.prefixes.chars().collect();
                            held.retain(|&p| p != prefix);
                            if adding {
                                held.push(prefix);
                            }
                            member.prefixes = order.chars().filter(|p| held.contains(p)).collect();
                        }
                    }
                }
            }
        }
        self.info(index, LineKind::Event, format!("{nick} sets mode {change}"));
    }

    fn on_whois(&mut self, command: &str, msg: &Message<'_>) {
        let who = msg.param(1).unwrap_or("");
        let p = |i| msg.param(i).unwrap_or("");
        let text = match command {
            numeric::RPL_WHOISUSER => format!("{who} is {}@{} ({})", p(2), p(3), last(msg)),
            numeric::RPL_WHOISSERVER => format!("{who} is on {} ({})", p(2), last(msg)),
            numeric::RPL_WHOISOPERATOR => format!("{who} is an IRC operator"),
            numeric::RPL_WHOISIDLE => format!("{who} has been idle {}s", p(2)),
            numeric::RPL_WHOISCHANNELS => format!("{who} is in {}", last(msg)),
            RPL_WHOISACCOUNT => format!("{who} is logged in as {}", p(2)),
            numeric::RPL_WHOISSECURE => format!("{who} is using a secure connection"),
            _ => return,
        };
        self.info(self.state.active, LineKind::Info, text);
    }

    fn on_other(&mut self, command: &str, msg: &Message<'_>) {
        let numeric = command.len() == 3 && command.bytes().all(|b| b.is_ascii_digit());
        let params = msg.params();
        // Numerics start with our nick; it says nothing to the user.
        let shown = if numeric {
            params.get(1..).unwrap_or(&[])
        } else {
            params
        };
        let text = match shown.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, middle)) => {
                let error = numeric && matches!(command.as_bytes()[0], b'4' | b'5');
                // Errors name their subject ("#chan: Cannot join"); replies read on.
                format!(
                    "{}{} {last}",
                    middle.join(" "),
                    if error { ":" } else { "" }
                )
            }
            None => return,
        };
        let error = numeric && matches!(command.as_bytes()[0], b'4' | b'5');
        if error {
            if matches!(
                command,
                numeric::ERR_NOSUCHCHANNEL
                    | numeric::ERR_TOOMANYCHANNELS
                    | numeric::ERR_CHANNELISFULL
                    | numeric::ERR_INVITEONLYCHAN
                    | numeric::ERR_BANNEDFROMCHAN
                    | numeric::ERR_BADCHANNELKEY
                    | numeric::ERR_BADCHANMASK
                    | ERR_NEEDREGGEDNICK
                    | ERR_BADCHANNAME
            ) && let Some(channel) = msg.param(1)
            {
                let key = self.state.key(channel);
                self.join_settled(&key);
            }
            self.info(self.state.active, LineKind::Error, text);
        } else if matches!(
            command,
            numeric::RPL_MYINFO | numeric::RPL_CHANNELMODEIS | numeric::RPL_CREATIONTIME
        ) {
            // Capabilities and channel-mode details: noise for a chat view.
        } else {
            self.info(SERVER_BUFFER, LineKind::Info, text);
        }
    }

    fn add_member(&mut self, index: usize, nick: &str, prefixes: String) {
        if nick.is_empty() {
            return;
        }
        let key = self.state.key(nick);
        let member = crate::state::Member {
            nick: nick.to_owned(),
            prefixes,
        };
        self.state.buffers[index].members.insert(key, member);
    }

    // --- user input ---------------------------------------------------------------

    fn execute(&mut self, command: Command) {
        let needs_connection = !matches!(
            command,
            Command::Help
                | Command::Close
                | Command::Quit(_)
                | Command::Nick(_)
                | Command::Quote(_)
                | Command::Reconnect
                | Command::Password(_)
                | Command::Buffer(_)
        );
        if needs_connection && !self.registered {
            self.hint("not connected to the server: nothing was sent".to_owned());
            return;
        }
        match command {
            Command::Say(text) => {
                let active = self.state.active_buffer();
                match active.kind {
                    BufferKind::Server => self.hint(
                        "this is the server buffer: /join #channel, /msg nick text, or switch buffers with Alt+number".to_owned(),
                    ),
                    BufferKind::Channel if !active.joined => {
                        let name = active.name.clone();
                        self.hint(format!("you are not in {name}: /join {name}"));
                    }
                    _ => {
                        let target = active.name.clone();
                        self.say(&target, &text, LineKind::Message);
                    }
                }
            }
            Command::Join { channel, key } => {
                let channel = if self.state.is_channel(&channel) {
                    channel
                } else {
                    format!("#{channel}")
                };
                if let Some(index) = self
                    .state
                    .find(&channel)
                    .filter(|&i| self.state.buffers[i].joined)
                {
                    self.state.set_active(index);
                    self.changes.push(Change::Buffers);
                    return;
                }
                self.focus_on_join.insert(self.state.key(&channel));
                match key {
                    Some(key) => self.send("JOIN", &[&channel, &key]),
                    None => self.send("JOIN", &[&channel]),
                }
                self.barrier();
            }
            Command::Part { channel, reason } => {
                let Some(channel) = channel.or_else(|| self.active_channel()) else {
                    return self.hint(
                        "usage: /part #channel [reason] (or use it in a channel)".to_owned(),
                    );
                };
                match reason {
                    Some(reason) => self.send_trailing("PART", &[&channel], &reason),
                    None => self.send("PART", &[&channel]),
                }
            }
            Command::Msg { target, text } => {
                if self.state.is_channel(&target) && self.state.find(&target).is_none() {
                    self.send_text(&target, &text);
                    let line = format!("-> {target}: {text}");
                    self.info(self.state.active, LineKind::Info, line);
                } else {
                    self.say(&target, &text, LineKind::Message);
                }
            }
            Command::Query { nick, text } => {
                if self.state.is_channel(&nick) {
                    return self.hint(
                        "/query opens a private conversation: use /join for channels".to_owned(),
                    );
                }
                let index = self.state.ensure(&nick, BufferKind::Query);
                self.state.set_active(index);
                self.changes.push(Change::Buffers);
                if let Some(text) = text {
                    self.say(&nick, &text, LineKind::Message);
                }
            }
            Command::Me(text) => {
                let active = self.state.active_buffer();
                if active.kind == BufferKind::Server {
                    return self
                        .hint("/me works in a channel or a private conversation".to_owned());
                }
                let target = active.name.clone();
                self.say(&target, &text, LineKind::Action);
            }
            Command::Nick(nick) => {
                if let Some(problem) = commands::nick_problem(&nick, self.state.nicklen) {
                    return self.hint(problem);
                }
                if !self.registered {
                    self.config.nick = nick.clone();
                    self.state.nick = nick.clone();
                    self.nick_retries = 0;
                    self.changes.push(Change::Status);
                }
                self.send("NICK", &[&nick]);
            }
            Command::Topic { channel, text } => {
                let Some(channel) = channel.or_else(|| self.active_channel()) else {
                    return self
                        .hint("usage: /topic #channel [text] (or use it in a channel)".to_owned());
                };
                match text {
                    Some(text) => self.send_trailing("TOPIC", &[&channel], &text),
                    None => self.send("TOPIC", &[&channel]),
                }
            }
            Command::Names(channel) => {
                let Some(channel) = channel.or_else(|| self.active_channel()) else {
                    return self.hint("usage: /names #channel (or use it in a channel)".to_owned());
                };
                self.names_requested.insert(self.state.key(&channel));
                self.send("NAMES", &[&channel]);
            }
            Command::Whois(nick) => self.send("WHOIS", &[&nick]),
            Command::Away(message) => match message {
                Some(message) => self.send_trailing("AWAY", &[], &message),
                None => self.send("AWAY", &[]),
            },
            Command::Close => {
                let index = self.state.active;
                let buffer = self.state.active_buffer();
                match buffer.kind {
                    BufferKind::Server => {
                        return self.hint("the server buffer stays open: /quit exits".to_owned());
                    }
                    BufferKind::Channel if buffer.joined && self.registered => {
                        let name = buffer.name.clone();
                        self.send("PART", &[&name]);
                    }
                    _ => {}
                }
                self.state.close(index);
                self.changes.push(Change::Buffers);
            }
            Command::Quit(message) => {
                let changes = self.quit(message.as_deref());
                self.changes.extend(changes);
            }
            Command::Help => {
                let index = self.state.active;
                for line in commands::help_lines() {
                    self.info(index, LineKind::Info, line);
                }
                self.info(
                    index,
                    LineKind::Info,
                    "Keys: Alt+1..9, Alt+J NN or Ctrl+N/P switch buffers, PageUp/PageDown scroll, Tab completes, Up/Down recall, Ctrl+C quits",
                );
            }
            Command::Buffer(number) => {
                let count = self.state.buffers.len();
                if number > count {
                    return self.hint(format!("there is no buffer {number}: 1 to {count}"));
                }
                let changes = self.switch_to(number - 1);
                self.changes.extend(changes);
            }
            Command::Reconnect => {
                self.outgoing.push_back(ToConn::Reconnect);
                let text = format!("Reconnecting to {}", self.address);
                self.info(self.state.active, LineKind::Info, text);
            }
            Command::Password(password) => {
                let text = if password.is_some() {
                    "Server password set for the next connection: /reconnect to use it"
                } else {
                    "Server password cleared"
                };
                self.config.password = password;
                self.info(self.state.active, LineKind::Info, text);
            }
            Command::Quote(raw) => {
                if self.generation == 0
                    || matches!(
                        self.state.conn,
                        ConnState::Disconnected { .. } | ConnState::Closed
                    )
                {
                    return self.hint("not connected to the server: nothing was sent".to_owned());
                }
                if raw.contains(['\r', '\n', '\0']) {
                    return self.hint("/quote takes one line".to_owned());
                }
                match Message::parse(&raw) {
                    Ok(msg) => {
                        let line = write_message(&msg);
                        self.enqueue(line);
                    }
                    Err(error) => self.hint(format!("/quote: not an IRC line ({error})")),
                }
            }
        }
    }

    fn active_channel(&self) -> Option<String> {
        let active = self.state.active_buffer();
        (active.kind == BufferKind::Channel).then(|| active.name.clone())
    }

    /// Sends `text` to `target` (split to fit lines) and records it as our own line.
    fn say(&mut self, target: &str, text: &str, kind: LineKind) {
        let text = sanitize(text);
        let action = kind == LineKind::Action;
        let budget = TEXT_BUDGET.saturating_sub(target.len()).max(64) - if action { 9 } else { 0 };
        let index = if self.state.is_channel(target) {
            self.state.find(target).unwrap_or(self.state.active)
        } else {
            self.state.ensure(target, BufferKind::Query)
        };
        for chunk in split_text(&text, budget) {
            let wire = if action {
                format!("\u{1}ACTION {chunk}\u{1}")
            } else {
                chunk.to_owned()
            };
            self.send_trailing("PRIVMSG", &[target], &wire);
            let nick = self.state.nick.clone();
            self.push(
                index,
                Line {
                    time: self.now,
                    kind,
                    nick: Some(nick),
                    text: chunk.to_owned(),
                    highlight: false,
                    own: true,
                    delivery: if self.echo {
                        Delivery::Pending
                    } else {
                        Delivery::Sent
                    },
                },
            );
        }
    }

    fn send_text(&mut self, target: &str, text: &str) {
        let text = sanitize(text);
        for chunk in split_text(&text, TEXT_BUDGET.saturating_sub(target.len()).max(64)) {
            self.send_trailing("PRIVMSG", &[target], chunk);
        }
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
                "CAP REQ :echo-message",
                "NICK alice",
                "USER alice 0 * :alice (palaver)"
            ]
        );
        lines(&mut c, &[":srv CAP * ACK :echo-message"]);
        assert_eq!(sent(&mut c), ["CAP END"]);
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
                "CAP REQ :echo-message",
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
