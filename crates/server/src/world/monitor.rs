//! MONITOR lists, indexed both ways: each client's list (bounded by
//! `Limits::max_monitor`, checked by the handler) and, for every monitored nickname,
//! the clients watching it, so a sign-on, sign-off or nick change notifies its
//! watchers without scanning every client.
//!
//! Both indexes change together, and a client's entries leave both when it leaves
//! the world ([`Monitors::clear`] from `World::remove_client`), so neither can grow
//! past `clients × max_monitor` entries.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use palaver_proto::numeric::{RPL_MONOFFLINE, RPL_MONONLINE};
use palaver_proto::{CaseKey, LineWriter};

use super::{ClientId, World};
use crate::caps::{self, Cap};
use crate::outbox::Outbox;

/// Who monitors which nicknames.
#[derive(Debug, Default)]
pub(crate) struct Monitors {
    /// Folded nickname → the clients monitoring it (never an empty set).
    watchers: HashMap<CaseKey, BTreeSet<ClientId>>,
    /// Client → its targets in the order added, with the spelling it gave.
    lists: HashMap<ClientId, Vec<(CaseKey, String)>>,
    /// Entries in all lists together (bounded by `limits.max_monitor_total`).
    total: usize,
}

impl Monitors {
    /// `id`'s targets, in the order they were added.
    pub(crate) fn list(&self, id: ClientId) -> &[(CaseKey, String)] {
        self.lists.get(&id).map_or(&[], Vec::as_slice)
    }

    /// Entries in every client's list together.
    pub(crate) fn total(&self) -> usize {
        self.total
    }

    /// Whether `id` monitors `key`.
    pub(crate) fn contains(&self, id: ClientId, key: &CaseKey) -> bool {
        self.watchers.get(key).is_some_and(|set| set.contains(&id))
    }

    /// Adds `nick` to `id`'s list; false if it was already there.
    pub(crate) fn add(&mut self, id: ClientId, key: CaseKey, nick: &str) -> bool {
        if !self.watchers.entry(key.clone()).or_default().insert(id) {
            return false;
        }
        self.lists
            .entry(id)
            .or_default()
            .push((key, nick.to_owned()));
        self.total += 1;
        true
    }

    /// Removes `key` from `id`'s list, if present.
    pub(crate) fn remove(&mut self, id: ClientId, key: &CaseKey) {
        self.unwatch(id, key);
        if let Some(list) = self.lists.get_mut(&id) {
            let before = list.len();
            list.retain(|(k, _)| k != key);
            self.total -= before - list.len();
            if list.is_empty() {
                self.lists.remove(&id);
            }
        }
    }

    /// Empties `id`'s list (MONITOR C, or the client left).
    pub(crate) fn clear(&mut self, id: ClientId) {
        for (key, _) in self.lists.remove(&id).unwrap_or_default() {
            self.total -= 1;
            self.unwatch(id, &key);
        }
    }

    /// The clients monitoring `key`, in connection order.
    pub(crate) fn watchers(&self, key: &str) -> impl Iterator<Item = ClientId> + '_ {
        self.watchers.get(key).into_iter().flatten().copied()
    }

    fn unwatch(&mut self, id: ClientId, key: &CaseKey) {
        if let Some(set) = self.watchers.get_mut(key) {
            set.remove(&id);
            if set.is_empty() {
                self.watchers.remove(key);
            }
        }
    }

    /// Entries in the reverse index (for tests: it must drain when clients leave).
    #[cfg(test)]
    pub(crate) fn watched_nicks(&self) -> usize {
        self.watchers.len()
    }
}

impl World {
    /// Tells everyone monitoring `id`'s nickname that it is online (registration,
    /// or the new nickname of a nick change): `730 * :nick!user@host`, one line for
    /// all watchers (the spec allows `*` in place of each watcher's nick).
    pub(crate) fn notify_monitors_online(&self, id: ClientId) {
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        let mut watchers = self
            .monitors
            .watchers(World::key(client.nick()).as_str())
            .peekable();
        if watchers.peek().is_none() {
            return;
        }
        let mut line = LineWriter::new();
        line.source(&self.config.server_name)
            .command(RPL_MONONLINE)
            .param("*")
            .trailing(&client.mask());
        let line = line.finish();
        for watcher in watchers {
            if let Some(watcher) = self.clients.get(&watcher) {
                watcher.send(line.clone());
                self.metadata_sync_later(watcher.id, client.nick());
            }
        }
    }

    /// Tells everyone monitoring `nick` that it went offline (quit, or the old
    /// nickname of a nick change): `731 * :nick`.
    pub(crate) fn notify_monitors_offline(&self, nick: &str) {
        let mut watchers = self.monitors.watchers(World::key(nick).as_str()).peekable();
        if watchers.peek().is_none() {
            return;
        }
        let mut line = LineWriter::new();
        line.source(&self.config.server_name)
            .command(RPL_MONOFFLINE)
            .param("*")
            .trailing(nick);
        let line = line.finish();
        for watcher in watchers {
            if let Some(watcher) = self.clients.get(&watcher) {
                watcher.send(line.clone());
            }
        }
    }

    /// `extended-monitor`: the clients monitoring `id` that enabled both
    /// `extended-monitor` and `cap` and share no channel with it (those who do hear
    /// about the change as channel peers). For SETNAME, AWAY, CHGHOST, ACCOUNT.
    pub(crate) fn extended_monitors(&self, id: ClientId, cap: Cap) -> Vec<Arc<Outbox>> {
        let Some(client) = self.clients.get(&id) else {
            return Vec::new();
        };
        self.monitors
            .watchers(World::key(client.nick()).as_str())
            .filter(|watcher| *watcher != id && !self.share_channel(id, *watcher))
            .filter_map(|watcher| self.clients.get(&watcher))
            .filter(|watcher| watcher.caps.has(caps::EXTENDED_MONITOR) && watcher.caps.has(cap))
            .map(|watcher| Arc::clone(&watcher.outbox))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::CASEMAPPING;

    fn key(nick: &str) -> CaseKey {
        CaseKey::new(CASEMAPPING, nick)
    }

    #[test]
    fn both_indexes_change_together_and_drain() {
        let mut monitors = Monitors::default();
        let (a, b) = (ClientId(1), ClientId(2));
        assert!(monitors.add(a, key("Bob"), "Bob"));
        assert!(!monitors.add(a, key("BOB"), "BOB"));
        assert!(monitors.add(a, key("carol"), "carol"));
        assert!(monitors.add(b, key("bob"), "bob"));
        assert_eq!(monitors.watchers("bob").collect::<Vec<_>>(), [a, b]);
        assert_eq!(monitors.list(a).len(), 2);
        assert!(monitors.contains(a, &key("carol")));

        monitors.remove(a, &key("bob"));
        assert_eq!(monitors.watchers("bob").collect::<Vec<_>>(), [b]);
        assert_eq!(monitors.list(a), [(key("carol"), "carol".to_owned())]);

        monitors.clear(a);
        monitors.clear(b);
        assert_eq!(monitors.watched_nicks(), 0);
        assert!(monitors.lists.is_empty());
    }
}
