//! Channel events (JOIN, PART, KICK, QUIT, NICK, MODE, TOPIC) recorded in history for
//! `draft/event-playback`.
//!
//! They live in the world, not in `crate::history` (which sits above the world and
//! re-exports them), because the world records one itself: the QUIT of a client it
//! removes ([`World::remove_client`]).

use palaver_store::{HistoryMessage, MessageKind, TargetKey, Timestamp};

use super::{ClientId, World};
use crate::relay::Stamp;

/// Whether history is kept for the channel `key` (history on, and no `+E`).
pub(crate) fn kept_for(world: &World, key: &palaver_proto::CaseKey) -> bool {
    world.config.history.enabled
        && world
            .channels
            .get(key)
            .is_some_and(|channel| !channel.modes.no_history)
}

/// Records a channel event for `draft/event-playback` (JOIN, PART, KICK, QUIT,
/// NICK, MODE, TOPIC) by client `id` in channel `channel`, with a fresh stamp, which
/// it returns so a caller can tag the broadcast with it. Events are not held
/// until committed: the durability promise covers messages. Nothing is recorded
/// with history off, or if the store's queue is full (an event is worth less than
/// the traffic it would stall).
pub(crate) fn record_event(
    world: &mut World,
    id: ClientId,
    kind: MessageKind,
    channel: &palaver_proto::CaseKey,
    text: &str,
) -> Option<Stamp> {
    if !kept_for(world, channel) {
        return None;
    }
    let stamp = world.stamp();
    let client = world.clients.get(&id)?;
    let message = HistoryMessage {
        msgid: stamp.msgid.clone(),
        time: Timestamp(stamp.millis()),
        target: TargetKey::channel(channel.as_str()),
        sender: client.mask(),
        account: client.account.as_deref().map(str::to_owned),
        kind,
        tags: String::new(),
        text: text.to_owned(),
    };
    if let Err(rejected) = world.store.append(message) {
        tracing::debug!(reason = ?rejected.reason, "history store refused an event");
    }
    Some(stamp)
}
