//! Recently relayed messages, by `msgid`: who sent what where, and when. This is what
//! IRCv3 `draft/message-redaction` checks a `REDACT` against (the sender may redact
//! its own message, a channel operator anyone's in its channel).
//!
//! Only identities are kept, never text. The index is one ring for the whole server,
//! bounded by `Limits::redact_history` entries: recording a message past the bound
//! forgets the oldest. A message older than `Limits::redact_window` is still found,
//! so the client learns the window passed (`REDACT_WINDOW_EXPIRED`) rather than that
//! the message is unknown. Senders are connection ids, which are never reused, so a
//! later holder of the same nickname cannot redact an earlier holder's messages.

use std::collections::VecDeque;

use tokio::time::Instant;

use super::{ClientId, Recipients};

/// One recorded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sent {
    pub(crate) sender: ClientId,
    pub(crate) to: Recipients,
    pub(crate) at: Instant,
}

/// The index of recent messages, by the serial number in their `msgid`.
///
/// Message ids are `<prefix>-<serial>` with a serial that only grows (see
/// `World::next_id_string`), so the index is a ring of slots, one per serial from
/// `first` on: recording is a push, finding is a subtraction, and the relay path
/// neither hashes nor allocates for it. Serials used for something other than a
/// recorded message (batch references) leave an empty slot, so the bound counts
/// serials: at most `limit` slots, each one `Sent` or nothing.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    /// The serial of `slots[0]`.
    first: u64,
    slots: VecDeque<Option<Sent>>,
}

impl Recent {
    /// Remembers the message with serial `serial`; with `limit` 0 nothing is kept.
    pub(crate) fn record(&mut self, serial: u64, sent: Sent, limit: usize) {
        if limit == 0 {
            return;
        }
        let end = self.first + self.slots.len() as u64;
        if serial < end {
            // Serials only grow; an older one has no slot to go to.
            return;
        }
        if self.slots.is_empty() || serial - end >= limit as u64 {
            // Empty, or so far ahead that every slot would be forgotten anyway.
            self.slots.clear();
            self.first = serial;
        } else {
            for _ in end..serial {
                self.slots.push_back(None);
            }
        }
        self.slots.push_back(Some(sent));
        while self.slots.len() > limit {
            self.slots.pop_front();
            self.first += 1;
        }
    }

    /// The message with this serial, if still remembered.
    pub(crate) fn get(&self, serial: u64) -> Option<&Sent> {
        let index = usize::try_from(serial.checked_sub(self.first)?).ok()?;
        self.slots.get(index)?.as_ref()
    }

    /// Forgets a message (it was redacted: a second REDACT finds nothing).
    pub(crate) fn remove(&mut self, serial: u64) {
        if let Some(index) = serial
            .checked_sub(self.first)
            .and_then(|index| usize::try_from(index).ok())
            && let Some(slot) = self.slots.get_mut(index)
        {
            *slot = None;
        }
    }

    /// Slots in the ring (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(sender: u64) -> Sent {
        Sent {
            sender: ClientId(sender),
            to: Recipients::Client(ClientId(9)),
            at: Instant::now(),
        }
    }

    #[test]
    fn the_ring_forgets_the_oldest_past_its_bound() {
        let mut recent = Recent::default();
        recent.record(1, sent(1), 2);
        recent.record(2, sent(2), 2);
        recent.record(3, sent(3), 2);
        assert_eq!(recent.get(1), None);
        assert_eq!(recent.get(2).map(|s| s.sender), Some(ClientId(2)));
        assert_eq!(recent.get(3).map(|s| s.sender), Some(ClientId(3)));
        recent.remove(2);
        assert_eq!(recent.get(2), None);
        recent.record(4, sent(4), 2);
        assert_eq!(recent.len(), 2);
        assert_eq!(recent.get(4).map(|s| s.sender), Some(ClientId(4)));

        let mut off = Recent::default();
        off.record(1, sent(1), 0);
        assert_eq!(off.get(1), None);
    }

    #[test]
    fn serials_used_elsewhere_leave_empty_slots_within_the_bound() {
        let mut recent = Recent::default();
        recent.record(10, sent(1), 4);
        recent.record(12, sent(2), 4);
        assert_eq!(recent.get(11), None);
        assert_eq!(recent.get(12).map(|s| s.sender), Some(ClientId(2)));
        // A jump past the bound starts the ring afresh.
        recent.record(100, sent(3), 4);
        assert_eq!(recent.len(), 1);
        assert_eq!(recent.get(10), None);
        assert_eq!(recent.get(100).map(|s| s.sender), Some(ClientId(3)));
        // Older serials are not recorded.
        recent.record(99, sent(4), 4);
        assert_eq!(recent.get(99), None);
    }
}
