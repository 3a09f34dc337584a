//! `RENAME <#old> <#new> [:<reason>]` (IRCv3 `draft/channel-rename`): a channel
//! operator renames a channel, which keeps everything it has: members and their
//! status, topic, modes (`+E` included), ban/exception/invite-exception lists and
//! metadata. The world side is `World::rename_channel`.
//!
//! Members that enabled `draft/channel-rename` get `:<renamer> RENAME <old> <new>
//! :<reason>` (the reason may be empty). The others get what leaving and joining
//! would have shown them: their own `PART <old>` (reason `Renamed to <new>`, with
//! the renamer's reason after it), their own `JOIN <new>` (extended if they asked for
//! it), then the join burst (topic, read marker, NAMES, metadata) as after a JOIN.
//! The renamer is answered the same way as the other members.
//!
//! Refusals: `461` without two parameters; `403` for a channel that does not exist
//! (or is secret to a non-member); `442` for a non-member; `482` for a member who is
//! not an operator; `FAIL RENAME CANNOT_RENAME <old> <new> :...` for a new name that
//! changes the channel's type (its first character), is not a valid channel name or
//! is the current name exactly; `FAIL RENAME CHANNEL_NAME_IN_USE <old> <new> :...`
//! when a channel of that name exists or the name is registered with ChanServ.
//! A change of case only (`#chan` → `#Chan`) is allowed: the channel keeps its key
//! and just changes its spelling.
//!
//! Decisions:
//! - A registered channel (ChanServ) is not renamed: `FAIL RENAME CANNOT_RENAME`,
//!   asking to drop the registration first. Moving a registration (its founder,
//!   access list, stored modes) under another name is a ChanServ matter; refusing is
//!   the simple correct choice, and no registration ever describes a channel under a
//!   name it no longer has. For the same reason a registered name cannot be taken by
//!   renaming another channel to it (`CHANNEL_NAME_IN_USE`), which would otherwise
//!   hand its founder's registration a stranger's channel.
//! - History stays under the old name: messages kept before the rename remain in
//!   the store as the old name's (the store keys history by folded name, and is not
//!   rewritten), so `CHATHISTORY` on the new name starts at the rename, and the old
//!   messages are readable only by members of a channel of the old name, exactly as
//!   for a channel that ended. New messages are kept under the new name, as `+E`
//!   (which moves with the channel) says. The rename itself is not a history event.
//!   Read markers (per connection and per account) also stay with the old name, and
//!   messages sent before the rename can no longer be redacted (`REDACT` names the
//!   channel they went to, which no longer exists).
//! - Invitations to the channel follow it to its new name; a stale invitation to the
//!   new name (to a channel of that name that ended) is dropped. MONITOR is about
//!   nicknames and is unaffected.

use palaver_proto::Message;
use palaver_proto::numeric::*;
use palaver_proto::validate::is_valid_channel;

use super::Ctx;
use super::channel::{JoinLines, join_burst, truncate};
use crate::caps;
use crate::world::{ClientId, World};

/// `RENAME <#old> <#new> [:<reason>]`.
pub(super) fn rename(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let (Some(old), Some(new)) = (msg.param(0), msg.param(1)) else {
        ctx.need_more_params("RENAME");
        return;
    };
    let limits = &ctx.world.config.limits;
    let reason = truncate(msg.param(2).unwrap_or_default(), limits.kick_len).to_owned();
    let channel_len = limits.channel_len;
    let old_key = World::key(old);
    // Outsiders get the same answer for a secret channel as for a missing one.
    let Some(channel) = ctx.world.channel_known_to(&old_key, ctx.id) else {
        ctx.no_such_channel(old);
        return;
    };
    let refusal = match channel.status(ctx.id) {
        None => Some((ERR_NOTONCHANNEL, "You're not on that channel")),
        Some(status) if !status.op => Some((ERR_CHANOPRIVSNEEDED, "You're not channel operator")),
        Some(_) => None,
    };
    if let Some((code, text)) = refusal {
        ctx.numeric(code).param(&channel.name).trailing(text).send();
        return;
    }
    let old_name = channel.name.clone();
    let new_key = World::key(new);
    let fail = |code: &str, text: &str| {
        ctx.world
            .standard_reply(ctx.id, "FAIL", "RENAME", code, &[old, new], text);
    };
    if ctx.world.remote.is_some() {
        // Every node holds every channel; a rename would have to move it on all of
        // them at once, which the cluster cannot do yet (issue 15).
        fail(
            "CANNOT_RENAME",
            "Channels cannot be renamed on a cluster of servers yet",
        );
        return;
    }
    if new.chars().next() != old_name.chars().next() {
        fail(
            "CANNOT_RENAME",
            "A channel's type (the first character of its name) cannot change",
        );
        return;
    }
    if !is_valid_channel(new, channel_len) {
        fail(
            "CANNOT_RENAME",
            &format!("{new} is not a valid channel name"),
        );
        return;
    }
    if new == old_name {
        fail(
            "CANNOT_RENAME",
            &format!("The channel is already named {new}"),
        );
        return;
    }
    if ctx.world.registry.get(&old_key).is_some() {
        fail(
            "CANNOT_RENAME",
            &format!(
                "{old_name} is registered with ChanServ; drop its registration first \
                 (/msg ChanServ DROP {old_name})"
            ),
        );
        return;
    }
    if new_key != old_key {
        if ctx.world.channels.contains_key(&new_key) {
            fail(
                "CHANNEL_NAME_IN_USE",
                &format!("A channel named {new} already exists"),
            );
            return;
        }
        if ctx.world.registry.get(&new_key).is_some() {
            fail(
                "CHANNEL_NAME_IN_USE",
                &format!("{new} is registered with ChanServ"),
            );
            return;
        }
    }
    if !ctx
        .world
        .rename_channel(&old_key, new_key.clone(), new.to_owned())
    {
        return;
    }
    tracing::info!(client = ctx.id.0, from = %old_name, to = %new, "channel renamed");
    announce(ctx, &old_name, new, &new_key, &reason);
}

/// Tells every member of the renamed channel (now `new_key`, named `new`), each in
/// the form it understands (see the module documentation).
fn announce(
    ctx: &mut Ctx<'_>,
    old_name: &str,
    new: &str,
    new_key: &palaver_proto::CaseKey,
    reason: &str,
) {
    let mut line = ctx.me().line_from();
    line.command("RENAME")
        .param(old_name)
        .param(new)
        .trailing(reason);
    let rename_line = crate::relay::EventLine::new(line.finish(), ctx.me().account.as_deref());
    let part_reason = if reason.is_empty() {
        format!("Renamed to {new}")
    } else {
        format!("Renamed to {new}: {reason}")
    };
    let Some(channel) = ctx.world.channels.get(new_key) else {
        return;
    };
    let mut members: Vec<ClientId> = channel.members.keys().copied().collect();
    // The renamer first, then the others in a stable order.
    members.sort_by_key(|id| (*id != ctx.id, id.0));
    for id in members {
        let Some(client) = ctx.world.clients.get(&id) else {
            continue;
        };
        if client.caps.has(caps::CHANNEL_RENAME) {
            client.send(rename_line.line_for(client.caps));
            continue;
        }
        let mut part = client.line_from();
        part.command("PART").param(old_name).trailing(&part_reason);
        let part = crate::relay::EventLine::new(part.finish(), client.account.as_deref());
        client.send(part.line_for(client.caps));
        JoinLines::new(client, new, None).send_to(&client.outbox, true);
        let mut member = Ctx::new(&mut *ctx.world, id);
        join_burst(&mut member, new_key);
    }
}
