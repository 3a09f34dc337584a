//! Registered channels (ChanServ) as the world keeps them.
//!
//! The world holds every registration ([`Registry`], loaded at start-up by
//! `listener::run`), whether or not its channel exists at the moment: a registered
//! channel still vanishes when its last member leaves, and is given its stored
//! topic, modes and lists back by [`Registry::restore`] when it is created again.
//! While a registered channel exists, its live state (`Channel`) is the truth; every
//! change of topic, modes or lists calls [`Registry::changed`], which copies that
//! state into the registration at once (so nothing is lost when the channel
//! empties) and marks it dirty for the write-back task, `crate::registered`, which
//! sits above the world.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use palaver_proto::CaseKey;
use palaver_store::{ChannelRegistration, ListEntry, ListKind, Timestamp};
use tokio::sync::Notify;

use super::{Ban, Channel, ListMode, Map, Set, Topic, World};

/// Most channels one account may have registered (as founder): registrations
/// outlive their channels, so they are state a single user could pile up.
pub(crate) const MAX_PER_ACCOUNT: usize = 20;
/// Most registered channels on the server: each is kept in memory with its lists
/// (at most `max_bans` entries each), so this bounds that memory (about 10,000 ×
/// 100 entries at worst).
pub(crate) const MAX_TOTAL: usize = 10_000;
/// Most entries in one channel's access list.
pub(crate) const MAX_ACCESS: usize = 100;
/// The access level that means "channel operator" (opped on join, may use OP and
/// DEOP). The store keeps the number; this server gives no other level a meaning,
/// so any level at or above it counts as operator.
pub(crate) const LEVEL_OP: i32 = 100;

/// Every registered channel, by folded name, and the ones waiting to be saved.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// The registrations, with the state of the last change to their channel.
    pub(crate) channels: Map<CaseKey, ChannelRegistration>,
    /// Registrations changed since the saver last wrote them.
    dirty: Set<CaseKey>,
    /// Wakes the saver (`registered::save_until`); a wake-up with no waiter is kept for it.
    pub(crate) wake: Arc<Notify>,
}

impl Registry {
    /// Puts the registrations read at start-up in place.
    pub(crate) fn load(&mut self, registrations: Vec<ChannelRegistration>) {
        for registration in registrations {
            self.channels
                .insert(World::key(&registration.key), registration);
        }
    }

    /// The registration of channel `key`, if it is registered.
    pub(crate) fn get(&self, key: &CaseKey) -> Option<&ChannelRegistration> {
        self.channels.get(key)
    }

    /// How many channels the account with folded name `founder` has registered.
    pub(crate) fn count_founded_by(&self, founder: &str) -> usize {
        self.channels
            .values()
            .filter(|r| r.founder == founder)
            .count()
    }

    /// Whether an account (as registered, any case) has operator access to the
    /// registered channel `key`: it is the founder or on the access list as op.
    pub(crate) fn has_op_access(&self, key: &CaseKey, account: Option<&str>) -> bool {
        let (Some(registration), Some(account)) = (self.channels.get(key), account) else {
            return false;
        };
        let account = World::key(account);
        registration.founder == account.as_str()
            || registration
                .access
                .iter()
                .any(|entry| entry.account == account.as_str() && entry.level >= LEVEL_OP)
    }

    /// Adds a registration the store has just accepted, and brings it up to date
    /// with the live channel (which may have changed while the store worked).
    pub(crate) fn insert(&mut self, registration: ChannelRegistration, live: Option<&Channel>) {
        let key = World::key(&registration.key);
        self.channels.insert(key.clone(), registration);
        if let Some(channel) = live {
            self.changed(&key, channel);
        }
    }

    /// Takes another cluster node's copy of registration `key` (`None`: dropped
    /// there). That node saves it; a pending save of the old copy here is
    /// cancelled.
    pub(crate) fn replace(&mut self, key: &CaseKey, registration: Option<ChannelRegistration>) {
        self.dirty.remove(key);
        match registration {
            Some(registration) => {
                self.channels.insert(key.clone(), registration);
            }
            None => {
                self.channels.remove(key);
            }
        }
    }

    /// Forgets a registration (dropped); a pending save of it is cancelled.
    pub(crate) fn remove(&mut self, key: &CaseKey) -> Option<ChannelRegistration> {
        self.dirty.remove(key);
        self.channels.remove(key)
    }

    /// Records a change to the channel `key` (topic, modes, lists, access): if it
    /// is registered, its registration takes the live state and is saved soon.
    pub(crate) fn changed(&mut self, key: &CaseKey, channel: &Channel) {
        let Some(registration) = self.channels.get_mut(key) else {
            return;
        };
        if capture(registration, channel) {
            self.mark_dirty(key);
        }
    }

    /// Marks registration `key` to be saved (after a change to its access list,
    /// which has no live counterpart).
    pub(crate) fn mark_dirty(&mut self, key: &CaseKey) {
        self.dirty.insert(key.clone());
        self.wake.notify_one();
    }

    /// Gives a channel just created the stored state of its registration, if any;
    /// returns how many list entries it got (for `World::list_entries_total`).
    /// Entries beyond `max_entries` (the configured `MAXLIST`, which may have been
    /// lowered since) are left out.
    pub(crate) fn restore(
        &self,
        key: &CaseKey,
        channel: &mut Channel,
        max_entries: usize,
    ) -> usize {
        let Some(registration) = self.channels.get(key) else {
            return 0;
        };
        Settings::of_registration(registration).apply_to(channel, max_entries)
    }

    /// Takes the dirty registrations, as they are now.
    pub(crate) fn take_dirty(&mut self) -> Vec<ChannelRegistration> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .iter()
            .filter_map(|key| self.channels.get(key).cloned())
            .collect()
    }
}

/// A new registration of `channel` (named `name`, folded `key`) founded by the
/// account with folded name `founder`, with the channel's current state.
pub(crate) fn new_registration(
    key: &CaseKey,
    channel: &Channel,
    founder: &str,
) -> ChannelRegistration {
    let mut registration = ChannelRegistration {
        key: key.as_str().to_owned(),
        name: channel.name.clone(),
        founder: founder.to_owned(),
        created_at: Timestamp::now(),
        topic: None,
        modes: String::new(),
        key_mode: None,
        limit: None,
        lists: Vec::new(),
        access: Vec::new(),
    };
    capture(&mut registration, channel);
    registration
}

/// Copies a channel's topic, modes and lists into its registration; returns whether
/// anything differed.
fn capture(registration: &mut ChannelRegistration, channel: &Channel) -> bool {
    let settings = Settings::of(channel);
    let changed = registration.topic != settings.topic
        || registration.modes != settings.modes
        || registration.key_mode != settings.key
        || registration.limit != settings.limit
        || registration.lists != settings.lists;
    registration.topic = settings.topic;
    registration.modes = settings.modes;
    registration.key_mode = settings.key;
    registration.limit = settings.limit;
    registration.lists = settings.lists;
    changed
}

/// What a channel is besides its members: topic, modes and lists, in the store's
/// terms. A registration keeps it, and cluster nodes send it to each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) topic: Option<palaver_store::Topic>,
    /// Mode letters without parameters (`+k` and `+l` are the next two).
    pub(crate) modes: String,
    pub(crate) key: Option<String>,
    pub(crate) limit: Option<u32>,
    pub(crate) lists: Vec<ListEntry>,
}

impl Settings {
    /// The live settings of `channel`.
    pub(crate) fn of(channel: &Channel) -> Self {
        let topic = channel.topic.as_ref().map(|topic| palaver_store::Topic {
            text: topic.text.clone(),
            set_by: topic.set_by.clone(),
            set_at: timestamp(topic.set_at),
        });
        let (letters, _) = channel.mode_string(true);
        let modes: String = letters
            .chars()
            .filter(|letter| !matches!(letter, '+' | 'k' | 'l'))
            .collect();
        let limit = channel
            .modes
            .limit
            .map(|limit| u32::try_from(limit).unwrap_or(u32::MAX));
        let mut lists = Vec::with_capacity(channel.list_entries());
        for (mode, kind) in [
            (ListMode::Ban, ListKind::Ban),
            (ListMode::Except, ListKind::Except),
            (ListMode::InviteExcept, ListKind::InviteExcept),
        ] {
            lists.extend(channel.list(mode).iter().map(|entry| ListEntry {
                kind,
                mask: entry.mask.clone(),
                set_by: entry.set_by.clone(),
                set_at: timestamp(entry.set_at),
            }));
        }
        Self {
            topic,
            modes,
            key: channel.modes.key.clone(),
            limit,
            lists,
        }
    }

    /// The settings a registration keeps.
    fn of_registration(registration: &ChannelRegistration) -> Self {
        Self {
            topic: registration.topic.clone(),
            modes: registration.modes.clone(),
            key: registration.key_mode.clone(),
            limit: registration.limit,
            lists: registration.lists.clone(),
        }
    }

    /// Makes `channel` have these settings, its lists replaced by the first
    /// `max_entries` entries; returns how many list entries it has now.
    pub(crate) fn apply_to(&self, channel: &mut Channel, max_entries: usize) -> usize {
        channel.topic = self.topic.as_ref().map(|topic| Topic {
            text: topic.text.clone(),
            set_by: topic.set_by.clone(),
            set_at: system_time(topic.set_at),
        });
        let modes = &mut channel.modes;
        let letters = &self.modes;
        modes.invite_only = letters.contains('i');
        modes.moderated = letters.contains('m');
        modes.no_external = letters.contains('n');
        modes.private = letters.contains('p');
        modes.secret = letters.contains('s');
        modes.topic_ops_only = letters.contains('t');
        modes.no_ctcp = letters.contains('C');
        modes.tls_only = letters.contains('z');
        modes.registered_only = letters.contains('R');
        modes.no_history = letters.contains('E');
        modes.key = self.key.clone();
        modes.limit = self.limit.and_then(|limit| usize::try_from(limit).ok());
        for mode in [ListMode::Ban, ListMode::Except, ListMode::InviteExcept] {
            channel.list_mut(mode).clear();
        }
        let mut restored = 0;
        for entry in self.lists.iter().take(max_entries) {
            let mode = match entry.kind {
                ListKind::Ban => ListMode::Ban,
                ListKind::Except => ListMode::Except,
                ListKind::InviteExcept => ListMode::InviteExcept,
            };
            channel.list_mut(mode).push(Ban {
                mask: entry.mask.clone(),
                set_by: entry.set_by.clone(),
                set_at: system_time(entry.set_at),
            });
            restored += 1;
        }
        restored
    }
}

/// The store's millisecond time for `at`.
fn timestamp(at: SystemTime) -> Timestamp {
    let millis = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Timestamp(i64::try_from(millis).unwrap_or(i64::MAX))
}

/// `at` as a `SystemTime` (times before 1970 become 1970).
fn system_time(at: Timestamp) -> SystemTime {
    let millis = u64::try_from(at.millis()).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_millis(millis)
}

/// After the account `name` was dropped: its registrations are forgotten (a later
/// account of the same name must not inherit them) and it is taken off every access
/// list. Returns the folded names of the channels it had founded, for the store.
pub(crate) fn account_dropped(world: &mut World, name: &str) -> Vec<String> {
    let account = World::key(name);
    let registry = &mut world.registry;
    let founded: Vec<CaseKey> = registry
        .channels
        .iter()
        .filter(|(_, r)| r.founder == account.as_str())
        .map(|(key, _)| key.clone())
        .collect();
    for key in &founded {
        registry.remove(key);
    }
    let listed: Vec<CaseKey> = registry
        .channels
        .iter_mut()
        .filter_map(|(key, registration)| {
            let before = registration.access.len();
            registration
                .access
                .retain(|entry| entry.account != account.as_str());
            (registration.access.len() != before).then(|| key.clone())
        })
        .collect();
    for key in &listed {
        registry.mark_dirty(key);
    }
    for key in founded.iter().chain(&listed) {
        world.announce_registration(key);
    }
    founded
        .into_iter()
        .map(|key| key.as_str().to_owned())
        .collect()
}

/// After a change to channel `key`'s topic, modes or lists by a user of this
/// server: if it is registered, the registration takes the change and is saved
/// soon; on a cluster, the other nodes are told.
pub(crate) fn channel_changed(world: &mut World, key: &CaseKey) {
    keep_registration_current(world, key);
    world.announce_channel(key);
}

/// The registration of channel `key`, if any, takes its live state.
pub(crate) fn keep_registration_current(world: &mut World, key: &CaseKey) {
    let World {
        channels, registry, ..
    } = world;
    if let Some(channel) = channels.get(key) {
        registry.changed(key, channel);
    }
}
