//! History fill: each buffer asks the server (`draft/chathistory`) for what it
//! missed, when its channel is joined and after every reconnect.
//!
//! A buffer that has seen a message asks for everything after the newest one it
//! saw (`CHATHISTORY AFTER <target> timestamp=…`, page after page); one that has
//! not asks for the latest [`JOIN_HISTORY`] (`CHATHISTORY LATEST <target> *`).
//! Pages ask for no more than the server's `CHATHISTORY` limit, and a fill stops
//! after [`crate::state::MAX_SCROLLBACK`] lines, since the scrollback would drop
//! the rest: it then takes the latest page and says that some were skipped.
//!
//! Three rules keep the buffer exact:
//! - **No duplicates.** Every message is recognised by its `msgid`; one already in
//!   the scrollback is not shown again. The `AFTER` reference is a timestamp
//!   1 ms before the newest message seen (timestamps have millisecond precision,
//!   so a message in the same millisecond is not skipped), and the overlap is
//!   removed by msgid. A timestamp, unlike a msgid, still works when that message
//!   has expired from the server's history.
//! - **In order.** While a buffer is being filled, live messages for it are held
//!   (at most [`MAX_HELD`]) and shown after the history, minus what the history
//!   already brought.
//! - **One request at a time.** Fills wait in a queue, so every `BATCH`, `FAIL`
//!   and `PONG` answers the request in flight. A `PING` after each request ends
//!   the fill even if a server answers with nothing at all: held lines are never
//!   stuck.
//!
//! Private conversations are filled too when logged in to an account (after the
//! welcome burst, with `CHATHISTORY TARGETS` finding the ones not open), and a
//! `draft/multiline` message, whose msgid and time are on its batch, lends them
//! to its lines (numbered), so it is recognised like any other message.

use std::collections::VecDeque;

use palaver_proto::{CaseKey, Message};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Client;
use crate::state::{BufferKind, LineKind, MAX_SCROLLBACK, Stamp};

/// Messages asked for when a buffer has none yet (a first join): enough to see
/// what the conversation is about without flooding the screen.
pub const JOIN_HISTORY: usize = 100;

/// Messages per page when the server does not say (`CHATHISTORY` without a
/// value): a size every server accepts.
const DEFAULT_PAGE: usize = 100;

/// Live lines held, over all buffers being filled; past this they are shown as
/// they come (out of order rather than lost or unbounded).
pub const MAX_HELD: usize = MAX_SCROLLBACK;

/// Conversations asked for in one `CHATHISTORY TARGETS`: each one found opens
/// a buffer, so not without bound.
const MAX_TARGETS: usize = 50;

/// Token prefix of the PINGs that follow each history request.
pub(super) const HISTORY_TOKEN: &str = "palaver-history-";

/// Multiline batches remembered (see `Client::multiline_batches`).
const MAX_MULTILINE_BATCHES: usize = 16;

/// A `draft/multiline` batch: what its lines inherit.
#[derive(Debug)]
pub(super) struct MultilineBatch {
    reference: String,
    msgid: Option<String>,
    time: Option<OffsetDateTime>,
    /// It came inside a history batch.
    history: bool,
    /// Lines of it handled so far.
    lines: usize,
    /// Its first line was already shown: the rest of it is skipped.
    duplicate: bool,
}

/// What a line inside a multiline batch inherits from it.
#[derive(Debug, Clone)]
pub(super) struct Inherited {
    /// `<batch msgid>:<line number>`, so each line has an id of its own.
    pub(super) msgid: Option<String>,
    pub(super) time: Option<OffsetDateTime>,
    /// The batch.
    pub(super) reference: String,
    /// The batch's first line was already in its buffer, so the whole message
    /// is (lines joined by `multiline-concat` have no id of their own there).
    pub(super) duplicate: bool,
    /// Not the batch's first line: a history page counts the message once.
    pub(super) continuation: bool,
}

/// One buffer's fill, queued or in flight.
#[derive(Debug)]
pub(super) struct Fill {
    /// The channel or nick, as the request names it.
    target: String,
    key: CaseKey,
    /// Ask for what came after this (the newest message seen); `None`: the latest.
    after: Option<OffsetDateTime>,
    /// The page in flight asks for `LATEST *` (first join, or after skipping).
    latest: bool,
    /// The `chathistory` batch answering the request in flight, once opened.
    pub(super) reference: Option<String>,
    /// The PING token sent after the request in flight.
    token: String,
    /// Messages asked for in the page in flight.
    limit: usize,
    /// Messages received in the page in flight, and new ones among them.
    page: usize,
    page_added: usize,
    /// Messages received over all pages.
    fetched: usize,
    /// Messages shown (not already in the scrollback) over all pages.
    pub(super) added: usize,
    /// The newest message time in the page in flight, where the next page starts.
    newest: Option<OffsetDateTime>,
}

/// How history ends a fill's page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageEnd {
    /// The batch closed: the page may be followed by another.
    Batch,
    /// The server refused (`FAIL CHATHISTORY`) or answered the PING without a
    /// batch: the fill is over.
    Over,
}

/// `2026-12-02T10:00:00.000Z`, as IRCv3 `server-time` writes it.
pub(super) fn format_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// The `time` tag of a server line, if it has a valid one.
pub(super) fn server_time(msg: &Message<'_>) -> Option<OffsetDateTime> {
    let (_, value) = msg.tags().find(|(key, _)| *key == "time")?;
    OffsetDateTime::parse(&value, &Rfc3339).ok()
}

/// The `msgid` tag of a server line.
pub(super) fn msgid(msg: &Message<'_>) -> Option<String> {
    let (_, value) = msg.tags().find(|(key, _)| *key == "msgid")?;
    Some(value.into_owned()).filter(|v| !v.is_empty())
}

/// A server time as the local time of day and date the buffer shows.
pub(super) fn stamp(at: OffsetDateTime, offset: time::UtcOffset) -> Stamp {
    let local = at.to_offset(offset);
    Stamp::new(local.hour(), local.minute()).on(local.date())
}

impl Client {
    /// `BATCH +ref draft/multiline …`: remembered with its msgid and time;
    /// `history` when it is nested in the history batch in flight.
    pub(super) fn on_multiline_batch(&mut self, msg: &Message<'_>, reference: &str, history: bool) {
        if self.multiline_batches.len() >= MAX_MULTILINE_BATCHES {
            self.multiline_batches.pop_front();
        }
        self.multiline_batches.push_back(MultilineBatch {
            reference: reference.to_owned(),
            msgid: msgid(msg),
            time: server_time(msg),
            history,
            lines: 0,
            duplicate: false,
        });
    }

    /// Whether `reference` is a multiline batch nested in history.
    pub(super) fn is_history_multiline(&self, reference: &str) -> bool {
        self.multiline_batches
            .iter()
            .any(|b| b.history && b.reference == reference)
    }

    /// For a message line inside multiline batch `reference`: what it inherits,
    /// counting the line.
    pub(super) fn inherit(&mut self, reference: &str) -> Option<Inherited> {
        // The newest first: a reference may come again on a later connection.
        let batch = self
            .multiline_batches
            .iter_mut()
            .rev()
            .find(|b| b.reference == reference)?;
        let number = batch.lines;
        batch.lines += 1;
        Some(Inherited {
            msgid: batch.msgid.as_ref().map(|id| format!("{id}:{number}")),
            time: batch.time,
            reference: batch.reference.clone(),
            duplicate: batch.duplicate,
            continuation: number > 0,
        })
    }

    /// Records whether the first line of multiline batch `reference` was
    /// already shown.
    pub(super) fn multiline_seen(&mut self, reference: &str, duplicate: bool) {
        if let Some(batch) = self
            .multiline_batches
            .iter_mut()
            .rev()
            .find(|b| b.reference == reference)
        {
            batch.duplicate = duplicate;
        }
    }

    /// Messages per page: the server's `CHATHISTORY` limit, within the scrollback.
    fn page_size(&self) -> usize {
        match self.history_max {
            Some(0) => MAX_SCROLLBACK,
            Some(max) => max.min(MAX_SCROLLBACK),
            None => DEFAULT_PAGE,
        }
    }

    /// Whether `key`'s buffer is waiting for its history (queued or in flight).
    pub(super) fn filling(&self, key: &CaseKey) -> bool {
        self.fill.as_ref().is_some_and(|f| &f.key == key)
            || self.fills.iter().any(|f| &f.key == key)
    }

    /// Queues a fill of `target`'s buffer, if this connection has history and the
    /// buffer is not already waiting for one.
    pub(super) fn fill_history(&mut self, target: &str) {
        if !self.history_on {
            return;
        }
        let key = self.state.key(target);
        if self.filling(&key) {
            return;
        }
        let after = self
            .state
            .find(target)
            .and_then(|i| self.state.buffers[i].last_time);
        self.fills.push_back(Fill {
            target: target.to_owned(),
            key,
            after,
            latest: after.is_none(),
            reference: None,
            token: String::new(),
            limit: 0,
            page: 0,
            page_added: 0,
            fetched: 0,
            added: 0,
            newest: None,
        });
        if self.fill.is_none() {
            self.next_fill();
        }
    }

    /// Fills the open private conversations that have seen a message, after a
    /// reconnect. Only when logged in: a server keys the private history of a
    /// user without an account by nickname and shows it only what was said since
    /// it connected (palaver does), so there would be nothing to fetch.
    ///
    /// Conversations not open here that had messages since then (said to the
    /// account's other devices, or to us while we were away) are found with
    /// `CHATHISTORY TARGETS`, from the newest message any buffer saw until now.
    pub(super) fn fill_queries(&mut self) {
        if self.state.account.is_none() || !self.history_on {
            return;
        }
        let since = self.state.buffers.iter().filter_map(|b| b.last_time).max();
        if let (Some(since), Some(now)) = (since, self.now.utc) {
            // Both bounds are exclusive. From 1 ms before the newest message seen
            // (one in the same millisecond counts); until a day from now, since
            // nothing can be said later than now and a client clock behind the
            // server's must not cut off what was just said.
            let from = format_time(since - time::Duration::milliseconds(1));
            let to = format_time(now + time::Duration::days(1));
            let limit = self.page_size().min(MAX_TARGETS).to_string();
            self.send(
                "CHATHISTORY",
                &[
                    "TARGETS",
                    &format!("timestamp={from}"),
                    &format!("timestamp={to}"),
                    &limit,
                ],
            );
        }
        let queries: Vec<String> = self
            .state
            .buffers
            .iter()
            .filter(|b| b.kind == BufferKind::Query && b.last_time.is_some())
            .map(|b| b.name.clone())
            .collect();
        for query in queries {
            self.fill_history(&query);
        }
    }

    /// `CHATHISTORY TARGETS <name> …`: a conversation with messages while we
    /// were away. A private one not open here is opened and filled; channels
    /// are filled as they are rejoined.
    pub(super) fn on_history_target(&mut self, name: &str) {
        if name.is_empty() || self.state.is_channel(name) || self.state.find(name).is_some() {
            return;
        }
        self.state.ensure(name, BufferKind::Query);
        self.changes.push(super::Change::Buffers);
        self.fill_history(name);
    }

    /// Starts the next queued fill, if any.
    fn next_fill(&mut self) {
        if let Some(fill) = self.fills.pop_front() {
            self.fill = Some(fill);
            self.request_page();
        }
    }

    /// Sends the request for the in-flight fill's next page, and the PING after it.
    fn request_page(&mut self) {
        let page = self.page_size();
        self.fill_seq += 1;
        let token = format!("{HISTORY_TOKEN}{}", self.fill_seq);
        let Some(fill) = self.fill.as_mut() else {
            return;
        };
        fill.reference = None;
        fill.page = 0;
        fill.page_added = 0;
        fill.newest = None;
        fill.token = token.clone();
        let target = fill.target.clone();
        match (fill.latest, fill.after) {
            (false, Some(after)) => {
                fill.limit = page;
                let from = format_time(after - time::Duration::milliseconds(1));
                let reference = format!("timestamp={from}");
                self.send(
                    "CHATHISTORY",
                    &["AFTER", &target, &reference, &page.to_string()],
                );
            }
            _ => {
                // A first join takes a screenful; after skipping, a whole page.
                let limit = if fill.fetched == 0 {
                    JOIN_HISTORY.min(page)
                } else {
                    page
                };
                fill.limit = limit;
                self.send("CHATHISTORY", &["LATEST", &target, "*", &limit.to_string()]);
            }
        }
        self.send("PING", &[&token]);
    }

    /// `BATCH +ref chathistory <target>`: the answer to the request in flight.
    pub(super) fn on_history_batch_start(&mut self, reference: &str, target: &str) {
        let key = self.state.key(target);
        if let Some(fill) = self.fill.as_mut()
            && fill.key == key
            && fill.reference.is_none()
        {
            fill.reference = Some(reference.to_owned());
        }
    }

    /// Whether `reference` is the batch answering the request in flight.
    pub(super) fn is_history_batch(&self, reference: &str) -> bool {
        self.fill
            .as_ref()
            .and_then(|f| f.reference.as_deref())
            .is_some_and(|r| r == reference)
    }

    /// Counts a message of the history batch; `added` when it was shown (not
    /// already in the scrollback).
    pub(super) fn history_message(&mut self, time: Option<OffsetDateTime>, added: bool) {
        if let Some(fill) = self.fill.as_mut() {
            fill.page += 1;
            fill.fetched += 1;
            if added {
                fill.page_added += 1;
                fill.added += 1;
            }
            if let Some(time) = time
                && fill.newest.is_none_or(|n| time > n)
            {
                fill.newest = Some(time);
            }
        }
    }

    /// The header a fill's first shown line gets, if this one is the first.
    pub(super) fn history_header(&self) -> Option<(String, bool)> {
        let fill = self.fill.as_ref()?;
        (fill.added == 0).then(|| (fill.target.clone(), fill.after.is_some()))
    }

    /// `BATCH -ref` of the history batch.
    pub(super) fn on_history_batch_end(&mut self) {
        self.end_page(PageEnd::Batch);
    }

    /// `FAIL CHATHISTORY <code> …`: the request in flight was refused. After
    /// `MESSAGE_ERROR` (history off, or the store failing) this connection asks
    /// no more, rather than repeat the refusal in every buffer.
    pub(super) fn on_history_fail(&mut self, code: &str, text: &str) {
        if code == "MESSAGE_ERROR" {
            self.history_on = false;
            self.fills.clear();
        }
        if let Some(fill) = &self.fill {
            let target = fill.target.clone();
            if let Some(index) = self.state.find(&target) {
                let text = format!("No history for {target}: {text}");
                self.info(index, LineKind::Info, text);
            }
            self.end_page(PageEnd::Over);
        }
    }

    /// The PONG to a history PING: everything sent before it, the request
    /// included, has been answered. A page still open gets no more lines.
    pub(super) fn on_history_pong(&mut self, token: &str) {
        if self.fill.as_ref().is_some_and(|f| f.token == token) {
            self.end_page(PageEnd::Over);
        }
    }

    fn end_page(&mut self, how: PageEnd) {
        let page = self.page_size();
        let Some(fill) = self.fill.as_mut() else {
            return;
        };
        let full = fill.page >= fill.limit;
        let more = how == PageEnd::Batch && !fill.latest && full && fill.page_added > 0;
        if more && fill.fetched < MAX_SCROLLBACK {
            fill.after = fill.newest.or(fill.after);
            return self.request_page();
        }
        if more {
            // More was said than the scrollback keeps: jump to the latest page
            // and say that some were skipped.
            fill.latest = true;
            let target = fill.target.clone();
            let text = format!(
                "More than {} messages were said in {target}, more than the scrollback keeps: the ones after them are skipped, the latest {page} follow",
                fill.fetched
            );
            if let Some(index) = self.state.find(&target) {
                self.info(index, LineKind::Info, text);
            }
            return self.request_page();
        }
        let Some(fill) = self.fill.take() else {
            return;
        };
        if fill.added > 0
            && let Some(index) = self.state.find(&fill.target)
        {
            let text = format!(
                "End of history ({} message{})",
                fill.added,
                if fill.added == 1 { "" } else { "s" }
            );
            self.info(index, LineKind::Info, text);
        }
        self.release_held();
        self.next_fill();
    }

    /// Ends every fill (the connection is gone) and shows what was held.
    pub(super) fn drop_fills(&mut self) {
        self.fill = None;
        self.fills.clear();
        self.release_held();
    }

    /// Whether a live line is for a buffer being filled, and so must wait; the key
    /// of that buffer if so.
    pub(super) fn hold_key(&self, msg: &Message<'_>, nick: &str) -> Option<CaseKey> {
        if self.fill.is_none() || self.held.len() >= MAX_HELD {
            return None;
        }
        let target = msg.param(0)?;
        let bare = target.trim_start_matches(|c| self.state.prefix_order().contains(c));
        let key = if self.state.is_channel(bare) {
            self.state.key(bare)
        } else if self.state.is_me(target) {
            self.state.key(nick)
        } else {
            self.state.key(target)
        };
        self.filling(&key).then_some(key)
    }

    /// Handles the held lines whose buffers are no longer being filled, in the
    /// order they arrived.
    fn release_held(&mut self) {
        let held = std::mem::take(&mut self.held);
        let mut kept = VecDeque::new();
        let mut ready = Vec::new();
        for (key, line) in held {
            if self.filling(&key) {
                kept.push_back((key, line));
            } else {
                ready.push(line);
            }
        }
        self.held = kept;
        for line in ready {
            self.handle_line(&line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_in_the_server_time_format() {
        let at = OffsetDateTime::parse("2026-12-02T10:00:01.234Z", &Rfc3339).expect("parse");
        assert_eq!(format_time(at), "2026-12-02T10:00:01.234Z");
        let earlier = at - time::Duration::milliseconds(1);
        assert_eq!(format_time(earlier), "2026-12-02T10:00:01.233Z");
        let stamp = stamp(at, time::UtcOffset::from_hms(1, 0, 0).expect("offset"));
        assert_eq!(stamp.to_string(), "11:00");
    }
}
