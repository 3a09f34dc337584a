//! User commands: what a parsed [`Command`] does. [`Client::execute`] is the one
//! entry; it checks what the command needs (a connection, a channel) and queues
//! the lines. Nothing here reads a server line.

use palaver_proto::writer::write_message;
use palaver_proto::{LineWriter, Message};

use super::{Change, Client, TEXT_BUDGET, sanitize, split_text};
use crate::commands::{self, Command};
use crate::connection::ToConn;
use crate::state::{BufferKind, ConnState, Delivery, LIST_BUFFER, Line, LineKind, Stamp};

impl Client {
    // --- user input ---------------------------------------------------------------

    pub(super) fn execute(&mut self, command: Command) {
        let needs_connection = !matches!(
            command,
            Command::Help(_)
                | Command::Close
                | Command::Quit(_)
                | Command::Nick(_)
                | Command::Quote(_)
                | Command::Reconnect
                | Command::Password(_)
                | Command::Buffer(_)
                | Command::Search(_)
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
                    BufferKind::List => self.hint(
                        "this is the channel list: /join #channel, or /close it".to_owned(),
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
                    BufferKind::List => self.listing.clear(),
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
            Command::Help(None) => {
                let index = self.state.active;
                for line in commands::help_lines() {
                    self.info(index, LineKind::Info, line);
                }
                for line in commands::KEYS {
                    self.info(index, LineKind::Info, *line);
                }
                self.info(index, LineKind::Info, "/help COMMAND explains one command");
            }
            Command::Help(Some(name)) => match commands::help_for(&name) {
                Some(lines) => {
                    let index = self.state.active;
                    for line in lines {
                        self.info(index, LineKind::Info, line);
                    }
                }
                None => self.hint(format!(
                    "there is no command /{}: /help lists them",
                    name.trim_start_matches('/')
                )),
            },
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
            Command::Search(text) => self.changes.push(Change::Search(text)),
            command @ (Command::Mode { .. }
            | Command::Kick { .. }
            | Command::MemberMode { .. }
            | Command::Invite { .. }
            | Command::List(_)) => self.execute_operator(command),
        }
    }

    /// The operator commands: `/mode`, `/kick`, `/ban` and the member modes,
    /// `/invite`, `/list`. Each names the active channel unless given one.
    fn execute_operator(&mut self, command: Command) {
        let usage = |command: &str| format!("usage: {command} (or use it in a channel)");
        match command {
            Command::Mode { target, changes } => {
                let Some(target) = target.or_else(|| self.active_channel()) else {
                    return self.hint(usage("/mode #channel|nick [+-modes [args]]"));
                };
                let mut params = vec![target.as_str()];
                params.extend(changes.iter().map(String::as_str));
                self.send("MODE", &params);
            }
            Command::Kick {
                channel,
                nick,
                reason,
            } => {
                let Some(channel) = channel.or_else(|| self.active_channel()) else {
                    return self.hint(usage("/kick #channel nick [reason]"));
                };
                match reason {
                    Some(reason) => self.send_trailing("KICK", &[&channel, &nick], &reason),
                    None => self.send("KICK", &[&channel, &nick]),
                }
            }
            Command::MemberMode {
                channel,
                give,
                mode,
                targets,
            } => {
                let Some(channel) = channel.or_else(|| self.active_channel()) else {
                    return self.hint(usage("/op|/voice|/ban #channel nick..."));
                };
                if targets.is_empty() {
                    // `/ban` alone: the ban list.
                    return self.send("MODE", &[&channel, "+b"]);
                }
                let targets: Vec<String> = targets
                    .into_iter()
                    .map(|t| {
                        // A bare nick bans that nick from anywhere.
                        if mode == 'b' && !t.contains(['!', '@', '*', '?']) {
                            format!("{t}!*@*")
                        } else {
                            t
                        }
                    })
                    .collect();
                let sign = if give { '+' } else { '-' };
                for chunk in targets.chunks(self.modes_per_line.max(1)) {
                    let letters: String = std::iter::once(sign)
                        .chain(std::iter::repeat_n(mode, chunk.len()))
                        .collect();
                    let mut params = vec![channel.as_str(), letters.as_str()];
                    params.extend(chunk.iter().map(String::as_str));
                    self.send("MODE", &params);
                }
            }
            Command::Invite { nick, channel } => {
                let Some(channel) = channel.or_else(|| self.active_channel()) else {
                    return self.hint(usage("/invite nick #channel"));
                };
                self.send("INVITE", &[&nick, &channel]);
            }
            Command::List(mask) => {
                let index = self.state.ensure(LIST_BUFFER, BufferKind::List);
                self.state.buffers[index].lines.clear();
                self.state.set_active(index);
                self.changes.push(Change::Buffers);
                self.listing.clear();
                self.listing_dropped = 0;
                self.info(
                    index,
                    LineKind::Info,
                    "Asking the server for its channels...",
                );
                match mask {
                    Some(mask) => self.send("LIST", &[&mask]),
                    None => self.send("LIST", &[]),
                }
            }
            _ => {}
        }
    }

    /// Sends several lines of text (a paste) to the active buffer. Where the server
    /// took `draft/multiline` and the lines fit its limits, they go as one message
    /// (a batch the server relays whole, or line by line to clients without it);
    /// otherwise as one message per line. The lines are text, never commands.
    pub fn say_lines(&mut self, lines: &[String], now: Stamp) -> Vec<Change> {
        self.now = now;
        let lines: Vec<String> = lines
            .iter()
            .map(|l| sanitize(l))
            .filter(|l| !l.trim().is_empty())
            .collect();
        let active = self.state.active_buffer();
        let target = active.name.clone();
        let writable = self.registered
            && match active.kind {
                BufferKind::Channel => active.joined,
                BufferKind::Query => true,
                BufferKind::Server | BufferKind::List => false,
            };
        let fits = |limits: super::Multiline| {
            let budget = TEXT_BUDGET.saturating_sub(target.len()).max(64);
            let bytes = lines
                .iter()
                .map(|l| l.len() + 1)
                .sum::<usize>()
                .saturating_sub(1);
            lines.len() >= 2
                && lines.len() <= limits.max_lines
                && bytes <= limits.max_bytes
                && lines.iter().all(|l| l.len() <= budget)
        };
        match self.multiline {
            Some(limits) if writable && fits(limits) => {
                self.batch_seq += 1;
                let reference = format!("ml{}", self.batch_seq);
                self.send(
                    "BATCH",
                    &[&format!("+{reference}"), "draft/multiline", &target],
                );
                let index = self.state.active;
                for line in &lines {
                    let mut wire = LineWriter::new();
                    wire.tag("batch", Some(&reference))
                        .command("PRIVMSG")
                        .param(&target)
                        .trailing(line);
                    self.enqueue(wire.finish());
                    self.push_own(index, LineKind::Message, line);
                }
                self.send("BATCH", &[&format!("-{reference}")]);
            }
            _ => {
                for line in lines {
                    self.execute(Command::Say(line));
                }
            }
        }
        std::mem::take(&mut self.changes)
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
            self.push_own(index, kind, chunk);
        }
    }

    /// Records a message of ours: pending until the server echoes it, where it
    /// does (echo-message).
    fn push_own(&mut self, index: usize, kind: LineKind, text: &str) {
        let nick = self.state.nick.clone();
        self.push(
            index,
            Line {
                time: self.now,
                kind,
                nick: Some(nick),
                text: text.to_owned(),
                highlight: false,
                own: true,
                delivery: if self.echo {
                    Delivery::Pending
                } else {
                    Delivery::Sent
                },
                msgid: None,
                history: false,
            },
        );
    }

    fn send_text(&mut self, target: &str, text: &str) {
        let text = sanitize(text);
        for chunk in split_text(&text, TEXT_BUDGET.saturating_sub(target.len()).max(64)) {
            self.send_trailing("PRIVMSG", &[target], chunk);
        }
    }
}
