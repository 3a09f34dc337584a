//! TLS records as the server's own TLS transport (rustls's unbuffered API) must
//! take and give them: split across reads, larger than one record, closed with
//! close_notify, re-keyed, or garbage.
//!
//! The client here is a rustls `ClientConnection` driven by hand over a raw TCP
//! socket, so a test decides exactly which bytes go out and when.

use std::io::{Read as _, Write as _};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palaver_test_support::{TIMEOUT, TestServer, tls_test_config};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A TLS client whose records the test sends itself.
struct RawTls {
    tcp: TcpStream,
    tls: rustls::ClientConnection,
    /// Decrypted bytes not yet taken as lines.
    plaintext: Vec<u8>,
    /// Send TLS bytes one at a time, each in its own TCP segment, pausing now
    /// and then so the server reads them in many pieces.
    dribble: bool,
}

impl RawTls {
    async fn connect(server: &TestServer, dribble: bool) -> Self {
        Self::connect_with(server, dribble, rustls::DEFAULT_VERSIONS).await
    }

    /// A client offering only `versions` of TLS.
    async fn connect_with(
        server: &TestServer,
        dribble: bool,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Self {
        let provider = palaver_tls::ring_provider();
        let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .expect("protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(palaver_tls::AnyServerCert::recording(
                provider,
                Arc::new(Mutex::new(None)),
            )))
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").expect("server name");
        let tls = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
        let tcp = TcpStream::connect(server.addr).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let mut client = Self {
            tcp,
            tls,
            plaintext: Vec::new(),
            dribble,
        };
        tokio::time::timeout(TIMEOUT, async {
            while client.tls.is_handshaking() {
                client.flush().await;
                if client.tls.is_handshaking() {
                    assert!(client.receive().await, "closed during the handshake");
                }
            }
            client.flush().await;
        })
        .await
        .expect("TLS handshake in time");
        client
    }

    /// Sends every TLS byte the client has queued.
    async fn flush(&mut self) {
        let mut out = Vec::new();
        while self.tls.wants_write() {
            self.tls.write_tls(&mut out).expect("TLS bytes");
        }
        self.send_raw(&out).await;
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        if !self.dribble {
            self.tcp.write_all(bytes).await.expect("send");
            return;
        }
        for (i, byte) in bytes.iter().enumerate() {
            self.tcp.write_all(&[*byte]).await.expect("send a byte");
            if i % 16 == 15 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }

    /// Sends `text`, 16 KiB at a time (rustls holds at most 64 KiB unsent).
    async fn send(&mut self, text: &str) {
        for piece in text.as_bytes().chunks(16 * 1024) {
            self.tls.writer().write_all(piece).expect("plaintext");
            self.flush().await;
        }
    }

    /// Reads from the socket and decrypts; false once the TCP stream ended.
    async fn receive(&mut self) -> bool {
        let mut buf = vec![0; 64 * 1024];
        let n = self.tcp.read(&mut buf).await.expect("read");
        if n == 0 {
            return false;
        }
        let mut data = &buf[..n];
        while !data.is_empty() {
            self.tls.read_tls(&mut data).expect("TLS bytes in");
            self.tls
                .process_new_packets()
                .expect("valid TLS from the server");
            self.take_plaintext().expect("TLS read");
        }
        true
    }

    /// Moves what rustls decrypted to `plaintext`; `Ok(true)` once the server
    /// closed with close_notify.
    fn take_plaintext(&mut self) -> std::io::Result<bool> {
        let mut chunk = vec![0; 64 * 1024];
        loop {
            match self.tls.reader().read(&mut chunk) {
                Ok(0) => return Ok(true),
                Ok(n) => self.plaintext.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }

    /// The next line from the server.
    async fn line(&mut self) -> String {
        tokio::time::timeout(TIMEOUT, async {
            loop {
                if let Some(end) = self.plaintext.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = self.plaintext.drain(..=end).collect();
                    return String::from_utf8_lossy(&line).trim_end().to_owned();
                }
                assert!(self.receive().await, "connection closed before a line");
            }
        })
        .await
        .expect("a line in time")
    }

    /// Lines until one containing `needle` (returned).
    async fn line_with(&mut self, needle: &str) -> String {
        loop {
            let line = self.line().await;
            if line.contains(needle) {
                return line;
            }
        }
    }

    async fn register(&mut self, nick: &str) {
        self.send(&format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n"))
            .await;
        self.line_with(" 001 ").await;
    }

    /// Reads until the TCP stream ends; returns the lines that came, and whether
    /// the server closed TLS with close_notify first.
    async fn until_closed(&mut self) -> (Vec<String>, bool) {
        tokio::time::timeout(TIMEOUT, async {
            let mut buf = vec![0; 64 * 1024];
            let mut lines = Vec::new();
            let mut clean = false;
            // A reset (after an alert) ends the stream as EOF does.
            while let Ok(n @ 1..) = self.tcp.read(&mut buf).await {
                let mut data = &buf[..n];
                while !data.is_empty() {
                    if self.tls.read_tls(&mut data).is_err()
                        || self.tls.process_new_packets().is_err()
                    {
                        data = &[];
                        continue;
                    }
                    clean |= self.take_plaintext().unwrap_or(false);
                }
            }
            for line in String::from_utf8_lossy(&self.plaintext).lines() {
                lines.push(line.to_owned());
            }
            (lines, clean)
        })
        .await
        .expect("the server closes in time")
    }
}

async fn tls_server() -> TestServer {
    let (config, _) = tls_test_config();
    TestServer::with_config(config).await
}

/// The server still serves: a new TLS client registers and gets an answer.
async fn still_serving(server: &TestServer) {
    let mut other = RawTls::connect(server, false).await;
    other.register("other").await;
    other.send("PING :alive\r\n").await;
    assert!(other.line_with("PONG").await.ends_with(":alive"));
}

#[tokio::test]
async fn records_split_across_many_reads_are_put_together() {
    let server = tls_server().await;
    // The handshake, registration and a PING, one byte per TCP segment.
    let mut client = RawTls::connect(&server, true).await;
    client.register("dribbler").await;
    client.send("PING :one-byte-at-a-time\r\n").await;
    let pong = client.line_with("PONG").await;
    assert!(pong.ends_with(":one-byte-at-a-time"), "{pong}");
}

#[tokio::test]
async fn writes_larger_than_a_record_arrive_whole_and_in_order() {
    let server = tls_server().await;
    let mut client = RawTls::connect(&server, false).await;
    client.register("bulk").await;
    // 3,000 PINGs in one go (~60 KB: several client records, read in pieces by
    // the server) and as many PONGs back (~150 KB: batches of 64 KiB, each
    // several server records).
    let count = 3000;
    let mut burst = String::new();
    for i in 0..count {
        burst.push_str(&format!("PING :token-{i:05}-{}\r\n", "x".repeat(20)));
    }
    client.send(&burst).await;
    for i in 0..count {
        let pong = client.line_with("PONG").await;
        assert!(pong.contains(&format!(":token-{i:05}-")), "{i}: {pong}");
    }
}

#[tokio::test]
async fn close_notify_from_the_client_ends_the_connection_cleanly() {
    let server = tls_server().await;
    let mut client = RawTls::connect(&server, false).await;
    client.register("leaver").await;
    client.tls.send_close_notify();
    client.flush().await;
    let (lines, clean) = client.until_closed().await;
    assert!(
        lines.iter().any(|line| line.starts_with("ERROR :")),
        "{lines:?}"
    );
    assert!(clean, "the server answers with close_notify");
    still_serving(&server).await;
}

#[tokio::test]
async fn a_key_update_from_the_client_is_followed() {
    let server = tls_server().await;
    let mut client = RawTls::connect(&server, false).await;
    client.register("rekeyer").await;
    for round in 0..3 {
        // KeyUpdate asking the server to update its keys too: the server's
        // update must come before anything it encrypts with its new keys.
        client.tls.refresh_traffic_keys().expect("key update");
        client
            .send(&format!("PING :after-update-{round}\r\n"))
            .await;
        let pong = client.line_with("PONG").await;
        assert!(pong.ends_with(&format!(":after-update-{round}")), "{pong}");
    }
}

#[tokio::test]
async fn garbage_after_the_handshake_closes_the_connection() {
    let server = tls_server().await;
    let garbage: [&[u8]; 3] = [
        // An application data record whose bytes do not decrypt.
        &[
            0x17, 0x03, 0x03, 0x00, 0x20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
            17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
        ],
        // Not TLS at all.
        b"PRIVMSG #nowhere :hello in clear\r\n",
        // A record header announcing more than a record may hold.
        &[0x17, 0x03, 0x03, 0xff, 0xff, 0, 0, 0],
    ];
    for (i, bytes) in garbage.iter().enumerate() {
        let mut client = RawTls::connect(&server, false).await;
        client.register(&format!("junk{i}")).await;
        client.send_raw(bytes).await;
        // The server drops the connection (its reason is logged); it does not
        // wait for more.
        let _ = client.until_closed().await;
    }
    still_serving(&server).await;
}

#[tokio::test]
async fn tls_1_2_clients_are_served_too() {
    let server = tls_server().await;
    let mut client = RawTls::connect_with(&server, true, &[&rustls::version::TLS12]).await;
    assert_eq!(
        client.tls.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    client.register("old").await;
    client.send("PING :twelve\r\n").await;
    assert!(client.line_with("PONG").await.ends_with(":twelve"));
    client.tls.send_close_notify();
    client.flush().await;
    let (_, clean) = client.until_closed().await;
    assert!(clean, "the server answers with close_notify");
}

#[tokio::test]
async fn a_tls_client_that_stops_reading_is_dropped_at_its_sendq() {
    let (mut config, _) = tls_test_config();
    config.limits.sendq_bytes = 64 * 1024;
    let server = TestServer::with_config(config).await;
    let mut slow = RawTls::connect(&server, false).await;
    slow.register("slow").await;
    slow.send("JOIN #lobby\r\n").await;
    slow.line_with(" 366 ").await;
    // From here on `slow` reads nothing.
    let mut flooder = server.client("flooder").await;
    flooder.send("JOIN #lobby").await;
    flooder.expect_command("366").await;
    let line = format!("PRIVMSG #lobby :{}\r\n", "z".repeat(400));
    let batch = line.repeat(50);
    let mut bytes = 0usize;
    loop {
        assert!(
            bytes < 64 << 20,
            "slow reader still connected after {bytes} bytes"
        );
        flooder.send_raw(batch.as_bytes()).await;
        bytes += batch.len();
        let seen = flooder.sync().await;
        if let Some(quit) = seen
            .iter()
            .find(|l| l.command() == "QUIT" && l.source_nick() == "slow")
        {
            assert!(quit.last().contains("SendQ"), "{}", quit.last());
            break;
        }
    }
    still_serving(&server).await;
}

#[tokio::test]
async fn a_client_hello_that_stops_halfway_is_dropped_at_the_registration_timeout() {
    let (mut config, _) = tls_test_config();
    config.limits.registration_timeout = Duration::from_millis(500);
    let server = TestServer::with_config(config).await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    // A record header announcing 200 bytes of handshake, and 10 of them.
    let mut start = vec![0x16, 0x03, 0x01, 0x00, 200, 0x01, 0x00, 0x00, 196];
    start.extend_from_slice(&[0; 6]);
    tcp.write_all(&start).await.expect("send");
    let mut buf = [0; 64];
    let closed = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("dropped soon after the registration timeout");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    still_serving(&server).await;
}
