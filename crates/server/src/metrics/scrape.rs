//! One scrape of `/metrics`: the world's counters and gauges copied under its lock
//! (a few hundred bytes, no iteration over clients or channels), the drivers'
//! counters summed, and everything written out after the lock is released.

use super::{COMMANDS, Disconnect, Exposition, Status, TRANSPORTS};
use crate::Shared;

/// What the world knows, copied in one short critical section.
struct WorldView {
    counters: super::WorldCounters,
    channels: u64,
    registered: u64,
    unregistered: u64,
    accounts: u64,
    /// Other nodes known and their users here, on a cluster.
    cluster: Option<(u64, u64)>,
}

impl Status for Shared {
    fn ready(&self) -> bool {
        self.metrics.is_ready()
    }

    fn metrics_text(&self) -> String {
        let world = {
            let world = self.lock_world();
            let (registered, unregistered, _) = world.counts();
            WorldView {
                counters: world.counters.clone(),
                channels: world.channels.len() as u64,
                registered: registered as u64,
                unregistered: unregistered as u64,
                accounts: world.sessions.len() as u64,
                cluster: world
                    .remote
                    .as_ref()
                    .map(|remote| (remote.nodes.len() as u64, remote.slot_of.len() as u64)),
            }
        };
        let drivers = self.metrics.snapshot();
        let counters = &world.counters;
        let mut out = Exposition::default();
        out.labeled(
            "palaver_connections_open",
            "gauge",
            "Connections open now, by transport.",
            "transport",
            TRANSPORTS.iter().copied().zip(drivers.open),
        );
        out.counter(
            "palaver_connections_accepted_total",
            "Connections accepted by the listeners (including those then refused as over a limit).",
            drivers.accepted,
        );
        out.counter(
            "palaver_registrations_total",
            "Clients that completed registration.",
            counters.registrations,
        );
        out.gauge(
            "palaver_clients_registered",
            "Registered clients now.",
            world.registered,
        );
        out.gauge(
            "palaver_clients_unregistered",
            "Connections that have not registered yet.",
            world.unregistered,
        );
        out.gauge(
            "palaver_channels",
            "Channels that exist now.",
            world.channels,
        );
        out.gauge(
            "palaver_accounts_logged_in",
            "Accounts with at least one client logged in.",
            world.accounts,
        );
        if let Some((nodes, remote_users)) = world.cluster {
            let cluster = &self.metrics.cluster;
            let load = |counter: &std::sync::atomic::AtomicU64| {
                counter.load(std::sync::atomic::Ordering::Relaxed)
            };
            out.gauge(
                "palaver_cluster_nodes",
                "Other cluster nodes this node hears from.",
                nodes,
            );
            out.gauge(
                "palaver_cluster_remote_users",
                "Users of other nodes known here.",
                remote_users,
            );
            for (name, help, counter) in [
                (
                    "palaver_cluster_sent_messages_total",
                    "Messages this node published on the cluster bus.",
                    &cluster.sent_messages,
                ),
                (
                    "palaver_cluster_sent_bytes_total",
                    "Bytes this node published on the cluster bus.",
                    &cluster.sent_bytes,
                ),
                (
                    "palaver_cluster_received_messages_total",
                    "Messages from other nodes received on the cluster bus.",
                    &cluster.received_messages,
                ),
                (
                    "palaver_cluster_received_bytes_total",
                    "Bytes from other nodes received on the cluster bus.",
                    &cluster.received_bytes,
                ),
                (
                    "palaver_cluster_forwarded_lines_total",
                    "Lines for single users of other nodes (each distinct line crosses the bus once per node).",
                    &cluster.forwarded_lines,
                ),
                (
                    "palaver_cluster_forwarded_channel_messages_total",
                    "Channel messages sent to other nodes, once per node with members of the channel.",
                    &cluster.forwarded_channel_messages,
                ),
                (
                    "palaver_cluster_nodes_lost_total",
                    "Other nodes declared lost (silent past --node-timeout).",
                    &cluster.nodes_lost,
                ),
            ] {
                out.counter(name, help, load(counter));
            }
        }
        out.labeled(
            "palaver_commands_total",
            "counter",
            "Commands received, by command (unknown ones as other).",
            "command",
            COMMANDS
                .iter()
                .copied()
                .chain(std::iter::once("other"))
                .zip(counters.commands.iter().copied()),
        );
        out.counter(
            "palaver_messages_total",
            "PRIVMSG, NOTICE and TAGMSG relayed (one per target).",
            counters.messages,
        );
        out.counter(
            "palaver_deliveries_total",
            "Copies of relayed messages queued to recipients.",
            counters.deliveries,
        );
        out.counter(
            "palaver_read_bytes_total",
            "Bytes read from clients (after TLS and WebSocket framing).",
            drivers.bytes_read,
        );
        out.counter(
            "palaver_written_bytes_total",
            "Bytes written to clients (before TLS and WebSocket framing).",
            drivers.bytes_written,
        );
        out.labeled(
            "palaver_disconnects_total",
            "counter",
            "Connections ended, by reason.",
            "reason",
            Disconnect::ALL
                .iter()
                .map(|why| why.label())
                .zip(counters.disconnects.iter().copied()),
        );
        out.counter(
            "palaver_history_messages_written_total",
            "Messages appended to history.",
            counters.history_written,
        );
        out.histogram(
            "palaver_history_commit_seconds",
            "From a history append to the driver pass that sees it committed (one message sampled at a time).",
            &drivers.commit_latency,
        );
        out.counter(
            "palaver_chathistory_queries_total",
            "CHATHISTORY requests sent to the store.",
            counters.chathistory_queries,
        );
        out.histogram(
            "palaver_driver_pass_seconds",
            "Time a driver pass took (input of every ready connection, then output).",
            &drivers.pass_time,
        );
        out.counter(
            "palaver_log_write_errors_total",
            "Log or status lines lost to failed writes (a log reader that went away).",
            crate::logging::write_errors(),
        );
        out.finish()
    }
}
