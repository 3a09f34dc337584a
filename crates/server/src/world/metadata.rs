//! IRCv3 metadata (`draft/metadata-3`): the key/value stores of clients and
//! channels, each client's key subscriptions, and who hears about a change.
//!
//! A client's store and subscriptions live in its [`Client`](super::Client) and a
//! channel's store in its [`Channel`](super::Channel), so they go when the client
//! disconnects or the channel empties. Every store holds at most
//! `Limits::metadata_max_keys` keys, every subscription list at most
//! `Limits::metadata_max_subs`; keys are at most `metadata_key_bytes` long and values
//! at most [`max_value_bytes`]. The capability value ([`cap_value`]) announces
//! exactly these numbers.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use bytes::Bytes;
use palaver_proto::LineWriter;
use palaver_proto::numeric::{RPL_KEYNOTSET, RPL_KEYVALUE, RPL_METADATASYNCLATER};

use super::{ClientId, World};
use crate::caps;
use crate::config::Config;

/// Longest line body (without CRLF) a numeric carrying a value may take.
const MAX_BODY: usize = 510;

/// The capability value: what a client may do before registration, and the limits.
pub(crate) fn cap_value(config: &Config) -> String {
    let l = &config.limits;
    format!(
        "before-connect,max-subs={},max-keys={},max-key-bytes={},max-value-bytes={}",
        l.metadata_max_subs,
        l.metadata_max_keys,
        l.metadata_key_bytes,
        max_value_bytes(config)
    )
}

/// The longest value we accept: the configured bound, lowered if needed so that
/// `:server 761 <nick> <target> <key> * :<value>` always fits in one line (a value
/// cut short on the wire would be a different value).
pub(crate) fn max_value_bytes(config: &Config) -> usize {
    let l = &config.limits;
    let overhead = 1
        + config.server_name.len()
        + " 761 ".len()
        + l.nick_len
        + 1
        + l.channel_len.max(l.nick_len)
        + 1
        + l.metadata_key_bytes
        + " * :".len();
    l.metadata_value_bytes
        .min(MAX_BODY.saturating_sub(overhead))
}

/// Whether `key` is a valid key name: `a-z`, `0-9` and `_./-`, not empty, bounded.
pub(crate) fn is_valid_key(key: &str, max_bytes: usize) -> bool {
    !key.is_empty()
        && key.len() <= max_bytes
        && key
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'/' | b'-'))
}

/// The store was full: the key is new and the target already holds the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

/// One target's metadata, in key order.
#[derive(Debug, Default)]
pub(crate) struct Store {
    entries: BTreeMap<String, String>,
}

impl Store {
    /// A store with no keys.
    pub(crate) const EMPTY: Self = Self {
        entries: BTreeMap::new(),
    };
}

impl Store {
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// How many keys are set.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Keys and values, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Sets `key`; `Ok(true)` if the value changed. A new key is refused once the
    /// store holds `max_keys`.
    pub(crate) fn set(&mut self, key: &str, value: &str, max_keys: usize) -> Result<bool, Full> {
        let full = self.entries.len() >= max_keys;
        match self.entries.get_mut(key) {
            Some(old) if old == value => Ok(false),
            Some(old) => {
                value.clone_into(old);
                Ok(true)
            }
            None if full => Err(Full),
            None => {
                self.entries.insert(key.to_owned(), value.to_owned());
                Ok(true)
            }
        }
    }

    /// Removes `key`; whether it was set.
    pub(crate) fn remove(&mut self, key: &str) -> bool {
        self.entries.remove(key).is_some()
    }

    /// Removes every key; returns the keys that were set, in order.
    pub(crate) fn clear(&mut self) -> Vec<String> {
        std::mem::take(&mut self.entries).into_keys().collect()
    }
}

/// The keys a client subscribed to, in key order.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    keys: BTreeSet<String>,
}

impl Subscriptions {
    /// No subscriptions.
    pub(crate) const EMPTY: Self = Self {
        keys: BTreeSet::new(),
    };
}

impl Subscriptions {
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(String::as_str)
    }

    /// Subscribes to `key`; `Ok(true)` if it is new. Refused past `max_subs`.
    pub(crate) fn add(&mut self, key: &str, max_subs: usize) -> Result<bool, Full> {
        if self.keys.contains(key) {
            Ok(false)
        } else if self.keys.len() >= max_subs {
            Err(Full)
        } else {
            Ok(self.keys.insert(key.to_owned()))
        }
    }

    pub(crate) fn remove(&mut self, key: &str) {
        self.keys.remove(key);
    }

    /// Drops every subscription (the client removed the capability).
    pub(crate) fn clear(&mut self) {
        self.keys.clear();
    }
}

/// A client's own metadata and its subscriptions.
#[derive(Debug, Default)]
pub(crate) struct ClientMetadata {
    pub(crate) values: Store,
    pub(crate) subs: Subscriptions,
}

impl ClientMetadata {
    /// What a client that never used metadata has.
    pub(crate) const EMPTY: Self = Self {
        values: Store::EMPTY,
        subs: Subscriptions::EMPTY,
    };
}

impl World {
    /// Who hears that `key` changed on client `target`: clients with the metadata
    /// capability subscribed to `key` that share a channel with it or monitor it,
    /// each once, never `target` itself (only it may change its metadata).
    pub(crate) fn metadata_watchers_of_client(&self, target: ClientId, key: &str) -> Vec<ClientId> {
        let Some(client) = self.clients.get(&target) else {
            return Vec::new();
        };
        let mut seen = HashSet::new();
        let channel_peers = client
            .channels
            .iter()
            .filter_map(|key| self.channels.get(key))
            .flat_map(|channel| channel.members.keys().copied());
        let monitors = self.monitors.watchers(World::key(client.nick()).as_str());
        channel_peers
            .chain(monitors)
            .filter(|id| *id != target && seen.insert(*id))
            .filter(|id| self.wants_metadata(*id, key))
            .collect()
    }

    /// Who hears that `key` changed on the channel `folded`: its members with the
    /// capability subscribed to `key`, except `except` (who made the change).
    pub(crate) fn metadata_watchers_of_channel(
        &self,
        folded: &str,
        key: &str,
        except: ClientId,
    ) -> Vec<ClientId> {
        self.channels
            .get(folded)
            .into_iter()
            .flat_map(|channel| channel.members.keys().copied())
            .filter(|id| *id != except && self.wants_metadata(*id, key))
            .collect()
    }

    /// MONITOR: a metadata-aware watcher (metadata and batch) told that `nick` is
    /// online is also told to fetch its metadata with `METADATA <nick> SYNC`
    /// (`774 RPL_METADATASYNCLATER <nick> 0`), as the spec allows in place of a batch.
    pub(crate) fn metadata_sync_later(&self, watcher: ClientId, nick: &str) {
        let Some(client) = self.clients.get(&watcher) else {
            return;
        };
        if !(client.caps.has(caps::METADATA) && client.caps.has(caps::BATCH)) {
            return;
        }
        self.numeric(watcher, RPL_METADATASYNCLATER)
            .param(nick)
            .param("0")
            .trailing("Use METADATA SYNC for the current values")
            .send();
    }

    /// Whether client `id` negotiated metadata and subscribed to `key`.
    fn wants_metadata(&self, id: ClientId, key: &str) -> bool {
        self.clients
            .get(&id)
            .is_some_and(|c| c.caps.has(caps::METADATA) && c.metadata().subs.contains(key))
    }

    /// Tells each of `recipients` the new value of `key` on `target` (`761`), or that
    /// it was removed (`766`). The numerics name their recipient, so each is
    /// written for its recipient.
    pub(crate) fn notify_metadata(
        &self,
        recipients: &[ClientId],
        target: &str,
        key: &str,
        value: Option<&str>,
    ) {
        for id in recipients {
            if let Some(client) = self.clients.get(id) {
                client.send(self.metadata_line(None, client.nick(), target, key, value));
            }
        }
    }

    /// `[@batch=ref] :server 761 <nick> <target> <key> * :<value>`, or `766 <nick>
    /// <target> <key> :Key not set` without a value.
    pub(crate) fn metadata_line(
        &self,
        batch: Option<&str>,
        nick: &str,
        target: &str,
        key: &str,
        value: Option<&str>,
    ) -> Bytes {
        let mut line = LineWriter::new();
        if let Some(reference) = batch {
            line.tag("batch", Some(reference));
        }
        line.source(&self.config.server_name);
        match value {
            Some(value) => line
                .command(RPL_KEYVALUE)
                .param(nick)
                .param(target)
                .param(key)
                .param("*")
                .trailing(value),
            None => line
                .command(RPL_KEYNOTSET)
                .param(nick)
                .param(target)
                .param(key)
                .trailing("Key not set"),
        };
        line.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_lowercase_names_within_the_bound() {
        assert!(is_valid_key("display-name", 64));
        assert!(is_valid_key("a.b/c_d-9", 64));
        assert!(!is_valid_key("", 64));
        assert!(!is_valid_key("Display", 64));
        assert!(!is_valid_key("a b", 64));
        assert!(!is_valid_key("$url", 64));
        assert!(!is_valid_key("abcd", 3));
    }

    #[test]
    fn stores_and_subscriptions_are_bounded() {
        let mut store = Store::default();
        assert_eq!(store.set("a", "1", 2), Ok(true));
        assert_eq!(store.set("a", "1", 2), Ok(false));
        assert_eq!(store.set("b", "2", 2), Ok(true));
        assert_eq!(store.set("c", "3", 2), Err(Full));
        assert_eq!(store.set("a", "changed", 2), Ok(true));
        assert!(store.remove("a"));
        assert!(!store.remove("a"));
        assert_eq!(store.clear(), ["b"]);
        assert_eq!(store.iter().count(), 0);

        let mut subs = Subscriptions::default();
        assert_eq!(subs.add("x", 1), Ok(true));
        assert_eq!(subs.add("x", 1), Ok(false));
        assert_eq!(subs.add("y", 1), Err(Full));
        subs.remove("x");
        assert_eq!(subs.add("y", 1), Ok(true));
    }

    #[test]
    fn the_announced_value_limit_fits_a_line() {
        let mut config = Config::default();
        assert_eq!(max_value_bytes(&config), 300);
        config.server_name = "s".repeat(200);
        let limit = max_value_bytes(&config);
        assert!(limit < 300);
        let store = palaver_store::SqliteStore::open_in_memory().expect("in-memory store");
        let world = World::new(
            std::sync::Arc::new(config.clone()),
            std::sync::Arc::new(store),
            std::sync::Arc::default(),
        );
        let long = "x".repeat(limit);
        let line = world.metadata_line(
            None,
            &"n".repeat(config.limits.nick_len),
            &"#".repeat(config.limits.channel_len),
            &"k".repeat(config.limits.metadata_key_bytes),
            Some(&long),
        );
        assert!(line.ends_with(format!("{long}\r\n").as_bytes()));
    }
}
