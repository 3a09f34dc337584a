//! One port for everything: plain IRC, IRC over TLS, HTTP and WebSocket (over
//! plain HTTP and TLS), told apart by their first bytes; the self-signed
//! certificate and its fingerprint; client certificates in WHOIS.

use std::sync::Arc;
use std::time::Duration;

use palaver_server::ServerTls;
use palaver_test_support::transports::{
    ClientIdentity, connect_tls, connect_websocket, http_request,
};
use palaver_test_support::{TIMEOUT, TestClient, TestServer, test_config, tls_test_config};
use tokio::net::TcpStream;

use crate::binary::ServerProcess;
use crate::channels::ask;

/// A server with an in-memory self-signed certificate.
async fn tls_server() -> (TestServer, String) {
    let (config, fingerprint) = tls_test_config();
    (TestServer::with_config(config).await, fingerprint)
}

/// The PRIVMSG `from` sends to `to` arrives.
async fn chat(from: &mut TestClient, to: &mut TestClient, text: &str) {
    from.send(&format!("PRIVMSG {} :{text}", to.nick)).await;
    let line = to.expect_command("PRIVMSG").await;
    assert_eq!(line.source_nick(), from.nick);
    assert_eq!(line.last(), text);
}

#[tokio::test]
async fn plain_irc_and_tls_share_the_port() {
    let (server, fingerprint) = tls_server().await;
    let mut plain = server.client("plain").await;
    let (stream, presented) = connect_tls(server.addr, None, &[]).await;
    assert_eq!(presented, fingerprint);
    let mut secure = TestClient::from_io(stream);
    secure.register("secure").await;
    chat(&mut secure, &mut plain, "over TLS").await;
    chat(&mut plain, &mut secure, "to TLS").await;
    server.shutdown().await;
}

#[tokio::test]
async fn http_is_served_on_the_irc_port_in_clear_and_inside_tls() {
    let (server, _) = tls_server().await;
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let (status, _, body) = http_request(tcp, "GET /healthz HTTP/1.1", &[]).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let (status, head, body) = http_request(tcp, "GET / HTTP/1.1", &[]).await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{head}"
    );
    assert!(
        body.contains("src=\"/static/"),
        "the browser client: {body}"
    );

    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let (status, _, _) = http_request(tcp, "GET /nothing-here HTTP/1.1", &[]).await;
    assert_eq!(status, 404);

    // A browser says http/1.1 in ALPN; a script over TLS may not: both are HTTP.
    for alpn in [&["http/1.1"][..], &[]] {
        let (tls, _) = connect_tls(server.addr, None, alpn).await;
        let (status, _, body) = http_request(tls, "GET /healthz HTTP/1.1", &[]).await;
        assert_eq!((status, body.as_str()), (200, "ok\n"), "ALPN {alpn:?}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn websocket_subprotocols_follow_the_clients_order() {
    let (server, _) = tls_server().await;
    let mut plain = server.client("plain").await;
    let cases: [(&[&str], Option<&str>, bool); 5] = [
        (&["binary.ircv3.net"], Some("binary.ircv3.net"), true),
        (&["text.ircv3.net"], Some("text.ircv3.net"), false),
        (
            &["binary.ircv3.net", "text.ircv3.net"],
            Some("binary.ircv3.net"),
            true,
        ),
        (
            &["text.ircv3.net", "binary.ircv3.net"],
            Some("text.ircv3.net"),
            false,
        ),
        (&[], None, false),
    ];
    for (n, (offered, expected, binary)) in cases.into_iter().enumerate() {
        for tls in [false, true] {
            let (socket, chosen) = connect_websocket(server.addr, offered, tls).await;
            assert_eq!(chosen.as_deref(), expected, "offered {offered:?}");
            let mut web = TestClient::from_websocket(socket, binary);
            web.register(&format!("web{n}{}", u8::from(tls))).await;
            chat(&mut web, &mut plain, "from the web").await;
            chat(&mut plain, &mut web, "to the web").await;
            web.send("QUIT").await;
            web.expect_closed().await;
            plain.sync().await;
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn websocket_lines_go_as_text_or_binary_frames_one_line_each() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;

    let (server, _) = tls_server().await;
    let mut plain = server.client("plain").await;
    for (protocol, binary) in [("text.ircv3.net", false), ("binary.ircv3.net", true)] {
        let (mut socket, _) = connect_websocket(server.addr, &[protocol], false).await;
        let nick = if binary { "bin" } else { "txt" };
        // The client may send either kind of frame, whatever the subprotocol.
        socket
            .send(Message::text(format!("NICK {nick}")))
            .await
            .expect("send");
        socket
            .send(Message::binary(
                format!("USER {nick} 0 * :{nick}").into_bytes(),
            ))
            .await
            .expect("send");
        let mut sent = false;
        let privmsg = loop {
            let message = tokio::time::timeout(TIMEOUT, socket.next())
                .await
                .expect("a message in time")
                .expect("open")
                .expect("a message");
            let (is_binary, payload) = match message {
                Message::Text(text) => (false, text.as_bytes().to_vec()),
                Message::Binary(bytes) => (true, bytes.to_vec()),
                _ => continue,
            };
            assert_eq!(is_binary, binary, "{protocol}: the frame kind");
            assert!(
                !payload.ends_with(b"\n"),
                "one line per message, no line end"
            );
            // Registered: now there is someone to send to.
            if !sent && payload.windows(5).any(|w| w == b" 001 ") {
                plain
                    .send(&format!("PRIVMSG {nick} :caf\u{e9} \u{1f600}"))
                    .await;
                sent = true;
            }
            let wanted = format!(" PRIVMSG {nick} :");
            if payload
                .windows(wanted.len())
                .any(|w| w == wanted.as_bytes())
            {
                break payload;
            }
        };
        assert!(
            privmsg.ends_with(" :caf\u{e9} \u{1f600}".as_bytes()),
            "{privmsg:?}"
        );
        // Bytes that are not UTF-8 are refused (the server is UTF8ONLY), over
        // WebSocket as over TCP.
        socket
            .send(Message::binary(b"PRIVMSG plain :caf\xe9".to_vec()))
            .await
            .expect("send");
        let refusal = loop {
            match tokio::time::timeout(TIMEOUT, socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => break text.as_str().to_owned(),
                Ok(Some(Ok(Message::Binary(bytes)))) => {
                    break String::from_utf8_lossy(&bytes).into_owned();
                }
                Ok(Some(Ok(_))) => {}
                other => panic!("no refusal: {other:?}"),
            }
        };
        assert!(refusal.contains("FAIL PRIVMSG INVALID_UTF8"), "{refusal}");
        socket.close(None).await.expect("close");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn websocket_origins_can_be_restricted() {
    let mut config = test_config();
    config.allowed_origins = vec!["https://chat.example.org".to_owned()];
    let server = TestServer::with_config(config).await;
    let upgrade = |origin: &'static str| {
        let addr = server.addr;
        async move {
            let tcp = TcpStream::connect(addr).await.expect("connect");
            http_request(
                tcp,
                "GET / HTTP/1.1",
                &[
                    "Upgrade: websocket",
                    "Connection: Upgrade",
                    "Sec-WebSocket-Version: 13",
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                    origin,
                ],
            )
            .await
        }
    };
    let (status, _, _) = upgrade("Origin: https://elsewhere.example").await;
    assert_eq!(status, 403);
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let mut raw = tcp;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    raw.write_all(
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Origin: https://chat.example.org\r\n\r\n",
    )
    .await
    .expect("send");
    let mut head = vec![0u8; 512];
    let n = tokio::time::timeout(TIMEOUT, raw.read(&mut head))
        .await
        .expect("answer in time")
        .expect("read");
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // RFC 6455's own example key and answer.
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    server.shutdown().await;
}

#[tokio::test]
async fn whois_shows_a_secure_connection_and_its_certificate_fingerprint() {
    let (server, _) = tls_server().await;
    let identity = ClientIdentity::generate("carol");
    let mut carol = TestClient::connect_tls(server.addr, Some(&identity)).await;
    carol.register("carol").await;
    let mut plain = server.client("plain").await;

    let own = ask(&mut carol, "WHOIS carol").await;
    assert!(
        own.iter().any(|l| l.contains(" 671 carol carol :")),
        "{own:#?}"
    );
    assert!(
        own.iter()
            .any(|l| l.contains(" 276 carol carol :") && l.contains(&identity.certfp)),
        "{own:#?}"
    );
    // Others see that the connection is secure, not the fingerprint.
    let seen = ask(&mut plain, "WHOIS carol").await;
    assert!(
        seen.iter().any(|l| l.contains(" 671 plain carol :")),
        "{seen:#?}"
    );
    assert!(!seen.iter().any(|l| l.contains(" 276 ")), "{seen:#?}");
    let plain_whois = ask(&mut carol, "WHOIS plain").await;
    assert!(
        !plain_whois.iter().any(|l| l.contains(" 671 ")),
        "{plain_whois:#?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_dropped_at_the_registration_timeout() {
    let (mut config, _) = tls_test_config();
    config.limits.registration_timeout = Duration::from_millis(300);
    let server = TestServer::with_config(config).await;
    let mut silent = TestClient::connect(server.addr).await;
    // Whatever it meant to speak, it is told in IRC's words (someone at nc).
    let line = silent.next_line().await.expect("a last word");
    assert_eq!(line.0, "ERROR :Registration timed out");
    assert!(silent.next_line().await.is_none());
    // A TLS client that never finishes its handshake is dropped too.
    let stalled = TcpStream::connect(server.addr).await.expect("connect");
    stalled.writable().await.expect("writable");
    stalled
        .try_write(b"\x16\x03\x01")
        .expect("the start of a ClientHello");
    let mut rest = Vec::new();
    use tokio::io::AsyncReadExt as _;
    let mut stalled = stalled;
    let read = tokio::time::timeout(TIMEOUT, stalled.read_to_end(&mut rest))
        .await
        .expect("closed in time");
    assert!(read.is_err() || rest.is_empty(), "{rest:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn tls_handshakes_are_refused_when_tls_is_off() {
    let server = TestServer::start().await;
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let connector = {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    };
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let result = tokio::time::timeout(TIMEOUT, connector.connect(name, tcp))
        .await
        .expect("an answer in time");
    assert!(result.is_err());
    // Plain IRC is unaffected.
    let _plain = server.client("plain").await;
    server.shutdown().await;
}

#[test]
fn the_self_signed_certificate_survives_a_restart_with_its_fingerprint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = || {
        let mut command = ServerProcess::command_with_data();
        command
            .args(["127.0.0.1", "0", "--data-dir"])
            .arg(dir.path());
        let server = ServerProcess::spawn_command(command);
        let line = server.expect_stdout("SHA-256 fingerprint: ");
        let fingerprint = line.rsplit(' ').next().expect("a fingerprint").to_owned();
        let (server, addr) = ServerProcess::listening(server);
        (server, addr, fingerprint)
    };
    let (mut first, addr, fingerprint) = start();
    assert_eq!(fingerprint.len(), 95, "{fingerprint}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let presented = runtime.block_on(async { connect_tls(addr, None, &[]).await.1 });
    assert_eq!(presented, fingerprint);
    first.signal("TERM");
    assert!(first.wait_exit().0.success());
    let (mut second, _, again) = start();
    assert_eq!(again, fingerprint);
    second.signal("TERM");
    assert!(second.wait_exit().0.success());
}

/// Registers the account `nick` on `client` (already registered as `nick`).
async fn register_account(client: &mut TestClient) {
    let replies = ask(client, "REGISTER * * correct-horse").await;
    assert!(replies[0].contains("REGISTER SUCCESS"), "{replies:#?}");
}

/// NickServ's answers to `command`, as text.
async fn nickserv(client: &mut TestClient, command: &str) -> Vec<String> {
    let prefix = format!(":NickServ!NickServ@services. NOTICE {} :", client.nick);
    ask(client, &format!("PRIVMSG NickServ :{command}"))
        .await
        .iter()
        .map(|line| line.strip_prefix(&prefix).unwrap_or(line).to_owned())
        .collect()
}

/// Starts registering `nick` over TLS with `identity`, asks for `sasl` and tries
/// SASL EXTERNAL; returns the replies to the exchange.
async fn try_external(
    server: &TestServer,
    identity: Option<&ClientIdentity>,
    nick: &str,
) -> Vec<String> {
    let mut client = TestClient::connect_tls(server.addr, identity).await;
    client.nick = nick.to_owned();
    client.send("CAP REQ :sasl").await;
    client.expect_command("CAP").await;
    client.send(&format!("NICK {nick}")).await;
    client.send(&format!("USER {nick} 0 * :{nick}")).await;
    let mut replies = ask(&mut client, "AUTHENTICATE EXTERNAL").await;
    if replies == [":test.server AUTHENTICATE +"] {
        replies = ask(&mut client, "AUTHENTICATE +").await;
    }
    replies
}

#[tokio::test]
async fn sasl_external_logs_in_with_a_certificate_the_account_added() {
    let (server, _) = tls_server().await;
    let identity = ClientIdentity::generate("carol");
    let mut carol = TestClient::connect_tls(server.addr, Some(&identity)).await;
    carol.register("carol").await;
    register_account(&mut carol).await;
    let added = nickserv(&mut carol, "CERT ADD").await;
    assert_eq!(
        added,
        [format!(
            "Certificate {} added: it now logs you in (SASL EXTERNAL)",
            identity.certfp
        )]
    );
    assert_eq!(
        nickserv(&mut carol, "CERT LIST").await,
        [
            "Certificates that log you in:".to_owned(),
            identity.certfp.clone()
        ]
    );

    // The certificate alone logs in.
    let replies = try_external(&server, Some(&identity), "carol2").await;
    assert!(
        replies
            .iter()
            .any(|l| l.contains(" 900 carol2 ") && l.contains(" carol ")),
        "{replies:#?}"
    );
    assert!(replies.iter().any(|l| l.contains(" 903 ")), "{replies:#?}");
    // Without a certificate, or with one no account accepts, it does not.
    let replies = try_external(&server, None, "nocert").await;
    assert!(replies.iter().any(|l| l.contains(" 904 ")), "{replies:#?}");
    let stranger = ClientIdentity::generate("stranger");
    let replies = try_external(&server, Some(&stranger), "stranger").await;
    assert!(replies.iter().any(|l| l.contains(" 904 ")), "{replies:#?}");

    // Removed, it logs in no more; a fingerprint may be given with colons.
    let colons: Vec<String> = identity
        .certfp
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).to_ascii_uppercase())
        .collect();
    assert_eq!(
        nickserv(&mut carol, &format!("CERT DEL {}", colons.join(":"))).await,
        [format!("Certificate {} removed", identity.certfp)]
    );
    let replies = try_external(&server, Some(&identity), "carol3").await;
    assert!(replies.iter().any(|l| l.contains(" 904 ")), "{replies:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn cap_ls_offers_external_and_sts_where_they_apply() {
    let (server, _) = tls_server().await;
    let mut plain = server.connect().await;
    let offered = ask(&mut plain, "CAP LS 302").await.join(" ");
    assert!(
        offered.contains(" sasl=PLAIN,SCRAM-SHA-256,EXTERNAL"),
        "{offered}"
    );
    // A self-signed certificate gets no STS policy: it would lock clients out.
    assert!(!offered.contains("sts"), "{offered}");
    server.shutdown().await;

    let (mut config, _) = tls_test_config();
    config.sts = Some(palaver_server::StsPolicy {
        port: 6697,
        duration: Duration::from_secs(86_400),
    });
    let server = TestServer::with_config(config).await;
    let mut plain = server.connect().await;
    let offered = ask(&mut plain, "CAP LS 302").await.join(" ");
    assert!(offered.contains(" sts=port=6697"), "{offered}");
    let mut secure = TestClient::connect_tls(server.addr, None).await;
    let offered = ask(&mut secure, "CAP LS 302").await.join(" ");
    assert!(offered.contains(" sts=duration=86400"), "{offered}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_tls_only_channel_refuses_plain_connections() {
    let (server, _) = tls_server().await;
    let mut secure = TestClient::connect_tls(server.addr, None).await;
    secure.register("secure").await;
    let mut plain = server.client("plain").await;
    ask(&mut secure, "JOIN #vault").await;
    let set = ask(&mut secure, "MODE #vault +z").await;
    assert_eq!(set, [":secure!~secure@127.0.0.1 MODE #vault +z"]);
    let refused = ask(&mut plain, "JOIN #vault").await;
    assert_eq!(
        refused,
        [":test.server 489 plain #vault :Cannot join channel (+z): connect with TLS first"]
    );
    let mut other = TestClient::connect_tls(server.addr, None).await;
    other.register("other").await;
    let joined = ask(&mut other, "JOIN #vault").await;
    assert!(joined[0].ends_with(" JOIN #vault"), "{joined:#?}");
    let modes = ask(&mut other, "MODE #vault").await;
    assert!(
        modes[0].contains(" 324 other #vault +nz") || modes[0].contains("z"),
        "{modes:#?}"
    );
    server.shutdown().await;
}

#[test]
fn an_operators_certificate_is_read_again_on_sighup() {
    let first = tempfile::tempdir().expect("tempdir");
    let second = tempfile::tempdir().expect("tempdir");
    let names = ["localhost".to_owned()];
    let old = ServerTls::self_signed_in(first.path(), &names).expect("first pair");
    let new = ServerTls::self_signed_in(second.path(), &names).expect("second pair");
    let (cert, key) = (
        first.path().join("tls/cert.pem"),
        first.path().join("tls/key.pem"),
    );
    let mut command = ServerProcess::command();
    command
        .args(["127.0.0.1", "0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key);
    let server = ServerProcess::spawn_command(command);
    let line = server.expect_stdout("SHA-256 fingerprint: ");
    assert!(line.ends_with(&old.fingerprint()), "{line}");
    let (mut server, addr) = ServerProcess::listening(server);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (mut before, presented) = runtime.block_on(async {
        let (stream, presented) = connect_tls(addr, None, &[]).await;
        let mut client = TestClient::from_io(stream);
        client.register("before").await;
        (client, presented)
    });
    assert_eq!(presented, old.fingerprint());

    // A renewal replaces the files; SIGHUP says to read them now.
    std::fs::copy(second.path().join("tls/cert.pem"), &cert).expect("copy");
    std::fs::remove_file(&key).expect("remove");
    std::fs::copy(second.path().join("tls/key.pem"), &key).expect("copy");
    server.signal("HUP");
    let line = server.expect_stdout("TLS certificate reloaded");
    assert!(
        line.contains(&format!(
            "TLS certificate reloaded (SHA-256 {})",
            new.fingerprint()
        )),
        "{line}"
    );
    runtime.block_on(async {
        let (_, presented) = connect_tls(addr, None, &[]).await;
        assert_eq!(presented, new.fingerprint());
        // The connection made before is still served.
        before.send("PING :still-here").await;
        let pong = before.expect_command("PONG").await;
        assert_eq!(pong.last(), "still-here");
    });
    server.signal("TERM");
    let (status, stderr) = server.wait_exit();
    assert!(status.success(), "{stderr}");
}

#[test]
fn listen_adds_tls_only_and_plain_only_ports() {
    let mut command = ServerProcess::command();
    command.args([
        "127.0.0.1",
        "0",
        "--listen",
        "127.0.0.1:0/tls",
        "--listen",
        "127.0.0.1:0/plain",
    ]);
    let server = ServerProcess::spawn_command(command);
    let address = |line: String| -> std::net::SocketAddr {
        line.split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
    };
    let main = address(server.expect_stdout("(IRC, TLS, HTTP and WebSocket)"));
    let tls_only = address(server.expect_stdout("(TLS only)"));
    let plain_only = address(server.expect_stdout("(plain IRC only)"));
    let mut server = server;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // The TLS-only port: TLS works, plain IRC is dropped unanswered.
        let mut secure = TestClient::connect_tls(tls_only, None).await;
        secure.register("secure").await;
        let mut refused = TestClient::connect(tls_only).await;
        // One write: the server may close as soon as it has seen the first bytes.
        refused
            .send_raw(b"NICK refused\r\nUSER refused 0 * :refused\r\n")
            .await;
        assert!(refused.next_line().await.is_none());
        // The plain-only port: IRC as it comes, nothing sniffed.
        let mut plain = TestClient::connect(plain_only).await;
        plain.register("plain").await;
        // One server behind all three ports.
        let mut other = TestClient::connect(main).await;
        other.register("other").await;
        other.send("PRIVMSG secure :across ports").await;
        let line = secure.expect_command("PRIVMSG").await;
        assert_eq!(line.last(), "across ports");
        other.send("PRIVMSG plain :here too").await;
        assert_eq!(plain.expect_command("PRIVMSG").await.last(), "here too");
    });
    server.signal("TERM");
    let (status, stderr) = server.wait_exit();
    assert!(status.success(), "{stderr}");
}
