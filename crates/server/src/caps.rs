//! IRCv3 capabilities we offer, in one table (CAP LS answers from it).

/// One capability: its name on the wire and its bit in a [`CapSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cap {
    pub(crate) name: &'static str,
    bit: u32,
}

/// `cap-notify`: CAP NEW/DEL are sent (always on for CAP LS 302 clients).
pub(crate) const CAP_NOTIFY: Cap = Cap {
    name: "cap-notify",
    bit: 1 << 0,
};
/// `multi-prefix`: every status prefix in NAMES and WHO, not just the highest.
pub(crate) const MULTI_PREFIX: Cap = Cap {
    name: "multi-prefix",
    bit: 1 << 1,
};
/// `userhost-in-names`: NAMES shows `nick!user@host`.
pub(crate) const USERHOST_IN_NAMES: Cap = Cap {
    name: "userhost-in-names",
    bit: 1 << 2,
};

macro_rules! caps {
    ($($(#[$doc:meta])* $name:ident = $wire:literal, $bit:literal;)*) => {
        $($(#[$doc])* pub(crate) const $name: Cap = Cap { name: $wire, bit: 1 << $bit };)*
    };
}

caps! {
    /// `message-tags`: client-only tags relayed, TAGMSG, msgid.
    MESSAGE_TAGS = "message-tags", 3;
    /// `server-time`: `time` tag on relayed messages.
    SERVER_TIME = "server-time", 4;
    /// `echo-message`: the sender gets its own PRIVMSG/NOTICE/TAGMSG back.
    ECHO_MESSAGE = "echo-message", 5;
    /// `batch`: BATCH framing (needed by labeled-response).
    BATCH = "batch", 6;
    /// `labeled-response`: replies carry the request's `label`.
    LABELED_RESPONSE = "labeled-response", 7;
    /// `away-notify`: AWAY changes of channel peers.
    AWAY_NOTIFY = "away-notify", 8;
    /// `extended-join`: JOIN carries account and real name.
    EXTENDED_JOIN = "extended-join", 9;
    /// `sasl`: AUTHENTICATE (SASL 3.1/3.2); its CAP 302 value lists the mechanisms.
    SASL = "sasl", 10;
    /// `account-notify`: ACCOUNT when a channel peer logs in or out.
    ACCOUNT_NOTIFY = "account-notify", 11;
    /// `account-tag`: the `account` tag on messages from logged-in users.
    ACCOUNT_TAG = "account-tag", 12;
    /// `draft/account-registration`: the REGISTER and VERIFY commands.
    ACCOUNT_REGISTRATION = "draft/account-registration", 17;
    /// `setname`: SETNAME command and notifications.
    SETNAME = "setname", 13;
    /// `invite-notify`: channel members see INVITEs.
    INVITE_NOTIFY = "invite-notify", 14;
    /// `draft/no-implicit-names`: no NAMES burst after JOIN.
    NO_IMPLICIT_NAMES = "draft/no-implicit-names", 15;
    /// `extended-monitor`: MONITOR targets also get away/account/chghost/setname.
    EXTENDED_MONITOR = "extended-monitor", 16;
    /// `draft/multiline`: messages of several lines, sent and relayed as one batch.
    MULTILINE = "draft/multiline", 24;
    /// `draft/metadata-3`: the METADATA command, key subscriptions, notifications.
    METADATA = "draft/metadata-3", 20;
    /// `draft/read-marker`: MARKREAD, and the channel's read marker after JOIN.
    READ_MARKER = "draft/read-marker", 28;
    /// `draft/message-redaction`: REDACT, relayed to the clients that enabled it.
    MESSAGE_REDACTION = "draft/message-redaction", 29;
    /// `draft/chathistory`: the CHATHISTORY command (see `handlers::chathistory`).
    CHATHISTORY = "draft/chathistory", 21;
    /// `draft/event-playback`: CHATHISTORY also replays JOIN, PART and the like.
    EVENT_PLAYBACK = "draft/event-playback", 22;
    /// `draft/channel-rename`: RENAME as such; without it, a PART and a JOIN.
    CHANNEL_RENAME = "draft/channel-rename", 18;
}

/// Everything CAP LS offers, in the order it lists them.
pub(crate) const SUPPORTED: &[Cap] = &[
    CAP_NOTIFY,
    MULTI_PREFIX,
    USERHOST_IN_NAMES,
    MESSAGE_TAGS,
    SERVER_TIME,
    ECHO_MESSAGE,
    BATCH,
    LABELED_RESPONSE,
    AWAY_NOTIFY,
    EXTENDED_JOIN,
    SASL,
    ACCOUNT_NOTIFY,
    ACCOUNT_TAG,
    ACCOUNT_REGISTRATION,
    INVITE_NOTIFY,
    NO_IMPLICIT_NAMES,
    SETNAME,
    EXTENDED_MONITOR,
    MULTILINE,
    METADATA,
    READ_MARKER,
    MESSAGE_REDACTION,
    CHATHISTORY,
    EVENT_PLAYBACK,
    CHANNEL_RENAME,
];

/// Looks up a capability by name.
pub(crate) fn by_name(name: &str) -> Option<Cap> {
    SUPPORTED.iter().copied().find(|cap| cap.name == name)
}

/// A set of enabled capabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct CapSet(u32);

impl CapSet {
    /// The set with these bits (as stored by [`CapSet::bits`]).
    pub(crate) fn from_bits(bits: u32) -> Self {
        Self(bits)
    }

    /// The raw bits, for atomic storage.
    pub(crate) fn bits(self) -> u32 {
        self.0
    }

    pub(crate) fn has(self, cap: Cap) -> bool {
        self.0 & cap.bit != 0
    }

    pub(crate) fn set(&mut self, cap: Cap, on: bool) {
        if on {
            self.0 |= cap.bit;
        } else {
            self.0 &= !cap.bit;
        }
    }

    /// The enabled capabilities, in table order.
    pub(crate) fn iter(self) -> impl Iterator<Item = Cap> {
        SUPPORTED.iter().copied().filter(move |cap| self.has(*cap))
    }
}
