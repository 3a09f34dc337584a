//! Users of other nodes, as this node's world holds them (scale-out, see
//! `crate::cluster`).
//!
//! A remote user is an ordinary [`Client`] record in the world, in channels and the
//! nick table like everyone else, so NAMES, WHO, WHOIS, ISON, MONITOR and channel
//! membership need no special case. What differs is its outbox: it is woken onto
//! the cluster link's [`Inbox`] instead of a driver's, and the link forwards what is
//! queued there to the user's home node (one bus message per node per pass, each
//! distinct line once with the list of its recipients there). So a handler that
//! sends a remote user a line (a private message, a JOIN, a KICK) does exactly what
//! it does for a local one. Channel messages, the bulk of the traffic, skip the
//! remote members' outboxes: they travel once per node (see `world::forward`).
//!
//! The other half is state: every change a local user makes that other nodes must
//! know (registration, nick, channels, away, capabilities, account) is queued
//! here as a [`bus::Event`] by [`World::announce`], and the link publishes the
//! queue in order. Events received from other nodes are applied by
//! the cluster's `apply` module, which changes the replica without announcing anything
//! back: a node only announces what its own users did.
//!
//! Two users may create one channel on two nodes at the same moment, each node
//! making its own user the operator before it hears of the other. Every
//! membership the bus carries names its channel's creation (time, node), so the
//! nodes notice, and the older creation wins everywhere, as the older side of a
//! netsplit does on linked IRC servers: the younger copy takes the older one's
//! creation, and its statuses and settings are void ([`World::join_remote`],
//! [`World::put_channel_state`]). The same holds after a partition: a channel
//! made anew on one side while its members' node was cut off is the younger.
//!
//! With no cluster configured, [`World::remote`] is `None` and every hook here is
//! a single branch.

use std::sync::Arc;
use std::time::Instant;

use palaver_proto::CaseKey;
use slab::Slab;

use super::forward::Outgoing;
use super::{ClientId, Map, World};
use crate::bus::{self, Event, Membership, UserRef};
use crate::cluster::claims::Claims;
use crate::outbox::Outbox;
use crate::wakeup::Inbox;

/// One remote user, found from the key its outbox wakes the link with.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    /// Its home node's name, shared by the node's record and its users' slots.
    pub(crate) node: Arc<str>,
    /// Its id on its home node.
    pub(crate) origin: u64,
    /// Its outbox here (also in its `Client` record), whose lines the link takes.
    pub(crate) outbox: Arc<Outbox>,
}

/// Another node, as far as this one knows.
#[derive(Debug)]
pub(crate) struct Node {
    /// Its name, shared with its users' [`Slot`]s.
    pub(crate) name: Arc<str>,
    /// Its incarnation (see `bus::Envelope::boot`).
    pub(crate) boot: u64,
    /// When it was last heard from: silence longer than the node timeout means
    /// it is lost.
    pub(crate) last_seen: Instant,
    /// Its users here: id on that node → id in this world.
    pub(crate) users: Map<u64, ClientId>,
}

/// The cluster side of the world.
#[derive(Debug)]
pub(crate) struct Remote {
    /// This node's name.
    pub(crate) node: Box<str>,
    /// What the link has to send, in order (see `world::forward`).
    pub(crate) outgoing: Vec<Outgoing>,
    /// The link's inbox: remote users' outboxes wake it, and so does
    /// [`World::announce`].
    pub(crate) link: Arc<Inbox>,
    /// Remote users by the key their outbox wakes the link with.
    pub(crate) slots: Slab<Slot>,
    /// The slot of each remote user (by id in this world).
    pub(crate) slot_of: Map<ClientId, usize>,
    /// The other nodes heard from, by name.
    pub(crate) nodes: Map<Box<str>, Node>,
    /// Where nick claims and releases are queued, in order.
    pub(crate) claims: Claims,
    /// Entries dropped because the queue was full (see `Remote::queue`).
    pub(crate) dropped: u64,
}

impl Remote {
    /// The cluster state of node `node`, before anyone else is heard from.
    pub(crate) fn new(node: &str, link: Arc<Inbox>, claims: Claims) -> Self {
        Self {
            node: node.into(),
            outgoing: Vec::new(),
            link,
            slots: Slab::new(),
            slot_of: Map::default(),
            nodes: Map::default(),
            claims,
            dropped: 0,
        }
    }
}

impl World {
    /// Whether `id` is a user of another node.
    pub(crate) fn is_remote(&self, id: ClientId) -> bool {
        self.remote
            .as_ref()
            .is_some_and(|remote| remote.slot_of.contains_key(&id))
    }

    /// Another node's user `id`'s home node and its id there; `None` for this
    /// node's users (and on a single server).
    pub(crate) fn home_of(&self, id: ClientId) -> Option<(Arc<str>, u64)> {
        let remote = self.remote.as_ref()?;
        let slot = remote.slots.get(*remote.slot_of.get(&id)?)?;
        Some((Arc::clone(&slot.node), slot.origin))
    }

    /// Whether `outbox` belongs to a user of this node: what a node tells its own
    /// users about events it applies from the bus (the origin told the rest).
    pub(crate) fn is_local_outbox(&self, outbox: &Outbox) -> bool {
        self.remote
            .as_ref()
            .is_none_or(|remote| !outbox.wakeup().is_on(&remote.link))
    }

    /// `id` as the cluster names it: home node and id there.
    pub(crate) fn user_ref(&self, id: ClientId) -> Option<UserRef> {
        let remote = self.remote.as_ref()?;
        Some(match remote.slot_of.get(&id) {
            Some(&key) => {
                let slot = remote.slots.get(key)?;
                UserRef {
                    node: Box::from(&*slot.node),
                    id: slot.origin,
                }
            }
            None => UserRef {
                node: remote.node.clone(),
                id: id.0,
            },
        })
    }

    /// Queues `event` for the other nodes (nothing without a cluster).
    pub(crate) fn announce(&mut self, event: impl FnOnce(&World) -> Option<Event>) {
        if self.remote.is_none() {
            return;
        }
        let Some(event) = event(self) else {
            return;
        };
        if let Some(remote) = self.remote.as_mut() {
            remote.queue(Outgoing::Event(event));
        }
    }

    /// Announces a local user that completed registration.
    pub(crate) fn announce_user(&mut self, id: ClientId) {
        self.announce(|world| world.intro(id).map(|intro| Event::User(Box::new(intro))));
    }

    /// Announces a local user's join of channel `key`.
    pub(crate) fn announce_join(&mut self, id: ClientId, key: &CaseKey) {
        self.announce(|world| {
            Some(Event::Join {
                id: id.0,
                membership: world.membership(id, key)?,
            })
        });
    }

    /// Announces that `id` (of any node) left channel `key` (PART, KICK, SAPART).
    pub(crate) fn announce_part(&mut self, id: ClientId, key: &CaseKey) {
        self.announce(|world| {
            Some(Event::Part {
                user: world.user_ref(id)?,
                channel: world.channels.get(key)?.name.clone(),
            })
        });
    }

    /// Announces `id`'s (of any node) new status on channel `key`.
    pub(crate) fn announce_status(&mut self, id: ClientId, key: &CaseKey) {
        self.announce(|world| {
            Some(Event::Status {
                user: world.user_ref(id)?,
                membership: world.membership(id, key)?,
            })
        });
    }

    /// Announces a local registered user again after a change other nodes show
    /// (capabilities, away, account, user modes, real name): they replace their
    /// record of it whole.
    pub(crate) fn announce_user_state(&mut self, id: ClientId) {
        if !self.is_remote(id) {
            self.announce_user(id);
        }
    }

    /// Announces registration `key` as this node now has it (registered, changed
    /// access, or dropped when it is gone).
    pub(crate) fn announce_registration(&mut self, key: &CaseKey) {
        self.announce(|world| {
            Some(Event::Registration {
                key: key.as_str().to_owned(),
                registration: world.registry.get(key).cloned().map(Box::new),
            })
        });
    }

    /// Announces that account `name` was registered (or, `false`, dropped) here.
    pub(crate) fn announce_account_name(&mut self, name: &str, registered: bool) {
        self.announce(|_| {
            Some(Event::AccountName {
                name: name.to_owned(),
                registered,
            })
        });
    }

    /// Announces that `id` (of any node) was invited to channel `key`.
    pub(crate) fn announce_invite(&mut self, id: ClientId, key: &CaseKey) {
        self.announce(|world| {
            Some(Event::Invite {
                user: world.user_ref(id)?,
                channel: world.channels.get(key)?.name.clone(),
            })
        });
    }

    /// Releases the cluster-wide claim on nick `key`, which a local user no
    /// longer holds.
    pub(crate) fn release_nick(&mut self, key: CaseKey, id: ClientId) {
        if let Some(remote) = self.remote.as_ref() {
            remote.claims.release(key, id.0);
        }
    }

    /// `id`'s membership of channel `key`, as the bus carries it.
    fn membership(&self, id: ClientId, key: &CaseKey) -> Option<Membership> {
        let channel = self.channels.get(key)?;
        let status = channel.status(id)?;
        Some(Membership {
            channel: channel.name.clone(),
            op: status.op,
            voice: status.voice,
            created: self.creation(channel),
        })
    }

    /// When and on which node `channel` was created, as the bus carries it.
    fn creation(&self, channel: &super::Channel) -> (i64, Box<str>) {
        let node = match (&channel.created_on, &self.remote) {
            (Some(node), _) => node.clone(),
            (None, Some(remote)) => remote.node.clone(),
            (None, None) => Box::default(),
        };
        (unix_millis(channel.created_at), node)
    }

    /// The creation of channel `key`, if it exists here.
    fn creation_of(&self, key: &CaseKey) -> Option<(i64, Box<str>)> {
        self.channels.get(key).map(|channel| self.creation(channel))
    }

    /// Everything other nodes need to know about local user `id`.
    pub(crate) fn intro(&self, id: ClientId) -> Option<bus::Intro> {
        let client = self.clients.get(&id).filter(|c| c.is_registered())?;
        Some(bus::Intro {
            id: id.0,
            nick: client.nick().to_owned(),
            user: client.user().to_owned(),
            host: client.host.to_string(),
            realname: client.realname.to_string(),
            account: client.account.as_deref().map(str::to_owned),
            caps: client.caps.bits(),
            invisible: client.invisible,
            oper: client.oper,
            bot: client.bot,
            tls: client.tls,
            away: client.away.as_deref().map(str::to_owned),
            signon: client.signon,
            channels: client
                .channels
                .iter()
                .filter_map(|key| self.membership(id, key))
                .collect(),
        })
    }
}

impl World {
    /// Makes this world node `node` of a cluster whose link wakes on `link`. Message
    /// ids then start with the node's name, so they are unique cluster-wide.
    pub(crate) fn join_cluster(&mut self, node: &str, link: Arc<Inbox>, claims: Claims) {
        self.msgid_prefix = format!("{node}.{}", self.msgid_prefix);
        self.remote = Some(Box::new(Remote::new(node, link, claims)));
    }

    /// The cluster's part of removing client `id` (called by `remove_client`
    /// before the record goes): a local user's departure is announced and its nick
    /// claim released; a remote user's slot is freed.
    pub(super) fn leave_cluster(&mut self, id: ClientId) {
        let Some(remote) = self.remote.as_mut() else {
            return;
        };
        if let Some(key) = remote.slot_of.remove(&id) {
            if remote.slots.contains(key) {
                let slot = remote.slots.remove(key);
                if let Some(node) = remote.nodes.get_mut(&*slot.node) {
                    node.users.remove(&slot.origin);
                }
            }
            return;
        }
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        let registered = client.is_registered();
        let nick = client.nick.as_deref().map(World::key);
        if registered {
            remote.queue(Outgoing::Event(Event::Quit { id: id.0 }));
        }
        if let Some(key) = nick {
            remote.claims.release(key, id.0);
        }
    }
}

/// The sendq of a remote user's outbox here: the link drains it every pass, so it
/// fills only while the bus is slow or down; past it, the user's home node is
/// asked to disconnect it ("SendQ exceeded"), as a local client would be.
const REMOTE_SENDQ: usize = 1 << 20;

impl World {
    /// Records that client `id` was invited to channel `key` (bounded as INVITE
    /// bounds it: the oldest invitation goes first).
    pub(crate) fn note_invite(&mut self, id: ClientId, key: &CaseKey) {
        let max_invites = self.config.limits.max_invites;
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        if !client.invites.contains(key) {
            if client.invites.len() >= max_invites {
                client.invites.remove(0);
            }
            client.invites.push(key.clone());
        }
    }

    /// The id here of user `origin` of node `node`, if known.
    pub(crate) fn remote_user(&self, node: &str, origin: u64) -> Option<ClientId> {
        self.remote
            .as_ref()?
            .nodes
            .get(node)?
            .users
            .get(&origin)
            .copied()
    }

    /// Adds (or, from a burst, refreshes) a user of node `node`, with its
    /// channels, without telling anyone but the local MONITOR watchers of its
    /// nick: its home node announced it to the channels when it happened.
    pub(crate) fn put_remote_user(&mut self, node: &str, intro: &bus::Intro) {
        if let Some(id) = self.remote_user(node, intro.id) {
            self.refresh_remote_user(id, intro);
            return;
        }
        let Some(remote) = self.remote.as_mut() else {
            return;
        };
        let Some(known) = remote.nodes.get_mut(node) else {
            return;
        };
        let id = ClientId(self.next_id);
        self.next_id += 1;
        let entry = remote.slots.vacant_entry();
        let key = entry.key();
        let outbox = Arc::new(Outbox::new(
            REMOTE_SENDQ,
            crate::wakeup::Wakeup::new(key, Arc::clone(&remote.link)),
        ));
        entry.insert(Slot {
            node: Arc::clone(&known.name),
            origin: intro.id,
            outbox: Arc::clone(&outbox),
        });
        remote.slot_of.insert(id, key);
        known.users.insert(intro.id, id);
        let client = super::Client::new(
            id,
            std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            outbox,
        );
        // Registered by `refresh_remote_user`, which counts it in LUSERS then.
        self.clients.insert(id, Box::new(client));
        self.refresh_remote_user(id, intro);
    }

    /// Brings remote user `id` up to `intro`: identity, modes, nick (MONITOR
    /// watchers here are told), channels and statuses (silently).
    fn refresh_remote_user(&mut self, id: ClientId, intro: &bus::Intro) {
        let before = self
            .clients
            .get(&id)
            .map(|c| c.census())
            .unwrap_or_default();
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        client.user = Some(intro.user.as_str().into());
        client.host = intro.host.as_str().into();
        client.realname = intro.realname.as_str().into();
        client.account = intro.account.as_deref().map(Into::into);
        client.caps = crate::caps::CapSet::from_bits(intro.caps);
        client.outbox.set_caps(client.caps);
        client.invisible = intro.invisible;
        client.oper = intro.oper;
        client.bot = intro.bot;
        client.tls = intro.tls;
        client.away = intro.away.as_deref().map(Into::into);
        client.signon = intro.signon;
        client.registration = super::Registration::Done;
        let after = client.census();
        self.recount(before, after);
        self.rename_remote_user(id, &intro.nick);
        let wanted: Map<CaseKey, &bus::Membership> = intro
            .channels
            .iter()
            .map(|membership| (World::key(&membership.channel), membership))
            .collect();
        let current: Vec<CaseKey> = self
            .clients
            .get(&id)
            .map(|c| c.channels.iter().cloned().collect())
            .unwrap_or_default();
        for key in current.iter().filter(|key| !wanted.contains_key(*key)) {
            self.part_channel(id, key);
        }
        for membership in wanted.values() {
            self.join_remote(id, membership);
        }
    }

    /// Gives remote user `id` the nick `nick`, telling local MONITOR watchers.
    pub(crate) fn rename_remote_user(&mut self, id: ClientId, nick: &str) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let old = client.nick.replace(nick.into());
        let new_key = World::key(nick);
        let old_key = old.as_deref().map(World::key);
        if old_key.as_ref() == Some(&new_key) {
            return;
        }
        if let Some(old_key) = &old_key
            && self.nicks.get(old_key) == Some(&id)
        {
            self.nicks.remove(old_key);
        }
        // The old nick goes to WHOWAS here too (as a quit does, through
        // `remove_client`), with the identity it had under it.
        if let (Some(old_nick), Some(old_key)) = (old.as_deref(), old_key.clone())
            && let Some(client) = self.clients.get(&id)
        {
            let mut entry = super::WhowasEntry::of(client, old_key);
            entry.nick = old_nick.to_owned();
            self.remember(entry);
        }
        match self.nicks.get(&new_key) {
            Some(holder) if *holder != id => {
                // The cluster-wide claim makes this a moment's disagreement at
                // most (a claim released and taken again faster than the events
                // travel); the nick stays with who holds it here.
                tracing::warn!(nick, "a remote user's nick is held by another user here");
            }
            _ => {
                self.nicks.insert(new_key, id);
            }
        }
        if let Some(old) = old {
            self.notify_monitors_offline(&old);
        }
        self.notify_monitors_online(id);
    }

    /// Puts remote user `id` in a channel with a status (creating the channel
    /// here if needed), or updates its status there. Returns whether this node's
    /// members of the channel have not seen it join: its node created the channel
    /// at the same moment as this one (see "Channels created on two nodes at
    /// once" below), so it did not know them.
    pub(crate) fn join_remote(&mut self, id: ClientId, membership: &bus::Membership) -> bool {
        let key = World::key(&membership.channel);
        let Some(outbox) = self.clients.get(&id).map(|c| Arc::clone(&c.outbox)) else {
            return false;
        };
        let theirs = &membership.created;
        let ours = self.creation_of(&key);
        if ours.as_ref().is_some_and(|ours| theirs < ours) {
            self.yield_channel(&key, theirs);
        }
        // Their node holds a younger copy: it gets this one's settings, which
        // replace its own (see `put_channel_state`).
        let resend_settings = ours.as_ref().is_some_and(|ours| theirs > ours);
        let counts = ours.as_ref().is_none_or(|ours| theirs <= ours);
        let status = super::Status {
            op: membership.op && counts,
            voice: membership.voice && counts,
        };
        let channel = self.create_channel(&key, membership.channel.clone());
        if ours.is_none() {
            channel.created_at = from_unix_millis(theirs.0);
            channel.created_on = Some(theirs.1.clone());
        }
        let unseen = ours.is_some_and(|ours| ours != *theirs) && !channel.members.contains_key(&id);
        channel
            .members
            .entry(id)
            .and_modify(|member| member.status = status)
            .or_insert(super::Member { status, outbox });
        if let Some(client) = self.clients.get_mut(&id) {
            client.channels.insert(key.clone());
        }
        if resend_settings {
            self.announce_channel(&key);
        }
        unseen
    }

    /// Applies another node's change of `user`'s status on a channel (MODE
    /// +o/-o/+v/-v there), unless it was made in a younger copy of the channel.
    pub(crate) fn put_remote_status(&mut self, user: ClientId, membership: &bus::Membership) {
        let key = World::key(&membership.channel);
        let Some(ours) = self.creation_of(&key) else {
            return;
        };
        if membership.created > ours {
            return;
        }
        if let Some(member) = self
            .channels
            .get_mut(&key)
            .and_then(|channel| channel.members.get_mut(&user))
        {
            member.status.op = membership.op;
            member.status.voice = membership.voice;
        }
    }

    /// Channel `key` here turns out younger than another node's copy, created
    /// `older` (two users created it on two nodes at once): like the younger
    /// side of a netsplit on a linked IRC network, it takes the older creation
    /// time, every status given in it is void, and its settings go back to a
    /// new channel's until the older copy's arrive (`put_channel_state`). Local
    /// members see the
    /// statuses go (`MODE -o`/`-v` from the server); the other nodes learn this
    /// node's users' new statuses. The older copy's members keep theirs.
    fn yield_channel(&mut self, key: &CaseKey, older: &(i64, Box<str>)) {
        let Some(channel) = self.channels.get_mut(key) else {
            return;
        };
        channel.created_at = from_unix_millis(older.0);
        channel.created_on = Some(older.1.clone());
        // Its settings are void too: back to a new channel's (or its
        // registration's), unversioned, until the older copy's state replaces
        // them (its node sends it on seeing this copy, see `join_remote`).
        let max_bans = self.config.limits.max_bans;
        let fresh = super::registry::Settings::of(&super::Channel::new(channel.name.clone()));
        let before = channel.list_entries();
        let after =
            fresh.apply_to(channel, max_bans) + self.registry.restore(key, channel, max_bans);
        self.list_entries_total = self.list_entries_total.saturating_sub(before) + after;
        channel.cluster_version = None;
        let mut lost = Vec::new();
        for (id, member) in &mut channel.members {
            if member.status != super::Status::default() {
                lost.push((*id, member.status));
                member.status = super::Status::default();
            }
        }
        tracing::info!(
            channel = %channel.name,
            statuses = lost.len(),
            "channel created on another node first; its statuses here are void"
        );
        let Some(channel) = self.channels.get(key) else {
            return;
        };
        for (id, status) in &lost {
            let Some(nick) = self.clients.get(id).map(|c| c.nick().to_owned()) else {
                continue;
            };
            for (held, letter) in [(status.op, "-o"), (status.voice, "-v")] {
                if !held {
                    continue;
                }
                let mut line = palaver_proto::LineWriter::new();
                line.source(&self.config.server_name)
                    .command("MODE")
                    .param(&channel.name)
                    .param(letter)
                    .param(&nick);
                let line = crate::relay::EventLine::new(line.finish(), None);
                for member in channel.members.values() {
                    if self.is_local_outbox(&member.outbox) {
                        member.outbox.push(line.line_for(member.outbox.caps()));
                    }
                }
            }
        }
        for (id, _) in lost {
            if !self.is_remote(id) {
                self.announce_status(id, key);
            }
        }
    }

    /// Removes remote user `id`. With a reason, the local users who share a
    /// channel with it see it quit (its home node cannot tell them: it is lost).
    pub(crate) fn remove_remote_user(&mut self, id: ClientId, reason: Option<&str>) {
        if let Some(reason) = reason
            && let Some(client) = self.clients.get(&id)
        {
            let mut line = client.line_from();
            line.command("QUIT").trailing(reason);
            let line = crate::relay::EventLine::new(line.finish(), client.account.as_deref());
            for peer in self.peers_of(id) {
                if self.is_local_outbox(&peer) {
                    peer.push(line.line_for(peer.caps()));
                }
            }
        }
        self.remove_client(id, None);
    }

    /// Forgets node `node` and every user of it (they quit here with `reason`);
    /// returns the nicks they held, whose claims the caller releases.
    pub(crate) fn drop_node(&mut self, node: &str, reason: &str) -> Vec<CaseKey> {
        let Some(known) = self.remote.as_mut().and_then(|r| r.nodes.remove(node)) else {
            return Vec::new();
        };
        let mut nicks = Vec::with_capacity(known.users.len());
        for id in known.users.into_values() {
            if let Some(nick) = self.clients.get(&id).and_then(|c| c.nick.as_deref()) {
                nicks.push(World::key(nick));
            }
            self.remove_remote_user(id, Some(reason));
        }
        nicks
    }
}

impl World {
    /// After a local change to channel `key`'s topic, modes or lists: gives it a
    /// version above every one seen and tells the other nodes its state.
    pub(crate) fn announce_channel(&mut self, key: &CaseKey) {
        let Some(node) = self.remote.as_ref().map(|remote| remote.node.clone()) else {
            return;
        };
        let Some(channel) = self.channels.get_mut(key) else {
            return;
        };
        let now = u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
        )
        .unwrap_or(u64::MAX);
        let floor = channel.cluster_version.as_ref().map_or(0, |(at, _)| at + 1);
        channel.cluster_version = Some((now.max(floor), node));
        self.announce(|world| {
            world
                .channel_state(key)
                .map(|state| Event::Channel(Box::new(state)))
        });
    }

    /// Channel `key`'s state as the bus carries it.
    pub(crate) fn channel_state(&self, key: &CaseKey) -> Option<bus::ChannelState> {
        let channel = self.channels.get(key)?;
        let settings = super::registry::Settings::of(channel);
        Some(bus::ChannelState {
            channel: channel.name.clone(),
            version: channel
                .cluster_version
                .clone()
                .unwrap_or((0, Box::default())),
            created: self.creation(channel),
            topic: settings.topic.map(|topic| bus::Topic {
                text: topic.text,
                set_by: topic.set_by,
                set_at: topic.set_at.millis(),
            }),
            modes: settings.modes,
            key: settings.key,
            limit: settings.limit,
            lists: settings
                .lists
                .into_iter()
                .map(|entry| bus::ListEntry {
                    list: match entry.kind {
                        palaver_store::ListKind::Ban => 'b',
                        palaver_store::ListKind::Except => 'e',
                        palaver_store::ListKind::InviteExcept => 'I',
                    },
                    mask: entry.mask,
                    set_by: entry.set_by,
                    set_at: entry.set_at.millis(),
                })
                .collect(),
        })
    }

    /// Applies another node's channel state if it is newer than this node's. The
    /// creations decide first, as for statuses: a younger copy's state is ignored
    /// (so a user who made a channel anew on a node cut off from the others, and
    /// became its operator there, cannot impose its topic, modes or bans when the
    /// node returns), and an older copy's is taken whatever its version, this
    /// copy yielding to it.
    pub(crate) fn put_channel_state(&mut self, state: &bus::ChannelState) {
        let key = World::key(&state.channel);
        let max_bans = self.config.limits.max_bans;
        let Some(ours) = self.creation_of(&key) else {
            return;
        };
        if state.created > ours {
            return;
        }
        let older = state.created < ours;
        if older {
            self.yield_channel(&key, &state.created);
        }
        let Some(channel) = self.channels.get_mut(&key) else {
            return;
        };
        // A state never versioned (a channel nobody changed since its creation,
        // or one that yielded) holds nothing to win with.
        let versioned = state.version.0 > 0;
        let newer = versioned
            && channel
                .cluster_version
                .as_ref()
                .is_none_or(|current| state.version > *current);
        if !older && !newer {
            return;
        }
        let settings = super::registry::Settings {
            topic: state.topic.as_ref().map(|topic| palaver_store::Topic {
                text: topic.text.clone(),
                set_by: topic.set_by.clone(),
                set_at: palaver_store::Timestamp(topic.set_at),
            }),
            modes: state.modes.clone(),
            key: state.key.clone(),
            limit: state.limit,
            lists: state
                .lists
                .iter()
                .filter_map(|entry| {
                    Some(palaver_store::ListEntry {
                        kind: match entry.list {
                            'b' => palaver_store::ListKind::Ban,
                            'e' => palaver_store::ListKind::Except,
                            'I' => palaver_store::ListKind::InviteExcept,
                            _ => return None,
                        },
                        mask: entry.mask.clone(),
                        set_by: entry.set_by.clone(),
                        set_at: palaver_store::Timestamp(entry.set_at),
                    })
                })
                .collect(),
        };
        let before = channel.list_entries();
        let after = settings.apply_to(channel, max_bans);
        channel.cluster_version = Some(state.version.clone());
        self.list_entries_total = self.list_entries_total.saturating_sub(before) + after;
        super::registry::keep_registration_current(self, &key);
    }
}

/// `at` in milliseconds since the Unix epoch (a channel's creation time, as the
/// bus carries it).
fn unix_millis(at: std::time::SystemTime) -> i64 {
    at.duration_since(std::time::UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    })
}

/// The time `millis` milliseconds after the Unix epoch.
fn from_unix_millis(millis: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}
