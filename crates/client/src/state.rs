//! What the client knows about the conversation: buffers, their scrollback and nick
//! lists, the server's naming rules and the connection's health.
//!
//! This module holds data and small, pure mutations only. It never sees a socket, a
//! terminal or a clock: [`crate::client`] decides *what* happened from the server's
//! lines and calls in here to record it, and the front ends read it to draw.
//! Names are keyed by [`CaseKey`] under the server's announced casemapping, so
//! `#Lobby` and `#lobby` are one buffer and `Alice` and `alice` one member.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Duration;

use palaver_proto::{CaseKey, CaseMapping};

/// Lines kept per buffer; older lines are dropped, so a long-running client's memory
/// stays bounded however busy its channels are.
pub const MAX_SCROLLBACK: usize = 2000;

/// The name of the buffer `/list` fills (no nick or channel can be called that).
pub const LIST_BUFFER: &str = "*channels*";

/// Index of the server buffer, which always exists and is never closed.
pub const SERVER_BUFFER: usize = 0;

/// What kind of conversation a buffer holds; decides its nick list and its input target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferKind {
    /// Server notices, the MOTD and connection events; input here is only for commands.
    Server,
    /// A channel: has a nick list and a topic.
    Channel,
    /// A private conversation with one nick.
    Query,
    /// The channels `/list` found, largest first; read-only, scrolled like any other.
    List,
}

/// How a line is presented; the front ends choose colours and punctuation from this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// `<nick> text`
    Message,
    /// `* nick text` (CTCP ACTION, `/me`).
    Action,
    /// `-nick- text`
    Notice,
    /// Joins, parts, quits, nick and topic changes, modes: `* text`.
    Event,
    /// Server information (MOTD, whois replies, connection progress).
    Info,
    /// Errors from the server or from the client itself (hints, failures).
    Error,
}

/// A wall-clock time of day, for the `HH:MM` in front of each line, and the day it
/// is on (when known), for the date line drawn when the day changes.
///
/// The core never reads the clock itself: callers pass the time in, so tests and
/// snapshots are deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    /// Hour, 0-23.
    pub hour: u8,
    /// Minute, 0-59.
    pub minute: u8,
    /// The local date; `None` where only the time matters (tests, scripts).
    pub date: Option<time::Date>,
    /// The instant itself, where the caller read the clock: protocol requests
    /// that need "now" (CHATHISTORY TARGETS' upper bound) take it from here,
    /// so the core still reads no clock. `None` on lines dated by the server.
    pub utc: Option<time::OffsetDateTime>,
}

impl Stamp {
    /// A stamp from its parts (values are clamped into range), with no date.
    pub fn new(hour: u8, minute: u8) -> Self {
        Self {
            hour: hour.min(23),
            minute: minute.min(59),
            date: None,
            utc: None,
        }
    }

    /// The same time of day on `date`.
    pub fn on(self, date: time::Date) -> Self {
        Self {
            date: Some(date),
            ..self
        }
    }
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

/// The line that opens a new day in a buffer: "Day changed to Wednesday, 2
/// December 2026".
pub fn day_changed(date: time::Date) -> String {
    format!(
        "Day changed to {}, {} {} {}",
        date.weekday(),
        date.day(),
        date.month(),
        date.year()
    )
}

/// Whether one of our own messages reached its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Sent, and nothing says otherwise (also every line that is not ours).
    #[default]
    Sent,
    /// Sent; with `echo-message` the server's copy has not come back yet.
    Pending,
    /// The server refused it (`404` under `+m`/`+n` or a ban, `401` no such nick).
    Failed,
}

/// One line of scrollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// When it arrived (or was sent).
    pub time: Stamp,
    /// How to present it.
    pub kind: LineKind,
    /// The sender, for messages, actions and notices.
    pub nick: Option<String>,
    /// The text, without formatting of the kind.
    pub text: String,
    /// It mentions our nick (or is a private message): shown highlighted.
    pub highlight: bool,
    /// We sent it ourselves (line mode does not echo these).
    pub own: bool,
    /// For our own messages: whether the server took them.
    pub delivery: Delivery,
    /// The server's id for the message (IRCv3 `msgid`), which is how a line
    /// that comes again from history is recognised.
    pub msgid: Option<String>,
    /// It came from the server's history (`CHATHISTORY`), not as it was said:
    /// it rings no bell.
    pub history: bool,
}

impl Line {
    /// A line without a sender.
    pub fn info(time: Stamp, kind: LineKind, text: impl Into<String>) -> Self {
        Self {
            time,
            kind,
            nick: None,
            text: text.into(),
            highlight: false,
            own: false,
            delivery: Delivery::Sent,
            msgid: None,
            history: false,
        }
    }

    /// The line as plain text without its time: `<nick> text`, `* nick text`,
    /// `-nick- text`, `* event` or `! error`. Line mode prints this after `[HH:MM] `.
    pub fn plain(&self) -> String {
        let nick = self.nick.as_deref().unwrap_or("*");
        let text = match self.kind {
            LineKind::Message => format!("<{nick}> {}", self.text),
            LineKind::Action => format!("* {nick} {}", self.text),
            LineKind::Notice => format!("-{nick}- {}", self.text),
            LineKind::Event => format!("* {}", self.text),
            LineKind::Info => format!("- {}", self.text),
            LineKind::Error => format!("! {}", self.text),
        };
        if self.delivery == Delivery::Failed {
            text + " [not delivered]"
        } else {
            text
        }
    }
}

/// A member of a channel, as the nick list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The nick as the server spells it.
    pub nick: String,
    /// Membership prefixes held (`@`, `+`, ...), highest rank first.
    pub prefixes: String,
}

impl Member {
    /// The highest prefix, which is the one the nick list shows.
    pub fn prefix(&self) -> Option<char> {
        self.prefixes.chars().next()
    }
}

/// One conversation: a tab in the full-screen UI, a target in line mode.
#[derive(Debug, Clone)]
pub struct Buffer {
    /// The channel or nick as the server spells it (`*server*` for the server buffer).
    pub name: String,
    /// `name` under the casemapping, for lookups.
    pub key: CaseKey,
    /// What it holds.
    pub kind: BufferKind,
    /// Scrollback, oldest first, at most [`MAX_SCROLLBACK`] lines.
    pub lines: VecDeque<Line>,
    /// Channel members by casemapped nick (empty for other kinds).
    pub members: BTreeMap<CaseKey, Member>,
    /// The channel topic, if known and set.
    pub topic: Option<String>,
    /// We are in the channel right now (channels only).
    pub joined: bool,
    /// We want to be in the channel: it is rejoined after a reconnect until we part.
    pub wanted: bool,
    /// Lines added while this buffer was not the active one.
    pub unread: usize,
    /// Highlighted lines added while this buffer was not the active one.
    pub mentions: usize,
    /// The last NAMES listing finished; the next 353 starts a fresh list.
    pub(crate) names_done: bool,
    /// Lines ever added (scrollback drops old ones; this does not go down), so a
    /// line's number is `pushed - lines.len() + index`.
    pub pushed: u64,
    /// The number of the first line not yet seen: set when the user leaves the
    /// buffer (or writes in it), so the UI draws its read marker above it. `None`
    /// until the buffer was first seen.
    pub read_upto: Option<u64>,
    /// The msgids of the lines in the scrollback: a message that arrives twice
    /// (live and again from history) is shown once. Bounded with the scrollback.
    msgids: HashSet<String>,
    /// The server time of the newest message seen here: after a reconnect,
    /// history is asked for from there, so nothing said meanwhile is missed.
    pub last_time: Option<time::OffsetDateTime>,
}

impl Buffer {
    fn new(mapping: CaseMapping, name: &str, kind: BufferKind) -> Self {
        Self {
            name: name.to_owned(),
            key: CaseKey::new(mapping, name),
            kind,
            lines: VecDeque::new(),
            members: BTreeMap::new(),
            topic: None,
            joined: false,
            wanted: false,
            unread: 0,
            mentions: 0,
            names_done: true,
            pushed: 0,
            read_upto: None,
            msgids: HashSet::new(),
            last_time: None,
        }
    }

    /// Whether the message with this msgid is already in the scrollback.
    pub fn has_msgid(&self, msgid: &str) -> bool {
        self.msgids.contains(msgid)
    }

    /// Records the server's id and time of a message in this buffer (one of our
    /// own lines, when its echo comes back).
    pub(crate) fn seen(&mut self, msgid: Option<&str>, time: Option<time::OffsetDateTime>) {
        if let Some(msgid) = msgid {
            self.msgids.insert(msgid.to_owned());
        }
        if let Some(time) = time
            && self.last_time.is_none_or(|last| time > last)
        {
            self.last_time = Some(time);
        }
    }

    /// Where the read marker goes: the index in `lines` of the first unread line,
    /// when there is one and it is still in the scrollback.
    pub fn marker_index(&self) -> Option<usize> {
        let first = self.pushed - self.lines.len() as u64;
        let upto = self.read_upto?;
        (upto < self.pushed && upto >= first).then(|| (upto - first) as usize)
    }

    /// The indices of the lines containing `query` (ignoring case; sender included,
    /// as `<nick> text`), oldest first. Nothing for an empty query.
    pub fn search(&self, query: &str) -> Vec<usize> {
        if query.is_empty() {
            return Vec::new();
        }
        let query = query.to_lowercase();
        self.lines
            .iter()
            .enumerate()
            .filter(|(_, line)| line.plain().to_lowercase().contains(&query))
            .map(|(index, _)| index)
            .collect()
    }

    fn append(&mut self, line: Line) {
        if self.lines.len() >= MAX_SCROLLBACK
            && let Some(old) = self.lines.pop_front()
            && let Some(msgid) = old.msgid
        {
            self.msgids.remove(&msgid);
        }
        if let Some(msgid) = &line.msgid {
            self.msgids.insert(msgid.clone());
        }
        self.lines.push_back(line);
        self.pushed += 1;
    }

    /// Members sorted for display: highest prefix first, then by casemapped nick.
    pub fn sorted_members(&self, prefix_order: &str) -> Vec<&Member> {
        let rank = |m: &Member| {
            m.prefix()
                .and_then(|p| prefix_order.find(p))
                .unwrap_or(usize::MAX)
        };
        let mut members: Vec<(usize, &CaseKey, &Member)> =
            self.members.iter().map(|(k, m)| (rank(m), k, m)).collect();
        members.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        members.into_iter().map(|(_, _, m)| m).collect()
    }
}

/// The connection as the status line shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    /// Opening the TCP connection.
    Connecting,
    /// Connected, sending NICK/USER, waiting for 001.
    Registering,
    /// Registered: chatting works.
    Connected,
    /// The connection dropped; the next attempt comes after `retry_in`.
    Disconnected {
        /// Why it dropped, in words.
        reason: String,
        /// The backoff before the next attempt.
        retry_in: Duration,
    },
    /// The server refused us for good; nothing happens until `/reconnect`.
    Stopped {
        /// The server's words.
        reason: String,
    },
    /// We quit; no reconnect will follow.
    Closed,
}

impl ConnState {
    /// A short word for the status line.
    pub fn label(&self) -> String {
        match self {
            Self::Connecting => "connecting".to_owned(),
            Self::Registering => "registering".to_owned(),
            Self::Connected => "connected".to_owned(),
            Self::Disconnected { retry_in, .. } => {
                format!("disconnected, retry in {}s", retry_in.as_secs().max(1))
            }
            Self::Stopped { .. } => "refused, /reconnect to retry".to_owned(),
            Self::Closed => "closed".to_owned(),
        }
    }
}

/// Everything the front ends draw from.
#[derive(Debug, Clone)]
pub struct State {
    /// The server as the user named it (`host:port`), replaced by its own name after 001.
    pub server: String,
    /// Our current nick (the wanted one until the server confirms it).
    pub nick: String,
    /// Connection health.
    pub conn: ConnState,
    /// The last measured PING round trip.
    pub lag: Option<Duration>,
    /// We are marked away.
    pub away: bool,
    /// The account the server says we are logged in to (SASL, 900), on this
    /// connection.
    pub account: Option<String>,
    /// How the server compares names (ISUPPORT `CASEMAPPING`).
    pub casemapping: CaseMapping,
    /// Membership modes and their prefixes, highest first (ISUPPORT `PREFIX`).
    pub prefixes: Vec<(char, char)>,
    /// Characters that start a channel name (ISUPPORT `CHANTYPES`).
    pub chantypes: String,
    /// The longest nick the server accepts (ISUPPORT `NICKLEN`, a default before).
    pub nicklen: usize,
    /// The buffers in tab order; index [`SERVER_BUFFER`] is the server buffer.
    pub buffers: Vec<Buffer>,
    /// The buffer shown and typed into.
    pub active: usize,
}

impl State {
    /// A state with only the server buffer, before any connection.
    pub fn new(server: &str, nick: &str) -> Self {
        let casemapping = CaseMapping::Rfc1459;
        Self {
            server: server.to_owned(),
            nick: nick.to_owned(),
            conn: ConnState::Connecting,
            lag: None,
            away: false,
            account: None,
            casemapping,
            prefixes: vec![('o', '@'), ('v', '+')],
            chantypes: "#&".to_owned(),
            nicklen: crate::commands::DEFAULT_NICKLEN,
            buffers: vec![Buffer::new(casemapping, "*server*", BufferKind::Server)],
            active: SERVER_BUFFER,
        }
    }

    /// `name` folded under the server's casemapping.
    pub fn key(&self, name: &str) -> CaseKey {
        CaseKey::new(self.casemapping, name)
    }

    /// Whether `name` is a channel under the server's CHANTYPES.
    pub fn is_channel(&self, name: &str) -> bool {
        name.chars()
            .next()
            .is_some_and(|c| self.chantypes.contains(c))
    }

    /// Whether `nick` is us.
    pub fn is_me(&self, nick: &str) -> bool {
        self.casemapping.eq(nick, &self.nick)
    }

    /// The prefix characters, highest rank first (`"@+"`).
    pub fn prefix_order(&self) -> String {
        self.prefixes.iter().map(|&(_, p)| p).collect()
    }

    /// The active buffer.
    pub fn active_buffer(&self) -> &Buffer {
        self.buffers
            .get(self.active)
            .unwrap_or(&self.buffers[SERVER_BUFFER])
    }

    /// The index of the buffer called `name`, if open.
    pub fn find(&self, name: &str) -> Option<usize> {
        let key = self.key(name);
        self.buffers
            .iter()
            .position(|b| b.key == key && b.kind != BufferKind::Server)
    }

    /// The index of the buffer called `name`, opening it (at the end) if needed.
    pub fn ensure(&mut self, name: &str, kind: BufferKind) -> usize {
        if let Some(index) = self.find(name) {
            return index;
        }
        self.buffers.push(Buffer::new(self.casemapping, name, kind));
        self.buffers.len() - 1
    }

    /// Makes buffer `index` the active one and clears its unread counters. The
    /// buffer left behind has been read up to here: its read marker moves to its end.
    pub fn set_active(&mut self, index: usize) {
        if index >= self.buffers.len() {
            return;
        }
        if index != self.active
            && let Some(left) = self.buffers.get_mut(self.active)
        {
            left.read_upto = Some(left.pushed);
        }
        let buffer = &mut self.buffers[index];
        buffer.unread = 0;
        buffer.mentions = 0;
        self.active = index;
    }

    /// Closes buffer `index`; the server buffer cannot be closed. Returns whether it was.
    pub fn close(&mut self, index: usize) -> bool {
        if index == SERVER_BUFFER || index >= self.buffers.len() {
            return false;
        }
        self.buffers.remove(index);
        if self.active >= index {
            self.active = self.active.saturating_sub(1).min(self.buffers.len() - 1);
        }
        true
    }

    /// Appends `line` to buffer `index`, dropping the oldest line beyond
    /// [`MAX_SCROLLBACK`] and counting it as unread (and as a mention when
    /// highlighted) if the buffer is not active.
    ///
    /// A line dated another day than the buffer's last one is preceded by a
    /// [`day_changed`] line. Our own line marks the buffer read up to itself, and
    /// so does any line into the active buffer when nothing in it was unread.
    pub fn push(&mut self, index: usize, line: Line) {
        let active = self.active == index;
        let Some(buffer) = self.buffers.get_mut(index) else {
            return;
        };
        let last_date = buffer.lines.back().and_then(|l| l.time.date);
        if let (Some(last), Some(date)) = (last_date, line.time.date)
            && last != date
        {
            let day = Line::info(line.time, LineKind::Info, day_changed(date));
            buffer.append(day);
        }
        if !active && !line.own {
            buffer.unread += 1;
            if line.highlight {
                buffer.mentions += 1;
            }
        }
        // Lines arriving while the user watches are read as they come (unless
        // unread ones are still below the marker); so is anything we write.
        let caught_up = active && buffer.read_upto.is_none_or(|upto| upto >= buffer.pushed);
        let read = line.own || caught_up;
        buffer.append(line);
        if read {
            buffer.read_upto = Some(buffer.pushed);
        }
    }

    /// Switches to a new casemapping, re-folding every key.
    pub fn set_casemapping(&mut self, mapping: CaseMapping) {
        if mapping == self.casemapping {
            return;
        }
        self.casemapping = mapping;
        for buffer in &mut self.buffers {
            buffer.key = CaseKey::new(mapping, &buffer.name);
            let members = std::mem::take(&mut buffer.members);
            buffer.members = members
                .into_values()
                .map(|m| (CaseKey::new(mapping, &m.nick), m))
                .collect();
        }
    }

    /// Splits a NAMES entry (`@+nick` or `@nick!user@host`) into prefixes and nick.
    pub fn split_prefixes<'a>(&self, entry: &'a str) -> (String, &'a str) {
        let nick_start = entry
            .find(|c: char| !self.prefixes.iter().any(|&(_, p)| p == c))
            .unwrap_or(entry.len());
        let (prefixes, rest) = entry.split_at(nick_start);
        let nick = rest.split('!').next().unwrap_or(rest);
        (self.order_prefixes(prefixes.chars()), nick)
    }

    /// Prefix characters deduplicated and sorted highest rank first.
    pub fn order_prefixes(&self, chars: impl Iterator<Item = char>) -> String {
        let held: Vec<char> = chars.collect();
        self.prefixes
            .iter()
            .map(|&(_, p)| p)
            .filter(|p| held.contains(p))
            .collect()
    }

    /// Every channel buffer that has `nick` as a member.
    pub fn channels_with(&self, nick: &str) -> Vec<usize> {
        let key = self.key(nick);
        self.buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| b.kind == BufferKind::Channel && b.members.contains_key(&key))
            .map(|(i, _)| i)
            .collect()
    }
}

/// Whether `text` mentions `nick` as a whole word (case-insensitively).
pub fn mentions(mapping: CaseMapping, text: &str, nick: &str) -> bool {
    if nick.is_empty() || text.len() < nick.len() {
        return false;
    }
    let is_nick_byte = |b: u8| b.is_ascii_alphanumeric() || b"-[]\\`^{}|_".contains(&b);
    let bytes = text.as_bytes();
    (0..=bytes.len() - nick.len()).any(|start| {
        let end = start + nick.len();
        text.is_char_boundary(start)
            && text.is_char_boundary(end)
            && mapping.eq(&text[start..end], nick)
            && (start == 0 || !is_nick_byte(bytes[start - 1]))
            && (end == bytes.len() || !is_nick_byte(bytes[end]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, highlight: bool) -> Line {
        Line {
            highlight,
            ..Line::info(Stamp::default(), LineKind::Message, text)
        }
    }

    #[test]
    fn scrollback_is_bounded() {
        let mut state = State::new("s", "me");
        for i in 0..MAX_SCROLLBACK + 10 {
            state.push(SERVER_BUFFER, line(&i.to_string(), false));
        }
        let lines = &state.buffers[SERVER_BUFFER].lines;
        assert_eq!(lines.len(), MAX_SCROLLBACK);
        assert_eq!(lines.front().map(|l| l.text.as_str()), Some("10"));
    }

    #[test]
    fn inactive_buffers_count_unread_and_mentions() {
        let mut state = State::new("s", "me");
        let chan = state.ensure("#Chan", BufferKind::Channel);
        assert_eq!(state.ensure("#chan", BufferKind::Channel), chan);
        state.push(chan, line("hello", false));
        state.push(chan, line("me: hi", true));
        assert_eq!(
            (state.buffers[chan].unread, state.buffers[chan].mentions),
            (2, 1)
        );
        state.set_active(chan);
        assert_eq!(
            (state.buffers[chan].unread, state.buffers[chan].mentions),
            (0, 0)
        );
    }

    #[test]
    fn a_new_day_gets_a_date_line() {
        let mut state = State::new("s", "me");
        let day = |d| time::Date::from_calendar_date(2026, time::Month::December, d).expect("date");
        let at = |d, text: &str| Line {
            time: Stamp::new(23, 59).on(day(d)),
            ..line(text, false)
        };
        state.push(SERVER_BUFFER, at(1, "late"));
        state.push(SERVER_BUFFER, at(1, "later"));
        state.push(SERVER_BUFFER, at(2, "early"));
        let texts: Vec<String> = state.buffers[SERVER_BUFFER]
            .lines
            .iter()
            .map(|l| l.text.clone())
            .collect();
        assert_eq!(
            texts,
            [
                "late",
                "later",
                "Day changed to Wednesday, 2 December 2026",
                "early"
            ]
        );
    }

    #[test]
    fn the_read_marker_is_where_the_user_left() {
        let mut state = State::new("s", "me");
        let chan = state.ensure("#c", BufferKind::Channel);
        state.set_active(chan);
        state.push(chan, line("seen", false));
        assert_eq!(state.buffers[chan].marker_index(), None);
        state.set_active(SERVER_BUFFER);
        state.push(chan, line("new 1", false));
        state.push(chan, line("new 2", false));
        state.set_active(chan);
        assert_eq!(state.buffers[chan].marker_index(), Some(1));
        // Writing there means it was read.
        state.push(
            chan,
            Line {
                own: true,
                ..line("mine", false)
            },
        );
        assert_eq!(state.buffers[chan].marker_index(), None);
    }

    #[test]
    fn mentions_need_word_boundaries() {
        let m = CaseMapping::Rfc1459;
        assert!(mentions(m, "hey Alice, look", "alice"));
        assert!(mentions(m, "alice", "alice"));
        assert!(!mentions(m, "malice", "alice"));
        assert!(!mentions(m, "alice_", "alice"));
        assert!(mentions(m, "é alice!", "alice"));
    }

    #[test]
    fn names_entries_split_into_ordered_prefixes() {
        let state = State::new("s", "me");
        assert_eq!(state.split_prefixes("+@bob"), ("@+".to_owned(), "bob"));
        assert_eq!(state.split_prefixes("carol!c@h"), (String::new(), "carol"));
    }

    #[test]
    fn closing_keeps_the_active_index_valid() {
        let mut state = State::new("s", "me");
        let a = state.ensure("#a", BufferKind::Channel);
        let b = state.ensure("#b", BufferKind::Channel);
        state.set_active(b);
        assert!(state.close(a));
        assert_eq!(state.active_buffer().name, "#b");
        assert!(!state.close(SERVER_BUFFER));
    }
}
