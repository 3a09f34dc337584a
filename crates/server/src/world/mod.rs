//! The world model: every client, nickname and channel of this server.
//!
//! The whole world sits behind one std mutex (see [`crate::Shared`]). A command handler
//! locks it, changes what it must and queues the resulting lines on outboxes, all
//! without awaiting; the sockets are written later by each connection's writer. So
//! every state change is atomic with the lines that announce it, and the lock is never
//! held across I/O. Clients are removed only by their own connection task, through
//! [`World::remove_client`], which is the single place that announces a departure.

pub(crate) mod auth_failures;
mod channel;
mod client;
mod events;
pub(crate) mod forward;
pub(crate) mod metadata;
mod monitor;
pub(crate) mod read_markers;
pub(crate) mod recent;
mod recipients;
pub(crate) mod registry;
pub(crate) mod remote;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use palaver_proto::{CaseKey, CaseMapping, LineWriter};

pub(crate) use channel::{
    Ban, Channel, ListMode, MUTE_PREFIX, Member, Status, Topic, is_account_extban,
};
pub(crate) use client::ClientId;
pub(crate) use client::{Client, Mechanism, OpenBatch, Registration, Sasl, Step, unix_now};
pub(crate) use events::{kept_for, record_event};
pub(crate) use recipients::Recipients;

use crate::config::Config;
use crate::outbox::Outbox;

/// The casemapping this server announces and compares names with.
pub(crate) const CASEMAPPING: CaseMapping = CaseMapping::Rfc1459;

/// A departed nickname, for WHOWAS.
#[derive(Debug, Clone)]
pub(crate) struct WhowasEntry {
    pub(crate) key: CaseKey,
    pub(crate) nick: String,
    pub(crate) user: String,
    pub(crate) host: String,
    pub(crate) realname: String,
    pub(crate) left_at: SystemTime,
}

impl WhowasEntry {
    /// The entry for `client` leaving the nickname `key`.
    pub(crate) fn of(client: &Client, key: CaseKey) -> Self {
        Self {
            key,
            nick: client.nick().to_owned(),
            user: client.user().to_owned(),
            host: client.host.to_string(),
            realname: client.realname.to_string(),
            left_at: SystemTime::now(),
        }
    }
}

/// All server state that commands read and change.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) config: Arc<Config>,
    /// The store history is appended to (appends only queue, so they may happen
    /// with the world locked; everything else on it is awaited outside the lock).
    pub(crate) store: Arc<dyn palaver_store::Store>,
    /// Boxed: the table then holds pointers, and its spare capacity costs 8 bytes a slot
    /// rather than a whole client record (hash tables run up to half empty).
    pub(crate) clients: Map<ClientId, Box<Client>>,
    /// The SHA-256 fingerprint (lowercase hex) of the client certificate each client
    /// presented, for WHOIS (276) and SASL EXTERNAL: apart from the client record,
    /// which most clients (without a certificate) would pay 16 bytes more for.
    pub(crate) certfps: Map<ClientId, Box<str>>,
    /// Registered and registering nicknames (folded) to their owner, in order: WHO
    /// walks it a page at a time, resuming after the last nickname it answered (see
    /// `handlers::paged`). Nicknames are looked up per private message, not per
    /// channel delivery, so the ordered map costs the hot path nothing.
    pub(crate) nicks: BTreeMap<CaseKey, ClientId>,
    /// Channels by folded name; a channel exists while it has members. Create and
    /// drop them with [`World::create_channel`] and [`World::drop_channel_if_empty`],
    /// which keep [`World::channel_order`] and the server-wide count in step.
    pub(crate) channels: Map<CaseKey, Channel>,
    /// The folded names of [`World::channels`], in order, so that LIST can walk them a
    /// page at a time and resume after the last name it sent.
    pub(crate) channel_order: BTreeSet<CaseKey>,
    /// Most recent departures first, bounded by `limits.whowas_entries`.
    pub(crate) whowas: VecDeque<WhowasEntry>,
    /// Start of this server process (`RPL_CREATED`).
    pub(crate) started: SystemTime,
    /// Makes message ids unique across restarts: the start time, in hex.
    msgid_prefix: String,
    /// Counter for message ids and batch references.
    next_serial: u64,
    /// Most registered clients seen at once (`RPL_LOCALUSERS`), updated on registration.
    pub(crate) max_clients_seen: usize,
    /// MONITOR lists and their reverse index (nickname → watchers).
    pub(crate) monitors: monitor::Monitors,
    /// `draft/read-marker` timestamps, per client (per account once accounts land).
    pub(crate) read_markers: read_markers::ReadMarkers,
    /// Recently relayed messages, for `draft/message-redaction`.
    pub(crate) recent: recent::Recent,
    next_id: u64,
    /// The K-lines and D-lines in force (see `crate::bans`), behind a lock of their
    /// own that the listener shares: it checks D-lines at accept without the world
    /// lock. Taken after the world lock, never before.
    pub(crate) bans: Arc<std::sync::Mutex<crate::bans::ServerBans>>,
    /// Where DIE and RESTART file their request for the listener.
    pub(crate) control: Arc<crate::control::ServerControl>,
    /// Failed PASS and OPER attempts by address, to refuse password guessing.
    pub(crate) auth_failures: auth_failures::AuthFailures,
    /// Metadata keys held by every client and channel together (bounded by
    /// `limits.max_metadata_total`).
    pub(crate) metadata_total: usize,
    /// Ban, exception and invite-exception entries of every channel together
    /// (bounded by `limits.max_list_entries_total`).
    pub(crate) list_entries_total: usize,
    /// Who is logged in to each account (folded name): several clients may be.
    pub(crate) sessions: Map<CaseKey, Vec<ClientId>>,
    /// The folded names of every registered account (loaded at start-up, kept
    /// current by REGISTER and DROP), so that nick ownership asks the store only
    /// about nicks that are accounts: a registration or NICK change costs no query.
    pub(crate) account_names: Set<CaseKey>,
    /// Read markers of accounts as the store has them (loaded at start-up, kept
    /// current by MARKREAD), so a login gets its markers without waiting for the
    /// disk; see `read_markers::Saved`.
    pub(crate) saved_markers: read_markers::Saved,
    /// Clients using a registered account's name as their nick without being logged
    /// in to it: renamed to a guest nick at the instant given (see
    /// `handlers::nickserv::enforce`).
    pub(crate) nick_claims: Map<ClientId, std::time::Instant>,
    /// A per-process secret that makes SCRAM's stand-in salts for unknown names
    /// stable but unpredictable (see `scram::decoy`).
    pub(crate) sasl_secret: [u8; 32],
    /// LUSERS counts, kept current so that a registration (which sends LUSERS)
    /// costs the same with 20,000 clients as with 2.
    census: Census,
    /// Registered channels (ChanServ), existing or not, and their write-back.
    pub(crate) registry: registry::Registry,
    /// What handlers count for `/metrics` and `STATS m`, with the lock they hold
    /// anyway (see `metrics`).
    pub(crate) counters: crate::metrics::WorldCounters,
    /// The server's metrics, for what is counted outside the lock too (the
    /// history commit-latency sample).
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// Users of other nodes and what to tell them (`--cluster`; see `remote`).
    /// `None` on a single server.
    pub(crate) remote: Option<Box<remote::Remote>>,
}

/// The world's hash maps and sets. foldhash rather than std's SipHash: it is several
/// times faster on the short keys used here (client ids, folded names, message ids),
/// which the relay path looks up for every message, and it is still seeded per
/// process against collision attacks on client-chosen keys (it is hashbrown's default).
pub(crate) type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// See [`Map`].
pub(crate) type Set<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// What the clients add up to for LUSERS; [`Client::census`] is one client's share.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Census {
    pub(crate) registered: usize,
    /// Registered and `+i`.
    pub(crate) invisible: usize,
    pub(crate) opers: usize,
}

/// Random bytes for a per-process secret (the SCRAM decoys' key).
fn random_secret() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

impl World {
    pub(crate) fn new(
        config: Arc<Config>,
        store: Arc<dyn palaver_store::Store>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self {
            counters: crate::metrics::WorldCounters::default(),
            metrics,
            config,
            store,
            clients: Map::default(),
            certfps: Map::default(),
            nicks: BTreeMap::new(),
            channels: Map::default(),
            channel_order: BTreeSet::new(),
            whowas: VecDeque::new(),
            started: SystemTime::now(),
            msgid_prefix: format!(
                "{:x}",
                SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or_default()
            ),
            next_serial: 0,
            max_clients_seen: 0,
            census: Census::default(),
            sessions: Map::default(),
            account_names: Set::default(),
            saved_markers: read_markers::Saved::default(),
            nick_claims: Map::default(),
            sasl_secret: random_secret(),
            auth_failures: auth_failures::AuthFailures::default(),
            metadata_total: 0,
            list_entries_total: 0,
            monitors: monitor::Monitors::default(),
            read_markers: read_markers::ReadMarkers::default(),
            recent: recent::Recent::default(),
            registry: registry::Registry::default(),
            bans: Arc::default(),
            control: Arc::default(),
            next_id: 1,
            remote: None,
        }
    }

    /// A fresh `msgid` and the current `time` for a message about to be relayed.
    pub(crate) fn stamp(&mut self) -> crate::relay::Stamp {
        let msgid = self.next_id_string();
        crate::relay::Stamp::now(msgid, self.next_serial)
    }

    /// A short identifier unique for the life of this server (message ids, batches).
    pub(crate) fn next_id_string(&mut self) -> String {
        self.next_serial += 1;
        format!("{}-{:x}", self.msgid_prefix, self.next_serial)
    }

    /// The serial number in one of our message ids (see [`World::next_id_string`]),
    /// or `None` if `msgid` is not one this server process made.
    pub(crate) fn msgid_serial(&self, msgid: &str) -> Option<u64> {
        let serial = msgid
            .strip_prefix(self.msgid_prefix.as_str())?
            .strip_prefix('-')?;
        if serial.starts_with('+') {
            return None;
        }
        u64::from_str_radix(serial, 16).ok()
    }

    /// Folds a nickname or channel name for lookups.
    pub(crate) fn key(name: &str) -> CaseKey {
        CaseKey::new(CASEMAPPING, name)
    }

    /// Adds a newly connected, unregistered client.
    pub(crate) fn add_client(
        &mut self,
        ip: IpAddr,
        security: crate::transport::Security,
        outbox: Arc<Outbox>,
    ) -> ClientId {
        let id = ClientId(self.next_id);
        self.next_id += 1;
        let mut client = Client::new(id, ip, outbox);
        client.tls = security.tls;
        if let Some(certfp) = security.certfp {
            self.certfps.insert(id, certfp.into_boxed_str());
        }
        self.clients.insert(id, Box::new(client));
        id
    }

    /// The client with this nickname, if any.
    pub(crate) fn find_nick(&self, nick: &str) -> Option<&Client> {
        self.nicks
            .get(Self::key(nick).as_str())
            .and_then(|id| self.clients.get(id).map(|c| &**c))
    }

    /// Clients that share at least one channel with `id` (not `id` itself), each once.
    pub(crate) fn peers_of(&self, id: ClientId) -> Vec<Arc<Outbox>> {
        let Some(client) = self.clients.get(&id) else {
            return Vec::new();
        };
        let mut seen = HashSet::new();
        let mut peers = Vec::new();
        for key in &client.channels {
            if let Some(channel) = self.channels.get(key) {
                for (member, entry) in &channel.members {
                    if *member != id && seen.insert(*member) {
                        peers.push(Arc::clone(&entry.outbox));
                    }
                }
            }
        }
        peers
    }

    /// Whether two clients share a channel (visibility of invisible users).
    pub(crate) fn share_channel(&self, a: ClientId, b: ClientId) -> bool {
        match (self.clients.get(&a), self.clients.get(&b)) {
            (Some(a), Some(b)) => a.channels.iter().any(|key| b.channels.contains(key)),
            _ => false,
        }
    }

    /// Starts a numeric reply to `id`: `:server CODE nick`.
    pub(crate) fn numeric(&self, id: ClientId, code: &str) -> Reply {
        let client = self.clients.get(&id);
        let mut line = LineWriter::new();
        line.source(&self.config.server_name)
            .command(code)
            .param(client.map_or("*", |c| c.nick()));
        Reply {
            line,
            outbox: client.map(|c| Arc::clone(&c.outbox)),
        }
    }

    /// Sends an IRCv3 standard reply to `id`:
    /// `FAIL|WARN|NOTE <command> <code> [<params>...] :<text>`.
    pub(crate) fn standard_reply(
        &self,
        id: ClientId,
        kind: &str,
        command: &str,
        code: &str,
        params: &[&str],
        text: &str,
    ) {
        let mut reply = self.server_line(id, kind).param(command).param(code);
        for param in params {
            reply = reply.param(param);
        }
        reply.trailing(text).send();
    }

    /// Starts a server message to `id` that is not a numeric (`:server COMMAND`).
    pub(crate) fn server_line(&self, id: ClientId, command: &str) -> Reply {
        let mut line = LineWriter::new();
        line.source(&self.config.server_name).command(command);
        Reply {
            line,
            outbox: self.clients.get(&id).map(|c| Arc::clone(&c.outbox)),
        }
    }

    /// Channel `key` as `viewer` may know it: `None` if it does not exist, or if it is
    /// secret and `viewer` is not in it, so both are answered alike (`403`).
    pub(crate) fn channel_known_to(&self, key: &CaseKey, viewer: ClientId) -> Option<&Channel> {
        self.channels.get(key).filter(|c| !c.secret_from(viewer))
    }

    /// Whether another channel may be created (the server-wide `max_channels_total`).
    pub(crate) fn may_create_channel(&self) -> bool {
        self.channels.len() < self.config.limits.max_channels_total
    }

    /// The channel `key`, created (named `name`) if it does not exist yet; the caller
    /// checked [`World::may_create_channel`]. A registered channel is created with
    /// its stored topic, modes and lists (and its registered spelling).
    pub(crate) fn create_channel(&mut self, key: &CaseKey, name: String) -> &mut Channel {
        use std::collections::hash_map::Entry;
        match self.channels.entry(key.clone()) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                self.channel_order.insert(key.clone());
                let name = self
                    .registry
                    .get(key)
                    .map_or(name, |registration| registration.name.clone());
                let mut channel = Channel::new(name);
                // Restored entries count towards the server-wide bound like any
                // other, and stop where it stops.
                let room = self
                    .config
                    .limits
                    .max_list_entries_total
                    .saturating_sub(self.list_entries_total)
                    .min(self.config.limits.max_bans);
                self.list_entries_total += self.registry.restore(key, &mut channel, room);
                entry.insert(channel)
            }
        }
    }

    /// Deletes channel `key` if nobody is left in it: the one place channels end.
    pub(crate) fn drop_channel_if_empty(&mut self, key: &CaseKey) {
        if self.channels.get(key).is_some_and(|c| c.members.is_empty())
            && let Some(channel) = self.channels.remove(key)
        {
            self.channel_order.remove(key);
            self.forget_channel_state(&channel);
        }
    }

    /// Takes a deleted channel's list entries and metadata off the server-wide counts.
    fn forget_channel_state(&mut self, channel: &Channel) {
        self.list_entries_total = self
            .list_entries_total
            .saturating_sub(channel.list_entries());
        self.metadata_total = self.metadata_total.saturating_sub(channel.metadata.len());
    }

    /// Renames channel `old` to `name` (folded: `new`), for `RENAME`: the channel
    /// keeps everything it has (members with their status, topic, modes, lists,
    /// metadata) under its new key, in [`World::channel_order`], in every member's
    /// `channels` and in every invitation to it. With `new == old` (a change of case
    /// only) just its spelling changes. The caller checked that `new` is free and not
    /// registered, and announces the change. What stays under the old name is
    /// whatever is kept by name outside the channel: its stored history, read
    /// markers and the redaction index of messages sent before. Returns `false` (and changes nothing) if `old` does not exist.
    pub(crate) fn rename_channel(&mut self, old: &CaseKey, new: CaseKey, name: String) -> bool {
        if *old == new {
            let Some(channel) = self.channels.get_mut(old) else {
                return false;
            };
            channel.name = name;
            return true;
        }
        if self.channels.contains_key(&new) {
            return false;
        }
        let Some(mut channel) = self.channels.remove(old) else {
            return false;
        };
        channel.name = name;
        self.channel_order.remove(old);
        self.channel_order.insert(new.clone());
        for id in channel.members.keys() {
            if let Some(client) = self.clients.get_mut(id) {
                client.channels.remove(old);
                client.channels.insert(new.clone());
            }
        }
        self.channels.insert(new.clone(), channel);
        // Invitations are few and short-lived, but nothing indexes them by channel.
        // One to the new name from before (to a channel gone since) must not open the
        // renamed channel: it is dropped.
        for client in self.clients.values_mut() {
            client.invites.retain(|key| *key != new);
            for invite in client.invites.iter_mut().filter(|key| **key == *old) {
                *invite = new.clone();
            }
        }
        true
    }

    /// Removes a member from a channel, deleting the channel once empty.
    pub(crate) fn part_channel(&mut self, id: ClientId, key: &CaseKey) {
        if let Some(channel) = self.channels.get_mut(key) {
            channel.members.remove(&id);
        }
        self.drop_channel_if_empty(key);
        if let Some(client) = self.clients.get_mut(&id) {
            client.channels.remove(key);
        }
    }

    /// Removes a client from the world. With a reason, its channel peers see
    /// `QUIT :reason` (each once); its nickname goes to WHOWAS.
    pub(crate) fn remove_client(&mut self, id: ClientId, quit_reason: Option<&str>) {
        if let Some(reason) = quit_reason
            && let Some(client) = self.clients.get(&id).filter(|c| c.is_registered())
        {
            let mut line = client.line_from();
            line.command("QUIT").trailing(reason);
            let line = crate::relay::EventLine::new(line.finish(), client.account.as_deref());
            for peer in self.peers_of(id) {
                peer.push(line.line_for(peer.caps()));
            }
            let channels: Vec<CaseKey> = client.channels.iter().cloned().collect();
            for key in &channels {
                record_event(self, id, palaver_store::MessageKind::Quit, key, reason);
            }
        }
        if self.remote.is_some() {
            self.leave_cluster(id);
        }
        let Some(client) = self.clients.remove(&id) else {
            return;
        };
        self.recount(client.census(), Census::default());
        self.metadata_total = self.metadata_total.saturating_sub(client.metadata_len());
        self.monitors.clear(id);
        self.read_markers.forget(id);
        self.nick_claims.remove(&id);
        self.certfps.remove(&id);
        if let Some(account) = &client.account {
            self.forget_session(account, id);
        }
        if client.is_registered() {
            self.notify_monitors_offline(client.nick());
        }
        for key in &client.channels {
            if let Some(channel) = self.channels.get_mut(key) {
                channel.members.remove(&id);
            }
            self.drop_channel_if_empty(key);
        }
        if let Some(nick) = &client.nick {
            let key = Self::key(nick);
            if self.nicks.get(&key) == Some(&id) {
                self.nicks.remove(&key);
            }
            if client.is_registered() {
                self.remember(WhowasEntry::of(&client, key));
            }
        }
    }

    /// Takes `id` off the sessions of `account`.
    pub(crate) fn forget_session(&mut self, account: &str, id: ClientId) {
        let key = Self::key(account);
        if let Some(sessions) = self.sessions.get_mut(&key) {
            sessions.retain(|session| *session != id);
            if sessions.is_empty() {
                self.sessions.remove(&key);
            }
        }
    }

    /// Records a nickname leaving (quit or nick change) for WHOWAS.
    pub(crate) fn remember(&mut self, entry: WhowasEntry) {
        let limit = self.config.limits.whowas_entries;
        if limit == 0 {
            return;
        }
        if self.whowas.len() >= limit {
            self.whowas.pop_back();
        }
        self.whowas.push_front(entry);
    }

    /// Registered clients, unregistered connections, operators: for LUSERS.
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        let registered = self.census.registered;
        (
            registered,
            self.clients.len() - registered,
            self.census.opers,
        )
    }

    /// Registered clients that are invisible (`+i`), for LUSERS.
    pub(crate) fn invisible_count(&self) -> usize {
        self.census.invisible
    }

    /// A server NOTICE with `text` (its `***` prefix included) to every operator:
    /// what they must hear about the server itself (a reload, a ban, an SA
    /// command), whoever caused it. A scan of all clients: these events are rare.
    pub(crate) fn notice_opers(&self, text: &str) {
        for client in self.clients.values().filter(|c| c.oper) {
            self.server_line(client.id, "NOTICE")
                .param(client.nick())
                .trailing(text)
                .send();
        }
    }

    /// Records that a client which counted as `before` in the census now counts as
    /// `after` (see [`Client::census`]); call it around every change of
    /// registration, `+i` or operator status.
    pub(crate) fn recount(&mut self, before: Census, after: Census) {
        let census = &mut self.census;
        census.registered = census.registered + after.registered - before.registered;
        census.invisible = census.invisible + after.invisible - before.invisible;
        census.opers = census.opers + after.opers - before.opers;
    }
}

/// A line addressed to one client, built fluently and queued by [`Reply::send`].
#[derive(Debug)]
#[must_use = "a reply does nothing until sent"]
pub(crate) struct Reply {
    line: LineWriter,
    outbox: Option<Arc<Outbox>>,
}

impl Reply {
    pub(crate) fn param(mut self, param: &str) -> Self {
        self.line.param(param);
        self
    }

    pub(crate) fn trailing(mut self, text: &str) -> Self {
        self.line.trailing(text);
        self
    }

    pub(crate) fn send(self) {
        if let Some(outbox) = self.outbox {
            outbox.push(self.line.finish());
        }
    }
}
