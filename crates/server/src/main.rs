//! `chat-server <IP> <PORT>`: a complete IRC server with no configuration file.
//!
//! This binary only parses the command line, sets up logging, binds the port and
//! hands over to [`palaver_server::run`]; errors that a user can fix are printed as
//! one sentence saying what went wrong and what to try, with exit status 1.

use std::ffi::OsString;
use std::io::{ErrorKind, IsTerminal, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// jemalloc rather than the system allocator: its size classes and aligned
/// allocations cost less per idle connection (the reactor's per-socket state is
/// 128-byte aligned), and it returns freed memory to the system (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use anyhow::Context as _;
use clap::Parser;
use palaver_server::config_file::FileOptions;
use palaver_server::{Config, FloodLimit, ListenMode, Listener, RunOutcome, VERSION, logging};
use tracing_subscriber::EnvFilter;

/// `println!` that never panics (the reader of stdout may be gone): see
/// `palaver_server::logging`.
macro_rules! say {
    ($($arg:tt)*) => { logging::print_stdout(format_args!($($arg)*)) };
}

/// `eprintln!` that never panics (the reader of stderr may be gone).
macro_rules! complain {
    ($($arg:tt)*) => { logging::print_stderr(format_args!($($arg)*)) };
}

/// A self-hosted IRC chat server. Connect with any IRC client, or with chat-client.
///
/// (No `Debug`: it holds passwords, which must never reach a log.)
#[derive(Parser)]
#[command(
    name = "chat-server",
    version,
    about,
    override_usage = "chat-server [OPTIONS] <IP> <PORT>\n       chat-server --config FILE [OPTIONS] [IP PORT]\n       chat-server --check-config FILE\n       chat-server backup [--data-dir DIR] OUT\n       chat-server restore [--data-dir DIR] BACKUP\n       chat-server --hash-password < password.txt",
    // The configuration file's options come before the command line's, and a
    // later value wins (see palaver_server::config_file).
    args_override_self = true,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Address to listen on: 127.0.0.1 for this machine only, 0.0.0.0 or :: for all.
    ip: Option<String>,
    /// TCP port to listen on (6667 is the usual IRC port; 0 picks a free one).
    port: Option<u16>,
    /// Copy or restore the database (see `chat-server backup --help`).
    #[command(subcommand)]
    action: Option<Action>,
    /// An IRC operator as NAME:PASSWORD (repeatable); the password is hashed at
    /// startup, but anyone on this machine can read it in the process list (ps):
    /// prefer --config with a hash from --hash-password.
    #[arg(long = "oper", value_name = "NAME:PASSWORD")]
    opers: Vec<String>,
    /// TOML configuration file: any option of this list as a key without the
    /// dashes (max-clients-per-ip = 100), ip and port, and [[oper]] entries (name,
    /// password_hash); an option given on the command line wins over the file.
    /// SIGHUP or an operator's REHASH reads it again (docs/OPERATIONS.md).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check a configuration file (with the other options given), print the
    /// configuration it gives and where each value comes from, and exit.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check_config: Option<PathBuf>,
    /// Read a password from standard input, print its argon2id hash (for the
    /// password_hash of an [[oper]] entry) and exit.
    #[arg(long)]
    hash_password: bool,
    /// Name of this server, shown as the source of server messages.
    #[arg(long, default_value = "palaver.local", env = "PALAVER_SERVER_NAME")]
    server_name: String,
    /// One line describing this server, shown by LINKS.
    #[arg(long, default_value = "palaver chat server")]
    server_description: String,
    /// Network name announced to clients (ISUPPORT NETWORK).
    #[arg(long, default_value = "Palaver")]
    network_name: String,
    /// Password clients must send with PASS before registering. Anyone on this
    /// machine can read it in the process list (ps): prefer --password-file.
    #[arg(long, env = "PALAVER_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// File whose first line is the password clients must send with PASS (kept
    /// out of the process list, unlike --password).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Text file whose lines form the message of the day.
    #[arg(long)]
    motd_file: Option<PathBuf>,
    /// Threads serving connections (default: one per core this process may use).
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    threads: Option<std::num::NonZeroUsize>,
    /// Most connections at once; the next one gets "ERROR :Server full". Default: what
    /// the file-descriptor limit allows, less a reserve; a larger value is lowered to that.
    #[arg(long, value_name = "N")]
    max_clients: Option<usize>,
    /// Most connections at once from one IP address.
    #[arg(long, default_value_t = 100)]
    max_clients_per_ip: usize,
    /// Most channels one client may be in.
    #[arg(long, default_value_t = 50)]
    max_channels: usize,
    /// Channels on the whole server (a JOIN that would create one more gets 405).
    #[arg(long, default_value_t = 200_000)]
    max_channels_total: usize,
    /// Ban, exception and invite-exception entries on the whole server.
    #[arg(long, default_value_t = 1_000_000)]
    max_list_entries_total: usize,
    /// Metadata keys on the whole server (clients and channels).
    #[arg(long, default_value_t = 1_000_000)]
    max_metadata_total: usize,
    /// MONITOR entries on the whole server.
    #[arg(long, default_value_t = 1_000_000)]
    max_monitor_total: usize,
    /// Read markers (draft/read-marker) on the whole server.
    #[arg(long, default_value_t = 1_000_000)]
    max_read_markers_total: usize,
    /// Seconds a new connection has to register.
    #[arg(long, default_value_t = 60)]
    registration_timeout: u64,
    /// Seconds of silence before the server PINGs a client.
    #[arg(long, default_value_t = 120)]
    ping_interval: u64,
    /// Seconds a client has to answer that PING.
    #[arg(long, default_value_t = 60)]
    ping_timeout: u64,
    /// Bytes queued for a client before it is dropped with "SendQ exceeded".
    #[arg(long, default_value_t = 512 * 1024)]
    sendq: usize,
    /// Bytes of paced, unprocessed input before a client is dropped with "Excess Flood".
    #[arg(long, default_value_t = 8 * 1024)]
    recvq: usize,
    /// Commands a client may send at once before pacing starts.
    #[arg(long, default_value_t = 20)]
    flood_burst: u32,
    /// Commands per second a client may send after its burst.
    #[arg(long, default_value_t = 4.0)]
    flood_rate: f64,
    /// New connections one IP address may open at once before the rate applies.
    #[arg(long, value_name = "N", default_value_t = palaver_server::ConnectLimit::PER_IP.burst)]
    connect_burst: u32,
    /// New connections per second from one IP address after its burst.
    #[arg(long, value_name = "PER_SECOND", default_value_t = palaver_server::ConnectLimit::PER_IP.per_second)]
    connect_rate: f64,
    /// New connections one network (a /24, or an IPv6 /64) may open at once.
    #[arg(long, value_name = "N", default_value_t = palaver_server::ConnectLimit::PER_NETWORK.burst)]
    connect_network_burst: u32,
    /// New connections per second from one network after its burst.
    #[arg(long, value_name = "PER_SECOND", default_value_t = palaver_server::ConnectLimit::PER_NETWORK.per_second)]
    connect_network_rate: f64,
    /// K-lines and D-lines the server keeps (KLINE/DLINE past it are refused).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_server_bans: usize,
    /// Lift command pacing, connection throttling and per-IP limits (test and
    /// benchmark setups only).
    #[arg(long)]
    no_flood_limit: bool,
    #[command(flatten)]
    data: DataDir,
    /// Keep accounts, channels and history in PostgreSQL at this URL
    /// (postgres://user:password@host:5432/palaver) instead of SQLite in
    /// --data-dir: the store several nodes of a cluster share. No TLS yet
    /// (sslmode=disable only).
    #[arg(
        long,
        value_name = "URL",
        env = "PALAVER_STORE",
        hide_env_values = true
    )]
    store: Option<String>,
    /// Keep everything in memory: nothing survives a restart (tests, throwaway
    /// servers).
    #[arg(long)]
    ephemeral: bool,
    /// When a commit counts as done: "normal" survives the server being killed at
    /// any moment; "always" also survives a power loss (one fsync per batch of
    /// messages).
    #[arg(long, value_enum, default_value_t = Fsync::Normal)]
    fsync: Fsync,
    /// Delete history older than this: a number with s, m, h or d (90d, 12h); by
    /// default history is kept until --history-max-messages.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    history_max_age: Option<Duration>,
    /// Keep at most this many messages per channel or conversation.
    #[arg(long, value_name = "N")]
    history_max_messages: Option<u64>,
    /// Keep no message history (CHATHISTORY then answers with nothing).
    #[arg(long)]
    no_history: bool,
    /// Seconds someone not logged in to an account may use its name as a nick before
    /// NickServ renames them to a guest nick; 0 never renames.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    nick_grace: u64,
    /// The shortest account password accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 8)]
    min_password_len: usize,
    /// Allow REGISTER only once the connection is complete (not `before-connect`).
    #[arg(long)]
    no_register_before_connect: bool,
    /// REGISTER needs an e-mail address (kept with the account; no mail is sent).
    #[arg(long)]
    register_email_required: bool,
    /// Do not tell joiners that a channel's history is kept (one NOTICE after the
    /// JOIN burst; some bots and test suites expect the burst alone).
    #[arg(long)]
    no_history_notice: bool,
    /// Certificate chain (PEM) for TLS, instead of the self-signed certificate made
    /// on first start; read again when the file changes and on SIGHUP.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve no TLS (handshakes are refused; plain IRC, HTTP and WebSocket still
    /// share the port).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    no_tls: bool,
    /// A web origin allowed to open WebSocket connections, e.g.
    /// https://chat.example.org (repeatable); by default any origin may.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// Accept SASL PLAIN over unencrypted connections from other machines (the
    /// password crosses the network in clear text). Loopback is always allowed.
    #[arg(long)]
    allow_plaintext_sasl: bool,
    /// Another address to listen on, as ADDR:PORT with an optional /MODE (repeatable):
    /// "auto" (the default: IRC, TLS, HTTP and WebSocket told apart by their first
    /// bytes), "tls" (TLS only, e.g. 0.0.0.0:6697/tls) or "plain" (plain IRC only).
    #[arg(long = "listen", value_name = "ADDR:PORT[/MODE]", value_parser = parse_listen)]
    listen: Vec<(SocketAddr, palaver_server::ListenMode)>,
    /// With --tls-cert: how long clients that saw the server's STS policy keep
    /// insisting on TLS (s, m, h or d); 0 offers no policy. Never offered for the
    /// self-signed certificate.
    #[arg(long, value_name = "AGE", default_value = "1d", value_parser = parse_age_or_zero)]
    sts_duration: Duration,
    /// Serve the web client in DIR (e.g. a build of gamja or Kiwi IRC) at
    /// http(s)://ADDR:PORT/ instead of palaver's own, embedded one.
    #[arg(long, value_name = "DIR")]
    web_dir: Option<PathBuf>,
    /// Serve no web client (WebSocket connections and /healthz still work).
    #[arg(long, conflicts_with = "web_dir")]
    no_web: bool,
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// How log lines are written to stderr: "text" for people, "json" (one JSON
    /// object per line) for log collectors.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// A network allowed to read /metrics, e.g. 10.0.0.0/8 or ::1/128 (repeatable);
    /// replaces the default, loopback only (127.0.0.0/8 and ::1). Others get 403.
    #[arg(long = "metrics-allow", value_name = "CIDR", value_parser = parse_network)]
    metrics_allow: Vec<ipnet::IpNet>,
    /// Run as one node of a cluster: the NATS server the nodes share
    /// (nats://host:4222, JetStream enabled). Needs --node-name; see
    /// docs/OPERATIONS.md.
    #[arg(
        long,
        value_name = "URL",
        env = "PALAVER_CLUSTER",
        requires = "node_name"
    )]
    cluster: Option<String>,
    /// This node's name in the cluster: unique, letters, digits and '-' (e.g. a,
    /// eu-1).
    #[arg(long, value_name = "NAME", env = "PALAVER_NODE_NAME", value_parser = parse_node_name)]
    node_name: Option<String>,
    /// Silence after which another cluster node counts as lost (its users quit
    /// here, their nicks are free): a number with s or m.
    #[arg(long, value_name = "TIME", default_value = "5s", value_parser = parse_age)]
    node_timeout: Duration,
}

/// `--node-name`: what can go in a NATS subject token, a KV value and a msgid.
fn parse_node_name(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 32
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "'{text}' is not a node name: 1 to 32 letters, digits or '-'"
        ))
    }
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    Text,
    /// One JSON object per event, for journald, Loki, Elasticsearch and the like.
    Json,
}

/// `--metrics-allow`: a network in CIDR notation; a bare address means that address
/// alone.
fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        // 10.1.2.3/8 means 10.0.0.0/8: say it the way the check reads it.
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>().map(ipnet::IpNet::from).map_err(|_| {
        format!("'{text}' is not a network: use CIDR notation such as 10.0.0.0/8 or ::1/128")
    })
}

/// `--data-dir`, for the server and for `backup`/`restore` alike.
#[derive(clap::Args)]
struct DataDir {
    /// Directory holding the database (accounts, registered channels, history);
    /// created on first start.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "palaver-data",
        env = "PALAVER_DATA_DIR"
    )]
    data_dir: PathBuf,
}

/// The one-off actions beside running the server.
#[derive(clap::Subcommand)]
enum Action {
    /// Copy the database of a data directory to OUT, consistently, while the
    /// server keeps running (SQLite's online backup). A PostgreSQL store (--store)
    /// is backed up with pg_dump instead.
    Backup {
        #[command(flatten)]
        data: DataDir,
        /// The backup file to write (never overwritten).
        out: PathBuf,
    },
    /// Put a backup back as a data directory's database. The server must be
    /// stopped; the database it replaces is kept beside it. (SQLite only: a
    /// PostgreSQL store is restored with pg_restore.)
    Restore {
        #[command(flatten)]
        data: DataDir,
        /// The backup file (made by `chat-server backup`).
        backup: PathBuf,
    },
}

/// `--fsync`: see [`palaver_store::SyncMode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Fsync {
    /// `synchronous=NORMAL`: durable against a killed process.
    Normal,
    /// `synchronous=FULL`: durable against a power loss.
    Always,
}

/// `--sts-duration`: an age as for `--history-max-age`, or 0 for none.
fn parse_age_or_zero(text: &str) -> Result<Duration, String> {
    if text.trim_end_matches(['s', 'm', 'h', 'd']) == "0" {
        return Ok(Duration::ZERO);
    }
    parse_age(text)
}

/// `--history-max-age`: `90d`, `12h`, `30m`, `45s` (a bare number is seconds).
fn parse_age(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let count: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not an age such as 90d, 12h or 30m"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{text}': the unit must be s, m, h or d")),
    };
    if count == 0 {
        return Err("the age must be more than 0".to_owned());
    }
    count
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("'{text}' is too long"))
}

/// The TLS certificate the options name, or this server's self-signed one (made
/// on first start and kept with the data); prints its fingerprint, which users
/// compare with what their client shows them.
fn open_tls(
    cli: &Cli,
    server_name: &str,
    addr: SocketAddr,
) -> anyhow::Result<Option<std::sync::Arc<palaver_server::ServerTls>>> {
    use palaver_server::ServerTls;
    if cli.no_tls {
        say!("TLS is off (--no-tls)");
        return Ok(None);
    }
    let tls = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = ServerTls::from_files(cert, key)?;
            say!("TLS certificate {}", cert.display());
            tls
        }
        _ => {
            let mut names = vec![server_name.to_owned(), "localhost".to_owned()];
            if !addr.ip().is_unspecified() {
                names.push(addr.ip().to_string());
            }
            let tls = if cli.ephemeral {
                ServerTls::self_signed(&names)?
            } else {
                ServerTls::self_signed_in(&cli.data.data_dir, &names)?
            };
            match tls.self_signed_dir() {
                Some(dir) => say!("TLS certificate: self-signed, kept in {}", dir.display()),
                None => say!("TLS certificate: self-signed, in memory (--ephemeral)"),
            };
            tls
        }
    };
    say!("TLS certificate SHA-256 fingerprint: {}", tls.fingerprint());
    Ok(Some(std::sync::Arc::new(tls)))
}

/// How often the operator's certificate files are checked for a change.
const CERTIFICATE_CHECK: Duration = Duration::from_secs(30);

/// Reads the operator's certificate again when its files change (checked every
/// [`CERTIFICATE_CHECK`]), so a renewed certificate (certbot, acme.sh) is used
/// without a restart; connections already open keep theirs. A file that cannot be
/// used is reported and the current certificate kept. SIGHUP reads it too, with
/// the rest of the configuration (`palaver_server::Reloader`).
async fn reload_certificate(tls: Option<std::sync::Arc<palaver_server::ServerTls>>) {
    let Some(tls) = tls else { return };
    let mut ticks = tokio::time::interval(CERTIFICATE_CHECK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match tls.reload(false) {
            Ok(true) => {
                say!(
                    "TLS certificate reloaded; SHA-256 fingerprint: {}",
                    tls.fingerprint()
                );
            }
            Ok(false) => {}
            Err(error) => {
                tracing::error!(%error, "cannot reload the TLS certificate; keeping the current one")
            }
        }
    }
}

/// Opens the store the options name and says where it is: an operator must know
/// which directory to back up.
fn open_store(cli: &Cli) -> anyhow::Result<std::sync::Arc<dyn palaver_store::Store>> {
    use palaver_store::{SqliteOptions, SqliteStore, SyncMode};
    let options = SqliteOptions {
        sync: match cli.fsync {
            Fsync::Normal => SyncMode::Normal,
            Fsync::Always => SyncMode::Full,
        },
        ..SqliteOptions::default()
    };
    if let Some(url) = &cli.store {
        // Checked with the other options too; the password is never shown.
        anyhow::ensure!(
            palaver_store::is_postgres_url(url),
            "--store takes a postgres:// or postgresql:// URL"
        );
        let store = palaver_store::PgStore::connect(url)?;
        say!(
            "data kept in PostgreSQL: {} (back it up with pg_dump)",
            store.database()
        );
        return Ok(std::sync::Arc::new(store));
    }
    if cli.ephemeral {
        let store = SqliteStore::open_in_memory_with(options)?;
        say!("data kept in memory (--ephemeral): accounts and history end with this process");
        return Ok(std::sync::Arc::new(store));
    }
    let store = SqliteStore::open_with(&cli.data.data_dir, options)?;
    let shown =
        std::path::absolute(&cli.data.data_dir).unwrap_or_else(|_| cli.data.data_dir.clone());
    say!(
        "data directory {} (database {})",
        shown.display(),
        palaver_store::DATABASE_FILE
    );
    Ok(std::sync::Arc::new(store))
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let settings = match Settings::load(&args) {
        Ok(settings) => settings,
        Err(SettingsError::Usage(error)) => error.exit(),
        Err(SettingsError::File(problems)) => {
            complain!(
                "chat-server: invalid configuration:\n  {}",
                problems.join("\n  ")
            );
            return ExitCode::FAILURE;
        }
    };
    if settings.cli.hash_password {
        return print_password_hash();
    }
    if let Some(action) = &settings.cli.action {
        return run_action(action);
    }
    if settings.cli.check_config.is_some() {
        return check_config(&settings);
    }
    if settings.cli.ip.is_none() {
        use clap::CommandFactory as _;
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "give the address and port to listen on, e.g. chat-server 127.0.0.1 6667 (or ip and port in a --config file)",
            )
            .exit();
    }
    init_logging(&settings.cli.log_level, settings.cli.log_format);
    let status = match start(settings, args) {
        Ok(RunOutcome::Stopped) => ExitCode::SUCCESS,
        // The runtime, the listeners and the store are gone (`start` returned):
        // the new process can bind the same port and open the same data.
        Ok(RunOutcome::Restart) => restart(),
        Err(error) => {
            complain!("chat-server: {error:#}");
            ExitCode::FAILURE
        }
    };
    report_lost_output();
    status
}

/// The options in force: the command line over the configuration file (see
/// `palaver_server::config_file`).
struct Settings {
    cli: Cli,
    /// The merged arguments' matches: each value and where it came from.
    matches: clap::ArgMatches,
    /// The real command line's own matches, to tell its values from the file's.
    command_line: clap::ArgMatches,
    /// The configuration file (`--config` or `--check-config`) and what it set.
    file: Option<(PathBuf, FileOptions)>,
}

/// Why the options could not be read.
enum SettingsError {
    /// The command line itself is wrong: clap prints it with the usage.
    Usage(clap::Error),
    /// The configuration file is: every problem, each naming the file and line.
    File(Vec<String>),
}

impl Settings {
    /// Reads the command line `args` (program name first) and the configuration
    /// file it names; also how a reload reads them again.
    fn load(args: &[OsString]) -> Result<Self, SettingsError> {
        use clap::{CommandFactory as _, FromArgMatches as _};
        let command = Cli::command();
        let command_line = command
            .clone()
            .try_get_matches_from(args)
            .map_err(SettingsError::Usage)?;
        let cli = Cli::from_arg_matches(&command_line).map_err(SettingsError::Usage)?;
        let Some(path) = cli.check_config.clone().or_else(|| cli.config.clone()) else {
            return Ok(Self {
                cli,
                matches: command_line.clone(),
                command_line,
                file: None,
            });
        };
        let file =
            palaver_server::config_file::read(&path, &command).map_err(SettingsError::File)?;
        let merged = file.merged_args(args, cli.ip.is_some());
        let in_file = |error: clap::Error| {
            let rendered = error.render().to_string();
            let first = rendered.lines().next().unwrap_or_default().to_owned();
            SettingsError::File(vec![format!(
                "{} with the command line: {}",
                path.display(),
                first.trim_start_matches("error: ")
            )])
        };
        let matches = command.try_get_matches_from(merged).map_err(in_file)?;
        let cli = Cli::from_arg_matches(&matches).map_err(in_file)?;
        Ok(Self {
            cli,
            matches,
            command_line,
            file: Some((path, file)),
        })
    }

    /// Where option `id`'s value came from, in an operator's words.
    fn source_of(&self, id: &str, long: Option<&str>) -> String {
        use clap::parser::ValueSource;
        match self.matches.value_source(id) {
            None => "not set".to_owned(),
            Some(ValueSource::DefaultValue) => "default".to_owned(),
            Some(ValueSource::EnvVariable) => "environment".to_owned(),
            Some(_) if self.command_line.value_source(id) == Some(ValueSource::CommandLine) => {
                "command line".to_owned()
            }
            Some(_) => match &self.file {
                Some((path, file)) => match file.line_of(long.unwrap_or(id)) {
                    Some(line) => format!("{}:{line}", path.display()),
                    None => path.display().to_string(),
                },
                None => "command line".to_owned(),
            },
        }
    }
}

/// `chat-server backup` and `chat-server restore`.
fn run_action(action: &Action) -> ExitCode {
    let done = match action {
        Action::Backup { data, out } => palaver_store::backup(&data.data_dir, out).map(|summary| {
            say!(
                "backed up {} to {} ({} bytes)",
                summary.source.display(),
                out.display(),
                summary.bytes
            );
        }),
        Action::Restore { data, backup } => {
            palaver_store::restore(&data.data_dir, backup).map(|summary| {
                say!(
                    "restored {} as {}",
                    backup.display(),
                    summary.database.display()
                );
                if let Some(previous) = summary.previous {
                    say!(
                        "the database it replaced is kept as {} (with its -wal file, if any): delete it once the server runs well",
                        previous.display()
                    );
                }
            })
        }
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            complain!("chat-server: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `--check-config FILE`: validates everything that can be checked without
/// binding a port or opening the store, and prints the effective configuration as
/// TOML, each value with where it came from.
fn check_config(settings: &Settings) -> ExitCode {
    use clap::CommandFactory as _;
    let mut problems = Vec::new();
    if let Err(error) = build_config(settings) {
        problems.push(format!("{error:#}"));
    }
    let cli = &settings.cli;
    if cli.ip.is_none() {
        problems.push(
            "no address to listen on: set ip and port in the file, or give them on the command line".to_owned(),
        );
    } else if let (Some(ip), Some(port)) = (&cli.ip, cli.port)
        && let Err(error) = parse_address(ip, port)
    {
        problems.push(format!("{error:#}"));
    }
    if let (Some(cert), Some(key)) = (&cli.tls_cert, &cli.tls_key)
        && let Err(error) = palaver_server::ServerTls::from_files(cert, key)
    {
        problems.push(format!("{error:#}"));
    }
    let path = cli
        .check_config
        .as_deref()
        .unwrap_or(std::path::Path::new("-"));
    say!(
        "# The configuration chat-server would run with: {} and the command line.",
        path.display()
    );
    say!("# Each value's comment says where it comes from.");
    for arg in Cli::command().get_arguments() {
        let id = arg.get_id().as_str();
        if palaver_server::config_file::NOT_IN_FILE.contains(&arg.get_long().unwrap_or(id))
            || id == "action"
        {
            continue;
        }
        let key = arg.get_long().unwrap_or(id);
        let source = settings.source_of(id, arg.get_long());
        let values: Vec<String> = settings
            .matches
            .get_raw(id)
            .map(|raw| {
                raw.map(|value| value.to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let shown = match (id, values.as_slice()) {
            // In the file, `oper` means the [[oper]] tables listed below.
            ("opers", []) => continue,
            (_, []) => {
                say!("# {key} (not set)");
                continue;
            }
            ("password", _) => "\"<redacted>\"".to_owned(),
            // The URL without its password.
            ("store", [url]) => toml_scalar(&palaver_store::describe_url(url)),
            ("opers", values) => toml_list(values.iter().map(|value| {
                format!("{}:<redacted>", value.split(':').next().unwrap_or_default())
            })),
            (_, values) if matches!(arg.get_action(), clap::ArgAction::Append) => {
                toml_list(values.iter().cloned())
            }
            (_, [value]) => toml_scalar(value),
            (_, values) => toml_list(values.iter().cloned()),
        };
        say!("{key} = {shown}  # {source}");
    }
    if let Some((path, file)) = &settings.file {
        for oper in &file.opers {
            say!("# [[oper]] {} ({})", oper.name, path.display());
        }
    }
    if problems.is_empty() {
        say!("# The configuration is valid.");
        ExitCode::SUCCESS
    } else {
        complain!(
            "chat-server: invalid configuration:\n  {}",
            problems.join("\n  ")
        );
        ExitCode::FAILURE
    }
}

/// A value as TOML: numbers and booleans bare, anything else a quoted string.
fn toml_scalar(value: &str) -> String {
    let bare = value == "true"
        || value == "false"
        || (value.parse::<f64>().is_ok() && value.chars().all(|c| c.is_ascii_digit() || c == '.'));
    if bare {
        value.to_owned()
    } else {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn toml_list(values: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = values.map(|value| toml_scalar(&value)).collect();
    format!("[{}]", items.join(", "))
}

/// `RESTART`: executes this program again with the same arguments (and
/// environment); returns only if that fails. The configuration file is read
/// again by the new process, like any start.
#[cfg(unix)]
fn restart() -> ExitCode {
    use std::os::unix::process::CommandExt as _;
    let program = match std::env::current_exe() {
        Ok(program) => program,
        Err(error) => {
            complain!("chat-server: cannot restart: cannot find this program: {error}");
            return ExitCode::FAILURE;
        }
    };
    say!("palaver restarting: {}", program.display());
    report_lost_output();
    let error = std::process::Command::new(&program)
        .args(std::env::args_os().skip(1))
        .exec();
    complain!("chat-server: cannot restart {}: {error}", program.display());
    ExitCode::FAILURE
}

/// `RESTART` where a process cannot replace itself: stop, and say so.
#[cfg(not(unix))]
fn restart() -> ExitCode {
    complain!(
        "chat-server: RESTART is not supported on this system: the server stopped; start it again"
    );
    ExitCode::FAILURE
}

/// Says how much log and status output was lost to failed writes (a log reader that
/// went away), on whichever of stderr and stdout still works.
fn report_lost_output() {
    let lost = logging::write_errors();
    if lost > 0
        && !complain!("chat-server: {lost} lines of log or status output could not be written")
    {
        say!("chat-server: {lost} lines of log or status output could not be written");
    }
}

/// `--hash-password`: one line from standard input → its PHC string on stdout.
fn print_password_hash() -> ExitCode {
    if std::io::stdin().is_terminal() {
        let _ = write!(std::io::stderr(), "Password (shown as you type): ");
    }
    let mut line = String::new();
    if let Err(error) = std::io::stdin().read_line(&mut line) {
        complain!("chat-server: cannot read the password from standard input: {error}");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        complain!("chat-server: the password is empty; type it on standard input");
        return ExitCode::FAILURE;
    }
    match palaver_server::opers::hash_password(password) {
        Ok(hash) if say!("{hash}") => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            complain!("chat-server: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // A log that cannot be written is dropped and counted, never a panic: the
    // writer swallows errors, and the fmt layer must not eprintln! its own.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(logging::Stderr)
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        // Same events, fields and filter; the span list is left out as the text
        // format shows only the current span too.
        LogFormat::Json => builder.json().with_span_list(false).init(),
    }
}

fn start(settings: Settings, args: Vec<OsString>) -> anyhow::Result<RunOutcome> {
    let cli = &settings.cli;
    let (Some(ip), Some(port)) = (&cli.ip, cli.port) else {
        anyhow::bail!(
            "give the address and port to listen on, e.g. chat-server 127.0.0.1 6667 (or ip and port in the --config file)"
        );
    };
    let addr = parse_address(ip, port)?;
    let extra_listeners = cli.listen.clone();
    let mut config = build_config(&settings)?;
    config.store = Some(open_store(cli)?);
    config.tls = open_tls(cli, &config.server_name, addr)?;
    let real_certificate = config.tls.as_ref().is_some_and(|tls| !tls.is_self_signed());
    config.sts = sts_policy(cli, addr, real_certificate);
    if config.tls.is_none() && cli.listen.iter().any(|(_, mode)| *mode == ListenMode::Tls) {
        anyhow::bail!("a --listen .../tls listener needs TLS, which --no-tls turned off");
    }
    let fd_budget = raise_fd_limit().map(|limit| FdBudget::new(limit, &config));
    config.limits.max_clients = max_clients(fd_budget, cli.max_clients);
    let reloader = palaver_server::Reloader::new(ReloadFromOptions {
        path: cli.config.clone(),
        fixed: restart_only(cli),
        args,
        addr,
        fd_budget,
        real_certificate,
    });
    config.reloader = Some(reloader.clone());
    // This runtime only accepts connections and waits for signals: the connections
    // themselves are served by driver threads with runtimes of their own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let shutdown = shutdown_signal()?;
        // Installed before the server says it listens, like the shutdown signals:
        // SIGHUP's default action would end the process.
        #[cfg(unix)]
        let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot listen for SIGHUP")?;
        #[cfg(not(unix))]
        let hangup = ();
        let mut listeners = Vec::new();
        for (index, (addr, mode)) in std::iter::once((addr, ListenMode::Auto))
            .chain(extra_listeners)
            .enumerate()
        {
            let listener = bind(addr).await?;
            let local = listener
                .local_addr()
                .context("cannot read the bound address")?;
            let serves = match (mode, config.tls.is_some()) {
                (ListenMode::Auto, true) => "IRC, TLS, HTTP and WebSocket",
                (ListenMode::Auto, false) => "IRC, HTTP and WebSocket",
                (ListenMode::Tls, _) => "TLS only",
                (ListenMode::Plain, _) => "plain IRC only",
            };
            say!("{VERSION} listening on {local} ({serves})");
            // The main address stays for the server's life; a reload may open and
            // close the --listen ones.
            listeners.push(match index {
                0 => Listener::new(listener, mode),
                _ => Listener::new(listener, mode).reloadable(addr),
            });
        }
        match fd_budget {
            Some(FdBudget { limit, reserve, .. }) => say!(
                "max clients {} (file descriptor limit {limit}, {reserve} kept in reserve)",
                config.limits.max_clients
            ),
            None => say!("max clients {}", config.limits.max_clients),
        };
        tokio::spawn(reload_certificate(config.tls.clone()));
        tokio::spawn(reload_on_hangup(reloader, hangup));
        let outcome = palaver_server::run_listeners(listeners, config, shutdown)
            .await
            .context("server stopped with an error")?;
        say!("palaver stopped");
        Ok(outcome)
    })
}

/// The STS policy to offer: only with a certificate clients can verify (never the
/// self-signed one, which would lock them out), for the main port.
fn sts_policy(
    cli: &Cli,
    addr: SocketAddr,
    real_certificate: bool,
) -> Option<palaver_server::StsPolicy> {
    (real_certificate && !cli.sts_duration.is_zero()).then(|| palaver_server::StsPolicy {
        // TLS is served on the main port (auto) and on every tls listener: point
        // clients to the main one.
        port: addr.port(),
        duration: cli.sts_duration,
    })
}

/// `--max-clients`, bounded by what the file-descriptor limit allows.
fn max_clients(fd_budget: Option<FdBudget>, asked: Option<usize>) -> usize {
    match (fd_budget, asked) {
        (Some(budget), Some(asked)) if asked > budget.max_clients => {
            tracing::warn!(
                asked,
                allowed = budget.max_clients,
                fd_limit = budget.limit,
                "--max-clients is more than the file descriptor limit allows; lowered"
            );
            budget.max_clients
        }
        (_, Some(asked)) => asked,
        (Some(budget), None) => budget.max_clients,
        (None, None) => DEFAULT_MAX_CLIENTS,
    }
}

/// The options a running server cannot change (its main address, the store, TLS
/// files, logging), as (option, value) pairs: a reload that finds them changed says they
/// need a restart.
fn restart_only(cli: &Cli) -> Vec<(&'static str, String)> {
    vec![
        ("ip", format!("{:?}", cli.ip)),
        ("port", format!("{:?}", cli.port)),
        ("data-dir", cli.data.data_dir.display().to_string()),
        ("ephemeral", cli.ephemeral.to_string()),
        // Compared only, never shown: it may hold a password.
        ("store", cli.store.clone().unwrap_or_default()),
        ("fsync", format!("{:?}", cli.fsync)),
        ("no-tls", cli.no_tls.to_string()),
        ("tls-cert", format!("{:?}", cli.tls_cert)),
        ("tls-key", format!("{:?}", cli.tls_key)),
        ("log-level", cli.log_level.clone()),
        ("cluster", format!("{:?}", cli.cluster)),
        ("node-name", format!("{:?}", cli.node_name)),
    ]
}

/// How `chat-server` reads its configuration again (SIGHUP, REHASH): the same
/// command line and the `--config` file as they are now.
struct ReloadFromOptions {
    /// The `--config` file, if any (named in messages).
    path: Option<PathBuf>,
    /// [`restart_only`] at start.
    fixed: Vec<(&'static str, String)>,
    /// The command line the server started with.
    args: Vec<OsString>,
    addr: SocketAddr,
    fd_budget: Option<FdBudget>,
    real_certificate: bool,
}

impl palaver_server::ConfigSource for ReloadFromOptions {
    fn load(&self) -> Result<palaver_server::Reloaded, Vec<String>> {
        let settings = Settings::load(&self.args).map_err(|error| match error {
            SettingsError::Usage(error) => vec![error.to_string()],
            SettingsError::File(problems) => problems,
        })?;
        let mut config = build_config(&settings).map_err(|error| vec![format!("{error:#}")])?;
        config.limits.max_clients = max_clients(self.fd_budget, settings.cli.max_clients);
        config.sts = sts_policy(&settings.cli, self.addr, self.real_certificate);
        if settings.cli.no_tls
            && settings
                .cli
                .listen
                .iter()
                .any(|(_, mode)| *mode == ListenMode::Tls)
        {
            return Err(vec![
                "a --listen .../tls listener needs TLS, which --no-tls turned off".to_owned(),
            ]);
        }
        let now = restart_only(&settings.cli);
        let needs_restart = self
            .fixed
            .iter()
            .zip(&now)
            .filter(|(before, after)| before != after)
            .map(|((name, _), _)| (*name).to_owned())
            .collect();
        Ok(palaver_server::Reloaded {
            config,
            needs_restart,
            listeners: Some(settings.cli.listen.clone()),
        })
    }

    fn describe(&self) -> String {
        match &self.path {
            Some(path) => path.display().to_string(),
            None => "command line".to_owned(),
        }
    }
}

/// Turns each SIGHUP into a reload request (the server logs the outcome and tells
/// its operators).
async fn reload_on_hangup(
    reloader: palaver_server::Reloader,
    #[cfg(unix)] mut hangup: tokio::signal::unix::Signal,
    #[cfg(not(unix))] _hangup: (),
) {
    #[cfg(unix)]
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP received: reading the configuration again");
        reloader.request();
    }
    #[cfg(not(unix))]
    drop(reloader);
}

/// `--threads`: a count of at least one, refused in words a user understands
/// (clap's own message for zero is "number would be zero for non-zero type").
fn at_least_one(text: &str) -> Result<std::num::NonZeroUsize, String> {
    let count: usize = text
        .parse()
        .map_err(|_| format!("'{text}' is not a whole number"))?;
    std::num::NonZeroUsize::new(count).ok_or_else(|| "must be at least 1".to_owned())
}

/// `--listen ADDR:PORT[/MODE]`.
fn parse_listen(text: &str) -> Result<(SocketAddr, ListenMode), String> {
    let (address, mode) = match text.rsplit_once('/') {
        Some((address, "auto")) => (address, ListenMode::Auto),
        Some((address, "tls")) => (address, ListenMode::Tls),
        Some((address, "plain")) => (address, ListenMode::Plain),
        Some((_, other)) => {
            return Err(format!("'{other}' is not a mode: use auto, tls or plain"));
        }
        None => (text, ListenMode::Auto),
    };
    let (ip, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("'{address}' is not ADDR:PORT (e.g. 0.0.0.0:6697)"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("'{port}' is not a port number"))?;
    let addr = parse_address(ip, port).map_err(|error| error.to_string())?;
    Ok((addr, mode))
}

fn parse_address(ip: &str, port: u16) -> anyhow::Result<SocketAddr> {
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if ip.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let ip: IpAddr = ip.parse().map_err(|_| {
        anyhow::anyhow!(
            "'{ip}' is not an IP address (host names other than localhost are not looked up); use one such as 127.0.0.1 (this machine only), 0.0.0.0 (all IPv4 interfaces) or ::1"
        )
    })?;
    Ok(SocketAddr::new(ip, port))
}

async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    palaver_server::bind(addr).map_err(|error| {
        let advice = match error.kind() {
            ErrorKind::AddrInUse => format!(
                "port {} is already in use on {}; stop the program using it or choose another port",
                addr.port(),
                addr.ip()
            ),
            ErrorKind::PermissionDenied => format!(
                "not allowed to listen on port {}: ports below 1024 need administrator rights; choose a port such as 6667",
                addr.port()
            ),
            ErrorKind::AddrNotAvailable => format!(
                "{} is not an address of this machine; use 127.0.0.1, 0.0.0.0 or one of this host's addresses",
                addr.ip()
            ),
            _ => format!("cannot listen on {addr}: {error}"),
        };
        anyhow::anyhow!(advice)
    })
}

fn build_config(settings: &Settings) -> anyhow::Result<Config> {
    let cli = &settings.cli;
    let mut config = Config {
        server_name: cli.server_name.clone(),
        server_description: cli.server_description.clone(),
        network_name: cli.network_name.clone(),
        password: match (&cli.password_file, &cli.password) {
            (Some(_), Some(_)) => anyhow::bail!(
                "give the password with --password-file or with --password (or PALAVER_PASSWORD), not both"
            ),
            (Some(path), None) => Some(read_password_file(path)?),
            (None, password) => password.clone().filter(|p| !p.is_empty()),
        },
        connection_threads: cli.threads,
        ..Config::default()
    };
    if let Some(path) = &cli.motd_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the MOTD file {}", path.display()))?;
        config.motd = Some(text.lines().map(str::to_owned).collect());
    }
    config.accounts = palaver_server::AccountsConfig {
        register_before_connect: !cli.no_register_before_connect,
        email_required: cli.register_email_required,
        min_password_bytes: cli.min_password_len.max(1),
        nick_grace: (cli.nick_grace > 0).then(|| Duration::from_secs(cli.nick_grace)),
    };
    config.cluster = match (&cli.cluster, &cli.node_name) {
        (Some(url), Some(node)) => {
            let mut cluster = palaver_server::ClusterConfig::new(url.clone(), node.clone());
            cluster.node_timeout = cli.node_timeout.max(Duration::from_secs(2));
            Some(cluster)
        }
        (None, Some(_)) => anyhow::bail!("--node-name names a node of a --cluster: give both"),
        _ => None,
    };
    config.history.enabled = !cli.no_history;
    config.history.join_notice = !cli.no_history_notice;
    config.allowed_origins = cli.allowed_origins.clone();
    config.web = match &cli.web_dir {
        Some(dir) if !dir.is_dir() => {
            anyhow::bail!("--web-dir {} is not a directory", dir.display())
        }
        Some(dir) => palaver_server::WebClient::Directory(dir.clone()),
        None if cli.no_web => palaver_server::WebClient::Off,
        None => palaver_server::WebClient::Embedded,
    };
    config.allow_plaintext_sasl = cli.allow_plaintext_sasl;
    if !cli.metrics_allow.is_empty() {
        config.metrics_allow = cli.metrics_allow.clone();
    }
    config.history.retention = palaver_store::Retention {
        max_age_ms: cli
            .history_max_age
            .map(|age| i64::try_from(age.as_millis()).unwrap_or(i64::MAX)),
        max_messages: cli.history_max_messages,
    };
    let limits = &mut config.limits;
    limits.max_clients_per_ip = cli.max_clients_per_ip;
    limits.max_channels_per_client = cli.max_channels;
    limits.max_channels_total = cli.max_channels_total;
    limits.max_list_entries_total = cli.max_list_entries_total;
    limits.max_metadata_total = cli.max_metadata_total;
    limits.max_monitor_total = cli.max_monitor_total;
    limits.max_read_markers_total = cli.max_read_markers_total;
    limits.registration_timeout = Duration::from_secs(cli.registration_timeout);
    limits.ping_interval = Duration::from_secs(cli.ping_interval);
    limits.ping_timeout = Duration::from_secs(cli.ping_timeout);
    limits.sendq_bytes = cli.sendq;
    limits.recvq_bytes = cli.recvq;
    limits.flood = Some(FloodLimit {
        burst: cli.flood_burst,
        per_second: cli.flood_rate,
    });
    limits.connect_per_ip = Some(palaver_server::ConnectLimit {
        burst: cli.connect_burst,
        per_second: cli.connect_rate,
    });
    limits.connect_per_network = Some(palaver_server::ConnectLimit {
        burst: cli.connect_network_burst,
        per_second: cli.connect_network_rate,
    });
    limits.max_server_bans = cli.max_server_bans;
    if cli.no_flood_limit {
        limits.flood = None;
        limits.max_clients_per_ip = usize::MAX;
        limits.connect_per_ip = None;
        limits.connect_per_network = None;
    }
    let mut problems = Vec::new();
    if !palaver_proto::validate::is_valid_hostname(&config.server_name) {
        problems.push(format!(
            "--server-name '{}' is not a hostname (letters, digits, '-' and '.')",
            config.server_name
        ));
    }
    if config.network_name.is_empty() || config.network_name.contains([' ', ',']) {
        problems.push("--network-name must be one word".to_owned());
    }
    if cli.flood_rate <= 0.0 || cli.flood_burst == 0 {
        problems.push(
            "--flood-rate and --flood-burst must be positive (or use --no-flood-limit)".to_owned(),
        );
    }
    if !(cli.connect_rate > 0.0 && cli.connect_network_rate > 0.0)
        || cli.connect_burst == 0
        || cli.connect_network_burst == 0
    {
        problems.push(
            "--connect-rate, --connect-burst and their --connect-network-* twins must be positive (or use --no-flood-limit)"
                .to_owned(),
        );
    }
    if cli.ping_interval == 0 || cli.ping_timeout == 0 || cli.registration_timeout == 0 {
        problems.push("timeouts must be at least one second".to_owned());
    }
    if cli.max_clients == Some(0) || cli.max_clients_per_ip == 0 || cli.max_channels == 0 {
        problems.push(
            "--max-clients, --max-clients-per-ip and --max-channels must be at least 1".to_owned(),
        );
    }
    if cli.sendq < 4096 || cli.recvq < 1024 {
        problems.push("--sendq must be at least 4096 bytes and --recvq at least 1024".to_owned());
    }
    if cli.history_max_messages == Some(0) {
        problems.push("--history-max-messages must be at least 1 (or --no-history)".to_owned());
    }
    if cli.ephemeral
        && settings.matches.value_source("data_dir") == Some(clap::parser::ValueSource::CommandLine)
    {
        problems.push("--ephemeral keeps everything in memory: leave out --data-dir".to_owned());
    }
    if let Some(url) = &cli.store {
        if cli.ephemeral {
            problems.push(
                "--ephemeral keeps everything in memory: leave out --store (or --ephemeral)"
                    .to_owned(),
            );
        }
        if !palaver_store::is_postgres_url(url) {
            problems.push(format!(
                "--store takes a postgres:// or postgresql:// URL, not {}",
                url.split("://").next().unwrap_or("this")
            ));
        }
    }
    if let Some((_, file)) = &settings.file {
        config.opers.extend(file.opers.iter().cloned());
    }
    for flag in &cli.opers {
        match palaver_server::opers::OperCredential::from_flag(flag) {
            Ok(oper) if config.opers.iter().any(|o| o.name == oper.name) => {
                problems.push(format!("operator '{}' is defined twice", oper.name));
            }
            Ok(oper) => config.opers.push(oper),
            Err(problem) => problems.push(problem),
        }
    }
    if !problems.is_empty() {
        anyhow::bail!("invalid options:\n  {}", problems.join("\n  "));
    }
    Ok(config)
}

/// `--password-file`: the file's first line, without its line ending.
fn read_password_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the password file {}", path.display()))?;
    let password = text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches('\r');
    if password.is_empty() {
        anyhow::bail!(
            "the password file {} is empty: put the password on its first line",
            path.display()
        );
    }
    Ok(password.to_owned())
}

/// `--max-clients` when the file-descriptor limit is unknown.
const DEFAULT_MAX_CLIENTS: usize = 100_000;

/// How the file descriptors the process may open are shared out.
///
/// Every client holds one descriptor; the rest of the process needs some too: the
/// standard streams, three per tokio runtime (epoll, its waker, its end of the
/// signal pipe; one runtime per connection thread, plus the listener's), the
/// descriptor `run` holds back
/// to refuse connections when the others are exhausted, and whatever later features
/// open (the store, TLS certificate files, log files). A client over the limit is
/// accepted on one of those reserved descriptors, told `ERROR :Server full`, and
/// closed, instead of waiting in the kernel's backlog for a descriptor that never
/// comes. Hence the reserve: 5 % of the limit, at least 64, plus three per runtime,
/// never more than half the limit.
#[derive(Debug, Clone, Copy)]
struct FdBudget {
    /// The (raised) soft limit on open descriptors.
    limit: usize,
    /// Descriptors kept for everything but clients.
    reserve: usize,
    /// `limit - reserve`: the most clients at once.
    max_clients: usize,
}

impl FdBudget {
    fn new(limit: u64, config: &Config) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let threads = config
            .connection_threads
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, std::num::NonZeroUsize::get);
        let reserve = (limit / 20)
            .max(64)
            .saturating_add(3 * threads + 3)
            .min(limit / 2);
        Self {
            limit,
            reserve,
            max_clients: limit - reserve,
        }
    }
}

/// Raises the soft file-descriptor limit to the hard limit; returns the new limit
/// (the current one if it cannot be raised).
fn raise_fd_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(error) => {
            tracing::warn!(%error, "cannot raise the file descriptor limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// Listens for SIGINT (Ctrl+C) and SIGTERM, and returns a future that resolves on
/// the first of them.
///
/// The handlers are installed here, before the server says it is listening, not
/// when the future is first polled: `run` polls it only after loading the store, and
/// a SIGTERM in between (a service manager stopping a server it has just started)
/// would otherwise kill the process without a clean shutdown. Called inside the
/// runtime, which the signal streams need.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("SIGINT received"),
                _ = terminate.recv() => tracing::info!("SIGTERM received"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        let mut ctrl_c = tokio::signal::windows::ctrl_c().context("cannot listen for Ctrl+C")?;
        Ok(async move {
            ctrl_c.recv().await;
            tracing::info!("Ctrl+C received");
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_take_a_unit() {
        assert_eq!(parse_age("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_age("45"), Ok(Duration::from_secs(45)));
        assert!(parse_age("0d").is_err());
        assert!(parse_age("3w").is_err());
        assert!(parse_age("soon").is_err());
    }

    #[test]
    fn metrics_networks_take_cidr_or_an_address() {
        assert_eq!(
            parse_network("10.1.2.3/8").map(|n| n.to_string()),
            Ok("10.0.0.0/8".to_owned())
        );
        assert_eq!(
            parse_network("::1").map(|n| n.to_string()),
            Ok("::1/128".to_owned())
        );
        assert_eq!(
            parse_network("192.0.2.7").map(|n| n.to_string()),
            Ok("192.0.2.7/32".to_owned())
        );
        assert!(parse_network("10.0.0.0/33").is_err());
        assert!(parse_network("localhost").is_err());
    }

    #[test]
    fn the_fd_budget_keeps_a_reserve() {
        let config = Config {
            connection_threads: std::num::NonZeroUsize::new(2),
            ..Config::default()
        };
        // 5 % of 20,000, plus three per runtime (two threads and the listener's).
        let budget = FdBudget::new(20_000, &config);
        assert_eq!((budget.reserve, budget.max_clients), (1_009, 18_991));
        // At least 64 (+9) ...
        let budget = FdBudget::new(1_024, &config);
        assert_eq!((budget.reserve, budget.max_clients), (73, 951));
        // ... but never more than half.
        let budget = FdBudget::new(100, &config);
        assert_eq!((budget.reserve, budget.max_clients), (50, 50));
        assert_eq!(FdBudget::new(u64::MAX, &config).limit, usize::MAX);
    }
}
