//! `CHATHISTORY` (IRCv3 `draft/chathistory`): the history of a channel the caller
//! is in, or of its private conversation with someone, read back from the store.
//!
//! The command is checked and parsed here with the world locked; the query runs as
//! a deferred job (`deferred::Deferred::History`) without the lock, on the store's
//! reader threads, and [`finish`] sends the result as one `chathistory` batch
//! (`TARGETS`: one `draft/chathistory-targets` batch). Errors are standard replies:
//! `FAIL CHATHISTORY INVALID_PARAMS|INVALID_TARGET|NEED_MORE_PARAMS|UNKNOWN_COMMAND
//! |MESSAGE_ERROR`.
//!
//! Private history of a caller who is not logged in covers only its current
//! session (messages since it registered): such history is keyed by nickname,
//! and the nickname may have belonged to someone else before.

use palaver_proto::validate::{is_valid_channel, is_valid_nick};
use palaver_proto::{LineWriter, Message};
use palaver_store::{
    HistoryMessage, HistoryRef, MessageKind, Party, Store, StoreError, TargetKey, TargetLatest,
    TargetScope, Timestamp,
};

use super::Ctx;
use super::deferred::Deferred;
use crate::caps;
use crate::history;
use crate::world::World;
use crate::world::read_markers::{format_timestamp, parse_timestamp};

/// The positions a query spans.
#[derive(Debug, Clone)]
pub(crate) enum Span {
    Latest(Option<HistoryRef>),
    Before(HistoryRef),
    After(HistoryRef),
    Around(HistoryRef),
    Between(HistoryRef, HistoryRef),
}

/// A parsed, permitted CHATHISTORY request, for the deferred job.
#[derive(Debug)]
pub(crate) enum Request {
    /// Messages of one target.
    Messages {
        subcommand: &'static str,
        /// The target as the client named it (the batch names it so).
        target: String,
        /// Where to look: a channel's key, or the keys a private conversation may
        /// be stored under (the other side's account, then its nickname).
        keys: Vec<TargetKey>,
        span: Span,
        limit: usize,
        /// The earliest time the caller may read (see the module doc).
        since: Option<Timestamp>,
    },
    /// `TARGETS`: the caller's channels and conversations with recent messages.
    Targets {
        scope: TargetScope,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
        /// The caller's own parties, to name the other side of a conversation.
        me: Vec<Party>,
    },
}

/// What a query found, for [`finish`].
#[derive(Debug)]
pub(crate) enum Found {
    Messages {
        target: String,
        messages: Vec<HistoryMessage>,
    },
    Targets(Vec<TargetLatest>, Vec<Party>),
    Failed {
        subcommand: &'static str,
        error: String,
    },
}

/// `CHATHISTORY <subcommand> ...`.
pub(super) fn chathistory(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let Some(word) = msg.param(0) else {
        fail(ctx, "NEED_MORE_PARAMS", &[], "Missing parameters");
        return;
    };
    let subcommand = match word.to_ascii_uppercase().as_str() {
        "LATEST" => "LATEST",
        "BEFORE" => "BEFORE",
        "AFTER" => "AFTER",
        "AROUND" => "AROUND",
        "BETWEEN" => "BETWEEN",
        "TARGETS" => "TARGETS",
        _ => {
            fail(ctx, "UNKNOWN_COMMAND", &[word], "Unknown subcommand");
            return;
        }
    };
    let needed = match subcommand {
        "BETWEEN" => 5,
        _ => 4,
    };
    if msg.params().len() < needed {
        fail(ctx, "NEED_MORE_PARAMS", &[subcommand], "Missing parameters");
        return;
    }
    let max = ctx.world.config.history.max_per_request;
    let Some(limit) = msg
        .param(needed - 1)
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .map(|l| l.min(max))
    else {
        fail(ctx, "INVALID_PARAMS", &[subcommand], "Invalid limit");
        return;
    };
    if !ctx.world.config.history.enabled {
        fail(
            ctx,
            "MESSAGE_ERROR",
            &[subcommand],
            "History is off on this server",
        );
        return;
    }
    if subcommand == "TARGETS" {
        let (Some(from), Some(to)) = (
            msg.param(1).and_then(timestamp_ref),
            msg.param(2).and_then(timestamp_ref),
        ) else {
            fail(
                ctx,
                "INVALID_PARAMS",
                &[subcommand],
                "TARGETS needs two timestamps",
            );
            return;
        };
        let me = ctx.me();
        let mut parties = vec![history::party(me)];
        if me.account.is_some() {
            parties.push(Party::Nick(World::key(me.nick()).as_str().to_owned()));
        }
        let scope = TargetScope {
            channels: me.channels.iter().map(|k| k.as_str().to_owned()).collect(),
            parties: parties.clone(),
        };
        // Both bounds are exclusive (as for BETWEEN, and as clients and irctest
        // expect); the store's are inclusive, and times are whole milliseconds.
        let step = if from.0 <= to.0 { 1 } else { -1 };
        let (from, to) = (
            Timestamp(from.0.saturating_add(step)),
            Timestamp(to.0.saturating_sub(step)),
        );
        ctx.world.counters.chathistory_queries += 1;
        ctx.deferred = Some(Deferred::History(Request::Targets {
            scope,
            from,
            to,
            limit,
            me: parties,
        }));
        return;
    }
    let target = msg.param(1).unwrap_or_default();
    let refs: Option<Vec<Option<HistoryRef>>> = msg.params()[2..needed - 1]
        .iter()
        .map(|text| parse_ref(text, subcommand == "LATEST"))
        .collect();
    let Some(refs) = refs else {
        fail(
            ctx,
            "INVALID_PARAMS",
            &[subcommand],
            "Invalid message reference (timestamp=… or msgid=…)",
        );
        return;
    };
    let span = match (subcommand, refs.as_slice()) {
        ("LATEST", [at]) => Span::Latest(at.clone()),
        ("BEFORE", [Some(at)]) => Span::Before(at.clone()),
        ("AFTER", [Some(at)]) => Span::After(at.clone()),
        ("AROUND", [Some(at)]) => Span::Around(at.clone()),
        ("BETWEEN", [Some(from), Some(to)]) => Span::Between(from.clone(), to.clone()),
        _ => {
            fail(
                ctx,
                "INVALID_PARAMS",
                &[subcommand],
                "Invalid message reference",
            );
            return;
        }
    };
    let Some((keys, since)) = allowed_keys(ctx, target) else {
        fail(
            ctx,
            "INVALID_TARGET",
            &[subcommand, target],
            "No such channel or you are not in it",
        );
        return;
    };
    ctx.world.counters.chathistory_queries += 1;
    ctx.deferred = Some(Deferred::History(Request::Messages {
        subcommand,
        target: target.to_owned(),
        keys,
        span,
        limit,
        since,
    }));
}

/// The keys the caller may read `target` under, and since when; `None` if it may
/// not (a channel it is not in, a name that is neither).
fn allowed_keys(ctx: &Ctx<'_>, target: &str) -> Option<(Vec<TargetKey>, Option<Timestamp>)> {
    let limits = &ctx.world.config.limits;
    let me = ctx.me();
    if is_valid_channel(target, limits.channel_len) {
        let key = World::key(target);
        if !me.channels.contains(&key) {
            return None;
        }
        return Some((vec![TargetKey::channel(key.as_str())], None));
    }
    if !is_valid_nick(target, limits.nick_len) {
        return None;
    }
    let mine = history::party(me);
    let folded = World::key(target).as_str().to_owned();
    let keys = match ctx.world.find_nick(target) {
        Some(other) => vec![TargetKey::private(&mine, &history::party(other))],
        // Offline: an account of that name, else whoever held the nickname.
        None => vec![
            TargetKey::private(&mine, &Party::Account(folded.clone())),
            TargetKey::private(&mine, &Party::Nick(folded)),
        ],
    };
    let since = me
        .account
        .is_none()
        .then(|| Timestamp(i64::from(me.signon) * 1000));
    Some((keys, since))
}

/// `timestamp=…` or `msgid=…` (or `*` where `star` allows it, as `None`).
fn parse_ref(text: &str, star: bool) -> Option<Option<HistoryRef>> {
    if star && text == "*" {
        return Some(None);
    }
    if let Some(msgid) = text.strip_prefix("msgid=").filter(|m| !m.is_empty()) {
        return Some(Some(HistoryRef::MsgId(msgid.to_owned())));
    }
    timestamp_ref(text).map(|at| Some(HistoryRef::Time(at)))
}

fn timestamp_ref(text: &str) -> Option<Timestamp> {
    parse_timestamp(text.strip_prefix("timestamp=")?).map(Timestamp::from)
}

/// Runs the query (the deferred job's work, without the world lock).
///
/// It first waits for everything queued before it to be committed: channel events
/// (JOIN, PART, ...) are sent before their commit (only messages are held), so
/// without the wait a client could see its PART and then not find it in history.
/// The wait is for one group commit at most, and none when nothing is pending.
pub(crate) async fn query(store: &dyn Store, request: Request) -> Found {
    if let Err(error) = store.flush().await {
        let subcommand = match &request {
            Request::Messages { subcommand, .. } => subcommand,
            Request::Targets { .. } => "TARGETS",
        };
        return failed(subcommand, &error);
    }
    match request {
        Request::Messages {
            subcommand,
            target,
            keys,
            span,
            limit,
            since,
        } => {
            let mut found = Vec::new();
            for key in &keys {
                let result = match &span {
                    Span::Latest(after) => store.latest(key, after.clone(), limit).await,
                    Span::Before(at) => store.before(key, at.clone(), limit).await,
                    Span::After(at) => store.after(key, at.clone(), limit).await,
                    Span::Around(at) => store.around(key, at.clone(), limit).await,
                    Span::Between(from, to) => {
                        store.between(key, from.clone(), to.clone(), limit).await
                    }
                };
                match result {
                    Ok(messages) if !messages.is_empty() => {
                        found = messages;
                        break;
                    }
                    Ok(_) => {}
                    Err(error) => return failed(subcommand, &error),
                }
            }
            if let Some(since) = since {
                found.retain(|m| m.time >= since);
            }
            Found::Messages {
                target,
                messages: found,
            }
        }
        Request::Targets {
            scope,
            from,
            to,
            limit,
            me,
        } => match store.targets(&scope, from, to, limit).await {
            Ok(targets) => Found::Targets(targets, me),
            Err(error) => failed("TARGETS", &error),
        },
    }
}

fn failed(subcommand: &'static str, error: &StoreError) -> Found {
    tracing::warn!(%error, "a history query failed");
    Found::Failed {
        subcommand,
        error: "History is unavailable right now".to_owned(),
    }
}

/// Sends what the query found (with the world locked again).
pub(crate) fn finish(ctx: &mut Ctx<'_>, found: Found) {
    match found {
        Found::Failed { subcommand, error } => fail(ctx, "MESSAGE_ERROR", &[subcommand], &error),
        Found::Messages { target, messages } => send_messages(ctx, &target, &messages),
        Found::Targets(targets, me) => send_targets(ctx, &targets, &me),
    }
}

fn send_messages(ctx: &mut Ctx<'_>, target: &str, messages: &[HistoryMessage]) {
    let reference = ctx.world.next_id_string();
    let me = ctx.me();
    let caps = me.caps;
    let events = caps.has(caps::EVENT_PLAYBACK);
    let batch = caps.has(caps::BATCH);
    let server = &ctx.world.config.server_name;
    if batch {
        me.send(batch_start(server, &reference, "chathistory", Some(target)));
    }
    let my_party = history::party(me);
    // The other side as relay names it (its own spelling of its nick), if online.
    let other = ctx
        .world
        .find_nick(target)
        .map_or(target, |client| client.nick());
    for message in messages {
        let replayable = matches!(
            message.kind,
            MessageKind::Privmsg
                | MessageKind::Notice
                | MessageKind::Tagmsg
                | MessageKind::MultilinePrivmsg
                | MessageKind::MultilineNotice
        );
        if !replayable && !events {
            continue;
        }
        // A TAGMSG is an event of sorts (a reaction): only for event-playback.
        if message.kind == MessageKind::Tagmsg && !(events && caps.has(caps::MESSAGE_TAGS)) {
            continue;
        }
        let shown_target = match message.target.parties() {
            // Channels: the name as asked for.
            None => target,
            // A conversation: the other side for the caller's own messages, the
            // caller for the other side's.
            Some(_) if sent_by(message, &my_party) => other,
            Some(_) => me.nick(),
        };
        let outer = batch.then_some(reference.as_str());
        if matches!(
            message.kind,
            MessageKind::MultilinePrivmsg | MessageKind::MultilineNotice
        ) {
            // The inner batch's reference only has to be unique within the reply.
            let inner = format!("{reference}-{}", message.msgid);
            for line in replay_multiline(message, shown_target, caps, outer, &inner) {
                me.send(line);
            }
        } else {
            me.send(replay_line(message, shown_target, caps, outer));
        }
    }
    if batch {
        me.send(batch_end(server, &reference));
    }
}

/// `:server BATCH +<reference> <kind> [<target>]`.
fn batch_start(server: &str, reference: &str, kind: &str, target: Option<&str>) -> bytes::Bytes {
    let mut start = LineWriter::new();
    start
        .source(server)
        .command("BATCH")
        .param(&format!("+{reference}"))
        .param(kind);
    if let Some(target) = target {
        start.param(target);
    }
    start.finish()
}

/// `:server BATCH -<reference>`.
fn batch_end(server: &str, reference: &str) -> bytes::Bytes {
    let mut end = LineWriter::new();
    end.source(server)
        .command("BATCH")
        .param(&format!("-{reference}"));
    end.finish()
}

/// `nick!user@host` as stored, in its three parts (`*` for a part that is missing).
fn sender_parts(sender: &str) -> (&str, &str, &str) {
    let (nick, rest) = sender.split_once('!').unwrap_or((sender, "*@*"));
    let (user, host) = rest.split_once('@').unwrap_or((rest, "*"));
    (nick, user, host)
}

/// A stored time as the `time` tag (and TARGETS) show it.
fn format_time(at: Timestamp) -> String {
    at.to_offset_date_time()
        .map(format_timestamp)
        .unwrap_or_default()
}

/// Whether the stored message was sent by `party`.
fn sent_by(message: &HistoryMessage, party: &Party) -> bool {
    match party {
        Party::Account(account) => message
            .account
            .as_deref()
            .is_some_and(|a| World::key(a).as_str() == account),
        Party::Nick(nick) => {
            let sender = message.sender.split('!').next().unwrap_or_default();
            message.account.is_none() && World::key(sender).as_str() == nick
        }
    }
}

/// The tags a replayed message carries for a client with `caps`: the enclosing
/// batch, and the time, msgid (unless empty: a continuation line), account and
/// client-only tags its recipients saw.
fn message_tags(
    line: &mut LineWriter,
    message: &HistoryMessage,
    caps: caps::CapSet,
    batch: Option<&str>,
) {
    if let Some(reference) = batch {
        line.tag("batch", Some(reference));
    }
    if caps.has(caps::SERVER_TIME) || caps.has(caps::MESSAGE_TAGS) {
        line.tag("time", Some(&format_time(message.time)));
    }
    if caps.has(caps::MESSAGE_TAGS) {
        if !message.msgid.is_empty() {
            line.tag("msgid", Some(&message.msgid));
        }
        if let Some(account) = &message.account {
            line.tag("account", Some(account));
        }
        line.raw_tags(&message.tags);
    }
}

/// One stored message as a line for a client with `caps`.
fn replay_line(
    message: &HistoryMessage,
    target: &str,
    caps: caps::CapSet,
    batch: Option<&str>,
) -> bytes::Bytes {
    let mut line = LineWriter::new();
    message_tags(&mut line, message, caps, batch);
    let (nick, user, host) = sender_parts(&message.sender);
    line.source_parts(nick, user, host)
        .command(message.kind.command());
    let text = message.text.as_str();
    match message.kind {
        MessageKind::Privmsg
        | MessageKind::Notice
        | MessageKind::Topic
        | MessageKind::MultilinePrivmsg
        | MessageKind::MultilineNotice => {
            line.param(target).trailing(text);
        }
        MessageKind::Tagmsg | MessageKind::Join => {
            line.param(target);
        }
        MessageKind::Part => {
            line.param(target);
            if !text.is_empty() {
                line.trailing(text);
            }
        }
        MessageKind::Quit => {
            line.trailing(text);
        }
        // Stored as `<victim> <reason>`.
        MessageKind::Kick => {
            let (victim, reason) = text.split_once(' ').unwrap_or((text, ""));
            line.param(target).param(victim).trailing(reason);
        }
        // Stored as `<letters> <params>...`.
        MessageKind::Mode => {
            line.param(target);
            for param in text.split(' ').filter(|p| !p.is_empty()) {
                line.param(param);
            }
        }
        MessageKind::Nick => {
            line.param(text);
        }
    }
    line.finish()
}

/// A stored multiline message: a nested `draft/multiline` batch for a client with
/// the capability (and `batch`), else one line per non-empty line, the first with
/// the msgid (as relay sends it to such clients).
fn replay_multiline(
    message: &HistoryMessage,
    target: &str,
    caps: caps::CapSet,
    outer: Option<&str>,
    inner: &str,
) -> Vec<bytes::Bytes> {
    let lines = history::decode_multiline(&message.text);
    if !(caps.has(caps::MULTILINE) && caps.has(caps::BATCH)) {
        return lines
            .filter(|(text, _)| !text.is_empty())
            .enumerate()
            .map(|(index, (text, _))| {
                let mut single = message.clone();
                single.kind = if message.kind == MessageKind::MultilineNotice {
                    MessageKind::Notice
                } else {
                    MessageKind::Privmsg
                };
                single.text = text.to_owned();
                if index > 0 {
                    single.msgid.clear();
                }
                replay_line(&single, target, caps, outer)
            })
            .collect();
    }
    let (nick, user, host) = sender_parts(&message.sender);
    let mut out = Vec::new();
    // The opening line carries the message's tags (time, msgid, account, client
    // tags) and the outer batch; the lines inside carry the inner batch.
    let mut start = LineWriter::new();
    message_tags(&mut start, message, caps, outer);
    start
        .source_parts(nick, user, host)
        .command("BATCH")
        .param(&format!("+{inner}"))
        .param("draft/multiline")
        .param(target);
    out.push(start.finish());
    for (text, concat) in lines {
        let mut line = LineWriter::new();
        line.tag("batch", Some(inner));
        if concat {
            line.tag("draft/multiline-concat", None);
        }
        line.source_parts(nick, user, host)
            .command(message.kind.command())
            .param(target)
            .trailing(text);
        out.push(line.finish());
    }
    let mut end = LineWriter::new();
    if let Some(outer) = outer {
        end.tag("batch", Some(outer));
    }
    end.source_parts(nick, user, host)
        .command("BATCH")
        .param(&format!("-{inner}"));
    out.push(end.finish());
    out
}

fn send_targets(ctx: &mut Ctx<'_>, targets: &[TargetLatest], me: &[Party]) {
    let reference = ctx.world.next_id_string();
    let client = ctx.me();
    let server = &ctx.world.config.server_name;
    client.send(batch_start(
        server,
        &reference,
        "draft/chathistory-targets",
        None,
    ));
    let mine: Vec<String> = me.iter().map(Party::encoded).collect();
    for found in targets {
        let name = match found.target.parties() {
            None => ctx
                .world
                .channels
                .get(&World::key(found.target.as_str()))
                .map_or_else(|| found.target.as_str().to_owned(), |c| c.name.to_string()),
            Some(parties) => {
                let other = parties
                    .iter()
                    .find(|p| !mine.contains(p))
                    .unwrap_or(&parties[0]);
                let folded = other.get(2..).unwrap_or_default();
                ctx.world
                    .find_nick(folded)
                    .map_or_else(|| folded.to_owned(), |c| c.nick().to_owned())
            }
        };
        let time = format_time(found.latest);
        let mut line = LineWriter::new();
        line.tag("batch", Some(&reference))
            .source(server)
            .command("CHATHISTORY")
            .param("TARGETS")
            .param(&name)
            .param(&time);
        client.send(line.finish());
    }
    client.send(batch_end(server, &reference));
}

/// `FAIL CHATHISTORY <code> [params] :text`.
fn fail(ctx: &Ctx<'_>, code: &str, params: &[&str], text: &str) {
    ctx.world
        .standard_reply(ctx.id, "FAIL", "CHATHISTORY", code, params, text);
}
