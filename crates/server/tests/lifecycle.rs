//! Connection lifecycle: relaying between members, every way a client can leave (QUIT,
//! closing its socket, vanishing without a word), and graceful server shutdown.

use std::time::{Duration, Instant};

use palaver_test_support::{Line, TIMEOUT, TestClient, TestServer, test_config};

/// Whether `line` is `nick`'s QUIT.
fn is_quit_of(line: &Line, nick: &str) -> bool {
    line.command() == "QUIT" && line.source_nick() == nick
}

/// Waits for a line matching `pred`, answering the server's keepalive PINGs meanwhile
/// (needed when the test shrinks the ping interval for everyone).
async fn expect_answering_pings(client: &mut TestClient, pred: impl Fn(&Line) -> bool) -> Line {
    let nick = client.nick.clone();
    let mut seen = Vec::new();
    let found = tokio::time::timeout(TIMEOUT, async {
        loop {
            let line = client
                .next_line()
                .await
                .unwrap_or_else(|| panic!("{nick}: connection closed; lines seen: {seen:#?}"));
            if line.command() == "PING" {
                client.send(&format!("PONG :{}", line.last())).await;
            } else if pred(&line) {
                return line;
            }
            seen.push(line);
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("{nick}: expected line not seen within {TIMEOUT:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_messages_reach_every_other_member_exactly_once() {
    let server = TestServer::start().await;
    let mut clients = server
        .clients_in("#lobby", &["alice", "bob", "carol"])
        .await;

    for sender in 0..clients.len() {
        let nick = clients[sender].nick.clone();
        let text = format!("hello from {nick}");
        clients[sender]
            .send(&format!("PRIVMSG #lobby :{text}"))
            .await;
        for (index, client) in clients.iter_mut().enumerate() {
            let is_ours = |l: &Line| l.command() == "PRIVMSG" && l.last() == text;
            if index != sender {
                let line = client.expect(is_ours).await;
                assert_eq!(line.source_nick(), nick, "{line:?}");
                assert_eq!(line.param(0), "#lobby", "{line:?}");
                assert_eq!(
                    line.msg().source(),
                    Some(format!("{nick}!~{nick}@127.0.0.1").as_str())
                );
            }
            // Everything the server queued for this client because of the PRIVMSG was
            // queued before the PONG of a PING sent after it arrived (or, for the
            // sender, after it was sent): nothing more may show up.
            let rest = client.sync().await;
            assert!(
                !rest.iter().any(is_ours),
                "{} got {nick}'s message again (or its own echo): {rest:#?}",
                client.nick
            );
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quit_with_reason_is_announced_and_closes_with_error() {
    let server = TestServer::start().await;
    let mut clients = server
        .clients_in("#lobby", &["alice", "bob", "carol"])
        .await;
    let mut alice = clients.remove(0);

    alice.send("QUIT :gone fishing").await;
    let error = alice.expect_command("ERROR").await;
    assert!(error.last().contains("gone fishing"), "{error:?}");
    let after = alice.expect_closed().await;
    assert!(after.is_empty(), "lines after ERROR: {after:#?}");

    for peer in &mut clients {
        let quit = peer.expect(|l| is_quit_of(l, "alice")).await;
        assert_eq!(quit.msg().source(), Some("alice!~alice@127.0.0.1"));
        assert_eq!(quit.last(), "Quit: gone fishing");
        let rest = peer.sync().await;
        assert!(!rest.iter().any(|l| l.command() == "QUIT"), "{rest:#?}");
    }

    // The others carry on, and alice's nickname is free again.
    let [bob, carol] = &mut clients[..] else {
        unreachable!()
    };
    bob.send("PRIVMSG #lobby :still here").await;
    let line = carol.expect_command("PRIVMSG").await;
    assert_eq!(line.last(), "still here");
    let mut alice = server.client("alice").await;
    alice.sync().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_socket_is_announced_as_connection_closed() {
    let server = TestServer::start().await;
    let mut clients = server
        .clients_in("#lobby", &["alice", "bob", "carol"])
        .await;
    drop(clients.remove(0));

    for peer in &mut clients {
        let quit = peer.expect(|l| is_quit_of(l, "alice")).await;
        assert_eq!(quit.last(), "Connection closed");
        let rest = peer.sync().await;
        assert!(!rest.iter().any(|l| l.command() == "QUIT"), "{rest:#?}");
    }
    let [bob, carol] = &mut clients[..] else {
        unreachable!()
    };
    carol.send("PRIVMSG #lobby :anyone?").await;
    assert_eq!(bob.expect_command("PRIVMSG").await.last(), "anyone?");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_answering_is_dropped_with_ping_timeout() {
    let mut config = test_config();
    // Long enough that bob and carol, answering from a busy test machine, never
    // miss their own deadline.
    config.limits.ping_interval = Duration::from_millis(500);
    config.limits.ping_timeout = Duration::from_millis(500);
    let server = TestServer::with_config(config).await;
    let mut clients = server.clients_in("#lobby", &["bob", "carol"]).await;
    let vanished_at = Instant::now();
    let mut ghost = server.client("ghost").await;
    ghost.send("JOIN #lobby").await;
    ghost.expect_command("366").await;

    // bob and carol answer the keepalive (both at once, or the one not being read
    // would time out too); the ghost neither reads nor writes.
    let [bob, carol] = &mut clients[..] else {
        unreachable!()
    };
    let (bob_saw, carol_saw) = tokio::join!(
        expect_answering_pings(bob, |l| is_quit_of(l, "ghost")),
        expect_answering_pings(carol, |l| is_quit_of(l, "ghost")),
    );
    for quit in [bob_saw, carol_saw] {
        assert!(quit.last().starts_with("Ping timeout: "), "{quit:?}");
        assert!(quit.last().ends_with(" seconds"), "{quit:?}");
    }
    // Silence (500 ms) + unanswered PING (500 ms): never before 1 s (to within a
    // timer tick).
    assert!(
        vanished_at.elapsed() >= Duration::from_millis(900),
        "dropped after only {:?}",
        vanished_at.elapsed()
    );

    // What the ghost would have read: the server's PING, then ERROR, then the end.
    let lines = ghost.expect_closed().await;
    let commands: Vec<&str> = lines.iter().map(Line::command).collect();
    assert_eq!(commands, ["PING", "ERROR"], "{lines:#?}");
    assert_eq!(lines[0].last(), "test.server");
    assert!(lines[1].last().starts_with("Ping timeout: "), "{lines:#?}");

    // The survivors are still served.
    bob.send("PRIVMSG #lobby :ghost is gone").await;
    let line = expect_answering_pings(carol, |l| l.command() == "PRIVMSG").await;
    assert_eq!(line.last(), "ghost is gone");
    assert_eq!(line.source_nick(), "bob");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_says_goodbye_to_everyone_and_frees_the_port() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let mut clients = server
        .clients_in("#lobby", &["alice", "bob", "carol"])
        .await;
    // Also one connection in the middle of registering (its PONG proves the server
    // accepted it, rather than leaving it in the listen backlog).
    let mut pending = server.connect().await;
    pending.nick = "pending".to_owned();
    pending.send("NICK pending").await;
    pending.sync().await;
    clients.push(pending);

    let started = Instant::now();
    server.shutdown().await;
    let took = started.elapsed();
    // Connections close by themselves; the 5 s grace period is not needed.
    assert!(took < Duration::from_secs(3), "run returned after {took:?}");

    for client in &mut clients {
        let lines = client.expect_closed().await;
        let last = lines
            .last()
            .unwrap_or_else(|| panic!("{}: no ERROR", client.nick));
        assert_eq!(
            last.0, "ERROR :Server shutting down",
            "{}: {lines:#?}",
            client.nick
        );
        // Everyone leaves at once: no QUIT announcements about each other.
        assert!(
            !lines.iter().any(|l| l.command() == "QUIT"),
            "{}: {lines:#?}",
            client.nick
        );
    }

    // The listener is gone: the same address can be bound again at once.
    let rebound = tokio::net::TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("cannot bind {addr} again after shutdown: {e}"));
    drop(rebound);
}

#[tokio::test]
async fn dropping_the_server_future_still_closes_every_connection() {
    // `run` not shut down but dropped (aborted): the driver threads it started are
    // not its tasks, and must still say goodbye and stop.
    let listener = palaver_server::bind(([127, 0, 0, 1], 0).into()).expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let task = tokio::spawn(palaver_server::run(
        listener,
        test_config(),
        std::future::pending::<()>(),
    ));
    let mut client = TestClient::connect(addr).await;
    client.register("alice").await;
    task.abort();
    let lines = client.expect_closed().await;
    assert_eq!(
        lines.last().map(|l| l.0.as_str()),
        Some("ERROR :Server shutting down"),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_served_by_different_threads_see_each_other() {
    let mut config = test_config();
    config.connection_threads = std::num::NonZeroUsize::new(3);
    let server = TestServer::with_config(config).await;
    // Connections are handed to the threads in turn: these five sit on all three.
    let nicks = ["a1", "b2", "c3", "d4", "e5"];
    let mut clients = server.clients_in("#lobby", &nicks).await;
    for client in &mut clients {
        let text = format!("from {}", client.nick);
        client.send(&format!("PRIVMSG #lobby :{text}")).await;
    }
    for client in &mut clients {
        let mut expected: Vec<String> = nicks
            .iter()
            .filter(|nick| **nick != client.nick)
            .map(|nick| format!("from {nick}"))
            .collect();
        let mut got = Vec::new();
        while got.len() < expected.len() {
            got.push(client.expect(|l| l.command() == "PRIVMSG").await.last());
        }
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "{}", client.nick);
        let rest = client.sync().await;
        assert!(!rest.iter().any(|l| l.command() == "PRIVMSG"), "{rest:#?}");
    }

    clients[0].send("PRIVMSG e5 :psst").await;
    let private = clients[4].expect(|l| l.command() == "PRIVMSG").await;
    assert_eq!(
        (private.source_nick(), private.last()),
        ("a1".into(), "psst".into())
    );

    clients[1].send("QUIT :bye").await;
    for index in [0, 2, 3, 4] {
        let quit = clients[index].expect(|l| is_quit_of(l, "b2")).await;
        assert_eq!(quit.last(), "Quit: bye");
    }
    server.shutdown().await;
}
