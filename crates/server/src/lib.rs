//! The palaver IRC server.
//!
//! [`run`] serves IRC on a listener the caller bound (tests bind `127.0.0.1:0`) until
//! the `shutdown` future resolves; the `chat-server` binary is a thin wrapper that
//! parses the command line, binds, and calls it.
//!
//! Data flows one way: socket → `driver` and `connection` (framing, pacing) → `handlers` (one
//! file per command family) → `world` (clients, channels) → outboxes → socket. Module
//! imports follow that path: a module imports only the ones after it (`listener` →
//! `driver` → `connection` → `handlers` → `world` → `outbox` → `wakeup`, and the leaf
//! utilities such as `config`, `caps`, `secret` and `admission`), never one before it.
//! On a cluster (`Config::cluster`), `cluster` is a second entrance beside the
//! listener: it applies what other nodes say to the world and forwards what the
//! world queued for their users, in the wire format of `bus`.
//! See ARCHITECTURE.md for the map, the layers and the invariants.

pub mod config;
pub mod config_file;
pub mod logging;
pub mod opers;

mod accounts;
mod admission;
mod bans;
mod bus;
mod caps;
mod cluster;
mod connection;
mod control;
mod driver;
mod flood;
mod handlers;
mod history;
mod isupport;
mod labeled;
mod listener;
mod metrics;
mod outbox;
mod registered;
mod relay;
mod reload;
mod scram;
mod secret;
mod throttle;
mod transport;
mod wakeup;
mod web;
mod world;

use std::sync::{Arc, Mutex, MutexGuard};

pub use config::{
    AccountsConfig, ClusterConfig, Config, ConnectLimit, FloodLimit, Limits, StsPolicy,
};
pub use control::RunOutcome;
pub use listener::{Listener, bind, run, run_listeners};
pub use reload::{ConfigSource, Reloaded, Reloader};
pub use transport::opening::ListenMode;
pub use transport::tls::{ServerTls, TlsError};
pub use web::WebClient;

/// The version string in 002, 004 and VERSION.
pub const VERSION: &str = concat!("palaver-", env!("CARGO_PKG_VERSION"));

/// State shared by every connection of one server.
#[derive(Debug)]
struct Shared {
    /// The configuration now in force: swapped whole by a reload (`reload`), read
    /// lock-free everywhere with [`Shared::config`]. The world holds the same `Arc`
    /// (replaced under its lock), and each connection keeps the one it opened with.
    config: arc_swap::ArcSwap<Config>,
    /// The one lock around the world: handlers hold it briefly and never across
    /// `.await` or socket I/O (clippy's `await_holding_lock` is denied).
    world: Mutex<world::World>,
    /// Bounds the slow work handlers defer (password hashing) that runs at once on
    /// the blocking pool, so a burst of OPER attempts cannot hog every core.
    slow_work: tokio::sync::Semaphore,
    /// Accounts, registered channels and history (see `palaver_store`). Appends
    /// happen with the world locked (they only queue); queries and account checks
    /// run in deferred jobs, never under the lock.
    store: Arc<dyn palaver_store::Store>,
    /// The K-lines and D-lines in force; the world holds the same list (handlers
    /// change it), the listener checks D-lines here without the world lock.
    bans: Arc<Mutex<bans::ServerBans>>,
    /// Operator requests for the whole process (`DIE`, `RESTART`), picked up by
    /// the listener; the world holds the same one for the handlers.
    control: Arc<control::ServerControl>,
    /// What operators see at `/metrics` and `/readyz` (the world holds its own
    /// counters; see `metrics`).
    metrics: Arc<metrics::Metrics>,
    /// This node's connection to its cluster (`--cluster`); the link task holds a
    /// clone. `None` on a server of its own.
    cluster: Option<bus::Bus>,
    /// Where NICK queues its cluster-wide claims (the world holds a clone for
    /// releases): see `cluster::claims`.
    claims: Option<cluster::claims::Claims>,
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Deferred slow jobs (argon2 verifications) that may run at the same time: one, so
/// that password checks can never take every core (failed attempts are also
/// limited per address, see `world::auth_failures`).
const SLOW_WORK_PERMITS: usize = 1;

impl Shared {
    /// The shared state for `config`, with its store (an in-memory one of its own
    /// if the configuration names none).
    fn new(
        config: Config,
        cluster: Option<bus::Bus>,
        claims: Option<cluster::claims::Claims>,
    ) -> std::io::Result<Self> {
        let store: Arc<dyn palaver_store::Store> = match &config.store {
            Some(store) => Arc::clone(store),
            None => Arc::new(
                palaver_store::SqliteStore::open_in_memory().map_err(|error| {
                    std::io::Error::other(format!("cannot open the in-memory store: {error}"))
                })?,
            ),
        };
        let config = Arc::new(config);
        let metrics = Arc::new(metrics::Metrics::default());
        let mut world = world::World::new(
            Arc::clone(&config),
            Arc::clone(&store),
            Arc::clone(&metrics),
        );
        if let (Some(bus), Some(claims)) = (&cluster, &claims) {
            world.join_cluster(&bus.node, Arc::default(), claims.clone());
        }
        let bans = Arc::clone(&world.bans);
        let control = Arc::clone(&world.control);
        Ok(Self {
            world: Mutex::new(world),
            bans,
            control,
            metrics,
            config: arc_swap::ArcSwap::new(config),
            slow_work: tokio::sync::Semaphore::new(SLOW_WORK_PERMITS),
            store,
            cluster,
            claims,
        })
    }

    /// The configuration now in force (a cheap, lock-free load; see `reload`).
    fn config(&self) -> arc_swap::Guard<Arc<Config>> {
        self.config.load()
    }

    /// Locks the world. A handler that panicked cannot leave it half-changed in a way
    /// that matters more than refusing service to everyone, so poisoning is ignored.
    fn lock_world(&self) -> MutexGuard<'_, world::World> {
        self.world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
