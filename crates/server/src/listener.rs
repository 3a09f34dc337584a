//! Accepting connections: admission limits, accept-error backoff and graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Shared;
use crate::admission::Admission;
use crate::config::Config;
use crate::control::{Request, RunOutcome};
use crate::driver::Drivers;
use crate::throttle::ConnectThrottle;
use crate::transport::opening::ListenMode;
use crate::wakeup::Accepted;

/// How long connections get to say goodbye after shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Longest pause after a failing `accept` (EMFILE and friends).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Pending connections the kernel may queue before `accept`: a reconnect storm after
/// a restart must not overflow it (the usual default of 128 does with 1,000 clients).
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listening socket for [`run`] with a deep accept backlog and `SO_REUSEADDR`
/// (so a restarted server can bind while old connections linger in TIME_WAIT).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Loads the registered accounts' names (see `World::account_names`); a store
/// that cannot answer is logged, and nick ownership then starts with none known.
async fn load_account_names(shared: &Shared) {
    match shared.store.account_keys().await {
        Ok(keys) => {
            let mut world = shared.lock_world();
            world
                .account_names
                .extend(keys.iter().map(|key| crate::world::World::key(key)));
        }
        Err(error) => tracing::warn!(%error, "cannot load account names; starting without them"),
    }
}

/// Loads the accounts' read markers from the store (see
/// `world::read_markers::Saved`); a store that cannot answer is logged, and the
/// server starts without them.
async fn load_read_markers(shared: &Shared) {
    let limit = shared.config().limits.max_read_markers_total;
    match shared.store.all_read_markers(limit).await {
        Ok(markers) => {
            let mut world = shared.lock_world();
            for (account, target, at) in markers {
                if let Some(at) = at.to_offset_date_time() {
                    let (account, target) = (
                        crate::world::World::key(&account),
                        crate::world::World::key(target.as_str()),
                    );
                    world.saved_markers.advance(account, target, at, limit);
                }
            }
        }
        Err(error) => tracing::warn!(%error, "cannot load read markers; starting without them"),
    }
}

/// Serves IRC on `listener` until `shutdown` resolves (or an operator sends `DIE`
/// or `RESTART`), then tells every client `ERROR :Server shutting down` (`Server
/// restarting` after a `RESTART`), waits up to five seconds for them to be
/// flushed, and returns. A `RESTART` is not told apart here: [`run_listeners`]
/// returns it.
///
/// Connections are served by one driver thread per core (see `driver`), handed out
/// in turn as they are accepted.
///
/// # Errors
///
/// If a driver thread dies (a panic outside the per-connection containment), `run`
/// stops accepting at once, closes the other connections the same way, and returns
/// an error naming the thread and the panic: a listener that kept accepting for a
/// dead thread would leave clients hanging, so the process should exit and be
/// restarted instead. Also if the driver threads cannot be started.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    run_listeners(
        vec![Listener::new(listener, ListenMode::Auto)],
        config,
        shutdown,
    )
    .await
    .map(|_| ())
}

/// A bound socket and what it serves (IRC, TLS and HTTP told apart by their first
/// bytes, TLS only, or plain IRC only).
#[derive(Debug)]
pub struct Listener {
    socket: TcpListener,
    mode: ListenMode,
    /// The address it was asked to bind (its port may be 0), which a reload's
    /// list of listeners names it by.
    asked: Option<SocketAddr>,
}

impl Listener {
    /// `socket` (from [`bind`]) serving `mode`.
    pub fn new(socket: TcpListener, mode: ListenMode) -> Self {
        Self {
            socket,
            mode,
            asked: None,
        }
    }

    /// Marks the listener as one of those a reload may close or keep: `asked` is
    /// the address it was bound for (`--listen`), as [`crate::Reloaded::listeners`]
    /// names it. Unmarked listeners (the server's main address) stay for the
    /// server's life.
    #[must_use]
    pub fn reloadable(mut self, asked: SocketAddr) -> Self {
        self.asked = Some(asked);
        self
    }
}

/// Applies a reload's list of reloadable listeners: closes those no longer
/// listed (connections they accepted stay), binds the new ones. Returns what was
/// done, in sentences for the operators.
async fn change_listeners(
    listeners: &mut Vec<Listener>,
    wanted: &[(SocketAddr, ListenMode)],
) -> Vec<String> {
    let mut report = Vec::new();
    listeners.retain(|listener| {
        let keep = listener
            .asked
            .is_none_or(|asked| wanted.contains(&(asked, listener.mode)));
        if !keep {
            let local = listener.socket.local_addr().map(|a| a.to_string());
            report.push(format!(
                "stopped listening on {}",
                local.unwrap_or_else(|_| "a closed socket".to_owned())
            ));
        }
        keep
    });
    for &(asked, mode) in wanted {
        let open = listeners
            .iter()
            .any(|l| l.asked == Some(asked) && l.mode == mode);
        if open {
            continue;
        }
        match bind(asked).and_then(|socket| Ok((socket.local_addr()?, socket))) {
            Ok((local, socket)) => {
                report.push(format!("listening on {local} ({mode:?})"));
                listeners.push(Listener::new(socket, mode).reloadable(asked));
            }
            Err(error) => report.push(format!("cannot listen on {asked}: {error}")),
        }
    }
    report
}

/// [`run`] on several listeners at once (`--listen`): one server, one set of
/// clients, whichever port they came in on. Returns how it ended:
/// [`RunOutcome::Restart`] after an operator's `RESTART` (the caller starts the
/// server again; see `control`), [`RunOutcome::Stopped`] otherwise.
///
/// # Errors
///
/// As [`run`].
pub async fn run_listeners(
    mut listeners: Vec<Listener>,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> io::Result<RunOutcome> {
    let cluster = match &config.cluster {
        Some(cluster) => Some(
            crate::bus::Bus::connect(cluster)
                .await
                .map_err(|error| io::Error::other(format!("{error:#}")))?,
        ),
        None => None,
    };
    if let Some(bus) = &cluster {
        // Claims a crash of this node left behind would keep its users' nicks
        // from them until the other nodes' timeout; they go before anyone
        // registers here.
        let stale = tokio::time::timeout(Duration::from_secs(10), bus.release_stale_claims());
        match stale
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")))
        {
            Ok(0) => {}
            Ok(released) => {
                tracing::info!(released, "released nick claims of this node's previous run")
            }
            Err(error) => tracing::warn!(
                error = format!("{error:#}"),
                "cannot read the cluster's nick claims"
            ),
        }
    }
    let (claims, claim_jobs) = match &cluster {
        Some(_) => {
            let (claims, jobs) = crate::cluster::claims::Claims::new();
            (Some(claims), Some(jobs))
        }
        None => (None, None),
    };
    let shared = Arc::new(Shared::new(config, cluster.clone(), claims)?);
    // Registered channels are loaded before the first client can join one.
    let registrations = shared.store.channels().await.map_err(|error| {
        io::Error::other(format!("cannot read the channel registrations: {error}"))
    })?;
    shared.lock_world().registry.load(registrations);
    // So are the K-lines and D-lines, before the first accept: a server that cannot
    // read them does not start (it would let in whoever they keep out). Those that
    // expired while it was down are deleted first.
    if let Err(error) = shared
        .store
        .expire_server_bans(palaver_store::Timestamp::now())
        .await
    {
        tracing::warn!(%error, "cannot delete expired server bans");
    }
    let bans = shared.store.server_bans().await.map_err(|error| {
        io::Error::other(format!("cannot read the server bans (K/D-lines): {error}"))
    })?;
    crate::lock(&shared.bans).load(bans);
    let mut throttle = ConnectThrottle::new(
        shared.config().limits.connect_per_ip,
        shared.config().limits.connect_per_network,
        shared.config().limits.throttle_loopback,
    );
    let mut outcome = RunOutcome::Stopped;
    let admission = Arc::new(Admission::default());
    let stop = CancellationToken::new();
    // If this future is dropped instead of being shut down, the driver threads
    // (which it does not own as tasks) must still stop.
    let _stop_drivers_on_drop = stop.clone().drop_guard();
    let tracker = TaskTracker::new();
    let mut drivers = Drivers::start(&shared, &stop).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("cannot start the connection threads: {error}"),
        )
    })?;
    load_read_markers(&shared).await;
    load_account_names(&shared).await;
    let expiry = tokio::spawn(crate::history::expire_until(
        Arc::clone(&shared),
        stop.clone(),
    ));
    let mut listener_changes = shared
        .config()
        .reloader
        .as_ref()
        .map(crate::reload::Reloader::attach_listeners);
    let reloads = shared.config().reloader.clone().map(|reloader| {
        tokio::spawn(crate::reload::serve_requests(
            Arc::clone(&shared),
            reloader,
            stop.clone(),
        ))
    });
    let saver = tokio::spawn(crate::registered::save_until(
        Arc::clone(&shared),
        stop.clone(),
    ));
    // The link outlives the drivers (its own token, cancelled after them), so the
    // other nodes hear of the users who quit as this node shuts down.
    let link_stop = CancellationToken::new();
    let _stop_link_on_drop = link_stop.clone().drop_guard();
    let link = shared.cluster.clone().map(|bus| {
        if let Some(jobs) = claim_jobs {
            tokio::spawn(crate::cluster::claims::run(
                Arc::clone(&shared),
                bus.clone(),
                jobs,
                link_stop.clone(),
            ));
        }
        tokio::spawn(crate::cluster::ask::serve(
            Arc::clone(&shared),
            bus.clone(),
            link_stop.clone(),
        ));
        tokio::spawn(crate::cluster::link::run(
            Arc::clone(&shared),
            bus,
            link_stop.clone(),
        ))
    });
    let mut backoff = Duration::from_millis(5);
    let mut spare = SpareFd::open();
    let mut death = None;
    tokio::pin!(shutdown);
    // The store is open (it is read above) and the listeners are bound: `/readyz`.
    shared.metrics.set_ready(true);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            request = shared.control.next() => {
                match &request {
                    Request::Die { by } => tracing::info!(oper = %by, "DIE"),
                    Request::Restart { by } => {
                        tracing::info!(oper = %by, "RESTART");
                        outcome = RunOutcome::Restart;
                    }
                }
                shared.control.stopping(Some(request));
                break;
            }
            died = drivers.died() => {
                death = Some(died);
                break;
            }
            Some(change) = next_listener_change(&mut listener_changes) => {
                let report = change_listeners(&mut listeners, &change.wanted).await;
                let _ = change.done.send(report);
            }
            (listener, accepted) = accept_any(&listeners) => match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::from_millis(5);
                    shared.metrics.accepted();
                    if let Some(refusal) = screen(&shared, &mut throttle, peer.ip()) {
                        // Debug only: a flood of refusals must not flood the log.
                        tracing::debug!(%peer, reason = %refusal, "connection refused");
                        let drain = tracker.len() < MAX_DRAINING_REFUSALS;
                        tracker.spawn(refuse(stream, refusal, drain));
                        continue;
                    }
                    let limits = &shared.config().limits;
                    let ticket = match admission.admit(peer.ip(), limits.max_clients, limits.max_clients_per_ip) {
                        Ok(ticket) => ticket,
                        Err(refusal) => {
                            tracing::info!(%peer, reason = refusal, "connection refused");
                            let drain = tracker.len() < MAX_DRAINING_REFUSALS;
                            tracker.spawn(refuse(stream, refusal.to_owned(), drain));
                            continue;
                        }
                    };
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
                    }
                    match stream.into_std() {
                        Ok(stream) => drivers.adopt(Accepted { stream, ip: peer.ip(), ticket, mode: listener.mode }),
                        Err(error) => tracing::debug!(%peer, %error, "cannot hand over the connection"),
                    }
                }
                Err(error) => {
                    // Resource exhaustion (EMFILE, ENFILE, ENOBUFS) or a connection
                    // that died in the backlog: back off instead of spinning. Out of
                    // descriptors, the waiting clients are told first rather than
                    // left hanging in the backlog.
                    let refused = if is_out_of_fds(&error) { spare.refuse_waiting(&listener.socket) } else { 0 };
                    tracing::warn!(%error, refused, pause_ms = backoff.as_millis() as u64, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                }
            },
        }
    }
    shared.metrics.set_ready(false);
    drop(listeners);
    match &death {
        None => tracing::info!("shutting down"),
        Some(death) => tracing::error!(%death, "shutting down: a connection thread died"),
    }
    stop.cancel();
    tracker.close();
    let tracker_done = async {
        tracker.wait().await;
        drivers.finished().await
    };
    // Drivers give their connections five seconds; this bound is a backstop.
    match tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), tracker_done).await {
        Ok(died) => death = death.or(died),
        Err(_) => tracing::warn!("some connections did not close in time"),
    }
    let _ = expiry.await;
    link_stop.cancel();
    if let Some(link) = link {
        let _ = link.await;
    }
    if let Some(reloads) = reloads {
        // A reload in progress finishes (it only swaps an Arc) before the store closes.
        let _ = reloads.await;
    }
    // Channel changes of the last moments (the saver stopped with the drivers).
    let _ = saver.await;
    crate::registered::save_pending(&shared).await;
    // Everything relayed was committed before it was sent; this commits what is
    // still queued (events of the last moments) and stops the store's threads.
    if let Err(error) = shared.store.close().await {
        tracing::warn!(%error, "the store did not close cleanly");
    }
    match death {
        Some(death) => Err(io::Error::other(death.to_string())),
        None => Ok(outcome),
    }
}

/// Why a new connection from `ip` is refused before admission, if it is: a
/// D-line covers it, or it comes too fast (see `throttle`).
fn screen(shared: &Shared, throttle: &mut ConnectThrottle, ip: std::net::IpAddr) -> Option<String> {
    let now = palaver_store::Timestamp::now();
    if let Some(ban) = crate::lock(&shared.bans).dline_for(ip, now) {
        return Some(format!(
            "Closing Link: {} (D-lined: {})",
            ip.to_canonical(),
            ban.reason
        ));
    }
    // Cheap (three copies) and always current: a reload's new rates apply from
    // the next connection.
    let config = shared.config();
    let limits = &config.limits;
    throttle.configure(
        limits.connect_per_ip,
        limits.connect_per_network,
        limits.throttle_loopback,
    );
    throttle
        .admit(ip, tokio::time::Instant::now())
        .err()
        .map(|refusal| refusal.reason(ip.to_canonical()))
}

/// The next change of listeners a reload asks for; never, if reloads cannot ask.
async fn next_listener_change(
    changes: &mut Option<tokio::sync::mpsc::Receiver<crate::reload::ListenerChange>>,
) -> Option<crate::reload::ListenerChange> {
    match changes {
        Some(changes) => changes.recv().await,
        None => std::future::pending().await,
    }
}

/// The next connection (or accept error) on any of `listeners`, with the listener
/// it came in on.
async fn accept_any(listeners: &[Listener]) -> (&Listener, io::Result<(TcpStream, SocketAddr)>) {
    std::future::poll_fn(|cx| {
        for listener in listeners {
            if let std::task::Poll::Ready(result) = listener.socket.poll_accept(cx) {
                return std::task::Poll::Ready((listener, result));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Whether an `accept` error means the process or the system ran out of descriptors.
fn is_out_of_fds(error: &io::Error) -> bool {
    // EMFILE and ENFILE (24 and 23 on Linux and the BSDs).
    matches!(error.raw_os_error(), Some(23 | 24))
}

/// Most waiting connections refused in one go when out of descriptors, so the
/// listener still gets to its shutdown signal.
const MAX_REFUSED_AT_ONCE: usize = 256;

/// A descriptor held back for the moment the process runs out: it is closed to
/// accept the clients waiting in the backlog, tell them `ERROR :Server full` and
/// close them, then taken again. Without it, a client that arrives when every
/// descriptor is taken waits in the backlog with no answer until it gives up.
struct SpareFd(Option<std::fs::File>);

impl SpareFd {
    fn open() -> Self {
        let file = std::fs::File::open(if cfg!(windows) { "NUL" } else { "/dev/null" });
        if let Err(error) = &file {
            tracing::warn!(%error, "cannot hold a spare file descriptor for refusals");
        }
        Self(file.ok())
    }

    /// Refuses the connections waiting to be accepted using the spare descriptor;
    /// returns how many.
    fn refuse_waiting(&mut self, listener: &TcpListener) -> usize {
        if self.0.take().is_none() {
            return 0;
        }
        let noop = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(noop);
        let mut refused = 0;
        while refused < MAX_REFUSED_AT_ONCE {
            let std::task::Poll::Ready(Ok((stream, peer))) = listener.poll_accept(&mut cx) else {
                break;
            };
            // A new socket's send buffer is empty: the line fits. Closing it at once
            // gives the descriptor back for the next one; what the client sent
            // already is read first, as closing with unread input would send a
            // reset that can destroy the ERROR line (see `refuse`).
            let _ = stream.try_write(b"ERROR :Server full\r\n");
            if let Ok(stream) = stream.into_std() {
                let _ = stream.shutdown(std::net::Shutdown::Write);
                let mut sink = [0u8; 1024];
                for _ in 0..16 {
                    if !matches!(std::io::Read::read(&mut &stream, &mut sink), Ok(1..)) {
                        break;
                    }
                }
            }
            tracing::info!(%peer, reason = "Server full", "connection refused (out of file descriptors)");
            refused += 1;
        }
        *self = Self::open();
        refused
    }
}

/// Refusals that may wait for their client to close first (see [`refuse`]); each
/// holds a descriptor from the reserve meanwhile, so they are few.
const MAX_DRAINING_REFUSALS: usize = 32;

/// Tells a refused client why, then closes (best effort, bounded in time).
///
/// With `drain`, it first reads (and drops) what the client sent until the client
/// closes: a socket closed with unread input sends a reset, which can destroy the
/// `ERROR` line before the client reads it, and clients send NICK and USER as soon
/// as they connect.
async fn refuse(mut stream: TcpStream, reason: String, drain: bool) {
    let line = format!("ERROR :{reason}\r\n");
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(line.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while drain && stream.read(&mut sink).await? > 0 {}
        Ok::<(), io::Error>(())
    })
    .await;
}
