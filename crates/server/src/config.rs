//! Everything a server operator can tune, with the defaults that make
//! `chat-server <IP> <PORT>` a complete server without a configuration file.
//!
//! Every limit here bounds something a peer can grow (connections, queues, names,
//! lists), and the values announced in `RPL_ISUPPORT` are derived from these fields,
//! so what we announce is always what we enforce.

use std::sync::Arc;
use std::time::Duration;

use palaver_store::{Retention, Store};

/// The server's identity and limits.
///
/// Its `Debug` output shows the connection password as `<redacted>`, so a logged
/// configuration never leaks it.
#[derive(Clone)]
pub struct Config {
    /// Our name in the source of server messages (`:name 001 ...`).
    pub server_name: String,
    /// One line describing this server (LINKS).
    pub server_description: String,
    /// `RPL_ISUPPORT NETWORK=`, shown by clients as the network's name.
    pub network_name: String,
    /// Connection password (`PASS`); `None` lets anyone register.
    pub password: Option<String>,
    /// Message of the day, one entry per line; `None` answers `422 ERR_NOMOTD`.
    pub motd: Option<Vec<String>>,
    /// Bounds on everything a client controls.
    pub limits: Limits,
    /// IRC operators (`OPER <name> <password>`), with argon2id password hashes.
    pub opers: Vec<crate::opers::OperCredential>,
    /// Threads serving connections; `None` runs one per core the process may use
    /// (CPU affinity counts, so `taskset` narrows it).
    pub connection_threads: Option<std::num::NonZeroUsize>,
    /// Where accounts, registered channels and history live. `None` (tests, the
    /// library default) gives each server an in-memory SQLite store of its own;
    /// `chat-server` opens `--data-dir` (or memory with `--ephemeral`) before it
    /// binds, so a locked or corrupt database is reported before anything listens.
    pub store: Option<Arc<dyn Store>>,
    /// Message history: whether it is kept, and for how long.
    pub history: HistoryConfig,
    /// Scale-out: this server is one node of a cluster sharing a NATS bus
    /// (`--cluster`, `--node-name`); `None` is a server on its own.
    pub cluster: Option<ClusterConfig>,
    /// Account registration and nickname ownership.
    pub accounts: AccountsConfig,
    /// The certificate TLS connections get; `None` refuses TLS handshakes (the
    /// library default). `chat-server` makes a self-signed one on first start.
    pub tls: Option<Arc<crate::transport::tls::ServerTls>>,
    /// Web origins allowed to open WebSocket connections (`Origin` header, e.g.
    /// `https://chat.example.org`); empty allows every origin.
    pub allowed_origins: Vec<String>,
    /// Plaintext SASL PLAIN from other than loopback: refused unless this is set,
    /// since the password would cross the network in clear text.
    pub allow_plaintext_sasl: bool,
    /// Strict Transport Security (the IRCv3 `sts` capability): clients that see it
    /// on a plain connection reconnect with TLS and keep doing so for `duration`.
    /// Only offered with a certificate clients can verify; `chat-server` sets it
    /// for `--tls-cert` (never for the self-signed one, which would lock clients
    /// out).
    pub sts: Option<StsPolicy>,
    /// What a browser gets at `/` on the port: palaver's own client (embedded),
    /// another one from a directory (`--web-dir`), or nothing (`--no-web`).
    pub web: crate::web::WebClient,
    /// How SIGHUP and `REHASH` read the configuration again (`chat-server` reads
    /// its command line and `--config` file); `None` answers REHASH with a NOTICE
    /// that nothing can be reloaded.
    pub reloader: Option<crate::reload::Reloader>,
    /// The networks whose peers may read `/metrics` (`--metrics-allow`); the others
    /// get `403 Forbidden`. By default loopback only ([`default_metrics_allow`]):
    /// the counts say how busy the server is and which commands are used, which is
    /// nobody else's business.
    pub metrics_allow: Vec<ipnet::IpNet>,
}

/// `127.0.0.0/8` and `::1/128`: who may read `/metrics` unless told otherwise.
pub fn default_metrics_allow() -> Vec<ipnet::IpNet> {
    vec![
        ipnet::IpNet::V4(ipnet::Ipv4Net::new_assert(std::net::Ipv4Addr::LOCALHOST, 8)),
        ipnet::IpNet::V6(ipnet::Ipv6Net::new_assert(
            std::net::Ipv6Addr::LOCALHOST,
            128,
        )),
    ]
}

impl Config {
    /// Whether a peer at `ip` may read `/metrics`. An IPv4 peer on a dual-stack
    /// socket arrives as `::ffff:a.b.c.d` and is checked as `a.b.c.d`.
    pub fn metrics_allowed(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.metrics_allow.iter().any(|net| net.contains(&ip))
    }
}

/// Where TLS is served and how long clients should insist on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StsPolicy {
    /// The port that serves TLS (on the same host).
    pub port: u16,
    /// How long a client keeps using TLS after seeing the policy.
    pub duration: Duration,
}

/// How accounts are registered and what owning one means.
#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// `REGISTER` is allowed before the connection is complete (the
    /// `before-connect` value of `draft/account-registration`).
    pub register_before_connect: bool,
    /// `REGISTER` needs an e-mail address (`email-required`). No mail is sent
    /// (there is no mail transport): the address is only kept with the account.
    pub email_required: bool,
    /// The shortest password accepted, in bytes.
    pub min_password_bytes: usize,
    /// How long someone not logged in to an account may use its name as a nick
    /// before being renamed to a guest nick; `None` never renames.
    pub nick_grace: Option<Duration>,
}

/// The shortest password accepted by default, in bytes.
const MIN_PASSWORD_BYTES: usize = 8;

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            register_before_connect: true,
            email_required: false,
            min_password_bytes: MIN_PASSWORD_BYTES,
            nick_grace: Some(Duration::from_secs(60)),
        }
    }
}

/// What history the server keeps (`draft/chathistory`).
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// Store messages and answer CHATHISTORY. Off, nothing is written and relay
    /// does not wait for commits (the `history off` column of docs/PERFORMANCE.md).
    pub enabled: bool,
    /// How long and how many messages per target are kept (`--history-max-age`,
    /// `--history-max-messages`); `None` fields keep everything.
    pub retention: Retention,
    /// How often expiry runs; each run deletes in small batches off the hot path.
    pub expiry_period: Duration,
    /// Most messages one CHATHISTORY request returns (ISUPPORT `CHATHISTORY=`).
    pub max_per_request: usize,
    /// Tell each joiner, in one NOTICE after the JOIN burst, that the channel's
    /// messages are kept (and how to turn that off). `test_config` turns it off so
    /// that tests of the JOIN burst see only the burst.
    pub join_notice: bool,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            retention: Retention::default(),
            expiry_period: Duration::from_secs(60),
            max_per_request: 1000,
            join_notice: true,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server_name: "palaver.local".to_owned(),
            server_description: "palaver chat server".to_owned(),
            network_name: "Palaver".to_owned(),
            password: None,
            motd: Some(vec![
                "Welcome to palaver.".to_owned(),
                "Join #lobby to meet everyone: /join #lobby".to_owned(),
            ]),
            limits: Limits::default(),
            opers: Vec::new(),
            connection_threads: None,
            store: None,
            history: HistoryConfig::default(),
            cluster: None,
            accounts: AccountsConfig::default(),
            tls: None,
            allowed_origins: Vec::new(),
            allow_plaintext_sasl: false,
            sts: None,
            web: crate::web::WebClient::default(),
            reloader: None,
            metrics_allow: default_metrics_allow(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field named, so that a new one (a secret?) needs a decision here.
        let Self {
            server_name,
            server_description,
            network_name,
            password,
            motd,
            limits,
            opers,
            connection_threads,
            store,
            history,
            cluster,
            accounts,
            tls,
            allowed_origins,
            allow_plaintext_sasl,
            sts,
            web,
            reloader,
            metrics_allow,
        } = self;
        f.debug_struct("Config")
            .field("server_name", server_name)
            .field("server_description", server_description)
            .field("network_name", network_name)
            .field("password", &password.as_ref().map(|_| "<redacted>"))
            .field("motd", motd)
            .field("limits", limits)
            .field("opers", opers)
            .field("connection_threads", connection_threads)
            .field("store", &store.as_ref().map(|_| "<store>"))
            .field("history", history)
            .field("cluster", cluster)
            .field("accounts", accounts)
            .field("tls", &tls.as_ref().map(|tls| tls.fingerprint()))
            .field("allowed_origins", allowed_origins)
            .field("allow_plaintext_sasl", allow_plaintext_sasl)
            .field("sts", sts)
            .field("web", web)
            .field("reloader", reloader)
            .field("metrics_allow", metrics_allow)
            .finish()
    }
}

/// How this node joins a cluster (see the `cluster` module docs and
/// docs/OPERATIONS.md).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The NATS server, `nats://host:4222` (JetStream enabled, for nick claims).
    pub url: String,
    /// This node's name, unique in the cluster (letters, digits, `-`): it is in
    /// every subject addressed to the node, its nick claims and its message ids.
    pub node_name: String,
    /// Subject prefix (and nick bucket name), so clusters can share a NATS server.
    pub prefix: String,
    /// How often this node tells the others it is alive.
    pub heartbeat: Duration,
    /// Silence after which another node counts as lost: its users quit here and
    /// their nicks are free again.
    pub node_timeout: Duration,
}

impl ClusterConfig {
    /// A cluster on the NATS server at `url`, as node `node_name`, with the
    /// default prefix (`palaver`), a 1 s heartbeat and a 5 s node timeout.
    pub fn new(url: impl Into<String>, node_name: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            node_name: node_name.into(),
            prefix: "palaver".to_owned(),
            heartbeat: Duration::from_secs(1),
            node_timeout: Duration::from_secs(5),
        }
    }
}

/// Per-connection and per-server limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Registered and unregistered connections at once; the next gets `ERROR :Server full`.
    pub max_clients: usize,
    /// Connections from one IP address at once.
    pub max_clients_per_ip: usize,
    /// Channels one client may be in (`CHANLIMIT`).
    pub max_channels_per_client: usize,
    /// Time allowed between connecting and completing registration.
    pub registration_timeout: Duration,
    /// Silence after which the server sends a PING.
    pub ping_interval: Duration,
    /// Time allowed to answer that PING before "Ping timeout".
    pub ping_timeout: Duration,
    /// Bytes queued for one client before it is dropped with "SendQ exceeded".
    pub sendq_bytes: usize,
    /// Bytes of received lines waiting for flood tokens before "Excess Flood".
    pub recvq_bytes: usize,
    /// Command pacing; `None` lifts it (tests, benchmarks, trusted bots).
    pub flood: Option<FloodLimit>,
    /// New connections from one IP address (`--connect-burst`, `--connect-rate`);
    /// `None` lifts it. Loopback is exempt unless `throttle_loopback` is set.
    pub connect_per_ip: Option<ConnectLimit>,
    /// New connections from one network, a /24 (IPv4) or /64 (IPv6)
    /// (`--connect-network-burst`, `--connect-network-rate`); `None` lifts it.
    pub connect_per_network: Option<ConnectLimit>,
    /// Throttle connections from loopback too. Off by default: a reverse proxy or
    /// a local tool (chat-bench) makes everyone one loopback address, which these
    /// per-address limits would throttle as one client, and a local flood needs a
    /// shell on the machine, which allows worse (docs/OPERATIONS.md).
    pub throttle_loopback: bool,
    /// K-lines and D-lines together (operators set them, so they are bounded too).
    pub max_server_bans: usize,
    /// `NICKLEN`.
    pub nick_len: usize,
    /// `USERLEN` (the `~` we prepend is not counted).
    pub user_len: usize,
    /// `CHANNELLEN`.
    pub channel_len: usize,
    /// `TOPICLEN`.
    pub topic_len: usize,
    /// `KICKLEN`.
    pub kick_len: usize,
    /// `AWAYLEN`.
    pub away_len: usize,
    /// Longest real name kept from USER.
    pub realname_len: usize,
    /// Targets in one PRIVMSG/NOTICE (`MAXTARGETS`), users in one KICK
    /// (`TARGMAX=KICK:`).
    pub max_targets: usize,
    /// Parameterised mode changes in one MODE command (`MODES`).
    pub max_modes: usize,
    /// Entries in a channel's ban, ban-exception and invite-exception lists
    /// together (`MAXLIST=beI:`).
    pub max_bans: usize,
    /// Departed nicknames remembered for WHOWAS.
    pub whowas_entries: usize,
    /// `draft/read-marker` targets remembered per client; the one read longest ago
    /// is forgotten first.
    pub read_markers_per_client: usize,
    /// Recently relayed messages remembered (sender, target, time; never text) so
    /// `draft/message-redaction` can check a REDACT; the oldest is forgotten first.
    pub redact_history: usize,
    /// How long after sending a message it may still be redacted.
    pub redact_window: Duration,
    /// Bytes of text in one draft/multiline batch (its CAP value `max-bytes`).
    pub multiline_max_bytes: usize,
    /// Lines in one draft/multiline batch (its CAP value `max-lines`).
    pub multiline_max_lines: usize,
    /// Pending INVITEs a client can hold; the oldest is forgotten first.
    pub max_invites: usize,
    /// Nicknames one client may MONITOR (`MONITOR=`).
    pub max_monitor: usize,
    /// Channels on the whole server; JOIN of a new channel past it gets
    /// `405 ERR_TOOMANYCHANNELS`. See docs/OPERATIONS.md for the memory these
    /// server-wide limits bound together.
    pub max_channels_total: usize,
    /// Ban, ban-exception and invite-exception entries on the whole server; past it
    /// `478 ERR_BANLISTFULL`.
    pub max_list_entries_total: usize,
    /// Metadata keys on the whole server (clients and channels); past it
    /// `FAIL METADATA LIMIT_REACHED`.
    pub max_metadata_total: usize,
    /// MONITOR entries on the whole server; past it `734 ERR_MONLISTFULL`.
    pub max_monitor_total: usize,
    /// `draft/read-marker` entries on the whole server; past it a new marker replaces
    /// the owner's oldest one, or is not stored if it has none.
    pub max_read_markers_total: usize,
    /// Metadata keys one client or channel may hold (`draft/metadata-3` `max-keys`).
    pub metadata_max_keys: usize,
    /// Metadata keys one client may subscribe to (`max-subs`).
    pub metadata_max_subs: usize,
    /// Longest metadata key name (`max-key-bytes`).
    pub metadata_key_bytes: usize,
    /// Longest metadata value (`max-value-bytes`; lowered if a reply carrying it
    /// would not fit in one line).
    pub metadata_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_clients: 100_000,
            max_clients_per_ip: 100,
            max_channels_per_client: 50,
            registration_timeout: Duration::from_secs(60),
            ping_interval: Duration::from_secs(120),
            ping_timeout: Duration::from_secs(60),
            sendq_bytes: 512 * 1024,
            recvq_bytes: 8 * 1024,
            flood: Some(FloodLimit::default()),
            connect_per_ip: Some(ConnectLimit::PER_IP),
            connect_per_network: Some(ConnectLimit::PER_NETWORK),
            throttle_loopback: false,
            max_server_bans: 10_000,
            nick_len: 30,
            user_len: 16,
            channel_len: 64,
            topic_len: 390,
            kick_len: 390,
            away_len: 390,
            realname_len: 128,
            max_targets: 4,
            max_modes: 4,
            max_bans: 100,
            whowas_entries: 1024,
            read_markers_per_client: 256,
            redact_history: 16_384,
            redact_window: Duration::from_secs(15 * 60),
            max_invites: 32,
            multiline_max_bytes: 4096,
            multiline_max_lines: 32,
            max_monitor: 100,
            max_channels_total: 200_000,
            max_list_entries_total: 1_000_000,
            max_metadata_total: 1_000_000,
            max_monitor_total: 1_000_000,
            max_read_markers_total: 1_000_000,
            metadata_max_keys: 20,
            metadata_max_subs: 50,
            metadata_key_bytes: 64,
            metadata_value_bytes: 300,
        }
    }
}

/// A token bucket for commands: `burst` at once, then `per_second`.
#[derive(Debug, Clone, Copy)]
pub struct FloodLimit {
    /// Commands a quiet client may send at once.
    pub burst: u32,
    /// Commands per second after the burst is spent.
    pub per_second: f64,
}

impl Default for FloodLimit {
    fn default() -> Self {
        Self {
            burst: 20,
            per_second: 4.0,
        }
    }
}

/// A token bucket for new connections: `burst` at once, then `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectLimit {
    /// Connections that may arrive at once.
    pub burst: u32,
    /// Connections per second after the burst is spent.
    pub per_second: f64,
}

impl ConnectLimit {
    /// The default per address: a user reconnecting (clients wait a second or more
    /// between attempts) or a few dozen users behind one NAT after a server
    /// restart never see it; a script opening connections in a loop does at once.
    pub const PER_IP: Self = Self {
        burst: 20,
        per_second: 1.0,
    };

    /// The default per /24 or /64: room for a busy office or campus network, while
    /// one host cycling through its /64 (or many hosts of one /24) is still slowed.
    pub const PER_NETWORK: Self = Self {
        burst: 50,
        per_second: 5.0,
    };
}
