//! Failed password attempts (`PASS`, `OPER`) by address, so that nobody can guess
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

/// Failed attempts by address.
#[derive(Debug, Default)]
pub(crate) struct AuthFailures {
    by_address: Map<IpAddr, Record>,
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
        let record = self.by_address.get(&bucket(ip))?;
        let ends = record.first + WINDOW;
        (record.failures >= FREE_FAILURES && now < ends).then(|| ends - now)
    }

    /// Takes back one failure of `ip`: an attempt counted as it started turned out
    /// right.
    pub(crate) fn forgive(&mut self, ip: IpAddr) {
        if let Some(record) = self.by_address.get_mut(&bucket(ip)) {
            record.failures = record.failures.saturating_sub(1);
        }
    }

    /// Records a failed attempt from `ip` (or one that has not succeeded yet).
    pub(crate) fn record(&mut self, ip: IpAddr, now: Instant) {
        let key = bucket(ip);
        if !self.by_address.contains_key(&key) && self.by_address.len() >= MAX_ADDRESSES {
            self.by_address
                .retain(|_, record| now.saturating_duration_since(record.first) < WINDOW);
            if self.by_address.len() >= MAX_ADDRESSES
                && let Some(oldest) = self
                    .by_address
                    .iter()
                    .min_by_key(|(_, record)| record.first)
                    .map(|(ip, _)| *ip)
            {
                self.by_address.remove(&oldest);
            }
        }
        let record = self.by_address.entry(key).or_insert(Record {
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
}
