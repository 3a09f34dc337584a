//! What this node sends the other nodes, in order: one queue
//! ([`Remote::outgoing`]) shared by state events, channel messages and the lines
//! for remote users, so that every recipient gets them in the order they happened
//! here.
//!
//! A line for one remote user is pushed to its outbox like any other, so handlers
//! need no special case. It joins the queue when the link takes it, or earlier
//! ([`Remote::settle`]), when a channel message is queued, so a channel message never
//! overtakes a private message or a JOIN sent before it.
//!
//! A message to a channel with members on other nodes is queued once, naming those
//! nodes ([`Fanout`]), instead of being pushed to every remote member. Each node
//! formats it for its own members ([`World::deliver_channel_message`]), as the
//! sender does for its own. That makes a delivery to another node's user cost
//! about what a local one costs: the extra is per node, not per recipient.
//!
//! History holds travel with the queue: an entry carries the commit its lines wait
//! for, and the link sends nothing past an entry whose commit has not happened yet.

use std::sync::Arc;

use bytes::Bytes;
use slab::Slab;

use super::remote::{Remote, Slot};
use super::{ClientId, Recipients, World};
use crate::bus::{self, Event};
use crate::lock;
use crate::outbox::{Outbox, Taken};
use crate::relay::{Kind, Relay, Stamp};
use crate::wakeup::Inbox;

/// Most entries waiting for the link. The link drains the queue every pass (and
/// drops what it takes while the bus is down), so a queue this long means the
/// link itself is stuck.
const MAX_OUTGOING: usize = 100_000;

/// One thing for the link to send, in order.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// Tell every other node.
    Event(Event),
    /// Lines for one user of another node.
    Lines(Box<Lines>),
    /// An event for one node only (a request about one of its users), in order
    /// with that node's lines.
    To { node: Arc<str>, event: Event },
    /// A channel message, for the nodes that have members of the channel.
    Channel {
        nodes: Vec<Arc<str>>,
        message: Box<bus::ChannelMessage>,
        /// The commit it waits for (0: none; see the module doc).
        hold: u64,
    },
}

impl Outgoing {
    /// The commit this entry (and so everything after it) waits for; 0 for none.
    pub(crate) fn hold(&self) -> u64 {
        match self {
            Self::Lines(lines) => lines.hold,
            Self::Channel { hold, .. } => *hold,
            Self::Event(_) | Self::To { .. } => 0,
        }
    }
}

/// Lines taken from a remote user's outbox.
#[derive(Debug)]
pub(crate) struct Lines {
    /// The user's home node.
    pub(crate) node: Arc<str>,
    /// Its id there.
    pub(crate) to: u64,
    pub(crate) lines: Vec<Bytes>,
    /// Where they came from: its sendq counts them until the link sends them.
    pub(crate) outbox: Arc<Outbox>,
    /// The commit the lines wait for (0: none).
    pub(crate) hold: u64,
    /// The connection must end, with this reason: a KILL here, or its sendq here
    /// overflowed.
    pub(crate) disconnect: Option<String>,
}

impl Remote {
    /// Queues `entry` for the link and wakes it.
    pub(crate) fn queue(&mut self, entry: Outgoing) {
        if self.outgoing.len() >= MAX_OUTGOING {
            // Once per 10,000, not per entry: a stuck link must not flood the log.
            if self.dropped.is_multiple_of(10_000) {
                tracing::warn!(
                    dropped = self.dropped + 1,
                    "cluster traffic is not being sent; entries dropped"
                );
            }
            self.dropped += 1;
            if let Outgoing::Lines(lines) = &entry {
                lines
                    .outbox
                    .written(lines.lines.iter().map(Bytes::len).sum());
            }
            return;
        }
        self.outgoing.push(entry);
        self.link.wakeup.notify_one();
    }

    /// Moves the lines queued on remote users' outboxes (those that woke the link)
    /// into the queue, behind everything queued so far.
    pub(crate) fn settle(&mut self) {
        let ready = std::mem::take(&mut *lock(&self.link.ready));
        for key in ready {
            let Some(slot) = self.slots.get(key) else {
                continue;
            };
            let outbox = Arc::clone(&slot.outbox);
            // A push from here on wakes the link again.
            outbox.wakeup().taken();
            let mut lines = Vec::new();
            let (taken, hold) = outbox.take_all(&mut lines);
            let disconnect = match taken {
                Taken::Disconnect(reason) | Taken::Aborted(reason) => Some(reason),
                Taken::Open | Taken::Held | Taken::Closed => None,
            };
            if lines.is_empty() && disconnect.is_none() {
                continue;
            }
            let entry = Lines {
                node: Arc::clone(&slot.node),
                to: slot.origin,
                lines,
                outbox,
                hold,
                disconnect,
            };
            self.queue(Outgoing::Lines(Box::new(entry)));
        }
    }
}

/// The nodes a channel message goes to, found while walking its members: a member
/// whose outbox wakes the link is another node's, and that node formats the
/// message for it.
#[derive(Debug)]
pub(crate) struct Fanout<'a> {
    link: &'a Arc<Inbox>,
    slots: &'a Slab<Slot>,
    nodes: Vec<Arc<str>>,
}

impl Fanout<'_> {
    /// Whether the member with `outbox` is another node's user (its node is
    /// noted): if so, this node does not deliver to it.
    pub(crate) fn takes(&mut self, outbox: &Outbox) -> bool {
        let wakeup = outbox.wakeup();
        if !wakeup.is_on(self.link) {
            return false;
        }
        if let Some(slot) = self.slots.get(wakeup.key())
            && !self.nodes.iter().any(|node| Arc::ptr_eq(node, &slot.node))
        {
            self.nodes.push(Arc::clone(&slot.node));
        }
        true
    }

    /// The nodes that have members to deliver to.
    pub(crate) fn into_nodes(self) -> Vec<Arc<str>> {
        self.nodes
    }
}

impl World {
    /// For a message to `recipients`: the [`Fanout`] that picks out the members of
    /// other nodes; `None` without a cluster or for a private message (which goes
    /// through the remote user's outbox).
    pub(crate) fn fanout(&self, recipients: &Recipients) -> Option<Fanout<'_>> {
        let remote = self.remote.as_deref()?;
        matches!(recipients, Recipients::Channel { .. }).then(|| Fanout {
            link: &remote.link,
            slots: &remote.slots,
            nodes: Vec::new(),
        })
    }

    /// Queues `event` (made from the user's id there) for the home node of
    /// remote user `id`, after the lines queued so far for its users; `false` if
    /// `id` is not another node's user.
    pub(crate) fn send_to_home(&mut self, id: ClientId, event: impl FnOnce(u64) -> Event) -> bool {
        let Some(remote) = self.remote.as_mut() else {
            return false;
        };
        let Some(slot) = remote
            .slot_of
            .get(&id)
            .and_then(|key| remote.slots.get(*key))
        else {
            return false;
        };
        let (node, origin) = (Arc::clone(&slot.node), slot.origin);
        remote.settle();
        remote.queue(Outgoing::To {
            node,
            event: event(origin),
        });
        true
    }

    /// Queues channel message `message` for `nodes`, after the lines queued so far
    /// for their users; `hold` is the commit it waits for (0: none).
    pub(crate) fn forward_channel_message(
        &mut self,
        nodes: Vec<Arc<str>>,
        message: bus::ChannelMessage,
        hold: u64,
    ) {
        let Some(remote) = self.remote.as_mut().filter(|_| !nodes.is_empty()) else {
            return;
        };
        remote.settle();
        remote.queue(Outgoing::Channel {
            nodes,
            message: Box::new(message),
            hold,
        });
    }

    /// Delivers another node's channel message to this node's members of the
    /// channel, with the checks relay makes for its own (STATUSMSG, TAGMSG only to
    /// message-tags); returns how many got it.
    pub(crate) fn deliver_channel_message(&mut self, message: bus::ChannelMessage) -> u64 {
        let World {
            remote,
            channels,
            counters,
            ..
        } = self;
        let Some(remote) = remote.as_deref() else {
            return 0;
        };
        let Some(channel) = channels.get(&World::key(message.channel())) else {
            return 0;
        };
        let kind = Kind::from(message.kind);
        let stamp = Stamp::at_millis(message.msgid, message.at);
        let mut relay = Relay::new(
            (&message.nick, &message.user, &message.host),
            kind.command(),
            &message.target,
            message.text.as_deref(),
            &message.client_tags,
            message.bot,
            &stamp,
        )
        .with_account(message.account.as_deref());
        let mut delivered = 0;
        for member in channel.members.values() {
            let outbox = &member.outbox;
            // Only this node's own users: the sender and the other nodes' users
            // are served by their nodes.
            if outbox.wakeup().is_on(&remote.link)
                || !Recipients::status_admits(message.min_status, member.status)
            {
                continue;
            }
            let caps = outbox.caps();
            if kind.reaches(caps) {
                outbox.push_delivery_held(relay.line_for(caps), 0);
                delivered += 1;
            }
        }
        counters.deliveries += delivered;
        delivered
    }
}

impl From<Kind> for bus::Relayed {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Privmsg => Self::Privmsg,
            Kind::Notice => Self::Notice,
            Kind::Tagmsg => Self::Tagmsg,
        }
    }
}

impl From<bus::Relayed> for Kind {
    fn from(kind: bus::Relayed) -> Self {
        match kind {
            bus::Relayed::Privmsg => Self::Privmsg,
            bus::Relayed::Notice => Self::Notice,
            bus::Relayed::Tagmsg => Self::Tagmsg,
        }
    }
}
