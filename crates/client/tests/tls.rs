//! TLS and trust on first use: the real `chat-client` binary in line mode against
//! an in-process server with a self-signed certificate (or without TLS), and the
//! connection task reconnecting under a pin.

use std::path::Path;
use std::sync::Arc;

use palaver_client::connection::{self, ConnEvent, ConnectConfig, ToConn};
use palaver_client::trust::{self, Pin, Security, TlsPolicy};
use palaver_server::ServerTls;
use palaver_test_support::{TIMEOUT, TestClient, TestServer, test_config, tls_test_config};

use crate::binary::Proc;

/// A server with a fresh self-signed certificate; returns it with the
/// certificate's fingerprint.
async fn tls_server() -> (TestServer, String) {
    let (config, fingerprint) = tls_test_config();
    (TestServer::with_config(config).await, fingerprint)
}

/// A server without TLS.
async fn plain_server() -> TestServer {
    let mut config = test_config();
    config.tls = None;
    TestServer::with_config(config).await
}

/// A registered watcher in #lobby.
async fn watcher(server: &TestServer) -> TestClient {
    let mut watcher = server.client("watcher").await;
    watcher.send("JOIN #lobby").await;
    watcher.expect_command("366").await;
    watcher
}

async fn expect_said(watcher: &mut TestClient, nick: &str, text: &str) {
    let line = watcher.expect_command("PRIVMSG").await;
    assert_eq!(
        (line.source_nick().as_str(), line.last().as_str()),
        (nick, text)
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// First contact with `--accept-fingerprint` pins the certificate and chats;
/// the next run finds the pin and asks nothing (its first input line is chat,
/// not an answer).
#[tokio::test]
async fn tofu_accepted_fingerprint_is_pinned_and_trusted_next_time() {
    let (server, fingerprint) = tls_server().await;
    let mut watcher = watcher(&server).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let known = dir.path().join("config").join("known_servers");
    let known_arg = known.to_str().expect("utf-8 path");
    let port = server.addr.port().to_string();

    let mut ann = Proc::spawn_tls(
        &[
            "127.0.0.1",
            &port,
            "--nick",
            "ann",
            "--known-servers",
            known_arg,
            "--accept-fingerprint",
            &fingerprint.to_ascii_lowercase(),
        ],
        &[],
    );
    ann.write("hello over tls\n").await;
    ann.close_stdin();
    expect_said(&mut watcher, "ann", "hello over tls").await;
    let (code, stderr) = ann.finish().await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(read(&known), format!("127.0.0.1:{port} {fingerprint}\n"));

    let mut again = Proc::spawn_tls(
        &[
            "127.0.0.1",
            &port,
            "--nick",
            "ann",
            "--known-servers",
            known_arg,
        ],
        &[],
    );
    again.write("y\n").await;
    again.close_stdin();
    // Had it asked, "y" would have been the answer instead of a message.
    expect_said(&mut watcher, "ann", "y").await;
    let (code, stderr) = again.finish().await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("(y/N)"), "{stderr}");
}

/// Line mode asks on stderr, shows the fingerprint, and takes `y` from stdin.
#[tokio::test]
async fn tofu_line_mode_asks_and_pins_on_yes() {
    let (server, fingerprint) = tls_server().await;
    let mut watcher = watcher(&server).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let known = dir.path().join("known_servers");
    let port = server.addr.port().to_string();
    let mut bob = Proc::spawn_tls(
        &[
            "127.0.0.1",
            &port,
            "--nick",
            "bob",
            "--known-servers",
            known.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    bob.write("y\nhi after yes\n").await;
    bob.close_stdin();
    expect_said(&mut watcher, "bob", "hi after yes").await;
    let (code, stderr) = bob.finish().await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains(&fingerprint), "{stderr}");
    assert!(stderr.contains("(y/N)"), "{stderr}");
    assert_eq!(read(&known), format!("127.0.0.1:{port} {fingerprint}\n"));
}

/// With nothing to read the client refuses, naming the option, and pins nothing.
#[tokio::test]
async fn tofu_no_answer_is_a_refusal_naming_accept_fingerprint() {
    let (server, fingerprint) = tls_server().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let known = dir.path().join("known_servers");
    let port = server.addr.port().to_string();
    let mut carol = Proc::spawn_tls(
        &[
            "127.0.0.1",
            &port,
            "--nick",
            "carol",
            "--known-servers",
            known.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    carol.close_stdin();
    let (code, stderr) = carol.finish().await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("--accept-fingerprint {fingerprint}")),
        "{stderr}"
    );
    assert!(!known.exists());

    // A different fingerprint on the command line is refused as well.
    let other = ServerTls::self_signed(&["localhost".into()])
        .expect("certificate")
        .fingerprint();
    let dan = Proc::spawn_tls(
        &[
            "127.0.0.1",
            &port,
            "--nick",
            "dan",
            "--known-servers",
            known.to_str().expect("utf-8 path"),
            "--accept-fingerprint",
            &other,
        ],
        &[],
    );
    let (code, stderr) = dan.finish().await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&fingerprint) && stderr.contains(&other),
        "{stderr}"
    );
    assert!(!known.exists());
}

/// A pinned host:port presenting another certificate is refused with both
/// fingerprints and the line to edit; no question, whatever the flags say.
#[tokio::test]
async fn tofu_a_changed_certificate_is_refused() {
    let (server, presented) = tls_server().await;
    let pinned = ServerTls::self_signed(&["localhost".into()])
        .expect("certificate")
        .fingerprint();
    let dir = tempfile::tempdir().expect("temp dir");
    let known = dir.path().join("known_servers");
    let port = server.addr.port().to_string();
    std::fs::write(&known, format!("# pins\n127.0.0.1:{port} {pinned}\n")).expect("write pins");
    let mut eve = Proc::spawn_tls(
        &[
            "127.0.0.1",
            &port,
            "--nick",
            "eve",
            "--known-servers",
            known.to_str().expect("utf-8 path"),
            "--accept-fingerprint",
            &presented,
        ],
        &[],
    );
    eve.write("y\n").await;
    eve.close_stdin();
    let (code, stderr) = eve.finish().await;
    assert_eq!(code, Some(1), "{stderr}");
    for needle in [
        presented.as_str(),
        pinned.as_str(),
        known.to_str().expect("utf-8 path"),
        "line 2",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
    assert!(!stderr.contains("(y/N)"), "{stderr}");
    // The file is untouched.
    assert_eq!(read(&known), format!("# pins\n127.0.0.1:{port} {pinned}\n"));
}

/// A server without TLS: refused without an answer (naming --plain), used in plain
/// text after a `y`, and with `--plain` without a question.
#[tokio::test]
async fn tofu_a_plain_server_needs_consent_or_plain() {
    let server = plain_server().await;
    let mut watcher = watcher(&server).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let known = dir.path().join("known_servers");
    let known_arg = known.to_str().expect("utf-8 path");
    let port = server.addr.port().to_string();
    let base = ["127.0.0.1", &port, "--known-servers", known_arg, "--nick"];

    let mut refused = Proc::spawn_tls(&[&base[..], &["fay"]].concat(), &[]);
    refused.close_stdin();
    let (code, stderr) = refused.finish().await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("does not speak TLS") && stderr.contains("--plain"),
        "{stderr}"
    );

    let mut agreed = Proc::spawn_tls(&[&base[..], &["gus"]].concat(), &[]);
    agreed.write("y\nplain by consent\n").await;
    agreed.close_stdin();
    expect_said(&mut watcher, "gus", "plain by consent").await;
    let (code, stderr) = agreed.finish().await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("(y/N)"), "{stderr}");

    let mut plain = Proc::spawn_tls(&[&base[..], &["hal", "--plain"]].concat(), &[]);
    plain.write("plain by flag\n").await;
    plain.close_stdin();
    expect_said(&mut watcher, "hal", "plain by flag").await;
    let (code, stderr) = plain.finish().await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("(y/N)"), "{stderr}");
    // Nothing is pinned for a plain server.
    assert!(!known.exists());
}

/// A pinned server that no longer speaks TLS is never used in plain text, even
/// with an answer at hand.
#[tokio::test]
async fn tofu_a_pinned_server_is_never_downgraded() {
    let server = plain_server().await;
    let pinned = ServerTls::self_signed(&["localhost".into()])
        .expect("certificate")
        .fingerprint();
    let dir = tempfile::tempdir().expect("temp dir");
    let known = dir.path().join("known_servers");
    let port = server.addr.port().to_string();
    std::fs::write(&known, format!("127.0.0.1:{port} {pinned}\n")).expect("write pins");
    let mut ivy = Proc::spawn_tls(
        &[
            "127.0.0.1",
            &port,
            "--nick",
            "ivy",
            "--known-servers",
            known.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    ivy.write("y\n").await;
    ivy.close_stdin();
    let (code, stderr) = ivy.finish().await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("never used in plain text") && stderr.contains("line 1"),
        "{stderr}"
    );
}

/// The connection task keeps its TLS decision across reconnections: the pin is
/// checked again each time and nothing is asked.
#[tokio::test]
async fn tofu_reconnects_reuse_the_pin() {
    let (server, fingerprint) = tls_server().await;
    let mut config = ConnectConfig::new("127.0.0.1", server.addr.port());
    config.security = Security::Tls(TlsPolicy {
        pin: Some(Pin {
            fingerprint,
            file: "known_servers".into(),
            line: 1,
        }),
        system: trust::system_verifier().ok(),
        identity: None,
    });
    let (to_conn, mut events, _task) = connection::spawn(config);
    let mut next_connected = async || loop {
        match tokio::time::timeout(TIMEOUT, events.recv())
            .await
            .expect("event in time")
            .expect("task alive")
        {
            ConnEvent::Connected { generation, .. } => return generation,
            ConnEvent::Fatal(message) => panic!("{message}"),
            _ => {}
        }
    };
    assert_eq!(next_connected().await, 1);
    to_conn.send(ToConn::Reconnect).await.expect("task alive");
    assert_eq!(next_connected().await, 2);
}

/// A wrong pin makes the first connection fail for good, naming both
/// fingerprints.
#[tokio::test]
async fn tofu_the_connection_task_refuses_a_wrong_pin() {
    let (server, presented) = tls_server().await;
    let pinned = ServerTls::self_signed(&["localhost".into()])
        .expect("certificate")
        .fingerprint();
    let mut config = ConnectConfig::new("127.0.0.1", server.addr.port());
    config.security = Security::Tls(TlsPolicy {
        pin: Some(Pin {
            fingerprint: pinned.clone(),
            file: "known_servers".into(),
            line: 7,
        }),
        system: None,
        identity: None,
    });
    let (_to_conn, mut events, _task) = connection::spawn(config);
    let message = loop {
        match tokio::time::timeout(TIMEOUT, events.recv())
            .await
            .expect("event in time")
            .expect("task alive")
        {
            ConnEvent::Fatal(message) => break message,
            ConnEvent::Connected { .. } => panic!("connected despite a wrong pin"),
            _ => {}
        }
    };
    assert!(
        message.contains(&presented) && message.contains(&pinned) && message.contains("line 7"),
        "{message}"
    );
}

/// `--tls-cert` and `--tls-key` present a client certificate: the server shows
/// its fingerprint in WHOIS (276, shown to its owner and to operators: the
/// watcher is one).
#[tokio::test]
async fn tofu_a_client_certificate_is_presented() {
    let (mut config, fingerprint) = tls_test_config();
    config.opers =
        vec![palaver_server::opers::OperCredential::from_password("root", "s3cret").expect("hash")];
    let server = TestServer::with_config(config).await;
    let mut watcher = watcher(&server).await;
    watcher.send("OPER root s3cret").await;
    watcher.expect_command("381").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert_path, key_path, colon_fingerprint) = pem_files(dir.path(), "jo");
    let certfp = colon_fingerprint.replace(':', "").to_ascii_lowercase();
    let known = dir.path().join("known_servers");
    let port = server.addr.port().to_string();
    let mut jo = Proc::spawn_tls(
        &[
            "127.0.0.1",
            &port,
            "--nick",
            "jo",
            "--known-servers",
            known.to_str().expect("utf-8 path"),
            "--accept-fingerprint",
            &fingerprint,
            "--tls-cert",
            cert_path.to_str().expect("utf-8 path"),
            "--tls-key",
            key_path.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    jo.write("with a certificate\n").await;
    expect_said(&mut watcher, "jo", "with a certificate").await;
    watcher.send("WHOIS jo").await;
    let line = watcher.expect_command("276").await;
    assert!(
        line.last().to_ascii_lowercase().contains(&certfp),
        "{} vs {certfp}",
        line.0
    );
    jo.close_stdin();
    let (code, stderr) = jo.finish().await;
    assert_eq!(code, Some(0), "{stderr}");
}

/// A certificate and key in PEM files under `dir`, named `name`; returns the
/// certificate's fingerprint.
fn pem_files(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("parameters")
        .self_signed(&key)
        .expect("certificate");
    let (cert_path, key_path) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert_path, cert.pem()).expect("write certificate");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (cert_path, key_path, trust::fingerprint(cert.der()))
}

/// The server's certificate changes between two connections: the reconnection
/// is refused for good (no retry loop, no question), naming both fingerprints.
#[tokio::test]
async fn tofu_a_certificate_changed_before_a_reconnect_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key, first) = pem_files(dir.path(), "first");
    let tls = Arc::new(ServerTls::from_files(&cert, &key).expect("server certificate"));
    let mut config = test_config();
    config.tls = Some(Arc::clone(&tls));
    let server = TestServer::with_config(config).await;
    let mut connect = ConnectConfig::new("127.0.0.1", server.addr.port());
    connect.security = Security::Tls(TlsPolicy {
        pin: Some(Pin {
            fingerprint: first.clone(),
            file: "known_servers".into(),
            line: 3,
        }),
        system: None,
        identity: None,
    });
    let (to_conn, mut events, _task) = connection::spawn(connect);
    let mut next = async || {
        tokio::time::timeout(TIMEOUT, events.recv())
            .await
            .expect("event in time")
            .expect("task alive")
    };
    loop {
        match next().await {
            ConnEvent::Connected { .. } => break,
            ConnEvent::Fatal(message) => panic!("{message}"),
            _ => {}
        }
    }
    let (new_cert, new_key, second) = pem_files(dir.path(), "second");
    std::fs::rename(&new_cert, &cert).expect("replace certificate");
    std::fs::rename(&new_key, &key).expect("replace key");
    assert!(tls.reload(true).expect("reload"), "certificate replaced");
    to_conn.send(ToConn::Reconnect).await.expect("task alive");
    let reason = loop {
        match next().await {
            ConnEvent::Refused { refusal, reason } => {
                assert_eq!(refusal, connection::Refusal::Certificate);
                break reason;
            }
            ConnEvent::Connected { .. } => panic!("reconnected despite the new certificate"),
            _ => {}
        }
    };
    assert!(
        reason.contains(&first) && reason.contains(&second) && reason.contains("line 3"),
        "{reason}"
    );
}

/// `--sasl-mechanism EXTERNAL` logs in with the client certificate the account
/// added (`NickServ CERT ADD`), with no password anywhere.
#[tokio::test]
async fn sasl_external_logs_in_with_the_client_certificate() {
    let (server, fingerprint) = tls_server().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert_path, key_path, colon_fingerprint) = pem_files(dir.path(), "jo");
    let certfp = colon_fingerprint.replace(':', "").to_ascii_lowercase();
    // The account, with the certificate added to it.
    let mut setup = server.client("jo").await;
    setup.send("REGISTER * * correct-horse").await;
    setup.expect(|l| l.command() == "REGISTER").await;
    setup
        .send(&format!("PRIVMSG NickServ :CERT ADD {certfp}"))
        .await;
    let added = setup.expect_command("NOTICE").await;
    assert!(added.last().contains("added"), "{}", added.0);
    setup.send("QUIT").await;
    setup.expect_closed().await;

    let mut watcher = watcher(&server).await;
    let known = dir.path().join("known_servers");
    let port = server.addr.port().to_string();
    let mut jo = Proc::spawn_tls(
        &[
            "127.0.0.1",
            &port,
            "--account",
            "jo",
            "--sasl-mechanism",
            "EXTERNAL",
            "--known-servers",
            known.to_str().expect("utf-8 path"),
            "--accept-fingerprint",
            &fingerprint,
            "--tls-cert",
            cert_path.to_str().expect("utf-8 path"),
            "--tls-key",
            key_path.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    jo.write("logged in by certificate\n").await;
    expect_said(&mut watcher, "jo", "logged in by certificate").await;
    watcher.send("WHOIS jo").await;
    let account = watcher.expect_command("330").await;
    assert_eq!(account.param(2), "jo", "{}", account.0);
    jo.close_stdin();
    let (code, stderr) = jo.finish().await;
    assert_eq!(code, Some(0), "{stderr}");
}
