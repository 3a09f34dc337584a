//! Questions about the server: PING, MOTD, LUSERS, VERSION, TIME.

use palaver_proto::Message;
use palaver_proto::numeric::*;

use super::Ctx;
use super::registration::send_isupport;
use crate::VERSION;

/// `PING <token>`: answered at once with `PONG <server> :<token>`.
pub(super) fn ping(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let Some(token) = msg.param(0) else {
        ctx.numeric(ERR_NOORIGIN)
            .trailing("No origin specified")
            .send();
        return;
    };
    ctx.world
        .server_line(ctx.id, "PONG")
        .param(&ctx.world.config.server_name)
        .trailing(token)
        .send();
}

/// `MOTD [server]`.
pub(super) fn motd(ctx: &mut Ctx<'_>, _msg: &Message<'_>) {
    send_motd(ctx);
}

pub(super) fn send_motd(ctx: &Ctx<'_>) {
    let config = &ctx.world.config;
    let Some(lines) = &config.motd else {
        ctx.numeric(ERR_NOMOTD)
            .trailing("MOTD File is missing")
            .send();
        return;
    };
    ctx.numeric(RPL_MOTDSTART)
        .trailing(&format!("- {} Message of the day - ", config.server_name))
        .send();
    for line in lines {
        ctx.numeric(RPL_MOTD).trailing(&format!("- {line}")).send();
    }
    ctx.numeric(RPL_ENDOFMOTD)
        .trailing("End of /MOTD command.")
        .send();
}

/// `LUSERS`.
pub(super) fn lusers(ctx: &mut Ctx<'_>, _msg: &Message<'_>) {
    send_lusers(ctx);
}

pub(super) fn send_lusers(ctx: &Ctx<'_>) {
    let world = &*ctx.world;
    let (registered, unregistered, opers) = world.counts();
    let invisible = world.invisible_count();
    let max = world.max_clients_seen.to_string();
    let current = registered.to_string();
    ctx.numeric(RPL_LUSERCLIENT)
        .trailing(&format!(
            "There are {} users and {invisible} invisible on 1 servers",
            registered - invisible
        ))
        .send();
    ctx.numeric(RPL_LUSEROP)
        .param(&opers.to_string())
        .trailing("operator(s) online")
        .send();
    ctx.numeric(RPL_LUSERUNKNOWN)
        .param(&unregistered.to_string())
        .trailing("unknown connection(s)")
        .send();
    ctx.numeric(RPL_LUSERCHANNELS)
        .param(&world.channels.len().to_string())
        .trailing("channels formed")
        .send();
    ctx.numeric(RPL_LUSERME)
        .trailing(&format!("I have {registered} clients and 0 servers"))
        .send();
    ctx.numeric(RPL_LOCALUSERS)
        .param(&current)
        .param(&max)
        .trailing(&format!("Current local users {current}, max {max}"))
        .send();
    ctx.numeric(RPL_GLOBALUSERS)
        .param(&current)
        .param(&max)
        .trailing(&format!("Current global users {current}, max {max}"))
        .send();
}

/// `VERSION [server]`: version, then the ISUPPORT lines again.
pub(super) fn version(ctx: &mut Ctx<'_>, _msg: &Message<'_>) {
    ctx.numeric(RPL_VERSION)
        .param(VERSION)
        .param(&ctx.world.config.server_name)
        .trailing("palaver IRC server")
        .send();
    send_isupport(ctx);
}

/// `TIME [server]`.
pub(super) fn time(ctx: &mut Ctx<'_>, _msg: &Message<'_>) {
    let now = time::OffsetDateTime::now_utc();
    let text = now
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    ctx.numeric(RPL_TIME)
        .param(&ctx.world.config.server_name)
        .param(&now.unix_timestamp().to_string())
        .param("0")
        .trailing(&text)
        .send();
}

/// `INFO`: what this server is.
pub(super) fn info(ctx: &mut Ctx<'_>, _msg: &Message<'_>) {
    for line in [
        format!("{VERSION}: a self-hosted chat server that speaks IRC."),
        "Source and documentation: see the project's README.".to_owned(),
        format!("Serving as {}.", ctx.world.config.server_name),
    ] {
        ctx.numeric(RPL_INFO).trailing(&line).send();
    }
    ctx.numeric(RPL_ENDOFINFO)
        .trailing("End of /INFO list")
        .send();
}

/// `LINKS`: the servers of this network; a single server, so itself.
pub(super) fn links(ctx: &mut Ctx<'_>, _msg: &Message<'_>) {
    let config = &ctx.world.config;
    ctx.numeric(RPL_LINKS)
        .param(&config.server_name)
        .param(&config.server_name)
        .trailing(&format!("0 {}", config.server_description))
        .send();
    ctx.numeric(RPL_ENDOFLINKS)
        .param("*")
        .trailing("End of /LINKS list")
        .send();
}
