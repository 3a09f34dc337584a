//! `SAJOIN`, `SAPART`, `SANICK`: an operator makes a user join, part or change
//! nick as if the user had done it.
//!
//! Each runs the user's own code path (`channel::force_join`, `channel::force_part`,
//! `registration::rename`) in a context for the target, so channel members see
//! exactly what the user's own command would have shown them, and every operator
//! gets a server notice. SAJOIN gets past the channel's bans, key, limit and
//! restrictive modes and the per-client channel limit (not the server-wide bound
//! on channels). On a cluster, a command about another node's user is carried
//! out by that node (see [`target`]).

use palaver_proto::Message;
use palaver_proto::numeric::*;
use palaver_proto::validate::{is_valid_channel, is_valid_nick};

use super::Ctx;
use super::oper::{is_oper, snote};
use crate::world::{ClientId, World};

/// The registered client `nick` names, or `401` to the caller. A user of another
/// cluster node is that node's to move: the command (`command`, `params`) is sent
/// there, which runs it as its own and answers the operator (only a local
/// operator's command travels, so it cannot bounce between nodes).
fn target(ctx: &mut Ctx<'_>, nick: &str, command: &str, params: &[&str]) -> Option<ClientId> {
    let found = ctx
        .world
        .find_nick(nick)
        .filter(|c| c.is_registered())
        .map(|c| c.id);
    match found {
        None => ctx.no_such_nick(nick),
        Some(id) if ctx.world.is_remote(id) => {
            let by = ctx.id;
            let forwarded = !ctx.world.is_remote(by)
                && ctx
                    .world
                    .send_to_home(id, |_| crate::bus::Event::OperCommand {
                        by: by.0,
                        command: command.to_owned(),
                        params: params.iter().map(|p| (*p).to_owned()).collect(),
                    });
            if !forwarded {
                ctx.world
                    .server_line(ctx.id, "NOTICE")
                    .trailing(&format!(
                        "{nick} is connected to another server of the cluster; give the command there"
                    ))
                    .send();
            }
            return None;
        }
        Some(_) => {}
    }
    found
}

/// Runs an operator command that another cluster node sent about one of this
/// node's users (see [`target`]), as operator `oper` (that node's user).
pub(crate) fn run_for_remote_oper(
    world: &mut World,
    oper: ClientId,
    command: &str,
    params: &[String],
) {
    let handler: fn(&mut Ctx<'_>, &Message<'_>) = match command {
        "SAJOIN" => sajoin,
        "SAPART" => sapart,
        "SANICK" => sanick,
        _ => {
            tracing::warn!(
                command,
                "another cluster node sent an operator command this one does not run"
            );
            return;
        }
    };
    let mut line = palaver_proto::LineWriter::new();
    line.command(command);
    if let Some((last, middle)) = params.split_last() {
        for param in middle {
            line.param(param);
        }
        line.trailing(last);
    }
    let line = line.finish();
    let Ok(text) = std::str::from_utf8(&line) else {
        return;
    };
    match Message::parse(text.trim_end()) {
        Ok(msg) => handler(&mut Ctx::new(world, oper), &msg),
        Err(error) => {
            tracing::warn!(%error, command, "unreadable operator command from another cluster node")
        }
    }
}

/// `SAJOIN <nick> <#channel>`.
pub(super) fn sajoin(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    if !is_oper(ctx) {
        return;
    }
    let (Some(nick), Some(channel)) = (msg.param(0), msg.param(1)) else {
        ctx.need_more_params("SAJOIN");
        return;
    };
    if !is_valid_channel(channel, ctx.world.config.limits.channel_len) {
        ctx.no_such_channel(channel);
        return;
    }
    let Some(id) = target(ctx, nick, "SAJOIN", &[nick, channel]) else {
        return;
    };
    let mut as_target = Ctx::new(&mut *ctx.world, id);
    let nick = as_target.me().nick().to_owned();
    if !super::channel::force_join(&mut as_target, channel) {
        // The server-wide bound on channels refused it (and told the target).
        notice(ctx, &format!("*** SAJOIN: {nick} could not join {channel}"));
        return;
    }
    let oper = ctx.me().nick().to_owned();
    tracing::info!(%oper, target = %nick, %channel, "SAJOIN");
    snote(
        ctx.world,
        &format!("{oper} used SAJOIN to make {nick} join {channel}"),
    );
}

/// `SAPART <nick> <#channel> [:<reason>]`.
pub(super) fn sapart(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    if !is_oper(ctx) {
        return;
    }
    let (Some(nick), Some(channel)) = (msg.param(0), msg.param(1)) else {
        ctx.need_more_params("SAPART");
        return;
    };
    let reason = msg.param(2).filter(|r| !r.is_empty());
    let params: Vec<&str> = [nick, channel].into_iter().chain(reason).collect();
    let Some(id) = target(ctx, nick, "SAPART", &params) else {
        return;
    };
    let key = World::key(channel);
    let mut as_target = Ctx::new(&mut *ctx.world, id);
    let nick = as_target.me().nick().to_owned();
    if !super::channel::force_part(&mut as_target, &key, reason) {
        ctx.numeric(ERR_USERNOTINCHANNEL)
            .param(&nick)
            .param(channel)
            .trailing("They aren't on that channel")
            .send();
        return;
    }
    let oper = ctx.me().nick().to_owned();
    tracing::info!(%oper, target = %nick, %channel, "SAPART");
    snote(
        ctx.world,
        &format!("{oper} used SAPART to make {nick} part {channel}"),
    );
}

/// `SANICK <nick> <new nick>`.
pub(super) fn sanick(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    if !is_oper(ctx) {
        return;
    }
    let (Some(nick), Some(wanted)) = (msg.param(0), msg.param(1)) else {
        ctx.need_more_params("SANICK");
        return;
    };
    if !is_valid_nick(wanted, ctx.world.config.limits.nick_len)
        || crate::accounts::is_reserved(wanted)
    {
        ctx.numeric(ERR_ERRONEUSNICKNAME)
            .param(wanted)
            .trailing("Erroneous nickname")
            .send();
        return;
    }
    let Some(id) = target(ctx, nick, "SANICK", &[nick, wanted]) else {
        return;
    };
    if ctx
        .world
        .nicks
        .get(&World::key(wanted))
        .is_some_and(|owner| *owner != id)
    {
        ctx.numeric(ERR_NICKNAMEINUSE)
            .param(wanted)
            .trailing("Nickname is already in use")
            .send();
        return;
    }
    let mut as_target = Ctx::new(&mut *ctx.world, id);
    let old = as_target.me().nick().to_owned();
    if old == wanted {
        return;
    }
    super::registration::rename(&mut as_target, wanted);
    // A pending NickServ rename was for the old nick. (Whether the new one is an
    // account's is not looked up: the operator chose it.)
    as_target.world.nick_claims.remove(&id);
    // On a cluster the nick is claimed afterwards (`cluster::claims`): if
    // another node's user holds it, the target gets a guest nick instead.
    if let Some(remote) = as_target.world.remote.as_ref() {
        remote.claims.claim_given(World::key(wanted), id.0);
    }
    let oper = ctx.me().nick().to_owned();
    tracing::info!(%oper, from = %old, to = %wanted, "SANICK");
    snote(
        ctx.world,
        &format!("{oper} used SANICK to rename {old} to {wanted}"),
    );
}

/// A server notice to the caller.
fn notice(ctx: &Ctx<'_>, text: &str) {
    let nick = ctx.me().nick().to_owned();
    ctx.world
        .server_line(ctx.id, "NOTICE")
        .param(&nick)
        .trailing(text)
        .send();
}
