//! Applying what another node said to this node's world, with the world locked.
//!
//! State events change the replica silently (the sender told the channels);
//! deliveries are written to the local users they name. Nothing here announces
//! anything back, so events never loop.

use std::time::Instant;

use palaver_proto::CaseKey;

use crate::bus::{Envelope, Event};
use crate::world::remote::Node;
use crate::world::{ClientId, World};

/// What applying an envelope leaves for the link to do once the lock is released.
#[derive(Debug, Default)]
pub(crate) struct FollowUp {
    /// Nodes that need a burst of this node's users (new, restarted, or asking).
    pub(crate) burst_to: Vec<Box<str>>,
    /// Nick claims of users who are gone with their node incarnation: `(nick,
    /// holder prefix)` to release.
    pub(crate) release: Vec<(CaseKey, String)>,
}

/// Applies `envelope` from another node.
pub(crate) fn envelope(world: &mut World, envelope: Envelope, now: Instant) -> FollowUp {
    let mut follow_up = FollowUp::default();
    let from = envelope.from;
    note_alive(world, &from, envelope.boot, now, &mut follow_up);
    for event in envelope.events {
        apply(world, &from, event, &mut follow_up);
    }
    follow_up
}

/// Records that `node` (incarnation `boot`) spoke: a node first heard of gets a
/// burst; a known node with a new incarnation restarted, so the users of the old
/// one are gone.
fn note_alive(world: &mut World, node: &str, boot: u64, now: Instant, follow_up: &mut FollowUp) {
    let Some(remote) = world.remote.as_mut() else {
        return;
    };
    match remote.nodes.get_mut(node) {
        Some(known) if known.boot == boot => {
            known.last_seen = now;
            return;
        }
        Some(known) => {
            let old = known.boot;
            tracing::info!(node, "cluster node restarted");
            let reason = format!("node {node} restarted");
            let holder = format!("{node}/{old}/");
            for nick in world.drop_node(node, &reason) {
                follow_up.release.push((nick, holder.clone()));
            }
        }
        None => tracing::info!(node, "cluster node joined"),
    }
    if let Some(remote) = world.remote.as_mut() {
        remote.nodes.insert(
            node.into(),
            Node {
                name: node.into(),
                boot,
                last_seen: now,
                users: crate::world::Map::default(),
            },
        );
    }
    follow_up.burst_to.push(node.into());
}

/// Applies one event from node `from`.
fn apply(world: &mut World, from: &str, event: Event, follow_up: &mut FollowUp) {
    match event {
        Event::Alive { hello } => {
            if hello && !follow_up.burst_to.iter().any(|n| &**n == from) {
                follow_up.burst_to.push(from.into());
            }
        }
        Event::User(intro) => world.put_remote_user(from, &intro),
        Event::Nick { id, nick } => {
            if let Some(id) = world.remote_user(from, id) {
                world.rename_remote_user(id, &nick);
            }
        }
        Event::Quit { id } => {
            if let Some(id) = world.remote_user(from, id) {
                world.remove_remote_user(id, None);
            }
        }
        Event::Join { id, membership } => {
            if let Some(id) = world.remote_user(from, id)
                && world.join_remote(id, &membership)
            {
                crate::handlers::channel::show_remote_join(
                    world,
                    id,
                    &World::key(&membership.channel),
                );
            }
        }
        Event::Part { user, channel } => {
            if let Some(id) = resolve(world, &user.node, user.id) {
                world.part_channel(id, &World::key(&channel));
            }
        }
        Event::Status { user, membership } => {
            if let Some(id) = resolve(world, &user.node, user.id) {
                world.put_remote_status(id, &membership);
            }
        }
        Event::Invite { user, channel } => {
            if let Some(id) = resolve(world, &user.node, user.id) {
                world.note_invite(id, &World::key(&channel));
            }
        }
        Event::Channel(state) => world.put_channel_state(&state),
        Event::AccountName { name, registered } => {
            let key = World::key(&name);
            if registered {
                world.account_names.insert(key);
            } else {
                world.account_names.remove(&key);
            }
        }
        Event::ServerBan(ban) => {
            if let Some(ban) = ban.to_ban() {
                crate::lock(&world.bans).insert(ban);
            }
        }
        Event::Registration { key, registration } => {
            world
                .registry
                .replace(&World::key(&key), registration.map(|r| *r));
        }
        Event::ServerUnban { kind, mask } => {
            if let Some(kind) = crate::bus::kind_of(kind) {
                crate::lock(&world.bans).remove(kind, &mask);
            }
        }
        Event::Deliver { line, to } => {
            for id in to {
                // Only this node's own users: a line pushed to a remote user's
                // outbox here would travel on again.
                if let Some(client) = world.clients.get(&ClientId(id))
                    && world.is_local_outbox(&client.outbox)
                {
                    client.send(line.clone());
                }
            }
        }
        Event::ChannelMessage(message) => {
            world.deliver_channel_message(*message);
        }
        Event::OperCommand {
            by,
            command,
            params,
        } => {
            if let Some(oper) = world.remote_user(from, by) {
                crate::handlers::sa::run_for_remote_oper(world, oper, &command, &params);
            }
        }
        Event::Disconnect { id, reason } => {
            let id = ClientId(id);
            if !world.is_remote(id)
                && let Some(client) = world.clients.get(&id)
            {
                client.outbox.request_disconnect(&reason);
            }
        }
    }
}

/// The id here of a user named as `(node, id)`: this node's own, or a remote one.
fn resolve(world: &World, node: &str, id: u64) -> Option<ClientId> {
    let remote = world.remote.as_ref()?;
    if *remote.node == *node {
        let id = ClientId(id);
        return world.clients.contains_key(&id).then_some(id);
    }
    world.remote_user(node, id)
}
