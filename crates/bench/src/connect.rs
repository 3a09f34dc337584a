//! `chat-bench connect`: register many clients, hold them, and report how long that
//! took, what failed and why, the registration latency distribution and (with
//! `--server-pid`) what each held connection costs the server in memory.
//!
//! With several `--addr` nodes the clients are dealt out round-robin, and with
//! several `--server-pid`s the memory and CPU are summed over every process (each
//! one's share listed too): a cluster's cost per connection includes its bus.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::conn::{self, RegisterError};
use crate::procstat::PidShare;
use crate::report::{LatencySummary, Output, micros, new_histogram, secs};
use crate::{Error, server_samples};

/// Options of `chat-bench connect`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectOpts {
    /// Clients to register (each one TCP connection).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=200_000))]
    pub clients: u32,
    /// Registrations in progress at once.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    pub concurrency: u32,
    /// Seconds to hold the registered clients (answering PING) before measuring the
    /// server's memory and disconnecting.
    #[arg(long, default_value_t = 1.0, value_parser = parse_secs)]
    pub hold: f64,
    /// Seconds one client may take to connect and register.
    #[arg(long, default_value_t = 30.0, value_parser = parse_secs)]
    pub register_timeout: f64,
}

/// Parses a number of seconds between 0 and one hour.
pub fn parse_secs(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=3600.0).contains(&value) {
        Ok(value)
    } else {
        Err("must be between 0 and 3600 seconds".to_owned())
    }
}

/// What `chat-bench connect` measured.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectReport {
    /// Always `"connect"`.
    pub mode: &'static str,
    /// The server loaded (its nodes, comma-separated, when several).
    pub target: String,
    /// Every node the clients were spread over, in `--addr` order.
    pub nodes: Vec<String>,
    /// What the connections travel over: `plain`, `tls`, `websocket` or
    /// `websocket+tls`; the latency and the server's CPU per registration include
    /// the TLS handshake and the WebSocket upgrade.
    pub transport: &'static str,
    /// Clients attempted.
    pub clients: u32,
    /// Clients that registered.
    pub registered: u64,
    /// Failed registrations by kind (`connect`, `timeout`, `closed`, `refused`,
    /// `nick_in_use`, `io`).
    pub failures: BTreeMap<&'static str, u64>,
    /// Up to five failure messages, for diagnosis.
    pub failure_examples: Vec<String>,
    /// Seconds from the first connect to the last registration outcome.
    pub time_to_register_s: f64,
    /// Registered clients per second over that time.
    pub registrations_per_s: f64,
    /// Connect-to-001 latency (TCP connect, TLS and WebSocket handshakes, registration).
    pub latency: LatencySummary,
    /// Registered clients that were disconnected while held.
    pub dropped_while_held: u64,
    /// Server measurements (with `--server-pid`).
    pub server: Option<ConnectServerStats>,
}

/// What the server under test spent (from `/proc/<pid>`), summed over every
/// `--server-pid`.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectServerStats {
    /// The first `--server-pid`.
    pub pid: u32,
    /// Every `--server-pid`, in order.
    pub pids: Vec<u32>,
    /// VmRSS before the first connection (summed).
    pub rss_before_bytes: u64,
    /// VmRSS after all clients registered and were held (summed).
    pub rss_after_bytes: u64,
    /// RSS growth divided by registered clients.
    pub rss_per_connection_bytes: f64,
    /// Server CPU time (user + system) per registration, 10 ms tick granularity.
    pub cpu_us_per_registration: f64,
    /// Each process's CPU time and memory.
    pub per_pid: Vec<PidShare>,
}

/// Registers `opts.clients` clients spread round-robin over `nodes` (one or more),
/// holds them, reports.
pub async fn run(
    nodes: &[SocketAddr],
    opts: &ConnectOpts,
    server_pids: &[u32],
    output: Output,
) -> Result<ConnectReport, Error> {
    if nodes.is_empty() {
        return Err(Error::Options("no address to connect to".to_owned()));
    }
    let before = server_samples(server_pids)?;
    let run = conn::run_id();
    let permits = Arc::new(Semaphore::new(opts.concurrency as usize));
    let release = CancellationToken::new();
    let dropped = Arc::new(AtomicU64::new(0));
    let limit = Duration::from_secs_f64(opts.register_timeout);
    let (done_tx, mut done_rx) = mpsc::channel::<Result<Duration, RegisterError>>(1024);
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    for i in 0..opts.clients {
        let nick = format!("b{run}{i}");
        let target = crate::addr::spread(nodes, i as usize);
        let permits = permits.clone();
        let release = release.clone();
        let dropped = dropped.clone();
        let done_tx = done_tx.clone();
        tasks.spawn(async move {
            let Ok(permit) = permits.acquire_owned().await else {
                return;
            };
            let result = conn::register(target, &nick, limit).await;
            drop(permit);
            let mut registered = match result {
                Ok(registered) => {
                    let _ = done_tx.send(Ok(registered.latency)).await;
                    registered
                }
                Err(e) => {
                    let _ = done_tx.send(Err(e)).await;
                    return;
                }
            };
            drop(done_tx);
            hold(&mut registered.conn, &release, &dropped).await;
        });
    }
    drop(done_tx);

    let bar = output.progress(u64::from(opts.clients), "registering");
    let mut hist = new_histogram();
    let mut failures = BTreeMap::new();
    let mut failure_examples = Vec::new();
    // Bounded by count, and each outcome by the per-client timeout.
    for _ in 0..opts.clients {
        let Some(outcome) = done_rx.recv().await else {
            break;
        };
        match outcome {
            Ok(latency) => hist.saturating_record(latency.as_nanos() as u64),
            Err(e) => {
                *failures.entry(e.kind()).or_insert(0) += 1;
                let example = e.to_string();
                // Five different ones: the same refusal ten thousand times says no more.
                if failure_examples.len() < 5 && !failure_examples.contains(&example) {
                    failure_examples.push(example);
                }
            }
        }
        bar.inc(1);
    }
    let time_to_register = start.elapsed();
    bar.finish_and_clear();
    let registered = hist.len();

    tokio::time::sleep(Duration::from_secs_f64(opts.hold)).await;
    let after = server_samples(server_pids)?;
    release.cancel();
    // Every holder returns as soon as it sees the cancellation; bound the wait anyway.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;

    let server = match (server_pids.first(), before, after) {
        (Some(&pid), Some(before), Some(after)) => {
            let (rss_before, rss_after) = (before.total().rss_bytes, after.total().rss_bytes);
            Some(ConnectServerStats {
                pid,
                pids: server_pids.to_vec(),
                rss_before_bytes: rss_before,
                rss_after_bytes: rss_after,
                rss_per_connection_bytes: per(
                    rss_after.saturating_sub(rss_before) as f64,
                    registered,
                ),
                cpu_us_per_registration: per(before.cpu_micros_until(&after) as f64, registered),
                per_pid: before.shares_until(&after),
            })
        }
        _ => None,
    };
    Ok(ConnectReport {
        mode: "connect",
        target: nodes
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(","),
        nodes: nodes.iter().map(SocketAddr::to_string).collect(),
        transport: crate::transport::current().name(),
        clients: opts.clients,
        registered,
        failures,
        failure_examples,
        time_to_register_s: secs(time_to_register),
        registrations_per_s: registered as f64 / time_to_register.as_secs_f64().max(1e-9),
        latency: LatencySummary::from_nanos(&hist),
        dropped_while_held: dropped.load(Ordering::Relaxed),
        server,
    })
}

fn per(total: f64, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        total / count as f64
    }
}

/// Keeps a registered client alive until `release`: answers PING, counts a drop.
pub(crate) async fn hold(conn: &mut conn::Conn, release: &CancellationToken, dropped: &AtomicU64) {
    loop {
        tokio::select! {
            biased;
            _ = release.cancelled() => return,
            line = conn.next_line() => match line {
                Ok(Some(raw)) => {
                    let pong = conn::parse(&raw)
                        .filter(|m| m.command() == "PING")
                        .map(|m| conn::pong(&m));
                    if let Some(pong) = pong
                        && conn.send(&pong).await.is_err()
                    {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
                Ok(None) | Err(_) => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
}

impl std::fmt::Display for ConnectReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "chat-bench connect → {} ({})",
            self.target, self.transport
        )?;
        writeln!(
            f,
            "  registered      {} of {} in {:.3} s ({:.0}/s)",
            self.registered, self.clients, self.time_to_register_s, self.registrations_per_s
        )?;
        if self.failures.is_empty() {
            writeln!(f, "  failures        none")?;
        } else {
            let kinds: Vec<String> = self
                .failures
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            writeln!(f, "  failures        {}", kinds.join(", "))?;
            for example in &self.failure_examples {
                writeln!(f, "                  e.g. {example}")?;
            }
        }
        writeln!(f, "  latency (→001)  {}", self.latency)?;
        writeln!(f, "  dropped (held)  {}", self.dropped_while_held)?;
        if let Some(server) = &self.server {
            let pids = server
                .pids
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("+");
            writeln!(
                f,
                "  server pid {pids}   RSS {:.1} MB → {:.1} MB: {:.0} B per connection; CPU {} per registration",
                server.rss_before_bytes as f64 / 1e6,
                server.rss_after_bytes as f64 / 1e6,
                server.rss_per_connection_bytes,
                micros(server.cpu_us_per_registration)
            )?;
            if server.per_pid.len() > 1 {
                for share in &server.per_pid {
                    writeln!(
                        f,
                        "    pid {:<8}   RSS {:.1} MB → {:.1} MB; CPU {:.2} s ({:.0} %)",
                        share.pid,
                        share.rss_before_bytes as f64 / 1e6,
                        share.rss_after_bytes as f64 / 1e6,
                        share.cpu_us as f64 / 1e6,
                        share.cpu_share * 100.0
                    )?;
                }
            }
        }
        Ok(())
    }
}
