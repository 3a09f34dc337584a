//! Connection throttling: new connections per second from one address and from
//! one network (a /24 for IPv4, a /64 for IPv6, what one customer or one host
//! usually has), each a token bucket with a burst (`flood::TokenBucket`, the one
//! command pacing uses).
//!
//! Loopback addresses are not throttled unless `Limits::throttle_loopback` says so
//! (see there why).
//!
//! Only the listener's accept loop uses it (one task), so it needs no lock. Its
//! maps are bounded: an entry whose bucket has filled up again says nothing a new
//! entry would not, so it is forgotten (swept at most once a second), and past
//! [`MAX_ENTRIES`] an address or network not yet tracked is let through untracked
//! (logged once a sweep): a flood from that many networks is beyond what a
//! per-network limit can stop, and refusing everyone new would lock out the
//! users it is meant to protect. Admission (`--max-clients`, per-IP counts) still
//! bounds what gets in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use tokio::time::Instant;

use crate::config::ConnectLimit;
use crate::flood::TokenBucket;

/// Most addresses (and, separately, networks) tracked at once.
pub(crate) const MAX_ENTRIES: usize = 65_536;

/// How often full buckets are swept out of the maps.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Too many from this address.
    Address(Duration),
    /// Too many from this address's network.
    Network(Duration),
}

impl Refusal {
    /// The text for the refused client's `ERROR` line.
    pub(crate) fn reason(self, ip: IpAddr) -> String {
        let (whose, wait) = match self {
            Self::Address(wait) => ("address", wait),
            Self::Network(wait) => ("network", wait),
        };
        format!(
            "Closing Link: {ip} (Connecting too fast from your {whose}; try again in {} seconds)",
            wait.as_secs_f64().ceil().max(1.0) as u64
        )
    }
}

/// The per-address and per-network buckets.
#[derive(Debug)]
pub(crate) struct ConnectThrottle {
    per_ip: Option<ConnectLimit>,
    per_network: Option<ConnectLimit>,
    addresses: HashMap<IpAddr, TokenBucket>,
    networks: HashMap<IpNet, TokenBucket>,
    last_sweep: Instant,
    /// Throttle loopback addresses too.
    loopback: bool,
}

impl ConnectThrottle {
    /// A throttle with these limits (`None`: that one is off), applied to loopback
    /// addresses too if `loopback`.
    pub(crate) fn new(
        per_ip: Option<ConnectLimit>,
        per_network: Option<ConnectLimit>,
        loopback: bool,
    ) -> Self {
        Self {
            per_ip,
            per_network,
            addresses: HashMap::new(),
            networks: HashMap::new(),
            last_sweep: Instant::now(),
            loopback,
        }
    }

    /// Applies limits read again by a reload (the buckets' levels stay: a client
    /// that was refused is not let in early by a reload, only by the new rates).
    pub(crate) fn configure(
        &mut self,
        per_ip: Option<ConnectLimit>,
        per_network: Option<ConnectLimit>,
        loopback: bool,
    ) {
        self.per_ip = per_ip;
        self.per_network = per_network;
        self.loopback = loopback;
    }

    /// Takes a token for a new connection from `ip` at `now`, or says which limit
    /// refuses it and how long until it would not. A refused connection takes no
    /// token, so retrying at the said time works.
    pub(crate) fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        if self.per_ip.is_none() && self.per_network.is_none() {
            return Ok(());
        }
        if now.saturating_duration_since(self.last_sweep) >= SWEEP_EVERY {
            self.sweep(now);
        }
        let ip = ip.to_canonical();
        if ip.is_loopback() && !self.loopback {
            return Ok(());
        }
        let net = network_of(ip);
        if let Some(wait) = wait(&mut self.addresses, &ip, self.per_ip.as_ref(), now) {
            return Err(Refusal::Address(wait));
        }
        if let Some(wait) = wait(&mut self.networks, &net, self.per_network.as_ref(), now) {
            return Err(Refusal::Network(wait));
        }
        if let Some(limit) = &self.per_ip {
            take(&mut self.addresses, ip, limit, now);
        }
        if let Some(limit) = &self.per_network {
            take(&mut self.networks, net, limit, now);
        }
        Ok(())
    }

    /// Forgets every bucket that is full again.
    fn sweep(&mut self, now: Instant) {
        self.last_sweep = now;
        if let Some(limit) = &self.per_ip {
            self.addresses.retain(|_, b| !b.is_full(limit, now));
        }
        if let Some(limit) = &self.per_network {
            self.networks.retain(|_, b| !b.is_full(limit, now));
        }
        if self.addresses.len() >= MAX_ENTRIES || self.networks.len() >= MAX_ENTRIES {
            tracing::warn!(
                addresses = self.addresses.len(),
                networks = self.networks.len(),
                "connection throttle full: new addresses are not throttled until it empties"
            );
        }
    }

    /// Entries tracked (addresses, networks), for tests.
    #[cfg(test)]
    fn tracked(&self) -> (usize, usize) {
        (self.addresses.len(), self.networks.len())
    }
}

/// How long until the bucket of `key` in `map` has a token, if it has none now
/// (none tracked: a full bucket; no limit: never).
fn wait<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, TokenBucket>,
    key: &K,
    limit: Option<&ConnectLimit>,
    now: Instant,
) -> Option<Duration> {
    let limit = limit?;
    let bucket = map.get_mut(key)?;
    if bucket.has_token(limit, now) {
        return None;
    }
    Some(bucket.next_token_at(limit).saturating_duration_since(now))
}

/// Takes a token from the bucket of `key` (a new one starts full), unless the map
/// is full and `key` is not in it.
fn take<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, TokenBucket>,
    key: K,
    limit: &ConnectLimit,
    now: Instant,
) {
    let full = map.len() >= MAX_ENTRIES;
    let bucket = match map.get_mut(&key) {
        Some(bucket) => bucket,
        None if full => return,
        None => map
            .entry(key)
            .or_insert_with(|| TokenBucket::new(limit, now)),
    };
    bucket.take(limit, now);
}

/// The network an address belongs to for throttling: its /24 (IPv4) or /64 (IPv6).
pub(crate) fn network_of(ip: IpAddr) -> IpNet {
    let prefix = if ip.is_ipv4() { 24 } else { 64 };
    IpNet::new(ip, prefix)
        .map(|net| net.trunc())
        .unwrap_or_else(|_| IpNet::from(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(burst: u32, per_second: f64) -> Option<ConnectLimit> {
        Some(ConnectLimit { burst, per_second })
    }

    #[test]
    fn a_burst_then_the_rate() {
        let mut throttle = ConnectThrottle::new(limit(3, 1.0), None, false);
        let ip: IpAddr = "192.0.2.1".parse().expect("an address");
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(throttle.admit(ip, now), Ok(()));
        }
        let Err(Refusal::Address(wait)) = throttle.admit(ip, now) else {
            panic!("the fourth connection should be refused");
        };
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO);
        assert!(
            throttle
                .admit(ip, now + Duration::from_millis(1001))
                .is_ok()
        );
        // Another address is not affected.
        assert!(
            throttle
                .admit("192.0.2.2".parse().expect("an address"), now)
                .is_ok()
        );
    }

    #[test]
    fn networks_are_shared_and_full_buckets_forgotten() {
        let mut throttle = ConnectThrottle::new(limit(10, 1.0), limit(2, 1.0), false);
        let now = Instant::now();
        assert!(
            throttle
                .admit("192.0.2.1".parse().expect("an address"), now)
                .is_ok()
        );
        assert!(
            throttle
                .admit("192.0.2.2".parse().expect("an address"), now)
                .is_ok()
        );
        assert!(matches!(
            throttle.admit("192.0.2.3".parse().expect("an address"), now),
            Err(Refusal::Network(_))
        ));
        assert!(
            throttle
                .admit("198.51.100.1".parse().expect("an address"), now)
                .is_ok()
        );
        let v6a: IpAddr = "2001:db8::1".parse().expect("an address");
        let v6b: IpAddr = "2001:db8::ffff:1".parse().expect("an address");
        assert_eq!(network_of(v6a), network_of(v6b));
        assert_eq!(throttle.tracked(), (3, 2));
        // Ten seconds later every bucket is full again: the sweep forgets them.
        assert!(throttle.admit(v6a, now + Duration::from_secs(10)).is_ok());
        assert_eq!(throttle.tracked(), (1, 1));
    }
}
