//! `chat-bench failover`: what a cluster's users see when a node dies.
//!
//! `--users` clients register on the first `--addr` node (the victim) and join one
//! channel; a watcher registers on the second node and joins it too. Once the
//! watcher's `NAMES` lists every user (the cluster has converged), the victim's
//! process (`--victim-pid`) gets SIGKILL: no goodbye on the bus, as in a crash or a
//! lost machine. From the kill on, the run measures
//!
//! - the time to the watcher's first `QUIT` of a victim user and to the last (every
//!   user seen quitting, each reason checked to contain "lost": the surviving node
//!   declared the victim lost rather than seeing ordinary quits);
//! - the time until one of the dead users' nicknames can be taken again on the
//!   surviving node: fresh connections register with it, pausing longer after each
//!   433 (in use), until one gets 001.
//!
//! What it measures is mostly the cluster's `--node-timeout` and its nick-claim
//! release; the point is to see that failover happens, bounded, and to track it.
//! The run needs a cluster (two different nodes) and a victim it may kill: it is
//! never part of `cargo test`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::conn::{self, Conn};
use crate::connect::parse_secs;
use crate::report::{Output, secs};
use crate::{Error, procstat};

/// First pause between two `NAMES` polls or two attempts at the freed nick; it
/// doubles up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(10);
/// Longest pause between two polls or attempts.
const POLL_MAX: Duration = Duration::from_millis(250);
/// Quit reasons other than "lost" kept as examples.
const MAX_EXAMPLES: usize = 5;

/// Options of `chat-bench failover`.
#[derive(Debug, Clone, clap::Args)]
pub struct FailoverOpts {
    /// Process id of the node at the first --addr, which is sent SIGKILL. It must
    /// be that node's process: the run cannot check it.
    #[arg(long, value_name = "PID")]
    pub victim_pid: u32,
    /// Users on the victim node, all in the channel.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub users: u32,
    /// The channel the users and the watcher join.
    #[arg(long, default_value = "#fail")]
    pub channel: String,
    /// Seconds allowed for the setup (register, join, the watcher seeing everyone).
    #[arg(long, default_value_t = 60.0, value_parser = parse_secs)]
    pub setup_timeout: f64,
    /// Seconds after the kill within which every user's QUIT must reach the watcher
    /// (exit status 4 otherwise).
    #[arg(long, default_value_t = 60.0, value_parser = parse_secs)]
    pub quit_timeout: f64,
    /// Seconds after the last QUIT within which a dead user's nick must be free on
    /// the surviving node (exit status 4 otherwise).
    #[arg(long, default_value_t = 30.0, value_parser = parse_secs)]
    pub nick_timeout: f64,
    /// Registrations in progress at once.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    pub concurrency: u32,
}

/// What `chat-bench failover` measured. Durations are seconds from the SIGKILL.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverReport {
    /// Always `"failover"`.
    pub mode: &'static str,
    /// The killed node's address (the first --addr).
    pub victim: String,
    /// The killed process.
    pub victim_pid: u32,
    /// The node the watcher was on (the second --addr).
    pub survivor: String,
    /// What the connections travel over.
    pub transport: &'static str,
    /// The channel.
    pub channel: String,
    /// Users on the victim node.
    pub users: u32,
    /// Seconds from the start until the watcher's NAMES listed every user.
    pub setup_s: f64,
    /// Victim users whose QUIT with a "lost" reason reached the watcher.
    pub quits: u32,
    /// QUITs of victim users with another reason (each counted once).
    pub other_quits: u32,
    /// Up to five of those reasons.
    pub other_quit_reasons: Vec<String>,
    /// Seconds to the first QUIT.
    pub first_quit_s: Option<f64>,
    /// Seconds to the last QUIT (`None` unless every user's arrived).
    pub last_quit_s: Option<f64>,
    /// The dead user's nick taken again on the surviving node.
    pub nick: String,
    /// Seconds until registering with it got 001 (`None` if it never did).
    pub nick_free_s: Option<f64>,
    /// Registrations tried with it (every one but the last got 433).
    pub nick_attempts: u32,
}

impl FailoverReport {
    /// Whether the failover completed: every user quit with a "lost" reason within
    /// `--quit-timeout`, and the nick was free within `--nick-timeout` after.
    pub fn is_complete(&self) -> bool {
        self.last_quit_s.is_some() && self.nick_free_s.is_some()
    }
}

/// Runs the failover scenario: users on `nodes[0]` (killed), the watcher on `nodes[1]`.
pub async fn run(
    nodes: &[SocketAddr],
    opts: &FailoverOpts,
    output: Output,
) -> Result<FailoverReport, Error> {
    let (victim, survivor) = match nodes {
        [victim, survivor, ..] => (*victim, *survivor),
        _ => {
            return Err(Error::Options(
                "failover needs two nodes: --addr VICTIM,SURVIVOR".to_owned(),
            ));
        }
    };
    if victim == survivor {
        return Err(Error::Options(format!(
            "the victim and the surviving node are both {victim}: killing one kills the other"
        )));
    }
    if opts.victim_pid <= 1 || opts.victim_pid == std::process::id() {
        return Err(Error::Options(format!(
            "--victim-pid {} cannot be a server node",
            opts.victim_pid
        )));
    }
    // Fail before any connection if the victim is not there to kill.
    procstat::sample(opts.victim_pid).map_err(|source| Error::Proc {
        pid: opts.victim_pid,
        source,
    })?;
    if !opts.channel.starts_with('#') || opts.channel.contains([' ', ',']) {
        return Err(Error::Options(format!(
            "--channel {:?} is not a channel name",
            opts.channel
        )));
    }
    let start = Instant::now();
    let setup_limit = Duration::from_secs_f64(opts.setup_timeout);
    let (users, mut watcher, release) =
        tokio::time::timeout(setup_limit, setup(victim, survivor, opts, output))
            .await
            .map_err(|_| Error::Setup(format!("not done within {setup_limit:?}")))??;
    let setup_s = secs(start.elapsed());

    kill(opts.victim_pid)?;
    let killed = Instant::now();
    let quit_limit = Duration::from_secs_f64(opts.quit_timeout);
    let seen = watch_quits(&mut watcher.conn, &users, killed, quit_limit).await;
    release.cancel();
    let mut report = FailoverReport {
        mode: "failover",
        victim: victim.to_string(),
        victim_pid: opts.victim_pid,
        survivor: survivor.to_string(),
        transport: crate::transport::current().name(),
        channel: opts.channel.clone(),
        users: opts.users,
        setup_s,
        quits: seen.lost.len() as u32,
        other_quits: seen.other,
        other_quit_reasons: seen.other_reasons,
        first_quit_s: seen.first.map(secs),
        last_quit_s: seen.last.map(secs),
        nick: users.first().cloned().unwrap_or_default(),
        nick_free_s: None,
        nick_attempts: 0,
    };
    if report.last_quit_s.is_some() {
        let limit = Duration::from_secs_f64(opts.nick_timeout);
        let (free, attempts) = reclaim(survivor, &report.nick, limit).await;
        report.nick_free_s = free.then(|| secs(killed.elapsed()));
        report.nick_attempts = attempts;
    }
    Ok(report)
}

/// The watcher's and the users' connections ready: returns the users' nicks, the
/// watcher, and the token that releases the users' holders.
async fn setup(
    victim: SocketAddr,
    survivor: SocketAddr,
    opts: &FailoverOpts,
    output: Output,
) -> Result<(Vec<String>, conn::Registered, CancellationToken), Error> {
    let run = conn::run_id();
    let limit = Duration::from_secs_f64(opts.setup_timeout);
    let permits = Arc::new(tokio::sync::Semaphore::new(opts.concurrency as usize));
    let release = CancellationToken::new();
    let bar = output.progress(u64::from(opts.users), "users joining");
    let mut joining = JoinSet::new();
    for i in 0..opts.users {
        let permits = permits.clone();
        let release = release.clone();
        let channel = opts.channel.clone();
        let nick = format!("f{run}{i}");
        joining.spawn(async move {
            let permit = permits
                .acquire_owned()
                .await
                .map_err(|_| "registration closed".to_owned())?;
            let mut user = conn::register(victim, &nick, limit)
                .await
                .map_err(|e| format!("{nick} on {victim}: {e}"))?;
            join(&mut user.conn, &user.nick, &channel).await?;
            drop(permit);
            let nick = user.nick.clone();
            // Held (answering PING) until the node dies or the run ends.
            tokio::spawn(async move {
                let dropped = AtomicU64::new(0);
                crate::connect::hold(&mut user.conn, &release, &dropped).await;
            });
            Ok::<_, String>(nick)
        });
    }
    let mut users = Vec::with_capacity(opts.users as usize);
    while let Some(joined) = joining.join_next().await {
        match joined {
            Ok(Ok(nick)) => users.push(nick),
            Ok(Err(e)) => return Err(Error::Setup(e)),
            Err(e) => return Err(Error::Setup(format!("user task failed: {e}"))),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut watcher = conn::register(survivor, &format!("f{run}w"), limit)
        .await
        .map_err(|e| Error::Setup(format!("watcher on {survivor}: {e}")))?;
    join(&mut watcher.conn, &watcher.nick, &opts.channel)
        .await
        .map_err(Error::Setup)?;
    let want: BTreeSet<String> = users.iter().map(|n| n.to_ascii_lowercase()).collect();
    let mut pause = POLL_FIRST;
    loop {
        let listed = names(&mut watcher.conn, &opts.channel)
            .await
            .map_err(|e| Error::Setup(format!("watcher: {e}")))?;
        if want.is_subset(&listed) {
            break;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(POLL_MAX);
    }
    Ok((users, watcher, release))
}

/// Joins `channel` and reads up to its 366 (answering PING).
async fn join(conn: &mut Conn, nick: &str, channel: &str) -> Result<(), String> {
    conn.send(&conn::line("JOIN", &[channel], None))
        .await
        .map_err(|e| format!("{nick}: JOIN: {e}"))?;
    loop {
        let raw = conn
            .next_line()
            .await
            .map_err(|e| format!("{nick}: {e}"))?
            .ok_or_else(|| format!("{nick}: disconnected while joining"))?;
        let Some(msg) = conn::parse(&raw) else {
            continue;
        };
        match msg.command() {
            "PING" => conn
                .send(&conn::pong(&msg))
                .await
                .map_err(|e| format!("{nick}: {e}"))?,
            "366"
                if msg
                    .param(1)
                    .is_some_and(|c| c.eq_ignore_ascii_case(channel)) =>
            {
                return Ok(());
            }
            "403" | "405" | "471" | "473" | "474" | "475" | "477" | "479" | "ERROR" => {
                return Err(format!(
                    "{nick}: cannot join {channel}: {} {}",
                    msg.command(),
                    msg.params().last().copied().unwrap_or_default()
                ));
            }
            _ => {}
        }
    }
}

/// One `NAMES channel`: the nicks listed (lowercased, prefixes stripped).
async fn names(conn: &mut Conn, channel: &str) -> Result<BTreeSet<String>, String> {
    conn.send(&conn::line("NAMES", &[channel], None))
        .await
        .map_err(|e| format!("NAMES: {e}"))?;
    let mut listed = BTreeSet::new();
    loop {
        let raw = conn
            .next_line()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("disconnected")?;
        let Some(msg) = conn::parse(&raw) else {
            continue;
        };
        match msg.command() {
            "PING" => conn
                .send(&conn::pong(&msg))
                .await
                .map_err(|e| e.to_string())?,
            "353"
                if msg
                    .param(2)
                    .is_some_and(|c| c.eq_ignore_ascii_case(channel)) =>
            {
                let entries = msg.params().last().copied().unwrap_or_default();
                listed.extend(entries.split(' ').filter_map(|e| {
                    let nick = e.trim_start_matches(['~', '&', '@', '%', '+']);
                    let nick = nick.split('!').next().unwrap_or(nick);
                    (!nick.is_empty()).then(|| nick.to_ascii_lowercase())
                }));
            }
            "366"
                if msg
                    .param(1)
                    .is_some_and(|c| c.eq_ignore_ascii_case(channel)) =>
            {
                return Ok(listed);
            }
            _ => {}
        }
    }
}

/// Sends SIGKILL to `pid`.
fn kill(pid: u32) -> Result<(), Error> {
    let raw = i32::try_from(pid)
        .map_err(|_| Error::Options(format!("--victim-pid {pid} is out of range")))?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(raw),
        nix::sys::signal::Signal::SIGKILL,
    )
    .map_err(|e| Error::Run(format!("kill -9 {pid}: {e}")))
}

/// The QUITs the watcher saw.
#[derive(Debug, Default)]
struct Quits {
    /// Users (lowercased nick) who quit with a "lost" reason.
    lost: BTreeSet<String>,
    other: u32,
    other_reasons: Vec<String>,
    first: Option<Duration>,
    last: Option<Duration>,
}

/// Reads the watcher's lines until every user quit with a "lost" reason, the
/// watcher is disconnected, or `limit` after `killed` passes.
async fn watch_quits(conn: &mut Conn, users: &[String], killed: Instant, limit: Duration) -> Quits {
    let users: BTreeSet<String> = users.iter().map(|n| n.to_ascii_lowercase()).collect();
    let mut quits = Quits::default();
    let mut others = BTreeSet::new();
    let deadline = tokio::time::Instant::from_std(killed + limit);
    while quits.lost.len() < users.len() {
        let raw = match tokio::time::timeout_at(deadline, conn.next_line()).await {
            Ok(Ok(Some(raw))) => raw,
            Ok(Ok(None) | Err(_)) | Err(_) => break,
        };
        let Some(msg) = conn::parse(&raw) else {
            continue;
        };
        match msg.command() {
            "PING" if conn.send(&conn::pong(&msg)).await.is_err() => break,
            "QUIT" => {
                let at = killed.elapsed();
                let Some(nick) = msg
                    .source()
                    .map(|p| p.split('!').next().unwrap_or(p).to_ascii_lowercase())
                    .filter(|n| users.contains(n))
                else {
                    continue;
                };
                let reason = msg.params().last().copied().unwrap_or_default();
                if reason.to_ascii_lowercase().contains("lost") {
                    if quits.lost.insert(nick) {
                        quits.first.get_or_insert(at);
                        quits.last = Some(at);
                    }
                } else if others.insert(nick) {
                    quits.other += 1;
                    if quits.other_reasons.len() < MAX_EXAMPLES {
                        quits.other_reasons.push(reason.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    if quits.lost.len() < users.len() {
        quits.last = None;
    }
    quits
}

/// Registers fresh connections with `nick` at `node` until one gets 001 (pausing
/// longer after each 433), or `limit` passes: whether it got 001, and the attempts.
async fn reclaim(node: SocketAddr, nick: &str, limit: Duration) -> (bool, u32) {
    let deadline = Instant::now() + limit;
    let mut pause = POLL_FIRST;
    let mut attempts = 0;
    while Instant::now() < deadline {
        attempts += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(Ok(true)) = tokio::time::timeout(left, try_nick(node, nick)).await {
            return (true, attempts);
        }
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        pause = (pause * 2).min(POLL_MAX);
    }
    (false, attempts)
}

/// One registration with exactly `nick` (no retry with another): `true` on 001,
/// `false` on 433 or a refusal.
async fn try_nick(node: SocketAddr, nick: &str) -> std::io::Result<bool> {
    let mut conn = Conn::connect(node).await?;
    let mut hello = conn::line("NICK", &[nick], None).to_vec();
    hello.extend_from_slice(&conn::line("USER", &[nick, "0", "*"], Some("chat-bench")));
    conn.send(&hello).await?;
    while let Some(raw) = conn.next_line().await? {
        let Some(msg) = conn::parse(&raw) else {
            continue;
        };
        match msg.command() {
            "PING" => conn.send(&conn::pong(&msg)).await?,
            "001" => {
                let _ = conn
                    .send(&conn::line("QUIT", &[], Some("chat-bench")))
                    .await;
                return Ok(true);
            }
            "433" | "432" | "436" | "465" | "ERROR" => return Ok(false),
            _ => {}
        }
    }
    Ok(false)
}

impl std::fmt::Display for FailoverReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = |s: Option<f64>| s.map_or_else(|| "never".to_owned(), |s| format!("{s:.3} s"));
        writeln!(
            f,
            "chat-bench failover: kill -9 {} ({}), watcher on {} ({}), {} users in {}",
            self.victim_pid, self.victim, self.survivor, self.transport, self.users, self.channel
        )?;
        writeln!(
            f,
            "  setup           {:.2} s (the watcher lists every user)",
            self.setup_s
        )?;
        writeln!(
            f,
            "  QUITs           {} of {} \"lost\": first {}, last {} after the kill",
            self.quits,
            self.users,
            at(self.first_quit_s),
            at(self.last_quit_s)
        )?;
        if self.other_quits > 0 {
            writeln!(f, "  other QUITs     {}", self.other_quits)?;
            for why in &self.other_quit_reasons {
                writeln!(f, "                  e.g. {why}")?;
            }
        }
        if self.nick_attempts == 0 {
            writeln!(
                f,
                "  nick free       {}: not tried (QUITs missing)",
                self.nick
            )?;
        } else {
            writeln!(
                f,
                "  nick free       {} ({}) {} after the kill, {} attempt(s)",
                self.nick,
                if self.nick_free_s.is_some() {
                    "001"
                } else {
                    "still in use"
                },
                at(self.nick_free_s),
                self.nick_attempts
            )?;
        }
        writeln!(
            f,
            "  failover        {}",
            if self.is_complete() {
                "complete"
            } else {
                "INCOMPLETE"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> FailoverReport {
        FailoverReport {
            mode: "failover",
            victim: "127.0.0.1:1".to_owned(),
            victim_pid: 42,
            survivor: "127.0.0.1:2".to_owned(),
            transport: "plain",
            channel: "#fail".to_owned(),
            users: 2,
            setup_s: 0.1,
            quits: 2,
            other_quits: 0,
            other_quit_reasons: Vec::new(),
            first_quit_s: Some(2.0),
            last_quit_s: Some(2.1),
            nick: "fab0".to_owned(),
            nick_free_s: Some(2.3),
            nick_attempts: 3,
        }
    }

    #[test]
    fn complete_only_with_every_quit_and_the_nick() {
        assert!(report().is_complete());
        let no_nick = FailoverReport {
            nick_free_s: None,
            ..report()
        };
        assert!(!no_nick.is_complete());
        let missing_quit = FailoverReport {
            quits: 1,
            last_quit_s: None,
            ..report()
        };
        assert!(!missing_quit.is_complete());
        assert!(format!("{}", report()).contains("complete"));
        assert!(format!("{missing_quit}").contains("INCOMPLETE"));
    }

    #[tokio::test]
    async fn refuses_one_node_or_the_same_node_twice() {
        let opts = FailoverOpts {
            victim_pid: 999_999,
            users: 1,
            channel: "#fail".to_owned(),
            setup_timeout: 1.0,
            quit_timeout: 1.0,
            nick_timeout: 1.0,
            concurrency: 1,
        };
        let a = SocketAddr::from(([127, 0, 0, 1], 9));
        let out = Output { quiet: true };
        assert!(matches!(
            run(&[a], &opts, out).await,
            Err(Error::Options(_))
        ));
        assert!(matches!(
            run(&[a, a], &opts, out).await,
            Err(Error::Options(_))
        ));
        let own = FailoverOpts {
            victim_pid: std::process::id(),
            ..opts
        };
        let b = SocketAddr::from(([127, 0, 0, 1], 10));
        assert!(matches!(
            run(&[a, b], &own, out).await,
            Err(Error::Options(_))
        ));
    }
}
