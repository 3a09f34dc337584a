//! Formatting a relayed message (PRIVMSG, NOTICE, TAGMSG) once per capability variant,
//! and the two variants of an event line (with and without `account`).
//!
//! Recipients differ in how they want a message: with IRCv3 `message-tags` it carries
//! the sender's client-only tags and a `msgid`; with `server-time` a `time` tag;
//! with `account-tag` the sender's `account` (if it is logged in); without any of
//! them, no tags at all. A [`Relay`] serialises each variant the first time
//! a recipient needs it and hands every later recipient of that variant the same
//! shared bytes, so a channel of any size costs at most [`VARIANTS`] serialisations.

use bytes::Bytes;
use palaver_proto::LineWriter;

use crate::caps::{self, CapSet};

/// Distinct line formats: bit 0 = message-tags, bit 1 = server-time, bit 2 =
/// account-tag (used only when the sender is logged in, so a message from someone
/// who is not still has at most four).
const VARIANTS: usize = 8;

/// The format of `server-time` tags: RFC 3339 in UTC with milliseconds.
pub(crate) const SERVER_TIME_FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
);

/// The three relayed commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Privmsg,
    Notice,
    Tagmsg,
}

impl Kind {
    pub(crate) fn command(self) -> &'static str {
        match self {
            Self::Privmsg => "PRIVMSG",
            Self::Notice => "NOTICE",
            Self::Tagmsg => "TAGMSG",
        }
    }

    /// NOTICE is never answered with an error.
    pub(crate) fn errors(self) -> bool {
        self != Self::Notice
    }

    /// Whether a recipient with `caps` can receive this kind at all.
    pub(crate) fn reaches(self, caps: caps::CapSet) -> bool {
        self != Self::Tagmsg || caps.has(caps::MESSAGE_TAGS)
    }
}

/// Identity and timing of one message, shared by all of its variants.
#[derive(Debug, Clone)]
pub(crate) struct Stamp {
    /// `msgid` tag value, unique for the life of the server.
    pub(crate) msgid: String,
    /// The serial number inside `msgid` (0 for a continuation line).
    pub(crate) serial: u64,
    /// When the server took the message.
    at: time::OffsetDateTime,
    /// `time` tag value, formatted the first time a recipient needs it: most
    /// messages reach nobody with `server-time`, and formatting is a tenth of the
    /// cost of relaying to a small channel.
    time: std::cell::OnceCell<String>,
}

impl Stamp {
    /// A message taken now, identified by `msgid` (whose serial number is `serial`).
    pub(crate) fn now(msgid: String, serial: u64) -> Self {
        Self {
            msgid,
            serial,
            at: time::OffsetDateTime::now_utc(),
            time: std::cell::OnceCell::new(),
        }
    }

    /// A message another node took at `millis` (milliseconds since the Unix
    /// epoch, all that the `time` tag shows), identified by `msgid`.
    pub(crate) fn at_millis(msgid: String, millis: i64) -> Self {
        Self {
            msgid,
            serial: 0,
            at: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            time: std::cell::OnceCell::new(),
        }
    }

    /// The stamp of a continuation line of the same message: same time, no msgid.
    pub(crate) fn continuation(&self) -> Self {
        Self {
            msgid: String::new(),
            serial: 0,
            at: self.at,
            time: self.time.clone(),
        }
    }

    /// When the message was taken, in whole milliseconds since the Unix epoch: what
    /// history stores, and exactly what the `time` tag shows (which has three
    /// decimals, truncated).
    pub(crate) fn millis(&self) -> i64 {
        palaver_store::Timestamp::from(self.at).millis()
    }

    /// The `time` tag value.
    pub(crate) fn time(&self) -> &str {
        self.time
            .get_or_init(|| self.at.format(SERVER_TIME_FORMAT).unwrap_or_default())
    }
}

/// One message on its way to many recipients.
#[derive(Debug)]
pub(crate) struct Relay<'a> {
    source: (&'a str, &'a str, &'a str),
    command: &'a str,
    target: &'a str,
    text: Option<&'a str>,
    /// The sender's client-only tags (`+key=value;...`), still escaped.
    client_tags: &'a str,
    /// The sender set bot mode (`+B`): message-tags recipients get a `bot` tag.
    bot: bool,
    /// The sender's account, for `account-tag` recipients.
    account: Option<&'a str>,
    stamp: &'a Stamp,
    lines: [Option<Bytes>; VARIANTS],
}

impl<'a> Relay<'a> {
    /// A message from `nick!user@host`.
    pub(crate) fn new(
        source: (&'a str, &'a str, &'a str),
        command: &'a str,
        target: &'a str,
        text: Option<&'a str>,
        client_tags: &'a str,
        bot: bool,
        stamp: &'a Stamp,
    ) -> Self {
        Self {
            source,
            command,
            target,
            text,
            client_tags,
            bot,
            account: None,
            stamp,
            lines: Default::default(),
        }
    }

    /// The sender is logged in to `account` (`account-tag`). A separate step rather
    /// than a parameter of [`Relay::new`], so callers that relay for no account stay
    /// as they are.
    pub(crate) fn with_account(mut self, account: Option<&'a str>) -> Self {
        self.account = account;
        self
    }

    /// The line for a recipient with `caps`, serialised on first use.
    pub(crate) fn line_for(&mut self, caps: CapSet) -> Bytes {
        let tags = caps.has(caps::MESSAGE_TAGS);
        let time = caps.has(caps::SERVER_TIME);
        let account = self.account.filter(|_| caps.has(caps::ACCOUNT_TAG));
        let variant =
            usize::from(tags) | usize::from(time) << 1 | usize::from(account.is_some()) << 2;
        if let Some(line) = &self.lines[variant] {
            return line.clone();
        }
        let mut line = LineWriter::new();
        if time {
            line.tag("time", Some(self.stamp.time()));
        }
        if let Some(account) = account {
            line.tag("account", Some(account));
        }
        if tags {
            // An empty msgid marks a continuation line that carries none.
            if !self.stamp.msgid.is_empty() {
                line.tag("msgid", Some(&self.stamp.msgid));
            }
            if self.bot {
                line.tag("bot", None);
            }
            line.raw_tags(self.client_tags);
        }
        let (nick, user, host) = self.source;
        line.source_parts(nick, user, host)
            .command(self.command)
            .param(self.target);
        if let Some(text) = self.text {
            line.trailing(text);
        }
        let line = line.finish();
        self.lines[variant] = Some(line.clone());
        line
    }
}

/// A line a user's command makes the server send to others (JOIN, PART, KICK, QUIT,
/// NICK, MODE, TOPIC, AWAY, SETNAME), with the tags each recipient asked for:
/// `time` (server-time), `msgid` (message-tags, when the event is kept in history,
/// so that a client can match the live line with its history copy) and `account`
/// (account-tag asks for it on every command a user sends, not only on messages).
/// Each of the at most eight variants is serialised once, when a recipient first
/// needs it; PRIVMSG and NOTICE keep their own path ([`Relay`]).
#[derive(Debug, Clone)]
pub(crate) struct EventLine {
    /// The untagged line, with CRLF.
    plain: Bytes,
    account: Option<String>,
    /// When the event happened and, if it was recorded, its msgid (else empty).
    stamp: Stamp,
    variants: [std::cell::OnceCell<Bytes>; 8],
}

impl EventLine {
    /// `line` (untagged, with CRLF) sent now by someone logged in to `account`, if
    /// any.
    pub(crate) fn new(line: Bytes, account: Option<&str>) -> Self {
        Self::stamped(line, account, None)
    }

    /// The same, for an event recorded in history with `stamp`: recipients see the
    /// recorded time and msgid. `None` stamps it now, without a msgid.
    pub(crate) fn stamped(line: Bytes, account: Option<&str>, stamp: Option<Stamp>) -> Self {
        debug_assert!(!line.starts_with(b"@"), "an event line is built untagged");
        Self {
            plain: line,
            account: account.map(str::to_owned),
            stamp: stamp.unwrap_or_else(|| Stamp::now(String::new(), 0)),
            variants: Default::default(),
        }
    }

    /// The line for a recipient with `caps`.
    pub(crate) fn line_for(&self, caps: CapSet) -> Bytes {
        let time = caps.has(caps::SERVER_TIME);
        let msgid = caps.has(caps::MESSAGE_TAGS) && !self.stamp.msgid.is_empty();
        let account = caps.has(caps::ACCOUNT_TAG) && self.account.is_some();
        let variant = usize::from(time) | usize::from(msgid) << 1 | usize::from(account) << 2;
        if variant == 0 {
            return self.plain.clone();
        }
        self.variants[variant]
            .get_or_init(|| {
                let mut out = bytes::BytesMut::with_capacity(self.plain.len() + 96);
                let mut separator = b'@';
                if time {
                    out.extend_from_slice(&[separator]);
                    out.extend_from_slice(b"time=");
                    out.extend_from_slice(self.stamp.time().as_bytes());
                    separator = b';';
                }
                if msgid {
                    out.extend_from_slice(&[separator]);
                    out.extend_from_slice(b"msgid=");
                    out.extend_from_slice(self.stamp.msgid.as_bytes());
                    separator = b';';
                }
                if let (true, Some(name)) = (account, &self.account) {
                    out.extend_from_slice(&[separator]);
                    out.extend_from_slice(b"account=");
                    palaver_proto::writer::escape_tag_value_into(name, &mut out);
                }
                out.extend_from_slice(b" ");
                out.extend_from_slice(&self.plain);
                out.freeze()
            })
            .clone()
    }
}

/// The client-only tags (`+` prefixed) of a raw tag section, in order, still escaped.
pub(crate) fn client_only_tags(raw: Option<&str>) -> String {
    let mut out = String::new();
    for item in raw.unwrap_or_default().split(';') {
        let key = item.split_once('=').map_or(item, |(key, _)| key);
        if key.len() > 1 && key.starts_with('+') {
            if !out.is_empty() {
                out.push(';');
            }
            out.push_str(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_client_tags() {
        assert_eq!(
            client_only_tags(Some("label=1;+draft/reply=abc;+x;time=now;+=bad")),
            "+draft/reply=abc;+x"
        );
        assert_eq!(client_only_tags(None), "");
    }

    #[test]
    fn each_variant_is_serialised_once_and_shared() {
        let stamp = Stamp {
            msgid: "m1".to_owned(),
            serial: 1,
            at: time::macros::datetime!(2026-01-01 00:00:00.000 UTC),
            time: std::cell::OnceCell::new(),
        };
        let mut relay = Relay::new(
            ("a", "~a", "h"),
            "PRIVMSG",
            "#c",
            Some("hi"),
            "+x=1",
            false,
            &stamp,
        );
        let plain = relay.line_for(CapSet::default());
        assert_eq!(&plain[..], b":a!~a@h PRIVMSG #c :hi\r\n");
        let mut both = CapSet::default();
        both.set(caps::MESSAGE_TAGS, true);
        both.set(caps::SERVER_TIME, true);
        let tagged = relay.line_for(both);
        assert_eq!(
            &tagged[..],
            b"@time=2026-01-01T00:00:00.000Z;msgid=m1;+x=1 :a!~a@h PRIVMSG #c :hi\r\n"
        );
        // The same allocation is handed out again.
        assert_eq!(relay.line_for(both).as_ptr(), tagged.as_ptr());
        // Without an account, account-tag changes nothing (no extra variant).
        let mut with_account_tag = both;
        with_account_tag.set(caps::ACCOUNT_TAG, true);
        assert_eq!(relay.line_for(with_account_tag).as_ptr(), tagged.as_ptr());
    }

    #[test]
    fn events_carry_the_tags_each_recipient_asked_for() {
        let line = Bytes::from_static(b":a!~a@h PART #c\r\n");
        let caps_with = |names: &[caps::Cap]| {
            let mut set = CapSet::default();
            for &cap in names {
                set.set(cap, true);
            }
            set
        };
        let event = EventLine::new(line.clone(), Some("acc;t"));
        assert_eq!(event.line_for(CapSet::default()), line);
        assert_eq!(
            &event.line_for(caps_with(&[caps::ACCOUNT_TAG]))[..],
            b"@account=acc\\:t :a!~a@h PART #c\r\n"
        );
        // Not logged in: no account tag for anyone.
        assert_eq!(
            EventLine::new(line.clone(), None).line_for(caps_with(&[caps::ACCOUNT_TAG])),
            line
        );
        // A recorded event: its time and msgid, as history will show them.
        let stamp = Stamp {
            msgid: "m7".to_owned(),
            serial: 7,
            at: time::macros::datetime!(2026-01-01 00:00:00.000 UTC),
            time: std::cell::OnceCell::new(),
        };
        let recorded = EventLine::stamped(line.clone(), Some("acc"), Some(stamp));
        let all = caps_with(&[caps::SERVER_TIME, caps::MESSAGE_TAGS, caps::ACCOUNT_TAG]);
        assert_eq!(
            &recorded.line_for(all)[..],
            b"@time=2026-01-01T00:00:00.000Z;msgid=m7;account=acc :a!~a@h PART #c\r\n"
        );
        assert_eq!(
            &recorded.line_for(caps_with(&[caps::MESSAGE_TAGS]))[..],
            b"@msgid=m7 :a!~a@h PART #c\r\n"
        );
        // Serialised once per variant.
        assert_eq!(
            recorded.line_for(all).as_ptr(),
            recorded.line_for(all).as_ptr()
        );
        // Not recorded: a time, but no msgid.
        let live = EventLine::new(line.clone(), None)
            .line_for(caps_with(&[caps::SERVER_TIME, caps::MESSAGE_TAGS]));
        assert!(
            live.starts_with(b"@time=") && !live.windows(6).any(|w| w == b"msgid="),
            "{live:?}"
        );
    }

    #[test]
    fn account_tag_recipients_see_the_senders_account() {
        let stamp = Stamp {
            msgid: "m1".to_owned(),
            serial: 1,
            at: time::macros::datetime!(2026-01-01 00:00:00.000 UTC),
            time: std::cell::OnceCell::new(),
        };
        let mut relay = Relay::new(
            ("a", "~a", "h"),
            "PRIVMSG",
            "#c",
            Some("hi"),
            "",
            false,
            &stamp,
        )
        .with_account(Some("Alice"));
        let mut caps = CapSet::default();
        caps.set(caps::ACCOUNT_TAG, true);
        assert_eq!(
            &relay.line_for(caps)[..],
            b"@account=Alice :a!~a@h PRIVMSG #c :hi\r\n"
        );
        assert_eq!(
            &relay.line_for(CapSet::default())[..],
            b":a!~a@h PRIVMSG #c :hi\r\n"
        );
    }
}
