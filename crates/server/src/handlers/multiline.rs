//! IRCv3 `draft/multiline`: a message of several lines, sent and relayed as one batch.
//!
//! A client opens `BATCH +<ref> draft/multiline <target>`, sends PRIVMSG (or NOTICE)
//! lines tagged `batch=<ref>` (a `draft/multiline-concat` tag joins a line to the one
//! before it without a line break), and closes with `BATCH -<ref>`. Nothing is relayed
//! until the batch closes; then recipients with the capability get the batch as sent,
//! with one `msgid` and `time` on the batch, and the others get each non-blank line as
//! an ordinary message (the first carrying the msgid). The batch is bounded by
//! `Limits::multiline_max_bytes` and `multiline_max_lines`, announced in the CAP value;
//! any violation drops the batch with `FAIL BATCH <code>`.

use std::collections::HashMap;

use bytes::Bytes;
use palaver_proto::{LineWriter, Message};

use super::Ctx;
use super::messaging;
use crate::caps::{self, CapSet};
use crate::history::{self, Recorded};
use crate::relay::{Kind, Relay, Stamp};
use crate::world::OpenBatch;
use palaver_store::MessageKind;

/// The batch type this module implements.
const BATCH_TYPE: &str = "draft/multiline";
/// The tag that joins a line to the previous one.
const CONCAT_TAG: &str = "draft/multiline-concat";

/// `BATCH +<ref> draft/multiline <target>` and `BATCH -<ref>`.
pub(super) fn batch(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let Some(reference) = msg.param(0) else {
        ctx.need_more_params("BATCH");
        return;
    };
    if let Some(reference) = reference.strip_prefix('+') {
        let (Some(BATCH_TYPE), Some(target)) = (msg.param(1), msg.param(2)) else {
            fail(
                ctx,
                "MULTILINE_INVALID",
                "Only draft/multiline batches with a target can be sent",
            );
            return;
        };
        if !ctx.me().caps.has(caps::MULTILINE) || reference.is_empty() {
            fail(
                ctx,
                "MULTILINE_INVALID",
                "Negotiate draft/multiline and name the batch",
            );
            return;
        }
        if ctx.me().multiline.is_some() {
            ctx.me_mut().multiline = None;
            fail(
                ctx,
                "MULTILINE_INVALID",
                "A multiline batch was already open; both are dropped",
            );
            return;
        }
        let client_tags = messaging::sender_client_tags(ctx, msg);
        let label = ctx.label.take();
        ctx.me_mut().multiline = Some(Box::new(OpenBatch {
            reference: reference.to_owned(),
            target: target.to_owned(),
            kind: None,
            client_tags,
            label,
            lines: Vec::new(),
            bytes: 0,
        }));
    } else if let Some(reference) = reference.strip_prefix('-') {
        match ctx.me_mut().multiline.take() {
            Some(open) if open.reference == reference => deliver(ctx, *open),
            _ => fail(ctx, "MULTILINE_INVALID", "No such multiline batch is open"),
        }
    } else {
        fail(
            ctx,
            "MULTILINE_INVALID",
            "Batch references start with + or -",
        );
    }
}

/// A PRIVMSG/NOTICE/TAGMSG carrying a `batch` tag while a batch is open.
pub(super) fn add_line(ctx: &mut Ctx<'_>, msg: &Message<'_>, kind: Kind) {
    let Some(mut open) = ctx.me_mut().multiline.take() else {
        return;
    };
    let limits = &ctx.world.config.limits;
    let text = msg.param(1).unwrap_or_default();
    let concat = msg.tag(CONCAT_TAG).is_some();
    let problem = if msg.tag("batch").as_deref() != Some(open.reference.as_str()) {
        Some((
            "MULTILINE_INVALID",
            "Line does not belong to the open batch",
        ))
    } else if msg.param(0) != Some(open.target.as_str()) {
        Some((
            "MULTILINE_INVALID_TARGET",
            "All lines of a batch go to its target",
        ))
    } else if kind == Kind::Tagmsg || open.kind.is_some_and(|k| k != kind) {
        Some((
            "MULTILINE_INVALID",
            "A batch holds PRIVMSG or NOTICE lines, not both",
        ))
    } else if concat && text.is_empty() {
        Some(("MULTILINE_INVALID", "A blank line cannot be concatenated"))
    } else if open.lines.len() >= limits.multiline_max_lines {
        Some(("MULTILINE_MAX_LINES", "Too many lines in the batch"))
    } else if open.bytes + text.len() > limits.multiline_max_bytes {
        Some(("MULTILINE_MAX_BYTES", "Too many bytes in the batch"))
    } else {
        None
    };
    if let Some((code, text)) = problem {
        fail(ctx, code, text);
        return;
    }
    open.kind = Some(kind);
    open.bytes += text.len();
    open.lines.push((text.to_owned(), concat));
    ctx.me_mut().multiline = Some(open);
}

/// Relays a closed batch.
fn deliver(ctx: &mut Ctx<'_>, open: OpenBatch) {
    if open.lines.iter().all(|(text, _)| text.is_empty()) {
        fail(ctx, "MULTILINE_INVALID", "The batch has no text");
        return;
    }
    let kind = open.kind.unwrap_or(Kind::Privmsg);
    let Some(delivery) = messaging::resolve(ctx, &open.target, kind, None) else {
        return;
    };
    ctx.me_mut().last_spoke = crate::world::unix_now();
    let stamp = ctx.world.stamp();
    // History keeps the batch as one message; every copy waits for its commit.
    let seq = match keep(ctx, &delivery, kind, &open, &stamp) {
        Recorded::NotKept => 0,
        Recorded::Kept(seq) => {
            ctx.world.counters.history_written += 1;
            ctx.world.metrics.appended(seq);
            seq
        }
        Recorded::Refused => {
            fail(
                ctx,
                "TEMPORARILY_UNAVAILABLE",
                "The history store is overloaded; the message was not sent, try again",
            );
            return;
        }
    };
    // draft/message-redaction: the batch's msgid stands for the whole message.
    super::redact::record(ctx, &delivery.recipients, stamp.serial);
    let reference = ctx.world.next_id_string();
    let me = ctx.me();
    let message = Batch {
        source: (me.nick(), me.user(), &me.host),
        command: kind.command(),
        target: &delivery.target,
        open: &open,
        stamp: &stamp,
        continuation: stamp.continuation(),
        reference: &reference,
        bot: me.bot,
        account: me.account.as_deref(),
    };
    let mut batched: HashMap<CapSet, Vec<Bytes>> = HashMap::new();
    let mut fallback = message.fallback_relays();
    let mut delivered = 0;
    delivery.for_each(ctx, |recipient| {
        delivered += 1;
        let caps = recipient.caps();
        if caps.has(caps::MULTILINE) && caps.has(caps::BATCH) {
            let lines = batched
                .entry(variant(caps))
                .or_insert_with(|| message.lines(caps, None));
            for line in lines.iter() {
                recipient.push_delivery_held(line.clone(), seq);
            }
        } else {
            for relay in &mut fallback {
                recipient.push_delivery_held(relay.line_for(caps), seq);
            }
        }
    });
    let caps = me.caps;
    if caps.has(caps::ECHO_MESSAGE) {
        for line in message.lines(caps, open.label.as_deref()) {
            me.outbox.push_held(line, seq);
        }
    } else if let Some(label) = &open.label {
        let mut ack = LineWriter::new();
        ack.tag("label", Some(label))
            .source(&ctx.world.config.server_name)
            .command("ACK");
        me.send(ack.finish());
    }
    // Counted once per message, not per copy (see `metrics`).
    ctx.world.counters.messages += 1;
    ctx.world.counters.deliveries += delivered;
}

/// Offers a closed batch to history as one message (see `crate::history`).
fn keep(
    ctx: &Ctx<'_>,
    delivery: &messaging::Delivery,
    kind: Kind,
    open: &OpenBatch,
    stamp: &Stamp,
) -> Recorded {
    let kind = match kind {
        Kind::Notice => MessageKind::MultilineNotice,
        Kind::Privmsg | Kind::Tagmsg => MessageKind::MultilinePrivmsg,
    };
    history::record(
        ctx.world,
        ctx.me(),
        history::Offered {
            kind,
            recipients: &delivery.recipients,
            text: &history::encode_multiline(&open.lines),
            client_tags: &open.client_tags,
            stamp,
        },
    )
}

/// The capabilities that change how a batch looks to a recipient.
fn variant(caps: CapSet) -> CapSet {
    let mut relevant = CapSet::default();
    relevant.set(caps::MESSAGE_TAGS, caps.has(caps::MESSAGE_TAGS));
    relevant.set(caps::SERVER_TIME, caps.has(caps::SERVER_TIME));
    relevant.set(caps::ACCOUNT_TAG, caps.has(caps::ACCOUNT_TAG));
    relevant
}

/// A closed batch on its way out.
struct Batch<'a> {
    source: (&'a str, &'a str, &'a str),
    command: &'a str,
    target: &'a str,
    open: &'a OpenBatch,
    stamp: &'a Stamp,
    /// The stamp of the fallback lines after the first: same time, no msgid.
    continuation: Stamp,
    reference: &'a str,
    bot: bool,
    /// The sender's account, for `account-tag` recipients.
    account: Option<&'a str>,
}

impl Batch<'_> {
    /// The batch as a multiline-capable recipient with `caps` sees it.
    fn lines(&self, caps: CapSet, label: Option<&str>) -> Vec<Bytes> {
        let (nick, user, host) = self.source;
        let tags = caps.has(caps::MESSAGE_TAGS);
        let mut start = LineWriter::new();
        if let Some(label) = label {
            start.tag("label", Some(label));
        }
        if caps.has(caps::SERVER_TIME) {
            start.tag("time", Some(self.stamp.time()));
        }
        if let Some(account) = self.account.filter(|_| caps.has(caps::ACCOUNT_TAG)) {
            start.tag("account", Some(account));
        }
        if tags {
            start.tag("msgid", Some(&self.stamp.msgid));
            if self.bot {
                start.tag("bot", None);
            }
            start.raw_tags(&self.open.client_tags);
        }
        start
            .source_parts(nick, user, host)
            .command("BATCH")
            .param(&format!("+{}", self.reference))
            .param(BATCH_TYPE)
            .param(self.target);
        let mut lines = Vec::with_capacity(self.open.lines.len() + 2);
        lines.push(start.finish());
        for (text, concat) in &self.open.lines {
            let mut line = LineWriter::new();
            line.tag("batch", Some(self.reference));
            if *concat {
                line.tag(CONCAT_TAG, None);
            }
            line.source_parts(nick, user, host)
                .command(self.command)
                .param(self.target)
                .trailing(text);
            lines.push(line.finish());
        }
        let mut end = LineWriter::new();
        end.source_parts(nick, user, host)
            .command("BATCH")
            .param(&format!("-{}", self.reference));
        lines.push(end.finish());
        lines
    }

    /// One relay per non-blank line for recipients without multiline; only the first
    /// carries the msgid, all carry the time and the client tags.
    fn fallback_relays(&self) -> Vec<Relay<'_>> {
        self.open
            .lines
            .iter()
            .filter(|(text, _)| !text.is_empty())
            .enumerate()
            .map(|(index, (text, _))| {
                Relay::new(
                    self.source,
                    self.command,
                    self.target,
                    Some(text),
                    &self.open.client_tags,
                    self.bot,
                    if index == 0 {
                        self.stamp
                    } else {
                        &self.continuation
                    },
                )
                .with_account(self.account)
            })
            .collect()
    }
}

fn fail(ctx: &Ctx<'_>, code: &str, text: &str) {
    ctx.world
        .standard_reply(ctx.id, "FAIL", "BATCH", code, &[], text);
}
