//! `REDACT <target> <msgid> [:<reason>]` (IRCv3 `draft/message-redaction`): deletes a
//! recently relayed PRIVMSG, NOTICE or TAGMSG.
//!
//! The message must be in the index of recent messages (`world::recent`) and have
//! gone to `target`: a channel the redactor is in, or the nickname it exchanged the
//! message with. Its sender may redact it, and so may an operator of the channel it
//! went to, within `Limits::redact_window`. The `REDACT` is relayed like the message
//! was, from the redactor, to the recipients that enabled the capability (others get
//! nothing: no fallback notice), and always back to the redactor as its answer.
//! Errors are `FAIL REDACT INVALID_TARGET | UNKNOWN_MSGID | REDACT_FORBIDDEN |
//! REDACT_WINDOW_EXPIRED`; a message the redactor could not have seen (another
//! conversation, or a STATUSMSG above its status) is unknown to it, so errors do not
//! reveal which message ids exist.

use bytes::Bytes;
use palaver_proto::{CaseKey, LineWriter, Message};
use tokio::time::Instant;

use super::Ctx;
use crate::caps::{self, CapSet};
use crate::relay::Stamp;
use crate::world::Recipients;
use crate::world::recent::Sent;
use crate::world::{Client, ClientId, World};

/// Where a REDACT points.
enum Target {
    Channel(CaseKey),
    Private(ClientId),
}

/// `REDACT <target> <msgid> [:<reason>]`.
pub(super) fn redact(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let (Some(target), Some(msgid)) = (
        msg.param(0).filter(|t| !t.is_empty()),
        msg.param(1).filter(|m| !m.is_empty()),
    ) else {
        ctx.need_more_params("REDACT");
        return;
    };
    let reason = msg.param(2).filter(|r| !r.is_empty());
    let resolved = if target.starts_with('#') {
        let key = World::key(target);
        ctx.world
            .channels
            .get(&key)
            .filter(|channel| channel.members.contains_key(&ctx.id))
            .map(|_| Target::Channel(key))
    } else {
        ctx.world
            .find_nick(target)
            .filter(|client| client.is_registered())
            .map(|client| Target::Private(client.id))
    };
    let Some(resolved) = resolved else {
        fail(
            ctx,
            "INVALID_TARGET",
            &[target],
            &format!("You cannot delete messages from {target}"),
        );
        return;
    };
    let serial = ctx.world.msgid_serial(msgid);
    let Some(sent) = serial
        .and_then(|serial| ctx.world.recent.get(serial))
        .filter(|sent| could_see(ctx, sent, &resolved))
        .cloned()
    else {
        fail(
            ctx,
            "UNKNOWN_MSGID",
            &[target, msgid],
            "This message does not exist or is too old",
        );
        return;
    };
    let allowed = sent.sender == ctx.id
        || matches!(&resolved, Target::Channel(key)
            if ctx.world.channels.get(key).is_some_and(|c| c.is_op(ctx.id)));
    if !allowed {
        fail(
            ctx,
            "REDACT_FORBIDDEN",
            &[target, msgid],
            "You are not authorised to delete this message",
        );
        return;
    }
    let window = ctx.world.config.limits.redact_window;
    if Instant::now().saturating_duration_since(sent.at) > window {
        fail(
            ctx,
            "REDACT_WINDOW_EXPIRED",
            &[target, msgid, &window.as_secs().to_string()],
            "You can no longer edit this message",
        );
        return;
    }
    if let Some(serial) = serial {
        ctx.world.recent.remove(serial);
    }
    // History forgets it too (queued now, in order with the appends around it).
    let forgotten = ctx.world.store.redact(msgid);
    tokio::spawn(async move {
        if let Err(error) = forgotten.await {
            tracing::warn!(%error, "cannot remove a redacted message from history");
        }
    });
    let stamp = ctx.world.stamp();
    let me = ctx.me();
    match resolved {
        Target::Channel(key) => {
            let Some(channel) = ctx.world.channels.get(&key) else {
                return;
            };
            let min_status = match sent.to {
                Recipients::Channel { min_status, .. } => min_status,
                Recipients::Client(_) => None,
            };
            let mut lines = Lines::new(me, &channel.name, msgid, reason, &stamp);
            for (id, member) in &channel.members {
                let reached = Recipients::status_admits(min_status, member.status);
                let caps = member.outbox.caps();
                if *id != ctx.id && reached && caps.has(caps::MESSAGE_REDACTION) {
                    member.outbox.push(lines.line_for(caps));
                }
            }
            me.send(lines.line_for(me.caps));
        }
        Target::Private(other) => {
            let Some(other) = ctx.world.clients.get(&other) else {
                return;
            };
            let mut lines = Lines::new(me, other.nick(), msgid, reason, &stamp);
            if other.id != ctx.id && other.caps.has(caps::MESSAGE_REDACTION) {
                other.outbox.push(lines.line_for(other.caps));
            }
            me.send(lines.line_for(me.caps));
        }
    }
}

/// Records a message the caller is relaying with the id whose serial is `serial`
/// to `recipients` (as relay resolved them).
pub(super) fn record(ctx: &mut Ctx<'_>, recipients: &Recipients, serial: u64) {
    let sent = Sent {
        sender: ctx.id,
        to: recipients.clone(),
        at: Instant::now(),
    };
    let limit = ctx.world.config.limits.redact_history;
    ctx.world.recent.record(serial, sent, limit);
}

/// Whether `sent` went to `target` and the redactor (`ctx.id`) was among those who
/// could see it.
fn could_see(ctx: &Ctx<'_>, sent: &Sent, target: &Target) -> bool {
    match (target, &sent.to) {
        (
            Target::Channel(key),
            Recipients::Channel {
                key: to,
                min_status,
            },
        ) => {
            key == to
                && (sent.sender == ctx.id
                    || min_status.is_none()
                    || ctx.world.channels.get(key).is_some_and(|c| {
                        c.status(ctx.id)
                            .is_some_and(|s| Recipients::status_admits(*min_status, s))
                    }))
        }
        (Target::Private(other), Recipients::Client(to)) => {
            (sent.sender == ctx.id && to == other) || (sent.sender == *other && *to == ctx.id)
        }
        _ => false,
    }
}

/// The REDACT line, serialised once per tag variant (message-tags, server-time).
struct Lines<'a> {
    source: &'a Client,
    target: &'a str,
    msgid: &'a str,
    reason: Option<&'a str>,
    stamp: &'a Stamp,
    cache: [Option<Bytes>; 4],
}

impl<'a> Lines<'a> {
    fn new(
        source: &'a Client,
        target: &'a str,
        msgid: &'a str,
        reason: Option<&'a str>,
        stamp: &'a Stamp,
    ) -> Self {
        Self {
            source,
            target,
            msgid,
            reason,
            stamp,
            cache: Default::default(),
        }
    }

    fn line_for(&mut self, caps: CapSet) -> Bytes {
        let tags = caps.has(caps::MESSAGE_TAGS);
        let time = caps.has(caps::SERVER_TIME);
        let variant = usize::from(tags) | usize::from(time) << 1;
        if let Some(line) = &self.cache[variant] {
            return line.clone();
        }
        let mut line = LineWriter::new();
        if time {
            line.tag("time", Some(self.stamp.time()));
        }
        if tags {
            line.tag("msgid", Some(&self.stamp.msgid));
        }
        line.source_parts(self.source.nick(), self.source.user(), &self.source.host)
            .command("REDACT")
            .param(self.target)
            .param(self.msgid);
        if let Some(reason) = self.reason {
            line.trailing(reason);
        }
        let line = line.finish();
        self.cache[variant] = Some(line.clone());
        line
    }
}

/// `FAIL REDACT <code> <params> :<text>`.
fn fail(ctx: &Ctx<'_>, code: &str, params: &[&str], text: &str) {
    ctx.world
        .standard_reply(ctx.id, "FAIL", "REDACT", code, params, text);
}
