//! A zero-copy IRC message parser.
//!
//! [`Message::parse`] borrows every part of the message from the line: the raw tag
//! section (unescaped lazily by [`Tags`]), the source, the command and up to
//! [`MAX_PARAMS`] parameters. Parsing never allocates.
//!
//! Spacing follows RFC 1459, which modern.ircdocs.horse and the ircdocs parser tests
//! also follow: one or more spaces separate the parts. After fourteen middle
//! parameters the rest of the line is the fifteenth, as RFC 2812 specifies, so no
//! line is rejected for having too many parameters.

use std::borrow::Cow;
use std::fmt;

use crate::MAX_PARAMS;

/// Why a line is not an IRC message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Nothing but spaces (or nothing at all).
    #[error("empty message")]
    Empty,
    /// Tags or a source, but no command after them.
    #[error("message has no command")]
    NoCommand,
}

/// One parsed IRC message, borrowing from its line.
#[derive(Clone, PartialEq, Eq)]
pub struct Message<'a> {
    tags: Option<&'a str>,
    source: Option<&'a str>,
    command: &'a str,
    params: [&'a str; MAX_PARAMS],
    param_count: usize,
}

impl<'a> Message<'a> {
    /// Parses one line (without its CR/LF terminator).
    pub fn parse(line: &'a str) -> Result<Self, ParseError> {
        let mut rest = line.trim_start_matches(' ');
        if rest.is_empty() {
            return Err(ParseError::Empty);
        }
        let mut tags = None;
        if let Some(after_at) = rest.strip_prefix('@') {
            let (raw, tail) = split_word(after_at);
            tags = Some(raw);
            rest = tail;
        }
        let mut source = None;
        if let Some(after_colon) = rest.strip_prefix(':') {
            let (raw, tail) = split_word(after_colon);
            source = Some(raw);
            rest = tail;
        }
        let (command, mut rest) = split_word(rest);
        if command.is_empty() {
            return Err(ParseError::NoCommand);
        }
        let mut params = [""; MAX_PARAMS];
        let mut param_count = 0;
        while !rest.is_empty() {
            if let Some(trailing) = rest.strip_prefix(':') {
                params[param_count] = trailing;
                param_count += 1;
                break;
            }
            if param_count == MAX_PARAMS - 1 {
                params[param_count] = rest;
                param_count += 1;
                break;
            }
            let (word, tail) = split_word(rest);
            params[param_count] = word;
            param_count += 1;
            rest = tail;
        }
        Ok(Self {
            tags,
            source,
            command,
            params,
            param_count,
        })
    }

    /// Builds a message from parts, for tests and for re-serialising.
    ///
    /// Extra parameters beyond [`MAX_PARAMS`] are dropped.
    pub fn from_parts(
        tags: Option<&'a str>,
        source: Option<&'a str>,
        command: &'a str,
        params: &[&'a str],
    ) -> Self {
        let mut array = [""; MAX_PARAMS];
        let param_count = params.len().min(MAX_PARAMS);
        array[..param_count].copy_from_slice(&params[..param_count]);
        Self {
            tags,
            source,
            command,
            params: array,
            param_count,
        }
    }

    /// The raw tag section, without `@`, still escaped.
    pub fn raw_tags(&self) -> Option<&'a str> {
        self.tags
    }

    /// The tags, unescaped one at a time as they are iterated.
    pub fn tags(&self) -> Tags<'a> {
        Tags {
            rest: self.tags.unwrap_or(""),
        }
    }

    /// The value of the tag `key`, if present (the last one wins when repeated).
    pub fn tag(&self, key: &str) -> Option<Cow<'a, str>> {
        self.tags()
            .filter(|(k, _)| *k == key)
            .last()
            .map(|(_, v)| v)
    }

    /// The source (prefix) without its leading `:`.
    pub fn source(&self) -> Option<&'a str> {
        self.source
    }

    /// The command or numeric, exactly as sent (commands are case-insensitive:
    /// compare with `eq_ignore_ascii_case`).
    pub fn command(&self) -> &'a str {
        self.command
    }

    /// All parameters, the trailing one included, without its `:`.
    pub fn params(&self) -> &[&'a str] {
        &self.params[..self.param_count]
    }

    /// Parameter `index`, if present.
    pub fn param(&self, index: usize) -> Option<&'a str> {
        self.params().get(index).copied()
    }
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("tags", &self.tags)
            .field("source", &self.source)
            .field("command", &self.command)
            .field("params", &self.params())
            .finish()
    }
}

/// Splits off the first space-delimited word and skips the spaces after it.
fn split_word(s: &str) -> (&str, &str) {
    match s.find(' ') {
        Some(end) => (&s[..end], s[end..].trim_start_matches(' ')),
        None => (s, ""),
    }
}

/// Iterator over `(key, value)` tag pairs; a tag without a value yields `""`, and an
/// item without a key (`=value`) is skipped.
#[derive(Debug, Clone)]
pub struct Tags<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Tags<'a> {
    type Item = (&'a str, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (item, tail) = match self.rest.find(';') {
                Some(end) => (&self.rest[..end], &self.rest[end + 1..]),
                None => (self.rest, ""),
            };
            self.rest = tail;
            let (key, value) = match item.split_once('=') {
                Some((key, value)) => (key, unescape_tag_value(value)),
                None => (item, Cow::Borrowed("")),
            };
            // A tag needs a name: `;;` and `=value` are skipped, not nameless tags.
            if key.is_empty() {
                continue;
            }
            return Some((key, value));
        }
    }
}

/// Undoes IRCv3 tag-value escaping; borrows when there is nothing to undo.
pub fn unescape_tag_value(value: &str) -> Cow<'_, str> {
    if !value.contains('\\') {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            // A lone trailing backslash is dropped, as the spec says.
            None => {}
        }
    }
    Cow::Owned(out)
}

/// A source split into its parts: `nick!user@host`, any part but the first optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source<'a> {
    /// The nickname or server name.
    pub nick: &'a str,
    /// The username (ident), after `!`.
    pub user: Option<&'a str>,
    /// The hostname, after `@`.
    pub host: Option<&'a str>,
}

impl<'a> Source<'a> {
    /// Splits `nick!user@host`; never fails, since a bare server name is a source too.
    pub fn split(source: &'a str) -> Self {
        let (rest, host) = match source.split_once('@') {
            Some((rest, host)) => (rest, Some(host)),
            None => (source, None),
        };
        let (nick, user) = match rest.split_once('!') {
            Some((nick, user)) => (nick, Some(user)),
            None => (rest, None),
        };
        Self { nick, user, host }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifteenth_param_takes_the_rest_of_the_line() {
        let line = "CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 :17";
        let msg = Message::parse(line).expect("parses");
        assert_eq!(msg.params().len(), MAX_PARAMS);
        assert_eq!(msg.param(14), Some("15 16 :17"));
    }

    #[test]
    fn rejects_lines_without_a_command() {
        assert_eq!(Message::parse("   "), Err(ParseError::Empty));
        assert_eq!(Message::parse("@a=b"), Err(ParseError::NoCommand));
        assert_eq!(Message::parse(":src"), Err(ParseError::NoCommand));
        assert_eq!(Message::parse("@a :src  "), Err(ParseError::NoCommand));
    }

    #[test]
    fn tag_lookup_unescapes_and_last_wins() {
        let msg = Message::parse(r"@a=1;b=x\sy;a=2 PING").expect("parses");
        assert_eq!(msg.tag("a").as_deref(), Some("2"));
        assert_eq!(msg.tag("b").as_deref(), Some("x y"));
        assert_eq!(msg.tag("c"), None);
    }
}
