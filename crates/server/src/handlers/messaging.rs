//! PRIVMSG and NOTICE to channels (also `@#chan`/`+#chan`, STATUSMSG) and to nicknames.
//!
//! A channel message is serialised once and the same bytes are queued for every
//! recipient; the sender does not get a copy. NOTICE never produces an error reply
//! (RFC 2812 §3.3.2), so two bots cannot loop on each other's errors.

use palaver_proto::Message;
use palaver_proto::numeric::*;

use super::{Ctx, split_list};
use crate::world::World;

/// `PRIVMSG|NOTICE <target>{,<target>} :<text>`.
pub(super) fn privmsg(ctx: &mut Ctx<'_>, msg: &Message<'_>, notice: bool) {
    let command = if notice { "NOTICE" } else { "PRIVMSG" };
    let Some(targets) = msg.param(0).filter(|t| !t.is_empty()) else {
        if !notice {
            ctx.numeric(ERR_NORECIPIENT)
                .trailing(&format!("No recipient given ({command})"))
                .send();
        }
        return;
    };
    let Some(text) = msg.param(1).filter(|t| !t.is_empty()) else {
        if !notice {
            ctx.numeric(ERR_NOTEXTTOSEND)
                .trailing("No text to send")
                .send();
        }
        return;
    };
    let targets: Vec<&str> = split_list(targets).collect();
    if targets.len() > ctx.world.config.limits.max_targets {
        if !notice {
            ctx.numeric(ERR_TOOMANYTARGETS)
                .param(targets[ctx.world.config.limits.max_targets])
                .trailing("Too many targets")
                .send();
        }
        return;
    }
    ctx.me_mut().last_spoke = tokio::time::Instant::now();
    for target in targets {
        if target
            .strip_prefix(['@', '+'])
            .unwrap_or(target)
            .starts_with('#')
        {
            to_channel(ctx, command, target, text, notice);
        } else {
            to_nick(ctx, command, target, text, notice);
        }
    }
}

fn to_channel(ctx: &Ctx<'_>, command: &str, target: &str, text: &str, notice: bool) {
    // STATUSMSG: `@#chan` reaches operators only, `+#chan` voiced members and operators.
    let (min_status, name) = match target.as_bytes().first() {
        Some(b'@') => (Some('@'), &target[1..]),
        Some(b'+') => (Some('+'), &target[1..]),
        _ => (None, target),
    };
    let Some(channel) = ctx.world.channels.get(World::key(name).as_str()) else {
        if !notice {
            ctx.numeric(ERR_NOSUCHNICK)
                .param(target)
                .trailing("No such nick/channel")
                .send();
        }
        return;
    };
    let me = ctx.me();
    let status = channel.status(ctx.id);
    let voiced = status.is_some_and(|s| s.op || s.voice);
    let refusal = if status.is_none() && channel.modes.no_external {
        Some("Cannot send to channel (no external messages)")
    } else if channel.modes.moderated && !voiced {
        Some("Cannot send to channel (+m)")
    } else if !voiced && channel.is_banned(&me.mask()) {
        Some("Cannot send to channel (+b)")
    } else {
        None
    };
    if let Some(reason) = refusal {
        if !notice {
            ctx.numeric(ERR_CANNOTSENDTOCHAN)
                .param(&channel.name)
                .trailing(reason)
                .send();
        }
        return;
    }
    let mut line = me.line_from();
    line.command(command).param(target).trailing(text);
    let line = line.finish();
    match min_status {
        None => channel.broadcast(&line, Some(ctx.id)),
        Some(prefix) => {
            for (id, member) in &channel.members {
                let allowed = member.status.op || (prefix == '+' && member.status.voice);
                if *id != ctx.id && allowed {
                    member.outbox.push(line.clone());
                }
            }
        }
    }
}

fn to_nick(ctx: &Ctx<'_>, command: &str, target: &str, text: &str, notice: bool) {
    let Some(recipient) = ctx.world.find_nick(target).filter(|c| c.is_registered()) else {
        if !notice {
            ctx.numeric(ERR_NOSUCHNICK)
                .param(target)
                .trailing("No such nick/channel")
                .send();
        }
        return;
    };
    let mut line = ctx.me().line_from();
    line.command(command).param(recipient.nick()).trailing(text);
    recipient.send(line.finish());
    if let (false, Some(away)) = (notice, &recipient.away) {
        ctx.numeric(RPL_AWAY)
            .param(recipient.nick())
            .trailing(away)
            .send();
    }
}
