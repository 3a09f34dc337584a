//! Channel membership and channel state: JOIN, PART, TOPIC, NAMES, LIST, KICK, INVITE.

use std::sync::Arc;

use std::time::SystemTime;

use palaver_proto::numeric::*;
use palaver_proto::validate::is_valid_channel;
use palaver_proto::{CaseKey, LineWriter, Message};

use super::{Ctx, elist, split_list, unix_seconds};
use crate::caps;
use crate::history;
use crate::outbox::Outbox;
use crate::relay::{EventLine, Relay, Stamp};
use crate::world::{Channel, Client, ClientId, Member, Status, Topic, World};
use palaver_store::MessageKind;

/// `JOIN <#chan>{,<#chan>} [<key>{,<key>}]`, and `JOIN 0` to leave every channel.
pub(super) fn join(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let Some(channels) = msg.param(0) else {
        ctx.need_more_params("JOIN");
        return;
    };
    if channels == "0" {
        let keys: Vec<CaseKey> = ctx.me().channels.iter().cloned().collect();
        for key in keys {
            leave(ctx, &key, "PART", None);
        }
        return;
    }
    let mut keys = msg.param(1).map(|k| k.split(',')).into_iter().flatten();
    for name in split_list(channels) {
        let key = keys.next().filter(|k| !k.is_empty());
        join_one(ctx, name, key, false);
    }
}

/// `SAJOIN`: joins the client `ctx.id` to `name` as its own JOIN would, past the
/// channel's bans, key, limit and modes and the per-client channel limit (an
/// operator decided). Returns whether the client is now in the channel.
pub(super) fn force_join(ctx: &mut Ctx<'_>, name: &str) -> bool {
    join_one(ctx, name, None, true);
    ctx.me().channels.contains(&World::key(name))
}

/// `SAPART`: parts the client `ctx.id` from channel `key` as its own PART would;
/// returns whether it was in it.
pub(super) fn force_part(ctx: &mut Ctx<'_>, key: &CaseKey, reason: Option<&str>) -> bool {
    if !ctx.me().channels.contains(key) {
        return false;
    }
    leave(ctx, key, "PART", reason);
    true
}

/// One channel of a JOIN; `forced` (SAJOIN) gets past every per-channel and
/// per-client restriction, as an invitation does, but not the server-wide bound
/// on channels.
fn join_one(ctx: &mut Ctx<'_>, name: &str, key: Option<&str>, forced: bool) {
    let limits = &ctx.world.config.limits;
    if !is_valid_channel(name, limits.channel_len) {
        ctx.no_such_channel(name);
        return;
    }
    let folded = World::key(name);
    if ctx.me().channels.contains(&folded) {
        return;
    }
    if ctx.me().channels.len() >= limits.max_channels_per_client && !forced {
        ctx.numeric(ERR_TOOMANYCHANNELS)
            .param(name)
            .trailing("You have joined too many channels")
            .send();
        return;
    }
    let registered = ctx.world.registry.get(&folded).is_some();
    let creating = !ctx.world.channels.contains_key(&folded);
    if creating && !ctx.world.may_create_channel() {
        ctx.numeric(ERR_TOOMANYCHANNELS)
            .param(name)
            .trailing("The server has as many channels as it allows; join an existing one")
            .send();
        return;
    }
    // A registered channel comes back with its stored modes and lists, which apply
    // to whoever recreates it; it is dropped again below if they refuse the joiner.
    if creating && registered {
        ctx.world.create_channel(&folded, name.to_owned());
    }
    let me = ctx.me();
    // Only an operator's invitation is ever recorded (see `invite`), so holding one
    // gets past every restriction below, as the operator could have lifted them.
    let invited = me.invites.contains(&folded);
    // Operator access to a registered channel (ChanServ) counts as an invitation,
    // for the same reason: the holder could lift the restriction.
    let access = ctx
        .world
        .registry
        .has_op_access(&folded, me.account.as_deref());
    let invited = invited || access || forced;
    if let Some(channel) = ctx.world.channels.get(&folded) {
        let mask = me.mask();
        // `is_banned` already lets ban exceptions (+e) through; invite exceptions
        // (+I) stand in for an INVITE against +i only.
        let account = me.account.as_deref();
        let refusal = if channel.is_banned(&mask, account) && !invited {
            Some((ERR_BANNEDFROMCHAN, "Cannot join channel (+b)"))
        } else if channel.modes.invite_only
            && !invited
            && !channel.is_invite_excepted(&mask, account)
        {
            Some((ERR_INVITEONLYCHAN, "Cannot join channel (+i)"))
        } else if channel.modes.key.as_deref().is_some_and(|k| Some(k) != key) && !invited {
            Some((ERR_BADCHANNELKEY, "Cannot join channel (+k)"))
        } else if channel
            .modes
            .limit
            .is_some_and(|l| channel.members.len() >= l)
            && !invited
        {
            Some((ERR_CHANNELISFULL, "Cannot join channel (+l)"))
        } else if channel.modes.registered_only && account.is_none() && !invited {
            Some((
                ERR_NEEDREGGEDNICK,
                "Cannot join channel (+R): log in to an account first",
            ))
        } else if channel.modes.tls_only && !me.tls && !invited {
            Some((
                ERR_SECUREONLYCHAN,
                "Cannot join channel (+z): connect with TLS first",
            ))
        } else {
            None
        };
        if let Some((code, text)) = refusal {
            ctx.numeric(code).param(&channel.name).trailing(text).send();
            ctx.world.drop_channel_if_empty(&folded);
            return;
        }
    }
    let outbox = Arc::clone(&me.outbox);
    // Announce with the channel's own spelling of its name.
    let display_name = ctx
        .world
        .create_channel(&folded, name.to_owned())
        .name
        .clone();
    // Recorded before it is announced, so that the JOIN carries the msgid and time
    // that event-playback will replay.
    let stamp = history::record_event(ctx.world, ctx.id, MessageKind::Join, &folded, "");
    let joins = JoinLines::new(ctx.me(), &display_name, stamp);
    let Some(channel) = ctx.world.channels.get_mut(&folded) else {
        return;
    };
    channel.members.insert(
        ctx.id,
        Member {
            status: Status {
                // The creator of a registered channel is opped only with access
                // (by ChanServ, below).
                op: creating && !registered,
                voice: false,
            },
            outbox,
        },
    );
    for (id, member) in &channel.members {
        joins.send_to(&member.outbox, *id == ctx.id);
    }
    let me = ctx.me_mut();
    me.channels.insert(folded.clone());
    me.invites.retain(|k| *k != folded);
    ctx.world.announce_join(ctx.id, &folded);
    if access {
        super::chanserv::after_join(ctx, &folded);
    }
    join_burst(ctx, &folded);
    if ctx.world.config.history.join_notice && history::kept_for(ctx.world, &folded) {
        // Users should know their words are kept (and how to stop it).
        ctx.world
            .server_line(ctx.id, "NOTICE")
            .param(&display_name_of(ctx, &folded))
            .trailing("Messages in this channel are kept in its history on this server (channel operators can turn that off with /mode +E)")
            .send();
    }
}

/// What a client gets after its JOIN of channel `key` is announced: the topic, its
/// read marker, NAMES (unless `draft/no-implicit-names`) and the channel's metadata.
/// Also the fallback burst of a `RENAME` (see [`super::rename`]).
pub(super) fn join_burst(ctx: &mut Ctx<'_>, key: &CaseKey) {
    send_topic(ctx, key, false);
    // draft/read-marker: before RPL_ENDOFNAMES.
    super::read_marker::after_join(ctx, key);
    if !ctx.me().caps.has(caps::NO_IMPLICIT_NAMES) {
        send_names(ctx, key);
    }
    super::metadata::after_join(ctx, key);
}

/// The channel's name as its creator spelt it (its folded name if it is gone).
fn display_name_of(ctx: &Ctx<'_>, key: &CaseKey) -> String {
    ctx.world
        .channels
        .get(key)
        .map_or_else(|| key.as_str().to_owned(), |c| c.name.clone())
}

/// The lines announcing a JOIN, in each format a member may want (each also with
/// the joiner's `account` tag for `account-tag` members).
pub(super) struct JoinLines {
    plain: EventLine,
    /// `extended-join`: `JOIN #chan <account> :<realname>`.
    extended: EventLine,
    /// `away-notify`: the joiner's away status, right after its JOIN.
    away: Option<EventLine>,
}

impl JoinLines {
    /// The JOIN of `joiner` to `channel`, recorded in history with `stamp` (if kept).
    pub(super) fn new(joiner: &Client, channel: &str, stamp: Option<Stamp>) -> Self {
        let account = joiner.account.as_deref();
        let mut plain = joiner.line_from();
        plain.command("JOIN").param(channel);
        let mut extended = joiner.line_from();
        // `*`: not logged in to an account.
        extended
            .command("JOIN")
            .param(channel)
            .param(account.unwrap_or("*"))
            .trailing(&joiner.realname);
        let away = joiner.away.as_deref().map(|message| {
            let mut line = joiner.line_from();
            line.command("AWAY").trailing(message);
            EventLine::new(line.finish(), account)
        });
        Self {
            plain: EventLine::stamped(plain.finish(), account, stamp.clone()),
            extended: EventLine::stamped(extended.finish(), account, stamp),
            away,
        }
    }

    pub(super) fn send_to(&self, outbox: &Outbox, is_joiner: bool) {
        let caps = outbox.caps();
        outbox.push(if caps.has(caps::EXTENDED_JOIN) {
            self.extended.line_for(caps)
        } else {
            self.plain.line_for(caps)
        });
        if let Some(away) = &self.away
            && !is_joiner
            && caps.has(caps::AWAY_NOTIFY)
        {
            outbox.push(away.line_for(caps));
        }
    }
}

/// Shows this node's members of channel `key` the JOIN of remote user `id` (and
/// its status there, from the server), which its own node could not show them:
/// both nodes created the channel at the same moment, so neither knew the
/// other's members (see `World::join_remote`).
pub(crate) fn show_remote_join(world: &World, id: ClientId, key: &CaseKey) {
    let (Some(joiner), Some(channel)) = (world.clients.get(&id), world.channels.get(key)) else {
        return;
    };
    let lines = JoinLines::new(joiner, &channel.name, None);
    let status = channel.status(id).unwrap_or_default();
    let mut modes = Vec::new();
    for (held, letter) in [(status.op, "+o"), (status.voice, "+v")] {
        if held {
            let mut line = palaver_proto::LineWriter::new();
            line.source(&world.config.server_name)
                .command("MODE")
                .param(&channel.name)
                .param(letter)
                .param(joiner.nick());
            modes.push(EventLine::new(line.finish(), None));
        }
    }
    for member in channel.members.values() {
        if world.is_local_outbox(&member.outbox) {
            lines.send_to(&member.outbox, false);
            for mode in &modes {
                member.outbox.push(mode.line_for(member.outbox.caps()));
            }
        }
    }
}

/// Removes the client from a channel, announcing `PART` (or, for KICK, nothing: the
/// caller announces) to all members including the client itself.
fn leave(ctx: &mut Ctx<'_>, key: &CaseKey, command: &str, reason: Option<&str>) {
    let Some(channel) = ctx.world.channels.get(key) else {
        return;
    };
    let mut line = ctx.me().line_from();
    line.command(command).param(&channel.name);
    if let Some(reason) = reason {
        line.trailing(reason);
    }
    let line = line.finish();
    let stamp = history::record_event(
        ctx.world,
        ctx.id,
        MessageKind::Part,
        key,
        reason.unwrap_or_default(),
    );
    let event = EventLine::stamped(line, ctx.me().account.as_deref(), stamp);
    if let Some(channel) = ctx.world.channels.get(key) {
        channel.broadcast_event(&event);
    }
    ctx.world.announce_part(ctx.id, key);
    ctx.world.part_channel(ctx.id, key);
}

/// `PART <#chan>{,<#chan>} [:reason]`.
pub(super) fn part(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let Some(channels) = msg.param(0) else {
        ctx.need_more_params("PART");
        return;
    };
    let reason = msg.param(1).filter(|r| !r.is_empty());
    for name in split_list(channels) {
        let key = World::key(name);
        if ctx.world.channel_known_to(&key, ctx.id).is_none() {
            ctx.no_such_channel(name);
        } else if !ctx.me().channels.contains(&key) {
            ctx.numeric(ERR_NOTONCHANNEL)
                .param(name)
                .trailing("You're not on that channel")
                .send();
        } else {
            leave(ctx, &key, "PART", reason);
        }
    }
}

/// Sends the topic numerics for a channel; `explicit` also sends `RPL_NOTOPIC`.
fn send_topic(ctx: &Ctx<'_>, key: &CaseKey, explicit: bool) {
    let Some(channel) = ctx.world.channels.get(key) else {
        return;
    };
    match &channel.topic {
        Some(topic) => {
            ctx.numeric(RPL_TOPIC)
                .param(&channel.name)
                .trailing(&topic.text)
                .send();
            ctx.numeric(RPL_TOPICWHOTIME)
                .param(&channel.name)
                .param(&topic.set_by)
                .param(&unix_seconds(topic.set_at))
                .send();
        }
        None if explicit => {
            ctx.numeric(RPL_NOTOPIC)
                .param(&channel.name)
                .trailing("No topic is set")
                .send();
        }
        None => {}
    }
}

/// `TOPIC <#chan> [:topic]`: query, set, or clear with an empty topic.
pub(super) fn topic(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let Some(name) = msg.param(0) else {
        ctx.need_more_params("TOPIC");
        return;
    };
    let key = World::key(name);
    // Outsiders get the same answer for a secret channel as for a missing one.
    let Some(channel) = ctx.world.channel_known_to(&key, ctx.id) else {
        ctx.no_such_channel(name);
        return;
    };
    let member = channel.status(ctx.id);
    let Some(text) = msg.param(1) else {
        send_topic(ctx, &key, true);
        return;
    };
    let Some(status) = member else {
        ctx.numeric(ERR_NOTONCHANNEL)
            .param(&channel.name)
            .trailing("You're not on that channel")
            .send();
        return;
    };
    if channel.modes.topic_ops_only && !status.op {
        ctx.numeric(ERR_CHANOPRIVSNEEDED)
            .param(&channel.name)
            .trailing("You're not channel operator")
            .send();
        return;
    }
    let text: String = truncate(text, ctx.world.config.limits.topic_len).to_owned();
    // Recorded first, so the broadcast carries the msgid and time that
    // event-playback replays.
    let stamp = history::record_event(ctx.world, ctx.id, MessageKind::Topic, &key, &text)
        .unwrap_or_else(|| ctx.world.stamp());
    let set_by = ctx.me().mask();
    let me = ctx.me();
    let Some(channel) = ctx.world.channels.get(&key) else {
        return;
    };
    let mut relay = Relay::new(
        (me.nick(), me.user(), &me.host),
        "TOPIC",
        &channel.name,
        Some(&text),
        "",
        me.bot,
        &stamp,
    )
    .with_account(me.account.as_deref());
    for member in channel.members.values() {
        member.outbox.push(relay.line_for(member.outbox.caps()));
    }
    if let Some(channel) = ctx.world.channels.get_mut(&key) {
        channel.topic = (!text.is_empty()).then(|| Topic {
            text,
            set_by,
            set_at: SystemTime::now(),
        });
    }
    crate::world::registry::channel_changed(ctx.world, &key);
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub(super) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

/// `NAMES [<#chan>{,<#chan>}]`.
pub(super) fn names(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let Some(channels) = msg.param(0) else {
        ctx.numeric(RPL_ENDOFNAMES)
            .param("*")
            .trailing("End of /NAMES list")
            .send();
        return;
    };
    let names: Vec<&str> = split_list(channels).collect();
    if let [name] = names.as_slice() {
        // One channel: its own end numeric, with the channel's spelling of its name.
        let key = World::key(name);
        if is_visible(ctx, &key) {
            send_names(ctx, &key);
            return;
        }
    } else {
        // Several channels (RFC 2812): replies for each, then one end numeric.
        for name in &names {
            let key = World::key(name);
            if is_visible(ctx, &key) {
                send_name_replies(ctx, &key);
            }
        }
    }
    ctx.numeric(RPL_ENDOFNAMES)
        .param(channels)
        .trailing("End of /NAMES list")
        .send();
}

/// Whether the caller may see a channel's members (it exists and is not secret, or
/// the caller is in it).
fn is_visible(ctx: &Ctx<'_>, key: &CaseKey) -> bool {
    ctx.world
        .channels
        .get(key)
        .is_some_and(|channel| !channel.hidden_from(ctx.id))
}

/// `RPL_NAMREPLY` lines and `RPL_ENDOFNAMES` for one channel.
pub(super) fn send_names(ctx: &Ctx<'_>, key: &CaseKey) {
    let Some(channel) = ctx.world.channels.get(key) else {
        return;
    };
    send_name_replies(ctx, key);
    ctx.numeric(RPL_ENDOFNAMES)
        .param(&channel.name)
        .trailing("End of /NAMES list")
        .send();
}

/// `RPL_NAMREPLY` lines, as many as the line length needs.
fn send_name_replies(ctx: &Ctx<'_>, key: &CaseKey) {
    let Some(channel) = ctx.world.channels.get(key) else {
        return;
    };
    let me = ctx.me();
    let multi_prefix = me.caps.has(caps::MULTI_PREFIX);
    let userhost = me.caps.has(caps::USERHOST_IN_NAMES);
    let is_member = channel.members.contains_key(&ctx.id);
    let symbol = if channel.modes.secret {
        "@"
    } else if channel.modes.private {
        "*"
    } else {
        "="
    };
    // Room for the names in one line: 512 minus the fixed parts and some slack.
    let budget =
        510 - (ctx.world.config.server_name.len() + me.nick().len() + channel.name.len() + 16);
    let mut names = String::new();
    let flush = |names: &mut String| {
        if !names.is_empty() {
            ctx.numeric(RPL_NAMREPLY)
                .param(symbol)
                .param(&channel.name)
                .trailing(names)
                .send();
            names.clear();
        }
    };
    for (id, member) in &channel.members {
        let Some(client) = ctx.world.clients.get(id) else {
            continue;
        };
        if !is_member && client.invisible && *id != ctx.id {
            continue;
        }
        let prefix = if multi_prefix {
            member.status.all_prefixes()
        } else {
            member.status.prefix()
        };
        let entry = if userhost {
            format!("{prefix}{}", client.mask())
        } else {
            format!("{prefix}{}", client.nick())
        };
        if !names.is_empty() && names.len() + 1 + entry.len() > budget {
            flush(&mut names);
        }
        if !names.is_empty() {
            names.push(' ');
        }
        names.push_str(&entry);
    }
    flush(&mut names);
}

/// `LIST [<#chan|mask|elistcond>{,...}] [<elistcond>{,...}]`: channels that are not
/// secret, or that we are in, sorted by name and filtered as `ELIST=CMNTU` says
/// (see [`super::elist`]).
pub(super) fn list(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let params = msg.params();
    let filter = elist::Filter::parse(&params[..params.len().min(2)]);
    super::paged::Paged::list(ctx, filter);
}

/// Members of `channel` that `viewer` may see (invisible users only to fellow members).
pub(super) fn visible_count(world: &World, channel: &Channel, viewer: ClientId) -> usize {
    if channel.members.contains_key(&viewer) {
        return channel.members.len();
    }
    channel
        .members
        .keys()
        .filter(|id| world.clients.get(id).is_some_and(|c| !c.invisible))
        .count()
}

/// `KICK <#chan>{,<#chan>} <nick>{,<nick>} [:reason]`: one channel and several
/// nicks, or as many channels as nicks, paired in order (RFC 2812 §3.2.8). At most
/// `TARGMAX=KICK:<max_targets>` users are kicked; further ones are dropped silently,
/// as modern.ircdocs.horse allows. Each KICK goes out with one channel and one nick.
pub(super) fn kick(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let (Some(channels), Some(targets)) = (msg.param(0), msg.param(1)) else {
        ctx.need_more_params("KICK");
        return;
    };
    let channels: Vec<&str> = split_list(channels).collect();
    let targets: Vec<&str> = split_list(targets).collect();
    if channels.is_empty()
        || targets.is_empty()
        || (channels.len() != 1 && channels.len() != targets.len())
    {
        ctx.need_more_params("KICK");
        return;
    }
    let limits = &ctx.world.config.limits;
    let (kick_len, max_targets) = (limits.kick_len, limits.max_targets);
    let default_reason = ctx.me().nick().to_owned();
    let reason = truncate(
        msg.param(2)
            .filter(|r| !r.is_empty())
            .unwrap_or(&default_reason),
        kick_len,
    )
    .to_owned();
    // Channels whose refusal (403/442/482) was already sent: once per channel.
    let mut refused: Vec<CaseKey> = Vec::new();
    for (index, target) in targets.iter().take(max_targets).enumerate() {
        let name = channels.get(index).unwrap_or(&channels[0]);
        let key = World::key(name);
        if refused.contains(&key) {
            continue;
        }
        if let Some((code, shown, text)) = kick_refusal(ctx, name, &key) {
            ctx.numeric(code).param(&shown).trailing(text).send();
            refused.push(key);
            continue;
        }
        kick_one(ctx, &key, target, &reason);
    }
}

/// Why the caller may not kick from this channel, if it may not: the numeric, the
/// channel name to show and the text.
fn kick_refusal(
    ctx: &Ctx<'_>,
    name: &str,
    key: &CaseKey,
) -> Option<(&'static str, String, &'static str)> {
    // A secret channel refuses outsiders as a missing one would (403, not 442).
    let Some(channel) = ctx.world.channel_known_to(key, ctx.id) else {
        return Some((ERR_NOSUCHCHANNEL, name.to_owned(), "No such channel"));
    };
    match channel.status(ctx.id) {
        None => Some((
            ERR_NOTONCHANNEL,
            channel.name.clone(),
            "You're not on that channel",
        )),
        Some(status) if !status.op => Some((
            ERR_CHANOPRIVSNEEDED,
            channel.name.clone(),
            "You're not channel operator",
        )),
        Some(_) => None,
    }
}

/// Kicks one nick from a channel the caller operates, or answers 441.
fn kick_one(ctx: &mut Ctx<'_>, key: &CaseKey, target: &str, reason: &str) {
    let Some(channel_name) = ctx.world.channels.get(key).map(|c| c.name.clone()) else {
        return;
    };
    let victim = ctx
        .world
        .find_nick(target)
        .map(|c| (c.id, c.nick().to_owned()));
    let Some((victim_id, victim_nick)) = victim.filter(|(id, _)| {
        ctx.world
            .channels
            .get(key)
            .is_some_and(|c| c.members.contains_key(id))
    }) else {
        ctx.numeric(ERR_USERNOTINCHANNEL)
            .param(target)
            .param(&channel_name)
            .trailing("They aren't on that channel")
            .send();
        return;
    };
    let mut line = ctx.me().line_from();
    line.command("KICK")
        .param(&channel_name)
        .param(&victim_nick)
        .trailing(reason);
    let recorded = format!("{victim_nick} {reason}");
    let stamp = history::record_event(ctx.world, ctx.id, MessageKind::Kick, key, &recorded);
    let event = EventLine::stamped(line.finish(), ctx.me().account.as_deref(), stamp);
    if let Some(channel) = ctx.world.channels.get(key) {
        channel.broadcast_event(&event);
    }
    ctx.world.announce_part(victim_id, key);
    ctx.world.part_channel(victim_id, key);
}

/// `INVITE`: the channels the caller holds invitations to (`336`…, `337`), oldest
/// first, in each channel's own spelling (or folded, if the channel is gone).
fn send_invite_list(ctx: &Ctx<'_>) {
    for key in &ctx.me().invites {
        let name = ctx
            .world
            .channels
            .get(key)
            .map_or(key.as_str(), |c| c.name.as_str());
        ctx.numeric(RPL_INVITELIST).param(name).send();
    }
    ctx.numeric(RPL_ENDOFINVITELIST)
        .trailing("End of /INVITE list")
        .send();
}

/// `INVITE <nick> <#chan>`, or `INVITE` alone to list one's invitations.
///
/// Any member may invite to a channel that is not `+i` (RFC 2812 §3.2.7); only its
/// operators to a `+i` one. The invitation always reaches the target, but it is
/// recorded, and so lets the target in, only when an operator sent it: then it gets
/// the target past `+i`, `+b`, `+k` and `+l` for one join, as the operator could
/// have lifted any of them. A plain member's invitation is a notice and nothing
/// more, so it cannot open the channel to someone its operators keep out with a
/// ban, a key or the limit (docs/PROTOCOL.md, "Invitations").
pub(super) fn invite(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    if msg.params().is_empty() {
        send_invite_list(ctx);
        return;
    }
    let (Some(target), Some(name)) = (msg.param(0), msg.param(1)) else {
        ctx.need_more_params("INVITE");
        return;
    };
    let Some(target_id) = ctx.world.find_nick(target).map(|c| c.id) else {
        ctx.no_such_nick(target);
        return;
    };
    let key = World::key(name);
    let channel_name;
    let by_op;
    // Outsiders get the same answer for a secret channel as for a missing one.
    if let Some(channel) = ctx.world.channel_known_to(&key, ctx.id) {
        channel_name = channel.name.clone();
        let Some(status) = channel.status(ctx.id) else {
            ctx.numeric(ERR_NOTONCHANNEL)
                .param(&channel_name)
                .trailing("You're not on that channel")
                .send();
            return;
        };
        if channel.modes.invite_only && !status.op {
            ctx.numeric(ERR_CHANOPRIVSNEEDED)
                .param(&channel_name)
                .trailing("You're not channel operator")
                .send();
            return;
        }
        if channel.members.contains_key(&target_id) {
            ctx.numeric(ERR_USERONCHANNEL)
                .param(target)
                .param(&channel_name)
                .trailing("is already on channel")
                .send();
            return;
        }
        by_op = status.op;
    } else {
        ctx.no_such_channel(name);
        return;
    }
    let max_invites = ctx.world.config.limits.max_invites;
    let mut line = ctx.me().line_from();
    // account-tag: the inviter's account, for recipients with the capability.
    let mut tagged = ctx.me().account.as_deref().map(|account| {
        let mut tagged = LineWriter::new();
        tagged.tag("account", Some(account));
        let me = ctx.me();
        tagged.source_parts(me.nick(), me.user(), &me.host);
        tagged
    });
    let Some(target_client) = ctx.world.clients.get_mut(&target_id) else {
        return;
    };
    let target_nick = target_client.nick().to_owned();
    let invited = by_op && !target_client.invites.contains(&key);
    if invited {
        if target_client.invites.len() >= max_invites {
            target_client.invites.remove(0);
        }
        target_client.invites.push(key.clone());
    }
    line.command("INVITE")
        .param(&target_nick)
        .param(&channel_name);
    let line = line.finish();
    let tagged = tagged.take().map(|mut tagged| {
        tagged
            .command("INVITE")
            .param(&target_nick)
            .param(&channel_name);
        tagged.finish()
    });
    let line_for = |caps: caps::CapSet| match &tagged {
        Some(tagged) if caps.has(caps::ACCOUNT_TAG) => tagged.clone(),
        _ => line.clone(),
    };
    target_client.send(line_for(target_client.caps));
    // An invitation to a user of another node is checked there.
    if invited && ctx.world.is_remote(target_id) {
        ctx.world.announce_invite(target_id, &key);
    }
    // invite-notify: other members with the capability see the invitation too.
    if let Some(channel) = ctx.world.channels.get(&key) {
        for (id, member) in &channel.members {
            if *id != ctx.id && member.outbox.caps().has(caps::INVITE_NOTIFY) {
                member.outbox.push(line_for(member.outbox.caps()));
            }
        }
    }
    ctx.numeric(RPL_INVITING)
        .param(&target_nick)
        .param(&channel_name)
        .send();
    if let Some(away) = ctx
        .world
        .clients
        .get(&target_id)
        .and_then(|c| c.away.clone())
    {
        ctx.numeric(RPL_AWAY)
            .param(&target_nick)
            .trailing(&away)
            .send();
    }
}
