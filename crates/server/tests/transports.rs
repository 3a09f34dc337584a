//! One port for everything: plain IRC, IRC over TLS, HTTP and WebSocket (over
//! plain HTTP and TLS), told apart by their first bytes; the self-signed
//! certificate and its fingerprint; client certificates in WHOIS.

use std::sync::Arc;
use std::time::Duration;

use palaver_server::ServerTls;
use palaver_test_support::transports::{
    ClientIdentity, connect_tls, connect_websocket, http_request,
};
use palaver_test_support::{TIMEOUT, TestClient, TestServer, test_config};
use tokio::net::TcpStream;

use crate::binary::ServerProcess;
use crate::channels::ask;

/// A server with an in-memory self-signed certificate.
async fn tls_server() -> (TestServer, String) {
    let tls = ServerTls::self_signed(&["localhost".to_owned()]).expect("certificate");
    let fingerprint = tls.fingerprint();
    let mut config = test_config();
    config.tls = Some(Arc::new(tls));
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
    assert!(head.to_ascii_lowercase().contains("content-type: text/html"), "{head}");
    assert!(body.contains("test.server"), "{body}");

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
        (&["binary.ircv3.net", "text.ircv3.net"], Some("binary.ircv3.net"), true),
        (&["text.ircv3.net", "binary.ircv3.net"], Some("text.ircv3.net"), false),
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
async fn websocket_text_frames_are_utf8_and_binary_frames_are_bytes() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;

    let (server, _) = tls_server().await;
    let mut plain = server.client("plain").await;
    for (protocol, binary) in [("text.ircv3.net", false), ("binary.ircv3.net", true)] {
        let (mut socket, _) = connect_websocket(server.addr, &[protocol], false).await;
        let nick = if binary { "bin" } else { "txt" };
        for line in [format!("NICK {nick}"), format!("USER {nick} 0 * :{nick}")] {
            socket.send(Message::text(line)).await.expect("send");
        }
        // Not UTF-8: a text client gets U+FFFD in a text frame, a binary one the
        // bytes in a binary frame.
        plain.send_raw(format!("PRIVMSG {nick} :caf\u{e9}").as_bytes()).await;
        plain.send_raw(b"\r\n").await;
        plain.send_raw(format!("PRIVMSG {nick} :caf").as_bytes()).await;
        plain.send_raw(b"\xe9\r\n").await;
        let mut privmsgs = Vec::new();
        while privmsgs.len() < 2 {
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
            assert_eq!(is_binary, binary, "{protocol}");
            assert!(!payload.ends_with(b"\n"), "one line per message, no line end");
            if payload.windows(7).any(|w| w == b"PRIVMSG") {
                privmsgs.push(payload);
            }
        }
        assert!(privmsgs[0].ends_with(":caf\u{e9}".as_bytes()), "{privmsgs:?}");
        if binary {
            assert!(privmsgs[1].ends_with(b":caf\xe9"), "{privmsgs:?}");
        } else {
            assert!(privmsgs[1].ends_with(":caf\u{fffd}".as_bytes()), "{privmsgs:?}");
        }
        // A client's binary message on a text connection is taken as it is.
        socket
            .send(Message::binary(b"PRIVMSG plain :caf\xe9".to_vec()))
            .await
            .expect("send");
        let raw = plain.next_raw_line().await.expect("the message");
        assert!(raw.ends_with(b"PRIVMSG plain :caf\xe9"), "{raw:?}");
        socket.close(None).await.expect("close");
        plain.sync().await;
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
    assert!(seen.iter().any(|l| l.contains(" 671 plain carol :")), "{seen:#?}");
    assert!(!seen.iter().any(|l| l.contains(" 276 ")), "{seen:#?}");
    let plain_whois = ask(&mut carol, "WHOIS plain").await;
    assert!(!plain_whois.iter().any(|l| l.contains(" 671 ")), "{plain_whois:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_dropped_at_the_registration_timeout() {
    let mut config = test_config();
    config.limits.registration_timeout = Duration::from_millis(300);
    let server = TestServer::with_config(config).await;
    let mut silent = TestClient::connect(server.addr).await;
    // Nothing is said to it (its protocol is unknown): the socket just closes.
    assert!(silent.next_line().await.is_none());
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
        command.args(["127.0.0.1", "0", "--data-dir"]).arg(dir.path());
        let server = ServerProcess::spawn_command(command);
        let line = server.expect_stdout("SHA-256 fingerprint: ");
        let fingerprint = line
            .rsplit(' ')
            .next()
            .expect("a fingerprint")
            .to_owned();
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
