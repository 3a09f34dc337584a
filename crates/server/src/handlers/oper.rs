//! IRC operators: `OPER` (checked off the world lock, see [`super::deferred`]),
//! `KILL`, `WALLOPS` and `REHASH`.
//!
//! A wrong password and an unknown operator name get the same reply,
//! `464 ERR_PASSWDMISMATCH`, after the same amount of work, so `OPER` cannot be used
//! to find out which names exist. `491 ERR_NOOPERHOST` is sent only when the server
//! has no operators at all.

use palaver_proto::numeric::*;
use palaver_proto::{LineWriter, Message};

use super::Ctx;
use super::channel::truncate;
use super::deferred::Deferred;

/// `OPER <name> <password>`: the check is deferred; [`finish`] answers.
pub(super) fn oper(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let (Some(name), Some(password)) = (msg.param(0), msg.param(1)) else {
        ctx.need_more_params("OPER");
        return;
    };
    if ctx.world.config.opers.is_empty() {
        ctx.numeric(ERR_NOOPERHOST)
            .trailing("No O-lines for your host")
            .send();
        return;
    }
    if let Some(wait) = refused_for(ctx) {
        ctx.numeric(ERR_PASSWDMISMATCH)
            .trailing(&too_many_failures(wait))
            .send();
        return;
    }
    // Counted as a failure until it succeeds: a burst of attempts from many
    // connections of one address gets no more checks than one connection would.
    if let Some(ip) = ctx.me().ip() {
        ctx.world
            .auth_failures
            .record(ip, std::time::Instant::now());
    }
    ctx.deferred = Some(Deferred::VerifyOper {
        name: name.to_owned(),
        password: password.to_owned(),
    });
}

/// Completes `OPER` once the password was checked.
pub(super) fn finish(ctx: &mut Ctx<'_>, name: &str, ok: bool) {
    if ok {
        if let Some(ip) = ctx.me().ip() {
            ctx.world.auth_failures.forgive(ip);
        }
    } else {
        // The attempted name is logged only if it is an operator's: a client that
        // swapped the parameters sent its password as the name.
        let known = ctx.world.config.opers.iter().any(|oper| oper.name == name);
        let oper = if known { name } else { "unknown name" };
        tracing::warn!(client = ctx.id.0, nick = %ctx.me().nick(), oper = %oper, "failed OPER attempt");
        ctx.numeric(ERR_PASSWDMISMATCH)
            .trailing("Password incorrect")
            .send();
        return;
    }
    let newly = !ctx.me().oper;
    let before = ctx.me().census();
    ctx.me_mut().oper = true;
    let after = ctx.me().census();
    ctx.world.recount(before, after);
    ctx.world.announce_user_state(ctx.id);
    tracing::info!(client = ctx.id.0, nick = %ctx.me().nick(), oper = %name, "became an operator");
    ctx.numeric(RPL_YOUREOPER)
        .trailing("You are now an IRC operator")
        .send();
    if newly {
        let nick = ctx.me().nick();
        let mut line = LineWriter::new();
        line.source(nick).command("MODE").param(nick).trailing("+o");
        ctx.me().send(line.finish());
    }
}

/// `KILL <nick> [:<reason>]`: operators only; disconnects the user, who is told
/// `ERROR :Killed (<oper> (<reason>))` and whose peers see that as the QUIT reason.
pub(super) fn kill(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let Some(target) = msg.param(0).filter(|t| !t.is_empty()) else {
        ctx.need_more_params("KILL");
        return;
    };
    if !is_oper(ctx) {
        return;
    }
    let Some(victim) = ctx.world.find_nick(target).filter(|c| c.is_registered()) else {
        ctx.no_such_nick(target);
        return;
    };
    let me = ctx.me();
    let reason = msg
        .param(1)
        .filter(|r| !r.is_empty())
        .map_or("No reason given", |r| {
            truncate(r, ctx.world.config.limits.kick_len)
        });
    let reason = format!("Killed ({} ({reason}))", me.nick());
    tracing::info!(oper = %me.nick(), victim = %victim.nick(), %reason, "KILL");
    // The victim's own connection task ends it (the only place clients leave).
    victim.outbox.request_disconnect(&reason);
}

/// `WALLOPS :<text>`: operators only; reaches every user with `+w` (and the sender).
pub(super) fn wallops(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let Some(text) = msg.param(0).filter(|t| !t.is_empty()) else {
        ctx.need_more_params("WALLOPS");
        return;
    };
    if !is_oper(ctx) {
        return;
    }
    let mut line = ctx.me().line_from();
    line.command("WALLOPS").trailing(text);
    let line = line.finish();
    // A rare operator command: a scan of all clients is fine here.
    for client in ctx.world.clients.values() {
        if client.is_registered() && (client.wallops || client.id == ctx.id) {
            client.send(line.clone());
        }
    }
}

/// `REHASH`: operators only; reads the configuration again (see `crate::reload`).
/// `382 RPL_REHASHING` says it started; the outcome comes as a server NOTICE to
/// every operator, or, if this server cannot reload, as a NOTICE from [`rehashed`].
pub(super) fn rehash(ctx: &mut Ctx<'_>, _msg: &Message<'_>) {
    if !is_oper(ctx) {
        return;
    }
    let source = ctx.world.config.reloader.as_ref().map_or_else(
        || "configuration".to_owned(),
        |reloader| reloader.describe(),
    );
    ctx.numeric(RPL_REHASHING)
        .param(&source)
        .trailing("Rehashing")
        .send();
    tracing::info!(oper = %ctx.me().nick(), "REHASH");
    ctx.deferred = Some(Deferred::Rehash {
        by: ctx.me().nick().to_owned(),
    });
}

/// Completes `REHASH`: a reload that ran was already told to every operator;
/// only "there is nothing to reload" is said here.
pub(super) fn rehashed(ctx: &mut Ctx<'_>, ran: bool) {
    if !ran {
        let nick = ctx.me().nick().to_owned();
        ctx.world
            .server_line(ctx.id, "NOTICE")
            .param(&nick)
            .trailing("*** This server cannot reload its configuration (it was not started from options it can read again)")
            .send();
    }
}

/// How long the caller's address must still wait after too many failed password
/// attempts (`PASS` or `OPER`), if it must (see `world::auth_failures`).
pub(super) fn refused_for(ctx: &Ctx<'_>) -> Option<std::time::Duration> {
    let ip = ctx.me().ip()?;
    ctx.world
        .auth_failures
        .refused_for(ip, std::time::Instant::now())
}

/// The text refusing a password attempt from an address that failed too often.
pub(super) fn too_many_failures(wait: std::time::Duration) -> String {
    format!(
        "Too many failed password attempts from your address; try again in {} seconds",
        wait.as_secs().max(1)
    )
}

/// Sends a server notice (`*** Notice -- <text>`) to every IRC operator: who
/// set a ban, who forced someone into a channel.
pub(super) fn snote(world: &crate::world::World, text: &str) {
    world.notice_opers(&format!("*** Notice -- {text}"));
}

/// Whether the caller is an IRC operator; answers `481 ERR_NOPRIVILEGES` if not.
pub(super) fn is_oper(ctx: &Ctx<'_>) -> bool {
    let oper = ctx.me().oper;
    if !oper {
        ctx.numeric(ERR_NOPRIVILEGES)
            .trailing("Permission Denied- You're not an IRC operator")
            .send();
    }
    oper
}

/// `DIE <server name>`: operators only; stops the server gracefully, as SIGTERM
/// does (every client told, the store closed). The server's name confirms it.
pub(super) fn die(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    if let Some(by) = confirmed(ctx, msg, "DIE", "stop the server") {
        ctx.world
            .control
            .request(crate::control::Request::Die { by });
    }
}

/// `RESTART <server name>`: as `DIE`, then `chat-server` starts again with the
/// same arguments (see `control`).
pub(super) fn restart(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    if let Some(by) = confirmed(ctx, msg, "RESTART", "restart the server") {
        ctx.world
            .control
            .request(crate::control::Request::Restart { by });
    }
}

/// Checks an operator's `DIE`/`RESTART`: the first parameter must name this
/// server (a stray command typed in the wrong window must not stop it). Returns
/// the operator's nick once confirmed, after telling every operator; otherwise
/// says how to confirm.
fn confirmed(ctx: &Ctx<'_>, msg: &Message<'_>, command: &str, what: &str) -> Option<String> {
    if !is_oper(ctx) {
        return None;
    }
    let server = ctx.world.config.server_name.clone();
    let nick = ctx.me().nick().to_owned();
    if !msg
        .param(0)
        .is_some_and(|name| name.eq_ignore_ascii_case(&server))
    {
        ctx.world
            .server_line(ctx.id, "NOTICE")
            .param(&nick)
            .trailing(&format!(
                "*** {command}: to {what}, name it: {command} {server}"
            ))
            .send();
        return None;
    }
    snote(ctx.world, &format!("{nick} used {command}"));
    Some(nick)
}
