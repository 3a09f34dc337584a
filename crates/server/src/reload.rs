//! Live reload: SIGHUP and the `REHASH` operator command read the configuration
//! again and put it in force without dropping a connection.
//!
//! Where the configuration comes from is the embedder's business (`chat-server`
//! reads its command line and `--config` file again): it hands the server a
//! [`Reloader`] built from a [`ConfigSource`]. A reload
//! 1. loads the new configuration on the blocking pool (files are read there);
//! 2. if that fails, keeps the current configuration and says why: in the log, and
//!    to every operator in a server NOTICE (the one who sent REHASH included);
//! 3. otherwise merges it with the running one ([`merge`]): what can change live
//!    (MOTD, operators, limits, the connection password, account and history
//!    settings, web settings) comes from the new one; what cannot (the server's name,
//!    threads, the store, whether history is kept) stays, and is reported as needing
//!    a restart, as are the embedder's own (the main address, data directory);
//! 4. swaps the merged configuration into [`Shared`] and the world in one step,
//!    has the accept loop open and close the reloadable listeners (`--listen`) the
//!    new configuration lists, and reads the TLS certificate files again.
//!
//! What "in force" means: commands, new connections and the world use the new
//! configuration at once; a connection already open keeps the per-connection
//! limits it opened with (sendq, recvq, pacing, ping times), as a kernel socket
//! keeps its buffer sizes. Registered clients are sent the ISUPPORT tokens that
//! changed (a new `CHANLIMIT`, say), as ergo does. Reloads run one at a time.

use std::fmt;
use std::sync::Arc;

use crate::config::Config;
use crate::{Shared, lock};

/// Reads the configuration again for a reload.
pub trait ConfigSource: Send + Sync + 'static {
    /// The configuration as its files and options say now, or every problem found
    /// (the running configuration is then kept).
    fn load(&self) -> Result<Reloaded, Vec<String>>;

    /// What to call the source in messages: the configuration file's path.
    fn describe(&self) -> String;
}

/// A configuration read again, with what the embedder found changed that only a
/// restart applies (e.g. the main address).
#[derive(Debug)]
pub struct Reloaded {
    /// The new configuration (its store, TLS and reloader are ignored: the running
    /// server's stay).
    pub config: Config,
    /// Settings that changed but need a restart, in the operator's words.
    pub needs_restart: Vec<String>,
    /// The reloadable listeners (`--listen`) as the configuration now lists them,
    /// by the address each is bound for: those not open yet are opened, those no
    /// longer listed closed (see [`crate::Listener::reloadable`]). `None` leaves
    /// them as they are.
    pub listeners: Option<Vec<(std::net::SocketAddr, crate::ListenMode)>>,
}

/// A reload's list of listeners, sent to the accept loop, which answers with what
/// it did.
#[derive(Debug)]
pub(crate) struct ListenerChange {
    /// The reloadable listeners wanted.
    pub(crate) wanted: Vec<(std::net::SocketAddr, crate::ListenMode)>,
    /// What was opened, closed or could not be, in sentences.
    pub(crate) done: tokio::sync::oneshot::Sender<Vec<String>>,
}

/// The handle through which a running server is asked to reload: the embedder keeps
/// a clone (SIGHUP) and puts one in [`Config::reloader`] (REHASH).
#[derive(Clone)]
pub struct Reloader(Arc<Inner>);

struct Inner {
    source: Box<dyn ConfigSource>,
    /// Set by [`Reloader::request`], awaited by the server's reload task.
    requested: tokio::sync::Notify,
    /// One reload at a time: a SIGHUP during a REHASH waits for it.
    one_at_a_time: tokio::sync::Mutex<()>,
    /// To the accept loop of the server using this reloader (`attach_listeners`).
    listener_changes: std::sync::Mutex<Option<tokio::sync::mpsc::Sender<ListenerChange>>>,
}

impl fmt::Debug for Reloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Reloader")
            .field(&self.0.source.describe())
            .finish()
    }
}

impl Reloader {
    /// A reloader reading `source`.
    pub fn new(source: impl ConfigSource) -> Self {
        Self(Arc::new(Inner {
            source: Box::new(source),
            requested: tokio::sync::Notify::new(),
            one_at_a_time: tokio::sync::Mutex::new(()),
            listener_changes: std::sync::Mutex::new(None),
        }))
    }

    /// Connects the accept loop of the server now starting: reloads send it their
    /// lists of listeners.
    pub(crate) fn attach_listeners(&self) -> tokio::sync::mpsc::Receiver<ListenerChange> {
        // One change at a time is all a reload (one at a time) ever sends.
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        *lock(&self.0.listener_changes) = Some(sender);
        receiver
    }

    /// Asks the running server to reload (SIGHUP). Returns at once; the outcome is
    /// logged and told to the operators. Requests made during a reload are folded
    /// into one more reload after it.
    pub fn request(&self) {
        self.0.requested.notify_one();
    }

    /// What the source is called in messages.
    pub(crate) fn describe(&self) -> String {
        self.0.source.describe()
    }
}

/// Serves [`Reloader::request`]s until the server stops.
pub(crate) async fn serve_requests(
    shared: Arc<Shared>,
    reloader: Reloader,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = reloader.0.requested.notified() => {}
        }
        // The outcome is logged and sent to the operators by `reload` itself.
        let _ = reload(&shared, &reloader, "SIGHUP").await;
    }
}

/// Reloads the configuration (see the module documentation), asked for by `by` (a
/// signal's name or an operator's nick). Returns the sentence reported to the
/// operators, `Err` if the configuration was kept.
pub(crate) async fn reload(
    shared: &Shared,
    reloader: &Reloader,
    by: &str,
) -> Result<String, String> {
    let _one = reloader.0.one_at_a_time.lock().await;
    let inner = Arc::clone(&reloader.0);
    let loaded = tokio::task::spawn_blocking(move || inner.source.load())
        .await
        .unwrap_or_else(|error| Err(vec![format!("the reload stopped: {error}")]));
    let reloaded = match loaded {
        Ok(reloaded) => reloaded,
        Err(problems) => {
            let text = format!(
                "Reload ({by}) failed; the current configuration is kept: {}",
                problems.join("; ")
            );
            tracing::error!(by, problems = %problems.join("; "), "configuration not reloaded; the current one is kept");
            tell_opers(shared, &text);
            return Err(text);
        }
    };
    let current = shared.config.load_full();
    let (next, changed, mut needs_restart) = merge(&current, reloaded.config);
    needs_restart.extend(reloaded.needs_restart.iter().cloned());
    let next = Arc::new(next);
    {
        // The world first, then `Shared`: a connection opened in between gets the
        // old configuration, as if it had opened a moment earlier.
        let mut world = shared.lock_world();
        world.config = Arc::clone(&next);
        // Clients already registered learn the new limits (005 with the changed
        // tokens, `-NAME` for withdrawn ones), as at registration.
        let changes = crate::isupport::changes(&current, &next);
        if !changes.is_empty() {
            announce_isupport(&world, &changes);
        }
    }
    shared.config.store(next);
    let mut notes = Vec::new();
    if let Some(wanted) = reloaded.listeners {
        let sender = lock(&reloader.0.listener_changes).clone();
        if let Some(sender) = sender {
            let (done, report) = tokio::sync::oneshot::channel();
            if sender.send(ListenerChange { wanted, done }).await.is_ok() {
                notes.extend(report.await.unwrap_or_default());
            }
        }
    }
    if let Some(tls) = current.tls.clone() {
        match tokio::task::spawn_blocking(move || tls.reload(true).map(|new| (new, tls))).await {
            Ok(Ok((true, tls))) => notes.push(format!(
                "TLS certificate reloaded (SHA-256 {})",
                tls.fingerprint()
            )),
            Ok(Ok((false, _))) => {}
            Ok(Err(error)) => notes.push(format!(
                "the TLS certificate could not be read, the current one is kept: {error}"
            )),
            Err(error) => notes.push(format!("the TLS certificate was not reloaded: {error}")),
        }
    }
    let mut text = format!("Configuration reloaded ({by})");
    if changed.is_empty() {
        text.push_str("; nothing changed");
    } else {
        text.push_str(&format!("; changed: {}", changed.join(", ")));
    }
    if !needs_restart.is_empty() {
        text.push_str(&format!(
            "; changed but needing a restart: {}",
            needs_restart.join(", ")
        ));
    }
    for note in notes {
        text.push_str("; ");
        text.push_str(&note);
    }
    tracing::info!(by, changed = %changed.join(", "), needs_restart = %needs_restart.join(", "), "configuration reloaded");
    // A status line, like the address and the fingerprint at startup: whoever
    // watches the server's output sees the reload and a new fingerprint.
    crate::logging::print_stdout(format_args!("{text}"));
    tell_opers(shared, &text);
    Ok(text)
}

/// The configuration to run with after a reload: `new`, except what only a restart
/// can change, which stays as `current` has it. Also returns the names of the
/// settings that changed and of those that changed but need a restart.
fn merge(current: &Config, new: Config) -> (Config, Vec<&'static str>, Vec<String>) {
    let mut changed = Vec::new();
    let mut needs_restart = Vec::new();
    // `Debug` is the comparison: every field has one, and it redacts only the
    // password, compared by value below.
    fn differs(a: &impl fmt::Debug, b: &impl fmt::Debug) -> bool {
        format!("{a:?}") != format!("{b:?}")
    }
    if current.password != new.password {
        changed.push("connection password");
    }
    for (name, differ) in [
        ("motd", differs(&current.motd, &new.motd)),
        ("operators", differs(&current.opers, &new.opers)),
        ("limits", differs(&current.limits, &new.limits)),
        (
            "server description",
            current.server_description != new.server_description,
        ),
        (
            "history settings",
            differs(&current.history.retention, &new.history.retention)
                || current.history.max_per_request != new.history.max_per_request
                || current.history.join_notice != new.history.join_notice,
        ),
        (
            "account settings",
            differs(&current.accounts, &new.accounts),
        ),
        (
            "allowed origins",
            current.allowed_origins != new.allowed_origins,
        ),
        (
            "plaintext SASL",
            current.allow_plaintext_sasl != new.allow_plaintext_sasl,
        ),
        ("STS policy", current.sts != new.sts),
        ("web client", differs(&current.web, &new.web)),
    ] {
        if differ {
            changed.push(name);
        }
    }
    for (name, differ) in [
        ("server-name", current.server_name != new.server_name),
        ("network-name", current.network_name != new.network_name),
        (
            "threads",
            current.connection_threads != new.connection_threads,
        ),
        ("no-history", current.history.enabled != new.history.enabled),
        ("cluster", differs(&current.cluster, &new.cluster)),
    ] {
        if differ {
            needs_restart.push(name.to_owned());
        }
    }
    let mut merged = Config {
        server_name: current.server_name.clone(),
        network_name: current.network_name.clone(),
        connection_threads: current.connection_threads,
        store: current.store.clone(),
        tls: current.tls.clone(),
        reloader: current.reloader.clone(),
        cluster: current.cluster.clone(),
        ..new
    };
    merged.history.enabled = current.history.enabled;
    (merged, changed, needs_restart)
}

/// A server NOTICE to every operator: they run the server, so they hear how a
/// reload went whoever asked for it.
fn tell_opers(shared: &Shared, text: &str) {
    shared.lock_world().notice_opers(&format!("*** {text}"));
}

/// Sends every registered client `RPL_ISUPPORT` with `tokens`, as many to a line
/// as at registration.
fn announce_isupport(world: &crate::world::World, tokens: &[String]) {
    for client in world.clients.values().filter(|c| c.is_registered()) {
        for chunk in tokens.chunks(crate::isupport::TOKENS_PER_LINE) {
            let mut reply = world
                .server_line(client.id, palaver_proto::numeric::RPL_ISUPPORT)
                .param(client.nick());
            for token in chunk {
                reply = reply.param(token);
            }
            reply.trailing("are supported by this server").send();
        }
    }
}
