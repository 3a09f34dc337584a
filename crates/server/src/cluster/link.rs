//! The link: the one task per node that talks to the bus.
//!
//! It publishes what the world queued (events, in order) together with the lines
//! queued on remote users' outboxes, grouped per node; applies what other nodes
//! publish; sends heartbeats and bursts; and declares silent nodes lost. The world
//! is locked only to take or apply a batch, never across network I/O.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use palaver_proto::CaseKey;
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::bus::Bus;
use crate::bus::{Envelope, Event, WIRE_VERSION};
use crate::metrics::{ClusterCounters, Metrics};
use crate::world::Map;
use crate::world::forward::{Lines, Outgoing};

/// How often the link also sends its queue without being woken: a floor, in case
/// a wake-up raced with a pass.
const SWEEP: Duration = Duration::from_millis(250);

/// Lines for the users of one node, each distinct line once with its recipients,
/// in an order that keeps every recipient's own order.
#[derive(Debug, Default)]
struct Deliveries {
    entries: Vec<(Bytes, Vec<u64>)>,
    /// Entry of each distinct line (by the address of its shared bytes).
    by_line: Map<(usize, usize), usize>,
}

impl Deliveries {
    /// Adds the lines one recipient was queued, in order. A line joins an entry
    /// only after the entry of that recipient's previous line, so its order holds;
    /// recipients of the same channel traffic usually have the same lines in the
    /// same order, so the entry just after the previous one is tried first,
    /// without hashing.
    fn add(&mut self, to: u64, lines: impl Iterator<Item = Bytes>) {
        let mut floor: Option<usize> = None;
        for line in lines {
            let identity = (line.as_ptr() as usize, line.len());
            let next = floor.map_or(0, |floor| floor + 1);
            let found = match self.entries.get(next) {
                Some((candidate, _))
                    if candidate.as_ptr() == line.as_ptr() && candidate.len() == line.len() =>
                {
                    Some(next)
                }
                _ => self
                    .by_line
                    .get(&identity)
                    .copied()
                    .filter(|index| floor.is_none_or(|floor| *index > floor)),
            };
            let index = match found {
                Some(index) => {
                    self.entries[index].1.push(to);
                    index
                }
                None => {
                    self.entries.push((line, vec![to]));
                    let index = self.entries.len() - 1;
                    self.by_line.insert(identity, index);
                    index
                }
            };
            floor = Some(index);
        }
    }

    /// Appends the deliveries gathered so far to `events`, emptying this.
    fn drain_into(&mut self, events: &mut Vec<Event>) {
        self.by_line.clear();
        events.extend(
            self.entries
                .drain(..)
                .map(|(line, to)| Event::Deliver { line, to }),
        );
    }
}

/// What one other node gets from one pass, in order.
#[derive(Debug)]
struct NodeQueue {
    node: Arc<str>,
    events: Vec<Event>,
    /// Lines for its users since the last other event: grouped by line, so each
    /// distinct line travels once (see [`Deliveries`]).
    run: Deliveries,
}

impl NodeQueue {
    fn new(node: Arc<str>) -> Self {
        Self {
            node,
            events: Vec::new(),
            run: Deliveries::default(),
        }
    }

    /// Adds `event` after everything so far, lines included.
    fn push(&mut self, event: Event) {
        self.run.drain_into(&mut self.events);
        self.events.push(event);
    }

    fn into_events(mut self) -> Vec<Event> {
        self.run.drain_into(&mut self.events);
        self.events
    }
}

/// What one pass took from the world.
#[derive(Debug, Default)]
struct Batch {
    /// One queue for every other node known now.
    queues: Vec<NodeQueue>,
    /// The world's queue stopped at an entry waiting for a commit: take again
    /// after the next one.
    waiting: bool,
}

impl Batch {
    fn queue(&mut self, node: &str) -> Option<&mut NodeQueue> {
        self.queues.iter_mut().find(|queue| *queue.node == *node)
    }
}

/// Runs the link of `shared`'s world until `stop`.
pub(crate) async fn run(shared: Arc<Shared>, bus: Bus, stop: CancellationToken) {
    let (node_config, link) = {
        let world = shared.lock_world();
        let Some(remote) = world.remote.as_ref() else {
            return;
        };
        (world.config.cluster.clone(), Arc::clone(&remote.link))
    };
    let Some(config) = node_config else {
        return;
    };
    let subscribe = async {
        let all = bus.client.subscribe(bus.all_subject()).await?;
        let mine = bus.client.subscribe(bus.node_subject(&bus.node)).await?;
        Ok::<_, async_nats::SubscribeError>(futures_util::stream::select(all, mine))
    };
    let mut incoming = match subscribe.await {
        Ok(incoming) => incoming,
        Err(error) => {
            tracing::error!(%error, "cannot subscribe to the cluster bus; this node serves alone");
            return;
        }
    };
    let mut waiting = false;
    let mut committed = shared.store.watch_committed();
    let mut heartbeat = tokio::time::interval(config.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sweep = tokio::time::interval(SWEEP);
    let mut connected = true;
    hello(&shared, &bus).await;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = link.wakeup.notified() => waiting = flush(&shared, &bus).await,
            _ = sweep.tick() => waiting = flush(&shared, &bus).await,
            changed = committed.changed(), if waiting => {
                if changed.is_ok() {
                    waiting = flush(&shared, &bus).await;
                }
            }
            message = incoming.next() => {
                let Some(message) = message else {
                    tracing::error!("the cluster bus subscription ended; this node serves alone");
                    break;
                };
                receive(&shared, &bus, &message.payload).await;
            }
            _ = heartbeat.tick() => {
                let up = bus.client.connection_state() == async_nats::connection::State::Connected;
                if up && !connected {
                    tracing::info!("reconnected to the cluster bus");
                    // Everyone was silent to us meanwhile: start their clocks
                    // again rather than declare them all lost, and resynchronise.
                    grace(&shared);
                    // In order with the nick changes' own claims and releases,
                    // and before the burst names this node's users.
                    if let Some(claims) = &shared.claims {
                        claims.reconcile().await;
                    }
                    hello(&shared, &bus).await;
                } else if up {
                    publish(&bus, &shared.metrics, bus.all_subject(), vec![Event::Alive { hello: false }]).await;
                    expire(&shared, config.node_timeout);
                } else if connected {
                    tracing::warn!("lost the cluster bus; other nodes' users stay as they were until it is back");
                }
                connected = up;
            }
        }
    }
    flush(&shared, &bus).await;
    // Bounded: with NATS gone, a flush would wait for it forever, and so would
    // the shutdown.
    match tokio::time::timeout(PUBLISH_TIMEOUT, bus.client.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::debug!(%error, "cannot flush the cluster bus at shutdown"),
        Err(_) => tracing::debug!("the cluster bus did not take the last messages in time"),
    }
}

/// Announces this node (asking for bursts) and sends its own burst to everyone.
async fn hello(shared: &Shared, bus: &Bus) {
    let mut events = vec![Event::Alive { hello: true }];
    events.extend(burst(shared));
    publish(bus, &shared.metrics, bus.all_subject(), events).await;
}

/// Every local registered user and the state of their channels, as a burst.
fn burst(shared: &Shared) -> Vec<Event> {
    let world = shared.lock_world();
    let remote_ids = world.remote.as_ref().map(|r| &r.slot_of);
    let mut events: Vec<Event> = world
        .clients
        .keys()
        .filter(|id| remote_ids.is_none_or(|remote| !remote.contains_key(id)))
        .filter_map(|id| world.intro(*id))
        .map(|intro| Event::User(Box::new(intro)))
        .collect();
    // The channels those users are in, after them (their joins create them).
    let channels: std::collections::BTreeSet<CaseKey> = world
        .channels
        .iter()
        .filter(|(_, channel)| {
            channel
                .members
                .values()
                .any(|member| world.is_local_outbox(&member.outbox))
        })
        .map(|(key, _)| key.clone())
        .collect();
    events.extend(
        channels
            .iter()
            .filter_map(|key| world.channel_state(key))
            .map(|state| Event::Channel(Box::new(state))),
    );
    events
}

/// Resets every node's silence clock (after this node's own outage).
fn grace(shared: &Shared) {
    let now = Instant::now();
    let mut world = shared.lock_world();
    if let Some(remote) = world.remote.as_mut() {
        for node in remote.nodes.values_mut() {
            node.last_seen = now;
        }
    }
}

/// Declares lost every node silent for longer than `timeout`.
fn expire(shared: &Shared, timeout: Duration) {
    let now = Instant::now();
    let mut releases = Vec::new();
    {
        let mut world = shared.lock_world();
        let Some(remote) = world.remote.as_ref() else {
            return;
        };
        let lost: Vec<(Box<str>, u64)> = remote
            .nodes
            .iter()
            .filter(|(_, node)| now.saturating_duration_since(node.last_seen) > timeout)
            .map(|(name, node)| (name.clone(), node.boot))
            .collect();
        for (name, boot) in lost {
            tracing::warn!(node = %name, "cluster node lost");
            ClusterCounters::add(&shared.metrics.cluster.nodes_lost, 1);
            let holder = format!("{name}/{boot}/");
            for nick in world.drop_node(&name, &format!("node {name} lost")) {
                releases.push((nick, holder.clone()));
            }
        }
    }
    release(shared, releases);
}

/// Releases the nick claims of a lost node's users (in order with this node's
/// own claims, see `cluster::claims`).
fn release(shared: &Shared, releases: Vec<(CaseKey, String)>) {
    if let Some(claims) = &shared.claims {
        for (nick, holder) in releases {
            claims.release_lost(nick, holder);
        }
    }
}

/// Applies one bus message.
async fn receive(shared: &Shared, bus: &Bus, payload: &[u8]) {
    let counters = &shared.metrics.cluster;
    ClusterCounters::add(&counters.received_messages, 1);
    ClusterCounters::add(&counters.received_bytes, payload.len() as u64);
    let envelope = match Envelope::decode(payload) {
        Ok(envelope) if envelope.version == WIRE_VERSION => envelope,
        Ok(envelope) => {
            other_version(envelope.version);
            return;
        }
        Err(error) => {
            match Envelope::version_of(payload).filter(|version| *version != WIRE_VERSION) {
                Some(version) => other_version(version),
                None => {
                    tracing::warn!(%error, bytes = payload.len(), "unreadable cluster bus message ignored")
                }
            }
            return;
        }
    };
    if *envelope.from == *bus.node {
        if envelope.boot != bus.boot {
            // Two processes with one --node-name would release each other's nick
            // claims and drop each other's messages as their own: say so loudly.
            tracing::error!(
                node = %bus.node,
                "another cluster node runs with this node's --node-name; give each node its own"
            );
        }
        return;
    }
    let follow_up = {
        let mut world = shared.lock_world();
        super::apply::envelope(&mut world, envelope, Instant::now())
    };
    release(shared, follow_up.release);
    if !follow_up.burst_to.is_empty() {
        let events = burst(shared);
        for node in follow_up.burst_to {
            publish(
                bus,
                &shared.metrics,
                bus.node_subject(&node),
                events.clone(),
            )
            .await;
        }
    }
}

/// Says (once per process) that another node speaks another wire version: a
/// cluster whose nodes run palaver versions with different bus formats cannot
/// work, and the operator must know why (docs/OPERATIONS.md, upgrades).
fn other_version(version: u16) {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::error!(
            theirs = version,
            ours = WIRE_VERSION,
            "a cluster node speaks another bus version; its messages are ignored (run one palaver version across the cluster)"
        );
    }
}

/// Takes what the world queued for other nodes and publishes it; returns whether
/// some of it waits for a commit. While the bus is down it is dropped instead
/// (the other nodes could not get it; they learn the state from the bursts after
/// the reconnection), so nothing piles up here.
async fn flush(shared: &Shared, bus: &Bus) -> bool {
    let batch = take(shared);
    if bus.client.connection_state() != async_nats::connection::State::Connected {
        return batch.waiting;
    }
    for queue in batch.queues {
        let subject = bus.node_subject(&queue.node);
        let events = queue.into_events();
        if !events.is_empty() {
            publish(bus, &shared.metrics, subject, events).await;
        }
    }
    batch.waiting
}

/// Takes the world's queue up to the first entry waiting for a commit (after
/// moving the remote users' lines into it), with the world locked, and sorts it
/// into one queue per node without.
fn take(shared: &Shared) -> Batch {
    let committed = shared.store.committed();
    let (entries, nodes, waiting) = {
        let mut world = shared.lock_world();
        let Some(remote) = world.remote.as_mut() else {
            return Batch::default();
        };
        remote.settle();
        let ready = remote
            .outgoing
            .iter()
            .position(|entry| entry.hold() > committed)
            .unwrap_or(remote.outgoing.len());
        let waiting = ready < remote.outgoing.len();
        let entries: Vec<Outgoing> = remote.outgoing.drain(..ready).collect();
        let nodes: Vec<Arc<str>> = remote
            .nodes
            .values()
            .map(|node| Arc::clone(&node.name))
            .collect();
        (entries, nodes, waiting)
    };
    let counters = &shared.metrics.cluster;
    let mut batch = Batch {
        queues: nodes.into_iter().map(NodeQueue::new).collect(),
        waiting,
    };
    for entry in entries {
        match entry {
            Outgoing::Event(event) => {
                for queue in &mut batch.queues {
                    queue.push(event.clone());
                }
            }
            Outgoing::Lines(lines) => {
                let Lines {
                    node,
                    to,
                    lines,
                    outbox,
                    disconnect,
                    ..
                } = *lines;
                let bytes: usize = lines.iter().map(Bytes::len).sum();
                ClusterCounters::add(&counters.forwarded_lines, lines.len() as u64);
                if let Some(queue) = batch.queue(&node) {
                    queue.run.add(to, lines.into_iter());
                    if let Some(reason) = disconnect {
                        queue.push(Event::Disconnect { id: to, reason });
                    }
                }
                // Gone from this node's sendq for the user.
                let _ = outbox.written(bytes);
            }
            Outgoing::To { node, event } => {
                if let Some(queue) = batch.queue(&node) {
                    queue.push(event);
                }
            }
            Outgoing::Channel { nodes, message, .. } => {
                for node in nodes {
                    if let Some(queue) = batch.queue(&node) {
                        ClusterCounters::add(&counters.forwarded_channel_messages, 1);
                        queue.push(Event::ChannelMessage(message.clone()));
                    }
                }
            }
        }
    }
    batch
}

/// The longest a publish may wait for the NATS client to take it (its buffer is
/// full while the connection is stuck): the link must keep draining the world.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);

/// The largest bus message this node sends: well under NATS's default 1 MiB
/// payload limit. A larger batch (a burst of thousands of users, a busy pass) is
/// split into several, in order.
const MAX_MESSAGE: usize = 256 * 1024;

/// Publishes `events` to `subject`; a failure is logged (the bus is down: what
/// was in it is lost, see docs/OPERATIONS.md).
async fn publish(bus: &Bus, metrics: &Metrics, subject: String, events: Vec<Event>) {
    let mut pending = vec![events];
    while let Some(events) = pending.pop() {
        let envelope = Envelope {
            version: WIRE_VERSION,
            from: bus.node.clone(),
            boot: bus.boot,
            events,
        };
        let bytes = match envelope.encode() {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(%error, "cannot encode a cluster bus message");
                continue;
            }
        };
        if bytes.len() > MAX_MESSAGE && envelope.events.len() > 1 {
            let mut first = envelope.events;
            let second = first.split_off(first.len() / 2);
            // Last in, first out: the first half goes first.
            pending.push(second);
            pending.push(first);
            continue;
        }
        let counters = &metrics.cluster;
        ClusterCounters::add(&counters.sent_messages, 1);
        ClusterCounters::add(&counters.sent_bytes, bytes.len() as u64);
        match tokio::time::timeout(
            PUBLISH_TIMEOUT,
            bus.client.publish(subject.clone(), bytes.into()),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "cannot publish to the cluster bus"),
            Err(_) => tracing::warn!("the cluster bus is not taking messages; one dropped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(deliveries: &Deliveries) -> Vec<(String, Vec<u64>)> {
        deliveries
            .entries
            .iter()
            .map(|(line, to)| (String::from_utf8_lossy(line).into_owned(), to.clone()))
            .collect()
    }

    #[test]
    fn shared_lines_travel_once_and_every_recipient_keeps_its_order() {
        let (one, two, three) = (
            Bytes::from_static(b"1"),
            Bytes::from_static(b"2"),
            Bytes::from_static(b"3"),
        );
        let mut deliveries = Deliveries::default();
        deliveries.add(10, [one.clone(), two.clone()].into_iter());
        deliveries.add(11, [one.clone(), two.clone()].into_iter());
        // 12 got 2 then 1: 1 may not join the entry before 2's.
        deliveries.add(12, [two.clone(), one.clone()].into_iter());
        deliveries.add(13, [three.clone()].into_iter());
        assert_eq!(
            ids(&deliveries),
            [
                ("1".to_owned(), vec![10, 11]),
                ("2".to_owned(), vec![10, 11, 12]),
                ("1".to_owned(), vec![12]),
                ("3".to_owned(), vec![13]),
            ]
        );
        // Each recipient, read in entry order, gets its own lines in its order.
        for (to, expected) in [(10, "12"), (11, "12"), (12, "21"), (13, "3")] {
            let got: String = deliveries
                .entries
                .iter()
                .filter(|(_, ids)| ids.contains(&to))
                .map(|(line, _)| String::from_utf8_lossy(line).into_owned())
                .collect();
            assert_eq!(got, expected, "recipient {to}");
        }
    }
}
