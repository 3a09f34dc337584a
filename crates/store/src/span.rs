//! History query positions both backends share: what a CHATHISTORY subcommand asks
//! for ([`Span`]) and where a reference lands in one target ([`Resolved`]), over
//! `(time, id)` positions ([`Pos`]).
//!
//! Why shared: both backends order and page history identically (by time, then
//! insertion order), so the conformance suite sees the same pages from either; one
//! definition of the bounds keeps them from drifting apart. Only the SQL that reads
//! a range stays in each backend's `sql.rs`.

use crate::types::HistoryRef;

/// A position in a target's history: `(time, id)`, ordered lexicographically.
pub(crate) type Pos = (i64, i64);

/// Before every message.
pub(crate) const FIRST: Pos = (i64::MIN, i64::MIN);
/// After every message.
pub(crate) const LAST: Pos = (i64::MAX, i64::MAX);

/// The CHATHISTORY subcommands, as positions.
#[derive(Debug, Clone)]
pub(crate) enum Span {
    Latest(Option<HistoryRef>),
    Before(HistoryRef),
    After(HistoryRef),
    Around(HistoryRef),
    Between(HistoryRef, HistoryRef),
}

/// A reference resolved in one target.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Resolved {
    Message(Pos),
    Time(i64),
}

impl Resolved {
    /// Exclusive upper bound: "strictly before".
    pub(crate) fn below(self) -> Pos {
        match self {
            Self::Message(p) => p,
            Self::Time(t) => (t, i64::MIN),
        }
    }
    /// Exclusive lower bound: "strictly after".
    pub(crate) fn above(self) -> Pos {
        match self {
            Self::Message(p) => p,
            Self::Time(t) => (t, i64::MAX),
        }
    }
    /// Exclusive lower bound: "at or after".
    pub(crate) fn from(self) -> Pos {
        match self {
            Self::Message((t, id)) => (t, id - 1),
            Self::Time(t) => (t, i64::MIN),
        }
    }
}
