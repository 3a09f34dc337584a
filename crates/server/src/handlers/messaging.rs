//! PRIVMSG, NOTICE and TAGMSG to channels (also `@#chan`/`+#chan`, STATUSMSG) and to
//! nicknames.
//!
//! Sending is two steps: [`resolve`] finds who receives a message to a target, after
//! every check that may refuse it, and the caller formats the message through a
//! [`Relay`] (once per capability variant) and queues the same bytes for every
//! recipient of that variant. The sender gets a copy only with `echo-message`. NOTICE
//! never produces an error reply (RFC 2812 §3.3.2), so two bots cannot loop on each
//! other's errors. Client-only tags (`+key`) travel only from and to clients that
//! negotiated `message-tags`; TAGMSG reaches only those. A line carrying a `batch`
//! tag belongs to a draft/multiline batch and is handled by [`super::multiline`].

use palaver_proto::Message;
use palaver_proto::numeric::*;

use super::{Ctx, multiline, split_list};
use crate::caps;
use crate::history::{self, Recorded};
use crate::outbox::Outbox;
use crate::relay::{Kind, Relay, client_only_tags};
use crate::world::{Recipients, World};
use palaver_store::MessageKind;

/// `PRIVMSG|NOTICE <target>{,<target>} :<text>` and `TAGMSG <target>`.
pub(super) fn relay(ctx: &mut Ctx<'_>, msg: &Message<'_>, kind: Kind) {
    if msg.tag("batch").is_some() && ctx.me().multiline.is_some() {
        multiline::add_line(ctx, msg, kind);
        return;
    }
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
    let client_tags = sender_client_tags(ctx, msg);
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
    ctx.me_mut().last_spoke = crate::world::unix_now();
    for target in targets {
        let Some(delivery) = resolve(ctx, target, kind, text) else {
            continue;
        };
        let stamp = ctx.world.stamp();
        let seq = match keep(ctx, &delivery, kind, text, &client_tags, &stamp) {
            Recorded::NotKept => 0,
            Recorded::Kept(seq) => {
                ctx.world.counters.history_written += 1;
                ctx.world.metrics.appended(seq);
                seq
            }
            Recorded::Refused => {
                if kind.errors() {
                    ctx.world.standard_reply(
                        ctx.id,
                        "FAIL",
                        command,
                        "TEMPORARILY_UNAVAILABLE",
                        &[target],
                        "The history store is overloaded; the message was not sent, try again",
                    );
                }
                continue;
            }
        };
        // draft/message-redaction: remember who sent this msgid where.
        super::redact::record(ctx, &delivery.recipients, stamp.serial);
        let me = ctx.me();
        let mut relay = Relay::new(
            (me.nick(), me.user(), &me.host),
            command,
            &delivery.target,
            text,
            &client_tags,
            me.bot,
            &stamp,
        )
        .with_account(me.account.as_deref());
        let mut delivered = 0;
        // On a cluster, a channel's members on other nodes get it from their node.
        let mut fanout = ctx.world.fanout(&delivery.recipients);
        delivery.for_each(ctx, |recipient| {
            let caps = recipient.caps();
            if kind.reaches(caps) {
                if fanout
                    .as_mut()
                    .is_some_and(|fanout| fanout.takes(recipient))
                {
                    return;
                }
                delivered += 1;
                // push_delivery: to oneself this is a delivery, not a reply; the echo
                // (if any) is the reply that labeled-response labels.
                // (Held until the store commits `seq`, if history keeps it.)
                recipient.push_delivery_held(relay.line_for(caps), seq);
            }
        });
        echo(ctx, kind, &mut relay, seq);
        if let Some(fanout) = fanout {
            let nodes = fanout.into_nodes();
            forward(ctx, nodes, &delivery, kind, text, &client_tags, &stamp, seq);
        }
        // Counted once per message, not per copy (see `metrics`).
        ctx.world.counters.messages += 1;
        ctx.world.counters.deliveries += delivered;
        if let (Kind::Privmsg, Some((nick, away))) = (kind, &delivery.away) {
            ctx.numeric(RPL_AWAY).param(nick).trailing(away).send();
        }
    }
}

/// Sends a channel message to the other nodes in `nodes`, which deliver it to
/// their own members of the channel (see `world::forward`).
#[allow(
    clippy::too_many_arguments,
    reason = "the parts of one message, as relay has them at hand"
)]
fn forward(
    ctx: &mut Ctx<'_>,
    nodes: Vec<std::sync::Arc<str>>,
    delivery: &Delivery,
    kind: Kind,
    text: Option<&str>,
    client_tags: &str,
    stamp: &crate::relay::Stamp,
    seq: u64,
) {
    let Recipients::Channel { min_status, .. } = delivery.recipients else {
        return;
    };
    if nodes.is_empty() {
        return;
    }
    let me = ctx.me();
    let message = crate::bus::ChannelMessage {
        kind: kind.into(),
        target: delivery.target.clone(),
        min_status,
        nick: me.nick().to_owned(),
        user: me.user().to_owned(),
        host: me.host.to_string(),
        text: text.map(str::to_owned),
        client_tags: client_tags.to_owned(),
        bot: me.bot,
        account: me.account.as_deref().map(str::to_owned),
        msgid: stamp.msgid.clone(),
        at: stamp.millis(),
    };
    ctx.world.forward_channel_message(nodes, message, seq);
}

/// The sender's client-only tags, if it negotiated message-tags (still escaped).
pub(super) fn sender_client_tags(ctx: &Ctx<'_>, msg: &Message<'_>) -> String {
    if ctx.me().caps.has(caps::MESSAGE_TAGS) {
        client_only_tags(msg.raw_tags())
    } else {
        String::new()
    }
}

/// Who receives a message to one target.
pub(super) struct Delivery {
    /// The target as it appears in relayed lines (the recipient's own nick spelling).
    pub(super) target: String,
    /// Who receives it, never the sender unless it is the target.
    pub(super) recipients: Recipients,
    /// The recipient's nick and away message, for `RPL_AWAY` after a PRIVMSG.
    pub(super) away: Option<(String, String)>,
}

impl Delivery {
    /// Calls `deliver` with the outbox of every recipient, the sender excluded from
    /// channels (it gets its copy through echo-message only).
    pub(super) fn for_each(&self, ctx: &Ctx<'_>, deliver: impl FnMut(&Outbox)) {
        self.recipients.for_each(ctx.world, ctx.id, deliver);
    }
}

/// Checks that the caller may send to `target` and finds its recipients; answers
/// the refusal itself (unless `kind` is NOTICE) and returns `None` if it may not.
/// `text` is the message, if it is a single line (for channel modes such as `+C`).
pub(super) fn resolve(
    ctx: &Ctx<'_>,
    target: &str,
    kind: Kind,
    text: Option<&str>,
) -> Option<Delivery> {
    if target
        .strip_prefix(['@', '+'])
        .unwrap_or(target)
        .starts_with('#')
    {
        resolve_channel(ctx, target, kind, text)
    } else {
        resolve_nick(ctx, target, kind)
    }
}

fn resolve_channel(
    ctx: &Ctx<'_>,
    target: &str,
    kind: Kind,
    text: Option<&str>,
) -> Option<Delivery> {
    // STATUSMSG: `@#chan` reaches operators only, `+#chan` voiced members and operators.
    let (min_status, name) = match target.as_bytes().first() {
        Some(b'@') => (Some('@'), &target[1..]),
        Some(b'+') => (Some('+'), &target[1..]),
        _ => (None, target),
    };
    let key = World::key(name);
    let Some(channel) = ctx.world.channels.get(&key) else {
        if kind.errors() {
            ctx.no_such_nick(target);
        }
        return None;
    };
    let me = ctx.me();
    let status = channel.status(ctx.id);
    let voiced = status.is_some_and(|s| s.op || s.voice);
    let refusal = if status.is_none() && channel.modes.no_external {
        Some("Cannot send to channel (no external messages)")
    } else if channel.modes.moderated && !voiced {
        Some("Cannot send to channel (+m)")
    } else if !voiced && channel.is_banned(&me.mask(), me.account.as_deref()) {
        Some("Cannot send to channel (+b)")
    } else if !voiced && channel.is_muted(&me.mask(), me.account.as_deref()) {
        Some("Cannot send to channel (muted)")
    } else if channel.modes.no_ctcp && text.is_some_and(is_ctcp_but_action) {
        Some("Cannot send CTCP to channel (+C)")
    } else {
        None
    };
    if let Some(reason) = refusal {
        if kind.errors() && channel.secret_from(ctx.id) {
            // An outsider refused by a secret channel hears what a missing one says.
            ctx.no_such_nick(target);
        } else if kind.errors() {
            ctx.numeric(ERR_CANNOTSENDTOCHAN)
                .param(&channel.name)
                .trailing(reason)
                .send();
        }
        return None;
    }
    Some(Delivery {
        target: target.to_owned(),
        recipients: Recipients::Channel { key, min_status },
        away: None,
    })
}

fn resolve_nick(ctx: &Ctx<'_>, target: &str, kind: Kind) -> Option<Delivery> {
    let Some(recipient) = ctx.world.find_nick(target).filter(|c| c.is_registered()) else {
        if kind.errors() {
            ctx.no_such_nick(target);
        }
        return None;
    };
    Some(Delivery {
        target: recipient.nick().to_owned(),
        recipients: Recipients::Client(recipient.id),
        away: recipient
            .away
            .as_ref()
            .map(|away| (recipient.nick().to_owned(), away.to_string())),
    })
}

/// With `echo-message`, the sender gets the message as its recipients did (held
/// like theirs until history has it, when `seq` is not 0).
fn echo(ctx: &Ctx<'_>, kind: Kind, relay: &mut Relay<'_>, seq: u64) {
    let caps = ctx.me().caps;
    if caps.has(caps::ECHO_MESSAGE) && kind.reaches(caps) {
        ctx.me().outbox.push_held(relay.line_for(caps), seq);
    }
}

/// Offers a message to history (see [`crate::history`]).
fn keep(
    ctx: &Ctx<'_>,
    delivery: &Delivery,
    kind: Kind,
    text: Option<&str>,
    client_tags: &str,
    stamp: &crate::relay::Stamp,
) -> Recorded {
    let kind = match kind {
        Kind::Privmsg => MessageKind::Privmsg,
        Kind::Notice => MessageKind::Notice,
        Kind::Tagmsg if history::keeps_tagmsg(client_tags) => MessageKind::Tagmsg,
        Kind::Tagmsg => return Recorded::NotKept,
    };
    history::record(
        ctx.world,
        ctx.me(),
        history::Offered {
            kind,
            recipients: &delivery.recipients,
            text: text.unwrap_or_default(),
            client_tags,
            stamp,
        },
    )
}

/// A CTCP message (`\x01...`) other than ACTION, which `+C` channels refuse.
fn is_ctcp_but_action(text: &str) -> bool {
    text.strip_prefix('\u{1}')
        .is_some_and(|ctcp| !ctcp.starts_with("ACTION ") && ctcp != "ACTION\u{1}")
}
