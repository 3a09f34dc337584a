//! Scale-out: several `chat-server` processes on one NATS server act as one IRC
//! server. Each test starts its own `nats-server` (JetStream on, in a temporary
//! directory, on a free port) and its own nodes, and talks to them with real
//! clients.
//!
//! These need Debian's `nats-server`, so they are ignored by `cargo test`;
//! `scripts/test-cluster.sh` installs it and runs them (`.ci/run` does too).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use palaver_test_support::TestClient;

use crate::binary::ServerProcess;

/// How long a test waits for the cluster to agree on something (a join seen on
/// another node, a lost node's users gone): a bound, not a sleep.
const CONVERGE: Duration = Duration::from_secs(10);

/// A `nats-server` of the test's own, killed on drop.
struct Nats {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Nats {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, free_port())
    }

    /// Starts on `port` with JetStream's files in `dir` (a restart keeps both).
    fn start_in(dir: tempfile::TempDir, port: u16) -> Self {
        let binary = std::env::var("PALAVER_TEST_NATS_SERVER").unwrap_or_else(|_| {
            panic!("PALAVER_TEST_NATS_SERVER is not set: run scripts/test-cluster.sh")
        });
        let child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let deadline = Instant::now() + CONVERGE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port, dir }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops it (SIGKILL) and starts it again on the same port and directory.
    fn restart(mut self) -> Self {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = self.port;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        Self::start_in(dir, port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// Runs `attempt` until it succeeds, every 20 ms for at most [`CONVERGE`]: what
/// the cluster agrees on arrives after a bus round trip or a node timeout, and
/// this waits for it instead of sleeping a guess. Fails with the last attempt's
/// error.
async fn converge<T>(mut attempt: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + CONVERGE;
    loop {
        match attempt().await {
            Ok(done) => return done,
            Err(why) => assert!(Instant::now() < deadline, "{why}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Connects to `addr` and registers as `nick`: the client once welcomed, or the
/// numeric (one of `refusals`) that refused it.
async fn try_register(
    addr: SocketAddr,
    nick: &str,
    refusals: &[&str],
) -> Result<TestClient, String> {
    let mut client = TestClient::connect(addr).await;
    client.nick = nick.to_owned();
    client.send(&format!("NICK {nick}")).await;
    client.send(&format!("USER {nick} 0 * :{nick}")).await;
    let answer = client
        .expect(|l| l.command() == "001" || refusals.contains(&l.command()))
        .await;
    if answer.command() == "001" {
        return Ok(client);
    }
    client.send("QUIT").await;
    Err(format!("{nick} refused: {answer:?}"))
}

/// One node: a `chat-server` process in the cluster.
struct Node {
    process: ServerProcess,
    addr: SocketAddr,
}

impl Node {
    /// A node on its own in-memory store.
    fn start(nats: &Nats, name: &str, extra: &[&str]) -> Self {
        let mut args = vec!["--ephemeral"];
        args.extend_from_slice(extra);
        Self::start_with(nats, name, &args)
    }

    /// A node on the PostgreSQL store at `url`, with `dir` as its data directory.
    fn start_on_store(nats: &Nats, name: &str, url: &str, dir: &std::path::Path) -> Self {
        Self::start_on_store_with(nats, name, url, dir, &[])
    }

    /// The same, with more options.
    fn start_on_store_with(
        nats: &Nats,
        name: &str,
        url: &str,
        dir: &std::path::Path,
        extra: &[&str],
    ) -> Self {
        let dir = dir.to_string_lossy().into_owned();
        let mut args = vec!["--store", url, "--data-dir", &dir];
        args.extend_from_slice(extra);
        Self::start_with(nats, name, &args)
    }

    fn start_with(nats: &Nats, name: &str, extra: &[&str]) -> Self {
        Self::start_at(&nats.url(), name, extra)
    }

    /// A node on the bus at `url` (a relay the test can cut, say).
    fn start_at(url: &str, name: &str, extra: &[&str]) -> Self {
        let mut args = vec![
            "--no-tls",
            "--cluster",
            url,
            "--node-name",
            name,
            "--node-timeout",
            "2s",
            // Tests send faster than a person types.
            "--no-flood-limit",
        ];
        args.extend_from_slice(extra);
        let mut command = ServerProcess::command_with_data();
        command.args(["127.0.0.1", "0"]).args(&args);
        let (process, addr) = ServerProcess::listening(ServerProcess::spawn_command(command));
        Self { process, addr }
    }

    async fn client(&self, nick: &str) -> TestClient {
        let mut client = TestClient::connect(self.addr).await;
        client.register(nick).await;
        client
    }
}

/// `viewer`'s NAMES of `channel`, with status prefixes, sorted.
async fn names(viewer: &mut TestClient, channel: &str) -> Vec<String> {
    viewer.send(&format!("NAMES {channel}")).await;
    let mut names = Vec::new();
    loop {
        let line = viewer
            .expect(|l| l.command() == "353" || l.command() == "366")
            .await;
        if line.command() == "366" {
            break;
        }
        names.extend(
            line.last()
                .split(' ')
                .filter(|n| !n.is_empty())
                .map(str::to_owned),
        );
    }
    names.sort();
    names
}

/// Waits until `viewer`'s NAMES of `channel` lists every one of `nicks`: the
/// other nodes' joins have arrived.
async fn await_members(viewer: &mut TestClient, channel: &str, nicks: &[&str]) {
    converge(async || {
        // No 353 at all while the channel is unknown here.
        let listed = names(viewer, channel).await;
        let bare: Vec<&str> = listed
            .iter()
            .map(|n| n.trim_start_matches(['@', '+']))
            .collect();
        if nicks.iter().all(|nick| bare.contains(nick)) {
            return Ok(());
        }
        Err(format!("{channel} never listed {nicks:?}: {listed:?}"))
    })
    .await;
}

/// Waits until `viewer` sees `nick` online (ISON), or offline with `online` false.
async fn await_online(viewer: &mut TestClient, nick: &str, online: bool) {
    converge(async || {
        viewer.send(&format!("ISON {nick}")).await;
        let listed = viewer.expect_command("303").await.last();
        if listed.split(' ').any(|n| n == nick) == online {
            return Ok(());
        }
        let state = if online { "online" } else { "offline" };
        Err(format!("{nick} never went {state}"))
    })
    .await;
}

#[tokio::test]
#[ignore = "needs nats-server: scripts/test-cluster.sh"]
async fn channels_and_private_messages_span_nodes() {
    let nats = Nats::start();
    let nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|name| Node::start(&nats, name, &[]))
        .collect();
    let mut alice = nodes[0].client("alice").await;
    let mut bob = nodes[1].client("bob").await;
    let mut carol = nodes[2].client("carol").await;
    for client in [&mut alice, &mut bob, &mut carol] {
        client.send("JOIN #hall").await;
        client.expect_command("366").await;
    }
    for client in [&mut alice, &mut bob, &mut carol] {
        await_members(client, "#hall", &["alice", "bob", "carol"]).await;
    }

    // Each message reaches the two others, once, from the right source.
    alice.send("PRIVMSG #hall :from a").await;
    bob.send("PRIVMSG #hall :from b").await;
    carol.send("PRIVMSG #hall :from c").await;
    for (client, expected) in [
        (&mut alice, ["from b", "from c"]),
        (&mut bob, ["from a", "from c"]),
        (&mut carol, ["from a", "from b"]),
    ] {
        let mut got = Vec::new();
        while got.len() < 2 {
            let line = client.expect_command("PRIVMSG").await;
            assert_eq!(line.param(0), "#hall");
            let sender = match line.last().as_str() {
                "from a" => "alice",
                "from b" => "bob",
                _ => "carol",
            };
            assert_eq!(line.source_nick(), sender);
            got.push(line.last());
        }
        got.sort();
        assert_eq!(got, expected);
    }

    // Private messages, and a WHOIS of a user on another node.
    carol.send("PRIVMSG alice :psst").await;
    let line = alice.expect_command("PRIVMSG").await;
    assert_eq!(line.source_nick(), "carol");
    assert_eq!(line.param(0), "alice");
    assert_eq!(line.last(), "psst");
    bob.send("WHOIS carol").await;
    let whois = bob.expect_command("311").await;
    assert_eq!(whois.param(1), "carol");
    let channels = bob.expect_command("319").await;
    assert!(channels.last().contains("#hall"), "{channels:?}");
    // The idle time comes from carol's own node, which knows when she last spoke.
    let idle = bob.expect(|l| matches!(l.command(), "317" | "318")).await;
    assert_eq!(idle.command(), "317", "{idle:?}");
    bob.expect_command("318").await;

    // A nick change and a part are seen everywhere.
    bob.send("NICK robert").await;
    let nick = alice.expect_command("NICK").await;
    assert_eq!(
        (nick.source_nick(), nick.param(0)),
        ("bob".into(), "robert".into())
    );
    carol.expect_command("NICK").await;
    carol.send("PART #hall :later").await;
    let part = alice.expect_command("PART").await;
    assert_eq!(part.source_nick(), "carol");
    await_online(&mut alice, "robert", true).await;
    await_online(&mut alice, "bob", false).await;
    // Node a remembers the old nick of node b's user, and a quit one.
    alice.send("WHOWAS bob").await;
    assert_eq!(alice.expect_command("314").await.param(1), "bob");
    carol.send("QUIT :bye").await;
    await_online(&mut alice, "carol", false).await;
    alice.send("WHOWAS carol").await;
    assert_eq!(alice.expect_command("314").await.param(1), "carol");
    // Every node exports the cluster metrics the Grafana dashboard shows, and
    // counts the traffic this test made.
    let scrape = crate::metrics::scrape(nodes[0].addr).await;
    let exported = scrape.names();
    let missing: Vec<String> = crate::metrics::dashboard_metric_names()
        .into_iter()
        .filter(|name| name.starts_with("palaver_cluster_") && !exported.contains(name.as_str()))
        .collect();
    assert!(missing.is_empty(), "not exported: {missing:?}");
    assert!(
        scrape.get("palaver_cluster_sent_messages_total") > 0.0,
        "{}",
        scrape.text
    );
    assert_eq!(scrape.get("palaver_cluster_nodes"), 2.0, "{}", scrape.text);
    for node in &nodes {
        crate::binary::assert_no_panic(&node.process.stderr());
    }
}

#[tokio::test]
#[ignore = "needs nats-server: scripts/test-cluster.sh"]
async fn a_channel_message_crosses_once_per_node_and_each_member_gets_its_own_format() {
    let nats = Nats::start();
    let a = Node::start(&nats, "a", &[]);
    let b = Node::start(&nats, "b", &[]);
    let mut alice = TestClient::connect(a.addr).await;
    alice
        .register_with_caps("alice", "echo-message message-tags server-time")
        .await;
    let mut tagged = TestClient::connect(b.addr).await;
    tagged
        .register_with_caps("tagged", "message-tags server-time")
        .await;
    let mut plain = b.client("plain").await;
    let mut deputy = b.client("deputy").await;
    alice.send("JOIN #v").await;
    alice.expect_command("366").await;
    await_online(&mut alice, "deputy", true).await;
    // Node b knows alice's channel before its users join it (else it would be
    // created there too, and the younger copy's operator deopped).
    await_members(&mut tagged, "#v", &["alice"]).await;
    for client in [&mut tagged, &mut plain, &mut deputy] {
        client.send("JOIN #v").await;
        client.expect_command("366").await;
    }
    await_members(&mut alice, "#v", &["tagged", "plain", "deputy"]).await;
    let before = crate::metrics::scrape(a.addr).await;

    // Node b formats alice's message for each of its members: the tagged one gets
    // the msgid and time alice's own echo shows, the plain one no tags at all.
    alice.send("PRIVMSG #v :hello b").await;
    let echo = alice.expect_command("PRIVMSG").await;
    let got = tagged.expect_command("PRIVMSG").await;
    assert_eq!(got.source_nick(), "alice");
    assert_eq!(got.last(), "hello b");
    for tag in ["msgid", "time"] {
        assert!(echo.msg().tag(tag).is_some(), "{echo:?}");
        assert_eq!(got.msg().tag(tag), echo.msg().tag(tag), "{tag}: {got:?}");
    }
    let got = plain.expect_command("PRIVMSG").await;
    assert!(got.0.starts_with(":alice!"), "{got:?}");
    assert_eq!(got.last(), "hello b");
    deputy.expect_command("PRIVMSG").await;

    // A TAGMSG reaches only message-tags members there.
    alice.send("@+draft/react=x TAGMSG #v").await;
    alice.expect_command("TAGMSG").await;
    let got = tagged.expect_command("TAGMSG").await;
    assert_eq!(got.msg().tag("+draft/react").as_deref(), Some("x"));

    // STATUSMSG: once alice has opped the deputy (a status change made on node
    // a), `@#v` reaches the deputy on node b and not the others.
    alice.send("MODE #v +o deputy").await;
    alice.expect_command("MODE").await;
    deputy.expect_command("MODE").await;
    alice.send("PRIVMSG @#v :ops only").await;
    alice.send("PRIVMSG #v :everyone").await;
    let got = deputy.expect_command("PRIVMSG").await;
    assert_eq!(
        (got.param(0), got.last()),
        ("@#v".into(), "ops only".into())
    );
    for client in [&mut plain, &mut tagged] {
        // The next thing either sees is the message after it: no TAGMSG for the
        // plain one, no `@#v` for either.
        let got = client
            .expect(|l| matches!(l.command(), "PRIVMSG" | "TAGMSG" | "MODE"))
            .await;
        let got = if got.command() == "MODE" {
            client
                .expect(|l| matches!(l.command(), "PRIVMSG" | "TAGMSG"))
                .await
        } else {
            got
        };
        assert_eq!(got.last(), "everyone", "{}: {got:?}", client.nick);
    }
    deputy.expect_command("PRIVMSG").await;

    // Order: private messages and channel messages from one sender arrive in the
    // order sent, though they travel differently.
    for i in 0..50 {
        alice.send(&format!("PRIVMSG tagged :pm {i}")).await;
        alice.send(&format!("PRIVMSG #v :chan {i}")).await;
    }
    for i in 0..50 {
        for expected in [format!("pm {i}"), format!("chan {i}")] {
            let got = tagged.expect_command("PRIVMSG").await;
            assert_eq!(got.last(), expected);
        }
    }
    // A JOIN seen on another node comes before the joiner's first message.
    let mut late = a.client("late").await;
    late.send("JOIN #v").await;
    late.send("PRIVMSG #v :first words").await;
    let join = plain
        .expect(|l| matches!(l.command(), "JOIN" | "PRIVMSG") && l.source_nick() == "late")
        .await;
    assert_eq!(join.command(), "JOIN", "{join:?}");
    let words = plain.expect(|l| l.source_nick() == "late").await;
    assert_eq!(words.last(), "first words");

    // One bus entry per channel message for node b, whatever its members: the
    // 55 channel messages were not forwarded as lines.
    for client in [&mut alice, &mut tagged, &mut plain, &mut deputy] {
        client.sync().await;
    }
    let after = crate::metrics::scrape(a.addr).await;
    let delta = |series: &str| after.get(series) - before.get(series);
    assert_eq!(
        delta("palaver_cluster_forwarded_channel_messages_total"),
        55.0
    );
    // Lines went one per member: the 50 private messages, and the MODE and
    // late's JOIN to node b's three members.
    assert_eq!(delta("palaver_cluster_forwarded_lines_total"), 56.0);

    // A draft/multiline batch travels as lines, one per member there, and a
    // channel message sent after it still arrives after it.
    let mut poet = TestClient::connect(a.addr).await;
    poet.register_with_caps("poet", "batch draft/multiline")
        .await;
    poet.send("JOIN #v").await;
    poet.expect_command("366").await;
    poet.send("BATCH +p draft/multiline #v").await;
    poet.send("@batch=p PRIVMSG #v :one").await;
    poet.send("@batch=p PRIVMSG #v :two").await;
    poet.send("BATCH -p").await;
    poet.send("PRIVMSG #v :after").await;
    for expected in ["one", "two", "after"] {
        let got = plain
            .expect(|l| l.command() == "PRIVMSG" && l.source_nick() == "poet")
            .await;
        assert_eq!(got.last(), expected);
    }
    for node in [&a, &b] {
        crate::binary::assert_no_panic(&node.process.stderr());
    }
}

#[tokio::test]
#[ignore = "needs nats-server: scripts/test-cluster.sh"]
async fn a_channel_created_on_two_nodes_at_once_keeps_one_creator() {
    let nats = Nats::start();
    let a = Node::start(&nats, "a", &[]);
    let b = Node::start(&nats, "b", &[]);
    let mut xavier = a.client("xavier").await;
    let mut yvonne = b.client("yvonne").await;
    await_online(&mut xavier, "yvonne", true).await;
    await_online(&mut yvonne, "xavier", true).await;
    for round in 0..8 {
        // Both join a new channel at once: usually each node creates it before
        // hearing of the other's join, and both make their joiner its operator.
        let channel = format!("#race{round}");
        xavier.send(&format!("JOIN {channel}")).await;
        yvonne.send(&format!("JOIN {channel}")).await;
        // Each learns of the other: listed on joining, or seen joining after,
        // even when both nodes created the channel (then neither node knew the
        // other's member, and each shows its own users the other's JOIN).
        for (client, other) in [(&mut xavier, "yvonne"), (&mut yvonne, "xavier")] {
            let mut listed = false;
            loop {
                let line = client
                    .expect(|l| matches!(l.command(), "353" | "366" | "JOIN"))
                    .await;
                match line.command() {
                    "353" => {
                        listed |= line
                            .last()
                            .split(' ')
                            .any(|n| n.trim_start_matches(['@', '+']) == other);
                    }
                    "JOIN" => listed |= line.source_nick() == other,
                    _ => break,
                }
            }
            if !listed {
                let join = client
                    .expect(|l| l.command() == "JOIN" && l.source_nick() == other)
                    .await;
                assert_eq!(join.param(0), channel);
            }
        }
        // The older creation wins on both nodes: one operator, the same one.
        let (on_a, on_b) = converge(async || {
            let on_a = names(&mut xavier, &channel).await;
            let on_b = names(&mut yvonne, &channel).await;
            let ops = on_a.iter().filter(|n| n.starts_with('@')).count();
            if on_a == on_b && on_a.len() == 2 && ops == 1 {
                return Ok((on_a, on_b));
            }
            Err(format!("{channel}: node a has {on_a:?}, node b {on_b:?}"))
        })
        .await;
        assert_eq!(on_a, on_b);
    }
    for node in [&a, &b] {
        crate::binary::assert_no_panic(&node.process.stderr());
    }
}

#[tokio::test]
#[ignore = "needs nats-server: scripts/test-cluster.sh"]
async fn topics_modes_and_bans_are_the_same_on_every_node() {
    let nats = Nats::start();
    let a = Node::start(&nats, "a", &[]);
    let b = Node::start(&nats, "b", &[]);
    let mut op = a.client("op").await;
    let mut member = b.client("member").await;
    op.send("JOIN #rules").await;
    op.expect_command("366").await;
    // Joined once node b knows the channel: else both would create it, and both
    // be its operators (as on linked IRC servers that race a channel's creation).
    await_members(&mut member, "#rules", &["op"]).await;
    member.send("JOIN #rules").await;
    member.expect_command("366").await;
    await_members(&mut op, "#rules", &["op", "member"]).await;

    op.send("TOPIC #rules :be kind").await;
    assert_eq!(member.expect_command("TOPIC").await.last(), "be kind");
    op.send("MODE #rules +mk sesame").await;
    member.expect_command("MODE").await;
    op.send("MODE #rules +b bad!*@*").await;
    member.expect_command("MODE").await;
    op.send("MODE #rules +v member").await;
    member.expect_command("MODE").await;

    // Node b's own view, as its users see it.
    member.send("TOPIC #rules").await;
    assert_eq!(member.expect_command("332").await.last(), "be kind");
    member.send("MODE #rules").await;
    let modes = member.expect_command("324").await;
    assert!(
        modes.param(2).contains('m') && modes.param(2).contains('k'),
        "{modes:?}"
    );
    member.send("MODE #rules +b").await;
    assert_eq!(member.expect_command("367").await.param(2), "bad!*@*");
    member.send("NAMES #rules").await;
    let names = member.expect_command("353").await.last();
    assert!(names.contains("+member"), "{names}");
    // +m holds on node b: the voiced member may speak, and +k keeps out a
    // newcomer on b without the key.
    member.send("PRIVMSG #rules :voiced").await;
    assert_eq!(op.expect_command("PRIVMSG").await.last(), "voiced");
    let mut newcomer = b.client("newcomer").await;
    newcomer.send("JOIN #rules").await;
    assert_eq!(newcomer.expect_command("475").await.param(1), "#rules");

    // Concurrent changes from both nodes end the same on both.
    op.send("MODE #rules +o member").await;
    member
        .expect(|l| l.command() == "MODE" && l.param(1) == "+o")
        .await;
    op.send("TOPIC #rules :from a").await;
    member.send("TOPIC #rules :from b").await;
    converge(async || {
        op.send("TOPIC #rules").await;
        let on_a = op.expect_command("332").await.last();
        member.send("TOPIC #rules").await;
        let on_b = member.expect_command("332").await.last();
        if on_a == on_b {
            return Ok(());
        }
        Err(format!("topics differ: {on_a} / {on_b}"))
    })
    .await;
}

#[tokio::test]
#[ignore = "needs nats-server: scripts/test-cluster.sh"]
async fn invites_away_and_kill_reach_users_of_other_nodes() {
    let nats = Nats::start();
    let a = Node::start(&nats, "a", &["--oper", "root:hunter2"]);
    let b = Node::start(&nats, "b", &[]);
    let mut host = a.client("host").await;
    let mut guest = b.client("guest").await;
    host.send("JOIN #club").await;
    host.expect_command("366").await;
    host.send("MODE #club +i").await;
    host.expect_command("MODE").await;
    await_online(&mut host, "guest", true).await;
    // Node b knows the channel and its +i before the guest tries.
    converge(async || {
        guest.send("MODE #club").await;
        let modes = guest
            .expect(|l| l.command() == "324" || l.command() == "403")
            .await;
        if modes.command() == "324" && modes.param(2).contains('i') {
            return Ok(());
        }
        Err(format!("node b never saw #club +i: {modes:?}"))
    })
    .await;

    // The invitation is made on node a and honoured by node b.
    guest.send("JOIN #club").await;
    assert_eq!(guest.expect_command("473").await.param(1), "#club");
    host.send("INVITE guest #club").await;
    host.expect_command("341").await;
    assert_eq!(guest.expect_command("INVITE").await.param(1), "#club");
    guest.send("JOIN #club").await;
    guest.expect_command("366").await;

    // Away, seen from the other node.
    guest.send("AWAY :brb").await;
    guest.expect_command("306").await;
    let away = converge(async || {
        host.send("WHOIS guest").await;
        let away = host
            .expect(|l| l.command() == "301" || l.command() == "318")
            .await;
        if away.command() == "301" {
            return Ok(away);
        }
        Err("the away message never arrived".to_owned())
    })
    .await;
    assert_eq!(away.last(), "brb");

    // SA* commands act as the user, so the user's own node carries them out;
    // RENAME would have to move the channel on every node.
    host.send("OPER root hunter2").await;
    host.expect_command("381").await;
    host.send("SANICK guest other").await;
    let renamed = guest.expect_command("NICK").await;
    assert_eq!(
        (renamed.source_nick(), renamed.param(0)),
        ("guest".into(), "other".into())
    );
    let seen = host.expect_command("NICK").await;
    assert_eq!(seen.param(0), "other");
    host.send("SAJOIN other #annex").await;
    assert_eq!(guest.expect_command("JOIN").await.param(0), "#annex");
    host.send("SAPART other #annex :tidy").await;
    let part = guest.expect_command("PART").await;
    assert_eq!(
        (part.param(0), part.last()),
        ("#annex".into(), "tidy".into())
    );
    // A refusal there is answered here: the user is not in that channel.
    host.send("SAPART other #annex").await;
    let refused = host.expect_command("441").await;
    assert_eq!(refused.param(2), "#annex", "{refused:?}");
    host.send("RENAME #club #club2").await;
    let refused = host.expect_command("FAIL").await;
    assert_eq!(refused.param(1), "CANNOT_RENAME", "{refused:?}");

    // An operator on node a kills a user of node b: b ends the connection.
    host.send("KILL other :enough").await;
    let closed = guest.expect_closed().await;
    assert!(
        closed
            .iter()
            .any(|l| l.command() == "ERROR" && l.last().contains("enough")),
        "{closed:?}"
    );
    let quit = host.expect_command("QUIT").await;
    assert_eq!(quit.source_nick(), "other");
}

#[tokio::test]
#[ignore = "needs nats-server: scripts/test-cluster.sh"]
async fn whois_of_another_node_s_user_shows_the_idle_time_its_node_keeps() {
    let nats = Nats::start();
    let a = Node::start(&nats, "a", &[]);
    let b = Node::start(&nats, "b", &[]);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let mut asker = TestClient::connect(a.addr).await;
    asker
        .register_with_caps("asker", "batch labeled-response")
        .await;
    let mut sleepy = b.client("sleepy").await;
    await_online(&mut asker, "sleepy", true).await;
    sleepy.send("PRIVMSG asker :hello").await;
    asker.expect_command("PRIVMSG").await;

    // Node a asks node b, then answers in one labeled batch, idle time included.
    asker.send("@label=w1 WHOIS sleepy").await;
    let start = asker.next_line().await.expect("BATCH start");
    assert_eq!(start.msg().tag("label").as_deref(), Some("w1"), "{start:?}");
    assert_eq!(start.command(), "BATCH", "{start:?}");
    let batch = start.param(0).trim_start_matches('+').to_owned();
    let mut replies = Vec::new();
    loop {
        let line = asker.next_line().await.expect("the WHOIS");
        if line.command() == "BATCH" {
            assert_eq!(line.param(0), format!("-{batch}"));
            break;
        }
        assert_eq!(line.msg().tag("batch").as_deref(), Some(batch.as_str()));
        replies.push(line);
    }
    let codes: Vec<&str> = replies.iter().map(|l| l.command()).collect();
    assert_eq!(codes.first(), Some(&"311"), "{codes:?}");
    assert_eq!(codes.last(), Some(&"318"), "{codes:?}");
    let idle = replies
        .iter()
        .find(|l| l.command() == "317")
        .unwrap_or_else(|| panic!("no idle time: {codes:?}"));
    assert_eq!(idle.param(1), "sleepy");
    let seconds: u64 = idle.param(2).parse().expect("idle seconds");
    let signon: u64 = idle.param(3).parse().expect("signon time");
    // It spoke moments ago, and signed on after the test began.
    assert!(seconds < 60, "{idle:?}");
    assert!(signon + 1 >= before, "{idle:?}");

    // Asked for a nick that left meanwhile, the WHOIS says so.
    sleepy.send("QUIT").await;
    await_online(&mut asker, "sleepy", false).await;
    asker.send("WHOIS sleepy").await;
    asker.expect_command("401").await;
    asker.expect_command("318").await;
}

/// Registers `nick` at `addr` again and again until the server welcomes it
/// (`welcomed`) or refuses it as K-lined (465, not `welcomed`).
async fn await_registration(addr: SocketAddr, nick: &str, welcomed: bool, why: &str) {
    converge(async || match try_register(addr, nick, &["465"]).await {
        Ok(_) if welcomed => Ok(()),
        Err(_) if !welcomed => Ok(()),
        _ => Err(why.to_owned()),
    })
    .await;
}

#[tokio::test]
#[ignore = "needs nats-server: scripts/test-cluster.sh"]
async fn a_k_line_set_on_one_node_holds_on_every_node() {
    let nats = Nats::start();
    let a = Node::start(&nats, "a", &["--oper", "root:hunter2"]);
    let b = Node::start(&nats, "b", &[]);
    let mut oper = a.client("oper").await;
    let mut villain = b.client("villain").await;
    await_online(&mut oper, "villain", true).await;
    oper.send("OPER root hunter2").await;
    oper.expect_command("381").await;
    oper.send("KLINE ~villain@* :go away").await;
    // Connected on node b: disconnected at once.
    let closed = villain.expect_closed().await;
    assert!(
        closed
            .iter()
            .any(|l| l.command() == "ERROR" && l.last().contains("go away")),
        "{closed:?}"
    );
    // Coming back to node b: refused there too, once node b has heard of it.
    await_registration(b.addr, "villain", false, "node b never applied the K-line").await;
    oper.send("UNKLINE ~villain@*").await;
    await_registration(b.addr, "villain", true, "node b never lifted the K-line").await;
}

#[tokio::test]
#[ignore = "needs nats-server: scripts/test-cluster.sh"]
async fn a_nick_raced_from_two_nodes_goes_to_exactly_one() {
    let nats = Nats::start();
    let a = Node::start(&nats, "a", &[]);
    let b = Node::start(&nats, "b", &[]);
    let mut on_a = a.client("first").await;
    let mut on_b = b.client("second").await;
    for round in 0..20 {
        let wanted = format!("prize{round}");
        on_a.send(&format!("NICK {wanted}")).await;
        on_b.send(&format!("NICK {wanted}")).await;
        let outcome =
            |line: &palaver_test_support::Line| line.command() == "433" || line.command() == "NICK";
        let won_a = on_a.expect(outcome).await.command() == "NICK";
        let won_b = on_b.expect(outcome).await.command() == "NICK";
        assert!(won_a ^ won_b, "round {round}: a won {won_a}, b won {won_b}");
        // The loser keeps trying other names; the winner gives the nick back.
        let (winner, loser) = if won_a {
            (&mut on_a, &mut on_b)
        } else {
            (&mut on_b, &mut on_a)
        };
        winner.send(&format!("NICK w{round}")).await;
        winner.expect_command("NICK").await;
        loser.send("PING sync").await;
        loser.expect_command("PONG").await;
    }
}

/// Who holds the cluster-wide claim on `nick`, read from the NATS bucket itself
/// (not through a node's replica): `node/boot/id`, or `None` if nobody does.
async fn claim_holder(nats: &Nats, nick: &str) -> Option<String> {
    let client = async_nats::connect(nats.url())
        .await
        .expect("connect to NATS");
    let bucket = async_nats::jetstream::new(client)
        .get_key_value("palaver_nicks")
        .await
        .expect("the nick bucket");
    // The key is the folded nick in hex (`bus::nats`).
    let key: String = nick
        .to_ascii_lowercase()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    bucket
        .get(&key)
        .await
        .expect("read a claim")
        .map(|value| String::from_utf8_lossy(&value).into_owned())
}

/// Waits until the claim on `nick` is held by a user of node `node`, or by
/// nobody with `node` `None`.
async fn await_claim(nats: &Nats, nick: &str, node: Option<&str>) {
    converge(async || {
        let holder = claim_holder(nats, nick).await;
        let holding_node = holder.as_deref().and_then(|h| h.split('/').next());
        if holding_node == node {
            return Ok(());
        }
        Err(format!(
            "the claim on {nick} stayed {holder:?}, not {node:?}"
        ))
    })
    .await;
}

#[tokio::test]
#[ignore = "needs nats-server: scripts/test-cluster.sh"]
async fn nick_claims_follow_nick_changes_in_order_and_a_given_nick_is_claimed_too() {
    let nats = Nats::start();
    let a = Node::start(&nats, "a", &["--oper", "root:hunter2"]);

    // Away and straight back, again and again: each release of "flip" is done
    // before it is claimed again, so the claim never goes missing.
    let mut flipper = a.client("flip").await;
    for _ in 0..20 {
        flipper.send("NICK flop").await;
        flipper.send("NICK flip").await;
        for expected in ["flop", "flip"] {
            let nick = flipper
                .expect(|l| matches!(l.command(), "NICK" | "433"))
                .await;
            assert_eq!((nick.command(), nick.param(0)), ("NICK", expected.into()));
        }
    }
    // "flop" was released last: once it is free, everything before it is done.
    await_claim(&nats, "flop", None).await;
    await_claim(&nats, "flip", Some("a")).await;

    // SANICK gives a nick at once and claims it afterwards. Here the claim is
    // already held elsewhere (a user of node z, as far as NATS knows, not yet
    // known to node a): the target ends up with a guest nick, claimed too, and
    // z's claim stays z's.
    let client = async_nats::connect(nats.url())
        .await
        .expect("connect to NATS");
    async_nats::jetstream::new(client)
        .get_key_value("palaver_nicks")
        .await
        .expect("the nick bucket")
        .create("696e747275646572", "z/1/1".into())
        .await
        .expect("claim \"intruder\" for node z");
    flipper.send("OPER root hunter2").await;
    flipper.expect_command("381").await;
    let mut victim = a.client("victim").await;
    flipper.send("SANICK victim intruder").await;
    let given = victim.expect_command("NICK").await;
    assert_eq!(given.param(0), "intruder");
    let notice = victim.expect_command("NOTICE").await;
    assert!(
        notice.last().contains("held on another server"),
        "{notice:?}"
    );
    let guest = victim.expect_command("NICK").await.param(0);
    assert!(guest.starts_with("Guest"), "{guest}");
    await_claim(&nats, &guest, Some("a")).await;
    assert_eq!(
        claim_holder(&nats, "intruder").await.as_deref(),
        Some("z/1/1")
    );
    crate::binary::assert_no_panic(&a.process.stderr());
}

#[tokio::test]
#[ignore = "needs nats-server and PostgreSQL: scripts/test-cluster.sh"]
async fn a_guest_nick_given_by_nick_protection_is_claimed_cluster_wide() {
    let nats = Nats::start();
    let url = crate::postgres_store::fresh_database().await;
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let grace = ["--nick-grace", "1"];
    let a = Node::start_on_store_with(&nats, "a", &url, dir_a.path(), &grace);
    let b = Node::start_on_store_with(&nats, "b", &url, dir_b.path(), &grace);
    let mut owner = a.client("owner").await;
    owner.send("REGISTER * * correct-horse-battery").await;
    owner
        .expect(|line| line.0.contains("REGISTER SUCCESS owner "))
        .await;
    owner.send("NICK owner_away").await;
    owner.expect_command("NICK").await;
    // Node b learns the account's name before the nick is free there (one
    // ordered stream): once it lets someone take the nick, it enforces it.
    let mut squatter = converge(async || try_register(b.addr, "owner", &["433"]).await).await;
    let renamed = squatter
        .expect(|l| l.command() == "NICK" && l.source_nick() == "owner")
        .await;
    let guest = renamed.param(0);
    assert!(guest.starts_with("Guest"), "{renamed:?}");
    await_claim(&nats, &guest, Some("b")).await;
    await_claim(&nats, "owner", None).await;
    for node in [&a, &b] {
        crate::binary::assert_no_panic(&node.process.stderr());
    }
}

#[tokio::test]
#[ignore = "needs nats-server: scripts/test-cluster.sh"]
async fn a_killed_node_s_users_quit_elsewhere_and_free_their_nicks() {
    let nats = Nats::start();
    let a = Node::start(&nats, "a", &[]);
    let b = Node::start(&nats, "b", &[]);
    let mut doomed = a.client("doomed").await;
    let mut witness = b.client("witness").await;
    doomed.send("JOIN #room").await;
    doomed.expect_command("366").await;
    witness.send("JOIN #room").await;
    witness.expect_command("366").await;
    await_members(&mut witness, "#room", &["doomed", "witness"]).await;

    a.process.signal("KILL");
    let killed = Instant::now();
    let quit = witness.expect_command("QUIT").await;
    assert_eq!(quit.source_nick(), "doomed");
    assert_eq!(quit.last(), "node a lost");
    let noticed = killed.elapsed();
    // Heartbeat 1 s, timeout 2 s (--node-timeout): seen within a few seconds.
    assert!(noticed < Duration::from_secs(6), "took {noticed:?}");

    // The nick is free again, cluster-wide.
    converge(async || try_register(b.addr, "doomed", &["433"]).await).await;
}

#[tokio::test]
#[ignore = "needs nats-server: scripts/test-cluster.sh"]
async fn a_node_stopped_gracefully_says_goodbye_for_its_users() {
    let nats = Nats::start();
    let mut a = Node::start(&nats, "a", &[]);
    let b = Node::start(&nats, "b", &[]);
    let mut leaving = a.client("leaving").await;
    let mut staying = b.client("staying").await;
    leaving.send("JOIN #bye").await;
    leaving.expect_command("366").await;
    await_members(&mut staying, "#bye", &["leaving"]).await;
    staying.send("JOIN #bye").await;
    staying.expect_command("366").await;
    await_members(&mut leaving, "#bye", &["staying"]).await;

    a.process.signal("TERM");
    let quit = staying.expect_command("QUIT").await;
    assert_eq!(quit.source_nick(), "leaving");
    assert!(!quit.last().contains("lost"), "{quit:?}");
    let (status, _) = a.process.wait_exit();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
#[ignore = "needs nats-server: scripts/test-cluster.sh"]
async fn a_node_stops_even_when_nats_is_gone() {
    let nats = Nats::start();
    let mut a = Node::start(&nats, "a", &[]);
    let mut user = a.client("user").await;
    drop(nats);
    // The node still serves its own users without the bus.
    user.send("JOIN #alone").await;
    user.expect_command("366").await;
    a.process.signal("TERM");
    let (status, stderr) = a.process.wait_exit();
    assert!(status.success(), "{status:?}\n{stderr}");
}

#[tokio::test]
#[ignore = "needs nats-server: scripts/test-cluster.sh"]
async fn a_restarted_node_rejoins_and_the_cluster_converges() {
    let nats = Nats::start();
    let mut a = Node::start(&nats, "a", &[]);
    let b = Node::start(&nats, "b", &[]);
    let mut stayer = b.client("stayer").await;
    stayer.send("JOIN #x").await;
    stayer.expect_command("366").await;
    {
        let mut leaver = a.client("leaver").await;
        leaver.send("JOIN #x").await;
        leaver.expect_command("366").await;
        await_members(&mut stayer, "#x", &["leaver"]).await;
    }
    // Killed and started again under the same name before the others time it
    // out: the new incarnation replaces the old one, whose users are gone.
    a.process.signal("KILL");
    let _ = a.process.wait_exit();
    let a = Node::start(&nats, "a", &[]);
    let quit = stayer.expect_command("QUIT").await;
    assert_eq!(quit.source_nick(), "leaver");

    let mut back = a.client("leaver").await;
    back.send("JOIN #x").await;
    back.expect_command("366").await;
    await_members(&mut back, "#x", &["leaver", "stayer"]).await;
    await_members(&mut stayer, "#x", &["leaver", "stayer"]).await;
    stayer.send("PRIVMSG #x :welcome back").await;
    assert_eq!(back.expect_command("PRIVMSG").await.last(), "welcome back");

    // A node joining late learns everyone from the others' bursts.
    let c = Node::start(&nats, "c", &[]);
    let mut late = c.client("late").await;
    await_online(&mut late, "stayer", true).await;
    await_online(&mut late, "leaver", true).await;
    late.send("JOIN #x").await;
    late.expect_command("366").await;
    await_members(&mut late, "#x", &["leaver", "stayer", "late"]).await;
}

#[tokio::test]
#[ignore = "needs nats-server: scripts/test-cluster.sh"]
async fn nodes_reconnect_after_nats_restarts_under_load() {
    let nats = Nats::start();
    let a = Node::start(&nats, "a", &[]);
    let b = Node::start(&nats, "b", &[]);
    let mut talker = a.client("talker").await;
    let mut listener = b.client("listener").await;
    talker.send("JOIN #busy").await;
    talker.expect_command("366").await;
    listener.send("JOIN #busy").await;
    listener.expect_command("366").await;
    await_members(&mut talker, "#busy", &["listener"]).await;
    for n in 0..200 {
        talker.send(&format!("PRIVMSG #busy :before {n}")).await;
    }
    assert_eq!(
        listener
            .expect(|l| l.command() == "PRIVMSG" && l.last() == "before 199")
            .await
            .last(),
        "before 199"
    );

    let nats = nats.restart();
    // What is sent while the bus is down is lost between nodes (each node still
    // serves its own users); once both are back, messages flow again and nobody
    // was declared lost.
    let deadline = Instant::now() + CONVERGE * 2;
    let mut n = 0;
    loop {
        talker.send(&format!("PRIVMSG #busy :after {n}")).await;
        let arrived = tokio::time::timeout(Duration::from_millis(300), async {
            loop {
                let line = listener.expect_command("PRIVMSG").await;
                if line.last().starts_with("after ") {
                    return line;
                }
            }
        })
        .await;
        if arrived.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "messages never flowed again");
        n += 1;
    }
    await_members(&mut listener, "#busy", &["talker", "listener"]).await;
    drop(nats);
}

#[tokio::test]
#[ignore = "needs nats-server and PostgreSQL: scripts/test-cluster.sh"]
async fn history_is_the_same_from_every_node() {
    let nats = Nats::start();
    let url = crate::postgres_store::fresh_database().await;
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .zip(&dirs)
        .map(|(name, dir)| Node::start_on_store(&nats, name, &url, dir.path()))
        .collect();
    let caps = "batch message-tags server-time draft/chathistory";
    let mut clients = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let mut client = TestClient::connect(node.addr).await;
        let nick = format!("hist{n}");
        client.nick.clone_from(&nick);
        client.send(&format!("CAP REQ :{caps}")).await;
        client.expect_command("CAP").await;
        client.send(&format!("NICK {nick}")).await;
        client.send(&format!("USER {nick} 0 * :{nick}")).await;
        client.send("CAP END").await;
        client.expect_command("001").await;
        client.send("JOIN #hist").await;
        client.expect_command("366").await;
        clients.push(client);
    }
    for client in &mut clients {
        await_members(client, "#hist", &["hist0", "hist1", "hist2"]).await;
    }
    // Each node's user speaks; every message reaches everyone (so it is stored).
    for round in 0..3 {
        for (n, client) in clients.iter_mut().enumerate() {
            client
                .send(&format!("PRIVMSG #hist :r{round} from {n}"))
                .await;
        }
    }
    for (n, client) in clients.iter_mut().enumerate() {
        // Senders on different nodes interleave differently on each node.
        let mut missing: std::collections::HashSet<String> = (0..3)
            .flat_map(|round| {
                (0..3)
                    .filter(move |from| *from != n)
                    .map(move |from| format!("r{round} from {from}"))
            })
            .collect();
        while !missing.is_empty() {
            let line = client.expect_command("PRIVMSG").await;
            missing.remove(&line.last());
        }
    }
    // Every node answers CHATHISTORY with the same nine messages, same ids.
    let mut answers = Vec::new();
    for client in &mut clients {
        client.send("CHATHISTORY LATEST #hist * 50").await;
        client.expect_command("BATCH").await;
        let mut replayed = Vec::new();
        loop {
            let line = client.next_line().await.expect("the batch goes on");
            match line.command() {
                "BATCH" => break,
                "PRIVMSG" => {
                    let msgid = line.msg().tag("msgid").expect("a msgid").into_owned();
                    replayed.push((msgid, line.source_nick(), line.last()));
                }
                _ => {}
            }
        }
        answers.push(replayed);
    }
    assert_eq!(answers[0].len(), 9, "{:#?}", answers[0]);
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);
    let ids: std::collections::HashSet<_> = answers[0].iter().map(|(id, _, _)| id).collect();
    assert_eq!(ids.len(), 9, "msgids are unique across nodes");
}

#[tokio::test]
#[ignore = "needs nats-server and PostgreSQL: scripts/test-cluster.sh"]
async fn a_channel_registered_on_one_node_is_registered_on_every_node() {
    let nats = Nats::start();
    let url = crate::postgres_store::fresh_database().await;
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let a = Node::start_on_store(&nats, "a", &url, dir_a.path());
    let b = Node::start_on_store(&nats, "b", &url, dir_b.path());
    let mut founder = a.client("founder").await;
    founder.send("REGISTER * * correct-horse-battery").await;
    founder
        .expect(|line| line.0.contains("REGISTER SUCCESS founder "))
        .await;
    founder.send("JOIN #owned").await;
    founder.expect_command("366").await;
    founder.send("PRIVMSG ChanServ :REGISTER #owned").await;
    founder
        .expect(|l| l.command() == "NOTICE" && l.last().contains("is now registered"))
        .await;
    founder
        .send("PRIVMSG ChanServ :ACCESS #owned ADD helper")
        .await;
    founder
        .expect(|l| l.command() == "NOTICE" && l.last().contains("operator access"))
        .await;

    // The same account on node b: node b knows the registration and its access
    // list, so ChanServ there answers INFO and ops the founder's account on JOIN.
    let mut again = TestClient::connect(b.addr).await;
    again.nick = "founder2".to_owned();
    again.send("CAP REQ :sasl").await;
    again.expect_command("CAP").await;
    again.send("NICK founder2").await;
    again.send("USER founder2 0 * :f").await;
    again.send("AUTHENTICATE PLAIN").await;
    again
        .expect(|l| l.command() == "AUTHENTICATE" && l.last() == "+")
        .await;
    use base64::Engine as _;
    let plain =
        base64::engine::general_purpose::STANDARD.encode("\0founder\0correct-horse-battery");
    again.send(&format!("AUTHENTICATE {plain}")).await;
    again.expect_command("903").await;
    again.send("CAP END").await;
    again.expect_command("001").await;
    converge(async || {
        again.send("PRIVMSG ChanServ :INFO #owned").await;
        let info = again.expect_command("NOTICE").await;
        if !info.last().contains("not registered") {
            return Ok(());
        }
        Err("node b never heard of the registration".to_owned())
    })
    .await;
    await_members(&mut again, "#owned", &["founder"]).await;
    again.send("JOIN #owned").await;
    let op = again
        .expect(|l| l.command() == "MODE" && l.param(1) == "+o")
        .await;
    assert_eq!(op.param(2), "founder2");
}

/// A TCP relay between one node and NATS, which the test can cut: a network
/// partition of that node alone.
struct Cuttable {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

impl Cuttable {
    async fn start(target: u16) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the relay");
        let port = listener.local_addr().expect("relay address").port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let generation = std::sync::Arc::new(generation);
        let (refusing, cuts) = (cut.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if refusing.load(Ordering::SeqCst) {
                    continue;
                }
                let mut cut_now = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_now.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            cut,
            generation,
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Drops every connection through the relay and refuses new ones.
    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        self.generation.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
#[ignore = "needs nats-server: scripts/test-cluster.sh"]
async fn a_node_cut_off_from_the_bus_is_lost_then_rejoins_without_nick_clashes() {
    let nats = Nats::start();
    let relay = Cuttable::start(nats.port).await;
    let a = Node::start_at(&relay.url(), "a", &["--ephemeral"]);
    let b = Node::start(&nats, "b", &[]);
    let mut island = a.client("island").await;
    let mut mainland = b.client("mainland").await;
    island.send("JOIN #sea").await;
    island.expect_command("366").await;
    await_members(&mut mainland, "#sea", &["island"]).await;
    mainland.send("JOIN #sea").await;
    mainland.expect_command("366").await;
    await_members(&mut island, "#sea", &["mainland", "island"]).await;

    // Node a is cut off: node b sees its users quit, and the nick is free there.
    relay.cut();
    let quit = mainland.expect_command("QUIT").await;
    assert_eq!(
        (quit.source_nick(), quit.last()),
        ("island".into(), "node a lost".into())
    );
    let mut usurper = TestClient::connect(b.addr).await;
    usurper.send("NICK island").await;
    usurper.send("USER u 0 * :u").await;
    usurper.expect_command("001").await;

    // Back on the bus, node a finds its user's nick taken: it renames its user,
    // and both nodes see both users again, without a clash.
    relay.restore();
    let renamed = island
        .expect(|l| l.command() == "NICK" && l.source_nick() == "island")
        .await;
    let guest = renamed.param(0);
    assert!(guest.starts_with("Guest"), "{renamed:?}");
    await_members(&mut mainland, "#sea", &["mainland", &guest]).await;
    await_online(&mut island, "island", true).await;
    island.send("PRIVMSG #sea :back").await;
    let line = mainland
        .expect(|l| l.command() == "PRIVMSG" && l.last() == "back")
        .await;
    assert_eq!(line.source_nick(), guest);
}

#[tokio::test]
#[ignore = "needs nats-server: scripts/test-cluster.sh"]
async fn a_channel_taken_over_while_its_node_was_cut_off_keeps_its_older_settings() {
    let nats = Nats::start();
    let relay = Cuttable::start(nats.port).await;
    let a = Node::start_at(&relay.url(), "a", &["--ephemeral"]);
    let b = Node::start(&nats, "b", &[]);
    let mut founder = a.client("founder").await;
    founder.send("JOIN #fort").await;
    founder.expect_command("366").await;
    founder.send("TOPIC #fort :founders only").await;
    founder.expect_command("TOPIC").await;
    let mut rider = b.client("rider").await;
    await_members(&mut rider, "#fort", &["founder"]).await;

    // Node a is cut off: node b sees its users quit, so #fort ends there. A user
    // of node b makes #fort anew, becomes its operator, and changes its settings.
    relay.cut();
    await_online(&mut rider, "founder", false).await;
    rider.send("JOIN #fort").await;
    rider.expect_command("366").await;
    assert_eq!(names(&mut rider, "#fort").await, ["@rider"]);
    rider.send("TOPIC #fort :taken over").await;
    rider.expect_command("TOPIC").await;
    rider.send("MODE #fort +i").await;
    rider.expect_command("MODE").await;

    // Back on the bus, the older #fort wins on both nodes: its topic, its modes,
    // its operator; the rider is an ordinary member, told it lost +o.
    relay.restore();
    let lost = rider
        .expect(|l| l.command() == "MODE" && l.param(1) == "-o")
        .await;
    assert_eq!(
        (lost.param(0), lost.param(2)),
        ("#fort".into(), "rider".into())
    );
    for viewer in [&mut founder, &mut rider] {
        converge(async || {
            let members = names(viewer, "#fort").await;
            viewer.send("TOPIC #fort").await;
            let topic = viewer
                .expect(|l| l.command() == "332" || l.command() == "331")
                .await
                .last();
            viewer.send("MODE #fort").await;
            let modes = viewer.expect_command("324").await.param(2);
            if members == ["@founder", "rider"] && topic == "founders only" && !modes.contains('i')
            {
                return Ok(());
            }
            Err(format!(
                "{}: #fort has {members:?}, topic {topic:?}, modes {modes}",
                viewer.nick
            ))
        })
        .await;
    }
}
