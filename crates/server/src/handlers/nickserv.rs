//! NickServ, the account service as a pseudo-user, and nickname ownership.
//!
//! NickServ is not a client: `PRIVMSG NickServ :<command>` (and the `NS` and
//! `NICKSERV` commands) come here instead of being relayed, and it answers with
//! NOTICEs from `NickServ!NickServ@services.`. Its commands are
//! `REGISTER <password> [email]`, `IDENTIFY [account] <password>`, `INFO [account]`,
//! `DROP`, `SET PASSWORD <new>`, `GHOST <nick>`, `CERT` (see [`super::certfp`]) and
//! `HELP`. Everything that touches
//! the store or a password runs as a deferred job (see [`super::deferred`]).
//!
//! Nickname ownership: a client that takes a registered account's name as its nick
//! without being logged in to that account is told so by NickServ and, unless it
//! logs in within `AccountsConfig::nick_grace`, renamed to `Guest<digits>`. Whether
//! a nick is registered is a store lookup, so [`check_nick`] defers it; the rename
//! runs from the drivers' timer tick ([`enforce`]), never from a thread of its own.

use std::time::Instant;

use palaver_proto::numeric::*;
use palaver_proto::{LineWriter, Message};

use super::Ctx;
use super::deferred::{Deferred, Via};
use crate::world::{ClientId, World};

/// The service's nickname.
pub(crate) const NICK: &str = "NickServ";

/// Whether `target` names NickServ (folded, with or without `@services.`).
pub(crate) fn addressed(target: &str) -> bool {
    let nick = target.split_once('@').map_or(target, |(nick, _)| nick);
    World::key(nick) == World::key(NICK)
}

/// `PRIVMSG NickServ :<command>`: NickServ's commands instead of a relay.
pub(super) fn privmsg(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    run(ctx, msg.param(1).unwrap_or_default());
}

/// `NS <command>` and `NICKSERV <command>`: the same, with the command as parameters.
pub(super) fn alias(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let text = msg.params().join(" ");
    run(ctx, &text);
}

/// Sends `text` to the caller as a NOTICE from NickServ.
pub(super) fn reply(ctx: &Ctx<'_>, text: &str) {
    notice(ctx.world, ctx.id, text);
}

/// A NOTICE from NickServ to client `id` (also for clients other than the caller).
fn notice(world: &World, id: ClientId, text: &str) {
    service_notice(world, NICK, id, text);
}

/// The answer of service `service` to a line it could not run: a syntax error for
/// one of its `known` commands, else an unknown command; either points to HELP.
pub(super) fn misunderstood(
    world: &World,
    service: &str,
    id: ClientId,
    command: &str,
    known: &[&str],
) {
    let text = if known.contains(&command) {
        format!("Syntax error for {command}; see /msg {service} HELP")
    } else {
        format!("Unknown command {command}; see /msg {service} HELP")
    };
    service_notice(world, service, id, &text);
}

/// A NOTICE from the service `service` (`<service>!<service>@services.`) to client
/// `id`: how every service answers.
pub(super) fn service_notice(world: &World, service: &str, id: ClientId, text: &str) {
    let Some(client) = world.clients.get(&id) else {
        return;
    };
    let mut line = LineWriter::new();
    line.source_parts(service, service, "services.")
        .command("NOTICE")
        .param(client.nick())
        .trailing(text);
    client.send(line.finish());
}

/// Runs one NickServ command line: the command word, then its arguments.
fn run(ctx: &mut Ctx<'_>, text: &str) {
    let mut words = text.split_whitespace();
    let command = words.next().unwrap_or_default().to_ascii_uppercase();
    let args: Vec<&str> = words.collect();
    match (command.as_str(), args.as_slice()) {
        ("REGISTER", [password, rest @ ..]) if rest.len() <= 1 => {
            let name = ctx.me().nick().to_owned();
            let email = rest.first().map(|e| (*e).to_owned());
            if let Some(job) =
                super::account::start_registration(ctx, &name, password, email, Via::NickServ)
            {
                ctx.deferred = Some(job);
            }
        }
        ("IDENTIFY", [password]) => {
            let name = ctx.me().nick().to_owned();
            identify(ctx, &name, password);
        }
        ("IDENTIFY", [name, password]) => identify(ctx, name, password),
        ("INFO", []) => {
            let name = ctx
                .me()
                .account
                .as_deref()
                .unwrap_or(ctx.me().nick())
                .to_owned();
            ctx.deferred = Some(Deferred::AccountInfo { name });
        }
        ("INFO", [name]) => {
            ctx.deferred = Some(Deferred::AccountInfo {
                name: (*name).to_owned(),
            });
        }
        ("DROP", rest) if rest.len() <= 1 => {
            let Some(account) = ctx.me().account.as_deref().map(str::to_owned) else {
                reply(ctx, "You are not logged in");
                return;
            };
            if rest
                .first()
                .is_some_and(|name| World::key(name) != World::key(&account))
            {
                reply(ctx, "You can only drop the account you are logged in to");
                return;
            }
            ctx.deferred = Some(Deferred::DropAccount { name: account });
        }
        ("SET", [what, password]) if what.eq_ignore_ascii_case("PASSWORD") => {
            let Some(account) = ctx.me().account.as_deref().map(str::to_owned) else {
                reply(ctx, "You are not logged in");
                return;
            };
            let min = ctx.world.config.accounts.min_password_bytes;
            if let Err(why) = crate::accounts::check_password(&account, password, min) {
                reply(ctx, why);
                return;
            }
            ctx.deferred = Some(Deferred::SetPassword {
                account,
                password: (*password).into(),
            });
        }
        ("GHOST", [nick]) => ghost(ctx, nick),
        ("CERT", rest) => super::certfp::nickserv_cert(ctx, rest),
        ("HELP", _) | ("", _) => help(ctx),
        _ => misunderstood(
            ctx.world,
            NICK,
            ctx.id,
            &command,
            &[
                "REGISTER", "IDENTIFY", "INFO", "DROP", "SET", "GHOST", "CERT",
            ],
        ),
    }
}

/// `HELP`: one NOTICE per command.
fn help(ctx: &Ctx<'_>) {
    for line in [
        "NickServ manages accounts. Commands:",
        "REGISTER <password> [email]: registers your current nick as an account",
        "IDENTIFY [account] <password>: logs you in",
        "INFO [account]: shows an account",
        "DROP: deletes the account you are logged in to",
        "SET PASSWORD <new password>: changes your password",
        "GHOST <nick>: disconnects a client using your account's nick",
        "CERT ADD [fingerprint] | DEL <fingerprint> | LIST: TLS client certificates that log you in",
        "Clients can also log in with SASL (PLAIN, SCRAM-SHA-256, EXTERNAL with a certificate).",
    ] {
        reply(ctx, line);
    }
}

/// `IDENTIFY`: throttled like SASL; the check is deferred, [`identified`] answers.
fn identify(ctx: &mut Ctx<'_>, name: &str, password: &str) {
    let key = World::key(name);
    let wait = super::oper::refused_for(ctx).or_else(|| {
        ctx.world
            .auth_failures
            .account_refused_for(&key, Instant::now())
    });
    if let Some(wait) = wait {
        reply(ctx, &super::oper::too_many_failures(wait));
        return;
    }
    super::sasl::record_attempt(ctx, key);
    ctx.deferred = Some(Deferred::CheckPassword {
        account: name.to_owned(),
        password: password.into(),
        via: Via::NickServ,
    });
}

/// Completes IDENTIFY: `account` is the registered name if the password matched.
pub(super) fn identified(ctx: &mut Ctx<'_>, attempted: &str, account: Option<String>) {
    match account {
        Some(account) => {
            super::sasl::forgive_attempt(ctx, attempted);
            reply(ctx, &format!("You are now logged in as {account}"));
            super::account::log_in(ctx.world, ctx.id, &account);
            // Logged in to another account than the nick's: is the nick someone's?
            check_nick(ctx);
        }
        None => {
            tracing::info!(client = ctx.id.0, "failed NickServ IDENTIFY");
            reply(ctx, "Invalid account name or password");
        }
    }
}

/// Completes INFO.
pub(super) fn info_found(
    ctx: &mut Ctx<'_>,
    name: &str,
    account: Result<Option<palaver_store::Account>, ()>,
) {
    let account = match account {
        Ok(Some(account)) => account,
        Ok(None) => {
            reply(ctx, &format!("{name} is not a registered account"));
            return;
        }
        Err(()) => {
            reply(ctx, "Account information is unavailable; try again");
            return;
        }
    };
    reply(ctx, &format!("Account: {}", account.name));
    let registered = account
        .created_at
        .to_offset_date_time()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc2822)
                .ok()
        })
        .unwrap_or_else(|| "unknown".to_owned());
    reply(ctx, &format!("Registered: {registered}"));
    let online = ctx
        .world
        .sessions
        .get(&World::key(&account.name))
        .map_or(0, Vec::len);
    reply(ctx, &format!("Logged in now: {online} client(s)"));
    // Only the owner sees the e-mail address.
    let own = ctx
        .me()
        .account
        .as_deref()
        .is_some_and(|mine| World::key(mine) == World::key(&account.name));
    if own && let Some(email) = &account.email {
        reply(ctx, &format!("E-mail: {email}"));
    }
}

/// Completes DROP: every client logged in to the account is logged out.
pub(super) fn dropped(ctx: &mut Ctx<'_>, name: &str, ok: bool) {
    if !ok {
        reply(ctx, "The account could not be dropped; try again");
        return;
    }
    tracing::info!(client = ctx.id.0, account = %name, "account dropped");
    reply(ctx, &format!("Account {name} has been dropped"));
    let sessions = ctx
        .world
        .sessions
        .get(&World::key(name))
        .cloned()
        .unwrap_or_default();
    for id in sessions {
        super::account::log_out(ctx.world, id);
    }
    // Whoever uses the name as a nick may keep it now.
    if let Some(holder) = ctx.world.find_nick(name).map(|c| c.id) {
        ctx.world.nick_claims.remove(&holder);
    }
    // Its channel registrations go with it (ChanServ).
    let founded = crate::world::registry::account_dropped(ctx.world, name);
    if !founded.is_empty() {
        ctx.deferred = Some(Deferred::DropChannels { keys: founded });
    }
}

/// Completes SET PASSWORD.
pub(super) fn password_set(ctx: &mut Ctx<'_>, ok: bool) {
    reply(
        ctx,
        if ok {
            "Your password has been changed"
        } else {
            "The password could not be changed; try again"
        },
    );
}

/// `GHOST <nick>`: disconnects a client that uses the caller's account's name as
/// its nick, or is logged in to the caller's account.
fn ghost(ctx: &mut Ctx<'_>, nick: &str) {
    let Some(account) = ctx.me().account.clone() else {
        reply(ctx, "You are not logged in");
        return;
    };
    let Some(target) = ctx.world.find_nick(nick).filter(|c| c.id != ctx.id) else {
        reply(ctx, &format!("{nick} is not online"));
        return;
    };
    let key = World::key(&account);
    let owned = World::key(target.nick()) == key
        || target
            .account
            .as_deref()
            .is_some_and(|a| World::key(a) == key);
    if !owned {
        reply(ctx, &format!("{nick} is not yours to ghost"));
        return;
    }
    let reason = format!("GHOST command used by {}", ctx.me().nick());
    target.outbox.request_disconnect(&reason);
    reply(ctx, &format!("{nick} has been disconnected"));
}

/// Called after the caller's nick changed (or registration completed): if the nick
/// is not the caller's own account, a deferred lookup finds out whether it is
/// someone else's. Any earlier claim was about the old nick and is dropped.
pub(super) fn check_nick(ctx: &mut Ctx<'_>) {
    ctx.world.nick_claims.remove(&ctx.id);
    let me = ctx.me();
    if !me.is_registered() || ctx.world.config.accounts.nick_grace.is_none() {
        return;
    }
    let nick = me.nick().to_owned();
    if me
        .account
        .as_deref()
        .is_some_and(|account| World::key(account) == World::key(&nick))
        || is_guest(&nick)
    {
        return;
    }
    // Only a nick that is an account needs the store's answer (who owns it).
    if ctx.deferred.is_none() && ctx.world.account_names.contains(&World::key(&nick)) {
        ctx.deferred = Some(Deferred::NickOwner { nick });
    }
}

/// Completes the lookup [`check_nick`] asked for: warns the client and starts the
/// grace period if the nick is another account's.
pub(super) fn nick_owner(ctx: &mut Ctx<'_>, nick: &str, account: Option<String>) {
    let Some(account) = account else {
        return;
    };
    let me = ctx.me();
    let still = World::key(me.nick()) == World::key(nick);
    let logged_in = me
        .account
        .as_deref()
        .is_some_and(|mine| World::key(mine) == World::key(&account));
    let Some(grace) = ctx.world.config.accounts.nick_grace else {
        return;
    };
    if !still || logged_in {
        return;
    }
    ctx.world.nick_claims.insert(ctx.id, Instant::now() + grace);
    reply(
        ctx,
        &format!(
            "This nick is registered; log in with /msg NickServ IDENTIFY <password> or it will be changed in {} s",
            grace.as_millis().div_ceil(1000)
        ),
    );
}

/// Renames the clients whose grace period is over (from the drivers' timer tick).
pub(crate) fn enforce(shared: &crate::Shared, now: Instant) {
    let mut world = shared.lock_world();
    if world.nick_claims.is_empty() {
        return;
    }
    let due: Vec<ClientId> = world
        .nick_claims
        .iter()
        .filter(|(_, at)| **at <= now)
        .map(|(id, _)| *id)
        .collect();
    for id in due {
        world.nick_claims.remove(&id);
        if !world.clients.contains_key(&id) {
            continue;
        }
        rename_to_guest(
            &mut world,
            id,
            "Your nick is registered to someone else; you are now",
        );
    }
}

/// Renames client `id` to a free `Guest<digits>` nick, telling it `why` followed
/// by the new nick (NickServ enforcement; a cluster node whose user's nick was
/// taken while the node was cut off from the others).
pub(crate) fn rename_to_guest(world: &mut World, id: ClientId, why: &str) {
    let guest = guest_nick(world);
    notice(world, id, &format!("{why} {guest}"));
    let mut ctx = Ctx::new(world, id);
    super::registration::rename(&mut ctx, &guest);
    // On a cluster the nick is claimed afterwards, so the old one goes now; if
    // another node's user has this one, `cluster::claims` picks another.
    if let Some(remote) = world.remote.as_ref() {
        remote.claims.claim_given(World::key(&guest), id.0);
    }
}

/// A free `Guest<digits>` nick.
fn guest_nick(world: &World) -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    loop {
        let nick = format!("Guest{}", 10_000 + OsRng.next_u32() % 90_000);
        if world.find_nick(&nick).is_none() {
            return nick;
        }
    }
}

/// Guest nicks (ours, and `Guest` names in general) are never an account's.
fn is_guest(nick: &str) -> bool {
    nick.get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("guest"))
}

/// `433`-like refusal for the service nicks, for NICK.
pub(super) fn refuse_reserved(ctx: &Ctx<'_>, wanted: &str) {
    ctx.numeric(ERR_ERRONEUSNICKNAME)
        .param(wanted)
        .trailing("Nickname is reserved for services")
        .send();
}
