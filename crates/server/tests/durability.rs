//! The durability promise, on the real binary: after `kill -9` in the middle of
//! traffic, every message any client received is returned by CHATHISTORY after a
//! restart on the same data directory, exactly once, with the same msgid, time and
//! text.

use std::collections::HashMap;
use std::net::SocketAddr;

use palaver_test_support::{Line, TestClient};

use crate::binary::{ServerProcess, assert_no_panic};

/// Messages the watcher receives before the server is killed.
const RECEIVED_BEFORE_KILL: usize = 300;

/// `chat-server` on `dir` with `--fsync fsync`, listening on a free port.
fn start(dir: &std::path::Path, fsync: &str) -> (ServerProcess, SocketAddr) {
    let mut command = ServerProcess::command_with_data();
    command
        .args([
            "127.0.0.1",
            "0",
            "--no-flood-limit",
            "--fsync",
            fsync,
            "--data-dir",
        ])
        .arg(dir);
    ServerProcess::listening(ServerProcess::spawn_command(command))
}

/// A client registered as `nick` with `caps`, in `#d`.
async fn client(addr: SocketAddr, nick: &str, caps: &str) -> TestClient {
    let mut client = TestClient::connect(addr).await;
    client.nick = nick.to_owned();
    client.send(&format!("CAP REQ :{caps}")).await;
    client.expect_command("CAP").await;
    client.send(&format!("NICK {nick}")).await;
    client.send(&format!("USER {nick} 0 * :{nick}")).await;
    client.send("CAP END").await;
    client.expect_command("001").await;
    client.send("JOIN #d").await;
    client.expect_command("366").await;
    client
}

/// `(time, text)` of a PRIVMSG by msgid.
fn entry(line: &Line) -> (String, (String, String)) {
    let msg = line.msg();
    let tag = |key: &str| msg.tag(key).map(|v| v.into_owned()).unwrap_or_default();
    (tag("msgid"), (tag("time"), line.last()))
}

#[tokio::test]
async fn every_message_received_before_kill_9_is_in_history_after_restart() {
    survives_kill_9("normal").await;
}

#[tokio::test]
async fn with_fsync_always_too() {
    survives_kill_9("always").await;
}

async fn survives_kill_9(fsync: &str) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (server, addr) = start(dir.path(), fsync);
    let caps = "batch message-tags server-time draft/chathistory";
    let mut watcher = client(addr, "watcher", caps).await;
    let talker = client(addr, "talker", caps).await;
    // The talker sends as fast as the socket takes it, until the server dies.
    let (_, mut writer) = talker.into_split();
    let talking = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt as _;
        for i in 0.. {
            let line = format!("PRIVMSG #d :message {i}\r\n");
            if writer.write_all(line.as_bytes()).await.is_err() {
                return i;
            }
        }
        unreachable!()
    });

    let mut received = HashMap::new();
    let mut killed = false;
    while let Some(line) = watcher.next_line().await {
        if line.command() != "PRIVMSG" {
            continue;
        }
        let (msgid, seen) = entry(&line);
        assert!(received.insert(msgid, seen).is_none(), "a msgid twice");
        if !killed && received.len() >= RECEIVED_BEFORE_KILL {
            server.signal("KILL");
            killed = true;
        }
    }
    assert!(killed, "the connection ended before the kill");
    let sent = talking.await.expect("talker");
    assert!(
        sent > received.len(),
        "traffic was still flowing: {sent} sent"
    );
    drop(server);

    let (mut server, addr) = start(dir.path(), fsync);
    let mut reader = client(addr, "reader", caps).await;
    // Page backwards through the whole history of #d.
    let mut stored: HashMap<String, (String, String)> = HashMap::new();
    let mut request = "CHATHISTORY LATEST #d * 1000".to_owned();
    loop {
        reader.send(&request).await;
        reader.expect_command("BATCH").await;
        let mut page = Vec::new();
        loop {
            let line = reader.next_line().await.expect("the batch goes on");
            match line.command() {
                "BATCH" => break,
                "PRIVMSG" => page.push(entry(&line)),
                _ => {}
            }
        }
        let Some((oldest, _)) = page.first().cloned() else {
            break;
        };
        for (msgid, seen) in page {
            assert!(
                stored.insert(msgid, seen).is_none(),
                "history returned a msgid twice"
            );
        }
        request = format!("CHATHISTORY BEFORE #d msgid={oldest} 1000");
    }
    for (msgid, seen) in &received {
        assert_eq!(
            stored.get(msgid),
            Some(seen),
            "{msgid} was received but is not in history as it was"
        );
    }
    server.signal("TERM");
    let (status, stderr) = server.wait_exit();
    assert!(status.success(), "{stderr}");
    assert_no_panic(&stderr);
}

#[tokio::test]
async fn a_data_directory_in_use_or_a_damaged_database_is_one_clear_sentence() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (mut first, _) = start(dir.path(), "normal");
    // A second server on the same directory.
    let mut command = ServerProcess::command_with_data();
    command
        .args(["127.0.0.1", "0", "--data-dir"])
        .arg(dir.path());
    let mut second = ServerProcess::spawn_command(command);
    let (status, stderr) = second.wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is locked by another process"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one sentence: {stderr}");
    assert_no_panic(&stderr);
    first.signal("TERM");
    let (status, stderr) = first.wait_exit();
    assert!(status.success(), "{stderr}");

    // A file that is not a database.
    let other = tempfile::tempdir().expect("temporary directory");
    std::fs::write(
        other.path().join("palaver.db"),
        "these are not the bytes of a database, whatever the name says".repeat(100),
    )
    .expect("write the file");
    let mut command = ServerProcess::command_with_data();
    command
        .args(["127.0.0.1", "0", "--data-dir"])
        .arg(other.path());
    let mut damaged = ServerProcess::spawn_command(command);
    let (status, stderr) = damaged.wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is corrupt or not a palaver database"),
        "{stderr}"
    );
    assert_no_panic(&stderr);
}
