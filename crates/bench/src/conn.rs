//! One IRC client connection as the load generator sees it: a socket, a read
//! buffer framed by [`LineFramer`], and registration that answers PING and retries
//! a nickname in use.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use palaver_proto::{Frame, LineFramer, LineWriter, Message};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

use crate::transport::{self, Stream};

/// Bytes asked for per read; large reads keep the receive path cheap under fan-out.
pub const READ_CHUNK: usize = 64 * 1024;

/// Nicknames tried per client before registration fails with
/// [`RegisterError::NickInUse`] (the first plus this many suffixed retries).
pub const MAX_NICK_RETRIES: u32 = 5;

/// Loopback source addresses new IPv4 loopback connections are spread over.
static SOURCE_IPS: AtomicU32 = AtomicU32::new(1);
/// Round-robin position in those addresses.
static NEXT_SOURCE: AtomicU32 = AtomicU32::new(0);
/// Most source addresses: 127.0.1.1 to 127.0.250.250.
pub const MAX_SOURCE_IPS: u32 = 250 * 250;

/// Spreads the connections to an IPv4 loopback target over `count` source addresses
/// (127.0.1.1, 127.0.1.2, ...; 1 = the kernel's choice, 127.0.0.1).
///
/// Why: Linux picks a connection's ephemeral port by scanning for a free one per
/// (source, destination) pair, so with 20,000 connections from one address to one
/// port each `connect` scans thousands of ports; measured here, that scan took 72 %
/// of the generator's time and capped registrations at ~4,000/s. A server's
/// per-IP limits then apply per source address.
pub fn spread_sources(count: u32) {
    SOURCE_IPS.store(count.clamp(1, MAX_SOURCE_IPS), Ordering::Relaxed);
}

/// How many source addresses connections are spread over now (see
/// [`spread_sources`]), so a scenario that needs more can raise it.
pub fn source_ips() -> u32 {
    SOURCE_IPS.load(Ordering::Relaxed)
}

/// The source address for the next connection to `addr`, if it is to be chosen.
fn source_for(addr: SocketAddr) -> Option<SocketAddr> {
    let count = SOURCE_IPS.load(Ordering::Relaxed);
    let SocketAddr::V4(target) = addr else {
        return None;
    };
    if count <= 1 || !target.ip().is_loopback() {
        return None;
    }
    let n = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) % count;
    let (high, low) = ((1 + n / 250) as u8, (1 + n % 250) as u8);
    Some(SocketAddr::from(([127, 0, high, low], 0)))
}

/// A connected IRC client: the stream (over the [`transport`] chosen) and what has
/// been read but not yet framed.
#[derive(Debug)]
pub struct Conn {
    stream: Stream,
    buf: BytesMut,
    framer: LineFramer,
}

impl Conn {
    /// Connects to `addr` with TCP_NODELAY (every benchmark line should leave at once),
    /// over the transport of [`transport::current`] (handshakes included).
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        Self::connect_from(addr, None).await
    }

    /// Connects to `addr` from the source address `from` (port chosen by the kernel),
    /// or from the spread of [`spread_sources`] when `from` is `None`. Why: a scenario
    /// that plays one abusive address against everyone else needs to choose which
    /// address each client comes from.
    pub async fn connect_from(addr: SocketAddr, from: Option<IpAddr>) -> io::Result<Self> {
        let source = match from {
            Some(ip) => Some(SocketAddr::new(ip, 0)),
            None => source_for(addr),
        };
        let stream = match source {
            Some(source) => {
                let socket = if source.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                socket.bind(source)?;
                socket.connect(addr).await?
            }
            None => TcpStream::connect(addr).await?,
        };
        stream.set_nodelay(true)?;
        let stream = Stream::open(stream, addr, transport::current()).await?;
        Ok(Self {
            stream,
            buf: BytesMut::with_capacity(4096),
            framer: LineFramer::new(),
        })
    }

    /// Writes `bytes` (one or more complete lines) to the server.
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        transport::write_flush(&mut self.stream, bytes).await
    }

    /// The next complete line without its terminator; `None` when the server closed
    /// the connection. Overlong lines are skipped. Cancel-safe.
    pub async fn next_line(&mut self) -> io::Result<Option<BytesMut>> {
        loop {
            match self.framer.next_frame(&mut self.buf) {
                Some(Frame::Line(line)) => return Ok(Some(line)),
                Some(Frame::TooLong) => continue,
                None => {}
            }
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(4096);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Takes the connection apart for a hot receive loop: the stream, the unframed
    /// bytes already read (which must be framed first) and the framer's state.
    pub fn into_parts(self) -> (Stream, BytesMut, LineFramer) {
        (self.stream, self.buf, self.framer)
    }
}

/// Serialises one line through [`LineWriter`]: `command`, middle `params`, and an
/// optional trailing parameter.
pub fn line(command: &str, params: &[&str], trailing: Option<&str>) -> Bytes {
    let mut writer = LineWriter::new();
    writer.command(command);
    for param in params {
        writer.param(param);
    }
    if let Some(text) = trailing {
        writer.trailing(text);
    }
    writer.finish()
}

/// Parses a received line; `None` for invalid UTF-8 or an unparsable line (a load
/// generator ignores what it does not understand).
pub fn parse(line: &[u8]) -> Option<Message<'_>> {
    Message::parse(std::str::from_utf8(line).ok()?).ok()
}

/// The PONG answering `ping` (same parameters).
pub fn pong(ping: &Message<'_>) -> Bytes {
    let params = ping.params();
    match params.split_last() {
        Some((last, rest)) => line("PONG", rest, Some(last)),
        None => line("PONG", &[], None),
    }
}

/// A short identifier for this run (two base-36 characters), so that nicknames of
/// two runs against the same server rarely collide: `b{run}{index}` stays within a
/// nine-character NICKLEN up to index 99,999 plus a retry suffix.
pub fn run_id() -> String {
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let a = DIGITS[(seed % 36) as usize] as char;
    let b = DIGITS[((seed / 36) % 36) as usize] as char;
    format!("{a}{b}")
}

/// Why a client did not register.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The TCP connection could not be made.
    #[error("connect failed: {0}")]
    Connect(io::Error),
    /// Registration did not finish in time.
    #[error("registration timed out")]
    Timeout,
    /// The server closed the connection without an ERROR line.
    #[error("connection closed by the server")]
    Closed,
    /// The server refused us (an ERROR line, or an erroneous-nickname or banned numeric).
    #[error("refused by the server: {0}")]
    Refused(String),
    /// Every nickname tried was in use.
    #[error("nickname in use after {0} tries")]
    NickInUse(u32),
    /// Reading or writing failed after connecting.
    #[error("i/o error: {0}")]
    Io(io::Error),
}

impl RegisterError {
    /// A short, stable name for counting failures by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Timeout => "timeout",
            Self::Closed => "closed",
            Self::Refused(_) => "refused",
            Self::NickInUse(_) => "nick_in_use",
            Self::Io(_) => "io",
        }
    }
}

/// A registered client.
#[derive(Debug)]
pub struct Registered {
    /// The connection, positioned after the end of the welcome burst (376 or 422).
    pub conn: Conn,
    /// The nickname the server accepted.
    pub nick: String,
    /// From starting the TCP connect to receiving 001 RPL_WELCOME.
    pub latency: Duration,
}

/// Connects to `addr` and registers as `nick` (NICK + USER), answering PING and
/// retrying with a letter suffix on 433; waits for the end of the MOTD (376/422) so
/// the welcome burst is consumed. The whole exchange is bounded by `limit`.
pub async fn register(
    addr: SocketAddr,
    nick: &str,
    limit: Duration,
) -> Result<Registered, RegisterError> {
    register_from(addr, None, nick, limit).await
}

/// [`register`] from the source address `from` (see [`Conn::connect_from`]).
pub async fn register_from(
    addr: SocketAddr,
    from: Option<IpAddr>,
    nick: &str,
    limit: Duration,
) -> Result<Registered, RegisterError> {
    let start = Instant::now();
    match tokio::time::timeout(limit, register_inner(addr, from, nick, start)).await {
        Ok(result) => result,
        Err(_) => Err(RegisterError::Timeout),
    }
}

async fn register_inner(
    addr: SocketAddr,
    from: Option<IpAddr>,
    base: &str,
    start: Instant,
) -> Result<Registered, RegisterError> {
    let mut conn = Conn::connect_from(addr, from)
        .await
        .map_err(RegisterError::Connect)?;
    let mut nick = base.to_owned();
    let mut hello = BytesMut::new();
    hello.extend_from_slice(&line("NICK", &[&nick], None));
    hello.extend_from_slice(&line("USER", &[&nick, "0", "*"], Some("chat-bench")));
    conn.send(&hello).await.map_err(RegisterError::Io)?;
    let mut retries = 0;
    let mut welcomed: Option<Duration> = None;
    loop {
        let Some(raw) = conn.next_line().await.map_err(RegisterError::Io)? else {
            return Err(RegisterError::Closed);
        };
        let Some(msg) = parse(&raw) else { continue };
        match msg.command() {
            "PING" => conn.send(&pong(&msg)).await.map_err(RegisterError::Io)?,
            "001" => {
                welcomed = Some(start.elapsed());
                if let Some(accepted) = msg.param(0) {
                    accepted.clone_into(&mut nick);
                }
            }
            "376" | "422" => {
                if let Some(latency) = welcomed {
                    return Ok(Registered {
                        conn,
                        nick,
                        latency,
                    });
                }
            }
            "433" if welcomed.is_none() => {
                retries += 1;
                if retries > MAX_NICK_RETRIES {
                    return Err(RegisterError::NickInUse(retries));
                }
                nick = format!("{base}{}", char::from(b'a' + (retries - 1) as u8));
                conn.send(&line("NICK", &[&nick], None))
                    .await
                    .map_err(RegisterError::Io)?;
            }
            "432" | "436" | "465" | "ERROR" => {
                let why = msg.params().last().copied().unwrap_or_default();
                return Err(RegisterError::Refused(format!("{} {why}", msg.command())));
            }
            _ => {}
        }
    }
}
