//! `chat-client <SERVER> <PORT> [LOCAL_PORT]`: a terminal IRC client.
//!
//! This binary parses the command line, sets up logging to `client.log`, asks for a
//! username when `--nick` is not given, settles how to trust the server (TLS with
//! a pinned or system-trusted certificate, asking on first contact; see
//! [`palaver_client::trust`] and [`decide_security`]), and hands over to the full-screen UI (when
//! both stdin and stdout are terminals) or to line mode. Errors a user can fix are
//! printed as one sentence with exit status 1; a closed output pipe is a normal end.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use palaver_client::client::{Account, Secret, sasl::Mechanism};
use palaver_client::connection::{self, Probe};
use palaver_client::trust::{self, KnownServers, Security, TlsPolicy};
use palaver_client::{Client, ClientConfig, ConnectConfig, commands, line_mode, logfile, tui};
use tokio::io::{AsyncBufReadExt, BufReader};
use tracing_subscriber::EnvFilter;

/// The command line. Its texts are the `--help` a user reads first, so they
/// say what each choice does for the user, not how it is built.
#[derive(Debug, Parser)]
#[command(
    name = "chat-client",
    version,
    about = "Chat on IRC from your terminal: connect to a palaver (or any IRC) server, join #lobby and talk.",
    long_about = "Chat on IRC from your terminal: connect to a palaver (or any IRC) server, join #lobby and talk.\n\n\
        On a terminal it opens a full-screen view with a tab per channel and private \
        conversation; type /help there for the commands and keys. With its input or output \
        piped it works line by line instead: every input line is sent (text to the channel, \
        /commands as typed), every message received is printed as `[HH:MM] <nick> text`, \
        and it exits when the input ends, non-zero if a line could not be sent.\n\n\
        It connects with TLS. A certificate the system trusts for the host name is \
        accepted; any other (a server's self-signed one) is shown by its SHA-256 \
        fingerprint the first time, to compare with the one the server printed, and once \
        accepted it is pinned in the known-servers file: a later, different certificate \
        is refused until that file is edited. A server without TLS is used in plain text \
        only if you agree, or with --plain.",
    after_help = "Examples:\n  \
        chat-client 127.0.0.1 6667\n  \
        chat-client irc.example.net 6667 --nick ann --channel rust --channel lobby\n  \
        printf 'hello\\n/join #dev\\nhi dev\\n' | chat-client 127.0.0.1 6667 --nick bot\n  \
        chat-client 127.0.0.1 6667 --account ann          (asks for ann's password)\n  \
        chat-client 127.0.0.1 6667 --accept-fingerprint AB:CD:...:EF   (a script's first contact)\n  \
        chat-client 127.0.0.1 6667 --plain                (no TLS)\n\n\
        Exit status: 0 after /quit or the end of input, 1 when the server cannot be \
        reached, refuses us, or a piped line could not be sent."
)]
struct Cli {
    /// The server's address: an IP address or a host name.
    #[arg(value_name = "SERVER")]
    server_ip: String,
    /// The server's port (6667 is the usual IRC port).
    #[arg(value_name = "PORT")]
    server_port: u16,
    /// The local port to connect from, if it matters (it must be free).
    local_port: Option<u16>,
    /// Nickname to use; without it the client asks `username:`.
    #[arg(long)]
    nick: Option<String>,
    /// Channel to join after connecting (repeatable; default #lobby).
    #[arg(long = "channel", value_name = "CHANNEL")]
    channels: Vec<String>,
    /// Server password (sent as PASS; an account's password is another thing,
    /// see --account).
    #[arg(long, env = "PALAVER_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Log in to this account (SASL: SCRAM-SHA-256 where the server offers
    /// it, else PLAIN) on every connection; it is also the nick unless --nick
    /// says otherwise. The password is read from PALAVER_ACCOUNT_PASSWORD, or
    /// asked for on the terminal without being shown.
    #[arg(long, value_name = "NAME")]
    account: Option<String>,
    /// The SASL mechanism for --account: SCRAM-SHA-256, PLAIN, or EXTERNAL (log in
    /// with the --tls-cert client certificate, which the account must have added
    /// with /msg NickServ CERT ADD; no password). By default SCRAM-SHA-256 where
    /// the server offers it, else PLAIN.
    #[arg(long, value_name = "MECHANISM", requires = "account")]
    sasl_mechanism: Option<String>,
    /// Log file: connection events and, unless --no-log-messages, the
    /// conversation. Past 10 MiB it moves to FILE.1 (and FILE.1 to FILE.2).
    #[arg(long, default_value = "client.log", value_name = "FILE")]
    log_file: PathBuf,
    /// Keep the conversation out of the log file (connection events stay).
    #[arg(long)]
    no_log_messages: bool,
    /// Log level (error, warn, info, debug: debug logs every line sent and received).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Use plain line mode even on a terminal.
    #[arg(long)]
    line_mode: bool,
    /// Show the server's history of each channel when joining it and what was
    /// said while disconnected, where the server keeps history. The default in
    /// the full-screen UI; in line mode history is printed only with this
    /// option, so a script is not fed old lines as new ones.
    #[arg(long, overrides_with = "no_history")]
    history: bool,
    /// Do not ask the server for history.
    #[arg(long, overrides_with = "history")]
    no_history: bool,
    /// Do not ring the terminal bell on mentions and private messages.
    #[arg(long)]
    no_bell: bool,
    /// Leave the mouse to the terminal (its own text selection works without
    /// Shift; no wheel scrolling or tab clicks).
    #[arg(long)]
    no_mouse: bool,
    /// Connect without TLS: everything, passwords included, travels in plain text.
    #[arg(long, conflicts_with_all = ["accept_fingerprint", "tls_cert"])]
    plain: bool,
    /// Accept the server's certificate if its SHA-256 fingerprint is this one
    /// (as the server prints it; case and colons do not matter) and pin it,
    /// without asking. A server already pinned is checked against its pin only.
    #[arg(long, value_name = "FINGERPRINT")]
    accept_fingerprint: Option<String>,
    /// The known-servers file: one `host:port FINGERPRINT` per accepted server
    /// (default: $XDG_CONFIG_HOME/palaver/known_servers, or
    /// ~/.config/palaver/known_servers; %APPDATA%\palaver\known_servers on Windows).
    #[arg(long, value_name = "FILE")]
    known_servers: Option<PathBuf>,
    /// A client certificate (PEM) to present to the server, with --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

fn main() -> ExitCode {
    // Read the local UTC offset while this is the only thread: later it is unsound
    // on some platforms, and `time` refuses.
    let offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    let cli = Cli::parse();
    match start(cli, offset) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chat-client: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Where `--account` finds its password when the terminal is not asked; not
/// `PALAVER_PASSWORD`, which is the server password (PASS) here and for
/// `chat-server`.
const ACCOUNT_PASSWORD_ENV: &str = "PALAVER_ACCOUNT_PASSWORD";

fn start(mut cli: Cli, offset: time::UtcOffset) -> anyhow::Result<()> {
    let _log_guard = init_logging(&cli.log_file, &cli.log_level, !cli.no_log_messages)?;
    let full_screen = !cli.line_mode && io::stdin().is_terminal() && io::stdout().is_terminal();
    let mechanism = match cli.sasl_mechanism.as_deref() {
        Some(name) => Some(Mechanism::named(name).with_context(|| {
            format!(
                "--sasl-mechanism {name:?}: this client speaks SCRAM-SHA-256, PLAIN and EXTERNAL"
            )
        })?),
        None => None,
    };
    if mechanism == Some(Mechanism::External) && cli.tls_cert.is_none() {
        bail!(
            "--sasl-mechanism EXTERNAL logs in with a client certificate: give it with --tls-cert and --tls-key"
        );
    }
    let account = match cli.account.take() {
        Some(name) => Some(account(name, mechanism)?),
        None => None,
    };
    if cli.nick.is_none() {
        cli.nick = account.as_ref().map(|a| a.name.clone());
    }
    let channels = channels(&cli.channels)?;
    let mut connect = ConnectConfig::new(cli.server_ip.clone(), cli.server_port);
    connect.local_port = cli.local_port;
    let server = format!("{}:{}", cli.server_ip, cli.server_port);
    tracing::info!(
        server,
        local_port = ?cli.local_port,
        mode = if full_screen { "full-screen" } else { "line" },
        "chat-client {} starting",
        env!("CARGO_PKG_VERSION")
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let clock = move || palaver_client::now(offset);
    let result = if full_screen {
        let nick = match cli.nick.take() {
            Some(nick) => checked_nick(nick)?,
            None => prompt_nick()?,
        };
        connect.security = runtime.block_on(decide_security(&cli, &connect, async |question| {
            print!("{question}");
            io::stdout()
                .flush()
                .context("cannot write to the terminal")?;
            let mut line = String::new();
            let read = io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the answer")?;
            if read == 0 {
                println!();
            }
            Ok((read > 0).then_some(line))
        }))?;
        let mut config = client_config(&nick, channels, cli.password);
        config.account = account;
        config.log_messages = !cli.no_log_messages;
        config.history = !cli.no_history;
        config.utc_offset = offset;
        let options = tui::TuiOptions {
            bell: !cli.no_bell,
            mouse: !cli.no_mouse,
        };
        runtime.block_on(async move {
            let client = Client::new(&server, config);
            tui::run(client, connect, options, clock, shutdown_signal())
                .await
                .map_err(anyhow::Error::from)
        })
    } else {
        runtime.block_on(async move {
            let mut input = BufReader::new(tokio::io::stdin()).lines();
            let nick = match cli.nick.take() {
                Some(nick) => nick,
                None => {
                    eprint!("username: ");
                    let _ = io::stderr().flush();
                    match input
                        .next_line()
                        .await
                        .context("cannot read the username")?
                    {
                        Some(line) => line.trim().to_owned(),
                        None => bail!("no username given (type one, or use --nick NAME)"),
                    }
                }
            };
            let nick = checked_nick(nick)?;
            connect.security = decide_security(&cli, &connect, async |question| {
                eprint!("{question}");
                let _ = io::stderr().flush();
                let answer = input.next_line().await.context("cannot read the answer")?;
                if answer.is_none() {
                    eprintln!();
                }
                Ok(answer)
            })
            .await?;
            let mut config = client_config(&nick, channels, cli.password);
            config.account = account;
            config.log_messages = !cli.no_log_messages;
            config.history = cli.history;
            config.utc_offset = offset;
            let client = Client::new(&server, config);
            line_mode::run(
                client,
                connect,
                input,
                io::stdout(),
                io::stderr(),
                clock,
                shutdown_signal(),
            )
            .await
            .map_err(anyhow::Error::from)
        })
    };
    // Standard input is read on a blocking thread that cannot be interrupted: do
    // not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    tracing::info!("chat-client stopped");
    result
}

/// Decides how to connect, asking `ask` (which shows a question and returns the
/// answer line, or `None` when there is none to read) where the user must
/// decide. The decision is kept for every reconnection.
///
/// - `--plain`: plain TCP, nothing asked.
/// - A pin for `host:port` in the known-servers file: TLS checked against it
///   (or the system's trust), nothing asked; a mismatch or a server without TLS is
///   refused when connecting ([`trust::TlsFailure`]). `--accept-fingerprint` does
///   not override a pin: only editing the file does.
/// - No pin: one probing handshake. A certificate the system trusts needs no
///   question and is not pinned (see [`trust`]). Otherwise the fingerprint is
///   shown and, if accepted (by `--accept-fingerprint` or a `y`), pinned. A server
///   that does not speak TLS is used in plain text only after a `y`.
///
/// Without an answer to read (input not a terminal and at its end) it refuses
/// and names the option that would have answered.
async fn decide_security(
    cli: &Cli,
    connect: &ConnectConfig,
    mut ask: impl AsyncFnMut(String) -> anyhow::Result<Option<String>>,
) -> anyhow::Result<Security> {
    if cli.plain {
        return Ok(Security::Plain);
    }
    let path = match &cli.known_servers {
        Some(path) => path.clone(),
        None => trust::default_known_servers().context(
            "cannot tell where the known-servers file goes (set HOME or XDG_CONFIG_HOME, or give --known-servers FILE)",
        )?,
    };
    let mut known = KnownServers::load(&path)?;
    let identity = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => Some(std::sync::Arc::new(
            trust::Identity::from_pem_files(cert, key).map_err(anyhow::Error::msg)?,
        )),
        _ => None,
    };
    let system = match trust::system_verifier() {
        Ok(verifier) => Some(verifier),
        Err(error) => {
            tracing::warn!(
                "no system certificate verification ({error}); only pinned certificates are trusted"
            );
            None
        }
    };
    let accept = match &cli.accept_fingerprint {
        Some(given) => Some(trust::normalize_fingerprint(given).with_context(|| {
            format!("--accept-fingerprint {given:?} is not a SHA-256 fingerprint (32 hex pairs, like AB:CD:...)")
        })?),
        None => None,
    };
    let key = trust::server_key(&connect.host, connect.port);
    let mut policy = TlsPolicy {
        pin: known.find(&key),
        system,
        identity,
    };
    if let Some(pin) = &policy.pin {
        tracing::info!("{key} is pinned to {pin}");
        return Ok(Security::Tls(policy));
    }
    let yes = |answer: &str| matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes");
    match connection::probe(connect, &policy).await? {
        Probe::Trusted => {
            tracing::info!("{key}: certificate trusted by the system");
            Ok(Security::Tls(policy))
        }
        Probe::Unknown { fingerprint } => {
            match accept {
                Some(given) if given == fingerprint => {}
                Some(given) => bail!(
                    "the server {key} presented a certificate with SHA-256 fingerprint\n  \
                     {fingerprint}\n\
                     not the one given with --accept-fingerprint\n  \
                     {given}\n\
                     Not connecting."
                ),
                None => {
                    let question = format!(
                        "The server {key} is not known yet, and its TLS certificate is not signed \
                         by an authority this system trusts. Its SHA-256 fingerprint is\n  \
                         {fingerprint}\n\
                         Compare it with the one the server printed \
                         (\"TLS certificate SHA-256 fingerprint: ...\").\n\
                         Accept it and remember it in {}? (y/N) ",
                        path.display()
                    );
                    match ask(question).await? {
                        Some(answer) if yes(&answer) => {}
                        Some(_) => bail!("certificate of {key} not accepted; not connecting"),
                        None => bail!(
                            "the server {key} is not known yet and there is no answer to read to accept \
                             its certificate (SHA-256 fingerprint {fingerprint}); check it and run again \
                             with --accept-fingerprint {fingerprint}"
                        ),
                    }
                }
            }
            let pin = known.pin(&key, &fingerprint)?;
            tracing::info!("{key}: pinned {pin}");
            policy.pin = Some(pin);
            Ok(Security::Tls(policy))
        }
        Probe::NotTls(reason) => {
            let question = format!(
                "The server {key} does not speak TLS ({reason}).\n\
                 Continue without encryption? Everything, passwords included, is sent in plain \
                 text. (y/N) "
            );
            match ask(question).await? {
                Some(answer) if yes(&answer) => {
                    tracing::warn!("{key} does not speak TLS; continuing in plain text as agreed");
                    Ok(Security::Plain)
                }
                Some(_) => {
                    bail!("the server {key} does not speak TLS; not connecting in plain text")
                }
                None => bail!(
                    "the server {key} does not speak TLS ({reason}) and there is no answer to read; \
                     use --plain to connect without encryption"
                ),
            }
        }
    }
}

fn client_config(nick: &str, channels: Vec<String>, password: Option<String>) -> ClientConfig {
    let mut config = ClientConfig::new(nick, channels);
    config.password = password;
    config
}

/// The channels to join: `--channel` values with `#` added where missing.
fn channels(given: &[String]) -> anyhow::Result<Vec<String>> {
    if given.is_empty() {
        return Ok(vec!["#lobby".to_owned()]);
    }
    given
        .iter()
        .map(|c| {
            let c = c.trim();
            let name = if c.starts_with(['#', '&']) {
                c.to_owned()
            } else {
                format!("#{c}")
            };
            if name.len() < 2 || name.contains([' ', ',', '\u{7}']) {
                bail!("{c:?} cannot be a channel name");
            }
            Ok(name)
        })
        .collect()
}

/// The `--account` to log in to, with its password from
/// [`ACCOUNT_PASSWORD_ENV`] or typed on the terminal.
fn account(name: String, mechanism: Option<Mechanism>) -> anyhow::Result<Account> {
    let name = name.trim().to_owned();
    if let Some(problem) = commands::nick_problem(&name, commands::DEFAULT_NICKLEN) {
        bail!("--account {name:?}: {problem}");
    }
    if mechanism == Some(Mechanism::External) {
        // The client certificate is the credential: no password to ask for.
        return Ok(Account {
            name,
            password: Secret::new(String::new()),
            mechanism,
        });
    }
    let password = match std::env::var(ACCOUNT_PASSWORD_ENV) {
        Ok(password) => password,
        Err(_) if io::stdin().is_terminal() => prompt_password(&name)?,
        Err(_) => bail!(
            "--account {name} needs its password: set {ACCOUNT_PASSWORD_ENV} (standard input is not a terminal to ask on)"
        ),
    };
    if password.is_empty() {
        bail!("no password given for the account {name}");
    }
    Ok(Account {
        name,
        password: Secret::new(password),
        mechanism,
    })
}

/// Asks for the account's password on the terminal and shows nothing of it.
///
/// crossterm, which the UI already uses, reads the keys in raw mode (no echo),
/// so no other crate is needed and it works on Windows consoles too; rpassword
/// would add a dependency for the same thing.
fn prompt_password(account: &str) -> anyhow::Result<String> {
    use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    /// Leaves raw mode however the prompt ends.
    struct Raw;
    impl Drop for Raw {
        fn drop(&mut self) {
            let _ = crossterm::terminal::disable_raw_mode();
        }
    }
    eprint!("password for {account} (not shown): ");
    let _ = io::stderr().flush();
    crossterm::terminal::enable_raw_mode().context("cannot read the password from the terminal")?;
    let raw = Raw;
    let mut password = String::new();
    let outcome = loop {
        match event::read().context("cannot read the password from the terminal")? {
            Event::Key(key) if key.kind != KeyEventKind::Release => match key.code {
                KeyCode::Enter => break Ok(()),
                KeyCode::Char('c' | 'd') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                    break Err(anyhow::anyhow!("no password given"));
                }
                KeyCode::Esc => break Err(anyhow::anyhow!("no password given")),
                KeyCode::Backspace => {
                    password.pop();
                }
                KeyCode::Char(c) => password.push(c),
                _ => {}
            },
            _ => {}
        }
    };
    drop(raw);
    eprintln!();
    outcome.map(|()| password)
}

/// Checks a nick before connecting, against the usual length (the server's own
/// NICKLEN is not known yet; `/nick` checks against it later).
fn checked_nick(nick: String) -> anyhow::Result<String> {
    let nick = nick.trim().to_owned();
    match commands::nick_problem(&nick, commands::DEFAULT_NICKLEN) {
        None => Ok(nick),
        Some(problem) => bail!("{problem}"),
    }
}

/// Asks `username:` on the terminal until a valid nick is typed.
fn prompt_nick() -> anyhow::Result<String> {
    let stdin = io::stdin();
    loop {
        print!("username: ");
        io::stdout()
            .flush()
            .context("cannot write to the terminal")?;
        let mut line = String::new();
        if stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the username")?
            == 0
        {
            bail!("no username given");
        }
        match checked_nick(line) {
            Ok(nick) => return Ok(nick),
            Err(error) => println!("{error}"),
        }
    }
}

/// Logs to `path` (capped, see [`logfile`]) through a background writer; the
/// guard flushes it when dropped. The conversation's lines are kept or dropped
/// whatever the level says.
fn init_logging(
    path: &Path,
    level: &str,
    messages: bool,
) -> anyhow::Result<tracing_appender::non_blocking::WorkerGuard> {
    let file = logfile::CappedFile::open(path, logfile::DEFAULT_MAX_BYTES, logfile::DEFAULT_KEEP)
        .with_context(|| format!("cannot open the log file {}", path.display()))?;
    let (writer, guard) = tracing_appender::non_blocking(file);
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .with_context(|| format!("--log-level {level:?} is not a log level"))?;
    let conversation = format!(
        "{}={}",
        palaver_client::CONVERSATION_LOG,
        if messages { "info" } else { "off" }
    );
    let filter = filter.add_directive(conversation.parse().context("log filter")?);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .init();
    Ok(guard)
}

/// Resolves on Ctrl+C, and on Unix also on SIGTERM and SIGHUP (terminal closed).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let hup = signal(SignalKind::hangup());
        if let (Ok(mut term), Ok(mut hup)) = (term, hup) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
