//! One channel: members with their status, topic, modes and ban list.

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

/// A ban-list entry (`RPL_BANLIST` shows who set it and when).
#[derive(Debug, Clone)]
pub(crate) struct Ban {
    pub(crate) mask: String,
    pub(crate) set_by: String,
    pub(crate) set_at: SystemTime,
}

/// Channel modes other than member status and bans (`CHANMODES=b,k,l,imnst`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Modes {
    pub(crate) invite_only: bool,
    pub(crate) key: Option<String>,
    pub(crate) limit: Option<usize>,
    pub(crate) moderated: bool,
    pub(crate) no_external: bool,
    pub(crate) secret: bool,
    pub(crate) topic_ops_only: bool,
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
    pub(crate) created_at: SystemTime,
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
            created_at: SystemTime::now(),
        }
    }

    pub(crate) fn status(&self, id: ClientId) -> Option<Status> {
        self.members.get(&id).map(|m| m.status)
    }

    pub(crate) fn is_op(&self, id: ClientId) -> bool {
        self.status(id).is_some_and(|s| s.op)
    }

    /// The mode string and its parameters, for `RPL_CHANNELMODEIS`; the key is shown
    /// only to members.
    pub(crate) fn mode_string(&self, show_key: bool) -> (String, Vec<String>) {
        let mut letters = String::from("+");
        let mut params = Vec::new();
        let m = &self.modes;
        for (on, letter) in [
            (m.invite_only, 'i'),
            (m.moderated, 'm'),
            (m.no_external, 'n'),
            (m.secret, 's'),
            (m.topic_ops_only, 't'),
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

    /// Whether a client with this `nick!user@host` matches a ban.
    pub(crate) fn is_banned(&self, client_mask: &str) -> bool {
        self.bans
            .iter()
            .any(|ban| palaver_proto::mask::matches(CASEMAPPING, &ban.mask, client_mask))
    }

    /// Queues `line` for every member but `except`.
    pub(crate) fn broadcast(&self, line: &bytes::Bytes, except: Option<ClientId>) {
        for (id, member) in &self.members {
            if Some(*id) != except {
                member.outbox.push(line.clone());
            }
        }
    }
}
