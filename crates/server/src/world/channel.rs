//! One channel: members with their status, topic, modes and mask lists (bans, ban
//! exceptions, invite exceptions).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use crate::outbox::Outbox;
use crate::world::{CASEMAPPING, ClientId};

/// A member's status in a channel (`PREFIX=(ov)@+`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) op: bool,
    pub(crate) voice: bool,
}

impl Status {
    /// The highest prefix (`@`, `+` or nothing), as in NAMES without multi-prefix.
    pub(crate) fn prefix(self) -> &'static str {
        if self.op {
            "@"
        } else if self.voice {
            "+"
        } else {
            ""
        }
    }

    /// Every prefix, highest first (multi-prefix).
    pub(crate) fn all_prefixes(self) -> &'static str {
        match (self.op, self.voice) {
            (true, true) => "@+",
            (true, false) => "@",
            (false, true) => "+",
            (false, false) => "",
        }
    }
}

/// A member entry; the outbox is kept here so a broadcast needs no client lookup.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) status: Status,
    pub(crate) outbox: Arc<Outbox>,
}

/// A topic and who set it when (`RPL_TOPICWHOTIME`).
#[derive(Debug, Clone)]
pub(crate) struct Topic {
    pub(crate) text: String,
    pub(crate) set_by: String,
    pub(crate) set_at: SystemTime,
}

/// The channel's mask lists (CHANMODES type A): bans, ban exceptions, invite
/// exceptions. They share one bound, `MAXLIST=beI:<max_bans>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListMode {
    /// `+b`: matching users may not join or speak.
    Ban,
    /// `+e` (`EXCEPTS=e`): matching users are not stopped by a ban.
    Except,
    /// `+I` (`INVEX=I`): matching users may join a `+i` channel uninvited.
    InviteExcept,
}

impl ListMode {
    pub(crate) fn from_letter(letter: char) -> Option<Self> {
        match letter {
            'b' => Some(Self::Ban),
            'e' => Some(Self::Except),
            'I' => Some(Self::InviteExcept),
            _ => None,
        }
    }
}

/// A mask-list entry (the list numerics show who set it and when).
#[derive(Debug, Clone)]
pub(crate) struct Ban {
    pub(crate) mask: String,
    pub(crate) set_by: String,
    pub(crate) set_at: SystemTime,
}

/// Channel modes other than member status and mask lists (`CHANMODES=beI,k,l,CERimnpstz`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Modes {
    pub(crate) invite_only: bool,
    pub(crate) key: Option<String>,
    pub(crate) limit: Option<usize>,
    pub(crate) moderated: bool,
    pub(crate) no_external: bool,
    /// `+p` (RFC 1459/2811 "private"): the channel's name is kept out of listings
    /// (LIST, NAMES, WHO, WHOIS) for non-members, as for `+s`; unlike `+s`, a
    /// client that already knows the name may still ask about it (TOPIC, MODE).
    /// See [`Channel::hidden_from`].
    pub(crate) private: bool,
    /// `+s`: as `+p`, and to non-members the channel answers as if it did not
    /// exist. See [`Channel::secret_from`].
    pub(crate) secret: bool,
    pub(crate) topic_ops_only: bool,
    /// `+C`: no CTCP messages but ACTION (`/me`).
    pub(crate) no_ctcp: bool,
    /// `+R`: only clients logged in to an account may join (`477`).
    pub(crate) registered_only: bool,
    /// `+E` ("ephemeral"): the channel's messages and events are not kept in
    /// history (see `crate::history`); what was kept before stays until retention.
    pub(crate) no_history: bool,
    /// `+z`: only clients on an encrypted connection (TLS) may join (`489`); the
    /// conversation then never crosses the network in clear text to a newcomer.
    pub(crate) tls_only: bool,
}

/// A channel that exists because at least one client is in it.
#[derive(Debug)]
pub(crate) struct Channel {
    /// The name as its creator spelt it.
    pub(crate) name: String,
    /// Members in joining order of their connection (ids grow monotonically).
    pub(crate) members: BTreeMap<ClientId, Member>,
    pub(crate) topic: Option<Topic>,
    pub(crate) modes: Modes,
    pub(crate) bans: Vec<Ban>,
    /// Ban exceptions (`+e`).
    pub(crate) excepts: Vec<Ban>,
    /// Invite exceptions (`+I`).
    pub(crate) invexes: Vec<Ban>,
    pub(crate) created_at: SystemTime,
    /// On a cluster, the node whose creation of the channel this is, if not this
    /// one: it learnt the channel from that node, or found that node's copy older
    /// than its own (see `World::join_remote`).
    pub(crate) created_on: Option<Box<str>>,
    /// IRCv3 metadata set on this channel (gone with the channel).
    pub(crate) metadata: super::metadata::Store,
    /// On a cluster, the version of the topic, modes and lists (see
    /// `bus::ChannelState::version`); `None` until they change.
    pub(crate) cluster_version: Option<(u64, Box<str>)>,
}

impl Channel {
    pub(crate) fn new(name: String) -> Self {
        Self {
            name,
            members: BTreeMap::new(),
            topic: None,
            // New channels are +nt, as on most networks.
            modes: Modes {
                no_external: true,
                topic_ops_only: true,
                ..Modes::default()
            },
            bans: Vec::new(),
            excepts: Vec::new(),
            invexes: Vec::new(),
            created_at: SystemTime::now(),
            created_on: None,
            metadata: Default::default(),
            cluster_version: None,
        }
    }

    pub(crate) fn status(&self, id: ClientId) -> Option<Status> {
        self.members.get(&id).map(|m| m.status)
    }

    pub(crate) fn is_op(&self, id: ClientId) -> bool {
        self.status(id).is_some_and(|s| s.op)
    }

    /// Whether the channel must be left out of what `viewer` is shown when it did not
    /// name the channel: LIST, NAMES, WHO, the channel list of WHOIS. True for a
    /// `+p` or `+s` channel `viewer` is not in, so a non-member cannot learn such a
    /// channel's name from the server (RFC 2811 §4.2.6).
    pub(crate) fn hidden_from(&self, viewer: ClientId) -> bool {
        (self.modes.private || self.modes.secret) && !self.members.contains_key(&viewer)
    }

    /// Whether a command from `viewer` naming this channel must be answered as if the
    /// channel did not exist (`403`, or `401` for messages): true for a `+s` channel
    /// `viewer` is not in, so that answers never tell a secret channel from a
    /// missing one (RFC 2811 §4.2.6; unlike the RFC, MODE included).
    pub(crate) fn secret_from(&self, viewer: ClientId) -> bool {
        self.modes.secret && !self.members.contains_key(&viewer)
    }

    /// The mode string and its parameters, for `RPL_CHANNELMODEIS`; the key is shown
    /// only to members.
    pub(crate) fn mode_string(&self, show_key: bool) -> (String, Vec<String>) {
        let mut letters = String::from("+");
        let mut params = Vec::new();
        let m = &self.modes;
        for (on, letter) in [
            (m.no_ctcp, 'C'),
            (m.registered_only, 'R'),
            (m.no_history, 'E'),
            (m.invite_only, 'i'),
            (m.moderated, 'm'),
            (m.no_external, 'n'),
            (m.private, 'p'),
            (m.secret, 's'),
            (m.topic_ops_only, 't'),
            (m.tls_only, 'z'),
        ] {
            if on {
                letters.push(letter);
            }
        }
        if let Some(key) = &m.key {
            letters.push('k');
            params.push(if show_key {
                key.clone()
            } else {
                "*".to_owned()
            });
        }
        if let Some(limit) = m.limit {
            letters.push('l');
            params.push(limit.to_string());
        }
        (letters, params)
    }

    /// Whether a client with this `nick!user@host`, logged in to `account`, matches a
    /// ban and no ban exception (`+e`).
    pub(crate) fn is_banned(&self, client_mask: &str, account: Option<&str>) -> bool {
        any_matches(&self.bans, client_mask, account)
            && !any_matches(&self.excepts, client_mask, account)
    }

    /// Whether a client with this `nick!user@host` matches a mute (the `m:` extban,
    /// `EXTBAN=,m`: it may join but not speak) and no exception (`+e mask` or
    /// `+e m:mask`).
    pub(crate) fn is_muted(&self, client_mask: &str, account: Option<&str>) -> bool {
        any_mute_matches(&self.bans, client_mask, account)
            && !any_matches(&self.excepts, client_mask, account)
            && !any_mute_matches(&self.excepts, client_mask, account)
    }

    /// Whether a client with this `nick!user@host` matches an invite exception
    /// (`+I`), so `+i` does not stop it.
    pub(crate) fn is_invite_excepted(&self, client_mask: &str, account: Option<&str>) -> bool {
        any_matches(&self.invexes, client_mask, account)
    }

    /// One of the mask lists.
    pub(crate) fn list(&self, mode: ListMode) -> &Vec<Ban> {
        match mode {
            ListMode::Ban => &self.bans,
            ListMode::Except => &self.excepts,
            ListMode::InviteExcept => &self.invexes,
        }
    }

    pub(crate) fn list_mut(&mut self, mode: ListMode) -> &mut Vec<Ban> {
        match mode {
            ListMode::Ban => &mut self.bans,
            ListMode::Except => &mut self.excepts,
            ListMode::InviteExcept => &mut self.invexes,
        }
    }

    /// Entries in all mask lists together (bounded by `MAXLIST=beI:`).
    pub(crate) fn list_entries(&self) -> usize {
        self.bans.len() + self.excepts.len() + self.invexes.len()
    }

    /// Queues `line` for every member but `except`.
    pub(crate) fn broadcast(&self, line: &bytes::Bytes, except: Option<ClientId>) {
        for (id, member) in &self.members {
            if Some(*id) != except {
                member.outbox.push(line.clone());
            }
        }
    }

    /// Queues a user's event (PART, KICK, MODE, ...) for every member, each in the
    /// variant its capabilities ask for (`account-tag`).
    pub(crate) fn broadcast_event(&self, event: &crate::relay::EventLine) {
        for member in self.members.values() {
            member.outbox.push(event.line_for(member.outbox.caps()));
        }
    }
}

/// Whether `client_mask` matches any entry of a mask list.
/// The prefix of a mute entry in the ban list (`+b m:nick!user@host`).
pub(crate) const MUTE_PREFIX: &str = "m:";

fn any_mute_matches(list: &[Ban], client_mask: &str, account: Option<&str>) -> bool {
    list.iter().any(|entry| {
        entry
            .mask
            .strip_prefix(MUTE_PREFIX)
            .is_some_and(|mask| entry_matches(mask, client_mask, account))
    })
}

fn any_matches(list: &[Ban], client_mask: &str, account: Option<&str>) -> bool {
    list.iter()
        .any(|entry| entry_matches(&entry.mask, client_mask, account))
}

/// The account extban (IRCv3 account-extban, `ACCOUNTEXTBAN=a`): `a:<mask>`
/// matches a client logged in to an account matching `<mask>` (`*`/`?` wildcards,
/// casemapped). The Solanum-style `$a:<mask>` is the same, and `$a` alone matches
/// any logged-in client.
pub(crate) fn is_account_extban(mask: &str) -> bool {
    mask.starts_with("a:") || mask.starts_with("$a")
}

/// Whether one list entry matches a client: an account extban by its account,
/// anything else as a `nick!user@host` mask.
fn entry_matches(mask: &str, client_mask: &str, account: Option<&str>) -> bool {
    let rest = mask
        .strip_prefix("$a")
        .or_else(|| mask.strip_prefix('a').filter(|rest| rest.starts_with(':')));
    let pattern = match rest {
        Some("") => return account.is_some(),
        Some(rest) => rest.strip_prefix(':'),
        None => return palaver_proto::mask::matches(CASEMAPPING, mask, client_mask),
    };
    pattern.is_some_and(|pattern| {
        account.is_some_and(|account| palaver_proto::mask::matches(CASEMAPPING, pattern, account))
    })
}
