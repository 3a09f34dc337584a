//! The wire format of the cluster bus.
//!
//! Every bus message is one [`Envelope`]: the sending node, its incarnation, and a
//! list of [`Event`]s applied in order. Two kinds of event travel together:
//! *state* (a user arrived, changed nick, joined a channel…), which every node
//! applies to its replica of the network without telling its own clients (the
//! origin node already sent them the lines), and *deliveries*: these bytes to these
//! of your users, which the receiving node writes to its users as they are, or a
//! channel message, which it formats for each of its own members of the channel.
//! A node never re-sends what it received, so nothing loops.
//!
//! Encoded with postcard (serde, varint integers, raw bytes): a delivery of one
//! line to a hundred users on a node costs the line plus a byte or two per user,
//! and a channel message costs its parts once per node, whatever its members.

use serde::{Deserialize, Serialize};

/// A user anywhere in the cluster: its home node and its id there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct UserRef {
    pub(crate) node: Box<str>,
    pub(crate) id: u64,
}

/// A channel a user is in, with its status there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Membership {
    /// The channel's name as spelt by its creator.
    pub(crate) channel: String,
    pub(crate) op: bool,
    pub(crate) voice: bool,
    /// When (milliseconds since the Unix epoch) and on which node the channel
    /// was created, as the sender knows it. Two nodes that created a channel at
    /// the same moment learn it here: the older creation wins (the node name
    /// breaks a tie), and the statuses given in the younger one are void
    /// (`World::join_remote`).
    pub(crate) created: (i64, Box<str>),
}

/// Everything other nodes need to know about a registered user: sent when it
/// registers, and again in a burst to a node that (re)joins the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Intro {
    /// Its id on its home node.
    pub(crate) id: u64,
    pub(crate) nick: String,
    pub(crate) user: String,
    pub(crate) host: String,
    pub(crate) realname: String,
    pub(crate) account: Option<String>,
    /// Its negotiated capabilities (`caps::CapSet` bits): other nodes format the
    /// lines they send it the way it asked for.
    pub(crate) caps: u32,
    pub(crate) invisible: bool,
    pub(crate) oper: bool,
    pub(crate) bot: bool,
    pub(crate) tls: bool,
    pub(crate) away: Option<String>,
    /// Registration time, Unix seconds (WHOIS).
    pub(crate) signon: u32,
    pub(crate) channels: Vec<Membership>,
}

/// A channel's topic, as the bus carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Topic {
    pub(crate) text: String,
    pub(crate) set_by: String,
    /// Milliseconds since the Unix epoch.
    pub(crate) set_at: i64,
}

/// One entry of a channel's ban (`b`), exception (`e`) or invite-exception (`I`)
/// list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ListEntry {
    pub(crate) list: char,
    pub(crate) mask: String,
    pub(crate) set_by: String,
    pub(crate) set_at: i64,
}

/// Everything about a channel but its members: sent whole after every change of
/// topic, modes or lists, and in bursts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChannelState {
    pub(crate) channel: String,
    /// Last writer wins: a node applies a state only if its version (milliseconds,
    /// then node name) is above the one it has, so concurrent changes from two
    /// nodes end the same everywhere.
    pub(crate) version: (u64, Box<str>),
    /// The channel's creation (milliseconds, node) as the sender knows it: the
    /// settings of a younger copy of the channel (made on a node that was cut
    /// off, or at the same moment as another) are void, like its statuses, and
    /// an older copy's replace them whatever their version (`World::put_channel_state`).
    pub(crate) created: (i64, Box<str>),
    pub(crate) topic: Option<Topic>,
    /// Mode letters without parameters.
    pub(crate) modes: String,
    pub(crate) key: Option<String>,
    pub(crate) limit: Option<u32>,
    pub(crate) lists: Vec<ListEntry>,
}

/// A K-line (`kind` `K`) or D-line (`D`), as the bus carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ServerBan {
    pub(crate) kind: char,
    pub(crate) mask: String,
    pub(crate) reason: String,
    pub(crate) set_by: String,
    /// Milliseconds since the Unix epoch.
    pub(crate) set_at: i64,
    pub(crate) expires_at: Option<i64>,
}

impl ServerBan {
    /// The ban as the bus carries it.
    pub(crate) fn of(ban: &palaver_store::ServerBan) -> Self {
        Self {
            kind: kind_letter(ban.kind),
            mask: ban.mask.clone(),
            reason: ban.reason.clone(),
            set_by: ban.set_by.clone(),
            set_at: ban.set_at.0,
            expires_at: ban.expires_at.map(|at| at.0),
        }
    }

    /// The ban as the server keeps it; `None` for an unknown kind.
    pub(crate) fn to_ban(&self) -> Option<palaver_store::ServerBan> {
        Some(palaver_store::ServerBan {
            kind: kind_of(self.kind)?,
            mask: self.mask.clone(),
            reason: self.reason.clone(),
            set_by: self.set_by.clone(),
            set_at: palaver_store::Timestamp(self.set_at),
            expires_at: self.expires_at.map(palaver_store::Timestamp),
        })
    }
}

/// `K` for a K-line, `D` for a D-line.
pub(crate) fn kind_letter(kind: palaver_store::ServerBanKind) -> char {
    match kind {
        palaver_store::ServerBanKind::KLine => 'K',
        palaver_store::ServerBanKind::DLine => 'D',
    }
}

/// The kind a letter of [`kind_letter`] names.
pub(crate) fn kind_of(letter: char) -> Option<palaver_store::ServerBanKind> {
    match letter {
        'K' => Some(palaver_store::ServerBanKind::KLine),
        'D' => Some(palaver_store::ServerBanKind::DLine),
        _ => None,
    }
}

/// Which relayed command a [`ChannelMessage`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Relayed {
    Privmsg,
    Notice,
    Tagmsg,
}

/// A PRIVMSG, NOTICE or TAGMSG to a channel, in parts rather than as lines: the
/// receiving node formats it for each of its own members of the channel the way
/// the sender formats it for its own (see `relay::Relay`), so it crosses the bus
/// once per node instead of once per member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChannelMessage {
    pub(crate) kind: Relayed,
    /// The target as relayed lines show it: the channel's name, after the
    /// STATUSMSG prefix if there is one.
    pub(crate) target: String,
    /// STATUSMSG: only operators (`@`), or voiced members and operators (`+`).
    pub(crate) min_status: Option<char>,
    pub(crate) nick: String,
    pub(crate) user: String,
    pub(crate) host: String,
    /// `None` for a TAGMSG.
    pub(crate) text: Option<String>,
    /// The sender's client-only tags (`+key=value;...`), still escaped.
    pub(crate) client_tags: String,
    /// The sender is a bot (`+B`).
    pub(crate) bot: bool,
    pub(crate) account: Option<String>,
    pub(crate) msgid: String,
    /// When the sender took it, in milliseconds since the Unix epoch (the `time`
    /// tag shows milliseconds, so every node shows the same).
    pub(crate) at: i64,
}

impl ChannelMessage {
    /// The channel's name: the target without its STATUSMSG prefix.
    pub(crate) fn channel(&self) -> &str {
        match self.min_status {
            Some(prefix) => self.target.strip_prefix(prefix).unwrap_or(&self.target),
            None => &self.target,
        }
    }
}

/// One thing a node tells the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Event {
    /// The sender is alive (every heartbeat, on the broadcast subject). With
    /// `hello`, it has just (re)connected and asks every node for a burst of its
    /// users.
    Alive { hello: bool },
    /// A user of the sender registered, or changed something other nodes show
    /// (away, account, capabilities, user modes, real name), or is part of a
    /// burst: the whole record each time, applied as "this is the user now".
    User(Box<Intro>),
    /// A user of the sender changed nick (it claimed the new one first).
    Nick { id: u64, nick: String },
    /// A user of the sender left the network.
    Quit { id: u64 },
    /// A user of the sender joined a channel.
    Join { id: u64, membership: Membership },
    /// A user (of any node: KICK, SAPART) left a channel.
    Part { user: UserRef, channel: String },
    /// A user's status on a channel changed (MODE +o/-o/+v/-v).
    Status {
        user: UserRef,
        membership: Membership,
    },
    /// A channel operator invited `user` (of the receiving node, or any) to a
    /// channel: its home node lets it past `+i` and the other entry checks.
    Invite { user: UserRef, channel: String },
    /// A channel's topic, modes or lists changed (or a burst tells them).
    Channel(Box<ChannelState>),
    /// An account was registered (or dropped) on the sender: nick ownership
    /// knows which nicks are accounts without asking the store.
    AccountName { name: String, registered: bool },
    /// An operator on the sender added a K-line or D-line (stored already, in the
    /// store the nodes share): new connections here are checked against it too.
    ServerBan(Box<ServerBan>),
    /// An operator on the sender removed one (`kind` is `K` or `D`).
    ServerUnban { kind: char, mask: String },
    /// A channel's registration (ChanServ) as the sender now has it, `None` once
    /// dropped: the sender saved it in the store the nodes share; the others
    /// replace their copy, so none of them saves an older one over it.
    Registration {
        key: String,
        registration: Option<Box<palaver_store::ChannelRegistration>>,
    },
    /// Write `line` (a whole IRC line, CRLF included) to these users of the
    /// receiving node, in this order relative to the envelope's other events.
    Deliver { line: bytes::Bytes, to: Vec<u64> },
    /// Deliver a channel message to the receiving node's members of the channel
    /// (those its STATUSMSG prefix admits), in this order relative to the
    /// envelope's other events.
    ChannelMessage(Box<ChannelMessage>),
    /// Asks the receiving node (the user's home) to end a connection: KILL from
    /// another node, or the sender could not keep up with its lines.
    Disconnect { id: u64, reason: String },
    /// An operator of the sender (`by`, its id there) gave a command that acts
    /// as a user of the receiving node (SAJOIN, SAPART, SANICK): the user's node
    /// runs it as its own, answering the operator through the bus.
    OperCommand {
        by: u64,
        command: String,
        params: Vec<String>,
    },
}

/// The version of this wire format, the first thing in every [`Envelope`]: nodes
/// of different palaver versions that disagree on it cannot read each other, and
/// a node that receives another version says so (see [`Envelope::version_of`])
/// instead of only failing to decode. Raise it with any change to these types.
pub(crate) const WIRE_VERSION: u16 = 3;

/// One bus message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Envelope {
    /// [`WIRE_VERSION`] of the sender.
    pub(crate) version: u16,
    /// The sending node's name.
    pub(crate) from: Box<str>,
    /// The sending node's incarnation (its start time in milliseconds): a node
    /// that comes back under the same name is a new one, and its old users are gone.
    pub(crate) boot: u64,
    pub(crate) events: Vec<Event>,
}

impl Envelope {
    /// The bytes to publish.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_allocvec(self)
    }

    /// Reads a bus message; an error for anything that is not one (a peer running
    /// an incompatible version, or a stray publisher on our subjects).
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    /// The wire version a message says it is in, if it starts like an envelope:
    /// readable whatever follows, so a node can name the version it cannot read.
    pub(crate) fn version_of(bytes: &[u8]) -> Option<u16> {
        postcard::take_from_bytes::<u16>(bytes)
            .ok()
            .map(|(version, _)| version)
    }
}

/// A question one node asks another about one of its users, answered at once
/// on the asking node's reply subject (NATS request-reply), not through the
/// ordered event stream: the asker's client is waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Question {
    /// How long has user `id` (with nick `nick`: a restarted node reuses ids)
    /// been idle? For WHOIS, whose idle time only the user's own node knows.
    Idle { id: u64, nick: Box<str> },
}

/// The answer to a [`Question`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Answer {
    /// Seconds since the user last spoke, by its node's clock; `None` if the
    /// node has no such user (it quit, or changed nick, meanwhile).
    Idle(Option<u32>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_deliveries_stay_compact() {
        let envelope = Envelope {
            version: WIRE_VERSION,
            from: "a".into(),
            boot: 1_700_000_000_000,
            events: vec![
                Event::Join {
                    id: 7,
                    membership: Membership {
                        channel: "#lobby".to_owned(),
                        op: true,
                        voice: false,
                        created: (1_700_000_000_000, "a".into()),
                    },
                },
                Event::Deliver {
                    line: bytes::Bytes::from_static(b":alice!~a@h PRIVMSG #lobby :hi\r\n"),
                    to: (1..=100).collect(),
                },
            ],
        };
        let bytes = envelope.encode().expect("encodes");
        assert_eq!(Envelope::decode(&bytes).expect("decodes"), envelope);
        // The line, ids 1 to 100 as one-byte varints, and a few bytes of framing.
        assert!(bytes.len() < 34 + 100 + 40, "{} bytes", bytes.len());
    }

    #[test]
    fn another_version_is_recognised_even_when_unreadable() {
        let mut bytes = Envelope {
            version: WIRE_VERSION + 1,
            from: "b".into(),
            boot: 1,
            events: vec![Event::Alive { hello: true }],
        }
        .encode()
        .expect("encodes");
        assert_eq!(Envelope::version_of(&bytes), Some(WIRE_VERSION + 1));
        // A future version whose events this one cannot read.
        bytes.truncate(bytes.len() - 1);
        bytes.push(0xff);
        assert!(Envelope::decode(&bytes).is_err());
        assert_eq!(Envelope::version_of(&bytes), Some(WIRE_VERSION + 1));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Envelope::decode(b"\xff\xff\xff\xff\xff\xff").is_err());
        assert!(Envelope::decode(b"").is_err());
    }
}
