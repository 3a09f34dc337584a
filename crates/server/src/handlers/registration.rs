//! Registration (PASS, NICK, USER, the welcome burst), nickname changes and QUIT.

use palaver_proto::Message;
use palaver_proto::numeric::*;
use palaver_proto::validate::{is_valid_nick, is_valid_username};

use super::{Ctx, server_info};
use crate::world::{Registration, WhowasEntry, World};
use crate::{VERSION, isupport};

/// `PASS <password>`: remembered and checked when registration completes.
pub(super) fn pass(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    if ctx.me().is_registered() {
        ctx.numeric(ERR_ALREADYREGISTERED)
            .trailing("You may not reregister")
            .send();
        return;
    }
    let Some(password) = msg.param(0) else {
        ctx.need_more_params("PASS");
        return;
    };
    ctx.me_mut().login.get_or_insert_with(Box::default).password = Some(password.into());
}

/// `NICK <nick>`: sets the nickname before registration, changes it afterwards.
pub(super) fn nick(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let Some(wanted) = msg.param(0).filter(|n| !n.is_empty()) else {
        ctx.numeric(ERR_NONICKNAMEGIVEN)
            .trailing("No nickname given")
            .send();
        return;
    };
    if !is_valid_nick(wanted, ctx.world.config.limits.nick_len) {
        ctx.numeric(ERR_ERRONEUSNICKNAME)
            .param(wanted)
            .trailing("Erroneous nickname")
            .send();
        return;
    }
    if crate::accounts::is_reserved(wanted) {
        super::nickserv::refuse_reserved(ctx, wanted);
        return;
    }
    let key = World::key(wanted);
    if ctx
        .world
        .nicks
        .get(&key)
        .is_some_and(|owner| *owner != ctx.id)
    {
        refuse_taken(ctx, wanted);
        return;
    }
    if ctx.me().nick.as_deref() == Some(wanted) {
        return;
    }
    // On a cluster, the nick must be claimed cluster-wide first (a round trip to
    // the bus): unless only its case changes, the rest waits for the claim.
    if ctx.world.remote.is_some() && ctx.me().nick.as_deref().map(World::key) != Some(key) {
        ctx.deferred = Some(super::deferred::Deferred::ClaimNick {
            wanted: wanted.to_owned(),
        });
        return;
    }
    take_nick(ctx, wanted);
}

/// `433` for a nick someone holds; before registration the nick is remembered,
/// so a `REGISTER * …` cannot take it either.
fn refuse_taken(ctx: &mut Ctx<'_>, wanted: &str) {
    ctx.numeric(ERR_NICKNAMEINUSE)
        .param(wanted)
        .trailing("Nickname is already in use")
        .send();
    if !ctx.me().is_registered() {
        ctx.me_mut()
            .login
            .get_or_insert_with(Box::default)
            .refused_nick = Some(wanted.into());
    }
}

/// Takes the free nick `wanted`, then what follows a NICK: ownership check and,
/// before registration, maybe its completion.
fn take_nick(ctx: &mut Ctx<'_>, wanted: &str) {
    rename(ctx, wanted);
    super::nickserv::check_nick(ctx);
    try_complete(ctx);
}

/// Completes a NICK on a cluster node once the cluster answered its claim.
pub(super) fn nick_claimed(
    ctx: &mut Ctx<'_>,
    wanted: &str,
    claimed: Result<(), crate::bus::ClaimRefused>,
) {
    let key = World::key(wanted);
    let held_here = ctx
        .world
        .nicks
        .get(&key)
        .is_some_and(|owner| *owner != ctx.id);
    match claimed {
        Ok(()) if !held_here => take_nick(ctx, wanted),
        Ok(()) | Err(crate::bus::ClaimRefused::Taken) => {
            if claimed.is_ok() {
                // Ours on the bus, but someone here has it (a moment's lag of
                // the replica): give the claim back.
                ctx.world.release_nick(key, ctx.id);
            }
            refuse_taken(ctx, wanted);
        }
        Err(crate::bus::ClaimRefused::Unavailable) => {
            ctx.numeric(ERR_NICKNAMEINUSE)
                .param(wanted)
                .trailing("Nickname cannot be claimed right now (the cluster bus is unavailable); try again")
                .send();
        }
    }
}

/// Changes the caller's nick to `wanted` (valid and free) and announces it: NICK
/// itself, and NickServ's rename to a guest nick.
pub(super) fn rename(ctx: &mut Ctx<'_>, wanted: &str) {
    let key = World::key(wanted);
    let old_key = ctx.me().nick.as_deref().map(World::key);
    if ctx.me().is_registered() {
        // Announce with the old source to the client and everyone who can see it.
        let mut line = ctx.me().line_from();
        line.command("NICK").param(wanted);
        let line = crate::relay::EventLine::new(line.finish(), ctx.me().account.as_deref());
        ctx.me().send(line.line_for(ctx.me().outbox.caps()));
        for peer in ctx.world.peers_of(ctx.id) {
            peer.push(line.line_for(peer.caps()));
        }
        let channels: Vec<_> = ctx.me().channels.iter().cloned().collect();
        for channel in &channels {
            crate::history::record_event(
                ctx.world,
                ctx.id,
                palaver_store::MessageKind::Nick,
                channel,
                wanted,
            );
        }
        if let Some(old_key) = old_key.as_ref().filter(|old| **old != key) {
            let departed = WhowasEntry::of(ctx.me(), old_key.clone());
            ctx.world.remember(departed);
        }
    }
    if let Some(old_key) = old_key {
        ctx.world.nicks.remove(&old_key);
        if old_key != key {
            ctx.world.release_nick(old_key, ctx.id);
        }
    }
    ctx.world.nicks.insert(key, ctx.id);
    let old_nick = ctx.me_mut().nick.replace(wanted.into());
    if ctx.me().is_registered() {
        let id = ctx.id;
        ctx.world.announce(|_| {
            Some(crate::bus::Event::Nick {
                id: id.0,
                nick: wanted.to_owned(),
            })
        });
    }
    if ctx.me().is_registered()
        && let Some(old_nick) = old_nick
    {
        super::monitor::nick_changed(ctx, &old_nick);
    }
}

/// `USER <username> <mode> <unused> :<realname>`.
pub(super) fn user(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    if ctx.me().is_registered() || ctx.me().user.is_some() {
        ctx.numeric(ERR_ALREADYREGISTERED)
            .trailing("You may not reregister")
            .send();
        return;
    }
    let (Some(username), Some(realname)) = (
        msg.param(0).filter(|u| !u.is_empty()),
        msg.param(3).filter(|r| !r.is_empty()),
    ) else {
        ctx.need_more_params("USER");
        return;
    };
    let limits = &ctx.world.config.limits;
    let username = sanitise_username(username, limits.user_len);
    let realname = super::channel::truncate(realname, limits.realname_len).to_owned();
    let me = ctx.me_mut();
    me.user = Some(format!("~{username}").into_boxed_str());
    me.realname = realname.into();
    try_complete(ctx);
}

/// The username we show: the characters of the client's choice that are safe in a
/// `nick!user@host` mask (letters, digits, `.`, `-`, `_`), cut to `max_len`; `user`
/// if none are left. Clients send all sorts here (emoji, their real name), and
/// refusing them would only make registration fail in confusing ways.
fn sanitise_username(requested: &str, max_len: usize) -> String {
    let kept: String = requested
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(max_len)
        .collect();
    if is_valid_username(&kept, max_len) {
        kept
    } else {
        "user".to_owned()
    }
}

/// Completes registration once NICK and USER are in and CAP negotiation is over.
pub(super) fn try_complete(ctx: &mut Ctx<'_>) {
    let me = ctx.me();
    if me.registration != Registration::Pending
        || me.nick.is_none()
        || me.user.is_none()
        || me.cap_negotiating
    {
        return;
    }
    // sasl-3.1: a client that completes registration in the middle of an exchange
    // registers without an account, the exchange aborted (906). A check already
    // running (a deferred job) is not in the middle: the client's next line,
    // CAP END included, waits for its outcome.
    super::sasl::abort_for_registration(ctx);
    if super::bans::refused_at_registration(ctx) {
        return;
    }
    let me = ctx.me();
    if let Some(expected) = &ctx.world.config.password {
        // An address that failed too often is refused even with the right password,
        // or guessing would go on; see `world::auth_failures`.
        if let Some(wait) = super::oper::refused_for(ctx) {
            let text = super::oper::too_many_failures(wait);
            ctx.numeric(ERR_PASSWDMISMATCH).trailing(&text).send();
            ctx.quit = Some(text);
            return;
        }
        if me
            .login
            .as_ref()
            .and_then(|login| login.password.as_ref())
            .map(crate::secret::Secret::expose)
            != Some(expected.as_str())
        {
            if let Some(ip) = me.ip() {
                ctx.world
                    .auth_failures
                    .record(ip, std::time::Instant::now());
            }
            ctx.numeric(ERR_PASSWDMISMATCH)
                .trailing("Password incorrect")
                .send();
            ctx.quit = Some("Bad password".to_owned());
            return;
        }
    }
    let before = ctx.me().census();
    let me = ctx.me_mut();
    me.registration = Registration::Done;
    me.signon = crate::world::unix_now();
    // The connection password has done its job; nothing keeps it past registration.
    me.login = None;
    let after = me.census();
    ctx.world.recount(before, after);
    // The maximum counts users, as the current value beside it in 265/266 does.
    let (registered, _, _) = ctx.world.counts();
    ctx.world.max_clients_seen = ctx.world.max_clients_seen.max(registered);
    ctx.world.counters.registrations += 1;
    tracing::info!(client = ctx.id.0, nick = %ctx.me().nick(), "registered");
    welcome(ctx);
    ctx.world.announce_user(ctx.id);
    ctx.world.notify_monitors_online(ctx.id);
    super::nickserv::check_nick(ctx);
}

fn welcome(ctx: &mut Ctx<'_>) {
    let config = &ctx.world.config;
    let me = ctx.me();
    ctx.numeric(RPL_WELCOME)
        .trailing(&format!(
            "Welcome to the {} IRC Network {}",
            config.network_name,
            me.mask()
        ))
        .send();
    ctx.numeric(RPL_YOURHOST)
        .trailing(&format!(
            "Your host is {}, running version {VERSION}",
            config.server_name
        ))
        .send();
    let created = time::OffsetDateTime::from(ctx.world.started);
    let created = created
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_else(|_| "at start-up".to_owned());
    ctx.numeric(RPL_CREATED)
        .trailing(&format!("This server was created {created}"))
        .send();
    ctx.numeric(RPL_MYINFO)
        .param(&config.server_name)
        .param(VERSION)
        .param("Biow")
        .param("CERbeIiklmnopstvz")
        .param("beIklov")
        .send();
    send_isupport(ctx);
    server_info::send_lusers(ctx);
    // The client's own metadata comes before the end of the MOTD (metadata spec).
    super::metadata::welcome_burst(ctx);
    server_info::send_motd(ctx);
}

/// The 005 lines (also sent for VERSION).
pub(super) fn send_isupport(ctx: &Ctx<'_>) {
    for tokens in isupport::lines(&ctx.world.config) {
        let mut reply = ctx.numeric(RPL_ISUPPORT);
        for token in &tokens {
            reply = reply.param(token);
        }
        reply.trailing("are supported by this server").send();
    }
}

/// `QUIT [:reason]`.
pub(super) fn quit(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    ctx.quit = Some(match msg.param(0).filter(|r| !r.is_empty()) {
        Some(reason) => format!("Quit: {reason}"),
        None => "Client Quit".to_owned(),
    });
}
