//! The real `chat-server` on a PostgreSQL store (`--store postgres://…`): an
//! account registered and channel messages sent before a restart are there after
//! it, on the same database (the account logs in, CHATHISTORY returns the
//! messages), and the database's password is never printed.
//!
//! The restart test is `#[ignore]`d: it needs a PostgreSQL server, which `scripts/test-cluster.sh`
//! starts (its URL in `PALAVER_TEST_POSTGRES`).

use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use palaver_test_support::TestClient;

use crate::binary::{ServerProcess, assert_no_panic};

/// A password in the store URL: the test server trusts local connections, so it
/// is accepted and ignored, and it must appear in no output.
const URL_PASSWORD: &str = "N0t-Sh0wn-Anywhere";

/// A fresh database on the test server; returns its URL with [`URL_PASSWORD`].
pub(crate) async fn fresh_database() -> String {
    let admin = std::env::var("PALAVER_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "PALAVER_TEST_POSTGRES is not set: run scripts/test-cluster.sh, which starts \
             PostgreSQL and runs this test against it"
        )
    });
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL");
    let driver = tokio::spawn(connection);
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let db = format!("palaver_server_test_{}_{n}", std::process::id());
    for sql in [
        format!("DROP DATABASE IF EXISTS {db}"),
        format!("CREATE DATABASE {db}"),
    ] {
        client.batch_execute(&sql).await.expect(&sql);
    }
    drop(client);
    let _ = driver.await;
    // postgres://user@host:port/postgres → postgres://user:PASSWORD@host:port/db
    let (scheme, rest) = admin.split_once("://").expect("a URL");
    let (user, rest) = rest.split_once('@').expect("user@host in the URL");
    let user = user.split(':').next().unwrap_or(user);
    let host = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("{scheme}://{user}:{URL_PASSWORD}@{host}/{db}")
}

/// `chat-server` on the PostgreSQL store at `url`, listening on a free port.
fn start(url: &str, dir: &std::path::Path) -> (ServerProcess, SocketAddr) {
    let mut command = ServerProcess::command_with_data();
    command
        .args([
            "127.0.0.1",
            "0",
            "--no-flood-limit",
            "--store",
            url,
            "--data-dir",
        ])
        .arg(dir);
    let server = ServerProcess::spawn_command(command);
    let said = server.expect_stdout("data kept in PostgreSQL: ");
    assert!(!said.contains(URL_PASSWORD), "{said}");
    assert!(said.contains("postgres://"), "{said}");
    ServerProcess::listening(server)
}

/// A client with `caps`, registered as `nick`, in `#pg`.
async fn client(addr: SocketAddr, nick: &str, caps: &str) -> TestClient {
    let mut client = TestClient::connect(addr).await;
    client.nick = nick.to_owned();
    client.send(&format!("CAP REQ :{caps}")).await;
    client.expect_command("CAP").await;
    client.send(&format!("NICK {nick}")).await;
    client.send(&format!("USER {nick} 0 * :{nick}")).await;
    client.send("CAP END").await;
    client.expect_command("001").await;
    client.send("JOIN #pg").await;
    client.expect_command("366").await;
    client
}

const CAPS: &str = "batch message-tags server-time draft/chathistory";

#[tokio::test]
#[ignore = "needs PostgreSQL: scripts/test-cluster.sh"]
async fn postgres_store_keeps_accounts_and_history_across_a_restart() {
    let url = fresh_database().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let (mut server, addr) = start(&url, dir.path());

    // An account, registered the usual way.
    let mut alice = client(addr, "pgalice", CAPS).await;
    alice.send("REGISTER * * correct-horse-battery").await;
    alice
        .expect(|line| line.0.contains("REGISTER SUCCESS pgalice "))
        .await;
    // Channel messages; the watcher receiving them means they are committed.
    let mut watcher = client(addr, "watcher", CAPS).await;
    let sent: Vec<String> = (0..5).map(|i| format!("stored message {i}")).collect();
    for text in &sent {
        alice.send(&format!("PRIVMSG #pg :{text}")).await;
    }
    for text in &sent {
        watcher
            .expect(|line| line.command() == "PRIVMSG" && line.last() == *text)
            .await;
    }
    server.signal("TERM");
    let (status, stderr) = server.wait_exit();
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains(URL_PASSWORD), "{stderr}");
    assert_no_panic(&stderr);

    // A new process on the same database.
    let (mut server, addr) = start(&url, dir.path());
    let mut again = TestClient::connect(addr).await;
    again.nick = "pgalice".to_owned();
    again.send(&format!("CAP REQ :sasl {CAPS}")).await;
    again.expect_command("CAP").await;
    again.send("NICK pgalice").await;
    again.send("USER pgalice 0 * :pgalice").await;
    again.send("AUTHENTICATE PLAIN").await;
    again
        .expect(|line| line.command() == "AUTHENTICATE" && line.last() == "+")
        .await;
    let plain = BASE64.encode("\0pgalice\0correct-horse-battery");
    again.send(&format!("AUTHENTICATE {plain}")).await;
    again.expect_command("903").await;
    again.send("CAP END").await;
    again.expect_command("001").await;
    again.send("JOIN #pg").await;
    again.expect_command("366").await;
    again.send("CHATHISTORY LATEST #pg * 100").await;
    again.expect_command("BATCH").await;
    let mut replayed = Vec::new();
    loop {
        let line = again.next_line().await.expect("the batch goes on");
        match line.command() {
            "BATCH" => break,
            "PRIVMSG" => {
                assert_eq!(line.source_nick(), "pgalice", "{}", line.0);
                replayed.push(line.last());
            }
            _ => {}
        }
    }
    assert_eq!(replayed, sent, "CHATHISTORY after the restart");
    server.signal("TERM");
    let (status, stderr) = server.wait_exit();
    assert!(status.success(), "{stderr}");
    assert_no_panic(&stderr);
}

/// Needs no database: the options are refused before any connection.
#[test]
fn postgres_store_and_ephemeral_together_are_refused() {
    let mut command = ServerProcess::command_with_data();
    command.args([
        "127.0.0.1",
        "0",
        "--ephemeral",
        "--store",
        "postgres://palaver:secret-in-url@127.0.0.1:1/palaver",
    ]);
    let mut server = ServerProcess::spawn_command(command);
    let (status, stderr) = server.wait_exit();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("leave out --store"), "{stderr}");
    assert!(!stderr.contains("secret-in-url"), "{stderr}");
}
