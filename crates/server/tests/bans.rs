//! Keeping abusers out, and operator commands (issue 14): K-lines and D-lines
//! (applied at once, at connect and at registration, expiring, surviving a
//! restart), connection throttling, STATS, SAJOIN/SAPART/SANICK, DIE and RESTART.

use std::sync::Arc;
use std::time::{Duration, Instant};

use palaver_server::opers::OperCredential;
use palaver_server::{Config, ConnectLimit};
use palaver_test_support::{TestClient, TestServer, test_config};

use crate::binary::ServerProcess;
use crate::channels::{ask, in_channel, pending, src};
use crate::oper::server_with_oper;

/// [`test_config`] with the operator `root` (password `s3cret`).
fn oper_config() -> Config {
    let mut config = test_config();
    config.opers = vec![OperCredential::from_password("root", "s3cret").expect("hash")];
    config
}

/// Makes `client` an IRC operator.
async fn oper_up(client: &mut TestClient) {
    let lines = ask(client, "OPER root s3cret").await;
    assert!(
        lines.iter().any(|l| l.contains(" 381 ")),
        "not opered: {lines:#?}"
    );
}

/// Whether one of `lines` contains `needle`.
fn has(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|line| line.contains(needle))
}

/// Connects and tries to register as `nick`: `Ok` once welcomed (the client), or
/// `Err` with every line received until the server closed the connection.
async fn try_register(server: &TestServer, nick: &str) -> Result<TestClient, Vec<String>> {
    let mut client = server.connect().await;
    client.nick = nick.to_owned();
    client.send(&format!("NICK {nick}")).await;
    client.send(&format!("USER {nick} 0 * :Test user")).await;
    let first = client
        .expect(|l| l.command() == "001" || l.command() == "465" || l.command() == "ERROR")
        .await;
    if first.command() == "001" {
        client
            .expect(|l| l.command() == "376" || l.command() == "422")
            .await;
        return Ok(client);
    }
    let mut lines = vec![first.0];
    lines.extend(client.expect_closed().await.into_iter().map(|l| l.0));
    Err(lines)
}

#[tokio::test]
async fn a_kline_disconnects_matching_users_at_once_and_refuses_them_after() {
    let server = server_with_oper().await;
    let mut alice = server.client("alice").await;
    let [mut bob, mut carol] = in_channel(&server, "#c", ["bob", "carol"]).await;
    oper_up(&mut alice).await;

    let lines = ask(&mut alice, "KLINE 1h ~Bob@* :spamming").await;
    assert!(
        has(
            &lines,
            ":test.server NOTICE alice :*** Notice -- alice added a temporary K-line (1h) for [~bob@*]: spamming (1 disconnected)"
        ),
        "{lines:#?}"
    );
    let closed: Vec<String> = bob.expect_closed().await.into_iter().map(|l| l.0).collect();
    assert!(has(&closed, "ERROR :K-lined: spamming"), "{closed:#?}");
    let quit = carol.expect_command("QUIT").await;
    assert_eq!(quit.0, format!("{} QUIT :K-lined: spamming", src("bob")));

    // Back again: refused at registration with 465, then ERROR.
    let refused = try_register(&server, "bob").await.err().expect("refused");
    assert!(
        refused[0].starts_with(":test.server 465 bob :You are banned from this server: spamming"),
        "{refused:#?}"
    );
    assert!(
        has(
            &refused,
            "ERROR :Closing Link: 127.0.0.1 (K-lined: spamming)"
        ),
        "{refused:#?}"
    );

    // STATS k lists it, for operators only.
    let stats = ask(&mut alice, "STATS k").await;
    assert!(
        stats[0].starts_with(":test.server 216 alice K * * ~bob :spamming (set by alice, "),
        "{stats:#?}"
    );
    assert_eq!(stats[1], ":test.server 219 alice k :End of /STATS report");
    assert_eq!(
        ask(&mut carol, "STATS k").await,
        [
            ":test.server 481 carol :Permission Denied- You're not an IRC operator",
            ":test.server 219 carol k :End of /STATS report",
        ]
    );

    // UNKLINE lets them back.
    let lines = ask(&mut alice, "UNKLINE ~bob@*").await;
    assert!(
        has(
            &lines,
            "*** Notice -- alice removed the K-line for [~bob@*]"
        ),
        "{lines:#?}"
    );
    try_register(&server, "bob").await.expect("welcome back");
    assert_eq!(
        ask(&mut alice, "UNKLINE ~bob@*").await,
        [":test.server NOTICE alice :*** UNKLINE: No K-line for ~bob@*"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn ban_commands_are_for_operators_and_check_their_input() {
    let server = server_with_oper().await;
    let [mut alice, mut bob] = in_channel(&server, "#c", ["alice", "bob"]).await;
    for command in [
        "KLINE ~x@* :r",
        "UNKLINE ~x@*",
        "DLINE 192.0.2.1 :r",
        "UNDLINE 192.0.2.1",
        "SAJOIN alice #d",
        "SAPART alice #c",
        "SANICK alice al",
        "DIE test.server",
        "RESTART test.server",
        "STATS l",
    ] {
        let lines = ask(&mut bob, command).await;
        assert_eq!(
            lines[0], ":test.server 481 bob :Permission Denied- You're not an IRC operator",
            "{command}"
        );
    }
    oper_up(&mut alice).await;
    for (command, reply) in [
        (
            "KLINE",
            ":test.server 461 alice KLINE :Not enough parameters",
        ),
        (
            "KLINE 30m",
            ":test.server 461 alice KLINE :Not enough parameters",
        ),
        (
            "KLINE 0 ~x@* :r",
            ":test.server NOTICE alice :*** KLINE: A duration must be more than 0",
        ),
        (
            "KLINE *@* :everyone",
            ":test.server NOTICE alice :*** KLINE: That mask would match everyone",
        ),
        (
            "DLINE 10.0.0.0/4 :too wide",
            ":test.server NOTICE alice :*** DLINE: That block is too wide (at most /8 for IPv4, /16 for IPv6)",
        ),
        (
            "DLINE example.org :name",
            ":test.server NOTICE alice :*** DLINE: A D-line is an IP address or a CIDR block (e.g. 192.0.2.0/24)",
        ),
    ] {
        assert_eq!(ask(&mut alice, command).await, [reply], "{command}");
    }
    assert_eq!(
        ask(&mut alice, "STATS d").await,
        [":test.server 219 alice d :End of /STATS report"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn server_bans_are_bounded() {
    let mut config = oper_config();
    config.limits.max_server_bans = 1;
    let server = TestServer::with_config(config).await;
    let mut alice = server.client("alice").await;
    oper_up(&mut alice).await;
    let lines = ask(&mut alice, "DLINE 192.0.2.0/24 :one").await;
    assert!(
        has(&lines, "added a D-line for [192.0.2.0/24]"),
        "{lines:#?}"
    );
    assert_eq!(
        ask(&mut alice, "KLINE ~two@* :two").await,
        [
            ":test.server NOTICE alice :*** KLINE: The server already holds 1 bans; remove some first"
        ]
    );
    // Setting the same one again replaces it, at the limit too.
    let lines = ask(&mut alice, "DLINE 10m 192.0.2.1/24 :again").await;
    assert!(
        has(
            &lines,
            "added a temporary D-line (10m) for [192.0.2.0/24]: again"
        ),
        "{lines:#?}"
    );
    let long = format!("KLINE ~{}@* :long", "a".repeat(200));
    assert_eq!(
        ask(&mut alice, &long).await,
        [":test.server NOTICE alice :*** KLINE: The mask is too long"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_dline_by_cidr_refuses_at_connect_and_spares_operators() {
    let server = server_with_oper().await;
    let [mut alice, mut bob] = in_channel(&server, "#c", ["alice", "bob"]).await;
    oper_up(&mut alice).await;

    let lines = ask(&mut alice, "DLINE 127.0.0.1/8 :go away").await;
    assert!(
        has(
            &lines,
            "*** Notice -- alice added a D-line for [127.0.0.0/8]: go away (1 disconnected)"
        ),
        "{lines:#?}"
    );
    let closed: Vec<String> = bob.expect_closed().await.into_iter().map(|l| l.0).collect();
    assert!(has(&closed, "ERROR :D-lined: go away"), "{closed:#?}");
    // Bob's QUIT reaches alice before or after her answer.
    let quit = format!("{} QUIT :D-lined: go away", src("bob"));
    if !lines.contains(&quit) {
        assert_eq!(alice.expect_command("QUIT").await.0, quit);
    }

    // A new connection is refused before it can say anything.
    let mut refused = server.connect().await;
    let lines: Vec<String> = refused
        .expect_closed()
        .await
        .into_iter()
        .map(|l| l.0)
        .collect();
    assert_eq!(lines, ["ERROR :Closing Link: 127.0.0.1 (D-lined: go away)"]);

    assert_eq!(
        ask(&mut alice, "STATS d").await,
        [
            ":test.server 225 alice D 127.0.0.0/8 :go away (set by alice)",
            ":test.server 219 alice d :End of /STATS report",
        ]
    );
    let lines = ask(&mut alice, "UNDLINE 127.0.0.0/8").await;
    assert!(
        has(&lines, "alice removed the D-line for [127.0.0.0/8]"),
        "{lines:#?}"
    );
    try_register(&server, "bob").await.expect("welcome back");
    server.shutdown().await;
}

#[tokio::test]
async fn an_expired_kline_stops_applying() {
    let server = server_with_oper().await;
    let mut alice = server.client("alice").await;
    oper_up(&mut alice).await;
    let lines = ask(&mut alice, "KLINE 1s ~bob@* :brief").await;
    assert!(
        has(&lines, "temporary K-line (1s) for [~bob@*]"),
        "{lines:#?}"
    );
    // Refused until the second is up (the first try is well within it, unless
    // the machine is very slow: then it is simply let in), then let in.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut refusals = 0;
    loop {
        match try_register(&server, "bob").await {
            Ok(_) => break,
            Err(lines) => {
                assert!(has(&lines, "K-lined: brief"), "{lines:#?}");
                refusals += 1;
                assert!(Instant::now() < deadline, "the K-line never expired");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(refusals <= 20, "{refusals} refusals after a 1 s K-line");
    assert_eq!(
        ask(&mut alice, "STATS k").await,
        [":test.server 219 alice k :End of /STATS report"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_kline_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || {
        let mut config = oper_config();
        let store = palaver_store::SqliteStore::open(dir.path()).expect("open the store");
        config.store = Some(Arc::new(store));
        config
    };
    let server = TestServer::with_config(open()).await;
    let mut alice = server.client("alice").await;
    oper_up(&mut alice).await;
    let lines = ask(&mut alice, "KLINE ~bob@* :for good").await;
    assert!(has(&lines, "added a K-line for [~bob@*]"), "{lines:#?}");
    drop(alice);
    server.shutdown().await;

    let server = TestServer::with_config(open()).await;
    let refused = try_register(&server, "bob").await.err().expect("refused");
    assert!(
        has(
            &refused,
            "ERROR :Closing Link: 127.0.0.1 (K-lined: for good)"
        ),
        "{refused:#?}"
    );
    try_register(&server, "carol")
        .await
        .expect("others are welcome");
    server.shutdown().await;
}

#[tokio::test]
async fn a_connection_flood_is_throttled() {
    let mut config = test_config();
    config.limits.connect_per_ip = Some(ConnectLimit {
        burst: 3,
        per_second: 0.1,
    });
    // The test clients come from 127.0.0.1, which is exempt by default.
    config.limits.throttle_loopback = true;
    let server = TestServer::with_config(config).await;
    let mut admitted = Vec::new();
    for nick in ["a1", "a2", "a3"] {
        admitted.push(try_register(&server, nick).await.expect("within the burst"));
    }
    let mut refused = server.connect().await;
    let lines: Vec<String> = refused
        .expect_closed()
        .await
        .into_iter()
        .map(|l| l.0)
        .collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with(
            "ERROR :Closing Link: 127.0.0.1 (Connecting too fast from your address; try again in "
        ),
        "{lines:#?}"
    );
    // The ones let in are not affected.
    for client in &mut admitted {
        assert!(pending(client).await.is_empty());
    }
    server.shutdown().await;
}

#[tokio::test]
async fn the_network_limit_counts_every_address_of_it() {
    let mut config = test_config();
    config.limits.connect_per_network = Some(ConnectLimit {
        burst: 2,
        per_second: 0.1,
    });
    config.limits.throttle_loopback = true;
    let server = TestServer::with_config(config).await;
    let _a = server.connect().await;
    let _b = server.connect().await;
    let mut refused = server.connect().await;
    let lines: Vec<String> = refused
        .expect_closed()
        .await
        .into_iter()
        .map(|l| l.0)
        .collect();
    assert!(
        has(
            &lines,
            "(Connecting too fast from your network; try again in "
        ),
        "{lines:#?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn loopback_is_not_throttled_by_default() {
    let mut config = test_config();
    config.limits.connect_per_ip = Some(ConnectLimit {
        burst: 1,
        per_second: 0.1,
    });
    let server = TestServer::with_config(config).await;
    for nick in ["l1", "l2", "l3"] {
        try_register(&server, nick)
            .await
            .expect("loopback is exempt");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn stats_uptime_links_and_unknown_letters() {
    let server = server_with_oper().await;
    let [mut alice, mut bob] = in_channel(&server, "#c", ["alice", "bob"]).await;
    let uptime = ask(&mut bob, "STATS u").await;
    assert!(
        uptime[0].starts_with(":test.server 242 bob :Server Up 0 days 0:00:"),
        "{uptime:#?}"
    );
    assert_eq!(uptime[1], ":test.server 219 bob u :End of /STATS report");
    assert_eq!(
        ask(&mut bob, "STATS x").await,
        [":test.server 219 bob x :End of /STATS report"]
    );
    // Command counts are the operators' business, as /metrics is.
    let refused = ask(&mut bob, "STATS m").await;
    assert!(refused[0].contains(" 481 bob "), "{refused:#?}");
    assert_eq!(
        ask(&mut bob, "STATS").await,
        [":test.server 461 bob STATS :Not enough parameters"]
    );
    oper_up(&mut alice).await;
    let links = ask(&mut alice, "STATS l").await;
    assert_eq!(links.len(), 3, "{links:#?}");
    assert!(
        has(&links, ":test.server 211 alice bob[~bob@127.0.0.1] 0 * "),
        "{links:#?}"
    );
    assert_eq!(links[2], ":test.server 219 alice l :End of /STATS report");
    // STATS m: each command received so far and how often (both JOINed once).
    let commands = ask(&mut alice, "STATS m").await;
    assert!(
        has(&commands, ":test.server 212 alice JOIN 2"),
        "{commands:#?}"
    );
    assert!(
        has(&commands, ":test.server 212 alice STATS "),
        "{commands:#?}"
    );
    assert_eq!(
        commands.last().map(String::as_str),
        Some(":test.server 219 alice m :End of /STATS report")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn sajoin_sapart_and_sanick_act_as_the_user() {
    let server = server_with_oper().await;
    let [mut alice, mut bob] = in_channel(&server, "#lobby", ["alice", "bob"]).await;
    let [mut carol] = in_channel(&server, "#locked", ["carol"]).await;
    ask(&mut carol, "MODE #locked +ik secret").await;
    oper_up(&mut alice).await;

    // Past the key and +i, as bob's own JOIN would be announced.
    let lines = ask(&mut alice, "SAJOIN bob #locked").await;
    assert!(
        has(
            &lines,
            "*** Notice -- alice used SAJOIN to make bob join #locked"
        ),
        "{lines:#?}"
    );
    let join = carol.expect_command("JOIN").await;
    assert_eq!(join.0, format!("{} JOIN #locked", src("bob")));
    let join = bob.expect_command("JOIN").await;
    assert_eq!(join.0, format!("{} JOIN #locked", src("bob")));
    bob.expect_command("366").await;

    let lines = ask(&mut alice, "SAPART bob #locked :moved").await;
    assert!(
        has(&lines, "alice used SAPART to make bob part #locked"),
        "{lines:#?}"
    );
    let part = carol.expect_command("PART").await;
    assert_eq!(part.0, format!("{} PART #locked :moved", src("bob")));
    assert_eq!(
        ask(&mut alice, "SAPART bob #locked").await,
        [":test.server 441 alice bob #locked :They aren't on that channel"]
    );

    let lines = ask(&mut alice, "SANICK bob robert").await;
    assert!(
        has(&lines, format!("{} NICK :robert", src("bob")).as_str())
            || has(&lines, format!("{} NICK robert", src("bob")).as_str()),
        "alice shares #lobby with bob: {lines:#?}"
    );
    assert!(
        has(&lines, "alice used SANICK to rename bob to robert"),
        "{lines:#?}"
    );
    let nick = bob.expect_command("NICK").await;
    assert_eq!(nick.last(), "robert");
    assert_eq!(
        ask(&mut alice, "SANICK robert alice").await,
        [":test.server 433 alice alice :Nickname is already in use"]
    );
    assert_eq!(
        ask(&mut alice, "SAJOIN nobody #lobby").await,
        [":test.server 401 alice nobody :No such nick/channel"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn die_needs_the_server_name_then_stops_the_server() {
    let server = server_with_oper().await;
    let [mut alice, mut bob] = in_channel(&server, "#c", ["alice", "bob"]).await;
    oper_up(&mut alice).await;
    for command in ["DIE", "DIE other.server"] {
        assert_eq!(
            ask(&mut alice, command).await,
            [":test.server NOTICE alice :*** DIE: to stop the server, name it: DIE test.server"]
        );
    }
    alice.send("DIE test.server").await;
    let closed: Vec<String> = bob.expect_closed().await.into_iter().map(|l| l.0).collect();
    assert_eq!(
        closed.last().map(String::as_str),
        Some("ERROR :Server shutting down"),
        "{closed:#?}"
    );
    let closed: Vec<String> = alice
        .expect_closed()
        .await
        .into_iter()
        .map(|l| l.0)
        .collect();
    assert!(has(&closed, "*** Notice -- alice used DIE"), "{closed:#?}");
    // Nobody listens any more.
    assert!(
        tokio::net::TcpStream::connect(server.addr).await.is_err(),
        "the server still accepts connections"
    );
    server.shutdown().await;
}

/// A free port on 127.0.0.1 (bound and released: a server that restarts must
/// find its port again, which port 0 would not give it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test]
async fn restart_executes_the_server_again_on_the_same_port() {
    let port = free_port().to_string();
    let (mut server, addr) = ServerProcess::listening(ServerProcess::spawn(&[
        "127.0.0.1",
        &port,
        "--oper",
        "root:s3cret",
        "--no-tls",
    ]));
    let mut alice = TestClient::connect(addr).await;
    alice.register("alice").await;
    oper_up(&mut alice).await;
    assert_eq!(
        ask(&mut alice, "RESTART").await,
        [
            ":palaver.local NOTICE alice :*** RESTART: to restart the server, name it: RESTART palaver.local"
        ]
    );
    alice.send("RESTART palaver.local").await;
    let closed: Vec<String> = alice
        .expect_closed()
        .await
        .into_iter()
        .map(|l| l.0)
        .collect();
    assert_eq!(
        closed.last().map(String::as_str),
        Some("ERROR :Server restarting"),
        "{closed:#?}"
    );
    server.expect_stdout("palaver restarting");
    let line = server.expect_stdout("listening on ");
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line:?}");
    let mut again = TestClient::connect(addr).await;
    again.register("alice").await;
    server.signal("TERM");
    let (status, stderr) = server.wait_exit();
    assert!(status.success(), "{status:?}: {stderr}");
}
