//! `MARKREAD <target> [timestamp=<time>]` (IRCv3 `draft/read-marker`): gets or sets
//! the time of the last message the user read in a channel or query.
//!
//! A get answers `MARKREAD <target> timestamp=<time>` (or `*` when nothing is
//! stored). A set moves the stored time forward only, clamped to now, and answers
//! with the stored time, also when the client's was older. Clients with the
//! capability get `MARKREAD <chan> ...` right after their JOIN, before the NAMES
//! reply ends. Markers are kept per connection (see `world::read_markers`); the
//! connections logged in to one account share theirs: a change moves the others'
//! markers forward too and is sent to those that enabled the capability (the setter
//! always gets its answer). An account's markers are also stored (keyed by the
//! folded target name) and come back with every login, across restarts (see
//! `world::read_markers::Saved`).

use palaver_proto::validate::{is_valid_channel, is_valid_nick};
use palaver_proto::{CaseKey, LineWriter, Message};
use time::OffsetDateTime;

use super::Ctx;
use crate::caps;
use crate::world::World;
use crate::world::read_markers::{format_timestamp, parse_timestamp};

/// `MARKREAD <target> [timestamp=<time>]`.
pub(super) fn markread(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let Some(target) = msg.param(0).filter(|t| !t.is_empty()) else {
        fail(ctx, "NEED_MORE_PARAMS", &[], "Missing parameters");
        return;
    };
    let limits = &ctx.world.config.limits;
    if !is_valid_channel(target, limits.channel_len) && !is_valid_nick(target, limits.nick_len) {
        fail(ctx, "INVALID_PARAMS", &[target], "Invalid target");
        return;
    }
    let key = World::key(target);
    let Some(param) = msg.param(1) else {
        let stored = ctx.world.read_markers.get(ctx.id, &key);
        ctx.me().send(line(ctx.world, target, stored));
        return;
    };
    let Some(at) = param.strip_prefix("timestamp=").and_then(parse_timestamp) else {
        fail(ctx, "INVALID_PARAMS", &[param], "Invalid timestamp");
        return;
    };
    let at = at.min(OffsetDateTime::now_utc());
    let limit = limits.read_markers_per_client;
    let total_limit = limits.max_read_markers_total;
    let (stored, changed) = ctx
        .world
        .read_markers
        .advance(ctx.id, &key, at, limit, total_limit);
    let reply = line(ctx.world, target, stored);
    ctx.me().send(reply.clone());
    // The other connections logged in to the same account share the marker: each
    // moves forward too, and those with the capability are told.
    let Some((account, at)) = ctx.me().account.as_deref().map(World::key).zip(stored) else {
        return;
    };
    if !changed {
        return;
    }
    // Kept for the account: in memory for later logins, and in the store for
    // later server processes (the write is queued now; nothing waits for it).
    ctx.world.saved_markers.advance(
        account.clone(),
        key.clone(),
        at,
        ctx.world.config.limits.max_read_markers_total,
    );
    let stamp = palaver_store::Timestamp::from(at);
    let stored = ctx.world.store.set_read_marker(
        account.as_str(),
        &palaver_store::TargetKey::channel(key.as_str()),
        stamp,
    );
    tokio::spawn(async move {
        if let Err(error) = stored.await {
            tracing::warn!(%error, "cannot store a read marker");
        }
    });
    let others: Vec<_> = ctx
        .world
        .sessions
        .get(&account)
        .into_iter()
        .flatten()
        .copied()
        .filter(|id| *id != ctx.id)
        .collect();
    for other in others {
        let (_, moved) = ctx
            .world
            .read_markers
            .advance(other, &key, at, limit, total_limit);
        if let Some(client) = ctx.world.clients.get(&other)
            && moved
            && client.caps.has(caps::READ_MARKER)
        {
            client.send(reply.clone());
        }
    }
}

/// After a JOIN: `MARKREAD <chan> ...` for a client with the capability (the
/// specification wants it before `RPL_ENDOFNAMES`).
pub(super) fn after_join(ctx: &Ctx<'_>, key: &CaseKey) {
    let me = ctx.me();
    if !me.caps.has(caps::READ_MARKER) {
        return;
    }
    let Some(channel) = ctx.world.channels.get(key) else {
        return;
    };
    let stored = ctx.world.read_markers.get(ctx.id, key);
    me.send(line(ctx.world, &channel.name, stored));
}

/// `:server MARKREAD <target> timestamp=<time>`, or `*` when nothing is stored.
fn line(world: &World, target: &str, stored: Option<OffsetDateTime>) -> bytes::Bytes {
    let mut line = LineWriter::new();
    line.source(&world.config.server_name)
        .command("MARKREAD")
        .param(target);
    match stored {
        Some(at) => line.param(&format!("timestamp={}", format_timestamp(at))),
        None => line.param("*"),
    };
    line.finish()
}

/// `FAIL MARKREAD <code> [params] :<text>`.
fn fail(ctx: &Ctx<'_>, code: &str, params: &[&str], text: &str) {
    ctx.world
        .standard_reply(ctx.id, "FAIL", "MARKREAD", code, params, text);
}
