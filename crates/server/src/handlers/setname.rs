//! `SETNAME :<realname>` (IRCv3 `setname`): changes the real name after registration.
//!
//! The change is announced as `:nick!user@host SETNAME :<realname>` to the client
//! itself and its channel peers, each only if it enabled `setname` (a client without
//! it is changed silently, as the specification asks), and to clients monitoring it
//! with `extended-monitor` + `setname` that share no channel with it. An empty real
//! name or one longer than `Limits::realname_len` bytes is refused with
//! `FAIL SETNAME INVALID_REALNAME`.

use palaver_proto::Message;

use super::{Ctx, notify_peers};
use crate::caps;

pub(super) fn setname(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let Some(realname) = msg.param(0) else {
        ctx.need_more_params("SETNAME");
        return;
    };
    if realname.is_empty() || realname.len() > ctx.world.config.limits.realname_len {
        ctx.world.standard_reply(
            ctx.id,
            "FAIL",
            "SETNAME",
            "INVALID_REALNAME",
            &[],
            "Realname is not valid",
        );
        return;
    }
    ctx.me_mut().realname = realname.into();
    ctx.world.announce_user_state(ctx.id);
    let me = ctx.me();
    let mut line = me.line_from();
    line.command("SETNAME").trailing(realname);
    let line = line.finish();
    if me.caps.has(caps::SETNAME) {
        me.send(line.clone());
    }
    notify_peers(ctx, caps::SETNAME, &line);
    for watcher in ctx.world.extended_monitors(ctx.id, caps::SETNAME) {
        watcher.push(line.clone());
    }
}
