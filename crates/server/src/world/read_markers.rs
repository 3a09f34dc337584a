//! IRCv3 `draft/read-marker`: the last-read timestamp of each target (channel or
//! nickname), per owner.
//!
//! The owner is a client connection: its markers live as long as it does (a PART
//! and re-JOIN keeps them) and leave with it ([`ReadMarkers::forget`] from
//! `World::remove_client`). A logged-in client's markers are also its account's:
//! they are written to the store, kept in [`Saved`] (loaded from the store at
//! start-up), and copied into every connection that logs in to the account, so
//! they survive reconnects and restarts and reach a second device.
//!
//! Timestamps only move forward. Each owner holds at most
//! `Limits::read_markers_per_client` targets; past that, the target read longest ago
//! is forgotten first.

use std::collections::HashMap;

use palaver_proto::CaseKey;
use time::{Date, Month, OffsetDateTime, Time};

use super::ClientId;

/// Accounts' markers as stored: account (folded) → target (folded) → time. Loaded
/// at start-up from the store (at most `limits.max_read_markers_total`) and moved
/// forward with every MARKREAD of a logged-in client; a new entry past that bound
/// is written to the store but not kept here (the account's next login then misses
/// it until the server restarts).
#[derive(Debug, Default)]
pub(crate) struct Saved {
    by_account: HashMap<CaseKey, HashMap<CaseKey, OffsetDateTime>>,
    total: usize,
}

impl Saved {
    /// Records `account`'s marker on `target` (forward only).
    pub(crate) fn advance(
        &mut self,
        account: CaseKey,
        target: CaseKey,
        at: OffsetDateTime,
        limit: usize,
    ) {
        let full = self.total >= limit;
        let markers = self.by_account.entry(account).or_default();
        match markers.get_mut(&target) {
            Some(stored) => *stored = (*stored).max(at),
            None if !full => {
                markers.insert(target, at);
                self.total += 1;
            }
            None => {}
        }
    }

    /// `account`'s markers.
    pub(crate) fn of(&self, account: &CaseKey) -> impl Iterator<Item = (&CaseKey, OffsetDateTime)> {
        self.by_account
            .get(account)
            .into_iter()
            .flatten()
            .map(|(target, at)| (target, *at))
    }
}

/// Every owner's markers.
#[derive(Debug, Default)]
pub(crate) struct ReadMarkers {
    by_owner: HashMap<ClientId, HashMap<CaseKey, OffsetDateTime>>,
    /// Markers of every owner together (bounded by `limits.max_read_markers_total`).
    total: usize,
}

impl ReadMarkers {
    /// `owner`'s marker for the folded target `key`, if any.
    pub(crate) fn get(&self, owner: ClientId, key: &CaseKey) -> Option<OffsetDateTime> {
        self.by_owner.get(&owner)?.get(key).copied()
    }

    /// Moves `owner`'s marker for `key` forward to `at` (never back) and returns the
    /// stored marker afterwards, with whether it changed. At most `limit` targets are
    /// kept per owner; with `limit` 0 nothing is stored. Once the server holds
    /// `total_limit` markers, a new one replaces the owner's oldest, or is not stored
    /// if the owner has none.
    pub(crate) fn advance(
        &mut self,
        owner: ClientId,
        key: &CaseKey,
        at: OffsetDateTime,
        limit: usize,
        total_limit: usize,
    ) -> (Option<OffsetDateTime>, bool) {
        if limit == 0 {
            return (None, false);
        }
        let server_full = self.total >= total_limit;
        if server_full
            && self
                .by_owner
                .get(&owner)
                .is_none_or(|markers| markers.is_empty())
        {
            return (None, false);
        }
        let limit = if server_full {
            self.by_owner.get(&owner).map_or(0, HashMap::len)
        } else {
            limit
        };
        let markers = self.by_owner.entry(owner).or_default();
        if let Some(stored) = markers.get_mut(key) {
            if at > *stored {
                *stored = at;
                return (Some(at), true);
            }
            return (Some(*stored), false);
        }
        while markers.len() >= limit {
            // Forget the target read longest ago.
            let Some(oldest) = markers
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            markers.remove(&oldest);
            self.total -= 1;
        }
        markers.insert(key.clone(), at);
        self.total += 1;
        (Some(at), true)
    }

    /// Drops everything `owner` stored (it left the server).
    pub(crate) fn forget(&mut self, owner: ClientId) {
        if let Some(markers) = self.by_owner.remove(&owner) {
            self.total -= markers.len();
        }
    }

    /// Owners with at least one marker (for tests: it must drain as clients leave).
    #[cfg(test)]
    pub(crate) fn owners(&self) -> usize {
        self.by_owner.len()
    }
}

/// Parses a `server-time` timestamp, `YYYY-MM-DDThh:mm:ss[.fraction]Z` in UTC (the
/// fraction, if any, of 1 to 9 digits; kept to the millisecond).
pub(crate) fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b.last() != Some(&b'Z')
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = b.get(range)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        digits.iter().try_fold(0u32, |n, d| {
            n.checked_mul(10)?.checked_add(u32::from(d - b'0'))
        })
    };
    let year = i32::try_from(number(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(number(5..7)?).ok()?).ok()?;
    let day = u8::try_from(number(8..10)?).ok()?;
    let hour = u8::try_from(number(11..13)?).ok()?;
    let minute = u8::try_from(number(14..16)?).ok()?;
    let second = u8::try_from(number(17..19)?).ok()?;
    let millis = match b.len() {
        20 => 0,
        len if (22..=30).contains(&len) && b[19] == b'.' => {
            let fraction = &b[20..len - 1];
            if !fraction.iter().all(u8::is_ascii_digit) {
                return None;
            }
            fraction
                .iter()
                .chain(std::iter::repeat(&b'0'))
                .take(3)
                .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'))
        }
        _ => return None,
    };
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms_milli(hour, minute, second, millis).ok()?;
    Some(date.with_time(time).assume_utc())
}

/// A timestamp as `server-time` writes it (`YYYY-MM-DDThh:mm:ss.sssZ`).
pub(crate) fn format_timestamp(at: OffsetDateTime) -> String {
    at.format(crate::relay::SERVER_TIME_FORMAT)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::CASEMAPPING;

    fn key(name: &str) -> CaseKey {
        CaseKey::new(CASEMAPPING, name)
    }

    fn ts(text: &str) -> OffsetDateTime {
        parse_timestamp(text).unwrap_or_else(|| panic!("valid timestamp {text}"))
    }

    #[test]
    fn timestamps_parse_strictly_and_round_trip() {
        let text = "2019-01-04T14:33:26.123Z";
        assert_eq!(format_timestamp(ts(text)), text);
        assert_eq!(
            format_timestamp(ts("2019-01-04T14:33:26Z")),
            "2019-01-04T14:33:26.000Z"
        );
        assert_eq!(
            format_timestamp(ts("2019-01-04T14:33:26.1234567Z")),
            "2019-01-04T14:33:26.123Z"
        );
        assert_eq!(
            format_timestamp(ts("2019-01-04T14:33:26.5Z")),
            "2019-01-04T14:33:26.500Z"
        );
        for bad in [
            "",
            "*",
            "not-a-timestamp",
            "2019-01-04 14:33:26.123Z",
            "2019-01-04T14:33:26.123",
            "2019-01-04T14:33:26.123+00:00",
            "2019-13-04T14:33:26.123Z",
            "2019-02-30T14:33:26.123Z",
            "2019-01-04T24:33:26.123Z",
            "2019-01-04T14:33:26.Z",
            "2019-01-04T14:33:26.12a Z",
            "+019-01-04T14:33:26.123Z",
            "2019-01-04T14:33:26.1234567890Z",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn markers_only_move_forward_are_bounded_and_drain() {
        let mut markers = ReadMarkers::default();
        let (a, b) = (ClientId(1), ClientId(2));
        let early = ts("2020-01-01T00:00:00.000Z");
        let late = ts("2021-01-01T00:00:00.000Z");
        assert_eq!(
            markers.advance(a, &key("#c"), late, 2, usize::MAX),
            (Some(late), true)
        );
        assert_eq!(
            markers.advance(a, &key("#C"), early, 2, usize::MAX),
            (Some(late), false)
        );
        assert_eq!(markers.get(a, &key("#c")), Some(late));
        assert_eq!(markers.get(b, &key("#c")), None);

        // A third target evicts the one read longest ago.
        assert_eq!(
            markers.advance(a, &key("bob"), early, 2, usize::MAX),
            (Some(early), true)
        );
        let latest = ts("2022-01-01T00:00:00.000Z");
        assert_eq!(
            markers.advance(a, &key("#d"), latest, 2, usize::MAX),
            (Some(latest), true)
        );
        assert_eq!(markers.get(a, &key("bob")), None);
        assert_eq!(markers.get(a, &key("#c")), Some(late));

        assert_eq!(
            markers.advance(b, &key("#c"), early, 0, usize::MAX),
            (None, false)
        );
        markers.forget(a);
        assert_eq!(markers.owners(), 0);
        assert_eq!(markers.total, 0);
    }

    #[test]
    fn the_server_wide_bound_replaces_the_owners_oldest_marker() {
        let mut markers = ReadMarkers::default();
        let (a, b) = (ClientId(1), ClientId(2));
        let early = ts("2020-01-01T00:00:00.000Z");
        let late = ts("2021-01-01T00:00:00.000Z");
        assert_eq!(
            markers.advance(a, &key("#a"), early, 10, 2),
            (Some(early), true)
        );
        assert_eq!(
            markers.advance(a, &key("#b"), late, 10, 2),
            (Some(late), true)
        );
        // Full: b has nothing to give up, so its marker is not stored...
        assert_eq!(markers.advance(b, &key("#a"), late, 10, 2), (None, false));
        // ...and a's new marker replaces its own oldest.
        assert_eq!(
            markers.advance(a, &key("#c"), late, 10, 2),
            (Some(late), true)
        );
        assert_eq!(markers.get(a, &key("#a")), None);
        assert_eq!(markers.total, 2);
    }
}
