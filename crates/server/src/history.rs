//! Message history: what relay hands the store, and how a stored message is replayed.
//!
//! **What is kept.** PRIVMSG and NOTICE to a channel or a person, and TAGMSGs that
//! carry a reaction (`+draft/react`, `+react`) or `+draft/persist`; not messages to `@#chan`/`+#chan`
//! (STATUSMSG: a later member without that status must not read them), and not
//! other TAGMSGs (typing notifications are worthless a second later). A channel's
//! history is keyed by its folded name; a private conversation by its two parties,
//! each the account a side is logged in to or else its folded nickname (see
//! [`party`]), so a logged-in user finds the conversation from any device.
//!
//! **The durability promise.** [`record`] appends the message (queueing it; the
//! store never blocks the world lock) and returns its sequence number; relay then
//! queues every copy with `Outbox::push_held`, which keeps it (and whatever follows
//! it in that outbox) from the socket until the store has committed that number.
//! So a message any client saw is in the database, whatever happens next. If the
//! store's queue is full (the disk has stalled for 65,536 messages), the message is
//! refused with `FAIL <command> TEMPORARILY_UNAVAILABLE` rather than sent without
//! history: nothing is delivered that history would then miss.

use palaver_store::{HistoryMessage, MessageKind, Party, TargetKey, Timestamp};

use crate::relay::Stamp;
use crate::world::{Client, Recipients, World};
/// Channel events are recorded by the world itself (a QUIT in
/// `World::remove_client`), so these two live there.
pub(crate) use crate::world::{kept_for, record_event};

/// The history party a client is in private conversations: its account when logged
/// in, its nickname otherwise.
pub(crate) fn party(client: &Client) -> Party {
    match &client.account {
        Some(account) => Party::Account(World::key(account).as_str().to_owned()),
        None => Party::Nick(World::key(client.nick()).as_str().to_owned()),
    }
}

/// Where a message from `sender` to `recipients` is kept, if it is kept at all.
pub(crate) fn target_key(
    world: &World,
    sender: &Client,
    recipients: &Recipients,
) -> Option<TargetKey> {
    match recipients {
        Recipients::Channel {
            key,
            min_status: None,
        } => kept_for(world, key).then(|| TargetKey::channel(key.as_str())),
        Recipients::Channel { .. } => None,
        Recipients::Client(id) => {
            let recipient = world.clients.get(id)?;
            Some(TargetKey::private(&party(sender), &party(recipient)))
        }
    }
}

/// A `draft/multiline` message's lines as stored (see
/// [`MessageKind::MultilinePrivmsg`]): each prefixed by `+` (continues the line
/// before) or a space, joined by `\n` (which no IRC line can contain).
pub(crate) fn encode_multiline(lines: &[(String, bool)]) -> String {
    let mut text = String::new();
    for (index, (line, concat)) in lines.iter().enumerate() {
        if index > 0 {
            text.push('\n');
        }
        text.push(if *concat { '+' } else { ' ' });
        text.push_str(line);
    }
    text
}

/// The lines of a stored multiline message, with their concat flags.
pub(crate) fn decode_multiline(text: &str) -> impl Iterator<Item = (&str, bool)> {
    text.split('\n').map(|line| match line.strip_prefix('+') {
        Some(rest) => (rest, true),
        None => (line.strip_prefix(' ').unwrap_or(line), false),
    })
}

/// Whether a TAGMSG with these client-only tags is worth keeping: reactions are,
/// and whatever its sender marked `+draft/persist` (the convention ergo and
/// irctest use).
pub(crate) fn keeps_tagmsg(client_tags: &str) -> bool {
    client_tags.split(';').any(|tag| {
        let key = tag.split_once('=').map_or(tag, |(key, _)| key);
        matches!(key, "+draft/react" | "+react" | "+draft/persist")
    })
}

/// What became of a message offered to history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// Not kept (history off, STATUSMSG, a TAGMSG without a reaction): deliver now.
    NotKept,
    /// Queued with this sequence number: deliver with `push_held`.
    Kept(u64),
    /// The store refused it (its queue is full or it is closed): do not deliver.
    Refused,
}

/// A message about to be relayed, as history needs it.
pub(crate) struct Offered<'a> {
    pub(crate) kind: MessageKind,
    /// Who relay found it reaches (where it is kept follows from that).
    pub(crate) recipients: &'a Recipients,
    pub(crate) text: &'a str,
    pub(crate) client_tags: &'a str,
    pub(crate) stamp: &'a Stamp,
}

/// Appends a message to history, if it is kept at all; see [`Recorded`].
pub(crate) fn record(world: &World, sender: &Client, offered: Offered<'_>) -> Recorded {
    if !world.config.history.enabled {
        return Recorded::NotKept;
    }
    let Some(target) = target_key(world, sender, offered.recipients) else {
        return Recorded::NotKept;
    };
    let message = HistoryMessage {
        msgid: offered.stamp.msgid.clone(),
        time: Timestamp(offered.stamp.millis()),
        target,
        sender: sender.mask(),
        account: sender.account.as_deref().map(str::to_owned),
        kind: offered.kind,
        tags: offered.client_tags.to_owned(),
        text: offered.text.to_owned(),
    };
    match world.store.append(message) {
        Ok(seq) => Recorded::Kept(seq),
        Err(rejected) => {
            tracing::warn!(reason = ?rejected.reason, "history store refused a message; not relayed");
            Recorded::Refused
        }
    }
}

/// Rows one expiry step removes at most: small enough that appends queued behind
/// it wait a millisecond or two, not a second.
const EXPIRY_BATCH: u32 = 500;

/// Applies the retention policy (`--history-max-age`, `--history-max-messages`)
/// every `HistoryConfig::expiry_period` until `stop`: each pass deletes in steps of
/// [`EXPIRY_BATCH`] rows, one write transaction each, on the store's writer, so
/// the hot path never waits for more than one small step. The policy is read
/// again each period, so a reload that changes it applies from the next one.
pub(crate) async fn expire_until(
    shared: std::sync::Arc<crate::Shared>,
    stop: tokio_util::sync::CancellationToken,
) {
    let store = std::sync::Arc::clone(&shared.store);
    let mut ticks = tokio::time::interval(shared.config().history.expiry_period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let policy = shared.config().history.retention;
        if policy.max_age_ms.is_none() && policy.max_messages.is_none() {
            continue;
        }
        let mut removed = 0;
        loop {
            match store.expire(policy, Timestamp::now(), EXPIRY_BATCH).await {
                Ok(step) => {
                    removed += step.removed;
                    if step.complete || stop.is_cancelled() {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "history expiry failed; trying again next period");
                    break;
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, "expired old history");
        }
    }
}
