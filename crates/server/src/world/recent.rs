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

use palaver_proto::CaseKey;
use tokio::time::Instant;

use super::ClientId;

/// Where a recorded message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SentTo {
    /// A channel (folded name); `min_status` is the STATUSMSG prefix (`@` or `+`) if
    /// the message reached only members with that status.
    Channel {
        key: CaseKey,
        min_status: Option<char>,
    },
    /// A private message between two connections (the same one for a note to self).
    Private { to: ClientId },
}

/// One recorded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sent {
    pub(crate) sender: ClientId,
    pub(crate) to: SentTo,
    pub(crate) at: Instant,
}

/// The index of recent messages.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    by_msgid: super::Map<Box<str>, Sent>,
    /// Message ids, oldest first; may still hold ids already redacted.
    order: VecDeque<Box<str>>,
}

impl Recent {
    /// Remembers a relayed message; with `limit` 0 nothing is kept.
    pub(crate) fn record(&mut self, msgid: &str, sent: Sent, limit: usize) {
        if limit == 0 {
            return;
        }
        while self.order.len() >= limit {
            if let Some(oldest) = self.order.pop_front() {
                self.by_msgid.remove(&oldest);
            }
        }
        let msgid: Box<str> = msgid.into();
        self.order.push_back(msgid.clone());
        self.by_msgid.insert(msgid, sent);
    }

    /// The message with this id, if still remembered.
    pub(crate) fn get(&self, msgid: &str) -> Option<&Sent> {
        self.by_msgid.get(msgid)
    }

    /// Forgets a message (it was redacted: a second REDACT finds nothing).
    pub(crate) fn remove(&mut self, msgid: &str) {
        self.by_msgid.remove(msgid);
    }

    /// Messages remembered (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_msgid.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(sender: u64) -> Sent {
        Sent {
            sender: ClientId(sender),
            to: SentTo::Private { to: ClientId(9) },
            at: Instant::now(),
        }
    }

    #[test]
    fn the_ring_forgets_the_oldest_past_its_bound() {
        let mut recent = Recent::default();
        recent.record("a", sent(1), 2);
        recent.record("b", sent(2), 2);
        recent.record("c", sent(3), 2);
        assert_eq!(recent.get("a"), None);
        assert_eq!(recent.get("b").map(|s| s.sender), Some(ClientId(2)));
        assert_eq!(recent.get("c").map(|s| s.sender), Some(ClientId(3)));
        recent.remove("b");
        assert_eq!(recent.get("b"), None);
        recent.record("d", sent(4), 2);
        assert_eq!(recent.len(), 2);
        assert_eq!(recent.order.len(), 2);

        let mut off = Recent::default();
        off.record("a", sent(1), 0);
        assert_eq!(off.get("a"), None);
    }
}
