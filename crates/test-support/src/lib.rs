//! Test helpers shared by the workspace's integration tests: a palaver server on
//! `127.0.0.1:0` in the test's own runtime, and a scripted IRC client that sends
//! lines and awaits specific replies with a timeout.
//!
//! Every wait here is bounded ([`TIMEOUT`]), so a broken feature fails its test with a
//! message saying what was awaited instead of hanging the suite.

use std::net::SocketAddr;
use std::sync::Once;
use std::time::Duration;

use bytes::BytesMut;
use palaver_proto::{Frame, LineFramer, Message};
use palaver_server::Config;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod transports;

/// How long any single expectation waits before failing the test.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Installs a tracing subscriber once (`RUST_LOG` filters; off by default).
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// Raises this process's file-descriptor limit, for tests with many sockets.
pub fn raise_fd_limit() {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
}

/// A configuration for tests: no flood pacing, no per-IP limit and no connection
/// throttling (every test client comes from 127.0.0.1, many at once), a fixed
/// server name, no history notice on JOIN.
pub fn test_config() -> Config {
    let mut config = Config {
        server_name: "test.server".to_owned(),
        ..Config::default()
    };
    config.limits.flood = None;
    config.limits.max_clients_per_ip = usize::MAX;
    config.limits.connect_per_ip = None;
    config.limits.connect_per_network = None;
    // Tests of the JOIN burst expect the burst alone (tests/history.rs checks the
    // notice).
    config.history.join_notice = false;
    config
}

/// [`test_config`] with TLS on: a fresh in-memory self-signed certificate for
/// `localhost`. Returns its SHA-256 fingerprint too, as the server prints it.
pub fn tls_test_config() -> (Config, String) {
    let tls = palaver_server::ServerTls::self_signed(&["localhost".to_owned()])
        .expect("a self-signed certificate");
    let fingerprint = tls.fingerprint();
    let mut config = test_config();
    config.tls = Some(std::sync::Arc::new(tls));
    (config, fingerprint)
}

/// A server running in the current runtime until dropped or [`TestServer::shutdown`].
pub struct TestServer {
    /// Where clients connect.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts a server with [`test_config`].
    pub async fn start() -> Self {
        Self::with_config(test_config()).await
    }

    /// Starts a server with `config` on `127.0.0.1:0`.
    pub async fn with_config(config: Config) -> Self {
        init_tracing();
        let listener = palaver_server::bind(([127, 0, 0, 1], 0).into()).expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(palaver_server::run(listener, config, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Connects a client without registering.
    pub async fn connect(&self) -> TestClient {
        TestClient::connect(self.addr).await
    }

    /// Connects and registers a client as `nick` (waits for the end of the MOTD).
    pub async fn client(&self, nick: &str) -> TestClient {
        let mut client = self.connect().await;
        client.register(nick).await;
        client
    }

    /// Connects and registers a client as `nick` after negotiating the IRCv3
    /// capabilities `caps` (space separated; all must be acknowledged).
    pub async fn client_with_caps(&self, nick: &str, caps: &str) -> TestClient {
        let mut client = self.connect().await;
        client.register_with_caps(nick, caps).await;
        client
    }

    /// Registers one client per nickname and joins each to `channel` in order (the
    /// first becomes its operator); returns once every JOIN has been seen by every
    /// member, with nothing left unread.
    pub async fn clients_in(&self, channel: &str, nicks: &[&str]) -> Vec<TestClient> {
        let mut clients = Vec::with_capacity(nicks.len());
        for nick in nicks {
            let mut client = self.client(nick).await;
            client.send(&format!("JOIN {channel}")).await;
            client.expect_command("366").await;
            clients.push(client);
        }
        // Every JOIN was queued before its joiner saw 366: one barrier each drains them.
        for client in &mut clients {
            client.sync().await;
        }
        clients
    }

    /// Stops the server and waits for `run` to return.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(TIMEOUT, task)
                .await
                .expect("server stops in time")
                .expect("server task")
                .expect("server run");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// One line received by a [`TestClient`], kept as text and parsed on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line(pub String);

impl Line {
    /// The parsed message.
    pub fn msg(&self) -> Message<'_> {
        Message::parse(&self.0)
            .unwrap_or_else(|e| panic!("server sent unparsable {:?}: {e}", self.0))
    }

    /// The command or numeric.
    pub fn command(&self) -> &str {
        self.msg().command()
    }

    /// Parameter `index`, or "" if missing.
    pub fn param(&self, index: usize) -> String {
        self.msg().param(index).unwrap_or_default().to_owned()
    }

    /// The last parameter, or "".
    pub fn last(&self) -> String {
        self.msg()
            .params()
            .last()
            .copied()
            .unwrap_or_default()
            .to_owned()
    }

    /// The nickname part of the source.
    pub fn source_nick(&self) -> String {
        self.msg()
            .source()
            .map(|s| palaver_proto::Source::split(s).nick.to_owned())
            .unwrap_or_default()
    }
}

/// The reading half of a test client's stream (TCP, TLS or WebSocket).
pub type Reader = Box<dyn AsyncRead + Unpin + Send>;
/// The writing half of a test client's stream.
pub type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// A scripted IRC client over a real socket.
pub struct TestClient {
    reader: Reader,
    writer: Writer,
    buf: BytesMut,
    framer: LineFramer,
    /// The nickname given to [`TestClient::register`].
    pub nick: String,
}

impl TestClient {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Self::from_stream(stream)
    }

    /// Wraps a stream the test connected itself (e.g. through a `TcpSocket` with a
    /// small receive buffer).
    pub fn from_stream(stream: TcpStream) -> Self {
        stream.set_nodelay(true).expect("nodelay");
        Self::from_io(stream)
    }

    /// Wraps any byte stream of IRC lines: a TLS stream, or the pipe of a
    /// WebSocket client ([`crate::transports`]).
    pub fn from_io(io: impl AsyncRead + AsyncWrite + Send + 'static) -> Self {
        let (reader, writer) = tokio::io::split(io);
        Self {
            reader: Box::new(reader),
            writer: Box::new(writer),
            buf: BytesMut::new(),
            framer: LineFramer::new(),
            nick: String::new(),
        }
    }

    /// The socket's two halves, for a test that drives them itself (lines already
    /// read into this client's buffer are dropped).
    pub fn into_split(self) -> (Reader, Writer) {
        (self.reader, self.writer)
    }

    /// Sends one line (CRLF is added).
    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    /// Sends raw bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("send");
    }

    /// Registers as `nick` and waits for `376`/`422` (end of the welcome burst).
    pub async fn register(&mut self, nick: &str) {
        self.nick = nick.to_owned();
        self.send(&format!("NICK {nick}")).await;
        self.send(&format!("USER {nick} 0 * :Test user {nick}"))
            .await;
        self.expect_command("001").await;
        self.expect(|l| l.command() == "376" || l.command() == "422")
            .await;
    }

    /// Registers as `nick` with capabilities `caps` (space-separated, all of
    /// which must be acknowledged) and waits for the end of the welcome burst.
    pub async fn register_with_caps(&mut self, nick: &str, caps: &str) {
        self.nick = nick.to_owned();
        self.send(&format!("CAP REQ :{caps}")).await;
        let ack = self.expect_command("CAP").await;
        assert_eq!(
            (ack.param(1).as_str(), ack.last().as_str()),
            ("ACK", caps),
            "{nick}: capabilities not acknowledged"
        );
        self.send(&format!("NICK {nick}")).await;
        self.send(&format!("USER {nick} 0 * :Test user {nick}"))
            .await;
        self.send("CAP END").await;
        self.expect_command("001").await;
        self.expect(|l| l.command() == "376" || l.command() == "422")
            .await;
    }

    /// The next line, or `None` when the server closed the connection.
    pub async fn next_line(&mut self) -> Option<Line> {
        tokio::time::timeout(TIMEOUT, self.read_line())
            .await
            .unwrap_or_else(|_| panic!("{}: no line from the server within {TIMEOUT:?}", self.nick))
    }

    /// The next line exactly as the server sent it (no lossy UTF-8 decoding, no
    /// terminator), or `None` when the server closed the connection.
    pub async fn next_raw_line(&mut self) -> Option<Vec<u8>> {
        tokio::time::timeout(TIMEOUT, self.read_raw_line())
            .await
            .unwrap_or_else(|_| panic!("{}: no line from the server within {TIMEOUT:?}", self.nick))
    }

    async fn read_line(&mut self) -> Option<Line> {
        let bytes = self.read_raw_line().await?;
        Some(Line(String::from_utf8_lossy(&bytes).into_owned()))
    }

    async fn read_raw_line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(frame) = self.framer.next_frame(&mut self.buf) {
                match frame {
                    Frame::Line(bytes) => return Some(bytes.to_vec()),
                    Frame::TooLong => panic!("server sent an overlong line"),
                }
            }
            self.buf.reserve(4096);
            match self.reader.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Skips lines until one satisfies `pred`, and returns it.
    pub async fn expect(&mut self, pred: impl Fn(&Line) -> bool) -> Line {
        let mut seen = Vec::new();
        let found = tokio::time::timeout(TIMEOUT, async {
            loop {
                match self.read_line().await {
                    Some(line) if pred(&line) => return Some(line),
                    Some(line) => seen.push(line.0),
                    None => return None,
                }
            }
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            Ok(None) => panic!("{}: connection closed; lines seen: {seen:#?}", self.nick),
            Err(_) => panic!(
                "{}: expected line not seen within {TIMEOUT:?}; lines seen: {seen:#?}",
                self.nick
            ),
        }
    }

    /// Skips lines until one has `command` (a command or numeric).
    pub async fn expect_command(&mut self, command: &str) -> Line {
        self.expect(|l| l.command().eq_ignore_ascii_case(command))
            .await
    }

    /// Waits until the server closes the connection; returns the lines seen before.
    pub async fn expect_closed(&mut self) -> Vec<Line> {
        let mut seen = Vec::new();
        let closed = tokio::time::timeout(TIMEOUT, async {
            while let Some(line) = self.read_line().await {
                seen.push(line);
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "{}: connection still open; lines seen: {seen:#?}",
            self.nick
        );
        seen
    }

    /// Sends a PING and returns every line received before its PONG: a barrier that
    /// proves the server processed everything sent before it.
    pub async fn sync(&mut self) -> Vec<Line> {
        let token = format!("sync-{}", self.nick);
        self.send(&format!("PING {token}")).await;
        let mut before = Vec::new();
        loop {
            let line = self
                .next_line()
                .await
                .unwrap_or_else(|| panic!("{}: closed while syncing", self.nick));
            if line.command() == "PONG" && line.last() == token {
                return before;
            }
            before.push(line);
        }
    }
}
