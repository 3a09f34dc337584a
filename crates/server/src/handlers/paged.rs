//! Replies too large to build at once: `LIST` and `WHO` over many channels or users,
//! built a page at a time as the client reads them.
//!
//! Built in one go, such a reply holds the world lock (and so every other client) for
//! as long as it takes to scan 100,000 channels, and its size can pass the asker's
//! sendq, which would drop a user who did nothing wrong. Instead the handler leaves a
//! [`Paged`] in [`Ctx::paged`](super::Ctx) and the connection drives it:
//!
//! - each call to [`Paged::page`] runs with the world locked, sends at most
//!   [`PAGE_LINES`] lines (fewer with a small sendq, see [`page_lines`]) and examines at most [`PAGE_SCAN`] entries or
//!   [`PAGE_TIME`] of work, then remembers where it stopped: the folded name of the
//!   last channel or nickname, or the last member id, since the walk follows ordered
//!   maps (`World::channel_order`, `World::nicks`, `Channel::members`). Entries
//!   created or removed between pages are listed or not, but nothing that exists
//!   throughout is listed twice or skipped;
//! - the connection asks for the next page only once the client has read most of the
//!   previous one (its outbox below [`low_water`]), so a reply never holds more than
//!   a page or two of memory, and a client that stops reading stops its reply;
//! - every page costs the asker a flood token per millisecond of work, at least one
//!   (see `connection.rs`), which is how the cost of a command follows the work it
//!   causes: a client at the default pace gets at most four pages (1,024 lines) a
//!   second after its burst, fewer if they are slow to build;
//! - the client's next command waits until the reply is complete, so replies never
//!   interleave and a client has at most one reply in progress.
//!
//! With labeled-response, a reply that fits in one page is labeled as any other
//! (`labeled::deliver`); a longer one goes in one `labeled-response` batch that opens
//! with the first page and closes after the last.

use std::ops::Bound;
use std::time::{Duration, SystemTime};

use palaver_proto::numeric::*;
use palaver_proto::{CaseKey, mask};

use super::{Ctx, elist, query, whox};
use crate::caps;
use crate::labeled;
use crate::world::{CASEMAPPING, ClientId, World};

/// Most lines one page sends (about 25 KB of LIST or WHO replies).
const PAGE_LINES: usize = 256;
/// The longest line a page can send, for sizing pages to the sendq.
const MAX_LINE: usize = 512;
/// Most channels or users one page examines, so a filter that matches nothing
/// (`LIST >100000`) still gives the lock back regularly.
const PAGE_SCAN: usize = 4096;
/// Most time one page works for (a 200-byte mask against long names is slow per
/// entry); checked every [`CLOCK_EVERY`] entries.
const PAGE_TIME: Duration = Duration::from_millis(1);
const CLOCK_EVERY: usize = 8;
/// Most bytes waiting for the client's socket before the next page is built.
const LOW_WATER: usize = 16 * 1024;

/// The next page is built once less than this is waiting for the client's socket:
/// [`LOW_WATER`], or an eighth of a smaller sendq.
pub(crate) fn low_water(sendq: usize) -> usize {
    (sendq / 8).min(LOW_WATER)
}

/// Lines per page: [`PAGE_LINES`], or fewer so that what waits before a page plus
/// the page itself stays within half the sendq.
fn page_lines(sendq: usize) -> usize {
    ((sendq / 2).saturating_sub(low_water(sendq)) / MAX_LINE).clamp(1, PAGE_LINES)
}

/// A reply in progress, owned by the asker's connection.
#[derive(Debug)]
pub(crate) struct Paged {
    walk: Walk,
    /// The command's label (labeled-response), if it had one.
    label: Option<String>,
    /// The `labeled-response` batch, once the reply outgrew one page.
    batch: Option<String>,
    started: bool,
}

/// What is being walked, and where the walk stopped.
#[derive(Debug)]
enum Walk {
    /// `LIST`: channels in name order.
    List {
        filter: elist::Filter,
        after: Option<CaseKey>,
    },
    /// `WHO <mask>`: registered users in nickname order.
    WhoMask {
        query: WhoQuery,
        after: Option<CaseKey>,
    },
    /// `WHO <#channel>`: its members in id order.
    WhoChannel {
        query: WhoQuery,
        channel: CaseKey,
        after: Option<ClientId>,
    },
}

/// The parts of a `WHO` command every page needs.
#[derive(Debug)]
pub(super) struct WhoQuery {
    /// The target as the client sent it, for `RPL_ENDOFWHO`.
    pub(super) target: String,
    pub(super) opers_only: bool,
    pub(super) whox: Option<whox::Whox>,
}

/// Whether a reply has more pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    More,
    Done,
}

/// How much one page may still do.
struct Budget {
    max_lines: usize,
    lines: usize,
    scanned: usize,
    started: std::time::Instant,
}

impl Budget {
    fn new(max_lines: usize) -> Self {
        Self {
            max_lines,
            lines: 0,
            scanned: 0,
            started: std::time::Instant::now(),
        }
    }

    /// Counts one examined entry; false once the page must stop.
    fn examine(&mut self) -> bool {
        self.scanned += 1;
        if self.lines >= self.max_lines || self.scanned > PAGE_SCAN {
            return false;
        }
        !self.scanned.is_multiple_of(CLOCK_EVERY) || self.started.elapsed() < PAGE_TIME
    }
}

impl Paged {
    /// `LIST` with this filter; the handler leaves it in `ctx.paged`.
    pub(super) fn list(ctx: &mut Ctx<'_>, filter: elist::Filter) {
        ctx.page(Walk::List {
            filter,
            after: None,
        });
    }

    /// `WHO <mask>` (`0` and `*` included).
    pub(super) fn who_mask(ctx: &mut Ctx<'_>, query: WhoQuery) {
        ctx.page(Walk::WhoMask { query, after: None });
    }

    /// `WHO <#channel>` for a channel the asker may see.
    pub(super) fn who_channel(ctx: &mut Ctx<'_>, query: WhoQuery, channel: CaseKey) {
        ctx.page(Walk::WhoChannel {
            query,
            channel,
            after: None,
        });
    }

    /// Whether the first page was sent (it is paid for by the command itself).
    pub(crate) fn started(&self) -> bool {
        self.started
    }

    /// Sends the next page of the reply to client `id`.
    pub(crate) fn page(&mut self, world: &mut World, id: ClientId) -> Progress {
        let Some(outbox) = world
            .clients
            .get(&id)
            .map(|c| std::sync::Arc::clone(&c.outbox))
        else {
            return Progress::Done;
        };
        if self.label.is_some() {
            outbox.begin_capture();
        }
        let first = !self.started;
        self.started = true;
        let progress = {
            let mut ctx = Ctx::new(world, id);
            self.walk.page(&mut ctx, first)
        };
        if let Some(label) = &self.label {
            let lines = outbox.end_capture();
            if progress == Progress::Done && self.batch.is_none() {
                labeled::deliver(world, id, label, lines);
            } else {
                let reference = self
                    .batch
                    .get_or_insert_with(|| labeled::open_batch(world, &outbox, label));
                labeled::push_in_batch(&outbox, reference, lines);
                if progress == Progress::Done {
                    labeled::close_batch(world, &outbox, reference);
                }
            }
        }
        progress
    }
}

impl Ctx<'_> {
    /// Leaves a paged reply for the connection to drive, taking the command's label.
    fn page(&mut self, walk: Walk) {
        self.paged = Some(Box::new(Paged {
            walk,
            label: self.label.take(),
            batch: None,
            started: false,
        }));
    }
}

impl Walk {
    fn page(&mut self, ctx: &mut Ctx<'_>, first: bool) -> Progress {
        let mut budget = Budget::new(page_lines(ctx.world.config.limits.sendq_bytes));
        match self {
            Self::List { filter, after } => {
                if first {
                    ctx.numeric(RPL_LISTSTART)
                        .param("Channel")
                        .trailing("Users  Name")
                        .send();
                }
                let done = list_page(ctx, filter, after, &mut budget);
                if done {
                    ctx.numeric(RPL_LISTEND).trailing("End of /LIST").send();
                }
                progress(done)
            }
            Self::WhoMask { query, after } => {
                let done = who_mask_page(ctx, query, after, &mut budget);
                end_who(ctx, query, done)
            }
            Self::WhoChannel {
                query,
                channel,
                after,
            } => {
                let done = who_channel_page(ctx, query, channel, after, &mut budget);
                end_who(ctx, query, done)
            }
        }
    }
}

fn progress(done: bool) -> Progress {
    if done { Progress::Done } else { Progress::More }
}

fn end_who(ctx: &Ctx<'_>, query: &WhoQuery, done: bool) -> Progress {
    if done {
        ctx.numeric(RPL_ENDOFWHO)
            .param(&query.target)
            .trailing("End of WHO list")
            .send();
    }
    progress(done)
}

/// The range of an ordered walk that starts after `after`.
fn resume<K>(after: Option<&K>) -> (Bound<&K>, Bound<&K>) {
    (
        after.map_or(Bound::Unbounded, Bound::Excluded),
        Bound::Unbounded,
    )
}

/// One page of `LIST`; true once every channel was examined.
fn list_page(
    ctx: &Ctx<'_>,
    filter: &elist::Filter,
    after: &mut Option<CaseKey>,
    budget: &mut Budget,
) -> bool {
    let now = SystemTime::now();
    let world = &*ctx.world;
    for key in world
        .channel_order
        .range::<CaseKey, _>(resume(after.as_ref()))
    {
        if !budget.examine() {
            return false;
        }
        *after = Some(key.clone());
        let Some(channel) = world.channels.get(key) else {
            continue;
        };
        if channel.hidden_from(ctx.id) || !filter.matches_name(&channel.name) {
            continue;
        }
        let users = super::channel::visible_count(world, channel, ctx.id);
        let candidate = elist::Candidate {
            name: &channel.name,
            users,
            created_at: channel.created_at,
            topic_set_at: channel.topic.as_ref().map(|t| t.set_at),
        };
        if !filter.matches(&candidate, now) {
            continue;
        }
        let topic = channel.topic.as_ref().map_or("", |t| t.text.as_str());
        let (modes, _) = channel.mode_string(false);
        ctx.numeric(RPL_LIST)
            .param(&channel.name)
            .param(&users.to_string())
            .trailing(&format!("[{modes}] {topic}"))
            .send();
        budget.lines += 1;
    }
    true
}

/// One page of `WHO <mask>`; true once every nickname was examined.
fn who_mask_page(
    ctx: &Ctx<'_>,
    query: &WhoQuery,
    after: &mut Option<CaseKey>,
    budget: &mut Budget,
) -> bool {
    let world = &*ctx.world;
    let pattern = if query.target == "0" {
        "*"
    } else {
        query.target.as_str()
    };
    let server_matches = mask::matches(CASEMAPPING, pattern, &world.config.server_name);
    let multi_prefix = ctx.me().caps.has(caps::MULTI_PREFIX);
    for (key, id) in world.nicks.range::<CaseKey, _>(resume(after.as_ref())) {
        if !budget.examine() {
            return false;
        }
        *after = Some(key.clone());
        let Some(client) = world.clients.get(id) else {
            continue;
        };
        if !client.is_registered()
            || (query.opers_only && !client.oper)
            || (client.invisible && client.id != ctx.id && !world.share_channel(ctx.id, client.id))
        {
            continue;
        }
        let hit = server_matches
            || [client.nick(), client.user(), &client.host, &client.realname]
                .iter()
                .any(|field| mask::matches(CASEMAPPING, pattern, field));
        if hit {
            query::who_reply_any_channel(ctx, client, multi_prefix, query.whox.as_ref());
            budget.lines += 1;
        }
    }
    true
}

/// One page of `WHO <#channel>`; true once every member was examined (or the
/// channel is gone).
fn who_channel_page(
    ctx: &Ctx<'_>,
    query: &WhoQuery,
    key: &CaseKey,
    after: &mut Option<ClientId>,
    budget: &mut Budget,
) -> bool {
    let world = &*ctx.world;
    let Some(channel) = world.channels.get(key) else {
        return true;
    };
    let is_member = channel.members.contains_key(&ctx.id);
    let multi_prefix = ctx.me().caps.has(caps::MULTI_PREFIX);
    for (id, member) in channel.members.range(resume(after.as_ref())) {
        if !budget.examine() {
            return false;
        }
        *after = Some(*id);
        let Some(client) = world.clients.get(id) else {
            continue;
        };
        if (client.invisible && !is_member && *id != ctx.id) || (query.opers_only && !client.oper) {
            continue;
        }
        query::who_reply(
            ctx,
            client,
            &channel.name,
            Some(member.status),
            multi_prefix,
            query.whox.as_ref(),
        );
        budget.lines += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::{PAGE_LINES, low_water, page_lines};

    #[test]
    fn pages_fit_in_half_the_sendq() {
        assert_eq!(page_lines(512 * 1024), PAGE_LINES);
        assert_eq!(low_water(512 * 1024), 16 * 1024);
        for sendq in [4096, 16 * 1024, 64 * 1024, 512 * 1024, 1 << 20] {
            let lines = page_lines(sendq);
            assert!(lines >= 1);
            assert!(
                lines == 1 || low_water(sendq) + lines * 512 <= sendq / 2,
                "{sendq}"
            );
        }
    }
}
