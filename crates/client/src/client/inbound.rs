//! Inbound: what the server's lines do to the state. One `on_*` method per
//! command or numeric family, all reached through [`Client::handle_line`]; none
//! of them reads user input, and each says what changed through `self.changes`.

use palaver_proto::{CaseKey, CaseMapping, Message, Source, numeric};

use super::history::{self, HISTORY_TOKEN};
use super::{
    Change, Client, ERR_BADCHANNAME, ERR_NEEDREGGEDNICK, MAX_LIST, MAX_NICK_RETRIES, Multiline,
    RPL_WHOISACCOUNT, SYNC_TOKEN, last,
};
use crate::connection::refusal;
use crate::state::{
    BufferKind, ConnState, Delivery, LIST_BUFFER, Line, LineKind, SERVER_BUFFER, mentions,
};

impl Client {
    // --- server lines -------------------------------------------------------------

    pub(super) fn handle_line(&mut self, text: &str) {
        let Ok(msg) = Message::parse(text) else {
            return;
        };
        let from = msg.source().map(Source::split);
        let nick = from.map(|s| s.nick).unwrap_or("");
        let command = msg.command().to_ascii_uppercase();
        let batch = msg
            .tags()
            .find(|(key, _)| *key == "batch")
            .map(|(_, reference)| reference.into_owned());
        let in_history = batch
            .as_deref()
            .is_some_and(|r| self.is_history_batch(r) || self.is_history_multiline(r));
        if command == "BATCH"
            && msg.param(1) == Some("draft/multiline")
            && let Some(reference) = msg.param(0).and_then(|r| r.strip_prefix('+'))
        {
            return self.on_multiline_batch(&msg, reference, in_history);
        }
        if in_history && command != "PRIVMSG" && command != "NOTICE" {
            // Event playback and reactions are not asked for; nothing else is shown.
            return;
        }
        if !in_history
            && (command == "PRIVMSG" || command == "NOTICE")
            && let Some(key) = self.hold_key(&msg, nick)
        {
            self.held.push_back((key, text.to_owned()));
            return;
        }
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
            "PRIVMSG" | "NOTICE" => {
                let inherited = batch.as_deref().and_then(|r| self.inherit(r));
                self.on_message(&msg, from, &command, in_history, inherited)
            }
            // Typing notifications and reactions (with message-tags) are not shown.
            "TAGMSG" => {}
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
            numeric::RPL_LISTSTART => {}
            numeric::RPL_LIST => self.on_list_entry(&msg),
            numeric::RPL_LISTEND => self.on_list_end(),
            numeric::RPL_BANLIST => {
                let channel = msg.param(1).unwrap_or("");
                let index = self.state.find(channel).unwrap_or(self.state.active);
                let by = msg
                    .param(3)
                    .map(|setter| format!(" (set by {setter})"))
                    .unwrap_or_default();
                let text = format!("{channel} ban: {}{by}", msg.param(2).unwrap_or(""));
                self.info(index, LineKind::Info, text);
            }
            numeric::RPL_ENDOFBANLIST => {
                let channel = msg.param(1).unwrap_or("");
                let index = self.state.find(channel).unwrap_or(self.state.active);
                self.info(
                    index,
                    LineKind::Info,
                    format!("{channel}: end of the ban list"),
                );
            }
            numeric::RPL_INVITING => {
                let (who, channel) = (msg.param(1).unwrap_or(""), msg.param(2).unwrap_or(""));
                let index = self.state.find(channel).unwrap_or(self.state.active);
                self.info(
                    index,
                    LineKind::Event,
                    format!("You invited {who} to {channel}"),
                );
            }
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
            "PONG" if last(&msg).starts_with(HISTORY_TOKEN) => self.on_history_pong(last(&msg)),
            // A refused TARGETS costs nothing but the conversations it would
            // have found; the fill in flight is another request.
            "FAIL" if msg.param(0) == Some("CHATHISTORY") && msg.param(2) == Some("TARGETS") => {}
            "FAIL" if msg.param(0) == Some("CHATHISTORY") => {
                self.on_history_fail(msg.param(1).unwrap_or(""), last(&msg))
            }
            "CAP" => self.on_cap(&msg),
            "AUTHENTICATE" => self.on_authenticate(&msg),
            numeric::RPL_LOGGEDIN
            | numeric::RPL_LOGGEDOUT
            | numeric::ERR_NICKLOCKED
            | numeric::RPL_SASLSUCCESS
            | numeric::ERR_SASLFAIL
            | numeric::ERR_SASLTOOLONG
            | numeric::ERR_SASLABORTED
            | numeric::ERR_SASLALREADY
            | numeric::RPL_SASLMECHS => self.on_sasl_numeric(&command, &msg),
            // Batches (our own multiline messages echoed, others') only group
            // lines; the lines inside are shown as they come. A history batch
            // answers a fill.
            "BATCH" => {
                let reference = msg.param(0).unwrap_or("");
                if let Some(reference) = reference.strip_prefix('+') {
                    if msg.param(1) == Some("chathistory") {
                        self.on_history_batch_start(reference, msg.param(2).unwrap_or(""));
                    }
                } else if let Some(reference) = reference.strip_prefix('-')
                    && self.is_history_batch(reference)
                {
                    self.on_history_batch_end();
                }
            }
            numeric::ERR_UNKNOWNCOMMAND if msg.param(1) == Some("CAP") => {
                if self.config.account.is_some() {
                    self.login_failed("the server knows no capabilities (CAP), so no SASL");
                }
            }
            numeric::ERR_CANNOTSENDTOCHAN | numeric::ERR_NOSUCHNICK => {
                self.not_delivered(msg.param(1).unwrap_or(""));
                self.on_other(&command, &msg);
            }
            "PONG" | "PING" => {}
            // The welcome burst is over (ISUPPORT known): private conversations
            // are filled now, channels as they are joined.
            numeric::RPL_ENDOFMOTD | numeric::ERR_NOMOTD => {
                self.fill_queries();
                self.on_other(&command, &msg);
            }
            "CHATHISTORY" if msg.param(0) == Some("TARGETS") => {
                self.on_history_target(msg.param(1).unwrap_or(""));
            }
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
            "LS" => {
                self.offered.extend(
                    last(msg)
                        .split(' ')
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned),
                );
                // `CAP * LS * :...`: more lines follow.
                if msg.param(2) == Some("*") && msg.params().len() > 3 {
                    return;
                }
                let offered = |name: &str| {
                    self.offered
                        .iter()
                        .find(|c| c.split('=').next() == Some(name))
                        .map(|c| c.split_once('=').map_or("", |(_, v)| v))
                };
                let mut wanted = Vec::new();
                if offered("echo-message").is_some() {
                    wanted.push("echo-message");
                }
                let multiline = offered("draft/multiline").and_then(Multiline::parse);
                if offered("batch").is_some() && multiline.is_some() {
                    wanted.extend(["batch", "draft/multiline"]);
                    self.multiline = multiline;
                }
                // History needs its batch (where it ends) and message-tags (the
                // msgids that make it exact); server-time dates every line.
                if self.config.history
                    && offered("draft/chathistory").is_some()
                    && offered("batch").is_some()
                    && offered("message-tags").is_some()
                {
                    for cap in ["batch", "message-tags", "draft/chathistory"] {
                        if !wanted.contains(&cap) {
                            wanted.push(cap);
                        }
                    }
                    if offered("server-time").is_some() {
                        wanted.push("server-time");
                    }
                }
                let sasl_offer = offered("sasl").map(str::to_owned);
                if self.config.account.is_some() {
                    match sasl_offer {
                        Some(value) => {
                            self.sasl_offer = value;
                            wanted.push("sasl");
                        }
                        None => self.login_failed("the server offers no SASL login"),
                    }
                }
                if wanted.is_empty() {
                    self.cap_end();
                } else {
                    self.send_trailing("CAP", &["REQ"], &wanted.join(" "));
                }
            }
            "ACK" => {
                let acked: Vec<&str> = last(msg).split(' ').collect();
                let has = |name: &str| acked.iter().any(|c| c.eq_ignore_ascii_case(name));
                self.echo = has("echo-message");
                if !has("draft/multiline") {
                    self.multiline = None;
                }
                self.history_on = has("draft/chathistory") && has("batch") && has("message-tags");
                if has("sasl") && self.config.account.is_some() {
                    self.start_login();
                } else {
                    self.cap_end();
                }
            }
            "NAK" => {
                self.echo = false;
                self.multiline = None;
                self.history_on = false;
                if self.config.account.is_some() {
                    self.login_failed("the server refused the capabilities asked for");
                }
                self.cap_end();
            }
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
    /// The echo's msgid and time are recorded, so history does not bring the
    /// message back a second time.
    fn delivered(
        &mut self,
        index: usize,
        kind: LineKind,
        text: &str,
        msgid: Option<&str>,
        time: Option<time::OffsetDateTime>,
    ) -> bool {
        let buffer = &mut self.state.buffers[index];
        let line = buffer
            .lines
            .iter_mut()
            .find(|l| l.own && l.delivery == Delivery::Pending && l.kind == kind && l.text == text);
        match line {
            Some(line) => {
                line.delivery = Delivery::Sent;
                line.msgid = msgid.map(str::to_owned);
                buffer.seen(msgid, time);
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
                "MODES" => {
                    if let Ok(count) = value.parse::<usize>()
                        && count > 0
                    {
                        self.modes_per_line = count.min(20);
                    }
                }
                "CHATHISTORY" => self.history_max = value.parse().ok(),
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
            let name = self.state.buffers[index].name.clone();
            self.fill_history(&name);
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
        let reason = reason
            .filter(|r| !r.is_empty())
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        let me = self.state.is_me(nick);
        let text = match by {
            Some(kicker) if me => format!(
                "You were kicked from {channel} by {kicker}{reason}; you are no longer in it (/join {channel} to go back)"
            ),
            Some(kicker) => format!("{kicker} kicked {nick} from {channel}{reason}"),
            None => format!("{nick} has left {channel}{reason}"),
        };
        if me {
            let buffer = &mut self.state.buffers[index];
            buffer.joined = false;
            buffer.wanted = false;
            buffer.members.clear();
            self.changes.push(Change::Buffers);
            if by.is_some() {
                let line = Line {
                    highlight: true,
                    ..Line::info(self.now, LineKind::Error, text)
                };
                return self.push(index, line);
            }
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

    /// A PRIVMSG or NOTICE, live or (`history`) from a history batch. Server
    /// times are shown where the server gives them; a message already in the
    /// scrollback (by msgid) is not shown again.
    fn on_message(
        &mut self,
        msg: &Message<'_>,
        from: Option<Source<'_>>,
        command: &str,
        history: bool,
        inherited: Option<history::Inherited>,
    ) {
        let target = msg.param(0).unwrap_or("");
        // A line of a multiline batch has its tags on the batch.
        let continuation = inherited.as_ref().is_some_and(|i| i.continuation);
        let (time, msgid, batch) = match inherited {
            Some(batch) => (
                batch.time,
                batch.msgid,
                Some((batch.reference, batch.duplicate)),
            ),
            None => (history::server_time(msg), history::msgid(msg), None),
        };
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
        // History for a buffer closed meanwhile (/close while its fill was on
        // its way) does not open it again.
        let fill_target = if self.state.is_channel(channel_target) || own {
            channel_target
        } else {
            nick
        };
        if history && self.state.find(fill_target).is_none() {
            return;
        }
        let index = if self.state.is_channel(channel_target) {
            self.state.ensure(channel_target, BufferKind::Channel)
        } else if own {
            self.state.ensure(target, BufferKind::Query)
        } else if notice {
            self.state.find(nick).unwrap_or(self.state.active)
        } else {
            self.state.ensure(nick, BufferKind::Query)
        };
        let mut duplicate = msgid
            .as_ref()
            .is_some_and(|id| self.state.buffers[index].has_msgid(id));
        match &batch {
            Some((_, already)) if continuation => duplicate |= *already,
            Some((reference, _)) => self.multiline_seen(reference, duplicate),
            None => {}
        }
        if duplicate {
            if history && !continuation {
                self.history_message(time, false);
            }
            return;
        }
        if own
            && self.echo
            && !notice
            && !history
            && self.delivered(index, kind, text, msgid.as_deref(), time)
        {
            return;
        }
        // Without echo-message our own lines have no msgid: history brings them
        // back once, and is matched to them by text.
        if own && history && !self.echo {
            let buffer = &mut self.state.buffers[index];
            if let Some(line) = buffer
                .lines
                .iter_mut()
                .find(|l| l.own && l.msgid.is_none() && l.kind == kind && l.text == text)
            {
                line.msgid = msgid.clone();
                buffer.seen(msgid.as_deref(), time);
                if !continuation {
                    self.history_message(time, false);
                }
                return;
            }
        }
        // draft/multiline: a line tagged multiline-concat continues the one before
        // it in the same message (a long line the sender split), not a new line.
        if msg.tags().any(|(key, _)| key == "draft/multiline-concat")
            && let Some(previous) = self.state.buffers[index].lines.back_mut()
            && previous.nick.as_deref() == Some(nick)
            && previous.kind == kind
        {
            previous.text.push_str(text);
            self.changes.push(Change::Buffers);
            return;
        }
        let private = self.state.buffers[index].kind == BufferKind::Query;
        let highlight = !own
            && ((private && !notice) || mentions(self.state.casemapping, text, &self.state.nick));
        if history && let Some((target, since)) = self.history_header() {
            let header = if since {
                format!("Said in {target} since you were last there (from the server's history):")
            } else {
                format!("Recent history of {target}:")
            };
            self.info(index, LineKind::Info, header);
        }
        let line = Line {
            time: time.map_or(self.now, |t| history::stamp(t, self.config.utc_offset)),
            kind,
            nick: Some(nick.to_owned()),
            text: text.to_owned(),
            highlight,
            own,
            delivery: Delivery::Sent,
            msgid,
            history,
        };
        self.push(index, line);
        self.state.buffers[index].seen(None, time);
        if history && !continuation {
            self.history_message(time, true);
        }
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

    fn on_list_entry(&mut self, msg: &Message<'_>) {
        if self.listing.len() >= MAX_LIST {
            self.listing_dropped += 1;
            return;
        }
        let channel = msg.param(1).unwrap_or("").to_owned();
        let users = msg.param(2).and_then(|u| u.parse().ok()).unwrap_or(0);
        let topic = msg.param(3).unwrap_or("").to_owned();
        self.listing.push((channel, users, topic));
    }

    /// Writes the gathered `/list` reply into the channel-list buffer, the biggest
    /// channels first.
    fn on_list_end(&mut self) {
        let mut entries = std::mem::take(&mut self.listing);
        entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let index = self.state.ensure(LIST_BUFFER, BufferKind::List);
        self.state.buffers[index].lines.clear();
        let width = entries
            .iter()
            .map(|e| e.0.chars().count())
            .max()
            .unwrap_or(0)
            .clamp(8, 24);
        let total = entries.len() + self.listing_dropped;
        let header = match total {
            0 => "No channels match".to_owned(),
            1 => "1 channel (users, topic); /join #channel to join".to_owned(),
            n => format!("{n} channels, the largest first (users, topic); /join #channel to join"),
        };
        self.info(index, LineKind::Info, header);
        for (channel, users, topic) in entries {
            let text = format!("{channel:<width$} {users:>5}  {topic}");
            self.info(index, LineKind::Info, text);
        }
        if self.listing_dropped > 0 {
            let text = format!(
                "{} more not shown: /list with a mask (such as /list #rust*) narrows it",
                self.listing_dropped
            );
            self.info(index, LineKind::Info, text);
        }
        self.listing_dropped = 0;
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
}
