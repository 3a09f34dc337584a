//! PRIVMSG, NOTICE and TAGMSG to channels (also `@#chan`/`+#chan`, STATUSMSG) and to
//! nicknames.
//!
//! Each message is formatted through a [`Relay`], once per capability variant, and the
//! same bytes are queued for every recipient of that variant. The sender gets a copy
//! only with `echo-message`. NOTICE never produces an error reply (RFC 2812 §3.3.2), so
//! two bots cannot loop on each other's errors. Client-only tags (`+key`) travel only
//! from and to clients that negotiated `message-tags`; TAGMSG reaches only those.

use palaver_proto::Message;
use palaver_proto::numeric::*;

use super::{Ctx, split_list};
use crate::caps;
use crate::relay::{Relay, Stamp, client_only_tags};
use crate::world::World;

/// Most bytes of client-only tags one message may carry (IRCv3 message-tags).
const MAX_CLIENT_TAGS_LEN: usize = 4094;

/// The three relayed commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Privmsg,
    Notice,
    Tagmsg,
}

impl Kind {
    fn command(self) -> &'static str {
        match self {
            Self::Privmsg => "PRIVMSG",
            Self::Notice => "NOTICE",
            Self::Tagmsg => "TAGMSG",
        }
    }

    /// NOTICE is never answered with an error.
    fn errors(self) -> bool {
        self != Self::Notice
    }
}

/// What is being relayed, shared by every target of one command.
struct Outgoing<'m> {
    kind: Kind,
    text: Option<&'m str>,
    client_tags: String,
}

/// `PRIVMSG|NOTICE <target>{,<target>} :<text>` and `TAGMSG <target>`.
pub(super) fn relay(ctx: &mut Ctx<'_>, msg: &Message<'_>, kind: Kind) {
    let command = kind.command();
    let Some(targets) = msg.param(0).filter(|t| !t.is_empty()) else {
        if kind.errors() {
            ctx.numeric(ERR_NORECIPIENT)
                .trailing(&format!("No recipient given ({command})"))
                .send();
        }
        return;
    };
    let text = msg.param(1).filter(|t| !t.is_empty());
    if text.is_none() && kind != Kind::Tagmsg {
        if kind.errors() {
            ctx.numeric(ERR_NOTEXTTOSEND)
                .trailing("No text to send")
                .send();
        }
        return;
    }
    let client_tags = if ctx.me().caps.has(caps::MESSAGE_TAGS) {
        client_only_tags(msg.raw_tags())
    } else {
        String::new()
    };
    if client_tags.len() > MAX_CLIENT_TAGS_LEN {
        ctx.numeric(ERR_INPUTTOOLONG)
            .trailing("Input line was too long")
            .send();
        return;
    }
    let targets: Vec<&str> = split_list(targets).collect();
    let max_targets = ctx.world.config.limits.max_targets;
    if targets.len() > max_targets {
        if kind.errors() {
            ctx.numeric(ERR_TOOMANYTARGETS)
                .param(targets[max_targets])
                .trailing("Too many targets")
                .send();
        }
        return;
    }
    ctx.me_mut().last_spoke = tokio::time::Instant::now();
    let outgoing = Outgoing {
        kind,
        text,
        client_tags,
    };
    for target in targets {
        let stamp = ctx.world.stamp();
        if target
            .strip_prefix(['@', '+'])
            .unwrap_or(target)
            .starts_with('#')
        {
            to_channel(ctx, &outgoing, target, &stamp);
        } else {
            to_nick(ctx, &outgoing, target, &stamp);
        }
    }
}

fn to_channel(ctx: &Ctx<'_>, out: &Outgoing<'_>, target: &str, stamp: &Stamp) {
    // STATUSMSG: `@#chan` reaches operators only, `+#chan` voiced members and operators.
    let (min_status, name) = match target.as_bytes().first() {
        Some(b'@') => (Some('@'), &target[1..]),
        Some(b'+') => (Some('+'), &target[1..]),
        _ => (None, target),
    };
    let Some(channel) = ctx.world.channels.get(World::key(name).as_str()) else {
        if out.kind.errors() {
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
        if out.kind.errors() {
            ctx.numeric(ERR_CANNOTSENDTOCHAN)
                .param(&channel.name)
                .trailing(reason)
                .send();
        }
        return;
    }
    let mut relay = Relay::new(
        (me.nick(), me.user(), &me.host),
        out.kind.command(),
        target,
        out.text,
        &out.client_tags,
        me.bot,
        stamp,
    );
    for (id, member) in &channel.members {
        let allowed = match min_status {
            None => true,
            Some(prefix) => member.status.op || (prefix == '+' && member.status.voice),
        };
        let caps = member.outbox.caps();
        if *id != ctx.id && allowed && (out.kind != Kind::Tagmsg || caps.has(caps::MESSAGE_TAGS)) {
            member.outbox.push(relay.line_for(caps));
        }
    }
    echo(ctx, out, &mut relay);
}

fn to_nick(ctx: &Ctx<'_>, out: &Outgoing<'_>, target: &str, stamp: &Stamp) {
    let Some(recipient) = ctx.world.find_nick(target).filter(|c| c.is_registered()) else {
        if out.kind.errors() {
            ctx.numeric(ERR_NOSUCHNICK)
                .param(target)
                .trailing("No such nick/channel")
                .send();
        }
        return;
    };
    let me = ctx.me();
    let mut relay = Relay::new(
        (me.nick(), me.user(), &me.host),
        out.kind.command(),
        recipient.nick(),
        out.text,
        &out.client_tags,
        me.bot,
        stamp,
    );
    let caps = recipient.caps;
    let to_self = recipient.id == ctx.id;
    if (out.kind != Kind::Tagmsg || caps.has(caps::MESSAGE_TAGS))
        && !(to_self && caps.has(caps::ECHO_MESSAGE))
    {
        recipient.send(relay.line_for(caps));
    }
    echo(ctx, out, &mut relay);
    if let (Kind::Privmsg, Some(away)) = (out.kind, &recipient.away) {
        ctx.numeric(RPL_AWAY)
            .param(recipient.nick())
            .trailing(away)
            .send();
    }
}

/// With `echo-message`, the sender gets the message as its recipients did.
fn echo(ctx: &Ctx<'_>, out: &Outgoing<'_>, relay: &mut Relay<'_>) {
    let caps = ctx.me().caps;
    if caps.has(caps::ECHO_MESSAGE) && (out.kind != Kind::Tagmsg || caps.has(caps::MESSAGE_TAGS)) {
        ctx.me().send(relay.line_for(caps));
    }
}
