//! ChanServ, the channel registration service as a pseudo-user.
//!
//! Like NickServ (see [`super::nickserv`]), ChanServ is not a client: `PRIVMSG
//! ChanServ :<command>` (and the `CS` and `CHANSERV` commands) come here instead of
//! being relayed, and it answers with NOTICEs from `ChanServ!ChanServ@services.`.
//! Its commands are `REGISTER <#chan>`, `INFO <#chan>`, `DROP <#chan>`, `OP <#chan>
//! [nick]`, `DEOP <#chan> [nick]`, `ACCESS <#chan> LIST|ADD <account> [op]|DEL
//! <account>` and `HELP`.
//!
//! What a registration keeps, and how it is restored and saved, is
//! [`crate::registered`]. REGISTER and DROP change the store, whose answer decides
//! the reply (another server may have registered the name first), so they are
//! deferred jobs; everything else is answered from the world, and access-list
//! changes are written back like topic and mode changes.
//!
//! Who may do what: registering needs an account and channel-operator status in
//! the channel; the founder (the account that registered it) manages the access
//! list and may drop it; the founder and the access list's operators are opped when
//! they join, get past `+i`, `+k`, `+l` and `+b` (they could lift them anyway, and a
//! restored `+i` channel would otherwise be closed to everyone), and may use OP and
//! DEOP. Anyone else who joins a registered channel, even one that had no members,
//! is not opped.

use palaver_proto::{CaseKey, LineWriter, Message};
use palaver_store::{AccessEntry, ChannelRegistration};

use super::Ctx;
use super::deferred::Deferred;
use crate::world::World;
use crate::world::registry::{LEVEL_OP, MAX_ACCESS, MAX_PER_ACCOUNT, MAX_TOTAL};

/// The service's nickname.
pub(crate) const NICK: &str = "ChanServ";

/// Whether `target` names ChanServ (folded, with or without `@services.`).
pub(crate) fn addressed(target: &str) -> bool {
    let nick = target.split_once('@').map_or(target, |(nick, _)| nick);
    World::key(nick) == World::key(NICK)
}

/// `PRIVMSG ChanServ :<command>`: ChanServ's commands instead of a relay.
pub(super) fn privmsg(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    run(ctx, msg.param(1).unwrap_or_default());
}

/// `CS <command>` and `CHANSERV <command>`: the same, with the command as parameters.
pub(super) fn alias(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let text = msg.params().join(" ");
    run(ctx, &text);
}

/// Sends `text` to the caller as a NOTICE from ChanServ.
fn reply(ctx: &Ctx<'_>, text: &str) {
    super::nickserv::service_notice(ctx.world, NICK, ctx.id, text);
}

/// Runs one ChanServ command line: the command word, then its arguments.
fn run(ctx: &mut Ctx<'_>, text: &str) {
    let mut words = text.split_whitespace();
    let command = words.next().unwrap_or_default().to_ascii_uppercase();
    let args: Vec<&str> = words.collect();
    match (command.as_str(), args.as_slice()) {
        ("REGISTER", [channel]) => register(ctx, channel),
        ("INFO", [channel]) => info(ctx, channel),
        ("DROP", [channel]) => drop_registration(ctx, channel),
        ("OP", [channel, rest @ ..]) if rest.len() <= 1 => {
            set_op(ctx, channel, rest.first().copied(), true);
        }
        ("DEOP", [channel, rest @ ..]) if rest.len() <= 1 => {
            set_op(ctx, channel, rest.first().copied(), false);
        }
        ("ACCESS", [channel, what, rest @ ..]) => access(ctx, channel, what, rest),
        ("HELP", _) | ("", _) => help(ctx),
        _ => super::nickserv::misunderstood(
            ctx.world,
            NICK,
            ctx.id,
            &command,
            &["REGISTER", "INFO", "DROP", "OP", "DEOP", "ACCESS"],
        ),
    }
}

/// `HELP`: one NOTICE per command.
fn help(ctx: &Ctx<'_>) {
    for line in [
        "ChanServ keeps channels registered: their topic, modes, lists and operators survive restarts. Commands:",
        "REGISTER <#channel>: registers a channel you are an operator of (log in first)",
        "INFO <#channel>: shows a channel's registration",
        "DROP <#channel>: deletes the registration (founder only)",
        "OP <#channel> [nick]: gives channel-operator status (founder and operators on the access list)",
        "DEOP <#channel> [nick]: takes it away",
        "ACCESS <#channel> LIST: shows the access list",
        "ACCESS <#channel> ADD <account> [op]: gives an account operator access (founder only)",
        "ACCESS <#channel> DEL <account>: removes an account from the access list (founder only)",
    ] {
        reply(ctx, line);
    }
}

/// The caller's account as registered, or a NOTICE saying it must log in.
fn account_or_refuse(ctx: &Ctx<'_>, doing: &str) -> Option<String> {
    let account = ctx.me().account.as_deref().map(str::to_owned);
    if account.is_none() {
        reply(
            ctx,
            &format!("You must be logged in to an account to {doing} (see /msg NickServ HELP)"),
        );
    }
    account
}

/// The registration of `name` as the caller may know it: a secret (`+s`) channel
/// is shown only to its members and to accounts with access, so its name does not
/// leak; anyone else is told it is not registered, as for a channel that is not.
fn visible_registration<'w>(ctx: &'w Ctx<'_>, name: &str) -> Option<&'w ChannelRegistration> {
    let key = World::key(name);
    let found = ctx.world.registry.get(&key).filter(|registration| {
        let secret = match ctx.world.channels.get(&key) {
            Some(channel) => channel.secret_from(ctx.id),
            None => registration.modes.contains('s'),
        };
        !secret
            || ctx
                .world
                .registry
                .has_op_access(&key, ctx.me().account.as_deref())
    });
    if found.is_none() {
        reply(ctx, &format!("{name} is not registered"));
    }
    found
}

/// Whether the caller is the founder of `registration`.
fn is_founder(ctx: &Ctx<'_>, registration: &ChannelRegistration) -> bool {
    ctx.me()
        .account
        .as_deref()
        .is_some_and(|account| World::key(account).as_str() == registration.founder)
}

/// `REGISTER <#chan>`: checked here, created by a deferred job
/// ([`channel_registered`] answers).
fn register(ctx: &mut Ctx<'_>, name: &str) {
    let Some(account) = account_or_refuse(ctx, "register a channel") else {
        return;
    };
    let key = World::key(name);
    let Some(channel) = ctx.world.channel_known_to(&key, ctx.id) else {
        reply(
            ctx,
            &format!("{name} does not exist; join it and register it as its operator"),
        );
        return;
    };
    if !channel.is_op(ctx.id) {
        reply(
            ctx,
            &format!(
                "You must be a channel operator of {} to register it",
                channel.name
            ),
        );
        return;
    }
    let registry = &ctx.world.registry;
    if registry.get(&key).is_some() {
        reply(ctx, &format!("{} is already registered", channel.name));
        return;
    }
    let founder = World::key(&account);
    if registry.count_founded_by(founder.as_str()) >= MAX_PER_ACCOUNT {
        reply(
            ctx,
            &format!("An account may register at most {MAX_PER_ACCOUNT} channels"),
        );
        return;
    }
    if registry.channels.len() >= MAX_TOTAL {
        reply(
            ctx,
            "The server holds as many registered channels as it allows",
        );
        return;
    }
    let registration = crate::world::registry::new_registration(&key, channel, founder.as_str());
    ctx.deferred = Some(Deferred::RegisterChannel(Box::new(registration)));
}

/// Completes REGISTER: `result` is `Ok` if the store registered the channel, or the
/// refusal's sentence.
pub(super) fn channel_registered(
    ctx: &mut Ctx<'_>,
    registration: ChannelRegistration,
    result: Result<(), &'static str>,
) {
    let name = registration.name.clone();
    if let Err(text) = result {
        reply(ctx, text);
        return;
    }
    tracing::info!(client = ctx.id.0, channel = %name, "channel registered");
    let key = World::key(&registration.key);
    let account = ctx.me().account.as_deref().unwrap_or_default().to_owned();
    let world = &mut *ctx.world;
    world
        .registry
        .insert(registration, world.channels.get(&key));
    world.announce_registration(&key);
    reply(ctx, &format!("{name} is now registered to {account}"));
}

/// `INFO <#chan>`.
fn info(ctx: &Ctx<'_>, name: &str) {
    let Some(registration) = visible_registration(ctx, name) else {
        return;
    };
    let registered = registration
        .created_at
        .to_offset_date_time()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc2822)
                .ok()
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let mut modes = format!("+{}", registration.modes);
    if registration.key_mode.is_some() {
        modes.push('k');
    }
    if let Some(limit) = registration.limit {
        modes.push_str(&format!("l {limit}"));
    }
    let lines = [
        format!("Channel: {}", registration.name),
        format!("Founder: {}", registration.founder),
        format!("Registered: {registered}"),
        format!("Modes: {modes}"),
        format!("Access list: {} account(s)", registration.access.len()),
    ];
    for line in &lines {
        reply(ctx, line);
    }
}

/// `DROP <#chan>`: the founder only; deferred, [`channel_dropped`] answers.
fn drop_registration(ctx: &mut Ctx<'_>, name: &str) {
    if account_or_refuse(ctx, "drop a channel").is_none() {
        return;
    }
    let Some(registration) = visible_registration(ctx, name) else {
        return;
    };
    if !is_founder(ctx, registration) {
        reply(
            ctx,
            &format!("Only the founder of {} may drop it", registration.name),
        );
        return;
    }
    ctx.deferred = Some(Deferred::DropChannel {
        key: registration.key.clone(),
        name: registration.name.clone(),
    });
}

/// Completes DROP: the registration is gone from the store (or was already).
pub(super) fn channel_dropped(ctx: &mut Ctx<'_>, key: &str, name: &str, ok: bool) {
    if !ok {
        reply(ctx, &format!("{name} could not be dropped; try again"));
        return;
    }
    let key = World::key(key);
    ctx.world.registry.remove(&key);
    ctx.world.announce_registration(&key);
    tracing::info!(client = ctx.id.0, channel = %name, "channel registration dropped");
    reply(ctx, &format!("{name} is no longer registered"));
}

/// Completes NickServ DROP for the channels the account had founded.
pub(super) fn founded_dropped(ctx: &Ctx<'_>, count: usize) {
    reply(
        ctx,
        &format!("{count} channel registration(s) of the dropped account were dropped too"),
    );
}

/// `OP`/`DEOP <#chan> [nick]`: gives or takes channel-operator status, announced as
/// a MODE from ChanServ.
fn set_op(ctx: &mut Ctx<'_>, name: &str, nick: Option<&str>, op: bool) {
    let Some(registration) = visible_registration(ctx, name) else {
        return;
    };
    let key = World::key(&registration.key);
    if !ctx
        .world
        .registry
        .has_op_access(&key, ctx.me().account.as_deref())
    {
        reply(
            ctx,
            &format!("You have no operator access to {}", registration.name),
        );
        return;
    }
    let target = match nick {
        Some(nick) => ctx.world.find_nick(nick).map(|c| c.id),
        None => Some(ctx.id),
    };
    let member = target.filter(|id| {
        ctx.world
            .channels
            .get(&key)
            .is_some_and(|c| c.members.contains_key(id))
    });
    let Some(member) = member else {
        let who = nick.map_or_else(|| "You are".to_owned(), |nick| format!("{nick} is"));
        reply(ctx, &format!("{who} not in {}", registration.name));
        return;
    };
    if !give_op(ctx.world, &key, member, op) {
        let nick = ctx
            .world
            .clients
            .get(&member)
            .map(|c| c.nick().to_owned())
            .unwrap_or_default();
        let state = if op { "already" } else { "not" };
        reply(ctx, &format!("{nick} is {state} an operator there"));
    }
}

/// Sets member `id`'s operator status in channel `key` and announces it to the
/// channel as a MODE from ChanServ; returns whether it changed.
fn give_op(world: &mut World, key: &CaseKey, id: crate::world::ClientId, op: bool) -> bool {
    let Some(nick) = world.clients.get(&id).map(|c| c.nick().to_owned()) else {
        return false;
    };
    let Some(channel) = world.channels.get_mut(key) else {
        return false;
    };
    let Some(member) = channel.members.get_mut(&id) else {
        return false;
    };
    if member.status.op == op {
        return false;
    }
    member.status.op = op;
    let mut line = LineWriter::new();
    line.source_parts(NICK, NICK, "services.")
        .command("MODE")
        .param(&channel.name)
        .param(if op { "+o" } else { "-o" })
        .param(&nick);
    channel.broadcast(&line.finish(), None);
    world.announce_status(id, key);
    true
}

/// After client `id` joined the registered channel `key`: ops it if its account
/// has operator access. Called by JOIN, before the topic and NAMES.
pub(super) fn after_join(ctx: &mut Ctx<'_>, key: &CaseKey) {
    if ctx
        .world
        .registry
        .has_op_access(key, ctx.me().account.as_deref())
    {
        give_op(ctx.world, key, ctx.id, true);
    }
}

/// `ACCESS <#chan> LIST|ADD <account> [op]|DEL <account>`.
fn access(ctx: &mut Ctx<'_>, name: &str, what: &str, rest: &[&str]) {
    if account_or_refuse(ctx, "use the access list").is_none() {
        return;
    }
    let Some(registration) = visible_registration(ctx, name) else {
        return;
    };
    let key = World::key(&registration.key);
    let founder = is_founder(ctx, registration);
    let what = what.to_ascii_uppercase();
    match (what.as_str(), rest) {
        ("LIST", []) => {
            if !founder
                && !ctx
                    .world
                    .registry
                    .has_op_access(&key, ctx.me().account.as_deref())
            {
                reply(ctx, &format!("You have no access to {}", registration.name));
                return;
            }
            reply(ctx, &format!("Access list of {}:", registration.name));
            reply(ctx, &format!("{} (founder)", registration.founder));
            for entry in &registration.access {
                let level = if entry.level >= LEVEL_OP {
                    "op"
                } else {
                    "none"
                };
                reply(ctx, &format!("{} {level}", entry.account));
            }
            reply(ctx, "End of access list");
        }
        ("ADD" | "DEL", _) if !founder => {
            reply(
                ctx,
                &format!(
                    "Only the founder of {} may change its access list",
                    registration.name
                ),
            );
        }
        ("ADD", [account, level @ ..])
            if level.is_empty() || (level.len() == 1 && level[0].eq_ignore_ascii_case("op")) =>
        {
            add_access(ctx, &key, account);
        }
        ("DEL", [account]) => del_access(ctx, &key, account),
        _ => reply(
            ctx,
            "Syntax: ACCESS <#channel> LIST | ADD <account> [op] | DEL <account>",
        ),
    }
}

/// `ACCESS ADD`: the account need not exist yet (it may be registered later), but
/// its name must be one an account could have.
fn add_access(ctx: &mut Ctx<'_>, key: &CaseKey, account: &str) {
    if let Err(why) = crate::accounts::check_name(account, ctx.world.config.limits.nick_len) {
        reply(ctx, why);
        return;
    }
    let folded = World::key(account).as_str().to_owned();
    let Some(registration) = ctx.world.registry.channels.get_mut(key) else {
        return;
    };
    let name = registration.name.clone();
    if registration.founder == folded {
        reply(ctx, &format!("{account} is the founder of {name}"));
        return;
    }
    if let Some(entry) = registration.access.iter_mut().find(|e| e.account == folded) {
        entry.level = LEVEL_OP;
    } else if registration.access.len() >= MAX_ACCESS {
        reply(
            ctx,
            &format!("The access list of {name} is full ({MAX_ACCESS} accounts)"),
        );
        return;
    } else {
        registration.access.push(AccessEntry {
            account: folded,
            level: LEVEL_OP,
        });
    }
    ctx.world.registry.mark_dirty(key);
    ctx.world.announce_registration(key);
    reply(ctx, &format!("{account} now has operator access to {name}"));
}

/// `ACCESS DEL`.
fn del_access(ctx: &mut Ctx<'_>, key: &CaseKey, account: &str) {
    let folded = World::key(account);
    let Some(registration) = ctx.world.registry.channels.get_mut(key) else {
        return;
    };
    let name = registration.name.clone();
    let before = registration.access.len();
    registration
        .access
        .retain(|entry| entry.account != folded.as_str());
    if registration.access.len() == before {
        reply(
            ctx,
            &format!("{account} is not on the access list of {name}"),
        );
        return;
    }
    ctx.world.registry.mark_dirty(key);
    ctx.world.announce_registration(key);
    reply(ctx, &format!("{account} no longer has access to {name}"));
}
