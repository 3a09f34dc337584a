//! Failed password attempts (`PASS`, `OPER`, SASL, NickServ) by address and by account, so that nobody can guess
//! passwords at the rate the server can check them.
//!
//! Each address (an IPv6 address by its /64, the block one host usually gets) may fail
//! [`FREE_FAILURES`] times within [`WINDOW`]; after that, every attempt from it is
//! refused at once, without checking the password (right or wrong), until the
//! window that began with its first failure is over. A connection password can then
//! be guessed a few times a minute per address instead of thousands of times a
//! second, and an attacker cannot keep both cores busy with argon2 through `OPER`.
//!
//! The table is bounded ([`MAX_ADDRESSES`]): when it is full, expired records go
//! first, then the one whose window started longest ago.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use palaver_proto::CaseKey;

use super::Map;

/// Failures an address may have within [`WINDOW`] before it is refused.
pub(crate) const FREE_FAILURES: u32 = 5;
/// How long failures are remembered, from the first one.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at once.
const MAX_ADDRESSES: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Record {
    first: Instant,
    failures: u32,
}

/// Failed attempts by some key (an address, an account), bounded.
#[derive(Debug)]
struct Counter<K> {
    records: Map<K, Record>,
}

impl<K> Default for Counter<K> {
    fn default() -> Self {
        Self {
            records: Map::default(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> Counter<K> {
    fn refused_for(&self, key: &K, now: Instant) -> Option<Duration> {
        let record = self.records.get(key)?;
        let ends = record.first + WINDOW;
        (record.failures >= FREE_FAILURES && now < ends).then(|| ends - now)
    }

    fn forgive(&mut self, key: &K) {
        if let Some(record) = self.records.get_mut(key) {
            record.failures = record.failures.saturating_sub(1);
        }
    }

    fn record(&mut self, key: K, now: Instant) {
        if !self.records.contains_key(&key) && self.records.len() >= MAX_ADDRESSES {
            self.records
                .retain(|_, record| now.saturating_duration_since(record.first) < WINDOW);
            if self.records.len() >= MAX_ADDRESSES
                && let Some(oldest) = self
                    .records
                    .iter()
                    .min_by_key(|(_, record)| record.first)
                    .map(|(key, _)| key.clone())
            {
                self.records.remove(&oldest);
            }
        }
        let record = self.records.entry(key).or_insert(Record {
            first: now,
            failures: 0,
        });
        if now.saturating_duration_since(record.first) >= WINDOW {
            *record = Record {
                first: now,
                failures: 0,
            };
        }
        record.failures = record.failures.saturating_add(1);
    }
}

/// Failed attempts by address, and (SASL, NickServ IDENTIFY) by account: an
/// account is refused after [`FREE_FAILURES`] wrong passwords from anywhere, so
/// guessing from many addresses gets no further than from one.
#[derive(Debug, Default)]
pub(crate) struct AuthFailures {
    by_address: Counter<IpAddr>,
    by_account: Counter<CaseKey>,
    /// Account registrations by address: [`FREE_FAILURES`] a [`WINDOW`], so one
    /// address cannot fill the store with accounts (nor the argon2 pool with their
    /// hashing).
    registrations: Counter<IpAddr>,
}

/// The address an attempt is counted against: IPv6 by its /64.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
        v4 => v4,
    }
}

impl AuthFailures {
    /// How long `ip` must still wait before it may try a password again, if it is
    /// refused now.
    pub(crate) fn refused_for(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        self.by_address.refused_for(&bucket(ip), now)
    }

    /// Takes back one failure of `ip`: an attempt counted as it started turned out
    /// right.
    pub(crate) fn forgive(&mut self, ip: IpAddr) {
        self.by_address.forgive(&bucket(ip));
    }

    /// Records a failed attempt from `ip` (or one that has not succeeded yet).
    pub(crate) fn record(&mut self, ip: IpAddr, now: Instant) {
        self.by_address.record(bucket(ip), now);
    }

    /// How long account `key` (folded) is still refused, if it is.
    pub(crate) fn account_refused_for(&self, key: &CaseKey, now: Instant) -> Option<Duration> {
        self.by_account.refused_for(key, now)
    }

    /// Records a failed (or not yet successful) attempt on account `key`.
    pub(crate) fn record_account(&mut self, key: CaseKey, now: Instant) {
        self.by_account.record(key, now);
    }

    /// How long `ip` must still wait before it may register another account, if it
    /// must.
    pub(crate) fn registration_refused_for(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        self.registrations.refused_for(&bucket(ip), now)
    }

    /// Records an account registration attempt from `ip`.
    pub(crate) fn record_registration(&mut self, ip: IpAddr, now: Instant) {
        self.registrations.record(bucket(ip), now);
    }

    /// Takes back one failure of account `key`.
    pub(crate) fn forgive_account(&mut self, key: &CaseKey) {
        self.by_account.forgive(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_its_free_failures_until_the_window_ends() {
        let mut failures = AuthFailures::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap_or(IpAddr::V4([0; 4].into()));
        let start = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(failures.refused_for(ip, start), None);
            failures.record(ip, start);
        }
        let later = start + Duration::from_secs(20);
        assert_eq!(
            failures.refused_for(ip, later),
            Some(WINDOW - Duration::from_secs(20))
        );
        assert_eq!(
            failures.refused_for("192.0.2.8".parse().unwrap_or(ip), later),
            None
        );
        assert_eq!(failures.refused_for(ip, start + WINDOW), None);
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_bit_prefix() {
        let mut failures = AuthFailures::default();
        let now = Instant::now();
        for host in 1..=FREE_FAILURES {
            let ip: IpAddr = format!("2001:db8::{host}")
                .parse()
                .unwrap_or(IpAddr::V4([0; 4].into()));
            failures.record(ip, now);
        }
        let neighbour: IpAddr = "2001:db8::ffff:1"
            .parse()
            .unwrap_or(IpAddr::V4([0; 4].into()));
        assert!(failures.refused_for(neighbour, now).is_some());
        let elsewhere: IpAddr = "2001:db8:0:1::1"
            .parse()
            .unwrap_or(IpAddr::V4([0; 4].into()));
        assert!(failures.refused_for(elsewhere, now).is_none());
    }

    #[test]
    fn accounts_are_refused_after_their_free_failures_from_any_address() {
        let mut failures = AuthFailures::default();
        let key = crate::world::World::key("Alice");
        let now = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(failures.account_refused_for(&key, now), None);
            failures.record_account(key.clone(), now);
        }
        assert!(
            failures
                .account_refused_for(&crate::world::World::key("ALICE"), now)
                .is_some()
        );
        failures.forgive_account(&key);
        assert_eq!(failures.account_refused_for(&key, now), None);
    }
}
