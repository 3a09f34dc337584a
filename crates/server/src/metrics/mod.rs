//! What the server counts for operators, and how it is exported (`GET /metrics`).
//!
//! **Counting costs the hot path nothing it can notice.** There is no metrics
//! registry, no label lookup and no lock per event; every count lives where the
//! event already happens, in the cheapest place that is correct:
//!
//! - [`WorldCounters`]: plain `u64`s inside the world, bumped by handlers that hold
//!   the world lock anyway (commands by name, messages relayed and their deliveries,
//!   registrations, disconnects by reason, history writes, CHATHISTORY queries).
//!   Relay adds a message's recipient count once per message, not once per copy.
//! - [`DriverCounters`]: one set per driver thread, written by that thread only
//!   (connections opened and closed by transport; bytes read and written, summed
//!   by the driver per pass in plain integers; the pass-time histogram, once per
//!   pass), summed over drivers when scraped.
//! - [`Metrics`]: the few server-wide values (connections accepted, readiness, the
//!   sampled history commit latency).
//!
//! Gauges that the world already knows (channels, registered clients, accounts
//! logged in) are read from it when scraped (`scrape`), not counted.
//!
//! **Command names are a fixed table** ([`COMMANDS`], plus `other`): a label per
//! string a client sends would let any client grow the server's memory.
//!
//! The exposition is the Prometheus text format (version 0.0.4), written by
//! [`Exposition`]: every label value is one of our own static strings, so nothing
//! needs escaping.

pub(crate) mod scrape;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The commands counted by name, in slot order; everything else (unknown commands,
/// numerics) counts as `other`. Aliases count under the name given here (`NS` as
/// `NICKSERV`, `HELPOP` as `HELP`). `handlers::lookup` resolves each command's slot
/// at compile time ([`known_command_slot`]), so counting a command is one array
/// increment.
pub(crate) const COMMANDS: [&str; 58] = [
    "CAP",
    "PASS",
    "NICK",
    "USER",
    "PING",
    "PONG",
    "QUIT",
    "JOIN",
    "PART",
    "TOPIC",
    "NAMES",
    "LIST",
    "KICK",
    "INVITE",
    "PRIVMSG",
    "NOTICE",
    "TAGMSG",
    "MODE",
    "WHO",
    "WHOIS",
    "WHOWAS",
    "AWAY",
    "ISON",
    "USERHOST",
    "MOTD",
    "LUSERS",
    "VERSION",
    "TIME",
    "MONITOR",
    "OPER",
    "KILL",
    "WALLOPS",
    "BATCH",
    "INFO",
    "LINKS",
    "HELP",
    "SETNAME",
    "METADATA",
    "MARKREAD",
    "REDACT",
    "RENAME",
    "AUTHENTICATE",
    "REGISTER",
    "VERIFY",
    "NICKSERV",
    "CHANSERV",
    "CHATHISTORY",
    // The operators' commands of issue 14.
    "REHASH",
    "STATS",
    "KLINE",
    "UNKLINE",
    "DLINE",
    "UNDLINE",
    "SAJOIN",
    "SAPART",
    "SANICK",
    "DIE",
    "RESTART",
];

/// The slot of everything not in [`COMMANDS`].
pub(crate) const OTHER_COMMAND: usize = COMMANDS.len();

/// The slot of `name` in [`COMMANDS`]; a name that is not there fails the build
/// when used in a `const` block, which is how `handlers::lookup` calls it.
pub(crate) const fn known_command_slot(name: &str) -> usize {
    let mut slot = 0;
    while slot < COMMANDS.len() {
        if const_eq(COMMANDS[slot].as_bytes(), name.as_bytes()) {
            return slot;
        }
        slot += 1;
    }
    panic!("a command handled by the table must be listed in metrics::COMMANDS");
}

/// Byte-string equality usable in a `const fn`.
const fn const_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// How a connection came in, as the `transport` label says it (the same words as
/// `Security::kind` in the log).
pub(crate) const TRANSPORTS: [&str; 4] = ["plain", "tls", "websocket", "websocket+tls"];

/// The [`TRANSPORTS`] slot of a `Security::kind`.
pub(crate) fn transport_slot(kind: &str) -> u8 {
    match kind {
        "tls" => 1,
        "websocket" => 2,
        "websocket+tls" => 3,
        _ => 0,
    }
}

/// Why a connection ended, as the `reason` label of
/// `palaver_disconnects_total` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disconnect {
    /// The client sent QUIT (or registration was refused: a wrong password).
    Quit,
    /// The client closed the connection without a QUIT.
    Eof,
    /// A read or write failed.
    Error,
    /// A registered client did not answer the keepalive PING.
    PingTimeout,
    /// The connection did not register in time.
    RegistrationTimeout,
    /// The client sent faster than pacing allows for longer than its recvq.
    Flood,
    /// The client read slower than its messages arrived, past its sendq.
    Sendq,
    /// An operator's KILL (or another connection taking over, e.g. a ghost).
    Killed,
    /// Server shutdown.
    Shutdown,
}

impl Disconnect {
    /// Every reason, in label order.
    pub(crate) const ALL: [Self; 9] = [
        Self::Quit,
        Self::Eof,
        Self::Error,
        Self::PingTimeout,
        Self::RegistrationTimeout,
        Self::Flood,
        Self::Sendq,
        Self::Killed,
        Self::Shutdown,
    ];

    /// The `reason` label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Quit => "quit",
            Self::Eof => "eof",
            Self::Error => "error",
            Self::PingTimeout => "ping_timeout",
            Self::RegistrationTimeout => "registration_timeout",
            Self::Flood => "flood",
            Self::Sendq => "sendq",
            Self::Killed => "killed",
            Self::Shutdown => "shutdown",
        }
    }
}

/// The counts kept inside the world, changed only with the world locked (so plain
/// integers, no atomics). `scrape` copies them under the lock.
#[derive(Debug, Clone)]
pub(crate) struct WorldCounters {
    /// Commands received, by [`COMMANDS`] slot (the last one is `other`).
    pub(crate) commands: [u64; COMMANDS.len() + 1],
    /// PRIVMSG, NOTICE and TAGMSG relayed (one per target; multiline batches once).
    pub(crate) messages: u64,
    /// Copies of those messages queued to recipients (echo-message copies excluded).
    pub(crate) deliveries: u64,
    /// Clients that completed registration.
    pub(crate) registrations: u64,
    /// Connections ended, by [`Disconnect`] (its position in [`Disconnect::ALL`]).
    pub(crate) disconnects: [u64; Disconnect::ALL.len()],
    /// Messages appended to history.
    pub(crate) history_written: u64,
    /// CHATHISTORY requests answered from the store.
    pub(crate) chathistory_queries: u64,
}

impl Default for WorldCounters {
    fn default() -> Self {
        Self {
            commands: [0; COMMANDS.len() + 1],
            messages: 0,
            deliveries: 0,
            registrations: 0,
            disconnects: [0; Disconnect::ALL.len()],
            history_written: 0,
            chathistory_queries: 0,
        }
    }
}

impl WorldCounters {
    /// Counts one ended connection.
    pub(crate) fn disconnected(&mut self, why: Disconnect) {
        self.disconnects[why as usize] += 1;
    }

    /// Commands received so far by name, `other` last, leaving out the names never
    /// received: what `STATS m` lists (call it with the world locked, as a handler
    /// does: `ctx.world.counters.command_counts()`).
    pub(crate) fn command_counts(&self) -> Vec<(&'static str, u64)> {
        COMMANDS
            .iter()
            .copied()
            .chain(std::iter::once("other"))
            .zip(self.commands.iter().copied())
            .filter(|&(_, count)| count > 0)
            .collect()
    }
}

/// A histogram with fixed bucket bounds (in nanoseconds), its buckets kept
/// apart (not cumulative) and added up when exported.
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds_ns: &'static [u64],
    /// One per bound, plus the overflow (`+Inf`) bucket.
    buckets: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

impl Histogram {
    fn new(bounds_ns: &'static [u64]) -> Self {
        Self {
            bounds_ns,
            buckets: (0..=bounds_ns.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Counts one observation of `ns` nanoseconds: a search of a dozen bounds and
    /// two uncontended atomic adds.
    pub(crate) fn observe(&self, ns: u64) {
        let bucket = self.bounds_ns.partition_point(|&bound| bound < ns);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Adds this histogram's counts to `into` (same bounds).
    fn add_to(&self, into: &mut HistogramValues) {
        for (total, bucket) in into.buckets.iter_mut().zip(self.buckets.iter()) {
            *total += bucket.load(Ordering::Relaxed);
        }
        into.sum_ns += self.sum_ns.load(Ordering::Relaxed);
    }
}

/// A histogram's counts as read at one scrape.
#[derive(Debug)]
pub(crate) struct HistogramValues {
    bounds_ns: &'static [u64],
    buckets: Vec<u64>,
    sum_ns: u64,
}

impl HistogramValues {
    fn empty(bounds_ns: &'static [u64]) -> Self {
        Self {
            bounds_ns,
            buckets: vec![0; bounds_ns.len() + 1],
            sum_ns: 0,
        }
    }
}

/// Driver pass time bounds: 5 µs to 100 ms (a pass is a few microseconds at low
/// load, and one that takes tens of milliseconds delays everyone on its driver).
const PASS_BOUNDS_NS: &[u64] = &[
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    100_000_000,
];

/// History commit latency bounds: 100 µs to 2.5 s (a group commit takes about a
/// millisecond; with `--fsync always` a disk's flush; seconds mean a stalled disk).
const COMMIT_BOUNDS_NS: &[u64] = &[
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
    2_500_000_000,
];

/// The counts one driver thread keeps; only that thread writes them, so their
/// atomic adds never contend, and a scrape sums every driver's.
#[derive(Debug)]
pub(crate) struct DriverCounters {
    /// Connections handed to this driver, by [`TRANSPORTS`] slot.
    opened: [AtomicU64; TRANSPORTS.len()],
    /// Connections this driver dropped, by [`TRANSPORTS`] slot.
    closed: [AtomicU64; TRANSPORTS.len()],
    /// Bytes read from clients (after TLS and WebSocket framing are undone).
    bytes_read: AtomicU64,
    /// Bytes written to clients (before TLS and WebSocket framing).
    bytes_written: AtomicU64,
    /// How long each pass (input of every ready connection, then output) took.
    pass_time: Histogram,
}

impl DriverCounters {
    fn new() -> Self {
        Self {
            opened: Default::default(),
            closed: Default::default(),
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            pass_time: Histogram::new(PASS_BOUNDS_NS),
        }
    }

    /// A connection on transport `slot` ([`transport_slot`]) was opened.
    pub(crate) fn opened(&self, slot: u8) {
        self.opened[usize::from(slot)].fetch_add(1, Ordering::Relaxed);
    }

    /// A connection on transport `slot` was dropped.
    pub(crate) fn closed(&self, slot: u8) {
        self.closed[usize::from(slot)].fetch_add(1, Ordering::Relaxed);
    }

    /// A pass that began at `started` is over; it read and wrote these bytes
    /// (summed by the driver as plain integers, one add per system call).
    pub(crate) fn passed(&self, started: Instant, read: u64, written: u64) {
        if read > 0 {
            self.bytes_read.fetch_add(read, Ordering::Relaxed);
        }
        if written > 0 {
            self.bytes_written.fetch_add(written, Ordering::Relaxed);
        }
        let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.pass_time.observe(ns);
    }
}

/// The server-wide metrics (one per server, in `Shared`; the world holds a
/// reference for the commit-latency sample).
#[derive(Debug)]
pub(crate) struct Metrics {
    /// What sampled instants are measured from.
    epoch: Instant,
    /// The store is open and the listeners are up; false again once shutdown starts.
    ready: AtomicBool,
    /// Connections accepted by the listeners (refused ones included).
    accepted: AtomicU64,
    /// Every driver's counters, registered when the driver starts.
    drivers: Mutex<Vec<Arc<DriverCounters>>>,
    /// The sequence number of the one history append being timed (0: none); see
    /// [`Metrics::appended`].
    sample_seq: AtomicU64,
    /// When that append happened, in nanoseconds since `epoch`.
    sample_at_ns: AtomicU64,
    /// From a sampled append to the first driver pass that sees it committed.
    commit_latency: Histogram,
    /// The cluster link's traffic (`--cluster`), counted by the link alone.
    pub(crate) cluster: ClusterCounters,
}

/// What a cluster node's link sends and receives on the bus: the cost of
/// scale-out, in messages and bytes (docs/PERFORMANCE.md divides them by the
/// channel messages relayed).
#[derive(Debug, Default)]
pub(crate) struct ClusterCounters {
    pub(crate) sent_messages: AtomicU64,
    pub(crate) sent_bytes: AtomicU64,
    pub(crate) received_messages: AtomicU64,
    pub(crate) received_bytes: AtomicU64,
    /// Lines forwarded to single users of other nodes (one per recipient, though
    /// each distinct line travels once per node): private messages, and the lines
    /// of JOIN, PART, MODE and the like.
    pub(crate) forwarded_lines: AtomicU64,
    /// Channel messages sent to other nodes, once per node with members of the
    /// channel (each node delivers them to its own members).
    pub(crate) forwarded_channel_messages: AtomicU64,
    /// Other nodes declared lost (silent past the node timeout, or restarted).
    pub(crate) nodes_lost: AtomicU64,
}

impl ClusterCounters {
    /// Adds `n` to `counter`.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            ready: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            drivers: Mutex::new(Vec::new()),
            sample_seq: AtomicU64::new(0),
            sample_at_ns: AtomicU64::new(0),
            commit_latency: Histogram::new(COMMIT_BOUNDS_NS),
            cluster: ClusterCounters::default(),
        }
    }
}

impl Metrics {
    /// Counters for a driver that is starting; the scrape sums them with the others.
    pub(crate) fn new_driver(&self) -> Arc<DriverCounters> {
        let counters = Arc::new(DriverCounters::new());
        crate::lock(&self.drivers).push(Arc::clone(&counters));
        counters
    }

    /// A listener accepted a connection.
    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Says whether `/readyz` answers 200.
    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether the server is ready (see [`Metrics::set_ready`]).
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// History appended message `seq` (called with the world locked, so by one
    /// thread at a time). If no append is being timed, this one is: commit latency
    /// is sampled one message at a time, which costs a clock read per commit rather
    /// than per message, and still sees every slow commit that matters.
    pub(crate) fn appended(&self, seq: u64) {
        if seq == 0 || self.sample_seq.load(Ordering::Acquire) != 0 {
            return;
        }
        self.sample_at_ns.store(self.nanos_now(), Ordering::Relaxed);
        self.sample_seq.store(seq, Ordering::Release);
    }

    /// The store's committed watermark is `committed` (read once per driver pass):
    /// if it covers the timed append, its latency is observed and the next append
    /// can be timed. Usually one atomic load.
    pub(crate) fn committed(&self, committed: u64) {
        let seq = self.sample_seq.load(Ordering::Acquire);
        if seq == 0 || committed < seq {
            return;
        }
        let at = self.sample_at_ns.load(Ordering::Relaxed);
        // Only the thread that clears the sample observes it (two drivers may see
        // the same watermark); `at` is rewritten only after it is cleared.
        if self
            .sample_seq
            .compare_exchange(seq, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.commit_latency
                .observe(self.nanos_now().saturating_sub(at));
        }
    }

    fn nanos_now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The driver-side and server-wide counts, summed, as of now.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot {
            accepted: self.accepted.load(Ordering::Relaxed),
            open: [0; TRANSPORTS.len()],
            bytes_read: 0,
            bytes_written: 0,
            pass_time: HistogramValues::empty(PASS_BOUNDS_NS),
            commit_latency: HistogramValues::empty(COMMIT_BOUNDS_NS),
        };
        self.commit_latency.add_to(&mut snapshot.commit_latency);
        for driver in crate::lock(&self.drivers).iter() {
            for (slot, open) in snapshot.open.iter_mut().enumerate() {
                let opened = driver.opened[slot].load(Ordering::Relaxed);
                let closed = driver.closed[slot].load(Ordering::Relaxed);
                *open += opened.saturating_sub(closed);
            }
            snapshot.bytes_read += driver.bytes_read.load(Ordering::Relaxed);
            snapshot.bytes_written += driver.bytes_written.load(Ordering::Relaxed);
            driver.pass_time.add_to(&mut snapshot.pass_time);
        }
        snapshot
    }
}

/// [`Metrics`] and every driver's counters, summed at one scrape.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) accepted: u64,
    /// Connections open, by [`TRANSPORTS`] slot.
    pub(crate) open: [u64; TRANSPORTS.len()],
    pub(crate) bytes_read: u64,
    pub(crate) bytes_written: u64,
    pub(crate) pass_time: HistogramValues,
    pub(crate) commit_latency: HistogramValues,
}

/// What the HTTP side asks of the server: readiness and the metrics text. A trait
/// so the transport layer needs no access to the world (`Shared` implements it in
/// `scrape`).
pub(crate) trait Status: Send + Sync {
    /// Whether `/readyz` answers 200.
    fn ready(&self) -> bool;
    /// The `/metrics` body.
    fn metrics_text(&self) -> String;
}

/// A Prometheus text exposition (format 0.0.4) being written.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    text: String,
}

/// The `Content-Type` of [`Exposition`] text.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Exposition {
    /// The metric's `# HELP` and `# TYPE` lines.
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// A counter without labels (`name` ends in `_total`).
    pub(crate) fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, "counter", help);
        let _ = writeln!(self.text, "{name} {value}");
    }

    /// A gauge without labels.
    pub(crate) fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, "gauge", help);
        let _ = writeln!(self.text, "{name} {value}");
    }

    /// A counter or gauge (`kind`) with one label, one sample per value.
    pub(crate) fn labeled(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        samples: impl IntoIterator<Item = (&'static str, u64)>,
    ) {
        self.header(name, kind, help);
        for (value, count) in samples {
            let _ = writeln!(self.text, "{name}{{{label}=\"{value}\"}} {count}");
        }
    }

    /// A histogram in seconds (`name` ends in `_seconds`).
    pub(crate) fn histogram(&mut self, name: &str, help: &str, values: &HistogramValues) {
        self.header(name, "histogram", help);
        let mut cumulative = 0;
        for (index, count) in values.buckets.iter().enumerate() {
            cumulative += count;
            match values.bounds_ns.get(index) {
                Some(bound) => {
                    let le = *bound as f64 / 1e9;
                    let _ = writeln!(self.text, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(self.text, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let _ = writeln!(self.text, "{name}_sum {}", values.sum_ns as f64 / 1e9);
        let _ = writeln!(self.text, "{name}_count {cumulative}");
    }

    /// The text written.
    pub(crate) fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_slots_are_found_at_compile_time() {
        assert_eq!(COMMANDS[const { known_command_slot("PRIVMSG") }], "PRIVMSG");
        assert_eq!(OTHER_COMMAND, COMMANDS.len());
        let mut counters = WorldCounters::default();
        counters.commands[known_command_slot("JOIN")] += 2;
        counters.commands[OTHER_COMMAND] += 1;
        assert_eq!(counters.command_counts(), vec![("JOIN", 2), ("other", 1)]);
    }

    #[test]
    fn histograms_are_exported_cumulative_in_seconds() {
        let histogram = Histogram::new(&[1_000, 1_000_000]);
        histogram.observe(500);
        histogram.observe(1_000);
        histogram.observe(2_000);
        histogram.observe(5_000_000_000);
        let mut values = HistogramValues::empty(&[1_000, 1_000_000]);
        histogram.add_to(&mut values);
        let mut text = Exposition::default();
        text.histogram("x_seconds", "help", &values);
        let text = text.finish();
        assert!(
            text.contains("x_seconds_bucket{le=\"0.000001\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{le=\"0.001\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("x_seconds_bucket{le=\"+Inf\"} 4\n"), "{text}");
        assert!(text.contains("x_seconds_count 4\n"), "{text}");
        assert!(text.contains("x_seconds_sum 5.0000035\n"), "{text}");
    }

    #[test]
    fn a_server_is_not_ready_until_it_says_so() {
        let metrics = Metrics::default();
        assert!(!metrics.is_ready());
        metrics.set_ready(true);
        assert!(metrics.is_ready());
        metrics.set_ready(false);
        assert!(!metrics.is_ready());
    }

    #[test]
    fn one_append_at_a_time_is_timed() {
        let metrics = Metrics::default();
        metrics.appended(5);
        metrics.appended(6); // not timed: 5 is
        metrics.committed(4);
        assert_eq!(
            metrics
                .snapshot()
                .commit_latency
                .buckets
                .iter()
                .sum::<u64>(),
            0
        );
        metrics.committed(6);
        metrics.committed(6);
        assert_eq!(
            metrics
                .snapshot()
                .commit_latency
                .buckets
                .iter()
                .sum::<u64>(),
            1
        );
        metrics.appended(7);
        metrics.committed(7);
        assert_eq!(
            metrics
                .snapshot()
                .commit_latency
                .buckets
                .iter()
                .sum::<u64>(),
            2
        );
    }
}
