//! IRCv3 message tags and the capabilities built on them: message-tags, server-time,
//! msgid, echo-message, labeled-response (with batch), TAGMSG, away-notify,
//! extended-join, invite-notify, draft/no-implicit-names.

use palaver_test_support::{Line, TestServer};

use crate::channels::{assert_silent, join, pending, src};

fn tag(line: &Line, key: &str) -> Option<String> {
    line.msg().tag(key).map(|v| v.into_owned())
}

#[tokio::test]
async fn message_tags_relay_client_tags_and_msgid_only_to_clients_that_asked() {
    let server = TestServer::start().await;
    let mut alice = server.client_with_caps("alice", "message-tags").await;
    let mut bob = server.client_with_caps("bob", "message-tags").await;
    let mut carol = server.client("carol").await;
    for client in [&mut alice, &mut bob, &mut carol] {
        join(client, "#t").await;
    }
    pending(&mut alice).await;
    pending(&mut bob).await;

    alice
        .send("@+draft/reply=abc;+example.com/x=a\\sb;label=not-relayed PRIVMSG #t :hello")
        .await;
    let at_bob = bob.expect_command("PRIVMSG").await;
    assert_eq!(tag(&at_bob, "+draft/reply").as_deref(), Some("abc"));
    assert_eq!(tag(&at_bob, "+example.com/x").as_deref(), Some("a b"));
    assert_eq!(
        tag(&at_bob, "label"),
        None,
        "server tags from clients are not relayed"
    );
    let msgid = tag(&at_bob, "msgid").expect("msgid on relayed messages");
    assert!(!msgid.is_empty());
    assert!(
        at_bob
            .0
            .ends_with(&format!("{} PRIVMSG #t :hello", src("alice")))
    );

    let at_carol = carol.expect_command("PRIVMSG").await;
    assert_eq!(at_carol.0, format!("{} PRIVMSG #t :hello", src("alice")));

    // Every message gets its own id.
    alice.send("PRIVMSG #t :again").await;
    let again = bob.expect_command("PRIVMSG").await;
    assert_ne!(tag(&again, "msgid"), Some(msgid));
    assert_silent(&mut alice).await;
}

#[tokio::test]
async fn tagmsg_reaches_only_message_tags_clients() {
    let server = TestServer::start().await;
    let mut alice = server.client_with_caps("alice", "message-tags").await;
    let mut bob = server.client_with_caps("bob", "message-tags").await;
    let mut carol = server.client("carol").await;
    for client in [&mut alice, &mut bob, &mut carol] {
        join(client, "#t").await;
    }
    pending(&mut bob).await;
    pending(&mut carol).await;
    alice.send("@+typing=active TAGMSG #t").await;
    let typing = bob.expect_command("TAGMSG").await;
    assert_eq!(tag(&typing, "+typing").as_deref(), Some("active"));
    assert_eq!(typing.param(0), "#t");
    assert_silent(&mut carol).await;

    // Private TAGMSG too.
    alice.send("@+typing=paused TAGMSG bob").await;
    let private = bob.expect_command("TAGMSG").await;
    assert_eq!(private.param(0), "bob");
}

#[tokio::test]
async fn server_time_tags_relayed_messages() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client_with_caps("bob", "server-time").await;
    alice.send("PRIVMSG bob :what time is it").await;
    let line = bob.expect_command("PRIVMSG").await;
    let time = tag(&line, "time").expect("time tag");
    // 2026-11-22T04:48:00.123Z
    assert_eq!(time.len(), 24, "{time}");
    assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    assert_eq!(tag(&line, "msgid"), None, "msgid needs message-tags");
}

#[tokio::test]
async fn echo_message_returns_the_senders_message_to_it() {
    let server = TestServer::start().await;
    let mut alice = server
        .client_with_caps("alice", "echo-message message-tags")
        .await;
    let mut bob = server.client("bob").await;
    join(&mut alice, "#e").await;
    join(&mut bob, "#e").await;
    pending(&mut alice).await;
    alice.send("@+x=1 PRIVMSG #e :echo me").await;
    let echoed = alice.expect_command("PRIVMSG").await;
    assert!(
        echoed
            .0
            .ends_with(&format!("{} PRIVMSG #e :echo me", src("alice")))
    );
    assert_eq!(tag(&echoed, "+x").as_deref(), Some("1"));
    let relayed = bob.expect_command("PRIVMSG").await;
    assert_eq!(relayed.0, format!("{} PRIVMSG #e :echo me", src("alice")));
    // A message to oneself arrives as a delivery and as its echo.
    alice.send("PRIVMSG alice :note to self").await;
    let lines = pending(&mut alice).await;
    assert_eq!(
        lines.iter().filter(|l| l.contains("note to self")).count(),
        2,
        "{lines:#?}"
    );
}

#[tokio::test]
async fn labeled_response_labels_one_reply_batches_several_and_acks_none() {
    let server = TestServer::start().await;
    let mut alice = server
        .client_with_caps("alice", "labeled-response batch message-tags")
        .await;
    let _bob = server.client("bob").await;

    // One reply: labeled itself.
    alice.send("@label=one PING x").await;
    let pong = alice.expect_command("PONG").await;
    assert_eq!(tag(&pong, "label").as_deref(), Some("one"));

    // No reply: ACK.
    alice.send("@label=two PRIVMSG bob :hi").await;
    let ack = alice.expect_command("ACK").await;
    assert_eq!(tag(&ack, "label").as_deref(), Some("two"));

    // Several replies: one batch carrying the label.
    alice.send("@label=three WHOIS bob").await;
    let start = alice.expect_command("BATCH").await;
    assert_eq!(tag(&start, "label").as_deref(), Some("three"));
    assert_eq!(start.param(1), "labeled-response");
    let reference = start.param(0).trim_start_matches('+').to_owned();
    let mut inside = Vec::new();
    loop {
        let line = alice.next_line().await.expect("batch continues");
        if line.command() == "BATCH" {
            assert_eq!(line.param(0), format!("-{reference}"));
            break;
        }
        assert_eq!(tag(&line, "batch"), Some(reference.clone()), "{line:?}");
        inside.push(line.command().to_owned());
    }
    assert_eq!(inside.first().map(String::as_str), Some("311"));
    assert_eq!(inside.last().map(String::as_str), Some("318"));

    // A message to oneself: the delivery is not labeled, its echo is.
    let mut echoing = server
        .client_with_caps("erin", "labeled-response batch echo-message")
        .await;
    echoing.send("@label=five PRIVMSG erin :me").await;
    let first = echoing.expect_command("PRIVMSG").await;
    let second = echoing.expect_command("PRIVMSG").await;
    assert_eq!(
        (tag(&first, "label"), tag(&second, "label").as_deref()),
        (None, Some("five"))
    );

    // Without the capability, labels are ignored.
    let mut carol = server.client("carol").await;
    carol.send("@label=four PING y").await;
    let plain = carol.expect_command("PONG").await;
    assert_eq!(tag(&plain, "label"), None);
}

#[tokio::test]
async fn away_notify_tells_channel_peers_and_joins_carry_away_state() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client_with_caps("bob", "away-notify").await;
    let mut carol = server.client("carol").await;
    for client in [&mut alice, &mut bob, &mut carol] {
        join(client, "#a").await;
    }
    pending(&mut bob).await;
    pending(&mut carol).await;
    alice.send("AWAY :lunch").await;
    let away = bob.expect_command("AWAY").await;
    assert_eq!(away.0, format!("{} AWAY :lunch", src("alice")));
    alice.send("AWAY").await;
    let back = bob.expect_command("AWAY").await;
    assert_eq!(back.0, format!("{} AWAY", src("alice")));
    assert_silent(&mut carol).await;

    // An away user joining: the AWAY follows its JOIN.
    let mut dave = server.client("dave").await;
    dave.send("AWAY :gone").await;
    dave.expect_command("306").await;
    join(&mut dave, "#a").await;
    let lines = pending(&mut bob).await;
    assert_eq!(
        lines,
        vec![
            format!("{} JOIN #a", src("dave")),
            format!("{} AWAY :gone", src("dave")),
        ]
    );
}

#[tokio::test]
async fn extended_join_carries_account_and_realname() {
    let server = TestServer::start().await;
    let mut alice = server.client_with_caps("alice", "extended-join").await;
    let mut bob = server.client("bob").await;
    join(&mut alice, "#x").await;
    pending(&mut alice).await;
    join(&mut bob, "#x").await;
    let seen = alice.expect_command("JOIN").await;
    assert_eq!(seen.0, format!("{} JOIN #x * :Test user bob", src("bob")));
}

#[tokio::test]
async fn invite_notify_shows_invitations_to_other_members() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client_with_caps("bob", "invite-notify").await;
    let mut carol = server.client("carol").await;
    let mut dave = server.client("dave").await;
    for client in [&mut alice, &mut bob, &mut carol] {
        join(client, "#i").await;
    }
    pending(&mut bob).await;
    pending(&mut carol).await;
    alice.send("INVITE dave #i").await;
    dave.expect_command("INVITE").await;
    let notified = bob.expect_command("INVITE").await;
    assert_eq!(notified.0, format!("{} INVITE dave #i", src("alice")));
    assert_silent(&mut carol).await;
}

#[tokio::test]
async fn no_implicit_names_skips_the_names_burst_on_join() {
    let server = TestServer::start().await;
    let mut alice = server
        .client_with_caps("alice", "draft/no-implicit-names")
        .await;
    alice.send("JOIN #n").await;
    let lines = pending(&mut alice).await;
    assert_eq!(lines, vec![format!("{} JOIN #n", src("alice"))]);
}

#[tokio::test]
async fn a_labeled_line_that_is_not_utf8_gets_a_labeled_fail() {
    let server = TestServer::start().await;
    let mut alice = server
        .client_with_caps("alice", "labeled-response batch")
        .await;
    alice
        .send_raw(b"@label=xyz PRIVMSG alice :caf\xe9\r\n")
        .await;
    let fail = alice.expect_command("FAIL").await;
    assert_eq!(tag(&fail, "label").as_deref(), Some("xyz"));
    assert_eq!(
        (fail.param(0), fail.param(1)),
        ("PRIVMSG".to_owned(), "INVALID_UTF8".to_owned())
    );
}

#[tokio::test]
async fn multiline_batches_reach_capable_clients_whole_and_others_line_by_line() {
    let server = TestServer::start().await;
    let caps = "message-tags batch echo-message server-time labeled-response";
    let mut alice = server
        .client_with_caps("alice", &format!("{caps} draft/multiline"))
        .await;
    let mut bob = server
        .client_with_caps("bob", &format!("{caps} draft/multiline"))
        .await;
    let mut carol = server.client_with_caps("carol", caps).await;
    for client in [&mut alice, &mut bob, &mut carol] {
        join(client, "#m").await;
    }
    for client in [&mut alice, &mut bob, &mut carol] {
        pending(client).await;
    }
    alice
        .send("@label=L;+x=1 BATCH +a draft/multiline #m")
        .await;
    alice.send("@batch=a PRIVMSG #m :hello").await;
    alice.send("@batch=a PRIVMSG #m :").await;
    alice.send("@batch=a PRIVMSG #m :wor").await;
    alice
        .send("@batch=a;draft/multiline-concat PRIVMSG #m :ld")
        .await;
    // Nothing is relayed before the batch closes.
    assert_silent(&mut bob).await;
    alice.send("BATCH -a").await;

    let echo = pending(&mut alice).await;
    let echo: Vec<Line> = echo.into_iter().map(Line).collect();
    assert_eq!(echo.len(), 6, "{echo:#?}");
    assert_eq!(tag(&echo[0], "label").as_deref(), Some("L"));
    let msgid = tag(&echo[0], "msgid").expect("batch msgid");

    let relay: Vec<Line> = pending(&mut bob).await.into_iter().map(Line).collect();
    let reference = relay[0].param(0).trim_start_matches('+').to_owned();
    assert_eq!(
        (
            relay[0].command(),
            relay[0].param(1).as_str(),
            relay[0].param(2).as_str()
        ),
        ("BATCH", "draft/multiline", "#m")
    );
    assert_eq!(tag(&relay[0], "msgid"), Some(msgid.clone()));
    assert_eq!(tag(&relay[0], "+x").as_deref(), Some("1"));
    assert_eq!(tag(&relay[0], "label"), None);
    let texts: Vec<String> = relay[1..5].iter().map(Line::last).collect();
    assert_eq!(texts, ["hello", "", "wor", "ld"]);
    assert!(
        relay[1..5]
            .iter()
            .all(|l| tag(l, "batch") == Some(reference.clone()) && tag(l, "msgid").is_none())
    );
    assert!(tag(&relay[4], "draft/multiline-concat").is_some());
    assert_eq!(relay[5].0, format!("{} BATCH -{reference}", src("alice")));

    // Without the capability: each non-blank line, the first with the batch's msgid.
    let fallback: Vec<Line> = pending(&mut carol).await.into_iter().map(Line).collect();
    let texts: Vec<String> = fallback.iter().map(Line::last).collect();
    assert_eq!(texts, ["hello", "wor", "ld"]);
    assert_eq!(tag(&fallback[0], "msgid"), Some(msgid));
    assert!(
        fallback[1..]
            .iter()
            .all(|l| tag(l, "msgid").is_none() && tag(l, "+x").as_deref() == Some("1"))
    );
}

#[tokio::test]
async fn multiline_violations_drop_the_batch_with_fail() {
    let server = TestServer::start().await;
    let mut alice = server
        .client_with_caps("alice", "message-tags batch draft/multiline")
        .await;
    let mut bob = server.client("bob").await;
    alice.send("BATCH +a draft/multiline bob").await;
    alice.send("@batch=zzz PRIVMSG bob :wrong batch").await;
    let fail = alice.expect_command("FAIL").await;
    assert_eq!(
        (fail.param(0), fail.param(1)),
        ("BATCH".to_owned(), "MULTILINE_INVALID".to_owned())
    );
    alice.send("BATCH +b draft/multiline bob").await;
    alice
        .send("@batch=b;draft/multiline-concat PRIVMSG bob :")
        .await;
    let fail = alice.expect_command("FAIL").await;
    assert_eq!(fail.param(1), "MULTILINE_INVALID");
    alice.send("BATCH +c draft/multiline bob").await;
    for _ in 0..33 {
        alice.send("@batch=c PRIVMSG bob :x").await;
    }
    let fail = alice.expect_command("FAIL").await;
    assert_eq!(fail.param(1), "MULTILINE_MAX_LINES");
    assert_silent(&mut bob).await;
}
