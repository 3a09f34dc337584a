//! Questions about users: WHO, WHOIS, WHOWAS, ISON, USERHOST, and AWAY.
//!
//! Invisible (`+i`) users are shown only to themselves and to clients that share a
//! channel with them, as RFC 2812 §3.6 describes.

use palaver_proto::numeric::*;
use palaver_proto::{Message, mask};

use super::channel::truncate;
use super::{Ctx, notify_peers, paged, whox};
use crate::caps;
use crate::world::{Client, ClientId, Status, World};

/// `WHO <mask|#chan> [o]`. Channels and masks are answered a page at a time
/// (`paged`); a plain nickname at once.
pub(super) fn who(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let target = msg.param(0).unwrap_or("*");
    let (opers_only, whox) = whox::parse(msg.param(1));
    let query = paged::WhoQuery {
        target: target.to_owned(),
        opers_only,
        whox,
    };
    if target.starts_with('#') {
        let key = World::key(target);
        let visible = (ctx.world.channels.get(&key)).is_some_and(|c| !c.hidden_from(ctx.id));
        if visible {
            paged::Paged::who_channel(ctx, query, key);
            return;
        }
    } else if target == "0" || mask::has_wildcards(target) {
        paged::Paged::who_mask(ctx, query);
        return;
    } else if let Some(client) = ctx.world.find_nick(target)
        && (!opers_only || client.oper)
    {
        let multi_prefix = ctx.me().caps.has(caps::MULTI_PREFIX);
        who_reply_any_channel(ctx, client, multi_prefix, query.whox.as_ref());
    }
    ctx.numeric(RPL_ENDOFWHO)
        .param(target)
        .trailing("End of WHO list")
        .send();
}

/// A WHO reply for `client` found by nickname or mask: it names a channel the asker
/// may see the client in (a shared one, or any visible one, as most servers do), or
/// `*`.
pub(super) fn who_reply_any_channel(
    ctx: &Ctx<'_>,
    client: &Client,
    multi_prefix: bool,
    whox: Option<&whox::Whox>,
) {
    let shown = client.channels.iter().find_map(|key| {
        let channel = ctx.world.channels.get(key)?;
        (!channel.hidden_from(ctx.id)).then(|| (channel.name.as_str(), channel.status(client.id)))
    });
    let (channel_name, status) = shown.unwrap_or(("*", None));
    who_reply(ctx, client, channel_name, status, multi_prefix, whox);
}

pub(super) fn who_reply(
    ctx: &Ctx<'_>,
    client: &Client,
    channel: &str,
    status: Option<Status>,
    multi_prefix: bool,
    whox: Option<&whox::Whox>,
) {
    let mut flags = String::from(if client.away.is_some() { "G" } else { "H" });
    if client.bot {
        flags.push('B');
    }
    if client.oper {
        flags.push('*');
    }
    if let Some(status) = status {
        flags.push_str(if multi_prefix {
            status.all_prefixes()
        } else {
            status.prefix()
        });
    }
    if let Some(whox) = whox {
        whox::reply(ctx, whox, client, channel, &flags);
        return;
    }
    ctx.numeric(RPL_WHOREPLY)
        .param(channel)
        .param(client.user())
        .param(&client.host)
        .param(&ctx.world.config.server_name)
        .param(client.nick())
        .param(&flags)
        .trailing(&format!("0 {}", client.realname))
        .send();
}

/// `WHOIS [<server>] <nick>`.
pub(super) fn whois(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let Some(target) = msg.param(1).or(msg.param(0)).filter(|t| !t.is_empty()) else {
        ctx.numeric(ERR_NONICKNAMEGIVEN)
            .trailing("No nickname given")
            .send();
        return;
    };
    // TARGMAX=WHOIS:1: only the first of a comma-separated list is answered.
    let target = target.split(',').next().unwrap_or(target);
    let Some(client) = ctx.world.find_nick(target).filter(|c| c.is_registered()) else {
        whois_no_such_nick(ctx, target);
        return;
    };
    // Only a user's own node knows when it last spoke: for another node's user,
    // ask it (a deferred job), then answer.
    if let Some((node, origin)) = ctx.world.home_of(client.id) {
        ctx.deferred = Some(super::deferred::Deferred::RemoteIdle {
            target: client.id,
            node,
            origin,
            nick: client.nick().into(),
        });
        return;
    }
    let target = client.id;
    let idle = crate::world::unix_now().saturating_sub(client.last_spoke);
    whois_reply(ctx, target, Some(idle));
}

/// Completes the WHOIS of another node's user `target`, asked for as `nick`,
/// once its node answered (or not): the user may have left or changed nick
/// meanwhile, and is then answered as any nick not in use.
pub(super) fn remote_idle_known(
    ctx: &mut Ctx<'_>,
    target: ClientId,
    nick: &str,
    idle: Option<u32>,
) {
    let still_there = ctx
        .world
        .clients
        .get(&target)
        .is_some_and(|client| World::key(client.nick()) == World::key(nick));
    if still_there {
        whois_reply(ctx, target, idle);
    } else {
        whois_no_such_nick(ctx, nick);
    }
}

/// The WHOIS of a nick nobody uses.
fn whois_no_such_nick(ctx: &mut Ctx<'_>, nick: &str) {
    ctx.no_such_nick(nick);
    ctx.numeric(RPL_ENDOFWHOIS)
        .param(nick)
        .trailing("End of /WHOIS list")
        .send();
}

/// The WHOIS of registered user `target`, with its idle time in seconds if known
/// (another node's user's comes from its node, which may not answer).
fn whois_reply(ctx: &mut Ctx<'_>, target: ClientId, idle: Option<u32>) {
    let Some(client) = ctx.world.clients.get(&target) else {
        return;
    };
    let nick = client.nick();
    ctx.numeric(RPL_WHOISUSER)
        .param(nick)
        .param(client.user())
        .param(&client.host)
        .param("*")
        .trailing(&client.realname)
        .send();
    let multi_prefix = ctx.me().caps.has(caps::MULTI_PREFIX);
    let mut channels: Vec<String> = client
        .channels
        .iter()
        .filter_map(|key| ctx.world.channels.get(key))
        .filter(|channel| !channel.hidden_from(ctx.id) || client.id == ctx.id)
        .map(|channel| {
            let status = channel.status(client.id).unwrap_or_default();
            let prefix = if multi_prefix {
                status.all_prefixes()
            } else {
                status.prefix()
            };
            format!("{prefix}{}", channel.name)
        })
        .collect();
    channels.sort();
    if !channels.is_empty()
        && (!client.invisible || client.id == ctx.id || ctx.world.share_channel(ctx.id, client.id))
    {
        ctx.numeric(RPL_WHOISCHANNELS)
            .param(nick)
            .trailing(&channels.join(" "))
            .send();
    }
    ctx.numeric(RPL_WHOISSERVER)
        .param(nick)
        .param(&ctx.world.config.server_name)
        .trailing(&ctx.world.config.network_name)
        .send();
    if client.oper {
        ctx.numeric(RPL_WHOISOPERATOR)
            .param(nick)
            .trailing("is an IRC operator")
            .send();
    }
    if client.bot {
        ctx.numeric(RPL_WHOISBOT)
            .param(nick)
            .trailing(&format!("is a bot on {}", ctx.world.config.network_name))
            .send();
    }
    if client.tls {
        ctx.numeric(RPL_WHOISSECURE)
            .param(nick)
            .trailing("is using a secure connection")
            .send();
    }
    // The fingerprint identifies the user's certificate: shown to the user and to
    // operators only.
    if let Some(certfp) = ctx.world.certfps.get(&client.id)
        && (client.id == ctx.id || ctx.me().oper)
    {
        ctx.numeric(RPL_WHOISCERTFP)
            .param(nick)
            .trailing(&format!("has client certificate fingerprint {certfp}"))
            .send();
    }
    if let Some(account) = &client.account {
        ctx.numeric(RPL_WHOISACCOUNT)
            .param(nick)
            .param(account)
            .trailing("is logged in as")
            .send();
    }
    if let Some(away) = &client.away {
        ctx.numeric(RPL_AWAY).param(nick).trailing(away).send();
    }
    super::metadata::whois_lines(ctx, client.id);
    if let Some(idle) = idle {
        ctx.numeric(RPL_WHOISIDLE)
            .param(nick)
            .param(&idle.to_string())
            .param(&client.signon.to_string())
            .trailing("seconds idle, signon time")
            .send();
    }
    ctx.numeric(RPL_ENDOFWHOIS)
        .param(nick)
        .trailing("End of /WHOIS list")
        .send();
}

/// `WHOWAS <nick> [<count>]`.
pub(super) fn whowas(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let Some(target) = msg.param(0).filter(|t| !t.is_empty()) else {
        ctx.numeric(ERR_NONICKNAMEGIVEN)
            .trailing("No nickname given")
            .send();
        return;
    };
    let count = msg
        .param(1)
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|c| *c > 0)
        .unwrap_or(usize::MAX);
    let key = World::key(target);
    let entries: Vec<_> = ctx
        .world
        .whowas
        .iter()
        .filter(|entry| entry.key == key)
        .take(count)
        .collect();
    if entries.is_empty() {
        ctx.numeric(ERR_WASNOSUCHNICK)
            .param(target)
            .trailing("There was no such nickname")
            .send();
    }
    for entry in entries {
        ctx.numeric(RPL_WHOWASUSER)
            .param(&entry.nick)
            .param(&entry.user)
            .param(&entry.host)
            .param("*")
            .trailing(&entry.realname)
            .send();
        let when = time::OffsetDateTime::from(entry.left_at)
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap_or_default();
        ctx.numeric(RPL_WHOISSERVER)
            .param(&entry.nick)
            .param(&ctx.world.config.server_name)
            .trailing(&when)
            .send();
    }
    ctx.numeric(RPL_ENDOFWHOWAS)
        .param(target)
        .trailing("End of WHOWAS")
        .send();
}

/// `AWAY [:message]`: sets or clears the away message.
pub(super) fn away(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let away_len = ctx.world.config.limits.away_len;
    match msg.param(0).filter(|m| !m.is_empty()) {
        Some(message) => {
            ctx.me_mut().away = Some(truncate(message, away_len).into());
            ctx.numeric(RPL_NOWAWAY)
                .trailing("You have been marked as being away")
                .send();
        }
        None => {
            ctx.me_mut().away = None;
            ctx.numeric(RPL_UNAWAY)
                .trailing("You are no longer marked as being away")
                .send();
        }
    }
    let mut line = ctx.me().line_from();
    line.command("AWAY");
    if let Some(message) = &ctx.me().away {
        line.trailing(message);
    }
    let line = line.finish();
    ctx.world.announce_user_state(ctx.id);
    notify_peers(ctx, caps::AWAY_NOTIFY, &line);
    for watcher in ctx.world.extended_monitors(ctx.id, caps::AWAY_NOTIFY) {
        watcher.push(line.clone());
    }
}

/// `ISON <nick>{ <nick>}`: which of these nicknames are online.
pub(super) fn ison(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    if msg.params().is_empty() {
        ctx.need_more_params("ISON");
        return;
    }
    let online: Vec<&str> = msg
        .params()
        .iter()
        .flat_map(|p| p.split(' '))
        .filter_map(|nick| ctx.world.find_nick(nick).filter(|c| c.is_registered()))
        .map(Client::nick)
        .collect();
    ctx.numeric(RPL_ISON).trailing(&online.join(" ")).send();
}

/// `USERHOST <nick>{ <nick>}` (at most five): `nick[*]=[+-]user@host`.
pub(super) fn userhost(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    if msg.params().is_empty() {
        ctx.need_more_params("USERHOST");
        return;
    }
    let replies: Vec<String> = msg
        .params()
        .iter()
        .flat_map(|p| list_spaces(p))
        .take(5)
        .filter_map(|nick| ctx.world.find_nick(nick).filter(|c| c.is_registered()))
        .map(|c| {
            format!(
                "{}{}={}{}@{}",
                c.nick(),
                if c.oper { "*" } else { "" },
                if c.away.is_some() { '-' } else { '+' },
                c.user(),
                c.host
            )
        })
        .collect();
    ctx.numeric(RPL_USERHOST)
        .trailing(&replies.join(" "))
        .send();
}

fn list_spaces(param: &str) -> impl Iterator<Item = &str> {
    param.split(' ').filter(|s| !s.is_empty())
}
