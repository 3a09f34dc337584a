//! Abuse within the rules: replies larger than the sendq, repeated list queries,
//! commands that cost more than a line, server-wide limits, password guessing and
//! connections that dribble a partial line (issue 9).

use std::time::{Duration, Instant};

use palaver_server::opers::OperCredential;
use palaver_server::{Config, FloodLimit};
use palaver_test_support::{Line, TIMEOUT, TestClient, TestServer, test_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A test configuration with a small sendq, so that long replies outgrow it.
fn small_sendq() -> Config {
    let mut config = test_config();
    config.limits.sendq_bytes = 16 * 1024;
    config.limits.max_channels_per_client = 10_000;
    config
}

/// Has `client` create channels `#chan-0000` … with a 100-byte topic each, many per
/// JOIN line; returns their names in order.
async fn create_channels(client: &mut TestClient, count: usize) -> Vec<String> {
    let names: Vec<String> = (0..count).map(|i| format!("#chan-{i:04}")).collect();
    // The creator hears its own JOINs and TOPICs: it reads them as they come, so
    // they fit in its sendq.
    for group in names.chunks(30) {
        client.send(&format!("JOIN {}", group.join(","))).await;
        client.sync().await;
    }
    let topic = "t".repeat(100);
    for group in names.chunks(50) {
        for name in group {
            client.send(&format!("TOPIC {name} :{topic}")).await;
        }
        client.sync().await;
    }
    names
}

/// Reads lines until one has `command`; returns every line before it.
async fn lines_until(client: &mut TestClient, command: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    loop {
        let line = client
            .next_line()
            .await
            .unwrap_or_else(|| panic!("{}: closed before {command}: {lines:#?}", client.nick));
        if line.command() == command {
            return lines;
        }
        lines.push(line);
    }
}

#[tokio::test]
async fn a_list_larger_than_the_sendq_arrives_whole_and_in_order() {
    let server = TestServer::with_config(small_sendq()).await;
    let mut alice = server.client("alice").await;
    let names = create_channels(&mut alice, 600).await;
    let mut bob = server.client("bob").await;

    // About 90 KB of replies for a 16 KB sendq: sent as bob reads them.
    bob.send("LIST").await;
    bob.expect_command("321").await;
    let listed = lines_until(&mut bob, "323").await;
    let listed: Vec<String> = listed.iter().map(|l| l.param(1)).collect();
    assert_eq!(listed, names);
    // The connection is still there and answers.
    assert!(bob.sync().await.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn who_star_larger_than_the_sendq_lists_everyone_once_in_nick_order() {
    let server = TestServer::with_config(small_sendq()).await;
    let mut nicks: Vec<String> = (0..250).map(|i| format!("user{i:03}")).collect();
    let mut clients = Vec::new();
    for nick in &nicks {
        clients.push(server.client(nick).await);
    }
    let mut asker = server.client("asker").await;
    nicks.push("asker".to_owned());
    nicks.sort();

    asker.send("WHO *").await;
    let replies = lines_until(&mut asker, "315").await;
    let listed: Vec<String> = replies.iter().map(|l| l.param(5)).collect();
    assert_eq!(listed, nicks);
    assert!(asker.sync().await.is_empty());
    drop(clients);
    server.shutdown().await;
}

#[tokio::test]
async fn a_labeled_reply_of_several_pages_is_one_batch() {
    let server = TestServer::with_config(small_sendq()).await;
    let mut alice = server.client("alice").await;
    let names = create_channels(&mut alice, 80).await;
    let mut bob = server
        .client_with_caps("bob", "batch labeled-response message-tags")
        .await;

    bob.send("@label=big LIST").await;
    let start = bob.next_line().await.expect("BATCH start");
    let start_text = start.0.clone();
    assert!(
        start_text.starts_with("@label=big ") && start.command() == "BATCH",
        "{start_text}"
    );
    let reference = start.param(0);
    let reference = reference.strip_prefix('+').expect("a batch opening");
    assert_eq!(start.param(1), "labeled-response");
    let mut listed = Vec::new();
    loop {
        let line = bob.next_line().await.expect("a line of the batch");
        if line.command() == "BATCH" {
            assert_eq!(line.param(0), format!("-{reference}"));
            break;
        }
        assert!(
            line.0.starts_with(&format!("@batch={reference} ")),
            "{}",
            line.0
        );
        if line.command() == "322" {
            listed.push(line.param(1));
        }
    }
    assert_eq!(listed, names);

    // A reply that fits in one page is labeled as before.
    bob.send("@label=small WHO alice").await;
    let start = bob.next_line().await.expect("BATCH start");
    assert!(start.0.starts_with("@label=small "), "{}", start.0);
    let rest = lines_until(&mut bob, "BATCH").await;
    let codes: Vec<&str> = rest.iter().map(Line::command).collect();
    assert_eq!(codes, ["352", "315"]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_list_asked_for_many_times_in_one_mode_is_sent_once() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    alice.send("JOIN #c").await;
    alice.send("MODE #c +bbb a!*@* b!*@* c!*@*").await;
    alice.sync().await;

    alice.send(&format!("MODE #c {}", "b".repeat(400))).await;
    let replies = alice.sync().await;
    let codes: Vec<&str> = replies.iter().map(Line::command).collect();
    assert_eq!(codes, ["367", "367", "367", "368"], "{replies:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn long_replies_cost_flood_tokens_page_by_page() {
    let mut config = small_sendq();
    config.limits.flood = Some(FloodLimit {
        burst: 2,
        per_second: 10.0,
    });
    let server = TestServer::with_config(config).await;
    // Creating the channels is paced too: few lines carry many channels.
    let mut alice = server.client("alice").await;
    let names: Vec<String> = (0..150).map(|i| format!("#p{i:03}")).collect();
    for group in names.chunks(50) {
        alice.send(&format!("JOIN {}", group.join(","))).await;
    }
    alice.sync().await;
    let mut bob = server.client("bob").await;
    // Let bob's bucket fill again after registration.
    bob.sync().await;

    // 150 replies at 12 a page (16 KB sendq) are 13 pages; the first is paid for by
    // the command, the bucket (2) pays for one more, and each later page waits
    // 100 ms for a token.
    let started = Instant::now();
    bob.send("LIST").await;
    let listed = lines_until(&mut bob, "323").await;
    let took = started.elapsed();
    assert_eq!(listed.iter().filter(|l| l.command() == "322").count(), 150);
    assert!(
        took >= Duration::from_millis(800),
        "13 pages at 10 tokens/s took only {took:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn server_wide_limits_refuse_with_a_clear_reply() {
    let mut config = test_config();
    config.limits.max_channels_total = 2;
    config.limits.max_list_entries_total = 2;
    config.limits.max_monitor_total = 3;
    config.limits.max_metadata_total = 1;
    let server = TestServer::with_config(config).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;

    // Channels: two exist, the third is refused; an existing one can still be joined.
    alice.send("JOIN #one,#two,#three").await;
    let refusal = alice.expect_command("405").await;
    assert_eq!(refusal.param(1), "#three");
    assert!(refusal.last().contains("server"), "{}", refusal.0);
    bob.send("JOIN #one").await;
    bob.expect_command("366").await;
    // Once a channel is gone, a new one may be created.
    alice.send("PART #two").await;
    alice.send("JOIN #three").await;
    alice
        .expect(|l| l.command() == "366" && l.param(1) == "#three")
        .await;
    alice.sync().await;

    // List entries count across channels.
    alice.send("MODE #one +b x!*@*").await;
    alice.send("MODE #three +b y!*@*").await;
    alice.send("MODE #three +b z!*@*").await;
    let replies = alice.sync().await;
    let full: Vec<&Line> = replies.iter().filter(|l| l.command() == "478").collect();
    assert_eq!(full.len(), 1, "{replies:#?}");
    assert_eq!(full[0].param(2), "z!*@*");
    // Removing one frees room.
    alice.send("MODE #one -b x!*@*").await;
    alice.send("MODE #three +b z!*@*").await;
    let replies = alice.sync().await;
    assert!(replies.iter().all(|l| l.command() != "478"), "{replies:#?}");

    // MONITOR entries count across clients.
    alice.send("MONITOR + a1,a2").await;
    alice.sync().await;
    bob.send("MONITOR + b1,b2").await;
    let replies = bob.sync().await;
    let full: Vec<&Line> = replies.iter().filter(|l| l.command() == "734").collect();
    assert_eq!(full.len(), 1, "{replies:#?}");
    assert_eq!(full[0].param(2), "b2");

    // Metadata keys count across clients and channels.
    alice.send("METADATA * SET colour :blue").await;
    alice.sync().await;
    bob.send("METADATA * SET colour :red").await;
    let replies = bob.sync().await;
    assert!(
        replies
            .iter()
            .any(|l| l.command() == "FAIL" && l.param(1) == "LIMIT_REACHED"),
        "{replies:#?}"
    );
    // The key alice holds goes with her (bob, in #one with her, sees her leave),
    // and then bob's fits.
    drop(alice);
    bob.expect(|l| l.command() == "QUIT" && l.source_nick() == "alice")
        .await;
    bob.send("METADATA * SET colour :red").await;
    let replies = bob.sync().await;
    assert!(
        replies.iter().all(|l| l.command() != "FAIL"),
        "{replies:#?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn failed_passwords_are_refused_per_address_after_a_few() {
    let mut config = test_config();
    config.password = Some("sesame".to_owned());
    config.opers = vec![OperCredential::from_password("admin", "secret").expect("hash")];
    let server = TestServer::with_config(config).await;

    for attempt in 0..5 {
        let mut guesser = server.connect().await;
        guesser.nick = format!("guess{attempt}");
        guesser.send(&format!("PASS wrong{attempt}")).await;
        guesser.send(&format!("NICK guess{attempt}")).await;
        guesser.send("USER g 0 * :g").await;
        let lines = guesser.expect_closed().await;
        assert_eq!(
            lines.last().map(|l| l.0.as_str()),
            Some("ERROR :Bad password")
        );
    }
    // Now even the right password is refused from this address, with the reason.
    let mut late = server.connect().await;
    late.nick = "late".to_owned();
    late.send("PASS sesame").await;
    late.send("NICK late").await;
    late.send("USER l 0 * :l").await;
    let lines = late.expect_closed().await;
    let last = lines.last().map(|l| l.0.clone()).unwrap_or_default();
    assert!(
        last.starts_with("ERROR :Too many failed password attempts"),
        "{lines:#?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn failed_oper_attempts_are_refused_without_checking_after_a_few() {
    let mut config = test_config();
    config.opers = vec![OperCredential::from_password("admin", "secret").expect("hash")];
    let server = TestServer::with_config(config).await;
    let mut mallory = server.client("mallory").await;
    for _ in 0..5 {
        mallory.send("OPER admin wrong").await;
        let reply = mallory.expect_command("464").await;
        assert_eq!(reply.last(), "Password incorrect");
    }
    // Refused at once, even with the right password, from any connection of the
    // address.
    let mut other = server.client("other").await;
    other.send("OPER admin secret").await;
    let reply = other.expect_command("464").await;
    assert!(
        reply
            .last()
            .starts_with("Too many failed password attempts"),
        "{}",
        reply.0
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_dribbled_partial_line_does_not_keep_a_connection_alive() {
    let mut config = test_config();
    config.limits.ping_interval = Duration::from_millis(500);
    config.limits.ping_timeout = Duration::from_millis(500);
    let server = TestServer::with_config(config).await;
    let mut slow = server.client("slow").await;
    slow.send_raw(b"PRIVMSG slow :").await;
    let (mut reader, mut writer) = slow.into_split();
    // One more byte of the same line every 100 ms, never its end.
    let dribble = tokio::spawn(async move {
        while writer.write_all(b"x").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut received = Vec::new();
    let closed = tokio::time::timeout(TIMEOUT, async {
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = reader.read(&mut chunk).await {
            received.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    dribble.abort();
    let text = String::from_utf8_lossy(&received);
    assert!(closed.is_ok(), "still connected; received {text:?}");
    assert!(text.contains("ERROR :Ping timeout"), "{text:?}");
    server.shutdown().await;
}

/// Resident memory of process `pid`, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS in /proc status")
}

/// What docs/OPERATIONS.md promises each kind of server-wide state costs at most
/// (measured, with headroom): the ceiling under attack is these times the limits.
const CHANNEL_COST: u64 = 2 * 1024;
const LIST_ENTRY_COST: u64 = 256;
const METADATA_KEY_COST: u64 = 1024;
const MONITOR_ENTRY_COST: u64 = 256;

#[tokio::test]
async fn server_wide_state_stays_under_its_documented_ceiling() {
    const CLIENTS: usize = 20;
    const CHANNELS_EACH: usize = 100;
    // The totals are small so the attack fills them in seconds; filling them is
    // the worst a client can do to the server's memory besides its own sendq.
    let (server, addr) = crate::binary::ServerProcess::start_listening(&[
        "--no-flood-limit",
        "--max-channels",
        "1000",
        "--max-channels-total",
        "2000",
        "--max-list-entries-total",
        "20000",
        "--max-metadata-total",
        "20000",
        "--max-monitor-total",
        "2000",
    ]);
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let mut client = TestClient::connect(addr).await;
        client.register(&format!("att{i:02}")).await;
        clients.push(client);
    }
    let before = rss_bytes(server.pid());

    let value = "v".repeat(250);
    for (i, client) in clients.iter_mut().enumerate() {
        let names: Vec<String> = (0..CHANNELS_EACH)
            .map(|c| format!("#a{i:02}-{c:03}"))
            .collect();
        for group in names.chunks(25) {
            client.send(&format!("JOIN {}", group.join(","))).await;
            client.sync().await;
        }
        for name in &names {
            for bans in (0..10).collect::<Vec<_>>().chunks(4) {
                let masks: Vec<String> = bans.iter().map(|b| format!("{name}-{b}!*@*")).collect();
                let letters = "b".repeat(masks.len());
                client
                    .send(&format!("MODE {name} +{letters} {}", masks.join(" ")))
                    .await;
            }
            for key in 0..10 {
                client
                    .send(&format!("METADATA {name} SET key{key} :{value}"))
                    .await;
            }
            client.sync().await;
        }
        let watched: Vec<String> = (0..100).map(|n| format!("w{i:02}x{n:03}")).collect();
        client
            .send(&format!("MONITOR + {}", watched.join(",")))
            .await;
        client.sync().await;
    }
    // Every limit was reached.
    let last = clients.last_mut().expect("clients");
    last.send("JOIN #one-more").await;
    last.expect_command("405").await;
    last.send("MODE #a19-000 +b more!*@*").await;
    last.expect_command("478").await;

    let grown = rss_bytes(server.pid()).saturating_sub(before);
    let ceiling = 2000 * CHANNEL_COST
        + 20_000 * LIST_ENTRY_COST
        + 20_000 * METADATA_KEY_COST
        + 2000 * MONITOR_ENTRY_COST;
    eprintln!("server-wide state grew RSS by {grown} bytes (ceiling {ceiling})");
    assert!(
        grown <= ceiling,
        "RSS grew by {grown} bytes, over the documented ceiling of {ceiling}"
    );
    drop(clients);
    drop(server);
}

#[tokio::test]
async fn a_burst_of_oper_attempts_from_one_address_gets_five_checks_in_all() {
    let mut config = test_config();
    config.opers = vec![OperCredential::from_password("admin", "secret").expect("hash")];
    let server = TestServer::with_config(config).await;
    let mut clients = Vec::new();
    for i in 0..10 {
        clients.push(server.client(&format!("burst{i}")).await);
    }
    // All at once, before any check has finished.
    for client in &mut clients {
        client.send("OPER admin wrong").await;
    }
    let mut checked = 0;
    for client in &mut clients {
        let reply = client.expect_command("464").await;
        if reply.last() == "Password incorrect" {
            checked += 1;
        } else {
            assert!(
                reply
                    .last()
                    .starts_with("Too many failed password attempts"),
                "{}",
                reply.0
            );
        }
    }
    assert_eq!(checked, 5);
    server.shutdown().await;
}
