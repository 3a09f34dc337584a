//! `chat-bench`: the load generator's command line. Parses the options, pins the
//! process to a CPU if asked, raises the file-descriptor limit, builds the tokio
//! runtime, checks the target address (or the nodes of a cluster) and runs one
//! scenario from the library.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use palaver_bench::abuse::AbuseOpts;
use palaver_bench::connect::ConnectOpts;
use palaver_bench::failover::FailoverOpts;
use palaver_bench::fanout::FanoutOpts;
use palaver_bench::latency::LatencyOpts;
use palaver_bench::report::Output;
use palaver_bench::transport::Transport;
use palaver_bench::{abuse, addr, connect, failover, fanout, latency};

/// Exit status when a fan-out run lost, duplicated or reordered deliveries.
const EXIT_NOT_CLEAN: u8 = 3;
/// Exit status when a failover run did not see every QUIT, or the nick freed, in time.
const EXIT_FAILOVER_INCOMPLETE: u8 = 4;

#[derive(Debug, Parser)]
#[command(
    name = "chat-bench",
    version,
    about = "Load generator for IRC servers: registration, channel fan-out, round-trip latency and abuse.",
    long_about = "Load generator for IRC servers: registration, channel fan-out, round-trip latency and abuse.\n\n\
        It sends traffic only to loopback addresses (127.0.0.0/8, ::1) unless --allow-remote is given. \
        It lifts no server limits: start the server under test with its flood limits lifted \
        (palaver: chat-server 127.0.0.1 6667 --no-flood-limit --max-clients-per-ip 100000), or \
        senders will be paced and clients refused.",
    after_help = "Examples:\n  chat-bench connect --addr 127.0.0.1:6667 --clients 5000 --server-pid $PID\n  \
        chat-bench fanout --addr 127.0.0.1:6667 --channels 1 --members 100 --senders 10 --duration 5\n  \
        chat-bench latency --addr 127.0.0.1:6667 --json\n  \
        chat-bench fanout --addr 127.0.0.1:6667 --tls --websocket --members 50\n  \
        chat-bench abuse --addr 127.0.0.1:6667 --users 2100 --attack who-star --duration 20\n\n\
        A cluster (palaver nodes sharing a NATS bus; list every node, and every pid to sum):\n  \
        chat-bench fanout --addr 127.0.0.1:16701,127.0.0.1:16702,127.0.0.1:16703 --members 30 --senders 3 \\\n    \
        --duration 3 --server-pid $A --server-pid $B --server-pid $C --server-pid $NATS\n  \
        chat-bench latency --addr 127.0.0.1:16701,127.0.0.1:16702\n  \
        chat-bench connect --addr 127.0.0.1:16701,127.0.0.1:16702 --clients 2000\n  \
        chat-bench failover --addr 127.0.0.1:16701,127.0.0.1:16702 --victim-pid $A --users 20\n\n\
        Exit status: 0 done, 1 error, 3 fan-out deliveries lost, duplicated or reordered, \
        4 failover incomplete (a QUIT missing, or the nick not freed, in time)."
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Register many clients, hold them, and report registration time, failures by
    /// kind, latency percentiles and (with --server-pid) server memory per connection.
    Connect {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        opts: ConnectOpts,
    },
    /// Channel fan-out: members join, senders send numbered, timestamped PRIVMSGs;
    /// every receiver checks loss, duplication and order and records latency.
    Fanout {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        opts: FanoutOpts,
    },
    /// Private-message round trips between two clients, one at a time.
    Latency {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        opts: LatencyOpts,
    },
    /// Cluster failover: users on the first node, a watcher on the second; SIGKILL
    /// to --victim-pid (the first node), then the time to the watcher's first and
    /// last "lost" QUIT and until a dead user's nick registers on the second node.
    Failover {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        opts: FailoverOpts,
    },
    /// Attackers from one address send an abusive command at the server's allowed
    /// pace while a canary from another address times PING round trips; reports the
    /// canary's latency, lost pings, attackers cut and the time to recover. Works
    /// against a server with default limits (no --no-flood-limit needed).
    Abuse {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        opts: AbuseOpts,
    },
}

/// Options every scenario takes.
#[derive(Debug, Args)]
struct Common {
    /// The server to load, HOST:PORT (IPv6 as [::1]:PORT); for a cluster, its nodes
    /// comma-separated (HOST:PORT,HOST:PORT,...): connect and fanout spread their
    /// clients round-robin, latency puts its two clients on the first two, failover
    /// kills the first and watches from the second; abuse takes one address.
    #[arg(long, default_value = "127.0.0.1:6667", value_name = "HOST:PORT[,...]")]
    addr: String,
    /// Allow a target that is not a loopback address. Only load servers you run.
    #[arg(long)]
    allow_remote: bool,
    /// Process id of the server (on this machine) to read CPU time and RSS from /proc.
    /// Repeat it (or comma-separate) for a cluster: its nodes and the NATS server;
    /// the costs are summed and each pid's share listed.
    #[arg(long, value_name = "PID", value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Print one JSON object on stdout instead of the summary.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Pin the whole process (every runtime thread) to this CPU (Linux).
    #[arg(long, value_name = "N")]
    cpu: Option<usize>,
    /// Runtime worker threads: 1 runs everything on one thread (the fastest
    /// generator when pinned to one core), more uses tokio's multi-thread runtime.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Spread connections to an IPv4 loopback target over this many source
    /// addresses (127.0.1.1 onwards; 1 = 127.0.0.1 only). Linux scans for a free
    /// ephemeral port per source and destination, which slows every connect once
    /// thousands share one pair.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=i64::from(palaver_bench::conn::MAX_SOURCE_IPS)))]
    source_ips: u32,
    /// Connect over TLS. Any server certificate is accepted (the handshake's
    /// signatures are still checked).
    #[arg(long)]
    tls: bool,
    /// Connect over WebSocket (IRCv3 `binary.ircv3.net`, one line per message);
    /// with --tls, over TLS.
    #[arg(long)]
    websocket: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chat-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let common = match &cli.scenario {
        Scenario::Connect { common, .. }
        | Scenario::Fanout { common, .. }
        | Scenario::Latency { common, .. }
        | Scenario::Failover { common, .. }
        | Scenario::Abuse { common, .. } => common,
    };
    if let Some(cpu) = common.cpu {
        pin(cpu)?;
    }
    palaver_bench::conn::spread_sources(common.source_ips);
    palaver_bench::transport::set(Transport::new(common.tls, common.websocket));
    // Many clients need many sockets; raise the soft limit as far as the hard one.
    let fds =
        rlimit::increase_nofile_limit(u64::MAX).context("raising the file-descriptor limit")?;
    let runtime = if common.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(usize::from(common.threads));
        builder
    }
    .enable_all()
    .build()
    .context("building the tokio runtime")?;
    runtime.block_on(async {
        let nodes = addr::resolve_all(&common.addr, common.allow_remote)
            .await
            .with_context(|| format!("--addr {}", common.addr))?;
        let output = Output {
            quiet: common.quiet,
        };
        let pids = common.server_pid.as_slice();
        let needed = match &cli.scenario {
            Scenario::Connect { opts, .. } => u64::from(opts.clients),
            Scenario::Fanout { opts, .. } => u64::from(opts.channels) * u64::from(opts.members),
            Scenario::Latency { .. } => 2,
            Scenario::Failover { opts, .. } => u64::from(opts.users) + 2,
            Scenario::Abuse { opts, .. } => opts.connections(),
        };
        if needed + 64 > fds {
            eprintln!(
                "chat-bench: warning: {needed} clients but only {fds} file descriptors allowed (ulimit -Hn)"
            );
        }
        match &cli.scenario {
            Scenario::Connect { opts, .. } => {
                let report = connect::run(&nodes, opts, pids, output).await?;
                print(common.json, &report)?;
                if report.registered == 0 && opts.clients > 0 {
                    // Nothing was measured: say so, and fail, so a script notices.
                    let why = report.failure_examples.first().map_or("", String::as_str);
                    let target = &report.target;
                    bail!("no client registered with {target} ({why}): is the server running?");
                }
                Ok(ExitCode::SUCCESS)
            }
            Scenario::Fanout { opts, .. } => {
                let report = fanout::run(&nodes, opts, pids, output).await?;
                print(common.json, &report)?;
                Ok(if report.is_clean() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(EXIT_NOT_CLEAN)
                })
            }
            Scenario::Latency { opts, .. } => {
                let report = latency::run(&nodes, opts, pids, output).await?;
                print(common.json, &report)?;
                Ok(ExitCode::SUCCESS)
            }
            Scenario::Failover { opts, .. } => {
                if !pids.is_empty() {
                    bail!("failover measures times, not costs: it takes no --server-pid");
                }
                let report = failover::run(&nodes, opts, output).await?;
                print(common.json, &report)?;
                Ok(if report.is_complete() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(EXIT_FAILOVER_INCOMPLETE)
                })
            }
            Scenario::Abuse { opts, .. } => {
                // One attacked address and one canary: a cluster's nodes would each
                // need their own, so the scenario stays single-node.
                let [target] = nodes[..] else {
                    bail!(
                        "abuse loads one server: --addr takes a single HOST:PORT here, not {} nodes",
                        nodes.len()
                    );
                };
                if pids.len() > 1 {
                    bail!("abuse reads one server's costs: give --server-pid once");
                }
                let report = abuse::run(target, opts, pids.first().copied(), output).await?;
                print(common.json, &report)?;
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

fn print<R: serde::Serialize + std::fmt::Display>(json: bool, report: &R) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string(report).context("serialising the report")?
        );
    } else {
        print!("{report}");
    }
    Ok(())
}

/// Pins the calling thread, and so every thread it starts later, to `cpu`.
fn pin(cpu: usize) -> anyhow::Result<()> {
    let cores = core_affinity::get_core_ids().context("listing CPUs for --cpu")?;
    let Some(core) = cores.into_iter().find(|c| c.id == cpu) else {
        bail!("--cpu {cpu}: no such CPU");
    };
    if !core_affinity::set_for_current(core) {
        bail!("--cpu {cpu}: could not set the CPU affinity");
    }
    Ok(())
}
