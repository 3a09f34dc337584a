//! Limits and robustness: line lengths, odd bytes and line endings, flood pacing and
//! "Excess Flood", slow readers ("SendQ exceeded"), registration timeout, admission
//! limits, name lengths.

use std::time::{Duration, Instant};

use palaver_server::FloodLimit;
use palaver_test_support::{Line, TIMEOUT, TestClient, TestServer, test_config};

fn two(clients: &mut [TestClient]) -> (&mut TestClient, &mut TestClient) {
    match clients {
        [a, b, ..] => (a, b),
        _ => panic!("need two clients"),
    }
}

/// Asserts that `client` receives `ERROR :<reason>` as its last line, then EOF.
async fn expect_error_and_close(client: &mut TestClient, reason: &str) {
    let lines = client.expect_closed().await;
    let last = lines
        .last()
        .unwrap_or_else(|| panic!("{}: closed without ERROR", client.nick));
    assert_eq!(
        last.0,
        format!("ERROR :{reason}"),
        "{}: {lines:#?}",
        client.nick
    );
}

#[tokio::test]
async fn overlong_line_gets_417_and_the_connection_stays_usable() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;

    // 510 bytes + CRLF is the most a body may take: accepted (NOTICE to nobody never
    // answers, so any reply would be an error).
    let prefix = "NOTICE nobody :";
    let fits = format!("{prefix}{}", "a".repeat(510 - prefix.len()));
    assert_eq!(fits.len(), 510);
    alice.send(&fits).await;
    let replies = alice.sync().await;
    assert!(replies.is_empty(), "{replies:#?}");

    // One byte more is too long: 417, nothing else, and the next command works.
    alice.send(&format!("{fits}a")).await;
    alice
        .send(&format!("PRIVMSG #nowhere :{}", "x".repeat(600)))
        .await;
    let replies = alice.sync().await;
    let codes: Vec<&str> = replies.iter().map(Line::command).collect();
    assert_eq!(codes, ["417", "417"], "{replies:#?}");
    assert_eq!(replies[0].param(0), "alice");
    assert_eq!(replies[0].last(), "Input line was too long");

    // A line far longer than the read buffer is discarded as it arrives.
    alice.send(&"B".repeat(100_000)).await;
    let replies = alice.sync().await;
    let codes: Vec<&str> = replies.iter().map(Line::command).collect();
    assert_eq!(codes, ["417"], "{replies:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_large_tag_section_has_its_own_allowance() {
    let server = TestServer::start().await;
    let mut clients = server.clients_in("#lobby", &["alice", "bob"]).await;
    let (alice, bob) = two(&mut clients);

    // A client may send 4096 bytes of tags (with '@' and the space): accepted.
    let tags = format!("@a={}", "t".repeat(4092));
    assert_eq!(tags.len() + 1, 4096);
    alice.send(&format!("{tags} PRIVMSG #lobby :tagged")).await;
    let line = bob.expect_command("PRIVMSG").await;
    assert_eq!(line.last(), "tagged");
    let replies = alice.sync().await;
    assert!(replies.is_empty(), "{replies:#?}");

    // One byte more is refused with 417 (IRCv3 message-tags); so is a tag section
    // over the 8191-byte line allowance, which the framer discards as it arrives.
    for size in [4093, 9000] {
        let tags = format!("@a={}", "t".repeat(size));
        alice
            .send(&format!("{tags} PRIVMSG #lobby :too many tags"))
            .await;
        let replies = alice.sync().await;
        let codes: Vec<&str> = replies.iter().map(Line::command).collect();
        assert_eq!(codes, ["417"], "{size}: {replies:#?}");
    }
    let seen = bob.sync().await;
    assert!(seen.is_empty(), "{seen:#?}");
    server.shutdown().await;
}

/// Lines that are not UTF-8 are refused with `FAIL <command> INVALID_UTF8` (we
/// announce UTF8ONLY) and reach nobody; the connection stays usable. NUL bytes are
/// valid UTF-8 but not IRC text: they become U+FFFD and the message is delivered.
#[tokio::test]
async fn invalid_utf8_is_refused_and_nul_is_replaced() {
    let server = TestServer::start().await;
    let mut clients = server.clients_in("#lobby", &["alice", "bob"]).await;
    let (alice, bob) = two(&mut clients);

    for sent in [&b"caf\xe9 au lait"[..], b"\xff\xfe ok \xc3"] {
        let mut line = b"PRIVMSG #lobby :".to_vec();
        line.extend_from_slice(sent);
        line.extend_from_slice(b"\r\n");
        alice.send_raw(&line).await;
        let replies = alice.sync().await;
        assert_eq!(replies.len(), 1, "{replies:#?}");
        assert_eq!(
            replies[0].0,
            ":test.server FAIL PRIVMSG INVALID_UTF8 :Message refused: your client must send UTF-8"
        );
        let seen = bob.sync().await;
        assert!(seen.is_empty(), "{seen:#?}");
    }

    alice.send_raw(b"PRIVMSG #lobby :a\0b\r\n").await;
    // Read bob's bytes as sent, without the test client's own lossy decoding.
    let raw = loop {
        let raw = bob.next_raw_line().await.expect("bob still connected");
        if raw.windows(7).any(|w| w == b"PRIVMSG") {
            break raw;
        }
    };
    let text = String::from_utf8(raw).expect("relayed line is valid UTF-8");
    assert_eq!(text, ":alice!~alice@127.0.0.1 PRIVMSG #lobby :a\u{FFFD}b");
    let replies = alice.sync().await;
    assert!(replies.is_empty(), "{replies:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn empty_lines_and_bare_line_feeds_are_fine() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.nick = "lf".to_owned();
    // Registration with bare LF endings, surrounded by empty lines of every kind.
    client
        .send_raw(b"\r\n\n\r\nNICK lf\n\n\nUSER lf 0 * :Bare LF\n\r\n")
        .await;
    client.expect_command("001").await;
    client.expect_command("376").await;
    client
        .send_raw(b"\n\r\n\r\rPING one\nPING two\r\r\n\n")
        .await;
    let replies = client.sync().await;
    let replies: Vec<&str> = replies.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(
        replies,
        [
            ":test.server PONG test.server :one",
            ":test.server PONG test.server :two"
        ]
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_pacing_delays_commands_without_dropping_them() {
    let mut config = test_config();
    config.limits.flood = Some(FloodLimit {
        burst: 5,
        per_second: 10.0,
    });
    let server = TestServer::with_config(config).await;
    // Unregistered on purpose: PING is allowed, and the bucket is still full.
    let mut client = server.connect().await;
    client.nick = "flooder".to_owned();

    let burst: String = (1..=25).map(|n| format!("PING :t{n}\r\n")).collect();
    let started = Instant::now();
    client.send_raw(burst.as_bytes()).await;
    let mut arrivals = Vec::new();
    for n in 1..=25 {
        let line = client.next_line().await.expect("still connected");
        assert_eq!(line.command(), "PONG", "{line:?}");
        assert_eq!(line.last(), format!("t{n}"), "PONGs out of order");
        arrivals.push(started.elapsed());
    }
    // The burst is answered at once; the other 20 need 20 tokens at 10/s (2 s).
    assert!(arrivals[4] < Duration::from_millis(1000), "{arrivals:?}");
    assert!(arrivals[24] >= Duration::from_millis(1500), "{arrivals:?}");
    assert!(arrivals[24] < Duration::from_secs(8), "{arrivals:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_much_paced_input_is_an_excess_flood() {
    let mut config = test_config();
    config.limits.recvq_bytes = 1024;
    config.limits.flood = Some(FloodLimit {
        burst: 10,
        per_second: 1.0,
    });
    let server = TestServer::with_config(config).await;
    let mut clients = server.clients_in("#lobby", &["flooder", "bob"]).await;
    let (flooder, bob) = two(&mut clients);

    // 100 lines of 50 bytes at once, with at most a few tokens left to process them.
    let line = format!("PRIVMSG #lobby :{}\r\n", "f".repeat(32));
    flooder.send_raw(line.repeat(100).as_bytes()).await;
    expect_error_and_close(flooder, "Excess Flood").await;

    let quit = bob
        .expect(|l| l.command() == "QUIT" && l.source_nick() == "flooder")
        .await;
    assert_eq!(quit.last(), "Excess Flood");
    let rest = bob.sync().await;
    assert!(!rest.iter().any(|l| l.command() == "QUIT"), "{rest:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_line_split_across_writes_arrives_whole() {
    let server = TestServer::start().await;
    let mut clients = server.clients_in("#lobby", &["alice", "bob"]).await;
    let (alice, bob) = two(&mut clients);
    // Split inside the command, inside a two-byte UTF-8 character and between CR and
    // LF. bob's round trip after each piece gives the server a pass in which it reads
    // that piece alone and must keep the partial line until the rest arrives.
    let pieces: [&[u8]; 4] = [
        b"PRIVMSG #lo",
        b"bby :caf\xc3",
        b"\xa9 split\r",
        b"\nPRIVMSG #lobby :next\r\n",
    ];
    let mut seen = Vec::new();
    for piece in pieces {
        alice.send_raw(piece).await;
        seen.extend(bob.sync().await);
    }
    // alice's round trip proves the server handled all she sent (bob's alone does
    // not: the two connections are read independently); then bob has it all.
    let replies = alice.sync().await;
    assert!(replies.is_empty(), "{replies:#?}");
    seen.extend(bob.sync().await);
    let texts: Vec<String> = seen
        .iter()
        .filter(|l| l.command() == "PRIVMSG")
        .map(|l| l.last())
        .collect();
    assert_eq!(texts, ["café split", "next"]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_dropped_without_slowing_anyone_down() {
    let mut config = test_config();
    config.limits.sendq_bytes = 64 * 1024;
    let server = TestServer::with_config(config).await;

    // The slow reader's socket buffers as little as the kernel allows. The server's
    // kernel send buffer toward it still autotunes (up to net.ipv4.tcp_wmem's maximum,
    // 4 MiB by default), so a few MiB go by before the 64 KiB sendq itself fills.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = tokio::time::timeout(TIMEOUT, socket.connect(server.addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let mut slow = TestClient::from_stream(stream);
    slow.register("slow").await;
    slow.send("JOIN #lobby").await;
    slow.expect_command("366").await;
    slow.sync().await;
    let mut clients = server.clients_in("#lobby", &["flooder", "bob"]).await;
    let (flooder, bob) = two(&mut clients);
    // From here on `slow` reads nothing.

    // Numbered messages of ~420 bytes, 50 per write.
    let padding = "z".repeat(400);
    let message = |seq: usize| format!("{seq:08} {padding}");
    let mut sent = 0usize;
    let mut bytes = 0usize;
    let mut bob_next = 0usize;
    let mut quit = None;
    while quit.is_none() {
        assert!(
            bytes < 64 << 20,
            "slow reader still connected after {bytes} bytes"
        );
        let batch: String = (sent..sent + 50)
            .map(|seq| format!("PRIVMSG #lobby :{}\r\n", message(seq)))
            .collect();
        flooder.send_raw(batch.as_bytes()).await;
        sent += 50;
        bytes += batch.len();
        // The flooder is served at full speed: its barrier completes every time.
        let seen = flooder.sync().await;
        quit = seen
            .into_iter()
            .find(|l| l.command() == "QUIT" && l.source_nick() == "slow");
        // bob keeps up, and sees every message once, in order.
        while bob_next < sent {
            let line = bob.next_line().await.expect("bob still connected");
            match line.command() {
                "PRIVMSG" => {
                    assert_eq!(line.last(), message(bob_next));
                    bob_next += 1;
                }
                "QUIT" => assert_eq!(line.source_nick(), "slow", "{line:?}"),
                _ => panic!("bob: unexpected {line:?}"),
            }
        }
    }
    let quit = quit.unwrap_or_else(|| unreachable!());
    assert_eq!(quit.last(), "SendQ exceeded");

    // The flooder was never paced or dropped, and bob is fine.
    flooder.send("PRIVMSG #lobby :done").await;
    let done = bob
        .expect(|l| l.command() == "PRIVMSG" && l.last() == "done")
        .await;
    assert_eq!(done.source_nick(), "flooder");
    let seen = flooder.sync().await;
    assert!(seen.is_empty(), "{seen:#?}");

    // The slow reader finds the connection closed after what was already in flight.
    let lines = slow.expect_closed().await;
    assert!(
        lines
            .iter()
            .all(|l| l.command() == "PRIVMSG" || l.command() == "JOIN"),
        "{:#?}",
        &lines[lines.len().saturating_sub(3)..]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn registration_must_complete_in_time() {
    let mut config = test_config();
    config.limits.registration_timeout = Duration::from_millis(300);
    let server = TestServer::with_config(config).await;
    let mut registered = server.client("quick").await;

    let started = Instant::now();
    let mut idle = server.connect().await;
    idle.nick = "idle".to_owned();
    let mut half = server.connect().await;
    half.nick = "half".to_owned();
    half.send("NICK half").await;
    expect_error_and_close(&mut idle, "Registration timed out").await;
    expect_error_and_close(&mut half, "Registration timed out").await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(290),
        "timed out after only {took:?}"
    );

    // The registered client is past its deadline too, and unaffected; the nickname the
    // half-registered connection held is free again.
    let seen = registered.sync().await;
    assert!(seen.is_empty(), "{seen:#?}");
    let mut again = server.client("half").await;
    again.sync().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_clients_refuses_with_server_full() {
    let mut config = test_config();
    config.limits.max_clients = 2;
    let server = TestServer::with_config(config).await;
    let mut first = server.client("first").await;
    // Unregistered connections count too.
    let mut second = server.connect().await;
    second.nick = "second".to_owned();
    second.sync().await;

    let mut third = server.connect().await;
    third.nick = "third".to_owned();
    expect_error_and_close(&mut third, "Server full").await;
    // The admitted ones are unaffected.
    first.sync().await;
    second.sync().await;

    // A place frees up when a connection ends. The server releases it just after
    // closing the socket, so a new connection may still be refused for a moment.
    second.send("QUIT").await;
    second.expect_closed().await;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut next = server.connect().await;
        next.nick = "next".to_owned();
        next.send("PING :admitted").await;
        let line = next.next_line().await;
        match line {
            Some(line) if line.command() == "PONG" => break,
            Some(line) => assert_eq!(line.0, "ERROR :Server full"),
            None => panic!("closed without a word"),
        }
        assert!(Instant::now() < deadline, "no place freed after QUIT");
        tokio::task::yield_now().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn max_clients_per_ip_refuses_the_next_connection_from_that_address() {
    let mut config = test_config();
    config.limits.max_clients_per_ip = 1;
    let server = TestServer::with_config(config).await;
    let mut first = server.client("first").await;

    let mut second = server.connect().await;
    second.nick = "second".to_owned();
    expect_error_and_close(&mut second, "Too many connections from your IP address").await;
    let seen = first.sync().await;
    assert!(seen.is_empty(), "{seen:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn nicknames_longer_than_nicklen_are_refused() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let long = format!("n{}", "x".repeat(30));
    let fits = &long[..30];
    client.send(&format!("NICK {long}")).await;
    let refused = client.expect_command("432").await;
    assert_eq!(refused.param(0), "*");
    assert_eq!(refused.param(1), long);

    client.send(&format!("NICK {fits}")).await;
    client.send("USER u 0 * :Long Nick").await;
    let welcome = client.expect_command("001").await;
    assert_eq!(welcome.param(0), fits);
    let isupport = client
        .expect(|l| l.command() == "005" && l.0.contains("NICKLEN="))
        .await;
    assert!(isupport.0.contains(" NICKLEN=30 "), "{isupport:?}");
    client.expect_command("376").await;

    // Changing to an overlong nickname after registration is refused the same way.
    client.send(&format!("NICK {long}")).await;
    let replies = client.sync().await;
    let codes: Vec<&str> = replies.iter().map(Line::command).collect();
    assert_eq!(codes, ["432"], "{replies:#?}");
    assert_eq!(replies[0].param(0), fits);
    server.shutdown().await;
}
