//! `chat-bench abuse`: can one address freeze the server for everyone else?
//!
//! Three kinds of client, each from its own loopback source address so that a
//! server's per-IP limits treat them as the strangers they would be:
//!
//! - **fillers** (setup, optional): `--users` idle registered clients, `--channels`
//!   channels (optionally with `--topics`) and `--bans` ban masks on `#abuse`, so that
//!   the attacks have something to chew on. They come from the spread of
//!   `--source-ips` (127.0.1.1 onwards) and answer PING until the end.
//! - **attackers**: `--attackers` clients from `--attacker-ip` (default 127.0.0.2)
//!   sending one abusive command (`--attack`) at `--rate` per connection after a
//!   `--burst` at the start: the server's own default pace (20 at once, then 4/s), so
//!   nothing they do is over any limit. They read what they get (except `nonreader`
//!   and `slowloris`), counting bytes, and record how the server cut them; with
//!   `--reconnect` a cut attacker registers again (with a new burst) and goes on.
//! - **the canary**: an innocent client from `--canary-ip` (default 127.0.0.3) that
//!   sends `PING <seq>` every `--canary-interval` and times the PONG. It runs on its
//!   own thread with its own runtime, so the attackers' traffic in this process does
//!   not delay its reads. Its pings go round-robin over `--canary-conns` connections
//!   so that each stays under a paced server's 4 commands a second (4 connections at
//!   100 ms = 2.5 PINGs a second each).
//!
//! Phases: setup → attackers register → canary baseline (`--baseline`) → attack
//! (`--duration`) → every attacker disconnects → the canary keeps pinging until its
//! round trip has been under `--recovered-below-ms` for [`RECOVERY_STREAK`] pings in a
//! row ("recovered after X s", to within one canary interval) or `--recovery-limit`
//! passes. A ping not answered within `--lost-after`, or sent on a connection the
//! server then closed, is lost.
//!
//! Setup works against a server with default pacing: every filler sends its lines in
//! groups of [`SETUP_GROUP`], each closed by a PING whose PONG releases the next
//! group, so no filler ever holds more than a few hundred bytes of paced input at the
//! server (its recvq); channels are spread over many fillers, `--channels-per-filler`
//! each (one `JOIN a,b,c…` line creates many), so 100,000 channels take 2,000 fillers
//! and a few seconds.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use palaver_proto::{Frame, LineFramer};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::conn::{self, Conn, READ_CHUNK};
use crate::connect::parse_secs;
use crate::report::{LatencySummary, Output, new_histogram, secs};
use crate::transport::{self, Transport};
use crate::{Error, server_sample};

/// The channel that holds the bans and that `mode-list` asks about.
pub const ABUSE_CHANNEL: &str = "#abuse";
/// Length of the `who-mask` mask: `*`, 200 `a`s and a `b` that no field ends with, the
/// worst case for a backtracking wildcard matcher.
pub const WHO_MASK_LEN: usize = 202;
/// How many `b`s `mode-list` sends: each one asks for the whole ban list.
pub const MODE_LIST_BS: usize = 480;
/// Fast canary pings in a row that count as recovered.
pub const RECOVERY_STREAK: usize = 5;
/// Setup lines a filler sends before waiting for the server to catch up (a PING's
/// PONG): small enough for any recvq, large enough to keep a paced server busy.
pub const SETUP_GROUP: usize = 16;
/// Longest list (channels, nicknames) put into one generated line, in bytes; leaves
/// room for the command and the server's 512-byte line limit.
const LIST_BUDGET: usize = 400;
/// Registrations (and setups) in progress at once.
const CONCURRENCY: usize = 200;
/// Most filler connections one run may open.
pub const MAX_FILLERS: u64 = 200_000;
/// Connections per filler source address (under palaver's default of 100 per IP).
const FILLERS_PER_SOURCE: u64 = 50;
/// How long a non-reading attacker's socket is drained at the end to find out
/// whether (and why) the server cut it.
const DRAIN_LIMIT: Duration = Duration::from_secs(1);
/// A drain stops when nothing has arrived for this long.
const DRAIN_IDLE: Duration = Duration::from_millis(50);
/// Longest cut reason kept (servers may put names and numbers into it).
const REASON_LEN: usize = 80;

/// What the attackers send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Attack {
    /// `WHO *`: every visible user, one line each.
    WhoStar,
    /// `WHO *aaaa…ab` with a 202-byte mask matched against every user's fields.
    WhoMask,
    /// `LIST`: every channel, one line each.
    List,
    /// `LIST >100000`: scans every channel and answers nothing.
    ListFilter,
    /// `MODE #abuse bbbb…` (480 `b`s): the ban list once per `b`.
    ModeList,
    /// `NAMES` of as many of the setup's channels as fit on one line.
    Names,
    /// `MONITOR + <many nicks>`, then `MONITOR C`, in turn.
    Monitor,
    /// `METADATA * SET <new key> :<value>`.
    Metadata,
    /// `JOIN` of a new channel, then `PART` of it, in turn.
    JoinPart,
    /// `NICK` to a new nickname every time.
    Nick,
    /// `OPER admin wrong`: a password check that fails.
    Oper,
    /// One byte of a line at a time (never reads).
    Slowloris,
    /// `WHO *` and `LIST` in turn, never reading the answers.
    Nonreader,
    /// Every other attack, spread over the attackers in turn.
    Mix,
}

impl Attack {
    /// Every attack but `mix`, in the order `mix` hands them out.
    pub const SINGLE: [Attack; 13] = [
        Attack::WhoStar,
        Attack::WhoMask,
        Attack::List,
        Attack::ListFilter,
        Attack::ModeList,
        Attack::Names,
        Attack::Monitor,
        Attack::Metadata,
        Attack::JoinPart,
        Attack::Nick,
        Attack::Oper,
        Attack::Slowloris,
        Attack::Nonreader,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Attack::WhoStar => "who-star",
            Attack::WhoMask => "who-mask",
            Attack::List => "list",
            Attack::ListFilter => "list-filter",
            Attack::ModeList => "mode-list",
            Attack::Names => "names",
            Attack::Monitor => "monitor",
            Attack::Metadata => "metadata",
            Attack::JoinPart => "join-part",
            Attack::Nick => "nick",
            Attack::Oper => "oper",
            Attack::Slowloris => "slowloris",
            Attack::Nonreader => "nonreader",
            Attack::Mix => "mix",
        }
    }

    /// The attack attacker `index` runs (`mix` deals the others out in turn).
    pub fn for_attacker(self, index: usize) -> Attack {
        match self {
            Attack::Mix => Self::SINGLE[index % Self::SINGLE.len()],
            other => other,
        }
    }

    /// Whether the attacker reads what the server sends.
    fn reads(self) -> bool {
        !matches!(self, Attack::Slowloris | Attack::Nonreader)
    }
}

/// Options of `chat-bench abuse`.
#[derive(Debug, Clone, clap::Args)]
pub struct AbuseOpts {
    /// What the attackers send (mix: each attacker one of the others in turn).
    #[arg(long, value_enum, default_value_t = Attack::WhoStar)]
    pub attack: Attack,
    /// Attacking connections.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub attackers: u32,
    /// Loopback source addresses of the attackers, comma separated (used in turn).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.2")]
    pub attacker_ip: Vec<IpAddr>,
    /// Loopback source address of the canary.
    #[arg(long, default_value = "127.0.0.3")]
    pub canary_ip: IpAddr,
    /// Commands per second per attacker after the burst (palaver's default pace is 4).
    #[arg(long, default_value_t = 4.0, value_parser = parse_rate)]
    pub rate: f64,
    /// Commands each attacker sends at once when the attack starts (palaver's
    /// default burst is 20).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub burst: u32,
    /// Attackers the server cuts connect and register again (with a new burst)
    /// until the attack ends, as a determined attacker would.
    #[arg(long)]
    pub reconnect: bool,
    /// Seconds the attack lasts.
    #[arg(long, default_value_t = 10.0, value_parser = parse_secs)]
    pub duration: f64,
    /// Idle registered filler clients to create before the attack.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=200_000))]
    pub users: u32,
    /// Channels to create before the attack (spread over filler clients).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=2_000_000))]
    pub channels: u32,
    /// Give every setup channel a topic.
    #[arg(long)]
    pub topics: bool,
    /// Ban masks a filler sets on #abuse (palaver allows 100 by default).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub bans: u32,
    /// Channels each filler creates (at most the server's channels per client).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub channels_per_filler: u32,
    /// Seconds between canary pings.
    #[arg(long, default_value_t = 0.1, value_parser = parse_interval)]
    pub canary_interval: f64,
    /// Canary connections the pings go over in turn (each must stay under the
    /// server's pace: 4 at 0.1 s is 2.5 PINGs a second each).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub canary_conns: u32,
    /// Seconds the canary pings before the attack starts.
    #[arg(long, default_value_t = 1.0, value_parser = parse_secs)]
    pub baseline: f64,
    /// Seconds after which an unanswered canary ping counts as lost.
    #[arg(long, default_value_t = 10.0, value_parser = parse_secs)]
    pub lost_after: f64,
    /// A canary round trip under this many milliseconds counts towards recovery.
    #[arg(long, default_value_t = 50.0, value_parser = parse_rate)]
    pub recovered_below_ms: f64,
    /// Most seconds to wait for recovery once the attackers are gone.
    #[arg(long, default_value_t = 60.0, value_parser = parse_secs)]
    pub recovery_limit: f64,
    /// Most seconds the whole setup (fillers, channels, topics, bans) may take.
    #[arg(long, default_value_t = 600.0, value_parser = parse_secs)]
    pub setup_timeout: f64,
    /// Seconds each client may take to connect and register.
    #[arg(long, default_value_t = 30.0, value_parser = parse_secs)]
    pub register_timeout: f64,
}

impl AbuseOpts {
    /// Filler clients the setup needs: the users asked for, and enough to create
    /// the channels plus the one that holds #abuse.
    pub fn fillers(&self) -> u64 {
        let for_channels =
            1 + u64::from(self.channels).div_ceil(u64::from(self.channels_per_filler));
        u64::from(self.users).max(for_channels)
    }

    /// Connections the run opens at most.
    pub fn connections(&self) -> u64 {
        self.fillers() + u64::from(self.attackers) + u64::from(self.canary_conns)
    }
}

/// Parses a positive rate (at most 100,000).
fn parse_rate(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if value > 0.0 && value <= 100_000.0 {
        Ok(value)
    } else {
        Err("must be above 0 and at most 100000".to_owned())
    }
}

/// Parses a canary interval: 1 ms to 10 s.
fn parse_interval(text: &str) -> Result<f64, String> {
    let value = parse_secs(text)?;
    if (0.001..=10.0).contains(&value) {
        Ok(value)
    } else {
        Err("must be between 0.001 and 10 seconds".to_owned())
    }
}

/// What `chat-bench abuse` measured.
#[derive(Debug, Clone, Serialize)]
pub struct AbuseReport {
    /// Always `"abuse"`.
    pub mode: &'static str,
    /// The server loaded.
    pub target: String,
    /// What the connections travel over: always `plain` (the attacks work on the
    /// TCP socket itself; `--tls` and `--websocket` are refused).
    pub transport: &'static str,
    /// The attack run.
    pub attack: Attack,
    /// What the setup created.
    pub setup: SetupStats,
    /// What the attackers did and what happened to them.
    pub attackers: AttackerStats,
    /// What the canary measured.
    pub canary: CanaryStats,
    /// Server measurements (with `--server-pid`).
    pub server: Option<AbuseServerStats>,
}

/// What the setup created before the attack.
#[derive(Debug, Clone, Serialize)]
pub struct SetupStats {
    /// Idle users asked for.
    pub users: u32,
    /// Channels created.
    pub channels: u32,
    /// Whether every channel got a topic.
    pub topics: bool,
    /// Bans set on #abuse.
    pub bans: u32,
    /// Filler connections opened (users, channel creators, the #abuse holder).
    pub fillers: u64,
    /// Seconds the setup took.
    pub elapsed_s: f64,
    /// Fillers the server disconnected during the run.
    pub fillers_dropped: u64,
}

/// The attackers' side of the run.
#[derive(Debug, Clone, Serialize)]
pub struct AttackerStats {
    /// Attackers asked for.
    pub requested: u32,
    /// Attackers that registered (the rest are in `refused`).
    pub registered: u64,
    /// Failed registrations by kind (`connect`, `refused`, `timeout`, ...).
    pub refused: BTreeMap<&'static str, u64>,
    /// Up to five registration failure messages.
    pub refused_examples: Vec<String>,
    /// Their source addresses.
    pub sources: Vec<String>,
    /// Commands per second per attacker after the burst.
    pub rate: f64,
    /// Commands per attacker at once at the start.
    pub burst: u32,
    /// Whether cut attackers registered again (`--reconnect`).
    pub reconnect: bool,
    /// Seconds the attack lasted.
    pub duration_s: f64,
    /// Commands (for slowloris: bytes) sent in all.
    pub commands_sent: u64,
    /// Bytes received by the reading attackers (and drained from the others at the end).
    pub bytes_received: u64,
    /// Lines received.
    pub lines_received: u64,
    /// Attackers the server disconnected (at least once) during the attack.
    pub cut: u64,
    /// Disconnections in all (more than `cut` with `--reconnect`).
    pub cuts: u64,
    /// Disconnections by reason: the server's `ERROR` text, or how the connection
    /// ended.
    pub cut_by_reason: BTreeMap<String, u64>,
    /// Registrations again after a cut (`--reconnect`).
    pub reconnects: u64,
    /// Attackers that could not register again (`--reconnect`).
    pub reconnects_failed: u64,
    /// Seconds into the attack of the first cut.
    pub first_cut_s: Option<f64>,
}

/// The canary's measurements.
#[derive(Debug, Clone, Serialize)]
pub struct CanaryStats {
    /// Its source address.
    pub source: String,
    /// Connections its pings go over.
    pub conns: u32,
    /// Milliseconds between pings.
    pub interval_ms: f64,
    /// Round trips before the attack.
    pub baseline: LatencySummary,
    /// Round trips of pings sent during the attack.
    pub attack: LatencySummary,
    /// Pings sent during the attack.
    pub attack_sent: u64,
    /// Of those, lost (no PONG within `--lost-after`, or the connection dropped).
    pub attack_lost: u64,
    /// Round trips of pings sent after the attackers left.
    pub after: LatencySummary,
    /// Pings after the attackers left that were lost.
    pub after_lost: u64,
    /// Seconds from the last attacker's disconnect to the first of
    /// [`RECOVERY_STREAK`] pings in a row under the threshold; `None`: not within
    /// `--recovery-limit`.
    pub recovered_after_s: Option<f64>,
    /// The threshold, milliseconds.
    pub recovered_below_ms: f64,
    /// `--recovery-limit`, seconds.
    pub recovery_limit_s: f64,
    /// Canary connections the server closed.
    pub disconnected: u32,
}

/// What the server spent (from `/proc/<pid>`).
#[derive(Debug, Clone, Serialize)]
pub struct AbuseServerStats {
    /// The server's process id.
    pub pid: u32,
    /// CPU seconds (user + system) from the start of the attack to the last
    /// attacker's disconnect (10 ms ticks).
    pub cpu_s_attack: f64,
    /// CPU seconds from then to the end of the canary's measurements.
    pub cpu_s_after: f64,
    /// VmRSS before the attack.
    pub rss_before_bytes: u64,
    /// Largest VmRSS seen (sampled every 200 ms) during the attack and after.
    pub rss_peak_bytes: u64,
    /// VmRSS at the end.
    pub rss_after_bytes: u64,
}

/// Runs the abuse scenario against `target`.
pub async fn run(
    target: SocketAddr,
    opts: &AbuseOpts,
    server_pid: Option<u32>,
    output: Output,
) -> Result<AbuseReport, Error> {
    if transport::current() != Transport::Plain {
        return Err(Error::Options(format!(
            "the abuse scenario works on plain TCP only (not {}): drop --tls and --websocket",
            transport::current().name()
        )));
    }
    check(target, opts)?;
    let run = conn::run_id();
    let abort = CancellationToken::new();
    // Whatever happens, the canary thread and every holder stop with this run.
    let _stop_all = abort.clone().drop_guard();

    // Setup: fillers (channels, topics, bans).
    let setup = setup(target, opts, &run, output, &abort).await?;

    // Attackers register and wait.
    let (attackers, refused, refused_examples) = register_attackers(target, opts, &run).await;

    // The canary, on its own thread.
    let (gone_tx, gone_rx) = watch::channel(None);
    let (ready_tx, ready_rx) = oneshot::channel();
    let (result_tx, result_rx) = oneshot::channel();
    let plan = CanaryPlan {
        target,
        source: opts.canary_ip,
        conns: opts.canary_conns as usize,
        interval: Duration::from_secs_f64(opts.canary_interval),
        lost_after: Duration::from_secs_f64(opts.lost_after),
        threshold: Duration::from_secs_f64(opts.recovered_below_ms / 1000.0),
        recovery_limit: Duration::from_secs_f64(opts.recovery_limit),
        register_limit: Duration::from_secs_f64(opts.register_timeout),
        run: run.clone(),
    };
    let canary_abort = abort.clone();
    let thread = std::thread::Builder::new()
        .name("canary".to_owned())
        .spawn(move || canary_thread(plan, ready_tx, gone_rx, canary_abort, result_tx))
        .map_err(|e| Error::Setup(format!("starting the canary thread: {e}")))?;
    match ready_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(Error::Setup(format!("canary: {e}"))),
        Err(_) => return Err(Error::Setup("the canary thread ended".to_owned())),
    }
    tokio::time::sleep(Duration::from_secs_f64(opts.baseline)).await;

    // The attack.
    let before = server_sample(server_pid)?;
    let peak = Arc::new(AtomicU64::new(before.map_or(0, |s| s.rss_bytes)));
    let sampler = server_pid.map(|pid| tokio::spawn(sample_rss(pid, peak.clone(), abort.clone())));
    let bar = output.progress((opts.duration * 10.0) as u64, "attack");
    let ctx = Arc::new(AttackCtx {
        run: run.clone(),
        channels: setup.channels.clone(),
        nicks: setup.nicks.clone(),
        mask: format!("*{}b", "a".repeat(WHO_MASK_LEN - 2)),
        mode_query: format!("{ABUSE_CHANNEL} {}", "b".repeat(MODE_LIST_BS)),
    });
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(opts.duration);
    let pace = Pace {
        period: Duration::from_secs_f64(1.0 / opts.rate),
        burst: opts.burst,
        start,
        end,
    };
    let mut tasks = JoinSet::new();
    for (index, conn) in attackers {
        let kind = opts.attack.for_attacker(index);
        let who = Identity {
            target,
            source: opts.attacker_ip[index % opts.attacker_ip.len()],
            nick: format!("a{run}{index}"),
            limit: Duration::from_secs_f64(opts.register_timeout),
            reconnect: opts.reconnect,
        };
        tasks.spawn(attack(conn, kind, index, ctx.clone(), pace, who));
    }
    let registered = tasks.len() as u64;
    let mut outcomes = Vec::with_capacity(tasks.len());
    let collect = async {
        while let Some(joined) = tasks.join_next().await {
            if let Ok(outcome) = joined {
                outcomes.push(outcome);
            }
        }
    };
    let ticker = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            bar.inc(1);
        }
    };
    // Every task ends at `end` plus at most the drain; bound the wait anyway.
    let limit = Duration::from_secs_f64(opts.duration) + DRAIN_LIMIT + Duration::from_secs(10);
    tokio::select! {
        _ = tokio::time::timeout(limit, collect) => {}
        _ = ticker => {}
    }
    // Dropping unfinished tasks closes their sockets too.
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let gone = Instant::now();
    bar.finish_and_clear();
    let at_gone = server_sample(server_pid)?;
    // The canary's thread sees the attackers leave (a send fails only if it ended).
    let _ = gone_tx.send(Some(gone));

    let wait =
        Duration::from_secs_f64(opts.recovery_limit + opts.lost_after) + Duration::from_secs(10);
    let canary = match tokio::time::timeout(wait, result_rx).await {
        Ok(Ok(Ok(outcome))) => outcome,
        Ok(Ok(Err(e))) => return Err(Error::Run(format!("canary: {e}"))),
        Ok(Err(_)) => return Err(Error::Run("the canary thread ended early".to_owned())),
        Err(_) => return Err(Error::Run("the canary did not finish in time".to_owned())),
    };
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    let after = server_sample(server_pid)?;
    abort.cancel();
    if let Some(sampler) = sampler {
        let _ = sampler.await;
    }
    let (filler_count, setup_elapsed) = (setup.count, setup.elapsed);
    let fillers_dropped = setup.release().await;

    let server = match (server_pid, before, at_gone, after) {
        (Some(pid), Some(before), Some(at_gone), Some(after)) => Some(AbuseServerStats {
            pid,
            cpu_s_attack: before.cpu_micros_until(&at_gone) as f64 / 1e6,
            cpu_s_after: at_gone.cpu_micros_until(&after) as f64 / 1e6,
            rss_before_bytes: before.rss_bytes,
            rss_peak_bytes: peak
                .load(Ordering::Relaxed)
                .max(at_gone.rss_bytes)
                .max(after.rss_bytes),
            rss_after_bytes: after.rss_bytes,
        }),
        _ => None,
    };
    Ok(AbuseReport {
        mode: "abuse",
        target: target.to_string(),
        transport: Transport::Plain.name(),
        attack: opts.attack,
        setup: SetupStats {
            users: opts.users,
            channels: opts.channels,
            topics: opts.topics,
            bans: opts.bans,
            fillers: filler_count,
            elapsed_s: secs(setup_elapsed),
            fillers_dropped,
        },
        attackers: attacker_stats(opts, registered, refused, refused_examples, &outcomes),
        canary: canary_stats(opts, &canary, start, gone),
        server,
    })
}

/// Refuses options that cannot work before any connection is made.
fn check(target: SocketAddr, opts: &AbuseOpts) -> Result<(), Error> {
    if !target.is_ipv4() {
        return Err(Error::Options(
            "abuse needs an IPv4 target: its clients come from chosen 127.x.y.z addresses"
                .to_owned(),
        ));
    }
    if opts.attacker_ip.is_empty() {
        return Err(Error::Options("--attacker-ip needs an address".to_owned()));
    }
    for ip in opts.attacker_ip.iter().chain([&opts.canary_ip]) {
        if !ip.is_ipv4() || !ip.is_loopback() {
            return Err(Error::Options(format!(
                "{ip} is not an IPv4 loopback address (127.0.0.0/8)"
            )));
        }
    }
    if opts.attacker_ip.contains(&opts.canary_ip) {
        return Err(Error::Options(format!(
            "the canary ({}) must not share an address with the attackers",
            opts.canary_ip
        )));
    }
    if opts.fillers() > MAX_FILLERS {
        return Err(Error::Options(format!(
            "{} filler clients is more than {MAX_FILLERS}: raise --channels-per-filler",
            opts.fillers()
        )));
    }
    Ok(())
}

/// The fillers after setup, idling in their own tasks.
struct Setup {
    count: u64,
    channels: Arc<Vec<String>>,
    nicks: Arc<Vec<String>>,
    elapsed: Duration,
    release: CancellationToken,
    holders: JoinSet<bool>,
}

impl Setup {
    /// Lets the fillers go; returns how many the server had disconnected.
    async fn release(mut self) -> u64 {
        self.release.cancel();
        let mut dropped = 0;
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(joined) = self.holders.join_next().await {
                if matches!(joined, Ok(true)) {
                    dropped += 1;
                }
            }
        })
        .await;
        dropped
    }
}

/// What one filler does during setup: its channels (with topics) or #abuse and bans.
struct FillerPlan {
    nick: String,
    lines: Vec<Bytes>,
}

/// Builds every filler's setup lines.
fn filler_plans(opts: &AbuseOpts, run: &str) -> (Vec<FillerPlan>, Vec<String>) {
    let count = opts.fillers();
    let channels: Vec<String> = (0..opts.channels).map(|n| format!("#{run}{n}")).collect();
    let mut plans = Vec::with_capacity(count as usize);
    for i in 0..count {
        let mut lines = Vec::new();
        if i == 0 {
            // The holder of #abuse: creating it makes it the operator.
            lines.push(conn::line("JOIN", &[ABUSE_CHANNEL], None));
            let masks: Vec<String> = (0..opts.bans)
                .map(|n| format!("ban{n}!*@*.example"))
                .collect();
            for four in masks.chunks(4) {
                let modes = format!("+{}", "b".repeat(four.len()));
                let mut params: Vec<&str> = vec![ABUSE_CHANNEL, &modes];
                params.extend(four.iter().map(String::as_str));
                lines.push(conn::line("MODE", &params, None));
            }
        } else {
            // Spread evenly over every filler but the holder (never more than
            // --channels-per-filler each), so that topics finish sooner.
            let per = channels
                .len()
                .div_ceil(count.saturating_sub(1).max(1) as usize);
            let first = (i as usize - 1) * per;
            let mine = channels
                .get(first..(first + per).min(channels.len()))
                .unwrap_or_default();
            for group in list_lines(mine) {
                lines.push(conn::line("JOIN", &[&group], None));
            }
            if opts.topics {
                for name in mine {
                    lines.push(conn::line(
                        "TOPIC",
                        &[name],
                        Some(&format!(
                            "chat-bench filler topic for {name}, about nothing much"
                        )),
                    ));
                }
            }
        }
        plans.push(FillerPlan {
            nick: format!("f{run}{i}"),
            lines,
        });
    }
    (plans, channels)
}

/// Joins `items` with commas into lists of at most [`LIST_BUDGET`] bytes.
fn list_lines(items: &[String]) -> Vec<String> {
    let mut lists = Vec::new();
    let mut current = String::new();
    for item in items {
        if !current.is_empty() && current.len() + 1 + item.len() > LIST_BUDGET {
            lists.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(',');
        }
        current.push_str(item);
    }
    if !current.is_empty() {
        lists.push(current);
    }
    lists
}

/// Registers the fillers and runs their setup lines; fails on any error reply.
async fn setup(
    target: SocketAddr,
    opts: &AbuseOpts,
    run: &str,
    output: Output,
    abort: &CancellationToken,
) -> Result<Setup, Error> {
    let start = Instant::now();
    let (plans, channels) = filler_plans(opts, run);
    let count = plans.len() as u64;
    // The server's per-IP limit must not refuse fillers: enough source addresses.
    let sources = count
        .div_ceil(FILLERS_PER_SOURCE)
        .min(u64::from(conn::MAX_SOURCE_IPS)) as u32;
    if sources > conn::source_ips() {
        conn::spread_sources(sources);
    }
    let nicks: Vec<String> = plans.iter().map(|p| p.nick.clone()).collect();
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let limit = Duration::from_secs_f64(opts.register_timeout);
    let mut tasks = JoinSet::new();
    for plan in plans {
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .map_err(|_| "setup stopped".to_owned())?;
            let registered = conn::register(target, &plan.nick, limit)
                .await
                .map_err(|e| format!("filler {}: {e}", plan.nick))?;
            let mut conn = registered.conn;
            pipeline(&mut conn, &plan.lines, &registered.nick).await?;
            Ok::<Conn, String>(conn)
        });
    }
    let bar = output.progress(count, "setup");
    let mut conns = Vec::with_capacity(count as usize);
    let budget = Duration::from_secs_f64(opts.setup_timeout);
    let done = tokio::time::timeout(budget, async {
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(conn)) => conns.push(conn),
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(format!("a filler task failed: {e}")),
            }
            bar.inc(1);
        }
        Ok(())
    })
    .await;
    bar.finish_and_clear();
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(Error::Setup(e)),
        Err(_) => {
            return Err(Error::Setup(format!(
                "{} of {count} fillers done after --setup-timeout {} s",
                conns.len(),
                opts.setup_timeout
            )));
        }
    }
    let elapsed = start.elapsed();
    let release = abort.child_token();
    let mut holders = JoinSet::new();
    for conn in conns {
        holders.spawn(hold(conn, release.clone()));
    }
    Ok(Setup {
        count,
        channels: Arc::new(channels),
        nicks: Arc::new(nicks),
        elapsed,
        release,
        holders,
    })
}

/// Sends `lines` in groups of [`SETUP_GROUP`], each followed by a PING whose PONG
/// must come back before the next group; any error numeric (4xx, 5xx) or ERROR
/// fails the setup, since the attack would then measure something else.
async fn pipeline(conn: &mut Conn, lines: &[Bytes], nick: &str) -> Result<(), String> {
    for (group, chunk) in lines.chunks(SETUP_GROUP).enumerate() {
        let token = format!("setup{group}");
        let mut out = BytesMut::new();
        for line in chunk {
            out.extend_from_slice(line);
        }
        out.extend_from_slice(&conn::line("PING", &[&token], None));
        conn.send(&out).await.map_err(|e| format!("{nick}: {e}"))?;
        loop {
            let raw = conn
                .next_line()
                .await
                .map_err(|e| format!("{nick}: {e}"))?
                .ok_or_else(|| format!("{nick}: disconnected during setup"))?;
            let Some(msg) = conn::parse(&raw) else {
                continue;
            };
            let command = msg.command();
            match command {
                "PONG" if msg.params().last() == Some(&token.as_str()) => break,
                "PING" => conn
                    .send(&conn::pong(&msg))
                    .await
                    .map_err(|e| format!("{nick}: {e}"))?,
                "ERROR" => {
                    return Err(format!(
                        "{nick}: the server closed the link: {}",
                        msg.params().last().copied().unwrap_or_default()
                    ));
                }
                _ if command.len() == 3 && command.starts_with(['4', '5']) => {
                    return Err(format!(
                        "{nick}: the server refused a setup line: {command} {} (for many channels, check the server's channels per client against --channels-per-filler, and its ban list size against --bans)",
                        msg.params().get(1..).unwrap_or_default().join(" ")
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Keeps an idle client registered until `release`: answers PING, discards the
/// rest. Returns whether the server disconnected it first.
async fn hold(mut conn: Conn, release: CancellationToken) -> bool {
    loop {
        tokio::select! {
            biased;
            _ = release.cancelled() => return false,
            line = conn.next_line() => match line {
                Ok(Some(raw)) => {
                    let pong = conn::parse(&raw)
                        .filter(|m| m.command() == "PING")
                        .map(|m| conn::pong(&m));
                    if let Some(pong) = pong
                        && conn.send(&pong).await.is_err()
                    {
                        return true;
                    }
                }
                Ok(None) | Err(_) => return true,
            }
        }
    }
}

/// Registers the attackers from their source addresses; failures are results (a
/// per-IP limit doing its job), not errors.
async fn register_attackers(
    target: SocketAddr,
    opts: &AbuseOpts,
    run: &str,
) -> (Vec<(usize, Conn)>, BTreeMap<&'static str, u64>, Vec<String>) {
    let limit = Duration::from_secs_f64(opts.register_timeout);
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    for index in 0..opts.attackers as usize {
        let source = opts.attacker_ip[index % opts.attacker_ip.len()];
        let nick = format!("a{run}{index}");
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let result = conn::register_from(target, Some(source), &nick, limit).await;
            (index, result)
        });
    }
    let mut conns = Vec::new();
    let mut refused = BTreeMap::new();
    let mut examples = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, Ok(registered))) => conns.push((index, registered.conn)),
            Ok((_, Err(e))) => {
                *refused.entry(e.kind()).or_insert(0) += 1;
                if examples.len() < 5 {
                    examples.push(e.to_string());
                }
            }
            Err(e) => {
                *refused.entry("task").or_insert(0) += 1;
                if examples.len() < 5 {
                    examples.push(e.to_string());
                }
            }
        }
    }
    conns.sort_by_key(|(index, _)| *index);
    (conns, refused, examples)
}

/// What the attack lines are made from.
struct AttackCtx {
    run: String,
    channels: Arc<Vec<String>>,
    nicks: Arc<Vec<String>>,
    mask: String,
    mode_query: String,
}

impl AttackCtx {
    /// Command number `n` of attacker `index` running `kind` (not slowloris).
    fn command(&self, kind: Attack, index: usize, n: u64) -> Bytes {
        match kind {
            Attack::WhoStar => conn::line("WHO", &["*"], None),
            Attack::WhoMask => conn::line("WHO", &[&self.mask], None),
            Attack::List => conn::line("LIST", &[], None),
            Attack::ListFilter => conn::line("LIST", &[">100000"], None),
            Attack::ModeList => {
                let mut line = BytesMut::with_capacity(self.mode_query.len() + 7);
                line.extend_from_slice(b"MODE ");
                line.extend_from_slice(self.mode_query.as_bytes());
                line.extend_from_slice(b"\r\n");
                line.freeze()
            }
            Attack::Names => {
                let offset = index.wrapping_mul(131).wrapping_add(n as usize * 37);
                let list = self.rotating_list(&self.channels, offset, ABUSE_CHANNEL);
                conn::line("NAMES", &[&list], None)
            }
            Attack::Monitor if n.is_multiple_of(2) => {
                let offset = index.wrapping_mul(131).wrapping_add(n as usize * 37);
                let list = self.rotating_list(&self.nicks, offset, "nobody");
                conn::line("MONITOR", &["+", &list], None)
            }
            Attack::Monitor => conn::line("MONITOR", &["C"], None),
            Attack::Metadata => conn::line(
                "METADATA",
                &["*", "SET", &format!("k{index}x{n}")],
                Some(&format!("value {n}")),
            ),
            Attack::JoinPart => {
                let name = format!("#{}j{index}x{}", self.run, n / 2);
                let command = if n.is_multiple_of(2) { "JOIN" } else { "PART" };
                conn::line(command, &[&name], None)
            }
            Attack::Nick => conn::line("NICK", &[&format!("n{}{index}x{n}", self.run)], None),
            Attack::Oper => conn::line("OPER", &["admin", "wrong"], None),
            Attack::Nonreader if n.is_multiple_of(2) => conn::line("WHO", &["*"], None),
            Attack::Nonreader => conn::line("LIST", &[], None),
            Attack::Slowloris | Attack::Mix => slowloris_bytes(n, 1),
        }
    }

    /// As many of `items` as fit in one list, starting at `offset`; `empty` if none.
    fn rotating_list(&self, items: &[String], offset: usize, empty: &str) -> String {
        if items.is_empty() {
            return empty.to_owned();
        }
        let mut list = String::new();
        for k in 0..items.len() {
            let item = &items[(offset + k) % items.len()];
            if !list.is_empty() && list.len() + 1 + item.len() > LIST_BUDGET {
                break;
            }
            if !list.is_empty() {
                list.push(',');
            }
            list.push_str(item);
        }
        list
    }
}

/// The line slowloris dribbles, one byte a command: a channel message that is
/// complete only every 402 bytes.
const SLOWLORIS_LINE: &[u8] = b"PRIVMSG #abuse :slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly slowly\r\n";

/// `count` bytes of slowloris from byte `n` on.
fn slowloris_bytes(n: u64, count: usize) -> Bytes {
    let len = SLOWLORIS_LINE.len() as u64;
    (0..count as u64)
        .map(|k| SLOWLORIS_LINE[((n + k) % len) as usize])
        .collect::<Vec<u8>>()
        .into()
}

/// When attackers send.
#[derive(Debug, Clone, Copy)]
struct Pace {
    period: Duration,
    burst: u32,
    start: Instant,
    end: Instant,
}

/// What one attacker did and how it ended.
#[derive(Debug, Default)]
struct AttackerOutcome {
    sent: u64,
    bytes: u64,
    lines: u64,
    /// Why the server cut it, each time it did.
    cuts: Vec<String>,
    cut_at: Option<Duration>,
    /// Times it registered again after a cut (`--reconnect`).
    reconnects: u64,
    /// Whether registering again failed.
    reconnect_failed: bool,
}

/// Who an attacker is, to register again after a cut.
#[derive(Debug, Clone)]
struct Identity {
    target: SocketAddr,
    source: IpAddr,
    nick: String,
    limit: Duration,
    reconnect: bool,
}

/// One attacker: sessions until `end`, registering again after a cut with
/// `--reconnect` (a new connection gets a new burst, as the server allows).
async fn attack(
    first: Conn,
    kind: Attack,
    index: usize,
    ctx: Arc<AttackCtx>,
    pace: Pace,
    who: Identity,
) -> AttackerOutcome {
    let mut out = AttackerOutcome::default();
    let mut n = 0;
    let mut conn = first;
    tokio::time::sleep_until(pace.start.into()).await;
    loop {
        let Some(reason) = session(conn, kind, index, &ctx, pace, &mut n, &mut out).await else {
            break;
        };
        out.cuts.push(reason);
        out.cut_at.get_or_insert(pace.start.elapsed());
        if !who.reconnect || Instant::now() >= pace.end {
            break;
        }
        let again = conn::register_from(who.target, Some(who.source), &who.nick, who.limit);
        match tokio::time::timeout_at(pace.end.into(), again).await {
            Ok(Ok(registered)) => {
                out.reconnects += 1;
                conn = registered.conn;
            }
            Ok(Err(_)) => {
                out.reconnect_failed = true;
                break;
            }
            Err(_) => break,
        }
    }
    out
}

/// One connection of an attacker: the burst, then one command per period until
/// `end`, reading (for the reading kinds) and noting an `ERROR`. Returns why the
/// server cut it, or `None` if it lasted to the end.
async fn session(
    conn: Conn,
    kind: Attack,
    index: usize,
    ctx: &AttackCtx,
    pace: Pace,
    n: &mut u64,
    out: &mut AttackerOutcome,
) -> Option<String> {
    let (stream, mut buf, mut framer) = conn.into_parts();
    let mut stream = match stream.into_tcp() {
        Ok(tcp) => tcp,
        Err(e) => return Some(e.to_string()),
    };
    let mut error_reason: Option<String> = None;
    let mut replies = BytesMut::new();
    scan(&mut buf, &mut framer, out, &mut error_reason, &mut replies);
    // The burst, in one write.
    let mut first = BytesMut::new();
    if kind == Attack::Slowloris {
        first.extend_from_slice(&slowloris_bytes(*n, pace.burst as usize));
    } else {
        for k in 0..u64::from(pace.burst) {
            first.extend_from_slice(&ctx.command(kind, index, *n + k));
        }
    }
    *n += u64::from(pace.burst);
    let mut next = Instant::now() + pace.period;
    let mut ended: Option<String> = None;
    if !first.is_empty() {
        match tokio::time::timeout_at(pace.end.into(), stream.write_all(&first)).await {
            Ok(Ok(())) => out.sent += u64::from(pace.burst),
            Ok(Err(e)) => ended = Some(io_reason("write", &e)),
            Err(_) => {}
        }
    }
    let reads = kind.reads();
    while ended.is_none() && Instant::now() < pace.end {
        if !replies.is_empty() {
            let pongs = replies.split().freeze();
            if let Err(e) = stream.write_all(&pongs).await {
                ended = Some(io_reason("write", &e));
                break;
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(READ_CHUNK);
        }
        tokio::select! {
            biased;
            _ = tokio::time::sleep_until(next.into()), if next < pace.end => {
                let line = if kind == Attack::Slowloris {
                    slowloris_bytes(*n, 1)
                } else {
                    ctx.command(kind, index, *n)
                };
                match tokio::time::timeout_at(pace.end.into(), stream.write_all(&line)).await {
                    Ok(Ok(())) => out.sent += 1,
                    Ok(Err(e)) => ended = Some(io_reason("write", &e)),
                    Err(_) => {}
                }
                *n += 1;
                next += pace.period;
            }
            read = stream.read_buf(&mut buf), if reads => match read {
                Ok(0) => ended = Some(String::new()),
                Ok(read) => {
                    out.bytes += read as u64;
                    scan(&mut buf, &mut framer, out, &mut error_reason, &mut replies);
                }
                Err(e) => ended = Some(io_reason("read", &e)),
            },
            _ = tokio::time::sleep_until(pace.end.into()) => {}
        }
    }
    if !reads {
        // Find out whether the server had cut it: what it sent, up to the close
        // (stopping once nothing more comes for a moment, or at the limit).
        let drain_end = Instant::now() + DRAIN_LIMIT;
        loop {
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(READ_CHUNK);
            }
            let idle_end = drain_end.min(Instant::now() + DRAIN_IDLE);
            match tokio::time::timeout_at(idle_end.into(), stream.read_buf(&mut buf)).await {
                Ok(Ok(0)) => {
                    if ended.is_none() || ended.as_deref().is_some_and(|e| e.contains("pipe")) {
                        ended = Some(String::new());
                    }
                    break;
                }
                Ok(Ok(read)) => {
                    out.bytes += read as u64;
                    let mut ignored = BytesMut::new();
                    scan(&mut buf, &mut framer, out, &mut error_reason, &mut ignored);
                }
                Ok(Err(e)) => {
                    if ended.is_none() {
                        ended = Some(io_reason("read", &e));
                    }
                    break;
                }
                Err(_) => break,
            }
        }
    }
    ended.map(|how| match error_reason {
        Some(reason) => reason,
        None if how.is_empty() => "closed without ERROR".to_owned(),
        None => how,
    })
}

/// Frames what `buf` holds: counts lines, keeps the last `ERROR` reason and queues
/// PONGs for server PINGs in `replies`.
fn scan(
    buf: &mut BytesMut,
    framer: &mut LineFramer,
    out: &mut AttackerOutcome,
    error_reason: &mut Option<String>,
    replies: &mut BytesMut,
) {
    while let Some(frame) = framer.next_frame(buf) {
        let Frame::Line(line) = frame else {
            out.lines += 1;
            continue;
        };
        out.lines += 1;
        let command = command_of(&line);
        if command != b"PING" && command != b"ERROR" {
            continue;
        }
        let Some(msg) = conn::parse(&line) else {
            continue;
        };
        if msg.command() == "PING" {
            replies.extend_from_slice(&conn::pong(&msg));
        } else {
            let reason = msg.params().last().copied().unwrap_or_default();
            *error_reason = Some(reason.chars().take(REASON_LEN).collect());
        }
    }
}

/// The command word of a raw line (after tags and source), without parsing it all.
fn command_of(line: &[u8]) -> &[u8] {
    let mut rest = line;
    for marker in [b'@', b':'] {
        if rest.first() == Some(&marker) {
            let space = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
            rest = rest.get(space + 1..).unwrap_or_default();
        }
    }
    let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    &rest[..end]
}

/// A short reason for an I/O error that ended an attacker (a server that aborts a
/// connection resets it, and the kernel then discards what was not yet read,
/// `ERROR` line included).
fn io_reason(what: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionReset => "reset without ERROR".to_owned(),
        std::io::ErrorKind::BrokenPipe => "broken pipe without ERROR".to_owned(),
        kind => format!("{what} error: {kind:?}"),
    }
}

/// Records the largest RSS of `pid` every 200 ms until `stop`.
async fn sample_rss(pid: u32, peak: Arc<AtomicU64>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        if let Ok(sample) = crate::procstat::sample(pid) {
            peak.fetch_max(sample.rss_bytes, Ordering::Relaxed);
        }
    }
}

fn attacker_stats(
    opts: &AbuseOpts,
    registered: u64,
    refused: BTreeMap<&'static str, u64>,
    refused_examples: Vec<String>,
    outcomes: &[AttackerOutcome],
) -> AttackerStats {
    let mut cut_by_reason = BTreeMap::new();
    for reason in outcomes.iter().flat_map(|o| &o.cuts) {
        *cut_by_reason.entry(reason.clone()).or_insert(0) += 1;
    }
    AttackerStats {
        requested: opts.attackers,
        registered,
        refused,
        refused_examples,
        sources: opts.attacker_ip.iter().map(IpAddr::to_string).collect(),
        rate: opts.rate,
        burst: opts.burst,
        reconnect: opts.reconnect,
        duration_s: opts.duration,
        commands_sent: outcomes.iter().map(|o| o.sent).sum(),
        bytes_received: outcomes.iter().map(|o| o.bytes).sum(),
        lines_received: outcomes.iter().map(|o| o.lines).sum(),
        cut: outcomes.iter().filter(|o| !o.cuts.is_empty()).count() as u64,
        cuts: outcomes.iter().map(|o| o.cuts.len() as u64).sum(),
        cut_by_reason,
        reconnects: outcomes.iter().map(|o| o.reconnects).sum(),
        reconnects_failed: outcomes.iter().filter(|o| o.reconnect_failed).count() as u64,
        first_cut_s: outcomes.iter().filter_map(|o| o.cut_at).min().map(secs),
    }
}

/// One canary ping.
#[derive(Debug, Clone, Copy)]
struct PingRecord {
    sent_at: Instant,
    conn: usize,
    /// Round trip, once the PONG came.
    rtt: Option<Duration>,
    /// The connection it went over was closed before the PONG.
    dropped: bool,
}

/// What the canary thread needs.
struct CanaryPlan {
    target: SocketAddr,
    source: IpAddr,
    conns: usize,
    interval: Duration,
    lost_after: Duration,
    threshold: Duration,
    recovery_limit: Duration,
    register_limit: Duration,
    run: String,
}

/// What the canary thread found.
#[derive(Debug)]
struct CanaryOutcome {
    records: Vec<PingRecord>,
    disconnected: u32,
}

/// The canary's thread: its own single-threaded runtime, so its round trips are not
/// delayed by the attackers' reads in the main runtime.
fn canary_thread(
    plan: CanaryPlan,
    ready: oneshot::Sender<Result<(), String>>,
    gone: watch::Receiver<Option<Instant>>,
    abort: CancellationToken,
    result: oneshot::Sender<Result<CanaryOutcome, String>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(format!("building its runtime: {e}")));
            return;
        }
    };
    let outcome = runtime.block_on(canary(plan, ready, gone, abort));
    let _ = result.send(outcome);
}

/// What a canary connection's reader reports.
enum CanaryEvent {
    /// A PONG for ping `seq` arrived at this instant.
    Pong(u64, Instant),
    /// The server pinged: send this answer on connection `usize`.
    Ping(usize, Bytes),
    /// Connection `usize` was closed.
    Closed(usize),
}

async fn canary(
    plan: CanaryPlan,
    ready: oneshot::Sender<Result<(), String>>,
    mut gone_rx: watch::Receiver<Option<Instant>>,
    abort: CancellationToken,
) -> Result<CanaryOutcome, String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut writers: Vec<Option<OwnedWriteHalf>> = Vec::with_capacity(plan.conns);
    let mut readers = JoinSet::new();
    for i in 0..plan.conns {
        let nick = format!("c{}{i}", plan.run);
        let registered =
            match conn::register_from(plan.target, Some(plan.source), &nick, plan.register_limit)
                .await
            {
                Ok(registered) => registered,
                Err(e) => {
                    let message = format!("{nick} from {}: {e}", plan.source);
                    let _ = ready.send(Err(message.clone()));
                    return Err(message);
                }
            };
        let (stream, buf, framer) = registered.conn.into_parts();
        let stream: TcpStream = stream.into_tcp().map_err(|e| e.to_string())?;
        let (read, write) = stream.into_split();
        readers.spawn(canary_reader(i, read, buf, framer, tx.clone()));
        writers.push(Some(write));
    }
    drop(tx);
    let _ = ready.send(Ok(()));

    let mut records: Vec<PingRecord> = Vec::new();
    let mut disconnected = 0;
    let mut ticker = tokio::time::interval(plan.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_conn = 0usize;
    let mut gone: Option<Instant> = None;
    let mut sending = true;
    loop {
        if let Some(gone) = gone
            && sending
            && (recovered_at(&records, gone, plan.threshold).is_some()
                || gone.elapsed() >= plan.recovery_limit)
        {
            sending = false;
        }
        if !sending {
            // Wait for the pings still out, each up to its own lost deadline.
            let waiting = records
                .iter()
                .filter(|r| r.rtt.is_none() && !r.dropped)
                .map(|r| r.sent_at + plan.lost_after)
                .max();
            match waiting {
                Some(deadline) if deadline > Instant::now() => {
                    match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                        Ok(Some(event)) => {
                            handle(event, &mut records, &mut writers, &mut disconnected).await;
                        }
                        Ok(None) | Err(_) => break,
                    }
                    continue;
                }
                _ => break,
            }
        }
        if writers.iter().all(Option::is_none) {
            break;
        }
        tokio::select! {
            biased;
            _ = abort.cancelled() => return Err("stopped".to_owned()),
            event = rx.recv() => match event {
                Some(event) => handle(event, &mut records, &mut writers, &mut disconnected).await,
                None => break,
            },
            changed = gone_rx.changed(), if gone.is_none() => {
                if changed.is_err() {
                    return Err("stopped".to_owned());
                }
                gone = *gone_rx.borrow();
            }
            _ = ticker.tick() => {
                // The next live connection, in turn.
                let Some(conn) = (0..writers.len())
                    .map(|k| (next_conn + k) % writers.len())
                    .find(|&c| writers[c].is_some())
                else {
                    break;
                };
                next_conn = conn + 1;
                let seq = records.len() as u64;
                let line = conn::line("PING", &[&seq.to_string()], None);
                records.push(PingRecord {
                    sent_at: Instant::now(),
                    conn,
                    rtt: None,
                    dropped: false,
                });
                if let Some(writer) = writers[conn].as_mut()
                    && writer.write_all(&line).await.is_err()
                {
                    close(conn, &mut records, &mut writers, &mut disconnected);
                }
            }
        }
    }
    readers.abort_all();
    Ok(CanaryOutcome {
        records,
        disconnected,
    })
}

/// Applies one reader event to the canary's state.
async fn handle(
    event: CanaryEvent,
    records: &mut [PingRecord],
    writers: &mut [Option<OwnedWriteHalf>],
    disconnected: &mut u32,
) {
    match event {
        CanaryEvent::Pong(seq, at) => {
            if let Some(record) = usize::try_from(seq).ok().and_then(|s| records.get_mut(s))
                && record.rtt.is_none()
                && !record.dropped
            {
                record.rtt = Some(at.saturating_duration_since(record.sent_at));
            }
        }
        CanaryEvent::Ping(conn, pong) => {
            if let Some(writer) = writers.get_mut(conn).and_then(Option::as_mut)
                && writer.write_all(&pong).await.is_err()
            {
                close(conn, records, writers, disconnected);
            }
        }
        CanaryEvent::Closed(conn) => close(conn, records, writers, disconnected),
    }
}

/// Marks connection `conn` closed and its unanswered pings dropped.
fn close(
    conn: usize,
    records: &mut [PingRecord],
    writers: &mut [Option<OwnedWriteHalf>],
    disconnected: &mut u32,
) {
    if let Some(slot) = writers.get_mut(conn)
        && slot.take().is_some()
    {
        *disconnected += 1;
    }
    for record in records
        .iter_mut()
        .filter(|r| r.conn == conn && r.rtt.is_none())
    {
        record.dropped = true;
    }
}

/// Reads one canary connection: PONGs with their arrival time, server PINGs, close.
async fn canary_reader(
    index: usize,
    mut read: OwnedReadHalf,
    mut buf: BytesMut,
    mut framer: LineFramer,
    tx: mpsc::UnboundedSender<CanaryEvent>,
) {
    let mut at = Instant::now();
    loop {
        while let Some(frame) = framer.next_frame(&mut buf) {
            let Frame::Line(line) = frame else { continue };
            let Some(msg) = conn::parse(&line) else {
                continue;
            };
            let event = match msg.command() {
                "PONG" => match msg.params().last().and_then(|p| p.parse().ok()) {
                    Some(seq) => CanaryEvent::Pong(seq, at),
                    None => continue,
                },
                "PING" => CanaryEvent::Ping(index, conn::pong(&msg)),
                _ => continue,
            };
            if tx.send(event).is_err() {
                return;
            }
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = tx.send(CanaryEvent::Closed(index));
                return;
            }
            Ok(_) => at = Instant::now(),
        }
    }
}

/// When the canary recovered after `gone`: the send time of the first of
/// [`RECOVERY_STREAK`] pings in a row (sent after `gone`) answered under
/// `threshold`. A ping not (yet) answered breaks the run.
fn recovered_at(records: &[PingRecord], gone: Instant, threshold: Duration) -> Option<Instant> {
    let mut run = 0;
    let mut first = None;
    for record in records.iter().filter(|r| r.sent_at >= gone) {
        match record.rtt {
            Some(rtt) if rtt < threshold => {
                if run == 0 {
                    first = Some(record.sent_at);
                }
                run += 1;
                if run >= RECOVERY_STREAK {
                    return first;
                }
            }
            _ => run = 0,
        }
    }
    None
}

fn canary_stats(
    opts: &AbuseOpts,
    canary: &CanaryOutcome,
    start: Instant,
    gone: Instant,
) -> CanaryStats {
    let lost_after = Duration::from_secs_f64(opts.lost_after);
    let answered = |r: &PingRecord| r.rtt.filter(|rtt| *rtt <= lost_after);
    let phase = |from: Option<Instant>, to: Option<Instant>| {
        let mut hist = new_histogram();
        let (mut sent, mut lost) = (0, 0);
        for record in canary.records.iter().filter(|r| {
            from.is_none_or(|from| r.sent_at >= from) && to.is_none_or(|to| r.sent_at < to)
        }) {
            sent += 1;
            match answered(record) {
                Some(rtt) => hist.saturating_record(rtt.as_nanos() as u64),
                None => lost += 1,
            }
        }
        (LatencySummary::from_nanos(&hist), sent, lost)
    };
    let (baseline, _, _) = phase(None, Some(start));
    let (attack, attack_sent, attack_lost) = phase(Some(start), Some(gone));
    let (after, _, after_lost) = phase(Some(gone), None);
    let threshold = Duration::from_secs_f64(opts.recovered_below_ms / 1000.0);
    CanaryStats {
        source: opts.canary_ip.to_string(),
        conns: opts.canary_conns,
        interval_ms: opts.canary_interval * 1000.0,
        baseline,
        attack,
        attack_sent,
        attack_lost,
        after,
        after_lost,
        recovered_after_s: recovered_at(&canary.records, gone, threshold)
            .map(|at| secs(at.saturating_duration_since(gone))),
        recovered_below_ms: opts.recovered_below_ms,
        recovery_limit_s: opts.recovery_limit,
        disconnected: canary.disconnected,
    }
}

impl std::fmt::Display for AbuseReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.setup;
        let a = &self.attackers;
        let c = &self.canary;
        writeln!(f, "chat-bench abuse → {} ({})", self.target, self.transport)?;
        writeln!(
            f,
            "  setup           {} users, {} channels{}, {} bans on {ABUSE_CHANNEL}: {} fillers in {:.2} s ({} dropped during the run)",
            s.users,
            s.channels,
            if s.topics { " with topics" } else { "" },
            s.bans,
            s.fillers,
            s.elapsed_s,
            s.fillers_dropped
        )?;
        writeln!(
            f,
            "  attack          {} × {} from {}: {} at once, then {}/s each, for {} s{}",
            self.attack.name(),
            a.requested,
            a.sources.join(","),
            a.burst,
            a.rate,
            a.duration_s,
            if a.reconnect { ", reconnecting" } else { "" }
        )?;
        if !a.refused.is_empty() {
            let kinds: Vec<String> = a.refused.iter().map(|(k, n)| format!("{k} {n}")).collect();
            writeln!(f, "  not registered  {}", kinds.join(", "))?;
            for example in &a.refused_examples {
                writeln!(f, "                  e.g. {example}")?;
            }
        }
        writeln!(
            f,
            "  attackers       {} registered, {} commands sent, {:.1} MB in {} lines received",
            a.registered,
            a.commands_sent,
            a.bytes_received as f64 / 1e6,
            a.lines_received
        )?;
        if a.cut == 0 {
            writeln!(f, "  cut             none")?;
        } else {
            let reasons: Vec<String> = a
                .cut_by_reason
                .iter()
                .map(|(reason, n)| format!("{n} \"{reason}\""))
                .collect();
            writeln!(
                f,
                "  cut             {} attackers, {} times (first after {:.2} s): {}",
                a.cut,
                a.cuts,
                a.first_cut_s.unwrap_or_default(),
                reasons.join(", ")
            )?;
            if a.reconnects > 0 || a.reconnects_failed > 0 {
                writeln!(
                    f,
                    "  reconnected     {} times ({} attackers could not)",
                    a.reconnects, a.reconnects_failed
                )?;
            }
        }
        writeln!(
            f,
            "  canary          from {}, PING every {} ms over {} connections",
            c.source, c.interval_ms, c.conns
        )?;
        writeln!(f, "    before        {}", c.baseline)?;
        writeln!(f, "    attack        {}", c.attack)?;
        writeln!(
            f,
            "    lost          {} of {}",
            c.attack_lost, c.attack_sent
        )?;
        writeln!(f, "    after         {}", c.after)?;
        match c.recovered_after_s {
            Some(s) => writeln!(
                f,
                "    recovered     after {s:.2} s ({RECOVERY_STREAK} round trips in a row under {} ms)",
                c.recovered_below_ms
            )?,
            None => writeln!(
                f,
                "    recovered     not within {} s ({RECOVERY_STREAK} round trips in a row under {} ms)",
                c.recovery_limit_s, c.recovered_below_ms
            )?,
        }
        if c.disconnected > 0 || c.after_lost > 0 {
            writeln!(
                f,
                "    trouble       {} canary connections closed, {} pings lost after the attack",
                c.disconnected, c.after_lost
            )?;
        }
        if let Some(server) = &self.server {
            writeln!(
                f,
                "  server pid {}   CPU {:.2} s during the attack, {:.2} s after; RSS {:.1} MB → peak {:.1} MB → {:.1} MB",
                server.pid,
                server.cpu_s_attack,
                server.cpu_s_after,
                server.rss_before_bytes as f64 / 1e6,
                server.rss_peak_bytes as f64 / 1e6,
                server.rss_after_bytes as f64 / 1e6
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_deals_every_attack() {
        let dealt: std::collections::HashSet<Attack> =
            (0..13).map(|i| Attack::Mix.for_attacker(i)).collect();
        assert_eq!(dealt.len(), 13);
        assert!(!dealt.contains(&Attack::Mix));
        assert_eq!(Attack::Oper.for_attacker(5), Attack::Oper);
    }

    #[test]
    fn lines_fit_the_server_limit() {
        let ctx = AttackCtx {
            run: "zz".to_owned(),
            channels: Arc::new((0..5000).map(|n| format!("#zz{n}")).collect()),
            nicks: Arc::new((0..5000).map(|n| format!("fzz{n}")).collect()),
            mask: format!("*{}b", "a".repeat(WHO_MASK_LEN - 2)),
            mode_query: format!("{ABUSE_CHANNEL} {}", "b".repeat(MODE_LIST_BS)),
        };
        for kind in Attack::SINGLE {
            for n in 0..4 {
                let line = ctx.command(kind, 7, n);
                assert!(line.len() <= 512, "{kind:?}: {} bytes", line.len());
            }
        }
        assert_eq!(ctx.mask.len(), WHO_MASK_LEN);
        let mode = ctx.command(Attack::ModeList, 0, 0);
        assert!(mode.starts_with(b"MODE #abuse bbb") && mode.ends_with(b"b\r\n"));
    }

    #[test]
    fn fillers_cover_channels_and_the_abuse_holder() {
        let opts = |users, channels| AbuseOpts {
            attack: Attack::WhoStar,
            attackers: 1,
            attacker_ip: vec![[127, 0, 0, 2].into()],
            canary_ip: [127, 0, 0, 3].into(),
            rate: 4.0,
            burst: 20,
            reconnect: false,
            duration: 1.0,
            users,
            channels,
            topics: true,
            bans: 9,
            channels_per_filler: 50,
            canary_interval: 0.1,
            canary_conns: 4,
            baseline: 0.0,
            lost_after: 10.0,
            recovered_below_ms: 50.0,
            recovery_limit: 10.0,
            setup_timeout: 10.0,
            register_timeout: 10.0,
        };
        assert_eq!(opts(0, 0).fillers(), 1);
        assert_eq!(opts(2100, 0).fillers(), 2100);
        assert_eq!(opts(10, 100_000).fillers(), 2001);
        let (plans, channels) = filler_plans(&opts(0, 120), "zz");
        assert_eq!(plans.len(), 4);
        assert_eq!(channels.len(), 120);
        // The holder: JOIN #abuse and 9 bans in lines of 4.
        assert_eq!(plans[0].lines.len(), 1 + 3);
        // Every channel joined once, with a topic each.
        let joined: usize = plans[1..]
            .iter()
            .flat_map(|p| &p.lines)
            .filter(|l| l.starts_with(b"JOIN"))
            .map(|l| l.iter().filter(|&&b| b == b'#').count())
            .sum();
        assert_eq!(joined, 120);
        let topics = plans
            .iter()
            .flat_map(|p| &p.lines)
            .filter(|l| l.starts_with(b"TOPIC"))
            .count();
        assert_eq!(topics, 120);
    }

    #[test]
    fn command_words() {
        assert_eq!(command_of(b"ERROR :SendQ exceeded"), b"ERROR");
        assert_eq!(command_of(b":srv PING :srv"), b"PING");
        assert_eq!(command_of(b"@time=x :srv 352 a b"), b"352");
        assert_eq!(command_of(b""), b"");
    }

    #[test]
    fn recovery_needs_a_streak_after_the_attack() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let record = |at: u64, rtt: Option<u64>| PingRecord {
            sent_at: t0 + ms(at),
            conn: 0,
            rtt: rtt.map(ms),
            dropped: false,
        };
        let records = vec![
            record(0, Some(1)),
            record(100, Some(1)),
            record(200, Some(900)),
            record(300, Some(2)),
            record(400, None),
            record(500, Some(2)),
            record(600, Some(2)),
            record(700, Some(2)),
            record(800, Some(2)),
            record(900, Some(2)),
        ];
        let gone = t0 + ms(150);
        assert_eq!(recovered_at(&records, gone, ms(50)), Some(t0 + ms(500)));
        assert_eq!(recovered_at(&records[..9], gone, ms(50)), None);
    }
}
