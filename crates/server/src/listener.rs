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
use crate::driver::Drivers;
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
    let limit = shared.config.limits.max_read_markers_total;
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

/// Serves IRC on `listener` until `shutdown` resolves, then tells every client
/// `ERROR :Server shutting down`, waits up to five seconds for them to be flushed,
/// and returns.
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
}

/// A bound socket and what it serves (IRC, TLS and HTTP told apart by their first
/// bytes, TLS only, or plain IRC only).
#[derive(Debug)]
pub struct Listener {
    socket: TcpListener,
    mode: ListenMode,
}

impl Listener {
    /// `socket` (from [`bind`]) serving `mode`.
    pub fn new(socket: TcpListener, mode: ListenMode) -> Self {
        Self { socket, mode }
    }
}

/// [`run`] on several listeners at once (`--listen`): one server, one set of
/// clients, whichever port they came in on.
///
/// # Errors
///
/// As [`run`].
pub async fn run_listeners(
    listeners: Vec<Listener>,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let shared = Arc::new(Shared::new(config)?);
    // Registered channels are loaded before the first client can join one.
    let registrations = shared.store.channels().await.map_err(|error| {
        io::Error::other(format!("cannot read the channel registrations: {error}"))
    })?;
    shared.lock_world().registry.load(registrations);
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
    let expiry = tokio::spawn({
        let shared = Arc::clone(&shared);
        let stop = stop.clone();
        async move {
            crate::history::expire_until(Arc::clone(&shared.store), &shared.config.history, stop)
                .await;
        }
    });
    let saver = tokio::spawn(crate::registered::save_until(
        Arc::clone(&shared),
        stop.clone(),
    ));
    let mut backoff = Duration::from_millis(5);
    let mut spare = SpareFd::open();
    let mut death = None;
    tokio::pin!(shutdown);
    // The store is open (it is read above) and the listeners are bound: `/readyz`.
    shared.metrics.set_ready(true);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            died = drivers.died() => {
                death = Some(died);
                break;
            }
            (listener, accepted) = accept_any(&listeners) => match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::from_millis(5);
                    shared.metrics.accepted();
                    let limits = &shared.config.limits;
                    let ticket = match admission.admit(peer.ip(), limits.max_clients, limits.max_clients_per_ip) {
                        Ok(ticket) => ticket,
                        Err(refusal) => {
                            tracing::info!(%peer, reason = refusal, "connection refused");
                            let drain = tracker.len() < MAX_DRAINING_REFUSALS;
                            tracker.spawn(refuse(stream, refusal, drain));
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
        None => Ok(()),
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
async fn refuse(mut stream: TcpStream, reason: &'static str, drain: bool) {
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
