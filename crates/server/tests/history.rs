//! Message history (`draft/chathistory`): what relay stores is what CHATHISTORY
//! returns, with the msgid and time its recipients saw; who may read what; paging;
//! redaction; restarts on the same data directory.

use std::sync::Arc;

use palaver_test_support::{Line, TestClient, TestServer, test_config};

const CAPS: &str = "batch message-tags server-time echo-message draft/chathistory";

/// `(msgid, time, source nick, text)` of a PRIVMSG, NOTICE or TAGMSG line.
fn seen(line: &Line) -> (String, String, String, String) {
    let msg = line.msg();
    let tag = |key: &str| msg.tag(key).map(|v| v.into_owned()).unwrap_or_default();
    (tag("msgid"), tag("time"), line.source_nick(), line.last())
}

/// Sends a CHATHISTORY request and returns the messages in its batch, checking the
/// batch framing (`BATCH +ref chathistory <target>` … `BATCH -ref`).
async fn history(client: &mut TestClient, request: &str, target: &str) -> Vec<Line> {
    client.send(request).await;
    let start = client.expect_command("BATCH").await;
    assert_eq!(start.param(1), "chathistory", "{start:?}");
    assert_eq!(start.param(2), target, "{start:?}");
    let reference = start.param(0)[1..].to_owned();
    // Batches opened inside it (a multiline message): their lines carry theirs.
    let mut open = vec![reference.clone()];
    let mut lines = Vec::new();
    loop {
        let line = client.next_line().await.expect("batch continues");
        if line.command() == "BATCH" && line.param(0) == format!("-{reference}") {
            return lines;
        }
        let tag = line.msg().tag("batch").map(|t| t.into_owned());
        assert!(
            tag.as_ref().is_some_and(|t| open.contains(t)),
            "{line:?} is outside the batch"
        );
        if line.command() == "BATCH" && line.param(0).starts_with('+') {
            open.push(line.param(0)[1..].to_owned());
        }
        lines.push(line);
    }
}

/// Registers `nick` with the history capabilities and joins `#h`.
async fn member(server: &TestServer, nick: &str) -> TestClient {
    let mut client = server.client_with_caps(nick, CAPS).await;
    client.send("JOIN #h").await;
    client.expect_command("366").await;
    client
}

/// Sends `text` to `target` and returns what the echo showed.
async fn say(
    client: &mut TestClient,
    target: &str,
    text: &str,
) -> (String, String, String, String) {
    client.send(&format!("PRIVMSG {target} :{text}")).await;
    let nick = client.nick.clone();
    let echo = client
        .expect(|l| l.command() == "PRIVMSG" && l.source_nick() == nick && l.last() == text)
        .await;
    seen(&echo)
}

#[tokio::test]
async fn channel_history_returns_what_members_saw() {
    let server = TestServer::start().await;
    let mut alice = member(&server, "alice").await;
    let mut bob = member(&server, "bob").await;
    alice.sync().await;
    let mut sent = Vec::new();
    for i in 0..5 {
        let echo = say(&mut alice, "#h", &format!("message {i}")).await;
        let delivered = bob
            .expect(|l| l.command() == "PRIVMSG" && l.last() == format!("message {i}"))
            .await;
        assert_eq!(seen(&delivered), echo, "the echo and the delivery agree");
        sent.push(echo);
    }
    let replayed: Vec<_> = history(&mut bob, "CHATHISTORY LATEST #h * 10", "#h")
        .await
        .iter()
        .map(seen)
        .collect();
    assert_eq!(
        replayed, sent,
        "same msgids, times, senders and texts, oldest first"
    );

    // Paging by msgid and by timestamp.
    let before: Vec<_> = history(
        &mut bob,
        &format!("CHATHISTORY BEFORE #h msgid={} 2", sent[3].0),
        "#h",
    )
    .await
    .iter()
    .map(seen)
    .collect();
    assert_eq!(before, sent[1..3]);
    let after: Vec<_> = history(
        &mut bob,
        &format!("CHATHISTORY AFTER #h msgid={} 10", sent[3].0),
        "#h",
    )
    .await
    .iter()
    .map(seen)
    .collect();
    assert_eq!(after, sent[4..]);
    let latest_after: Vec<_> = history(
        &mut bob,
        &format!("CHATHISTORY LATEST #h msgid={} 10", sent[2].0),
        "#h",
    )
    .await
    .iter()
    .map(seen)
    .collect();
    assert_eq!(latest_after, sent[3..]);
    let between: Vec<_> = history(
        &mut bob,
        &format!(
            "CHATHISTORY BETWEEN #h msgid={} msgid={} 10",
            sent[0].0, sent[4].0
        ),
        "#h",
    )
    .await
    .iter()
    .map(seen)
    .collect();
    assert_eq!(between, sent[1..4]);
    let around: Vec<_> = history(
        &mut bob,
        &format!("CHATHISTORY AROUND #h msgid={} 3", sent[2].0),
        "#h",
    )
    .await
    .iter()
    .map(seen)
    .collect();
    assert!(around.contains(&sent[2]), "{around:?}");
    assert_eq!(around.len(), 3);
    let by_time: Vec<_> = history(
        &mut bob,
        &format!("CHATHISTORY AFTER #h timestamp={} 10", sent[4].1),
        "#h",
    )
    .await
    .iter()
    .map(seen)
    .collect();
    assert!(
        by_time.is_empty(),
        "nothing after the last message: {by_time:?}"
    );

    // The limit is honoured.
    let two = history(&mut bob, "CHATHISTORY LATEST #h * 2", "#h").await;
    assert_eq!(two.iter().map(seen).collect::<Vec<_>>(), sent[3..]);
}

#[tokio::test]
async fn only_members_read_a_channel_and_bad_requests_fail_clearly() {
    let server = TestServer::start().await;
    let mut alice = member(&server, "alice").await;
    say(&mut alice, "#h", "members only").await;
    let mut eve = server.client_with_caps("eve", CAPS).await;
    for (request, code) in [
        ("CHATHISTORY LATEST #h * 10", "INVALID_TARGET"),
        ("CHATHISTORY LATEST #nowhere * 10", "INVALID_TARGET"),
        ("CHATHISTORY LATEST #h * 0", "INVALID_PARAMS"),
        ("CHATHISTORY LATEST #h * many", "INVALID_PARAMS"),
        ("CHATHISTORY BEFORE #h * 10", "INVALID_PARAMS"),
        ("CHATHISTORY BEFORE #h yesterday 10", "INVALID_PARAMS"),
        ("CHATHISTORY SIDEWAYS #h * 10", "UNKNOWN_COMMAND"),
        ("CHATHISTORY LATEST #h", "NEED_MORE_PARAMS"),
    ] {
        eve.send(request).await;
        let fail = eve.expect_command("FAIL").await;
        assert_eq!(
            (fail.param(0).as_str(), fail.param(1).as_str()),
            ("CHATHISTORY", code),
            "{request}: {fail:?}"
        );
    }
    // Joining makes it readable, including what was said before.
    eve.send("JOIN #h").await;
    eve.expect_command("366").await;
    let lines = history(&mut eve, "CHATHISTORY LATEST #h * 10", "#h").await;
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].last(), "members only");
}

#[tokio::test]
async fn private_history_is_shared_by_the_two_sides_only() {
    let server = TestServer::start().await;
    let mut alice = server.client_with_caps("alice", CAPS).await;
    let mut bob = server.client_with_caps("bob", CAPS).await;
    let mut carol = server.client_with_caps("carol", CAPS).await;
    let first = say(&mut alice, "bob", "hi bob").await;
    bob.expect(|l| l.last() == "hi bob").await;
    let second = say(&mut bob, "alice", "hi alice").await;
    let latest_time = second.1.clone();
    alice.expect(|l| l.last() == "hi alice").await;

    let from_alice = history(&mut alice, "CHATHISTORY LATEST bob * 10", "bob").await;
    assert_eq!(
        from_alice.iter().map(seen).collect::<Vec<_>>(),
        [first.clone(), second.clone()]
    );
    // Each line names the other side as a delivery would: alice's own message to
    // bob, bob's to alice.
    assert_eq!(from_alice[0].param(0), "bob");
    assert_eq!(from_alice[1].param(0), "alice");
    let from_bob = history(&mut bob, "CHATHISTORY LATEST alice * 10", "alice").await;
    assert_eq!(
        from_bob.iter().map(seen).collect::<Vec<_>>(),
        [first, second]
    );
    // A third party asking about either sees nothing of it.
    assert!(
        history(&mut carol, "CHATHISTORY LATEST bob * 10", "bob")
            .await
            .is_empty()
    );

    // TARGETS lists the conversation (and nothing of carol's).
    alice
        .send("CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 10")
        .await;
    let start = alice.expect_command("BATCH").await;
    assert_eq!(start.param(1), "draft/chathistory-targets");
    let target = alice.expect_command("CHATHISTORY").await;
    assert_eq!(
        (target.param(0).as_str(), target.param(1).as_str()),
        ("TARGETS", "bob")
    );
    assert_eq!(
        target.param(2),
        latest_time,
        "the time of the latest message"
    );
    let end = alice.next_line().await.expect("batch end");
    assert_eq!(end.command(), "BATCH");
}

#[tokio::test]
async fn reactions_are_kept_and_other_tagmsgs_and_statusmsg_are_not() {
    let server = TestServer::start().await;
    let mut alice = member(&server, "alice").await;
    let mut bob = server
        .client_with_caps("bob", &format!("{CAPS} draft/event-playback"))
        .await;
    bob.send("JOIN #h").await;
    bob.expect_command("366").await;
    alice.sync().await;
    let (msgid, ..) = say(&mut alice, "#h", "react to me").await;
    bob.send(&format!("@+draft/react=👍;+draft/reply={msgid} TAGMSG #h"))
        .await;
    bob.send("@+typing=active TAGMSG #h").await;
    bob.send("PRIVMSG @#h :ops only").await;
    bob.sync().await;
    let lines = history(&mut bob, "CHATHISTORY LATEST #h * 10", "#h").await;
    let kinds: Vec<_> = lines.iter().map(|l| l.command().to_owned()).collect();
    assert_eq!(kinds, ["JOIN", "JOIN", "PRIVMSG", "TAGMSG"], "{lines:?}");
    assert_eq!(lines[3].msg().tag("+draft/react").as_deref(), Some("👍"));
    // Without event-playback, the reaction is not replayed (it is an event).
    let plain = history(&mut alice, "CHATHISTORY LATEST #h * 10", "#h").await;
    assert_eq!(
        plain
            .iter()
            .map(|l| l.command().to_owned())
            .collect::<Vec<_>>(),
        ["PRIVMSG"]
    );
}

#[tokio::test]
async fn a_redacted_message_leaves_history() {
    let server = TestServer::start().await;
    let caps =
        "batch message-tags server-time echo-message draft/chathistory draft/message-redaction";
    let mut alice = server.client_with_caps("alice", caps).await;
    alice.send("JOIN #h").await;
    alice.expect_command("366").await;
    let (keep, ..) = say(&mut alice, "#h", "keep me").await;
    let (gone, ..) = say(&mut alice, "#h", "forget me").await;
    alice.send(&format!("REDACT #h {gone}")).await;
    alice.expect_command("REDACT").await;
    let lines = history(&mut alice, "CHATHISTORY LATEST #h * 10", "#h").await;
    assert_eq!(lines.iter().map(|l| seen(l).0).collect::<Vec<_>>(), [keep]);
}

#[tokio::test]
async fn history_survives_a_restart_on_the_same_directory() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let open = || -> Arc<dyn palaver_store::Store> {
        Arc::new(palaver_store::SqliteStore::open(dir.path()).expect("open the store"))
    };
    let mut config = test_config();
    config.store = Some(open());
    let server = TestServer::with_config(config).await;
    let mut alice = member(&server, "alice").await;
    let sent = say(&mut alice, "#h", "still here tomorrow").await;
    server.shutdown().await;

    let mut config = test_config();
    config.store = Some(open());
    let server = TestServer::with_config(config).await;
    let mut alice = member(&server, "alice").await;
    let lines = history(&mut alice, "CHATHISTORY LATEST #h * 10", "#h").await;
    assert_eq!(lines.iter().map(seen).collect::<Vec<_>>(), [sent]);
}

#[tokio::test]
async fn with_history_off_nothing_is_kept_and_chathistory_says_so() {
    let mut config = test_config();
    config.history.enabled = false;
    let server = TestServer::with_config(config).await;
    let mut alice = member(&server, "alice").await;
    say(&mut alice, "#h", "ephemeral").await;
    alice.send("CHATHISTORY LATEST #h * 10").await;
    let fail = alice.expect_command("FAIL").await;
    assert_eq!(fail.param(1), "MESSAGE_ERROR");
}

#[tokio::test]
async fn retention_keeps_the_newest_messages_per_target() {
    let mut config = test_config();
    config.history.retention.max_messages = Some(3);
    config.history.expiry_period = std::time::Duration::from_millis(20);
    let server = TestServer::with_config(config).await;
    let mut alice = member(&server, "alice").await;
    let mut sent = Vec::new();
    for i in 0..6 {
        sent.push(say(&mut alice, "#h", &format!("m{i}")).await);
    }
    // Expiry runs on its own period: ask until it has (bounded by the deadline).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let kept: Vec<_> = history(&mut alice, "CHATHISTORY LATEST #h * 10", "#h")
            .await
            .iter()
            .map(seen)
            .collect();
        if kept.len() == 3 {
            assert_eq!(kept, sent[3..]);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never expired: {kept:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn event_playback_replays_channel_events_to_those_who_ask() {
    let server = TestServer::start().await;
    let events = format!("{CAPS} draft/event-playback");
    let mut alice = server.client_with_caps("alice", &events).await;
    alice.send("JOIN #h").await;
    alice.expect_command("366").await;
    let mut bob = member(&server, "bob").await;
    alice.send("TOPIC #h :the topic").await;
    let topic = alice.expect_command("TOPIC").await;
    say(&mut alice, "#h", "hello").await;
    alice.send("MODE #h +v bob").await;
    alice.send("KICK #h bob :bye").await;
    bob.expect_command("KICK").await;
    bob.send("JOIN #h").await;
    bob.expect_command("366").await;
    bob.send("NICK robert").await;
    bob.send("PART #h :later").await;
    bob.expect_command("PART").await;
    alice.sync().await;

    let lines = history(&mut alice, "CHATHISTORY LATEST #h * 100", "#h").await;
    let replayed: Vec<String> = lines
        .iter()
        .map(|l| {
            let raw = &l.0;
            raw.split_once(' ')
                .map_or(raw.clone(), |(_, rest)| rest.to_owned())
        })
        .collect();
    assert_eq!(
        replayed,
        [
            ":alice!~alice@127.0.0.1 JOIN #h",
            ":bob!~bob@127.0.0.1 JOIN #h",
            ":alice!~alice@127.0.0.1 TOPIC #h :the topic",
            ":alice!~alice@127.0.0.1 PRIVMSG #h :hello",
            ":alice!~alice@127.0.0.1 MODE #h +v bob",
            ":alice!~alice@127.0.0.1 KICK #h bob :bye",
            ":bob!~bob@127.0.0.1 JOIN #h",
            ":bob!~bob@127.0.0.1 NICK robert",
            ":robert!~bob@127.0.0.1 PART #h :later",
        ]
    );
    // The TOPIC its members saw carried the msgid and time replayed.
    assert_eq!(seen(&lines[2]).0, seen(&topic).0);
    assert_eq!(seen(&lines[2]).1, seen(&topic).1);

    // Without event-playback, only the message.
    let mut carol = member(&server, "carol").await;
    let plain = history(&mut carol, "CHATHISTORY LATEST #h * 100", "#h").await;
    let commands: Vec<_> = plain.iter().map(|l| l.command().to_owned()).collect();
    assert_eq!(commands, ["PRIVMSG"]);
}

#[tokio::test]
async fn live_channel_events_carry_the_msgid_and_time_that_history_replays() {
    let server = TestServer::start().await;
    let events = format!("{CAPS} draft/event-playback");
    let mut alice = server.client_with_caps("alice", &events).await;
    alice.send("JOIN #h").await;
    let mut live = vec![alice.expect_command("JOIN").await];
    alice.expect_command("366").await;
    let mut bob = member(&server, "bob").await;
    live.push(alice.expect_command("JOIN").await);
    alice.send("MODE #h +v bob").await;
    live.push(alice.expect_command("MODE").await);
    alice.send("KICK #h bob :bye").await;
    live.push(alice.expect_command("KICK").await);
    bob.expect_command("KICK").await;
    bob.send("JOIN #h").await;
    live.push(alice.expect_command("JOIN").await);
    bob.send("PART #h :later").await;
    live.push(alice.expect_command("PART").await);

    let replayed = history(&mut alice, "CHATHISTORY LATEST #h * 100", "#h").await;
    let ids = |lines: &[Line]| -> Vec<(String, String, String)> {
        lines
            .iter()
            .map(|line| {
                let (msgid, time, nick, _) = seen(line);
                (line.command().to_owned(), msgid, time + " " + &nick)
            })
            .collect()
    };
    assert!(live.iter().all(|line| !seen(line).0.is_empty()), "{live:?}");
    assert_eq!(ids(&live), ids(&replayed));

    // A client without message-tags gets the same events untagged.
    let mut plain = server.client("carol").await;
    plain.send("JOIN #h").await;
    let own = plain.expect_command("JOIN").await;
    assert!(
        own.msg().tag("msgid").is_none() && own.msg().tag("time").is_none(),
        "{own:?}"
    );
}

#[tokio::test]
async fn joiners_are_told_history_is_kept_and_plus_e_turns_it_off() {
    let mut config = test_config();
    config.history.join_notice = true;
    let server = TestServer::with_config(config).await;
    let mut alice = server.client_with_caps("alice", CAPS).await;
    alice.send("JOIN #h").await;
    alice.expect_command("366").await;
    let notice = alice.expect_command("NOTICE").await;
    assert_eq!(notice.param(0), "#h");
    assert!(notice.last().contains("kept"), "{notice:?}");
    say(&mut alice, "#h", "kept").await;

    alice.send("MODE #h +E").await;
    alice.expect_command("MODE").await;
    say(&mut alice, "#h", "not kept").await;
    let mut bob = server.client_with_caps("bob", CAPS).await;
    bob.send("JOIN #h").await;
    bob.expect_command("366").await;
    // No notice for a channel whose history is off: the next line is our PONG.
    let after = bob.sync().await;
    assert!(after.iter().all(|l| l.command() != "NOTICE"), "{after:?}");
    let lines = history(&mut bob, "CHATHISTORY LATEST #h * 10", "#h").await;
    assert_eq!(lines.iter().map(Line::last).collect::<Vec<_>>(), ["kept"]);
}

#[tokio::test]
async fn a_multiline_message_is_kept_as_one_and_replayed_as_its_reader_can_read_it() {
    let server = TestServer::start().await;
    let multi = format!("{CAPS} draft/multiline");
    let mut alice = server.client_with_caps("alice", &multi).await;
    alice.send("JOIN #h").await;
    alice.expect_command("366").await;
    alice.send("BATCH +m draft/multiline #h").await;
    alice.send("@batch=m PRIVMSG #h :first line").await;
    alice.send("@batch=m PRIVMSG #h :second").await;
    alice
        .send("@batch=m;draft/multiline-concat PRIVMSG #h : half")
        .await;
    alice.send("BATCH -m").await;
    let echo = alice.expect_command("BATCH").await;
    let msgid = seen(&echo).0;
    alice
        .expect(|l| l.command() == "BATCH" && l.param(0).starts_with('-'))
        .await;

    // A multiline reader gets the batch back, nested in the chathistory batch.
    let lines = history(&mut alice, "CHATHISTORY LATEST #h * 10", "#h").await;
    let shapes: Vec<_> = lines
        .iter()
        .map(|l| (l.command().to_owned(), l.last()))
        .collect();
    assert_eq!(shapes[0].0, "BATCH");
    assert_eq!(lines[0].param(1), "draft/multiline");
    assert_eq!(
        seen(&lines[0]).0,
        msgid,
        "the batch carries the msgid relayed"
    );
    assert_eq!(
        shapes[1..4],
        [
            ("PRIVMSG".to_owned(), "first line".to_owned()),
            ("PRIVMSG".to_owned(), "second".to_owned()),
            ("PRIVMSG".to_owned(), " half".to_owned()),
        ]
    );
    assert!(
        lines[3].0.contains("draft/multiline-concat"),
        "{:?}",
        lines[3]
    );
    assert_eq!(shapes[4].0, "BATCH");

    // Anyone else gets the lines, the first with the msgid.
    let mut bob = member(&server, "bob").await;
    let lines = history(&mut bob, "CHATHISTORY LATEST #h * 10", "#h").await;
    let texts: Vec<_> = lines.iter().map(Line::last).collect();
    assert_eq!(texts, ["first line", "second", " half"]);
    assert_eq!(seen(&lines[0]).0, msgid);
    assert_eq!(seen(&lines[1]).0, "");
}
