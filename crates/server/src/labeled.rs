//! `labeled-response`: tying a command's replies to the label the client put on it.
//!
//! While a labeled command runs (with the world locked, so nothing else can write to
//! this client), the client's outbox collects its replies instead of queueing them.
//! Afterwards [`deliver`] queues them labeled: no reply becomes an `ACK`, one reply
//! carries the `label` tag itself, several are wrapped in a `labeled-response` batch.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use palaver_proto::writer::escape_tag_value_into;
use palaver_proto::{LineWriter, Message};

use crate::caps::{self, CapSet};
use crate::outbox::Outbox;
use crate::world::{ClientId, World};

/// Longest label we honour; longer ones are ignored, as if absent.
const MAX_LABEL_LEN: usize = 64;

/// The label of `msg`, if the client negotiated labeled-response and sent a usable one.
pub(crate) fn label_of<'m>(msg: &Message<'m>, caps: CapSet) -> Option<Cow<'m, str>> {
    if !caps.has(caps::LABELED_RESPONSE) {
        return None;
    }
    msg.tag("label")
        .filter(|label| !label.is_empty() && label.len() <= MAX_LABEL_LEN)
}

/// A labeled command whose replies continue after deferred work (see
/// `handlers::deferred`): the label, and the replies captured so far.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) label: String,
    pub(crate) replies: Vec<Bytes>,
}

/// Queues the captured `lines` for client `id`, labeled with `label`.
pub(crate) fn deliver(world: &mut World, id: ClientId, label: &str, lines: Vec<Bytes>) {
    let Some(outbox) = world
        .clients
        .get(&id)
        .map(|c| std::sync::Arc::clone(&c.outbox))
    else {
        return;
    };
    let server = world.config.server_name.clone();
    match lines.as_slice() {
        [] => {
            let mut ack = LineWriter::new();
            ack.tag("label", Some(label)).source(&server).command("ACK");
            outbox.push(ack.finish());
        }
        [line] => outbox.push(with_tag(line, "label", label)),
        _ => {
            let reference = open_batch(world, &outbox, label);
            push_in_batch(&outbox, &reference, lines);
            close_batch(world, &outbox, &reference);
        }
    }
}

/// Opens a `labeled-response` batch for `label` on `outbox`; returns its reference.
/// A reply sent a page at a time (`handlers::paged`) opens it with its first page.
pub(crate) fn open_batch(world: &mut World, outbox: &Outbox, label: &str) -> String {
    let reference = world.next_id_string();
    let mut start = LineWriter::new();
    start
        .tag("label", Some(label))
        .source(&world.config.server_name)
        .command("BATCH")
        .param(&format!("+{reference}"))
        .param("labeled-response");
    outbox.push(start.finish());
    reference
}

/// Queues reply `lines` inside the batch `reference`.
pub(crate) fn push_in_batch(outbox: &Outbox, reference: &str, lines: Vec<Bytes>) {
    for line in lines {
        // A line inside a nested batch (e.g. `metadata`) keeps its own batch
        // tag; that batch's BATCH lines carry the outer one.
        if in_batch(&line) {
            outbox.push(line);
        } else {
            outbox.push(with_tag(&line, "batch", reference));
        }
    }
}

/// Closes the batch `reference`.
pub(crate) fn close_batch(world: &World, outbox: &Outbox, reference: &str) {
    let mut end = LineWriter::new();
    end.source(&world.config.server_name)
        .command("BATCH")
        .param(&format!("-{reference}"));
    outbox.push(end.finish());
}

/// Whether an already serialised line carries a `batch` tag.
fn in_batch(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"@") else {
        return false;
    };
    let tags = rest.split(|b| *b == b' ').next().unwrap_or_default();
    tags.split(|b| *b == b';')
        .any(|tag| tag == b"batch" || tag.starts_with(b"batch="))
}

/// Adds one tag in front of an already serialised line's tags.
fn with_tag(line: &[u8], key: &str, value: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(line.len() + key.len() + value.len() + 3);
    out.put_u8(b'@');
    out.extend_from_slice(key.as_bytes());
    out.put_u8(b'=');
    escape_tag_value_into(value, &mut out);
    match line.strip_prefix(b"@") {
        Some(rest) => {
            out.put_u8(b';');
            out.extend_from_slice(rest);
        }
        None => {
            out.put_u8(b' ');
            out.extend_from_slice(line);
        }
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::with_tag;

    #[test]
    fn tags_are_prepended_to_existing_ones_or_added() {
        assert_eq!(
            &with_tag(b":s 001 a :hi\r\n", "label", "x y")[..],
            b"@label=x\\sy :s 001 a :hi\r\n"
        );
        assert_eq!(
            &with_tag(b"@time=t :a PRIVMSG b :c\r\n", "batch", "1")[..],
            b"@batch=1;time=t :a PRIVMSG b :c\r\n"
        );
    }
}
