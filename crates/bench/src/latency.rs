//! `chat-bench latency`: private-message round trips between two clients, one at a
//! time. Client A sends `PRIVMSG B :<seq> <padding>`, B echoes the text back to A,
//! and A records the time from its send to the echo's arrival.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::conn::{self, Conn};
use crate::connect::parse_secs;
use crate::report::{LatencySummary, Output, new_histogram, secs};
use crate::{Error, server_sample};

/// How long one round trip may take before the run fails.
pub const ROUND_TRIP_LIMIT: Duration = Duration::from_secs(5);

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
}

/// What `chat-bench latency` measured.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    /// Always `"latency"`.
    pub mode: &'static str,
    /// The server loaded.
    pub target: String,
    /// What the connections travel over: `plain`, `tls`, `websocket` or `websocket+tls`.
    pub transport: &'static str,
    /// Round trips completed.
    pub round_trips: u64,
    /// Seconds they took.
    pub elapsed_s: f64,
    /// Round-trip time (two server relays and four socket hops).
    pub rtt: LatencySummary,
    /// Server CPU per round trip, microseconds (with `--server-pid`; 10 ms ticks).
    pub server_cpu_us_per_round_trip: Option<f64>,
}

/// Runs the round-trip scenario against `target`.
pub async fn run(
    target: SocketAddr,
    opts: &LatencyOpts,
    server_pid: Option<u32>,
    output: Output,
) -> Result<LatencyReport, Error> {
    let run = conn::run_id();
    let limit = Duration::from_secs_f64(opts.register_timeout);
    let setup = |e: conn::RegisterError| Error::Setup(e.to_string());
    let mut a = conn::register(target, &format!("b{run}a"), limit)
        .await
        .map_err(setup)?;
    let b = conn::register(target, &format!("b{run}b"), limit)
        .await
        .map_err(setup)?;
    let (a_nick, b_nick) = (a.nick.clone(), b.nick.clone());
    let stop = CancellationToken::new();
    let echo = tokio::spawn(echo(b.conn, a_nick, stop.clone()));

    let before = server_sample(server_pid)?;
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
            a.conn
                .send(&conn::line("PRIVMSG", &[&b_nick], Some(&text)))
                .await
                .map_err(|e| format!("send: {e}"))?;
            await_echo(&mut a.conn, &text).await
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
    let after = server_sample(server_pid)?;
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), echo).await;
    if let Some(e) = failure {
        return Err(Error::Run(e));
    }
    let round_trips = hist.len();
    Ok(LatencyReport {
        mode: "latency",
        target: target.to_string(),
        transport: crate::transport::current().name(),
        round_trips,
        elapsed_s: secs(elapsed),
        rtt: LatencySummary::from_nanos(&hist),
        server_cpu_us_per_round_trip: before
            .zip(after)
            .map(|(b, a)| b.cpu_micros_until(&a) as f64 / round_trips.max(1) as f64),
    })
}

/// Reads until the PRIVMSG whose text is `text` (answering PING).
async fn await_echo(conn: &mut Conn, text: &str) -> Result<(), String> {
    loop {
        let raw = conn
            .next_line()
            .await
            .map_err(|e| format!("read: {e}"))?
            .ok_or("the server closed the connection")?;
        let Some(msg) = conn::parse(&raw) else {
            continue;
        };
        match msg.command() {
            "PRIVMSG" if msg.params().last() == Some(&text) => return Ok(()),
            "PING" => conn
                .send(&conn::pong(&msg))
                .await
                .map_err(|e| format!("send: {e}"))?,
            _ => {}
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
            "  round trips     {} in {:.2} s",
            self.round_trips, self.elapsed_s
        )?;
        writeln!(f, "  RTT             {}", self.rtt)?;
        if let Some(cpu) = self.server_cpu_us_per_round_trip {
            writeln!(f, "  server CPU      {cpu:.1} µs per round trip")?;
        }
        Ok(())
    }
}
