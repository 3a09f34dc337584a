//! Logging in and out (shared by SASL, NickServ and REGISTER) and the
//! `draft/account-registration` commands `REGISTER` and `VERIFY`.
//!
//! [`log_in`] and [`log_out`] are the only places `Client::account` changes: they
//! keep `World::sessions` in step, answer `900`/`901`, tell channel peers with
//! `account-notify` (and `extended-monitor` watchers) with `ACCOUNT`, and cancel a
//! pending guest rename once the nick is the client's own account.
//!
//! Registration needs no e-mail (none is sent; the server has no mail transport), so
//! `REGISTER` completes at once: the account is created verified and the client is
//! logged in to it. `VERIFY` therefore never has a code to check.

use palaver_proto::Message;
use palaver_proto::numeric::*;

use super::Ctx;
use super::deferred::{Deferred, Via};
use crate::caps;
use crate::world::{ClientId, World};

/// Logs client `id` in to `account` (its name as registered).
pub(crate) fn log_in(world: &mut World, id: ClientId, account: &str) {
    let Some(client) = world.clients.get(&id) else {
        return;
    };
    let previous = client.account.clone();
    let nick_key = World::key(client.nick());
    if let Some(previous) = &previous {
        world.forget_session(previous, id);
    }
    let key = World::key(account);
    if nick_key == key {
        world.nick_claims.remove(&id);
    }
    world.sessions.entry(key.clone()).or_default().push(id);
    let Some(client) = world.clients.get_mut(&id) else {
        return;
    };
    client.account = Some(account.into());
    // The account's read markers become this connection's.
    let limits = &world.config.limits;
    let (limit, total_limit) = (
        limits.read_markers_per_client,
        limits.max_read_markers_total,
    );
    let saved: Vec<_> = world
        .saved_markers
        .of(&key)
        .map(|(target, at)| (target.clone(), at))
        .collect();
    for (target, at) in saved {
        world
            .read_markers
            .advance(id, &target, at, limit, total_limit);
    }
    let Some(client) = world.clients.get(&id) else {
        return;
    };
    let mask = client.mask();
    world
        .numeric(id, RPL_LOGGEDIN)
        .param(&mask)
        .param(account)
        .trailing(&format!("You are now logged in as {account}"))
        .send();
    if previous.as_deref() != Some(account) {
        announce(world, id, account);
    }
}

/// Logs client `id` out of its account, if it is logged in.
pub(crate) fn log_out(world: &mut World, id: ClientId) {
    let Some(client) = world.clients.get_mut(&id) else {
        return;
    };
    let Some(account) = client.account.take() else {
        return;
    };
    let mask = client.mask();
    world.forget_session(&account, id);
    world
        .numeric(id, RPL_LOGGEDOUT)
        .param(&mask)
        .trailing("You are now logged out")
        .send();
    announce(world, id, "*");
}

/// `ACCOUNT <account>|*` to the channel peers with `account-notify` and the
/// `extended-monitor` watchers that share no channel.
fn announce(world: &mut World, id: ClientId, account: &str) {
    world.announce_user_state(id);
    let Some(client) = world.clients.get(&id).filter(|c| c.is_registered()) else {
        return;
    };
    let mut line = client.line_from();
    line.command("ACCOUNT").param(account);
    let line = line.finish();
    for peer in world.peers_of(id) {
        if peer.caps().has(caps::ACCOUNT_NOTIFY) {
            peer.push(line.clone());
        }
    }
    for watcher in world.extended_monitors(id, caps::ACCOUNT_NOTIFY) {
        watcher.push(line.clone());
    }
}

/// `REGISTER <account>|* <email>|* <password>` (draft/account-registration).
pub(super) fn register(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let (Some(account), Some(email), Some(password)) = (msg.param(0), msg.param(1), msg.param(2))
    else {
        ctx.need_more_params("REGISTER");
        return;
    };
    if !ctx.me().is_registered() && !ctx.world.config.accounts.register_before_connect {
        fail(
            ctx,
            "COMPLETE_CONNECTION_REQUIRED",
            account,
            "Complete the connection before registering an account",
        );
        return;
    }
    let refused_nick = ctx
        .me()
        .login
        .as_ref()
        .and_then(|login| login.refused_nick.as_deref())
        .map(str::to_owned);
    let name = if account == "*" {
        match ctx.me().nick.as_deref() {
            Some(nick) => nick.to_owned(),
            // The name it asked for and someone else holds: refused as taken below.
            None if refused_nick.is_some() => refused_nick.unwrap_or_default(),
            None => {
                fail(ctx, "NEED_NICK", "*", "Choose a nickname first");
                return;
            }
        }
    } else {
        account.to_owned()
    };
    let email = (email != "*").then(|| email.to_owned());
    if ctx.world.config.accounts.email_required && email.as_deref().is_none_or(|e| !e.contains('@'))
    {
        fail(ctx, "INVALID_EMAIL", &name, "An e-mail address is required");
        return;
    }
    if let Some(via) = start_registration(ctx, &name, password, email, Via::Register) {
        ctx.deferred = Some(via);
    }
}

/// Checks a registration request (shared by REGISTER and NickServ REGISTER);
/// returns the deferred job that creates the account, or answers the refusal through
/// `via` and returns `None`.
pub(super) fn start_registration(
    ctx: &mut Ctx<'_>,
    name: &str,
    password: &str,
    email: Option<String>,
    via: Via,
) -> Option<Deferred> {
    if ctx.me().account.is_some() {
        refuse(
            ctx,
            via,
            "ALREADY_AUTHENTICATED",
            name,
            "You are already logged in",
        );
        return None;
    }
    if let Err(why) = crate::accounts::check_name(name, ctx.world.config.limits.nick_len) {
        refuse(ctx, via, "BAD_ACCOUNT_NAME", name, why);
        return None;
    }
    // Someone else is using the name as a nick: registering it would take it away
    // from them.
    if ctx.world.find_nick(name).is_some_and(|c| c.id != ctx.id) {
        refuse(
            ctx,
            via,
            "ACCOUNT_EXISTS",
            name,
            "That name is in use as a nickname",
        );
        return None;
    }
    if let Err(why) = crate::accounts::check_password(
        name,
        password,
        ctx.world.config.accounts.min_password_bytes,
    ) {
        refuse(ctx, via, "UNACCEPTABLE_PASSWORD", name, why);
        return None;
    }
    let now = std::time::Instant::now();
    if let Some(ip) = ctx.me().ip() {
        if let Some(wait) = ctx.world.auth_failures.registration_refused_for(ip, now) {
            let text = format!(
                "Too many accounts registered from your address; try again in {} seconds",
                wait.as_secs().max(1)
            );
            refuse(ctx, via, "TEMPORARILY_UNAVAILABLE", name, &text);
            return None;
        }
        ctx.world.auth_failures.record_registration(ip, now);
    }
    Some(Deferred::Register {
        name: name.to_owned(),
        password: password.into(),
        email,
        via,
    })
}

/// Completes a registration: `result` is `Ok` if the account was created, or the
/// refusal's code and sentence.
pub(super) fn registered(
    ctx: &mut Ctx<'_>,
    name: &str,
    via: Via,
    result: Result<(), (&'static str, &'static str)>,
) {
    match result {
        Ok(()) => {
            tracing::info!(client = ctx.id.0, account = %name, "account registered");
            match via {
                Via::Register => {
                    ctx.world
                        .server_line(ctx.id, "REGISTER")
                        .param("SUCCESS")
                        .param(name)
                        .trailing("Account successfully registered")
                        .send();
                }
                _ => super::nickserv::reply(
                    ctx,
                    &format!("Account {name} registered; you are now logged in"),
                ),
            }
            log_in(ctx.world, ctx.id, name);
        }
        Err((code, text)) => refuse(ctx, via, code, name, text),
    }
}

/// `VERIFY <account> <code>`: nothing ever waits for a code (no e-mail is sent).
pub(super) fn verify(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let (Some(account), Some(_code)) = (msg.param(0), msg.param(1)) else {
        ctx.need_more_params("VERIFY");
        return;
    };
    let account = account.to_owned();
    ctx.world.standard_reply(
        ctx.id,
        "FAIL",
        "VERIFY",
        "INVALID_CODE",
        &[&account],
        "No verification is pending for that account",
    );
}

/// A refused registration, answered as the command that asked expects: `FAIL
/// REGISTER` or a NickServ NOTICE.
fn refuse(ctx: &Ctx<'_>, via: Via, code: &str, name: &str, text: &str) {
    match via {
        Via::Register => fail(ctx, code, name, text),
        _ => super::nickserv::reply(ctx, text),
    }
}

/// `FAIL REGISTER <code> <name> :<text>`.
fn fail(ctx: &Ctx<'_>, code: &str, name: &str, text: &str) {
    ctx.world
        .standard_reply(ctx.id, "FAIL", "REGISTER", code, &[name], text);
}
