//! Server bans: `KLINE`, `UNKLINE`, `DLINE`, `UNDLINE` (operators only), the K-line
//! check at registration, and applying a new ban to the clients already connected.
//!
//! A ban is stored first (a deferred job: the store is never awaited under the
//! world lock) and applied when the store has it, so what is in force is what
//! survives a restart. Applying it disconnects every matching client at once with
//! `K-lined: <reason>` / `D-lined: <reason>` as the quit reason its channels see;
//! operators are spared, so one who bans their own network can still undo it.
//! Every operator gets a server notice of who set or removed what.

use palaver_proto::Message;
use palaver_proto::numeric::*;
use palaver_store::{ServerBan, ServerBanAdded, ServerBanKind, Store, Timestamp};

use super::Ctx;
use super::channel::truncate;
use super::deferred::Deferred;
use super::oper::{is_oper, snote};
use crate::bans::{self, describe_duration, kind_name};
use crate::world::World;

/// A store job of these commands.
#[derive(Debug)]
pub(crate) enum Job {
    /// Store a ban (after dropping the expired ones), within `limit` bans.
    Add { ban: ServerBan, limit: usize },
    /// Remove the ban of `kind` on `mask`.
    Remove { kind: ServerBanKind, mask: String },
}

/// What a [`Job`] did.
#[derive(Debug)]
pub(crate) enum Done {
    /// The ban and the store's answer (`Err` if it failed).
    Added {
        ban: ServerBan,
        result: Result<ServerBanAdded, ()>,
    },
    /// Whether the ban existed (`Err` if the store failed).
    Removed {
        kind: ServerBanKind,
        mask: String,
        result: Result<bool, ()>,
    },
}

/// Runs `job` against the store (outside the world lock).
pub(crate) async fn work(store: &dyn Store, job: Job) -> Done {
    match job {
        Job::Add { ban, limit } => {
            // Expired bans are swept here, before they could fill the limit.
            if let Err(error) = store.expire_server_bans(Timestamp::now()).await {
                tracing::warn!(%error, "cannot delete expired server bans");
            }
            let result = store.add_server_ban(ban.clone(), limit).await;
            if let Err(error) = &result {
                tracing::error!(%error, "cannot store a server ban");
            }
            Done::Added {
                ban,
                result: result.map_err(|_| ()),
            }
        }
        Job::Remove { kind, mask } => {
            let result = store.remove_server_ban(kind, &mask).await;
            if let Err(error) = &result {
                tracing::error!(%error, "cannot remove a server ban");
            }
            Done::Removed {
                kind,
                mask,
                result: result.map_err(|_| ()),
            }
        }
    }
}

/// `KLINE [<duration>] <user@host> [:<reason>]`.
pub(super) fn kline(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    add(ctx, msg, ServerBanKind::KLine, "KLINE");
}

/// `DLINE [<duration>] <ip-or-cidr> [:<reason>]`.
pub(super) fn dline(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    add(ctx, msg, ServerBanKind::DLine, "DLINE");
}

/// `UNKLINE <user@host>`.
pub(super) fn unkline(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    remove(ctx, msg, ServerBanKind::KLine, "UNKLINE");
}

/// `UNDLINE <ip-or-cidr>`.
pub(super) fn undline(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    remove(ctx, msg, ServerBanKind::DLine, "UNDLINE");
}

/// A server notice to the caller about its `command`.
fn tell(ctx: &Ctx<'_>, command: &str, text: &str) {
    let nick = ctx.me().nick().to_owned();
    ctx.world
        .server_line(ctx.id, "NOTICE")
        .param(&nick)
        .trailing(&format!("*** {command}: {text}"))
        .send();
}

/// The mask in its stored form, or why it is not a mask of `kind`.
fn normalize(kind: ServerBanKind, mask: &str) -> Result<String, &'static str> {
    match kind {
        ServerBanKind::KLine => bans::normalize_kline(mask),
        ServerBanKind::DLine => bans::normalize_dline(mask),
    }
}

fn add(ctx: &mut Ctx<'_>, msg: &Message<'_>, kind: ServerBanKind, command: &str) {
    if !is_oper(ctx) {
        return;
    }
    let (duration, at) = match msg.param(0).and_then(bans::parse_duration) {
        Some(Ok(duration)) => (Some(duration), 1),
        Some(Err(problem)) => {
            tell(ctx, command, problem);
            return;
        }
        None => (None, 0),
    };
    let Some(mask) = msg.param(at).filter(|m| !m.is_empty()) else {
        ctx.need_more_params(command);
        return;
    };
    let mask = match normalize(kind, mask) {
        Ok(mask) => mask,
        Err(problem) => {
            tell(ctx, command, problem);
            return;
        }
    };
    let limit = ctx.world.config.limits.max_server_bans;
    let reason = msg
        .param(at + 1)
        .filter(|r| !r.is_empty())
        .map_or("No reason given", |r| {
            truncate(r, ctx.world.config.limits.kick_len)
        })
        .to_owned();
    {
        let mut held = crate::lock(&ctx.world.bans);
        // Expired bans make no room in the store until the job sweeps them there,
        // which it does before it counts: they are not counted here either.
        held.forget_expired(Timestamp::now());
        if held.len() >= limit && !held.contains(kind, &mask) {
            drop(held);
            tell(
                ctx,
                command,
                &format!("The server already holds {limit} bans; remove some first"),
            );
            return;
        }
    }
    let set_at = Timestamp::now();
    let expires_at = duration.map(|duration| {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Timestamp(set_at.0.saturating_add(millis))
    });
    let ban = ServerBan {
        kind,
        mask,
        reason,
        set_by: ctx.me().nick().to_owned(),
        set_at,
        expires_at,
    };
    ctx.deferred = Some(Deferred::ServerBan(Job::Add { ban, limit }));
}

fn remove(ctx: &mut Ctx<'_>, msg: &Message<'_>, kind: ServerBanKind, command: &str) {
    if !is_oper(ctx) {
        return;
    }
    let Some(mask) = msg.param(0).filter(|m| !m.is_empty()) else {
        ctx.need_more_params(command);
        return;
    };
    let mask = match normalize(kind, mask) {
        Ok(mask) => mask,
        Err(problem) => {
            tell(ctx, command, problem);
            return;
        }
    };
    ctx.deferred = Some(Deferred::ServerBan(Job::Remove { kind, mask }));
}

/// Completes a ban job with the world locked: applies what the store now holds.
pub(crate) fn finish(ctx: &mut Ctx<'_>, done: Done) {
    match done {
        Done::Added { ban, result } => added(ctx, ban, result),
        Done::Removed { kind, mask, result } => {
            let command = match kind {
                ServerBanKind::KLine => "UNKLINE",
                ServerBanKind::DLine => "UNDLINE",
            };
            match result {
                Err(()) => tell(ctx, command, "The ban could not be removed; try again"),
                Ok(existed) => {
                    let held = crate::lock(&ctx.world.bans).remove(kind, &mask);
                    let unbanned = crate::bus::Event::ServerUnban {
                        kind: crate::bus::kind_letter(kind),
                        mask: mask.clone(),
                    };
                    ctx.world.announce(|_| Some(unbanned));
                    if !existed && !held {
                        tell(ctx, command, &format!("No {} for {mask}", kind_name(kind)));
                        return;
                    }
                    let oper = ctx.me().nick().to_owned();
                    tracing::info!(%oper, kind = kind_name(kind), %mask, "server ban removed");
                    snote(
                        ctx.world,
                        &format!("{oper} removed the {} for [{mask}]", kind_name(kind)),
                    );
                }
            }
        }
    }
}

fn added(ctx: &mut Ctx<'_>, ban: ServerBan, result: Result<ServerBanAdded, ()>) {
    let command = match ban.kind {
        ServerBanKind::KLine => "KLINE",
        ServerBanKind::DLine => "DLINE",
    };
    match result {
        Err(()) => {
            tell(ctx, command, "The ban could not be stored; try again");
            return;
        }
        Ok(ServerBanAdded::LimitReached) => {
            let limit = ctx.world.config.limits.max_server_bans;
            tell(
                ctx,
                command,
                &format!("The server already holds {limit} bans; remove some first"),
            );
            return;
        }
        Ok(ServerBanAdded::Added | ServerBanAdded::Replaced) => {}
    }
    crate::lock(&ctx.world.bans).insert(ban.clone());
    let announced = crate::bus::Event::ServerBan(Box::new(crate::bus::ServerBan::of(&ban)));
    ctx.world.announce(|_| Some(announced));
    let disconnected = apply(ctx.world, &ban);
    let lasting = match ban.expires_at {
        Some(at) => {
            let millis = u64::try_from(at.0.saturating_sub(ban.set_at.0)).unwrap_or(0);
            format!(
                "a temporary {} ({})",
                kind_name(ban.kind),
                describe_duration(std::time::Duration::from_millis(millis))
            )
        }
        None => format!("a {}", kind_name(ban.kind)),
    };
    tracing::info!(
        oper = %ban.set_by,
        kind = kind_name(ban.kind),
        mask = %ban.mask,
        reason = %ban.reason,
        disconnected,
        "server ban added"
    );
    snote(
        ctx.world,
        &format!(
            "{} added {lasting} for [{}]: {} ({disconnected} disconnected)",
            ban.set_by, ban.mask, ban.reason
        ),
    );
}

/// Disconnects the connected clients `ban` matches (not operators); returns how
/// many. Each one's own connection ends it, with the quit reason its channels see.
fn apply(world: &World, ban: &ServerBan) -> usize {
    let reason = format!("{}: {}", lined(ban.kind), ban.reason);
    // A D-line's network, parsed once for the whole scan.
    let network = match ban.kind {
        ServerBanKind::DLine => bans::parse_dline(&ban.mask).ok(),
        ServerBanKind::KLine => None,
    };
    let mut count = 0;
    // A rare operator command: a scan of all clients is fine here.
    for client in world.clients.values() {
        if client.oper {
            continue;
        }
        let hit = match ban.kind {
            // Before registration the username is not known yet: the check at
            // registration covers those.
            ServerBanKind::KLine => {
                client.is_registered()
                    && bans::kline_matches(&ban.mask, client.user(), &client.host, client.ip())
            }
            ServerBanKind::DLine => client
                .ip()
                .zip(network)
                .is_some_and(|(ip, net)| net.contains(&ip.to_canonical())),
        };
        if hit {
            client.outbox.request_disconnect(&reason);
            count += 1;
        }
    }
    count
}

/// `K-lined` or `D-lined`.
fn lined(kind: ServerBanKind) -> &'static str {
    match kind {
        ServerBanKind::KLine => "K-lined",
        ServerBanKind::DLine => "D-lined",
    }
}

/// The K-line check as registration completes: a banned client gets
/// `465 ERR_YOUREBANNEDCREEP` and is closed with the reason. Returns whether it was.
pub(super) fn refused_at_registration(ctx: &mut Ctx<'_>) -> bool {
    let me = ctx.me();
    let reason = crate::lock(&ctx.world.bans)
        .kline_for(me.user(), &me.host, me.ip(), Timestamp::now())
        .map(|ban| ban.reason.clone());
    let Some(reason) = reason else {
        return false;
    };
    tracing::info!(client = ctx.id.0, nick = %me.nick(), host = %me.host, "K-lined at registration");
    let host = me.host.to_string();
    ctx.numeric(ERR_YOUREBANNEDCREEP)
        .trailing(&format!("You are banned from this server: {reason}"))
        .send();
    ctx.quit = Some(format!("Closing Link: {host} (K-lined: {reason})"));
    true
}
