//! Domain types: what the server stores, with no SQL in them.
//!
//! Names arrive *folded* (casemapped by the server, `palaver_proto::CaseKey`): the
//! store compares keys byte for byte and never folds anything itself, so every
//! backend agrees with the server's casemapping by construction.

use std::fmt;

/// A point in time with millisecond precision: milliseconds since the Unix epoch, UTC.
///
/// Why milliseconds in an integer: IRCv3 `server-time` carries milliseconds, history
/// references (`timestamp=`) are compared at that precision, and an integer orders
/// and indexes the same way in every database (no text dates, no time zones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time, to the millisecond.
    pub fn now() -> Self {
        Self::from(time::OffsetDateTime::now_utc())
    }

    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// The same instant as a `time` value (the server's type), or `None` if it is
    /// outside the range `time` can represent.
    pub fn to_offset_date_time(self) -> Option<time::OffsetDateTime> {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000).ok()
    }
}

impl From<time::OffsetDateTime> for Timestamp {
    /// Truncates to the millisecond, like the `server-time` tag the server sends.
    fn from(at: time::OffsetDateTime) -> Self {
        let millis = at.unix_timestamp_nanos().div_euclid(1_000_000);
        Self(i64::try_from(millis).unwrap_or(if millis < 0 { i64::MIN } else { i64::MAX }))
    }
}

/// A registered account: how it logs in and what we know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The folded account name: the key every lookup uses.
    pub key: String,
    /// The name as the user registered it (shown in WHOIS, `account-tag`).
    pub name: String,
    /// Argon2id PHC string, checked for SASL PLAIN and NickServ IDENTIFY. PHC strings
    /// carry their parameters, so they can be raised later without a migration.
    pub password_hash: String,
    /// SCRAM-SHA-256 verifier, stored beside the argon2 hash because SCRAM cannot be
    /// derived from it (both are computed whenever the password is set).
    pub scram: ScramVerifier,
    /// Optional e-mail address (account registration may ask for one).
    pub email: Option<String>,
    /// Whether the account is verified (`VERIFY` done, or verification off).
    pub verified: bool,
    /// When the account was registered.
    pub created_at: Timestamp,
}

/// Most client-certificate fingerprints one account may hold: the list is state a
/// client controls (`NickServ CERT ADD`), so it is bounded like every other.
pub const MAX_CERTFPS_PER_ACCOUNT: usize = 10;

/// What [`crate::Store::add_certfp`] did. A missing account is not an outcome but
/// [`crate::StoreError::NotFound`], as for the other account writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertfpAdded {
    /// The fingerprint now identifies the account.
    Added,
    /// The account already had it (nothing changed).
    AlreadyPresent,
    /// Another account has it: a fingerprint identifies at most one account, so
    /// SASL EXTERNAL is never ambiguous (nothing changed).
    Taken,
    /// The account already has [`MAX_CERTFPS_PER_ACCOUNT`] fingerprints (nothing
    /// changed).
    LimitReached,
}

/// Which kind of server-wide ban an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServerBanKind {
    /// A K-line: a `user@host` mask, checked at registration.
    KLine,
    /// A D-line: an IP address or CIDR block, checked when a connection is accepted.
    DLine,
}

impl ServerBanKind {
    /// The stable number a backend stores (never reorder).
    pub fn code(self) -> i64 {
        match self {
            Self::KLine => 0,
            Self::DLine => 1,
        }
    }

    /// The kind stored as `code`, if any.
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => Self::KLine,
            1 => Self::DLine,
            _ => return None,
        })
    }
}

/// A server-wide ban (K-line or D-line), as an operator set it.
///
/// The mask arrives normalised by the server (folded `user@host`, canonical IP or
/// CIDR text), so the store compares masks byte for byte, as it does keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerBan {
    /// K-line or D-line.
    pub kind: ServerBanKind,
    /// The normalised mask, unique within its kind.
    pub mask: String,
    /// Why, as shown to the banned client and in `STATS`.
    pub reason: String,
    /// The operator who set it (a nick, or `nick!user@host`).
    pub set_by: String,
    /// When it was set.
    pub set_at: Timestamp,
    /// When it stops applying; `None` for a permanent ban.
    pub expires_at: Option<Timestamp>,
}

impl ServerBan {
    /// Whether the ban has stopped applying at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// What [`crate::Store::add_server_ban`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerBanAdded {
    /// A new ban was stored.
    Added,
    /// A ban of the same kind and mask was replaced (new reason, setter, expiry).
    Replaced,
    /// The store already holds the most bans allowed (nothing changed).
    LimitReached,
}

/// The SCRAM-SHA-256 (RFC 5802/7677) data a server keeps instead of the password.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ScramVerifier {
    /// The salt sent to the client.
    pub salt: Vec<u8>,
    /// PBKDF2 iteration count sent to the client.
    pub iterations: u32,
    /// `H(ClientKey)`: verifies the client's proof.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`: signs the server's final message.
    pub server_key: Vec<u8>,
}

impl fmt::Debug for ScramVerifier {
    /// Keys stay out of logs and panic messages: they are password-equivalent for
    /// impersonating the server.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// The password material replaced together by [`crate::Store::set_password`]: both
/// forms change at once or not at all, so PLAIN and SCRAM never disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordUpdate {
    /// New argon2id PHC string.
    pub password_hash: String,
    /// New SCRAM-SHA-256 verifier.
    pub scram: ScramVerifier,
}

/// Which list of a channel an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ListKind {
    /// `+b`: bans.
    Ban,
    /// `+e`: ban exceptions.
    Except,
    /// `+I`: invite exceptions.
    InviteExcept,
}

impl ListKind {
    /// The stable number a backend stores (never reorder).
    pub fn code(self) -> i64 {
        match self {
            Self::Ban => 0,
            Self::Except => 1,
            Self::InviteExcept => 2,
        }
    }

    /// The kind stored as `code`, if any.
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => Self::Ban,
            1 => Self::Except,
            2 => Self::InviteExcept,
            _ => return None,
        })
    }
}

/// One entry of a ban, exception or invite-exception list.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ListEntry {
    /// Which list.
    pub kind: ListKind,
    /// The mask as set (`nick!user@host` pattern or extban), unique within its list.
    pub mask: String,
    /// Who set it (`nick!user@host` or a nick), shown in RPL_BANLIST.
    pub set_by: String,
    /// When it was set, shown in RPL_BANLIST.
    pub set_at: Timestamp,
}

/// A channel's access list entry: an account and its level.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AccessEntry {
    /// The folded account name.
    pub account: String,
    /// The level; what levels mean (op, voice, founder…) is the server's policy, so
    /// the store keeps a number and never interprets it.
    pub level: i32,
}

/// A channel's topic as the server shows it (RPL_TOPIC, RPL_TOPICWHOTIME).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Topic {
    /// The topic text.
    pub text: String,
    /// Who set it.
    pub set_by: String,
    /// When it was set.
    pub set_at: Timestamp,
}

/// A registered channel: what survives a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ChannelRegistration {
    /// The folded channel name: the key every lookup uses.
    pub key: String,
    /// The name as registered (its case as users see it).
    pub name: String,
    /// The folded account name of the founder (opped on join).
    pub founder: String,
    /// When it was registered.
    pub created_at: Timestamp,
    /// The topic, if one is set.
    pub topic: Option<Topic>,
    /// Flag modes without parameters, as letters (e.g. `"nt"`); the server owns
    /// their meaning, the store keeps the set.
    pub modes: String,
    /// `+k` key, if set.
    pub key_mode: Option<String>,
    /// `+l` limit, if set.
    pub limit: Option<u32>,
    /// Ban, exception and invite-exception entries.
    pub lists: Vec<ListEntry>,
    /// Access list (account → level).
    pub access: Vec<AccessEntry>,
}

/// What kind of event a history entry records (`draft/event-playback` replays all of
/// them, plain `draft/chathistory` only the messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// PRIVMSG.
    Privmsg,
    /// NOTICE.
    Notice,
    /// TAGMSG (only those worth keeping, e.g. reactions: the server decides).
    Tagmsg,
    /// JOIN.
    Join,
    /// PART.
    Part,
    /// QUIT.
    Quit,
    /// KICK.
    Kick,
    /// MODE.
    Mode,
    /// TOPIC.
    Topic,
    /// NICK.
    Nick,
    /// A PRIVMSG of several lines (`draft/multiline`): `text` holds the lines, each
    /// prefixed by `+` if it continues the one before (`draft/multiline-concat`)
    /// or a space if not, joined by `\n`.
    MultilinePrivmsg,
    /// A NOTICE of several lines, stored as [`MessageKind::MultilinePrivmsg`].
    MultilineNotice,
}

impl MessageKind {
    /// The stable number a backend stores (never reorder: stored rows keep it).
    pub fn code(self) -> i64 {
        match self {
            Self::Privmsg => 0,
            Self::Notice => 1,
            Self::Tagmsg => 2,
            Self::Join => 3,
            Self::Part => 4,
            Self::Quit => 5,
            Self::Kick => 6,
            Self::Mode => 7,
            Self::Topic => 8,
            Self::Nick => 9,
            Self::MultilinePrivmsg => 10,
            Self::MultilineNotice => 11,
        }
    }

    /// The kind stored as `code`, if any.
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => Self::Privmsg,
            1 => Self::Notice,
            2 => Self::Tagmsg,
            3 => Self::Join,
            4 => Self::Part,
            5 => Self::Quit,
            6 => Self::Kick,
            7 => Self::Mode,
            8 => Self::Topic,
            9 => Self::Nick,
            10 => Self::MultilinePrivmsg,
            11 => Self::MultilineNotice,
            _ => return None,
        })
    }

    /// The IRC command this kind replays as.
    pub fn command(self) -> &'static str {
        match self {
            Self::Privmsg | Self::MultilinePrivmsg => "PRIVMSG",
            Self::Notice | Self::MultilineNotice => "NOTICE",
            Self::Tagmsg => "TAGMSG",
            Self::Join => "JOIN",
            Self::Part => "PART",
            Self::Quit => "QUIT",
            Self::Kick => "KICK",
            Self::Mode => "MODE",
            Self::Topic => "TOPIC",
            Self::Nick => "NICK",
        }
    }
}

/// One side of a private conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Party {
    /// A logged-in user, by folded account name: the history follows the account
    /// to every device.
    Account(String),
    /// A user not logged in, by folded nick: such history belongs to whoever holds
    /// the nick, so the server should only show it within the session.
    Nick(String),
}

impl Party {
    /// The stored form: a prefix keeps an account and a nick of the same spelling
    /// apart (they are different people).
    pub fn encoded(&self) -> String {
        match self {
            Self::Account(name) => format!("a:{name}"),
            Self::Nick(name) => format!("n:{name}"),
        }
    }
}

/// Where a history entry belongs: a channel or a private conversation.
///
/// The stored key is a string. A channel's key is its folded name (it starts with
/// `#` or `&`, and has no space). A private conversation's key is its two encoded
/// parties, sorted and joined by a space, so both sides name the same conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetKey {
    key: String,
    parties: Option<[String; 2]>,
}

impl TargetKey {
    /// The history of a channel, by folded name.
    pub fn channel(folded: &str) -> Self {
        Self {
            key: folded.to_owned(),
            parties: None,
        }
    }

    /// The history of a private conversation between `a` and `b` (either order).
    pub fn private(a: &Party, b: &Party) -> Self {
        let (mut x, mut y) = (a.encoded(), b.encoded());
        if x > y {
            std::mem::swap(&mut x, &mut y);
        }
        Self {
            key: format!("{x} {y}"),
            parties: Some([x, y]),
        }
    }

    /// The stored key.
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// The encoded parties of a private conversation (`None` for a channel): the
    /// store indexes them so [`crate::Store::targets`] finds a user's conversations.
    pub fn parties(&self) -> Option<&[String; 2]> {
        self.parties.as_ref()
    }

    /// Rebuilds a key read back from storage.
    pub fn from_stored(key: String) -> Self {
        let parties = key
            .split_once(' ')
            .map(|(a, b)| [a.to_owned(), b.to_owned()]);
        Self { key, parties }
    }
}

impl fmt::Display for TargetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

/// One stored history entry: a message or an event, as the server relayed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryMessage {
    /// The `msgid` tag value the recipients saw (unique across the store).
    pub msgid: String,
    /// The `time` tag value the recipients saw.
    pub time: Timestamp,
    /// The channel or conversation it belongs to.
    pub target: TargetKey,
    /// `nick!user@host` of the sender, as relayed.
    pub sender: String,
    /// The sender's account, if logged in (`account-tag` on replay).
    pub account: Option<String>,
    /// What it was.
    pub kind: MessageKind,
    /// Client-only tags as relayed (`+draft/react=…;+draft/reply=…`, escaped), or
    /// empty: replayed verbatim.
    pub tags: String,
    /// The rest of the line the server needs to rebuild it: the text of a PRIVMSG,
    /// NOTICE, PART or QUIT, the parameters of a MODE or KICK, the new nick…
    pub text: String,
}

/// A history reference from a CHATHISTORY command (`MSGREFTYPES=timestamp,msgid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryRef {
    /// `msgid=…`: the position of that message (if it is not in the target, the
    /// query returns nothing).
    MsgId(String),
    /// `timestamp=…`: a position in time.
    Time(Timestamp),
}

/// A target with the time of its latest message (CHATHISTORY TARGETS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetLatest {
    /// The target.
    pub target: TargetKey,
    /// Its latest stored message's time.
    pub latest: Timestamp,
}

/// Who may see which targets, for [`crate::Store::targets`]: the channels the user
/// is in and the parties the user is (their account, their nick).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetScope {
    /// Folded channel names.
    pub channels: Vec<String>,
    /// The user's parties: private conversations with one of them are listed.
    pub parties: Vec<Party>,
}

/// How much history to keep; `None` means no limit of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Entries older than this many milliseconds before `now` go.
    pub max_age_ms: Option<i64>,
    /// Per target, only the newest this many entries stay.
    pub max_messages: Option<u64>,
}

/// What one bounded expiry pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Rows removed in this pass.
    pub removed: u64,
    /// True when nothing more is due now: the caller stops looping until its next
    /// period.
    pub complete: bool,
}
