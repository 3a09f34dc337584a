//! Writing IRC lines once, into bytes that many recipients can share.
//!
//! [`LineWriter`] appends the parts of a message in wire order into one buffer and
//! [`LineWriter::finish`] freezes it into [`Bytes`], which is cheap to clone: a
//! broadcast serialises a line once and pushes the same bytes to every queue.
//!
//! The writer enforces the wire rules itself, so callers cannot produce a broken
//! line, whatever text they pass: the last parameter gets its `:` only when it needs
//! one (empty, containing a space, or starting with `:`); an earlier parameter that
//! cannot stand in the middle is made representable (an empty one becomes `*`,
//! spaces become `_`, a leading `:` becomes `_`), so echoing a client's odd input in
//! an error reply never shifts the parameters that follow; tag values are escaped;
//! and a body longer than 510 bytes is cut at a UTF-8 character boundary.

use bytes::{BufMut, Bytes, BytesMut};

use crate::{MAX_LINE_BODY, Message};

/// A line under construction. Methods must be called in wire order:
/// tags, source, command, parameters.
#[derive(Debug)]
pub struct LineWriter {
    buf: BytesMut,
    /// Where the body (after the tag section) starts, for the length limit.
    body_start: usize,
    in_tags: bool,
    /// A trailing parameter was written; nothing may follow it.
    closed: bool,
    /// Where the most recent [`LineWriter::param`] starts, if it cannot be a middle
    /// parameter: it gets a `:` if it stays last, or is made representable otherwise.
    unsafe_last: Option<usize>,
}

impl Default for LineWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl LineWriter {
    /// An empty line with room for a typical chat message.
    pub fn new() -> Self {
        Self::with_buffer(BytesMut::with_capacity(128))
    }

    /// An empty line that writes into `buf` (cleared first), to reuse an allocation.
    pub fn with_buffer(mut buf: BytesMut) -> Self {
        buf.clear();
        Self {
            buf,
            body_start: 0,
            in_tags: false,
            closed: false,
            unsafe_last: None,
        }
    }

    /// Adds a tag; `value` is escaped. Must come before the source and command.
    pub fn tag(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        debug_assert!(self.body_start == self.buf.len() || self.in_tags);
        self.buf.put_u8(if self.in_tags { b';' } else { b'@' });
        self.in_tags = true;
        self.buf.extend_from_slice(key.as_bytes());
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            self.buf.put_u8(b'=');
            escape_tag_value_into(value, &mut self.buf);
        }
        self.body_start = self.buf.len();
        self
    }

    /// Adds an already escaped tag section (without `@`), as received from a client.
    pub fn raw_tags(&mut self, raw: &str) -> &mut Self {
        if raw.is_empty() {
            return self;
        }
        self.buf.put_u8(if self.in_tags { b';' } else { b'@' });
        self.in_tags = true;
        self.buf.extend_from_slice(raw.as_bytes());
        self.body_start = self.buf.len();
        self
    }

    fn end_tags(&mut self) {
        if self.in_tags {
            self.buf.put_u8(b' ');
            self.in_tags = false;
            self.body_start = self.buf.len();
        }
    }

    /// Adds the source (`:name`).
    pub fn source(&mut self, source: &str) -> &mut Self {
        self.end_tags();
        self.buf.put_u8(b':');
        self.buf.extend_from_slice(source.as_bytes());
        self.buf.put_u8(b' ');
        self
    }

    /// Adds a `nick!user@host` source from its parts without formatting a string first.
    pub fn source_parts(&mut self, nick: &str, user: &str, host: &str) -> &mut Self {
        self.end_tags();
        self.buf.reserve(nick.len() + user.len() + host.len() + 4);
        self.buf.put_u8(b':');
        self.buf.extend_from_slice(nick.as_bytes());
        self.buf.put_u8(b'!');
        self.buf.extend_from_slice(user.as_bytes());
        self.buf.put_u8(b'@');
        self.buf.extend_from_slice(host.as_bytes());
        self.buf.put_u8(b' ');
        self
    }

    /// Adds the command or numeric.
    pub fn command(&mut self, command: &str) -> &mut Self {
        self.end_tags();
        self.buf.extend_from_slice(command.as_bytes());
        self
    }

    /// Adds a parameter. If it turns out to be the last one, it is written as the
    /// trailing parameter when it needs to be; otherwise it is made representable.
    pub fn param(&mut self, param: &str) -> &mut Self {
        debug_assert!(!self.closed, "parameter after the trailing one");
        self.settle_last();
        self.buf.reserve(param.len() + 2);
        self.buf.put_u8(b' ');
        if !is_middle_param(param) {
            self.unsafe_last = Some(self.buf.len());
        }
        self.buf.extend_from_slice(param.as_bytes());
        self
    }

    /// Adds the trailing parameter, always with its `:` (for free text such as messages).
    pub fn trailing(&mut self, param: &str) -> &mut Self {
        debug_assert!(!self.closed, "two trailing parameters");
        self.settle_last();
        self.closed = true;
        self.buf.reserve(param.len() + 4);
        self.buf.extend_from_slice(b" :");
        self.buf.extend_from_slice(param.as_bytes());
        self
    }

    /// A parameter is following the last one: make the last one a valid middle one.
    fn settle_last(&mut self) {
        let Some(start) = self.unsafe_last.take() else {
            return;
        };
        if start == self.buf.len() {
            self.buf.put_u8(b'*');
            return;
        }
        if self.buf[start] == b':' {
            self.buf[start] = b'_';
        }
        for byte in &mut self.buf[start..] {
            if *byte == b' ' {
                *byte = b'_';
            }
        }
    }

    /// Bytes written so far, without the CRLF (and without the `:` that a last
    /// parameter needing one gets from [`LineWriter::finish`]).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Cuts an overlong body, appends CRLF and returns the shareable line.
    pub fn finish(mut self) -> Bytes {
        if let Some(start) = self.unsafe_last.take() {
            // The unsafe parameter stayed last: it becomes the trailing one.
            let tail = self.buf.split_off(start);
            self.buf.put_u8(b':');
            self.buf.unsplit(tail);
        }
        let limit = self.body_start + MAX_LINE_BODY - 2;
        if self.buf.len() > limit {
            let mut cut = limit;
            // Back up over UTF-8 continuation bytes so the cut stays valid UTF-8.
            while cut > self.body_start && (self.buf[cut] & 0xC0) == 0x80 {
                cut -= 1;
            }
            self.buf.truncate(cut);
        }
        self.buf.extend_from_slice(b"\r\n");
        self.buf.freeze()
    }
}

/// Whether `param` can be sent as a middle parameter (not empty, no space, no leading `:`).
pub fn is_middle_param(param: &str) -> bool {
    !param.is_empty() && !param.starts_with(':') && !param.contains(' ')
}

/// Appends `value` with IRCv3 tag escaping applied.
pub fn escape_tag_value_into(value: &str, out: &mut BytesMut) {
    if !value
        .bytes()
        .any(|b| matches!(b, b';' | b' ' | b'\\' | b'\r' | b'\n'))
    {
        out.extend_from_slice(value.as_bytes());
        return;
    }
    for &byte in value.as_bytes() {
        match byte {
            b';' => out.extend_from_slice(b"\\:"),
            b' ' => out.extend_from_slice(b"\\s"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\n' => out.extend_from_slice(b"\\n"),
            other => out.put_u8(other),
        }
    }
}

/// Serialises a message, tags re-escaped, with CRLF.
pub fn write_message(msg: &Message<'_>) -> Bytes {
    let mut line = LineWriter::new();
    for (key, value) in msg.tags() {
        line.tag(key, Some(&value));
    }
    if let Some(source) = msg.source() {
        line.source(source);
    }
    line.command(msg.command());
    let params = msg.params();
    if let Some((last, middle)) = params.split_last() {
        for param in middle {
            line.param(param);
        }
        line.param(last);
    }
    line.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_in_wire_order_with_escaped_tags() {
        let mut line = LineWriter::new();
        line.tag("time", Some("2026-01-01T00:00:00.000Z"))
            .tag("+x", Some("a b;c\\"))
            .tag("flag", None)
            .source_parts("nick", "user", "host")
            .command("PRIVMSG")
            .param("#chan")
            .trailing("hello world");
        assert_eq!(
            &line.finish()[..],
            b"@time=2026-01-01T00:00:00.000Z;+x=a\\sb\\:c\\\\;flag :nick!user@host PRIVMSG #chan :hello world\r\n"
        );
    }

    #[test]
    fn a_last_param_that_cannot_be_middle_becomes_trailing() {
        let mut line = LineWriter::new();
        line.command("TOPIC").param("#c").param("");
        assert_eq!(&line.finish()[..], b"TOPIC #c :\r\n");
        let mut line = LineWriter::new();
        line.command("X").param("a b");
        assert_eq!(&line.finish()[..], b"X :a b\r\n");
    }

    #[test]
    fn an_earlier_param_that_cannot_be_middle_is_made_representable() {
        let mut line = LineWriter::new();
        line.command("401")
            .param("")
            .param("a b")
            .param(":x")
            .trailing("No such nick");
        assert_eq!(&line.finish()[..], b"401 * a_b _x :No such nick\r\n");
    }

    #[test]
    fn overlong_bodies_are_cut_on_a_character_boundary() {
        let mut line = LineWriter::new();
        line.tag("a", Some("b"))
            .command("PRIVMSG")
            .param("#c")
            .trailing(&"é".repeat(400));
        let bytes = line.finish();
        let text = std::str::from_utf8(&bytes).expect("still UTF-8");
        let body = text.split_once(' ').map(|(_, body)| body).unwrap_or(text);
        assert!(body.len() <= MAX_LINE_BODY);
        assert!(text.ends_with("é\r\n"));
    }
}
