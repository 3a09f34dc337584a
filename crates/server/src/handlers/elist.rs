//! LIST filters (`ELIST=CMNTU`, modern.ircdocs.horse "ELIST parameter").
//!
//! Every comma-separated item of LIST's parameters is one of:
//! - `C<n` / `C>n`: the channel was created less / more than `n` minutes ago;
//! - `T<n` / `T>n`: its topic was set less / more than `n` minutes ago (a channel
//!   without a topic matches neither);
//! - `<n` / `>n`: it has fewer / more than `n` users (as LIST shows them);
//! - `!mask`: its name does not match `mask`;
//! - anything else: a channel name or a mask its name must match.
//!
//! A channel is listed when it matches at least one of the masks (if any were given),
//! none of the negated masks and every condition. The time conditions follow the
//! reading irctest checks (InspIRCd, Solanum): "less than `n` minutes ago".

use std::time::{Duration, SystemTime};

use palaver_proto::mask;

use crate::world::CASEMAPPING;

/// Which side of the value a condition wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Below,
    Above,
}

impl Cmp {
    fn holds<T: PartialOrd>(self, actual: T, value: T) -> bool {
        match self {
            Self::Below => actual < value,
            Self::Above => actual > value,
        }
    }
}

/// One numeric condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    Users(Cmp, u64),
    /// Minutes since the channel was created.
    Created(Cmp, u64),
    /// Minutes since the topic was set.
    TopicSet(Cmp, u64),
}

/// What one channel looks like to a LIST filter.
pub(super) struct Candidate<'c> {
    pub(super) name: &'c str,
    pub(super) users: usize,
    pub(super) created_at: SystemTime,
    pub(super) topic_set_at: Option<SystemTime>,
}

/// The parsed parameters of one LIST command. It owns its masks: a long LIST is
/// answered a page at a time, after the command's line is gone (`handlers::paged`).
#[derive(Debug, Default)]
pub(super) struct Filter {
    masks: Vec<Box<str>>,
    not_masks: Vec<Box<str>>,
    conditions: Vec<Condition>,
}

impl Filter {
    /// Parses every comma-separated item of `params` (channels, masks and conditions
    /// may come in one parameter or two).
    pub(super) fn parse(params: &[&str]) -> Self {
        let mut filter = Self::default();
        for item in params
            .iter()
            .flat_map(|p| p.split(','))
            .filter(|i| !i.is_empty())
        {
            if let Some(condition) = parse_condition(item) {
                filter.conditions.push(condition);
            } else if let Some(negated) = item.strip_prefix('!') {
                filter.not_masks.push(negated.into());
            } else {
                filter.masks.push(item.into());
            }
        }
        filter
    }

    /// Whether a channel with this name can pass (the cheap test, before counting).
    pub(super) fn matches_name(&self, name: &str) -> bool {
        (self.masks.is_empty()
            || self
                .masks
                .iter()
                .any(|m| mask::matches(CASEMAPPING, m, name)))
            && !self
                .not_masks
                .iter()
                .any(|m| mask::matches(CASEMAPPING, m, name))
    }

    /// Whether the channel passes the whole filter at time `now`.
    pub(super) fn matches(&self, channel: &Candidate<'_>, now: SystemTime) -> bool {
        let age = |since: SystemTime| now.duration_since(since).unwrap_or(Duration::ZERO);
        self.matches_name(channel.name)
            && self.conditions.iter().all(|condition| match *condition {
                Condition::Users(cmp, value) => cmp.holds(channel.users as u64, value),
                Condition::Created(cmp, minutes) => {
                    cmp.holds(age(channel.created_at), minutes_to_duration(minutes))
                }
                Condition::TopicSet(cmp, minutes) => channel
                    .topic_set_at
                    .is_some_and(|set_at| cmp.holds(age(set_at), minutes_to_duration(minutes))),
            })
    }
}

fn minutes_to_duration(minutes: u64) -> Duration {
    Duration::from_secs(minutes.saturating_mul(60))
}

/// `C<n`, `C>n`, `T<n`, `T>n`, `<n`, `>n`; `None` for anything else.
fn parse_condition(item: &str) -> Option<Condition> {
    let (kind, rest) = match item.as_bytes().first()? {
        b'C' | b'c' => (Some(b'C'), &item[1..]),
        b'T' | b't' => (Some(b'T'), &item[1..]),
        _ => (None, item),
    };
    let cmp = match rest.as_bytes().first()? {
        b'<' => Cmp::Below,
        b'>' => Cmp::Above,
        _ => return None,
    };
    let value: u64 = rest[1..].parse().ok()?;
    Some(match kind {
        Some(b'C') => Condition::Created(cmp, value),
        Some(_) => Condition::TopicSet(cmp, value),
        None => Condition::Users(cmp, value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes_ago(now: SystemTime, minutes: u64) -> SystemTime {
        now - Duration::from_secs(minutes * 60)
    }

    fn candidate(name: &str, users: usize, created: u64, topic: Option<u64>) -> Candidate<'_> {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        Candidate {
            name,
            users,
            created_at: minutes_ago(now, created),
            topic_set_at: topic.map(|t| minutes_ago(now, t)),
        }
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
    }

    #[test]
    fn items_are_classified() {
        let filter = Filter::parse(&["#a,!*b*,C<5,t>2", ">3,<10,#c*,x<y,C<"]);
        assert_eq!(filter.masks, ["#a", "#c*", "x<y", "C<"].map(Box::from));
        assert_eq!(filter.not_masks, ["*b*"].map(Box::from));
        assert_eq!(
            filter.conditions,
            [
                Condition::Created(Cmp::Below, 5),
                Condition::TopicSet(Cmp::Above, 2),
                Condition::Users(Cmp::Above, 3),
                Condition::Users(Cmp::Below, 10),
            ]
        );
    }

    #[test]
    fn creation_time_is_minutes_ago() {
        let old = candidate("#old", 1, 3, None);
        let new = candidate("#new", 1, 1, None);
        let pick = |items: &str| {
            let filter = Filter::parse(&[items]);
            [&old, &new]
                .into_iter()
                .filter(|c| filter.matches(c, now()))
                .map(|c| c.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(pick("C>2"), ["#old"]);
        assert_eq!(pick("C<2"), ["#new"]);
        assert!(pick("C<0").is_empty());
        assert_eq!(pick("C>0"), ["#old", "#new"]);
        assert_eq!(pick("C<10"), ["#old", "#new"]);
        assert_eq!(pick("C>1,C<10"), ["#old"]);
    }

    #[test]
    fn topic_time_skips_channels_without_a_topic() {
        let old = candidate("#old", 1, 9, Some(3));
        let new = candidate("#new", 1, 9, Some(1));
        let none = candidate("#none", 1, 9, None);
        let pick = |items: &str| {
            let filter = Filter::parse(&[items]);
            [&old, &new, &none]
                .into_iter()
                .filter(|c| filter.matches(c, now()))
                .map(|c| c.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(pick("T>2"), ["#old"]);
        assert_eq!(pick("T<2"), ["#new"]);
        assert!(pick("T<0").is_empty());
        assert_eq!(pick("T>0"), ["#old", "#new"]);
        assert_eq!(pick("T<10"), ["#old", "#new"]);
    }

    #[test]
    fn users_masks_and_negated_masks_combine() {
        let one = candidate("#chan1", 1, 0, None);
        let two = candidate("#chan2", 2, 0, None);
        let pick = |params: &[&str]| {
            let filter = Filter::parse(params);
            [&one, &two]
                .into_iter()
                .filter(|c| filter.matches(c, now()))
                .map(|c| c.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(pick(&[">1"]), ["#chan2"]);
        assert_eq!(pick(&["<2"]), ["#chan1"]);
        assert!(pick(&["<1"]).is_empty());
        assert_eq!(pick(&["*AN1,#chan2"]), ["#chan1", "#chan2"]);
        assert_eq!(pick(&["!*an1"]), ["#chan2"]);
        assert!(pick(&["!#ch*"]).is_empty());
        assert_eq!(pick(&["#ch*", ">1"]), ["#chan2"]);
        assert!(pick(&["#chan1", ">1"]).is_empty());
    }
}
