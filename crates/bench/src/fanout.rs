//! `chat-bench fanout`: channel fan-out under load, with every delivery checked.
//!
//! `channels × members` clients register and join (the first `senders` members of
//! each channel send). A barrier then drains the join floods: once every member has
//! seen its own 366, each one PINGs the server and waits for the PONG, which the
//! server queues after every JOIN line it owed that client. Then the senders send
//! `PRIVMSG #chan :<sender> <seq> <send-nanos> <padding>` for `--duration` seconds,
//! and every receiver checks per-sender order, loss and duplication and records the
//! latency (receive time − send time, one monotonic clock for the whole process) in
//! an HDR histogram.
//!
//! Against a cluster (several `--addr` nodes) the members, senders among them, are
//! dealt out round-robin over the nodes, and a JOIN on one node reaches the others
//! only after the bus carried it. So before the barrier the run waits for the
//! cluster to converge: on every node one member of each channel polls `NAMES`
//! (with a growing pause, bounded by `--setup-timeout`) until it lists all the
//! channel's members. Latency then includes the hops between nodes.
//!
//! With `--rate R` each sender sends R messages per second. Without it (saturation)
//! each sender keeps at most `--window` messages in flight, a message counting as in
//! flight until every other member received it, so the server's queues stay bounded
//! and the latency at saturation is the latency of a busy server, not of a queue
//! that grows for the whole run. A sender that cannot send for more than
//! [`STARVED_AFTER`] is counted as starved (a fairness failure).
//!
//! The receive path is kept cheap: 64 KiB reads, [`LineFramer`] slices lines out
//! of the read buffer without copying, one [`Message`] parse per line, shared
//! counters and histograms touched once per read rather than once per line.
//!
//! [`LineFramer`]: palaver_proto::LineFramer
//! [`Message`]: palaver_proto::Message

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hdrhistogram::Histogram;
use palaver_proto::{Frame, LineFramer, LineWriter};
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::conn::{self, Conn, READ_CHUNK};
use crate::connect::parse_secs;
use crate::procstat::PidShare;
use crate::report::{LatencySummary, Output, micros, new_histogram, secs};
use crate::rxtime::{self, RxClock};
use crate::transport::{self, ReadHalf, WriteHalf};
use crate::{Error, server_samples};

/// A sender that could not send for longer than this at saturation is starved.
pub const STARVED_AFTER: Duration = Duration::from_secs(5);
/// Most lines a sender writes in one batch (one write call).
const MAX_BATCH: u64 = 16;
/// Gaps remembered per (receiver, sender) to tell late arrivals from duplicates.
const MAX_MISSING: usize = 100_000;
/// Latency histograms the receivers share (each behind its own mutex).
const HIST_SHARDS: usize = 8;
/// Most clients one run may open.
pub const MAX_CLIENTS: u64 = 200_000;
/// First pause between two `NAMES` polls while the cluster converges; it doubles up
/// to [`NAMES_POLL_MAX`].
const NAMES_POLL_FIRST: Duration = Duration::from_millis(10);
/// Longest pause between two `NAMES` polls.
const NAMES_POLL_MAX: Duration = Duration::from_millis(250);

/// Options of `chat-bench fanout`.
#[derive(Debug, Clone, clap::Args)]
pub struct FanoutOpts {
    /// Channels, each with its own members and senders.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub channels: u32,
    /// Members per channel, senders included (each member is one connection).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub members: u32,
    /// Senders per channel (the first members of each channel).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub senders: u32,
    /// Messages per second per sender. Without it: saturation mode (see --window).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds of sending.
    #[arg(long, default_value_t = 5.0, value_parser = parse_secs)]
    pub duration: f64,
    /// Saturation mode: messages per sender in flight, i.e. sent but not yet received
    /// by every other member of the channel.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub window: u32,
    /// Length in bytes of each message's text (sequence header plus padding).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(40..=400))]
    pub size: u32,
    /// Registrations in progress at once.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    pub concurrency: u32,
    /// Seconds allowed for the setup (register, join, on a cluster every node
    /// listing every member, barrier).
    #[arg(long, default_value_t = 120.0, value_parser = parse_secs)]
    pub setup_timeout: f64,
    /// Seconds to wait for messages still in flight once sending stops.
    #[arg(long, default_value_t = 10.0, value_parser = parse_secs)]
    pub drain_timeout: f64,
    /// Take each receive time when the generator reads the line rather than from
    /// the kernel's stamp of its arrival (see `rxtime`): adds the generator's own
    /// reading delay to the latency, as generators without kernel stamps do.
    #[arg(long)]
    pub user_receive_time: bool,
    /// After the run, read every channel's history back (IRCv3 `draft/chathistory`)
    /// and check that each message sent is there exactly once: the server's
    /// durability promise, end to end. The run is clean only if it is.
    #[arg(long)]
    pub verify_history: bool,
}

/// What `chat-bench fanout` measured.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    /// Always `"fanout"`.
    pub mode: &'static str,
    /// The server loaded (its nodes, comma-separated, when several).
    pub target: String,
    /// Every node the members were spread over, in `--addr` order.
    pub nodes: Vec<String>,
    /// Channels.
    pub channels: u32,
    /// Members per channel.
    pub members: u32,
    /// Senders per channel.
    pub senders: u32,
    /// Messages per second per sender, or `None` for saturation mode.
    pub rate: Option<f64>,
    /// Saturation window (messages per sender in flight), `None` with a rate.
    pub window: Option<u32>,
    /// Bytes of message text.
    pub size: u32,
    /// Seconds to register every client.
    pub register_s: f64,
    /// Seconds from the start until every member had joined and passed the barrier.
    pub setup_s: f64,
    /// Several nodes: seconds from the last member's join (its own 366) until every
    /// node's `NAMES` listed every member; `None` with one node.
    pub converge_s: Option<f64>,
    /// Seconds of sending.
    pub send_s: f64,
    /// Seconds from the first send until the last delivery (or the drain deadline).
    pub measured_s: f64,
    /// Messages sent (all senders).
    pub sent: u64,
    /// Deliveries owed: each message × (members − 1).
    pub expected_deliveries: u64,
    /// Deliveries received (duplicates included).
    pub deliveries: u64,
    /// Deliveries per second over `measured_s`.
    pub deliveries_per_s: f64,
    /// Messages sent per second over `send_s`.
    pub sent_per_s: f64,
    /// Deliveries owed but never received.
    pub lost: u64,
    /// Deliveries received twice.
    pub duplicates: u64,
    /// Deliveries that arrived ahead of an earlier message of the same sender.
    pub reordered: u64,
    /// PRIVMSGs whose text was not a message of this channel's senders.
    pub foreign: u64,
    /// Members the server disconnected during the run.
    pub disconnected: u64,
    /// Examples of why members were disconnected.
    pub disconnect_reasons: Vec<String>,
    /// Send-to-receive latency.
    pub latency: LatencySummary,
    /// What the connections travel over: `plain`, `tls`, `websocket` or
    /// `websocket+tls` (`--tls`, `--websocket`).
    pub transport: &'static str,
    /// Where receive times came from: `"kernel"` (arrival at the member's socket)
    /// or `"user"` (when the generator read the line). Over TLS or WebSocket the
    /// kernel's stamp is that of the socket read that brought the line's last bytes.
    pub receive_time: &'static str,
    /// Saturation mode: senders that could not send for more than 5 s.
    pub starved_senders: u64,
    /// Longest time any sender waited to send, in seconds.
    pub max_sender_stall_s: f64,
    /// This generator's own CPU use during the measured phase (1.0 = one core; 10 ms
    /// ticks), to tell a saturated server from a saturated generator.
    pub generator_cpu_cores: Option<f64>,
    /// Server CPU (with `--server-pid`).
    pub server: Option<FanoutServerStats>,
    /// What `--verify-history` found.
    pub history: Option<crate::history_check::HistoryCheck>,
}

impl FanoutReport {
    /// Whether every owed delivery arrived exactly once, in order, and nobody was dropped.
    pub fn is_clean(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.reordered == 0
            && self.disconnected == 0
            && self.deliveries == self.expected_deliveries
            && self
                .history
                .as_ref()
                .is_none_or(|h| h.missing == 0 && h.duplicates == 0)
    }
}

/// Server CPU during the measured phase (from `/proc/<pid>/stat`), summed over
/// every `--server-pid` (a cluster's nodes and its bus).
#[derive(Debug, Clone, Serialize)]
pub struct FanoutServerStats {
    /// The first `--server-pid`.
    pub pid: u32,
    /// Every `--server-pid`, in order.
    pub pids: Vec<u32>,
    /// Server CPU time (user + system) during the measured phase, in microseconds
    /// (10 ms tick granularity).
    pub cpu_us: u64,
    /// That CPU time divided by deliveries.
    pub cpu_us_per_delivery: f64,
    /// Server CPU utilisation during the measured phase (1.0 = one core).
    pub cpu_cores: f64,
    /// VmRSS at the end of the measured phase (summed).
    pub rss_bytes: u64,
    /// Each process's CPU time and memory during the measured phase.
    pub per_pid: Vec<PidShare>,
}

/// State shared by the orchestrator and every member task.
struct Shared {
    /// The nodes members are dealt out over (one for an ordinary server).
    nodes: Vec<SocketAddr>,
    opts: FanoutOpts,
    run: String,
    /// The process-wide monotonic clock that timestamps sends and receipts.
    clock: Instant,
    /// Maps the kernel's receive stamps onto `clock`.
    rx_clock: RxClock,
    /// Members that receive each message (members − 1).
    receivers: u64,
    /// Per sender (global index): messages fully written.
    sent: Vec<AtomicU64>,
    /// Per sender: deliveries of its messages so far (all receivers).
    delivered: Vec<AtomicU64>,
    /// Per sender: woken when deliveries of its messages arrive.
    wake: Vec<Notify>,
    hists: Vec<Mutex<Histogram<u64>>>,
    registration: Semaphore,
    registered: AtomicUsize,
    joined: AtomicUsize,
    synced: AtomicUsize,
    /// Members whose `NAMES` listed every member of their channel.
    converged: AtomicUsize,
    senders_done: AtomicUsize,
    first_error: Mutex<Option<String>>,
    /// Cancelled when any member fails or the setup times out.
    abort: CancellationToken,
    all_joined: CancellationToken,
    /// Cancelled once every node lists every member (at once with one node).
    all_converged: CancellationToken,
    go: CancellationToken,
    stop_sending: CancellationToken,
    stop: CancellationToken,
}

impl Shared {
    fn now_nanos(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    fn channel(&self, c: u32) -> String {
        format!("#b{}-{c}", self.run)
    }

    /// Whether member `m` of its channel polls `NAMES` until the cluster converged:
    /// the first members of each channel, one per node (consecutive members are on
    /// consecutive nodes). Nobody polls against one node.
    fn polls_names(&self, m: u32) -> bool {
        self.nodes.len() > 1 && (m as usize) < self.nodes.len()
    }

    /// How many members poll `NAMES` (see [`Shared::polls_names`]).
    fn pollers(&self) -> usize {
        (0..self.opts.members)
            .filter(|&m| self.polls_names(m))
            .count()
            * self.opts.channels as usize
    }

    fn fail(&self, why: String) {
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(why);
        }
        self.abort.cancel();
    }

    fn first_error(&self) -> String {
        self.first_error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_else(|| "aborted".to_owned())
    }

    fn total_delivered(&self) -> u64 {
        self.delivered
            .iter()
            .map(|d| d.load(Ordering::Relaxed))
            .sum()
    }
}

/// Order tracking of one sender's stream at one receiver.
#[derive(Debug, Default, Clone)]
struct Track {
    next: u64,
    missing: BTreeSet<u64>,
    missing_overflow: u64,
}

/// What one receiving member saw.
#[derive(Debug, Default)]
struct ReceiverOutcome {
    channel: u32,
    /// This member's own sender index (global), whose messages it does not receive.
    own: Option<usize>,
    deliveries: u64,
    duplicates: u64,
    reordered: u64,
    foreign: u64,
    tracks: Vec<Track>,
    disconnected: Option<String>,
}

/// What one sender did.
#[derive(Debug, Default)]
struct SenderOutcome {
    max_stall: Duration,
}

/// Runs the fan-out scenario against `nodes` (one server, or the nodes of a
/// cluster), with the costs of `server_pids` summed.
pub async fn run(
    nodes: &[SocketAddr],
    opts: &FanoutOpts,
    server_pids: &[u32],
    output: Output,
) -> Result<FanoutReport, Error> {
    let Some(&first_node) = nodes.first() else {
        return Err(Error::Options("no address to connect to".to_owned()));
    };
    if opts.senders > opts.members {
        return Err(Error::Options(format!(
            "--senders {} exceeds --members {}",
            opts.senders, opts.members
        )));
    }
    let total = u64::from(opts.channels) * u64::from(opts.members);
    if total > MAX_CLIENTS {
        return Err(Error::Options(format!(
            "{total} clients (channels × members) is over the limit of {MAX_CLIENTS}"
        )));
    }
    if opts.duration <= 0.0 {
        return Err(Error::Options("--duration must be positive".to_owned()));
    }
    if let Some(rate) = opts.rate
        && !(rate > 0.0 && rate <= 10_000_000.0)
    {
        return Err(Error::Options(
            "--rate must be between 0 and 10,000,000 messages/s".to_owned(),
        ));
    }
    let total = total as usize;
    let total_senders = (opts.channels * opts.senders) as usize;
    let clock = Instant::now();
    let shared = Arc::new(Shared {
        nodes: nodes.to_vec(),
        opts: opts.clone(),
        run: conn::run_id(),
        clock,
        rx_clock: RxClock::new(clock),
        receivers: u64::from(opts.members) - 1,
        sent: (0..total_senders).map(|_| AtomicU64::new(0)).collect(),
        delivered: (0..total_senders).map(|_| AtomicU64::new(0)).collect(),
        wake: (0..total_senders).map(|_| Notify::new()).collect(),
        hists: (0..HIST_SHARDS)
            .map(|_| Mutex::new(new_histogram()))
            .collect(),
        registration: Semaphore::new(opts.concurrency as usize),
        registered: AtomicUsize::new(0),
        joined: AtomicUsize::new(0),
        synced: AtomicUsize::new(0),
        converged: AtomicUsize::new(0),
        senders_done: AtomicUsize::new(0),
        first_error: Mutex::new(None),
        abort: CancellationToken::new(),
        all_joined: CancellationToken::new(),
        all_converged: CancellationToken::new(),
        go: CancellationToken::new(),
        stop_sending: CancellationToken::new(),
        stop: CancellationToken::new(),
    });

    let mut tasks = JoinSet::new();
    for c in 0..opts.channels {
        for m in 0..opts.members {
            let index = (c * opts.members + m) as usize;
            let sender = (m < opts.senders).then_some((c * opts.senders + m) as usize);
            tasks.spawn(member(shared.clone(), index, c, sender));
        }
    }

    // Setup: register and join everyone, then the barrier.
    let setup_deadline = shared.clock + Duration::from_secs_f64(opts.setup_timeout);
    let bar = output.progress(2 * total as u64, "setting up");
    let mut register_s = None;
    wait_for(&shared, setup_deadline, "setup", || {
        let registered = shared.registered.load(Ordering::Relaxed);
        if registered == total && register_s.is_none() {
            register_s = Some(shared.clock.elapsed());
        }
        bar.set_position((registered + shared.joined.load(Ordering::Relaxed)) as u64);
        shared.joined.load(Ordering::Relaxed) == total
    })
    .await?;
    shared.all_joined.cancel();
    let joined_at = shared.clock.elapsed();
    let pollers = shared.pollers();
    wait_for(
        &shared,
        setup_deadline,
        "every node to list every member",
        || shared.converged.load(Ordering::Relaxed) == pollers,
    )
    .await?;
    let converge = (nodes.len() > 1).then(|| shared.clock.elapsed() - joined_at);
    shared.all_converged.cancel();
    wait_for(&shared, setup_deadline, "join barrier", || {
        shared.synced.load(Ordering::Relaxed) == total
    })
    .await?;
    bar.finish_and_clear();
    let setup = shared.clock.elapsed();

    // Measured phase.
    let before = server_samples(server_pids)?;
    let own_before = crate::procstat::sample(std::process::id()).ok();
    let go_at = Instant::now();
    shared.go.cancel();
    let send_for = Duration::from_secs_f64(opts.duration);
    let bar = output.progress(send_for.as_millis() as u64, "sending");
    loop {
        let elapsed = go_at.elapsed();
        if elapsed >= send_for {
            break;
        }
        if shared.abort.is_cancelled() {
            return Err(Error::Run(shared.first_error()));
        }
        bar.set_position(elapsed.as_millis() as u64);
        bar.set_message(format!("{:.2}M dlv", shared.total_delivered() as f64 / 1e6));
        tokio::time::sleep((send_for - elapsed).min(Duration::from_millis(100))).await;
    }
    shared.stop_sending.cancel();
    let send_time = go_at.elapsed();
    bar.finish_and_clear();
    let drain_deadline = Instant::now() + Duration::from_secs_f64(opts.drain_timeout);
    wait_for(&shared, drain_deadline, "senders to stop", || {
        shared.senders_done.load(Ordering::Relaxed) == total_senders
    })
    .await?;
    let sent: Vec<u64> = shared
        .sent
        .iter()
        .map(|s| s.load(Ordering::Relaxed))
        .collect();
    let total_sent: u64 = sent.iter().sum();
    let expected = total_sent * shared.receivers;
    // Waiting for the last deliveries may time out: what is missing then is loss.
    let _ = wait_for(&shared, drain_deadline, "deliveries", || {
        shared.total_delivered() >= expected
    })
    .await;
    let measured = go_at.elapsed();
    let after = server_samples(server_pids)?;
    let own_after = crate::procstat::sample(std::process::id()).ok();
    shared.stop.cancel();

    // Collect what every member saw.
    let mut receivers = Vec::with_capacity(total);
    let mut senders = Vec::with_capacity(total_senders);
    let collect = async {
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok((receiver, sender))) => {
                    receivers.push(receiver);
                    senders.extend(sender);
                }
                Ok(Err(e)) => return Err(Error::Run(e)),
                Err(e) => return Err(Error::Run(format!("member task failed: {e}"))),
            }
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(10), collect)
        .await
        .map_err(|_| Error::Run("members did not stop within 10 s".to_owned()))??;

    let mut report = FanoutReport {
        mode: "fanout",
        target: nodes
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(","),
        nodes: nodes.iter().map(SocketAddr::to_string).collect(),
        channels: opts.channels,
        members: opts.members,
        senders: opts.senders,
        rate: opts.rate,
        window: opts.rate.is_none().then_some(opts.window),
        size: opts.size,
        register_s: secs(register_s.unwrap_or(setup)),
        setup_s: secs(setup),
        converge_s: converge.map(secs),
        send_s: secs(send_time),
        measured_s: secs(measured),
        sent: total_sent,
        expected_deliveries: expected,
        deliveries: 0,
        deliveries_per_s: 0.0,
        sent_per_s: total_sent as f64 / send_time.as_secs_f64().max(1e-9),
        lost: 0,
        duplicates: 0,
        reordered: 0,
        foreign: 0,
        disconnected: 0,
        disconnect_reasons: Vec::new(),
        latency: LatencySummary::default(),
        transport: transport::current().name(),
        receive_time: if opts.user_receive_time {
            "user"
        } else {
            "kernel"
        },
        starved_senders: 0,
        max_sender_stall_s: 0.0,
        generator_cpu_cores: own_before
            .zip(own_after)
            .map(|(b, a)| b.cpu_micros_until(&a) as f64 / 1e6 / measured.as_secs_f64().max(1e-9)),
        server: None,
        history: None,
    };
    for r in &receivers {
        report.deliveries += r.deliveries;
        report.duplicates += r.duplicates;
        report.reordered += r.reordered;
        report.foreign += r.foreign;
        let base = (r.channel * opts.senders) as usize;
        for (local, track) in r.tracks.iter().enumerate() {
            if r.own == Some(base + local) {
                continue;
            }
            let sent_by = sent.get(base + local).copied().unwrap_or(0);
            report.lost += track.missing.len() as u64
                + track.missing_overflow
                + sent_by.saturating_sub(track.next);
        }
        if let Some(why) = &r.disconnected {
            report.disconnected += 1;
            if report.disconnect_reasons.len() < 5 {
                report.disconnect_reasons.push(why.clone());
            }
        }
    }
    report.deliveries_per_s = report.deliveries as f64 / measured.as_secs_f64().max(1e-9);
    let mut hist = new_histogram();
    for shard in &shared.hists {
        if let Ok(shard) = shard.lock() {
            let _ = hist.add(&*shard);
        }
    }
    report.latency = LatencySummary::from_nanos(&hist);
    let max_stall = senders
        .iter()
        .map(|s| s.max_stall)
        .max()
        .unwrap_or_default();
    report.max_sender_stall_s = secs(max_stall);
    if opts.rate.is_none() {
        report.starved_senders = senders
            .iter()
            .filter(|s| s.max_stall > STARVED_AFTER)
            .count() as u64;
    }
    if let (Some(&pid), Some(before), Some(after)) = (server_pids.first(), before, after) {
        let cpu_us = before.cpu_micros_until(&after);
        report.server = Some(FanoutServerStats {
            pid,
            pids: server_pids.to_vec(),
            cpu_us,
            cpu_us_per_delivery: cpu_us as f64 / report.deliveries.max(1) as f64,
            cpu_cores: cpu_us as f64 / 1e6 / measured.as_secs_f64().max(1e-9),
            rss_bytes: after.total().rss_bytes,
            per_pid: before.shares_until(&after),
        });
    }
    if opts.verify_history {
        let expected: Vec<_> = (0..opts.channels)
            .map(|c| crate::history_check::Expected {
                channel: shared.channel(c),
                senders: (0..opts.senders)
                    .map(|m| {
                        let global = (c * opts.senders + m) as usize;
                        (global, sent.get(global).copied().unwrap_or(0))
                    })
                    .collect(),
            })
            .collect();
        let limit = Duration::from_secs_f64(opts.setup_timeout);
        let nick = format!("b{}h", shared.run);
        report.history = Some(
            crate::history_check::verify(first_node, &nick, &expected, limit)
                .await
                .map_err(Error::Run)?,
        );
    }
    Ok(report)
}

/// Polls `done` every 20 ms until it holds, a member fails, or `deadline` passes.
async fn wait_for(
    shared: &Shared,
    deadline: Instant,
    what: &str,
    mut done: impl FnMut() -> bool,
) -> Result<(), Error> {
    loop {
        if done() {
            return Ok(());
        }
        if shared.abort.is_cancelled() {
            return Err(Error::Setup(shared.first_error()));
        }
        if Instant::now() >= deadline {
            let why = format!(
                "timed out waiting for {what} ({} registered, {} joined, {} of {} NAMES complete, {} past the barrier)",
                shared.registered.load(Ordering::Relaxed),
                shared.joined.load(Ordering::Relaxed),
                shared.converged.load(Ordering::Relaxed),
                shared.pollers(),
                shared.synced.load(Ordering::Relaxed)
            );
            shared.fail(why.clone());
            return Err(Error::Setup(why));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One member's whole life: register, join, barrier, then receive (and send, for
/// a sender) until told to stop.
async fn member(
    shared: Arc<Shared>,
    index: usize,
    channel: u32,
    sender: Option<usize>,
) -> Result<(ReceiverOutcome, Option<SenderOutcome>), String> {
    let result = member_inner(&shared, index, channel, sender).await;
    if let Err(e) = &result {
        shared.fail(e.clone());
    }
    result
}

async fn member_inner(
    shared: &Arc<Shared>,
    index: usize,
    channel: u32,
    sender: Option<usize>,
) -> Result<(ReceiverOutcome, Option<SenderOutcome>), String> {
    let nick = format!("b{}{index}", shared.run);
    let limit = Duration::from_secs_f64(shared.opts.setup_timeout);
    let registered = {
        let _permit = shared
            .registration
            .acquire()
            .await
            .map_err(|_| "registration closed".to_owned())?;
        tokio::select! {
            _ = shared.abort.cancelled() => return Err(shared.first_error()),
            r = conn::register(crate::addr::spread(&shared.nodes, index), &nick, limit) => {
                r.map_err(|e| format!("{nick}: {e}"))?
            }
        }
    };
    shared.registered.fetch_add(1, Ordering::Relaxed);
    let nick = registered.nick;
    let mut conn = registered.conn;
    let chan = shared.channel(channel);

    // Join and wait for our own end of NAMES.
    conn.send(&conn::line("JOIN", &[&chan], None))
        .await
        .map_err(|e| format!("{nick}: JOIN: {e}"))?;
    read_until(shared, &mut conn, &nick, |msg| match msg.command() {
        "366" if msg.param(1).is_some_and(|c| c.eq_ignore_ascii_case(&chan)) => Ok(true),
        "403" | "405" | "471" | "473" | "474" | "475" | "477" | "479" => Err(format!(
            "{nick}: cannot join {chan}: {} {}",
            msg.command(),
            msg.params().last().copied().unwrap_or_default()
        )),
        _ => Ok(false),
    })
    .await?;
    shared.joined.fetch_add(1, Ordering::Relaxed);

    // Keep draining JOIN lines until everyone has joined; on a cluster, until every
    // node lists everyone; then the barrier.
    idle_until(shared, &mut conn, &nick, &shared.all_joined).await?;
    if shared.polls_names(index as u32 - channel * shared.opts.members) {
        await_names(shared, &mut conn, &nick, &chan).await?;
        shared.converged.fetch_add(1, Ordering::Relaxed);
    }
    idle_until(shared, &mut conn, &nick, &shared.all_converged).await?;
    let token = format!("sync-{index}");
    conn.send(&conn::line("PING", &[], Some(&token)))
        .await
        .map_err(|e| format!("{nick}: PING: {e}"))?;
    read_until(shared, &mut conn, &nick, |msg| {
        Ok(msg.command() == "PONG" && msg.params().last() == Some(&token.as_str()))
    })
    .await?;
    shared.synced.fetch_add(1, Ordering::Relaxed);
    idle_until(shared, &mut conn, &nick, &shared.go).await?;

    // Measured phase.
    let (mut stream, buf, framer) = conn.into_parts();
    // Over TLS or WebSocket the socket's reads are stamped below those layers.
    let stamps = if shared.opts.user_receive_time {
        None
    } else {
        stream.stamp_receives().ok().flatten()
    };
    let (read, write) = stream.into_split();
    let write = Arc::new(tokio::sync::Mutex::new(write));
    let send_task = sender.map(|global| {
        tokio::spawn(send_loop(
            shared.clone(),
            global,
            chan.clone(),
            write.clone(),
        ))
    });
    let mut outcome = receive(shared, index, channel, read, stamps, buf, framer, &write).await;
    outcome.own = sender;
    let sent = match send_task {
        Some(task) => Some(
            task.await
                .map_err(|e| format!("{nick}: sender task failed: {e}"))?,
        ),
        None => None,
    };
    Ok((outcome, sent))
}

/// Reads lines (answering PING) until `done` says so; fails on disconnect or abort.
async fn read_until(
    shared: &Shared,
    conn: &mut Conn,
    nick: &str,
    mut done: impl FnMut(&palaver_proto::Message<'_>) -> Result<bool, String>,
) -> Result<(), String> {
    loop {
        let raw = tokio::select! {
            biased;
            _ = shared.abort.cancelled() => return Err(shared.first_error()),
            line = conn.next_line() => line.map_err(|e| format!("{nick}: {e}"))?,
        };
        let Some(raw) = raw else {
            return Err(format!("{nick}: disconnected during setup"));
        };
        let Some(msg) = conn::parse(&raw) else {
            continue;
        };
        match msg.command() {
            "PING" => conn
                .send(&conn::pong(&msg))
                .await
                .map_err(|e| format!("{nick}: {e}"))?,
            "ERROR" => {
                return Err(format!(
                    "{nick}: server closed the link: {}",
                    msg.params().last().copied().unwrap_or_default()
                ));
            }
            _ => {
                if done(&msg)? {
                    return Ok(());
                }
            }
        }
    }
}

/// Polls `NAMES chan` until it lists all `--members` (the channel's name is this
/// run's own, so nobody else is in it), pausing longer after each incomplete
/// answer. Bounded by the setup deadline, which aborts the run.
async fn await_names(
    shared: &Shared,
    conn: &mut Conn,
    nick: &str,
    chan: &str,
) -> Result<(), String> {
    let want = shared.opts.members as usize;
    let mut pause = NAMES_POLL_FIRST;
    loop {
        conn.send(&conn::line("NAMES", &[chan], None))
            .await
            .map_err(|e| format!("{nick}: NAMES: {e}"))?;
        let mut listed = BTreeSet::new();
        read_until(shared, conn, nick, |msg| match msg.command() {
            "353" if msg.param(2).is_some_and(|c| c.eq_ignore_ascii_case(chan)) => {
                let names = msg.params().last().copied().unwrap_or_default();
                listed.extend(names.split(' ').filter_map(names_entry));
                Ok(false)
            }
            "366" if msg.param(1).is_some_and(|c| c.eq_ignore_ascii_case(chan)) => Ok(true),
            _ => Ok(false),
        })
        .await?;
        if listed.len() >= want {
            return Ok(());
        }
        tokio::select! {
            biased;
            _ = shared.abort.cancelled() => return Err(shared.first_error()),
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(NAMES_POLL_MAX);
    }
}

/// One entry of a 353 RPL_NAMREPLY, without its status prefixes (`@`, `+`, ...;
/// all of them with `multi-prefix`), lowercased; `None` for an empty one.
fn names_entry(entry: &str) -> Option<String> {
    let nick = entry.trim_start_matches(['~', '&', '@', '%', '+']);
    // With userhost-in-names the entry is nick!user@host.
    let nick = nick.split('!').next().unwrap_or(nick);
    (!nick.is_empty()).then(|| nick.to_ascii_lowercase())
}

/// Reads and discards lines (answering PING) until `until` is cancelled.
async fn idle_until(
    shared: &Shared,
    conn: &mut Conn,
    nick: &str,
    until: &CancellationToken,
) -> Result<(), String> {
    tokio::select! {
        biased;
        _ = until.cancelled() => Ok(()),
        r = read_until(shared, conn, nick, |_| Ok(false)) => r,
    }
}

/// The hot receive loop of one member. `stamps`: where a TLS or WebSocket stream
/// keeps the kernel's receive stamp of its socket's last read.
#[allow(clippy::too_many_arguments)]
async fn receive(
    shared: &Shared,
    index: usize,
    channel: u32,
    mut read: ReadHalf,
    stamps: Option<Arc<AtomicU64>>,
    mut buf: BytesMut,
    mut framer: LineFramer,
    write: &tokio::sync::Mutex<WriteHalf>,
) -> ReceiverOutcome {
    let senders = shared.opts.senders as usize;
    let base = channel as usize * senders;
    let mut out = ReceiverOutcome {
        channel,
        tracks: vec![Track::default(); senders],
        ..ReceiverOutcome::default()
    };
    let mut counts = vec![0u64; senders];
    let mut latencies: Vec<u64> = Vec::with_capacity(1024);
    let mut pongs = BytesMut::new();
    let shard = &shared.hists[index % HIST_SHARDS];
    // Plain TCP: stamped here, on the member's own reads.
    let kernel_time =
        !shared.opts.user_receive_time && read.plain().is_some_and(|r| rxtime::enable(r).is_ok());
    let stamped = |n: usize| {
        let real = stamps.as_ref().map(|s| s.load(Ordering::Relaxed))?;
        (real > 0)
            .then(|| shared.rx_clock.real_to_clock(real))
            .map(|at| (n, Some(at)))
    };
    let mut now = shared.now_nanos();
    loop {
        while let Some(frame) = framer.next_frame(&mut buf) {
            let Frame::Line(line) = frame else { continue };
            let Some(msg) = conn::parse(&line) else {
                continue;
            };
            match msg.command() {
                "PRIVMSG" => {
                    let text = msg.params().last().copied().unwrap_or_default();
                    let Some((id, seq, sent_at)) = parse_payload(text) else {
                        out.foreign += 1;
                        continue;
                    };
                    let Some(local) = id.checked_sub(base).filter(|l| *l < senders) else {
                        out.foreign += 1;
                        continue;
                    };
                    out.deliveries += 1;
                    counts[local] += 1;
                    latencies.push(now.saturating_sub(sent_at).max(1));
                    check_order(&mut out, local, seq);
                }
                "PING" => pongs.extend_from_slice(&conn::pong(&msg)),
                "ERROR" => {
                    out.disconnected = Some(format!(
                        "ERROR {}",
                        msg.params().last().copied().unwrap_or_default()
                    ));
                }
                _ => {}
            }
        }
        for (local, count) in counts.iter_mut().enumerate() {
            if *count > 0 {
                shared.delivered[base + local].fetch_add(*count, Ordering::Relaxed);
                shared.wake[base + local].notify_one();
                *count = 0;
            }
        }
        if !latencies.is_empty() {
            if let Ok(mut hist) = shard.lock() {
                for ns in latencies.drain(..) {
                    hist.saturating_record(ns);
                }
            }
            latencies.clear();
        }
        if !pongs.is_empty() {
            let _ = transport::write_flush(&mut *write.lock().await, &pongs).await;
            pongs.clear();
        }
        if out.disconnected.is_some() {
            return out;
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let read_once = async {
            if kernel_time && let Some(plain) = read.plain() {
                rxtime::read_stamped(plain, &mut buf, shared.rx_clock).await
            } else {
                read.read_buf(&mut buf)
                    .await
                    .map(|n| stamped(n).unwrap_or((n, None)))
            }
        };
        tokio::select! {
            biased;
            _ = shared.stop.cancelled() => return out,
            r = read_once => match r {
                Ok((0, _)) => {
                    out.disconnected = Some("connection closed".to_owned());
                    return out;
                }
                Ok((_, stamp)) => now = stamp.unwrap_or_else(|| shared.now_nanos()),
                Err(e) => {
                    out.disconnected = Some(e.to_string());
                    return out;
                }
            }
        }
    }
}

/// `<sender> <seq> <send-nanos> ...` → the three numbers.
fn parse_payload(text: &str) -> Option<(usize, u64, u64)> {
    let mut words = text.splitn(4, ' ');
    let id = words.next()?.parse().ok()?;
    let seq = words.next()?.parse().ok()?;
    let at = words.next()?.parse().ok()?;
    Some((id, seq, at))
}

/// Per-sender order check: in order, a gap (loss or reordering), or an old number
/// (a late arrival filling a gap, or a duplicate).
fn check_order(out: &mut ReceiverOutcome, local: usize, seq: u64) {
    let track = &mut out.tracks[local];
    if seq == track.next {
        track.next += 1;
    } else if seq > track.next {
        out.reordered += 1;
        let gap = seq - track.next;
        if track.missing.len() as u64 + gap <= MAX_MISSING as u64 {
            track.missing.extend(track.next..seq);
        } else {
            track.missing_overflow += gap;
        }
        track.next = seq + 1;
    } else if !track.missing.remove(&seq) {
        out.duplicates += 1;
    }
}

/// One sender: at `--rate`, or keeping `--window` messages in flight.
async fn send_loop(
    shared: Arc<Shared>,
    global: usize,
    chan: String,
    write: Arc<tokio::sync::Mutex<WriteHalf>>,
) -> SenderOutcome {
    let opts = &shared.opts;
    let receivers = shared.receivers;
    let limit = u64::from(opts.window) * receivers;
    let write_limit = Duration::from_secs_f64(opts.drain_timeout.max(1.0));
    let mut seq = 0u64;
    let mut batch = BytesMut::with_capacity(MAX_BATCH as usize * (opts.size as usize + 64));
    let mut text = String::with_capacity(opts.size as usize);
    let started = Instant::now();
    let mut last_progress = started;
    let mut outcome = SenderOutcome::default();
    while !shared.stop_sending.is_cancelled() && !shared.abort.is_cancelled() {
        let allowed = if let Some(rate) = opts.rate {
            // Senders are spread evenly over the period instead of all sending at
            // the same instants: in phase, every member's copy of every sender's
            // message would arrive at once, and the latency measured would be the
            // generator reading them one after the other.
            let phase = global as f64 / shared.sent.len().max(1) as f64;
            let due = (started.elapsed().as_secs_f64() * rate - phase).max(0.0) as u64;
            if due <= seq {
                let next = Duration::from_secs_f64((seq as f64 + 1.0 + phase) / rate);
                let wait = next.saturating_sub(started.elapsed());
                tokio::select! {
                    _ = shared.stop_sending.cancelled() => {}
                    _ = tokio::time::sleep(wait.max(Duration::from_micros(100))) => {}
                }
                continue;
            }
            (due - seq).min(MAX_BATCH)
        } else {
            let delivered = shared.delivered[global].load(Ordering::Relaxed);
            let outstanding = (seq * receivers).saturating_sub(delivered);
            if outstanding >= limit {
                tokio::select! {
                    _ = shared.wake[global].notified() => {}
                    _ = shared.stop_sending.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
                outcome.max_stall = outcome.max_stall.max(last_progress.elapsed());
                continue;
            }
            ((limit - outstanding) / receivers).clamp(1, MAX_BATCH)
        };
        batch.clear();
        for _ in 0..allowed {
            payload(
                &mut text,
                global,
                seq,
                shared.now_nanos(),
                opts.size as usize,
            );
            let mut line = LineWriter::new();
            line.command("PRIVMSG").param(&chan).trailing(&text);
            batch.extend_from_slice(&line.finish());
            seq += 1;
        }
        let written = tokio::time::timeout(write_limit, async {
            transport::write_flush(&mut *write.lock().await, &batch).await
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                shared.fail(format!("sender {global}: {e}"));
                break;
            }
            Err(_) => {
                shared.fail(format!(
                    "sender {global}: a write blocked for {write_limit:?}"
                ));
                break;
            }
        }
        shared.sent[global].store(seq, Ordering::Relaxed);
        let now = Instant::now();
        outcome.max_stall = outcome.max_stall.max(now - last_progress);
        last_progress = now;
    }
    shared.senders_done.fetch_add(1, Ordering::Relaxed);
    outcome
}

/// `<sender> <seq> <nanos> xxxx…` padded to `size` bytes.
fn payload(text: &mut String, sender: usize, seq: u64, nanos: u64, size: usize) {
    use std::fmt::Write;
    text.clear();
    let _ = write!(text, "{sender} {seq} {nanos} ");
    while text.len() < size {
        text.push('x');
    }
}

impl std::fmt::Display for FanoutReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match (self.rate, self.window) {
            (Some(rate), _) => format!("{rate} msg/s per sender"),
            (None, Some(window)) => format!("saturation, window {window}"),
            (None, None) => "saturation".to_owned(),
        };
        writeln!(
            f,
            "chat-bench fanout → {} ({}): {} channel(s) × {} members, {} sender(s) each, {mode}, {} B text",
            self.target, self.transport, self.channels, self.members, self.senders, self.size
        )?;
        if self.nodes.len() > 1 {
            writeln!(
                f,
                "  nodes           {} (members round-robin)",
                self.nodes.join(", ")
            )?;
        }
        writeln!(
            f,
            "  setup           {:.2} s ({:.2} s registering{})",
            self.setup_s,
            self.register_s,
            self.converge_s
                .map(|c| format!(", {c:.3} s for every node to list every member"))
                .unwrap_or_default()
        )?;
        writeln!(
            f,
            "  sent            {} in {:.2} s ({:.0}/s)",
            self.sent, self.send_s, self.sent_per_s
        )?;
        writeln!(
            f,
            "  deliveries      {} of {} in {:.2} s: {:.0}/s",
            self.deliveries, self.expected_deliveries, self.measured_s, self.deliveries_per_s
        )?;
        writeln!(
            f,
            "  latency         {} ({} receive time)",
            self.latency, self.receive_time
        )?;
        writeln!(
            f,
            "  integrity       lost {} · duplicates {} · reordered {} · foreign {} · disconnected {}{}",
            self.lost,
            self.duplicates,
            self.reordered,
            self.foreign,
            self.disconnected,
            if self.is_clean() {
                " (clean)"
            } else {
                " (NOT CLEAN)"
            }
        )?;
        for why in &self.disconnect_reasons {
            writeln!(f, "                  e.g. {why}")?;
        }
        writeln!(
            f,
            "  fairness        {} sender(s) starved > 5 s; longest stall {:.3} s",
            self.starved_senders, self.max_sender_stall_s
        )?;
        if let Some(history) = &self.history {
            writeln!(
                f,
                "  history         {} found · {} missing · {} duplicated (read back in {:.2} s)",
                history.found, history.missing, history.duplicates, history.seconds
            )?;
        }
        if let Some(cores) = self.generator_cpu_cores {
            writeln!(f, "  generator CPU   {cores:.2} cores")?;
        }
        if let Some(server) = &self.server {
            let pids = server
                .pids
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("+");
            writeln!(
                f,
                "  server pid {pids}   CPU {} per delivery ({:.2} cores), RSS {:.1} MB",
                micros(server.cpu_us_per_delivery),
                server.cpu_cores,
                server.rss_bytes as f64 / 1e6
            )?;
            if server.per_pid.len() > 1 {
                for share in &server.per_pid {
                    writeln!(
                        f,
                        "    pid {:<8}   CPU {:.2} s ({:.0} %), RSS {:.1} MB",
                        share.pid,
                        share.cpu_us as f64 / 1e6,
                        share.cpu_share * 100.0,
                        share.rss_after_bytes as f64 / 1e6
                    )?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips() {
        let mut text = String::new();
        payload(&mut text, 7, 42, 123_456_789, 64);
        assert_eq!(text.len(), 64);
        assert_eq!(parse_payload(&text), Some((7, 42, 123_456_789)));
        assert_eq!(parse_payload("hello world"), None);
    }

    #[test]
    fn names_entries_lose_their_prefixes() {
        assert_eq!(names_entry("@+Bob").as_deref(), Some("bob"));
        assert_eq!(names_entry("alice!a@h").as_deref(), Some("alice"));
        assert_eq!(names_entry("@"), None);
        assert_eq!(names_entry(""), None);
    }

    #[test]
    fn order_check_tells_loss_reordering_and_duplicates_apart() {
        let mut out = ReceiverOutcome {
            tracks: vec![Track::default()],
            ..ReceiverOutcome::default()
        };
        for seq in [0, 1, 3, 2, 2, 4] {
            check_order(&mut out, 0, seq);
        }
        // 3 came before 2 (one reordering), the second 2 is a duplicate.
        assert_eq!((out.reordered, out.duplicates), (1, 1));
        assert!(out.tracks[0].missing.is_empty());
        assert_eq!(out.tracks[0].next, 5);
        check_order(&mut out, 0, 7);
        assert_eq!(out.tracks[0].missing.len(), 2);
    }
}
