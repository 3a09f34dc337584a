//! The connection actor: one tokio task that owns the socket.
//!
//! It connects (binding the optional local port), frames the server's bytes into lines
//! with [`LineFramer`], answers `PING` itself, measures lag with its own `PING`s and
//! drops a connection whose `PONG` is overdue, paces what it writes with a token
//! bucket so a pasted file never trips the server's flood limit, and reconnects with
//! capped exponential backoff. It knows nothing of channels or nicks: every other
//! line goes to the core as a [`ConnEvent`], and the core's lines come back as
//! [`ToConn`]. Both channels are bounded; a slow reader slows the socket, never
//! grows a queue.
//!
//! Each TCP connection has a *generation* number. Lines the core produced for an
//! earlier connection (say, a JOIN queued just before a drop) are discarded instead
//! of being sent on the next one.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use palaver_proto::{Frame, LineFramer, LineWriter, Message};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter, WriteHalf};
use tokio::net::{TcpSocket, TcpStream};

use crate::trust::{self, Security, TlsFailure, TlsPolicy};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout};

/// Capacity of the connection → core queue (lines and events).
pub const EVENT_QUEUE: usize = 256;
/// Capacity of the core → connection queue (lines to send).
pub const COMMAND_QUEUE: usize = 64;

/// Where and how to connect; the defaults suit a person chatting.
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    /// Server host name or address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Local port to bind before connecting (seed parity), if any.
    pub local_port: Option<u16>,
    /// How long a TCP connect may take.
    pub connect_timeout: Duration,
    /// Time between our lag-measuring PINGs once registered.
    pub ping_interval: Duration,
    /// How long a PING may go unanswered before the connection counts as dead.
    pub ping_timeout: Duration,
    /// First reconnect delay.
    pub backoff_initial: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Lines we may send at once before pacing starts.
    pub burst: u32,
    /// Lines per second after the burst.
    pub rate: f64,
    /// Each reconnect delay is shortened by a random part of up to this fraction,
    /// so clients dropped together (a server restart) do not all return at once.
    pub jitter: f64,
    /// Plain or TLS, and what TLS trusts: decided once before the first
    /// connection and kept for every reconnection (no second question, the same
    /// pin). Plain by default here; `chat-client` defaults to TLS.
    pub security: Security,
}

impl ConnectConfig {
    /// Defaults for `host:port`: 30 s lag pings, 60 s ping timeout, backoff from 1 s
    /// doubling to 60 s, a burst of 10 lines then 2 lines per second (below
    /// common server flood limits, ours included).
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            local_port: None,
            connect_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(60),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            burst: 10,
            rate: 2.0,
            jitter: 0.25,
            security: Security::Plain,
        }
    }
}

/// What the connection tells the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnEvent {
    /// Starting connection attempt number `attempt` (1-based).
    Connecting {
        /// Attempt count since start.
        attempt: u32,
    },
    /// TCP is up; the core should register now.
    Connected {
        /// This connection's number; tag lines for it with this.
        generation: u64,
        /// The server address we reached.
        peer: SocketAddr,
    },
    /// A line from the server (PINGs and our own PONGs are handled here and not shown).
    Line(String),
    /// A PING round trip completed.
    Lag(Duration),
    /// One [`ToConn::Line`] was written to the socket. With [`ConnEvent::Unsent`]
    /// this accounts for every line handed over, so a front end can tell how many
    /// are still on their way (line mode waits for none before it reads more input,
    /// and reports any that never went out).
    Sent,
    /// One [`ToConn::Line`] was thrown away unsent: it was made for a connection
    /// that dropped, or arrived while there was none.
    Unsent,
    /// The connection dropped; the next attempt starts after `retry_in`.
    Disconnected {
        /// Why, in words.
        reason: String,
        /// The backoff delay.
        retry_in: Duration,
    },
    /// The first connection failed in a way retrying will not fix; the task ended.
    Fatal(String),
    /// The server refused us in a way retrying will not fix (see [`refusal`]). The
    /// task does not reconnect until the core sends [`ToConn::Reconnect`].
    Refused {
        /// What kind of refusal, for the advice the front end gives.
        refusal: Refusal,
        /// The server's words.
        reason: String,
    },
    /// We quit (or the core went away); the task ended.
    Closed,
}

/// What the core asks of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToConn {
    /// Send a line (with CRLF) on connection `generation`; dropped if that
    /// connection is gone.
    Line {
        /// The connection the line was made for.
        generation: u64,
        /// The serialised line.
        line: Bytes,
    },
    /// Send this QUIT line (if connected), wait briefly for the server to close, end.
    Quit(Bytes),
    /// Connect again now: ends a refusal's wait or the backoff, or drops the current
    /// connection and makes a new one (with a fresh backoff).
    Reconnect,
}

/// A refusal that reconnecting will not fix by itself: the user must act first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// A wrong or missing server password (`464`, `ERROR :Bad password`), or too many
    /// failed attempts from this address.
    Password,
    /// The server takes no more connections (from anyone, or from this address).
    Full,
    /// A ban: K-, G-, Z- or D-line, "banned".
    Banned,
    /// On a reconnection, the server presented a certificate other than the
    /// pinned one ([`crate::trust::TlsFailure::Mismatch`]). Not retried by
    /// itself: the pin is kept for the whole run, and only editing the
    /// known-servers file (then starting again) changes it. A pinned server that
    /// fails the handshake otherwise (closes, resets, answers in plain text) is
    /// retried over TLS like any dropped connection, since a restarting server
    /// does that too; it is never used in plain text.
    Certificate,
}

/// Whether a server line says the connection is refused for good: `464`, or an
/// `ERROR` whose reason names a password, a full server, too many connections from
/// the address, or a ban.
///
/// Everything else an `ERROR` says is taken as transient and reconnected after,
/// because it describes this connection rather than us: "Server shutting down",
/// "Ping timeout", "Excess Flood", "SendQ exceeded", "Killed (...)" (an operator's
/// kill is a kick from the server, not a ban), "Closing Link". Servers word these
/// freely, so the rule matches words, case-insensitively.
pub fn refusal(command: &str, reason: &str) -> Option<Refusal> {
    if command == palaver_proto::numeric::ERR_PASSWDMISMATCH {
        return Some(Refusal::Password);
    }
    if !command.eq_ignore_ascii_case("ERROR") {
        return None;
    }
    let reason = reason.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| reason.contains(w));
    if has(&["password"]) {
        Some(Refusal::Password)
    } else if has(&["server full", "server is full", "too many connections"]) {
        Some(Refusal::Full)
    } else if has(&[
        "banned", "k-lined", "g-lined", "z-lined", "d-lined", "k-line", "g-line", "z-line",
        "d-line", "klined", "glined", "zlined",
    ]) {
        Some(Refusal::Banned)
    } else {
        None
    }
}

/// Why connecting failed, as one sentence a user can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The name.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// The local port could not be bound.
    #[error("cannot use local port {port}: {}", describe_bind(source))]
    Bind {
        /// The port.
        port: u16,
        /// The bind error.
        source: io::Error,
    },
    /// No address accepted the connection.
    #[error("cannot connect to {host}:{port}: {}", describe_connect(source))]
    Connect {
        /// Server host.
        host: String,
        /// Server port.
        port: u16,
        /// The last error.
        source: io::Error,
    },
    /// TLS failed: an unknown or changed certificate, or a server without TLS.
    #[error(transparent)]
    Tls(#[from] TlsFailure),
}

fn describe_bind(error: &io::Error) -> String {
    if error.kind() == io::ErrorKind::AddrInUse {
        "it is already in use (pick another or leave it out)".to_owned()
    } else {
        error.to_string()
    }
}

fn describe_connect(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused (is the server running?)".into(),
        io::ErrorKind::TimedOut => "timed out".into(),
        _ => error.to_string(),
    }
}

/// Starts the connection task; returns the core's ends of its two channels.
pub fn spawn(
    config: ConnectConfig,
) -> (
    mpsc::Sender<ToConn>,
    mpsc::Receiver<ConnEvent>,
    JoinHandle<()>,
) {
    let (to_conn, commands) = mpsc::channel(COMMAND_QUEUE);
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let task = tokio::spawn(run(config, events_tx, commands));
    (to_conn, events, task)
}

/// How a connected session ended.
enum End {
    /// We quit.
    Quit,
    /// The core dropped its channels.
    CoreGone,
    /// The connection failed.
    Dropped {
        reason: String,
        registered: bool,
        /// The server said why, and retrying will not help.
        refused: Option<Refusal>,
    },
    /// The core asked for a new connection.
    Reconnect,
}

async fn run(
    config: ConnectConfig,
    events: mpsc::Sender<ConnEvent>,
    mut commands: mpsc::Receiver<ToConn>,
) {
    let mut backoff = Backoff::new(&config);
    let mut generation = 0u64;
    let mut attempt = 0u32;
    'connect: loop {
        attempt = attempt.saturating_add(1);
        if events
            .send(ConnEvent::Connecting { attempt })
            .await
            .is_err()
        {
            return;
        }
        let reason = match connect(&config, generation > 0).await {
            Err(error) if generation == 0 => {
                tracing::error!("{error}");
                let _ = events.send(ConnEvent::Fatal(error.to_string())).await;
                return;
            }
            Err(ConnectError::Tls(failure @ TlsFailure::Mismatch { .. })) => {
                tracing::error!("{failure}; not retrying");
                let refused = ConnEvent::Refused {
                    refusal: Refusal::Certificate,
                    reason: failure.to_string(),
                };
                if events.send(refused).await.is_err() {
                    return;
                }
                if wait_after_refusal(&events, &mut commands).await {
                    backoff.reset();
                    continue 'connect;
                }
                return;
            }
            Err(error) => {
                tracing::warn!("{error}");
                error.to_string()
            }
            Ok((stream, peer)) => {
                generation += 1;
                tracing::info!(
                    tls = matches!(config.security, Security::Tls(_)),
                    "connected to {peer}"
                );
                if events
                    .send(ConnEvent::Connected { generation, peer })
                    .await
                    .is_err()
                {
                    return;
                }
                match session(stream, generation, &config, &events, &mut commands).await {
                    End::Quit => {
                        tracing::info!("quit");
                        let _ = events.send(ConnEvent::Closed).await;
                        return;
                    }
                    End::CoreGone => return,
                    End::Reconnect => {
                        tracing::info!("reconnecting as asked");
                        backoff.reset();
                        continue 'connect;
                    }
                    End::Dropped {
                        reason,
                        refused: Some(refusal),
                        ..
                    } => {
                        tracing::error!("refused by the server: {reason}; not retrying");
                        let refused = ConnEvent::Refused { refusal, reason };
                        if events.send(refused).await.is_err() {
                            return;
                        }
                        // Wait for the user to fix it (or leave).
                        if wait_after_refusal(&events, &mut commands).await {
                            backoff.reset();
                            continue 'connect;
                        }
                        return;
                    }
                    End::Dropped {
                        reason, registered, ..
                    } => {
                        tracing::warn!("connection lost: {reason}");
                        if registered {
                            backoff.reset();
                        }
                        reason
                    }
                }
            }
        };
        let retry_in = backoff.next_delay();
        if events
            .send(ConnEvent::Disconnected { reason, retry_in })
            .await
            .is_err()
        {
            return;
        }
        // Wait out the backoff; lines typed meanwhile belong to no connection.
        let until = Instant::now() + retry_in;
        loop {
            tokio::select! {
                () = sleep_until(until) => break,
                command = commands.recv() => match command {
                    None => return,
                    Some(ToConn::Quit(_)) => {
                        let _ = events.send(ConnEvent::Closed).await;
                        return;
                    }
                    Some(ToConn::Reconnect) => {
                        backoff.reset();
                        break;
                    }
                    Some(ToConn::Line { .. }) => {
                        if events.send(ConnEvent::Unsent).await.is_err() {
                            return;
                        }
                    }
                },
            }
        }
    }
}

/// After a refusal: waits for [`ToConn::Reconnect`] (true) or the end (false),
/// counting lines typed meanwhile as unsent.
async fn wait_after_refusal(
    events: &mpsc::Sender<ConnEvent>,
    commands: &mut mpsc::Receiver<ToConn>,
) -> bool {
    loop {
        match commands.recv().await {
            None => return false,
            Some(ToConn::Quit(_)) => {
                let _ = events.send(ConnEvent::Closed).await;
                return false;
            }
            Some(ToConn::Reconnect) => return true,
            Some(ToConn::Line { .. }) => {
                if events.send(ConnEvent::Unsent).await.is_err() {
                    return false;
                }
            }
        }
    }
}

/// The delays between reconnection attempts: from `backoff_initial`, doubling up
/// to `backoff_max` and staying there, each shortened by the jitter. It is reset
/// after a session that registered (the server was fine; only that
/// connection broke) and on `/reconnect`.
#[derive(Debug, Clone)]
struct Backoff {
    initial: Duration,
    max: Duration,
    jitter: f64,
    next: Duration,
}

impl Backoff {
    fn new(config: &ConnectConfig) -> Self {
        let initial = config.backoff_initial.min(config.backoff_max);
        Self {
            initial,
            max: config.backoff_max,
            jitter: config.jitter,
            next: initial,
        }
    }

    /// The delay before the next attempt; the one after is twice as long, at most
    /// `max` (the doubling stops there, so it never overflows either).
    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        jittered(delay, self.jitter)
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// `delay` shortened by a random fraction of at most `jitter` (0 to 1).
fn jittered(delay: Duration, jitter: f64) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    // A fresh `RandomState` is randomly keyed: enough randomness for spreading
    // reconnects, without a dependency.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let unit = (random >> 11) as f64 / (1u64 << 53) as f64;
    delay.mul_f64(1.0 - jitter.clamp(0.0, 1.0) * unit)
}

/// Any byte stream the session runs over: TCP, or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Connects as `config.security` says; returns the stream and the server's address.
async fn connect(
    config: &ConnectConfig,
    reconnecting: bool,
) -> Result<(Box<dyn Io>, SocketAddr), ConnectError> {
    let tcp = connect_tcp(config, reconnecting).await?;
    let _ = tcp.set_nodelay(true);
    let peer = tcp
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], config.port)));
    match &config.security {
        Security::Plain => Ok((Box::new(tcp), peer)),
        Security::Tls(policy) => {
            let tls = trust::handshake(
                tcp,
                &config.host,
                config.port,
                policy,
                config.connect_timeout,
            )
            .await?;
            Ok((Box::new(tls), peer))
        }
    }
}

/// What a first TLS handshake with a server that has no pin found (see [`probe`]).
#[derive(Debug, Clone)]
pub enum Probe {
    /// The system trusts the certificate for this host name: connect, no question.
    Trusted,
    /// The server's certificate is not vouched for: the user decides on this
    /// fingerprint.
    Unknown {
        /// The certificate's SHA-256 fingerprint.
        fingerprint: String,
    },
    /// The server does not speak TLS; why, in words.
    NotTls(String),
}

/// One TLS handshake with `config`'s server under `policy` (which carries no pin),
/// to learn whether the system trusts its certificate, or else its fingerprint
/// for the user to judge. The connection is closed afterwards; the session
/// connects again with the decision. It does not bind `local_port`: a probe
/// from that port would leave it in TIME_WAIT for the session that must use it.
pub async fn probe(config: &ConnectConfig, policy: &TlsPolicy) -> Result<Probe, ConnectError> {
    let mut plain = config.clone();
    plain.local_port = None;
    let tcp = connect_tcp(&plain, false).await?;
    match trust::handshake(
        tcp,
        &config.host,
        config.port,
        policy,
        config.connect_timeout,
    )
    .await
    {
        Ok(mut stream) => {
            let _ = timeout(Duration::from_secs(1), stream.shutdown()).await;
            Ok(Probe::Trusted)
        }
        Err(TlsFailure::Unknown { fingerprint, .. }) => Ok(Probe::Unknown { fingerprint }),
        Err(TlsFailure::NotTls { reason, .. }) => Ok(Probe::NotTls(reason)),
        Err(error) => Err(error.into()),
    }
}

/// Resolves and connects, binding the local port first when asked.
async fn connect_tcp(
    config: &ConnectConfig,
    reconnecting: bool,
) -> Result<TcpStream, ConnectError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((config.host.as_str(), config.port))
        .await
        .map_err(|source| ConnectError::Resolve {
            host: config.host.clone(),
            source,
        })?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address found");
    for addr in addrs {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        };
        let socket = match socket {
            Ok(socket) => socket,
            Err(error) => {
                last = error;
                continue;
            }
        };
        if let Some(port) = config.local_port {
            // Reuse only when reconnecting: our own previous connection may still sit
            // in TIME_WAIT, but a port some other program holds must be an error.
            if reconnecting {
                let _ = socket.set_reuseaddr(true);
            }
            let any: IpAddr = match addr {
                SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
                SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
            };
            socket
                .bind(SocketAddr::new(any, port))
                .map_err(|source| ConnectError::Bind { port, source })?;
        }
        match timeout(config.connect_timeout, socket.connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(error)) => last = error,
            Err(_) => last = io::Error::new(io::ErrorKind::TimedOut, "timed out"),
        }
    }
    Err(ConnectError::Connect {
        host: config.host.clone(),
        port: config.port,
        source: last,
    })
}

/// A token bucket pacing our lines.
struct Pacer {
    tokens: f64,
    burst: f64,
    rate: f64,
    last: Instant,
}

impl Pacer {
    fn new(burst: u32, rate: f64) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            tokens: burst,
            burst,
            rate: rate.max(0.01),
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    fn ready(&mut self) -> bool {
        self.refill(Instant::now());
        self.tokens >= 1.0
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }

    fn next_token_at(&self) -> Instant {
        let missing = (1.0 - self.tokens).max(0.0);
        self.last + Duration::from_secs_f64(missing / self.rate)
    }
}

/// Keepalive: PING every `ping_interval` once registered; drop if unanswered.
struct Pinger {
    outstanding: Option<(String, Instant)>,
    next: Instant,
    counter: u64,
}

async fn session(
    stream: Box<dyn Io>,
    generation: u64,
    config: &ConnectConfig,
    events: &mpsc::Sender<ConnEvent>,
    commands: &mut mpsc::Receiver<ToConn>,
) -> End {
    let (mut reader, writer) = tokio::io::split(stream);
    let mut writer = BufWriter::new(writer);
    let mut buf = BytesMut::with_capacity(4096);
    let mut framer = LineFramer::new();
    let mut registered = false;
    let mut closing: Option<String> = None;
    let mut pacer = Pacer::new(config.burst, config.rate);
    let far = || Instant::now() + Duration::from_secs(86_400);
    let mut pinger = Pinger {
        outstanding: None,
        next: far(),
        counter: 0,
    };
    // Set when the server refuses us for good; the close that follows says so.
    let mut refused: Option<Refusal> = None;
    let dropped = |reason: String, registered: bool, refused: Option<Refusal>| End::Dropped {
        reason,
        registered,
        refused,
    };
    loop {
        while let Some(frame) = framer.next_frame(&mut buf) {
            let bytes = match frame {
                Frame::Line(bytes) => bytes,
                Frame::TooLong => {
                    tracing::warn!("server sent an overlong line; skipped");
                    continue;
                }
            };
            let text = String::from_utf8_lossy(&bytes).into_owned();
            tracing::debug!("<< {text}");
            let Ok(msg) = Message::parse(&text) else {
                tracing::warn!("unparsable line from server: {text:?}");
                continue;
            };
            let command = msg.command();
            if command.eq_ignore_ascii_case("PING") {
                let mut pong = LineWriter::new();
                pong.command("PONG");
                for param in msg.params() {
                    pong.param(param);
                }
                if let Err(error) = write_line(&mut writer, pong.finish()).await {
                    return dropped(format!("write failed: {error}"), registered, refused);
                }
                continue;
            }
            if command.eq_ignore_ascii_case("PONG")
                && let Some((token, sent)) = &pinger.outstanding
                && msg.params().last() == Some(&token.as_str())
            {
                let lag = sent.elapsed();
                pinger.outstanding = None;
                pinger.next = Instant::now() + config.ping_interval;
                if events.send(ConnEvent::Lag(lag)).await.is_err() {
                    return End::CoreGone;
                }
                continue;
            }
            if let Some(kind) = refusal(command, msg.params().last().copied().unwrap_or("")) {
                refused = Some(kind);
            }
            if command.eq_ignore_ascii_case("ERROR") {
                // The server's last word is the reason the connection ends.
                closing = msg.params().last().map(|r| (*r).to_owned());
            }
            if command == palaver_proto::numeric::RPL_WELCOME && !registered {
                registered = true;
                // Measure lag right away so the status line shows it.
                pinger.next = Instant::now();
            }
            if events.send(ConnEvent::Line(text)).await.is_err() {
                return End::CoreGone;
            }
        }
        let ping_at = match &pinger.outstanding {
            Some((_, sent)) => *sent + config.ping_timeout,
            None => pinger.next,
        };
        let can_send = pacer.ready();
        let next_token = pacer.next_token_at();
        buf.reserve(4096);
        tokio::select! {
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) => {
                    let reason = closing.take().unwrap_or_else(|| "the server closed the connection".into());
                    return dropped(reason, registered, refused);
                }
                Ok(_) => {}
                Err(error) => return dropped(format!("read failed: {error}"), registered, refused),
            },
            command = commands.recv(), if can_send => match command {
                None => return End::CoreGone,
                Some(ToConn::Line { generation: g, line }) => {
                    if g != generation {
                        if events.send(ConnEvent::Unsent).await.is_err() {
                            return End::CoreGone;
                        }
                        continue;
                    }
                    pacer.take();
                    if let Err(error) = write_line(&mut writer, line).await {
                        // The line may or may not have left: count it as not sent.
                        let _ = events.send(ConnEvent::Unsent).await;
                        return dropped(format!("write failed: {error}"), registered, refused);
                    }
                    if events.send(ConnEvent::Sent).await.is_err() {
                        return End::CoreGone;
                    }
                }
                Some(ToConn::Quit(line)) => {
                    if write_line(&mut writer, line).await.is_ok() {
                        // Let the server finish what we sent before the QUIT, then
                        // close; it acknowledges with ERROR and closes itself.
                        let _ = timeout(Duration::from_secs(3), async {
                            loop {
                                buf.clear();
                                buf.reserve(4096);
                                match reader.read_buf(&mut buf).await {
                                    Ok(0) | Err(_) => break,
                                    Ok(_) => {}
                                }
                            }
                        })
                        .await;
                    }
                    return End::Quit;
                }
                Some(ToConn::Reconnect) => return End::Reconnect,
            },
            () = sleep_until(next_token), if !can_send => {}
            () = sleep_until(ping_at), if registered => {
                if pinger.outstanding.is_some() {
                    let waited = human(config.ping_timeout);
                    return dropped(format!("no reply to PING for {waited}"), registered, refused);
                }
                pinger.counter += 1;
                let token = format!("palaver-lag-{}", pinger.counter);
                let mut ping = LineWriter::new();
                ping.command("PING").param(&token);
                if let Err(error) = write_line(&mut writer, ping.finish()).await {
                    return dropped(format!("write failed: {error}"), registered, refused);
                }
                pinger.outstanding = Some((token, Instant::now()));
            }
        }
    }
}

async fn write_line(writer: &mut BufWriter<WriteHalf<Box<dyn Io>>>, line: Bytes) -> io::Result<()> {
    if tracing::enabled!(tracing::Level::DEBUG) {
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if text.len() >= 5 && text[..5].eq_ignore_ascii_case("PASS ") {
            tracing::debug!(">> PASS ****");
        } else if text.len() >= 13 && text[..13].eq_ignore_ascii_case("AUTHENTICATE ") {
            // SASL PLAIN carries the password (in base64), SCRAM a proof of it.
            tracing::debug!(">> AUTHENTICATE ****");
        } else {
            tracing::debug!(">> {text}");
        }
    }
    writer.write_all(&line).await?;
    writer.flush().await
}

/// `90s`, or `150ms` below a second.
fn human(duration: Duration) -> String {
    if duration >= Duration::from_secs(1) {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12, bug 6: with the defaults, the delays double from 1 s and stop
    /// at 60 s however long the server stays away; jitter only shortens them.
    #[test]
    fn issue_12_reconnect_backoff_is_capped_at_60_seconds() {
        let mut config = ConnectConfig::new("h", 1);
        config.jitter = 0.0;
        let mut backoff = Backoff::new(&config);
        let secs: Vec<u64> = (0..10).map(|_| backoff.next_delay().as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        for _ in 0..200 {
            assert_eq!(backoff.next_delay(), Duration::from_secs(60));
        }
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_secs(1));

        let mut jittery = Backoff::new(&ConnectConfig::new("h", 1));
        let delays: Vec<Duration> = (0..50).map(|_| jittery.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(60)));
        assert!(delays[10..].iter().all(|d| *d >= Duration::from_secs(45)));
    }

    #[test]
    fn jitter_only_shortens_and_varies() {
        let delay = Duration::from_secs(16);
        let delays: Vec<Duration> = (0..50).map(|_| jittered(delay, 0.25)).collect();
        assert!(
            delays
                .iter()
                .all(|d| *d <= delay && *d >= delay.mul_f64(0.75))
        );
        assert!(delays.iter().any(|d| *d != delays[0]), "{delays:?}");
        assert_eq!(jittered(delay, 0.0), delay);
    }

    #[test]
    fn refusals_are_told_apart_from_transient_errors() {
        let cases = [
            ("464", "Password incorrect", Some(Refusal::Password)),
            ("ERROR", "Bad password", Some(Refusal::Password)),
            (
                "ERROR",
                "Too many failed password attempts from your address; try again in 60 seconds",
                Some(Refusal::Password),
            ),
            ("ERROR", "Server full", Some(Refusal::Full)),
            (
                "ERROR",
                "Too many connections from your IP address",
                Some(Refusal::Full),
            ),
            (
                "ERROR",
                "You are banned from this server",
                Some(Refusal::Banned),
            ),
            (
                "ERROR",
                "Closing Link: x (K-Lined: spam)",
                Some(Refusal::Banned),
            ),
            ("ERROR", "Server shutting down", None),
            ("ERROR", "Ping timeout: 120 seconds", None),
            ("ERROR", "Excess Flood", None),
            ("ERROR", "Killed (oper (go away))", None),
            ("NOTICE", "password", None),
        ];
        for (command, reason, expected) in cases {
            assert_eq!(refusal(command, reason), expected, "{command} {reason}");
        }
    }
}
