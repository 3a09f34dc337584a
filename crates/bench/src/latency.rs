//! `chat-bench latency`: private-message round trips between two clients, one at a
//! time. Client A sends `PRIVMSG B :<seq> <padding>`, B echoes the text back to A,
//! and A records the time from its send to the echo's arrival.
//!
//! With `--probe whois`, A asks `WHOIS B` instead and records the time to the
//! end of the reply (318): on a cluster, the WHOIS of another node's user asks
//! that node for its idle time, one bus round trip.
//!
//! With several `--addr` nodes, A connects to the first and B to the second, so
//! every round trip crosses the cluster twice (A's node → B's node → A's node):
//! the cost of the bus hop, measured. A nick registered on one node is known to
//! the others only once the bus carried it, so before measuring, A sends
//! unmeasured round trips (waiting longer after each unanswered one, bounded by
//! `--register-timeout`) until one comes back: then each node routes to the other.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::conn::{self, Conn};
use crate::connect::parse_secs;
use crate::report::{LatencySummary, Output, new_histogram, secs};
use crate::{Error, server_samples};

/// How long one round trip may take before the run fails.
pub const ROUND_TRIP_LIMIT: Duration = Duration::from_secs(5);
/// First wait for an unmeasured round trip before sending another (several
/// nodes); it doubles up to [`ROUTE_WAIT_MAX`].
const ROUTE_WAIT_FIRST: Duration = Duration::from_millis(20);
/// Longest wait for one unmeasured round trip.
const ROUTE_WAIT_MAX: Duration = Duration::from_millis(500);

/// Options of `chat-bench latency`.
#[derive(Debug, Clone, clap::Args)]
pub struct LatencyOpts {
    /// Round trips to make (fewer if --duration runs out first).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub count: u32,
    /// Most seconds to spend on round trips.
    #[arg(long, default_value_t = 10.0, value_parser = parse_secs)]
    pub duration: f64,
    /// Length in bytes of each message's text.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(16..=400))]
    pub size: u32,
    /// Seconds each client may take to connect and register.
    #[arg(long, default_value_t = 30.0, value_parser = parse_secs)]
    pub register_timeout: f64,
    /// What each round trip is: a private message B echoes, or a WHOIS of B.
    #[arg(long, value_enum, default_value_t = Probe::Privmsg)]
    pub probe: Probe,
}

/// The request a round trip times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    /// `PRIVMSG B`, echoed back by B: two relays.
    Privmsg,
    /// `WHOIS B`, answered by A's server (asking B's node on a cluster).
    Whois,
}

impl Probe {
    /// The IRC command each round trip sends.
    fn command(self) -> &'static str {
        match self {
            Self::Privmsg => "PRIVMSG",
            Self::Whois => "WHOIS",
        }
    }
}

/// What `chat-bench latency` measured.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    /// Always `"latency"`.
    pub mode: &'static str,
    /// The server loaded: A's node, and B's node after a comma when it is another.
    pub target: String,
    /// What the connections travel over: `plain`, `tls`, `websocket` or `websocket+tls`.
    pub transport: &'static str,
    /// What a round trip was.
    pub probe: Probe,
    /// Round trips completed.
    pub round_trips: u64,
    /// Seconds they took.
    pub elapsed_s: f64,
    /// Round-trip time (two server relays and four socket hops).
    pub rtt: LatencySummary,
    /// Server CPU per round trip, microseconds (with `--server-pid`, summed over
    /// every pid; 10 ms ticks).
    pub server_cpu_us_per_round_trip: Option<f64>,
}

/// Runs the round-trip scenario: A on the first of `nodes`, B on the second (the
/// first again when there is only one).
pub async fn run(
    nodes: &[SocketAddr],
    opts: &LatencyOpts,
    server_pids: &[u32],
    output: Output,
) -> Result<LatencyReport, Error> {
    let (Some(&target), Some(&target_b)) = (nodes.first(), nodes.get(1).or(nodes.first())) else {
        return Err(Error::Options("no address to connect to".to_owned()));
    };
    let run = conn::run_id();
    let limit = Duration::from_secs_f64(opts.register_timeout);
    let setup = |e: conn::RegisterError| Error::Setup(e.to_string());
    let mut a = conn::register(target, &format!("b{run}a"), limit)
        .await
        .map_err(setup)?;
    let b = conn::register(target_b, &format!("b{run}b"), limit)
        .await
        .map_err(setup)?;
    let (a_nick, b_nick) = (a.nick.clone(), b.nick.clone());
    let stop = CancellationToken::new();
    let echo = tokio::spawn(echo(b.conn, a_nick, stop.clone()));
    if nodes.len() > 1 {
        let routed = await_route(&mut a.conn, &b_nick, limit).await;
        if let Err(e) = routed {
            stop.cancel();
            return Err(e);
        }
    }

    let before = server_samples(server_pids)?;
    let bar = output.progress(u64::from(opts.count), "round trips");
    let mut hist = new_histogram();
    let mut text = String::with_capacity(opts.size as usize);
    let start = Instant::now();
    let budget = Duration::from_secs_f64(opts.duration);
    let mut failure = None;
    for seq in 0..opts.count {
        if start.elapsed() >= budget {
            break;
        }
        text.clear();
        text.push_str(&seq.to_string());
        text.push(' ');
        while text.len() < opts.size as usize {
            text.push('x');
        }
        let sent_at = Instant::now();
        let trip = async {
            let trailing = (opts.probe == Probe::Privmsg).then_some(text.as_str());
            let request = conn::line(opts.probe.command(), &[&b_nick], trailing);
            a.conn
                .send(&request)
                .await
                .map_err(|e| format!("send: {e}"))?;
            match opts.probe {
                Probe::Privmsg => await_echo(&mut a.conn, &text).await,
                Probe::Whois => await_end_of_whois(&mut a.conn, &b_nick).await,
            }
        };
        match tokio::time::timeout(ROUND_TRIP_LIMIT, trip).await {
            Ok(Ok(())) => hist.saturating_record(sent_at.elapsed().as_nanos() as u64),
            Ok(Err(e)) => {
                failure = Some(e);
                break;
            }
            Err(_) => {
                failure = Some(format!("round trip {seq} took over {ROUND_TRIP_LIMIT:?}"));
                break;
            }
        }
        if seq % 256 == 0 {
            bar.set_position(u64::from(seq));
        }
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let after = server_samples(server_pids)?;
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), echo).await;
    if let Some(e) = failure {
        return Err(Error::Run(e));
    }
    let round_trips = hist.len();
    Ok(LatencyReport {
        mode: "latency",
        target: if target_b == target {
            target.to_string()
        } else {
            format!("{target},{target_b}")
        },
        transport: crate::transport::current().name(),
        probe: opts.probe,
        round_trips,
        elapsed_s: secs(elapsed),
        rtt: LatencySummary::from_nanos(&hist),
        server_cpu_us_per_round_trip: before
            .zip(after)
            .map(|(b, a)| b.cpu_micros_until(&a) as f64 / round_trips.max(1) as f64),
    })
}

/// Sends unmeasured round trips (`sync N`) until one comes back, each waited for
/// longer than the last, within `limit`: on a cluster, until both nodes know both
/// nicks. Late echoes of earlier ones are ignored by the measured loop, whose texts
/// differ.
async fn await_route(a: &mut Conn, b_nick: &str, limit: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + limit;
    let mut wait = ROUTE_WAIT_FIRST;
    for n in 0u32.. {
        let text = format!("sync {n}");
        a.send(&conn::line("PRIVMSG", &[b_nick], Some(&text)))
            .await
            .map_err(|e| Error::Setup(format!("send: {e}")))?;
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait.min(left), await_echo(a, &text)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => return Err(Error::Setup(e)),
            Err(_) if Instant::now() >= deadline => break,
            Err(_) => wait = (wait * 2).min(ROUTE_WAIT_MAX),
        }
    }
    Err(Error::Setup(format!(
        "no private message got from A's node to {b_nick} and back within {limit:?}"
    )))
}

/// Reads until the PRIVMSG whose text is `text`.
async fn await_echo(conn: &mut Conn, text: &str) -> Result<(), String> {
    read_until(conn, |msg| {
        (msg.command() == "PRIVMSG" && msg.params().last() == Some(&text)).then_some(Ok(()))
    })
    .await
}

/// Reads until the end of the WHOIS of `nick`; a WHOIS that does not know
/// `nick` is an error.
async fn await_end_of_whois(conn: &mut Conn, nick: &str) -> Result<(), String> {
    read_until(conn, |msg| match msg.command() {
        "318" if msg.param(1) == Some(nick) => Some(Ok(())),
        "401" => Some(Err(format!("WHOIS: no such nick {nick}"))),
        _ => None,
    })
    .await
}

/// Reads lines (answering PING) until `done` says how the wait ends.
async fn read_until(
    conn: &mut Conn,
    done: impl Fn(&palaver_proto::Message<'_>) -> Option<Result<(), String>>,
) -> Result<(), String> {
    loop {
        let raw = conn
            .next_line()
            .await
            .map_err(|e| format!("read: {e}"))?
            .ok_or("the server closed the connection")?;
        let Some(msg) = conn::parse(&raw) else {
            continue;
        };
        if msg.command() == "PING" {
            conn.send(&conn::pong(&msg))
                .await
                .map_err(|e| format!("send: {e}"))?;
        } else if let Some(outcome) = done(&msg) {
            return outcome;
        }
    }
}

/// Client B: sends every private message's text back to `to` until `stop`.
async fn echo(mut conn: Conn, to: String, stop: CancellationToken) {
    loop {
        let raw = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            line = conn.next_line() => match line {
                Ok(Some(raw)) => raw,
                Ok(None) | Err(_) => return,
            },
        };
        let Some(msg) = conn::parse(&raw) else {
            continue;
        };
        let reply = match msg.command() {
            "PRIVMSG" => conn::line(
                "PRIVMSG",
                &[&to],
                Some(msg.params().last().copied().unwrap_or_default()),
            ),
            "PING" => conn::pong(&msg),
            _ => continue,
        };
        if conn.send(&reply).await.is_err() {
            return;
        }
    }
}

impl std::fmt::Display for LatencyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "chat-bench latency → {} ({})",
            self.target, self.transport
        )?;
        writeln!(
            f,
            "  round trips     {} {} in {:.2} s",
            self.round_trips,
            self.probe.command(),
            self.elapsed_s
        )?;
        writeln!(f, "  RTT             {}", self.rtt)?;
        if let Some(cpu) = self.server_cpu_us_per_round_trip {
            writeln!(f, "  server CPU      {cpu:.1} µs per round trip")?;
        }
        Ok(())
    }
}
