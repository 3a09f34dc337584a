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
//! See ARCHITECTURE.md for the map, the layers and the invariants.

pub mod config;
pub mod logging;
pub mod opers;

mod accounts;
mod admission;
mod caps;
mod connection;
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
mod scram;
mod secret;
mod transport;
mod wakeup;
mod web;
mod world;

use std::sync::{Arc, Mutex, MutexGuard};

pub use config::{AccountsConfig, Config, FloodLimit, Limits, StsPolicy};
pub use listener::{Listener, bind, run, run_listeners};
pub use transport::opening::ListenMode;
pub use transport::tls::{ServerTls, TlsError};
pub use web::WebClient;

/// The version string in 002, 004 and VERSION.
pub const VERSION: &str = concat!("palaver-", env!("CARGO_PKG_VERSION"));

/// State shared by every connection of one server.
#[derive(Debug)]
struct Shared {
    config: Arc<Config>,
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
    /// What operators see at `/metrics` and `/readyz` (the world holds its own
    /// counters; see `metrics`).
    metrics: Arc<metrics::Metrics>,
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
    fn new(config: Config) -> std::io::Result<Self> {
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
        Ok(Self {
            world: Mutex::new(world::World::new(
                Arc::clone(&config),
                Arc::clone(&store),
                Arc::clone(&metrics),
            )),
            metrics,
            config,
            slow_work: tokio::sync::Semaphore::new(SLOW_WORK_PERMITS),
            store,
        })
    }

    /// Locks the world. A handler that panicked cannot leave it half-changed in a way
    /// that matters more than refusing service to everyone, so poisoning is ignored.
    fn lock_world(&self) -> MutexGuard<'_, world::World> {
        self.world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
