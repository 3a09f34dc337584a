//! IRCv3 `draft/message-redaction`: REDACT of one's own messages and, for channel
//! operators, of others'; relaying only to clients with the capability; errors.

use std::time::Duration;

use palaver_test_support::{Line, TestClient, TestServer, test_config};

use crate::channels::{ask, assert_silent, join, pending, src};

const CAPS: &str = "message-tags echo-message draft/message-redaction";

/// The line without its tags.
fn untagged(line: &str) -> &str {
    match line.strip_prefix('@') {
        Some(rest) => rest.split_once(' ').map_or("", |(_, line)| line),
        None => line,
    }
}

/// The `msgid` tag of a line.
fn msgid(line: &Line) -> String {
    line.msg()
        .tag("msgid")
        .map(|v| v.into_owned())
        .unwrap_or_else(|| panic!("no msgid on {line:?}"))
}

/// Sends `line` as `client` and returns the msgid of its echo.
async fn send(client: &mut TestClient, line: &str) -> String {
    client.send(line).await;
    let nick = client.nick.clone();
    let echo = client
        .expect(|l| {
            matches!(l.command(), "PRIVMSG" | "NOTICE" | "TAGMSG") && l.source_nick() == nick
        })
        .await;
    msgid(&echo)
}

/// The next REDACT `client` receives, without tags (which must include a msgid).
async fn next_redact(client: &mut TestClient) -> String {
    let line = client.expect_command("REDACT").await;
    assert!(!msgid(&line).is_empty());
    untagged(&line.0).to_owned()
}

/// alice (operator, with the capability), bob (with it), carol (without it) in `#c`,
/// nothing left unread.
async fn trio(server: &TestServer) -> [TestClient; 3] {
    let mut alice = server.client_with_caps("alice", CAPS).await;
    let mut bob = server.client_with_caps("bob", CAPS).await;
    let mut carol = server
        .client_with_caps("carol", "message-tags echo-message")
        .await;
    for client in [&mut alice, &mut bob, &mut carol] {
        join(client, "#c").await;
    }
    for client in [&mut alice, &mut bob, &mut carol] {
        pending(client).await;
    }
    [alice, bob, carol]
}

#[tokio::test]
async fn a_sender_redacts_its_own_message_for_clients_with_the_capability() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = trio(&server).await;
    let id = send(&mut bob, "PRIVMSG #c :oops").await;
    pending(&mut alice).await;
    pending(&mut carol).await;

    bob.send(&format!("REDACT #c {id}")).await;
    let expected = format!("{} REDACT #c {id}", src("bob"));
    assert_eq!(next_redact(&mut bob).await, expected);
    assert_eq!(next_redact(&mut alice).await, expected);
    // No fallback for clients without the capability.
    assert_silent(&mut carol).await;
    // A message is redacted once.
    assert_eq!(
        ask(&mut bob, &format!("REDACT #c {id}")).await,
        [format!(
            ":test.server FAIL REDACT UNKNOWN_MSGID #c {id} :This message does not exist or is too old"
        )]
    );
    assert_silent(&mut alice).await;
    server.shutdown().await;
}

#[tokio::test]
async fn channel_operators_redact_others_messages_and_others_may_not() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = trio(&server).await;
    let from_alice = send(&mut alice, "PRIVMSG #c :hello").await;
    let from_carol = send(&mut carol, "PRIVMSG #c :spam").await;
    pending(&mut alice).await;
    pending(&mut bob).await;

    assert_eq!(
        ask(&mut bob, &format!("REDACT #c {from_alice}")).await,
        [format!(
            ":test.server FAIL REDACT REDACT_FORBIDDEN #c {from_alice} :You are not authorised to delete this message"
        )]
    );
    assert_silent(&mut alice).await;

    // The operator may, with a reason.
    alice
        .send(&format!("REDACT #c {from_carol} :no spam"))
        .await;
    let expected = format!("{} REDACT #c {from_carol} :no spam", src("alice"));
    assert_eq!(next_redact(&mut alice).await, expected);
    assert_eq!(next_redact(&mut bob).await, expected);
    // Even the author hears nothing without the capability.
    assert_silent(&mut carol).await;
    server.shutdown().await;
}

#[tokio::test]
async fn tagmsg_can_be_redacted_and_the_answer_is_labeled() {
    let server = TestServer::start().await;
    let mut alice = server
        .client_with_caps("alice", &format!("{CAPS} labeled-response"))
        .await;
    join(&mut alice, "#c").await;
    pending(&mut alice).await;
    let id = send(&mut alice, "@+draft/react=x TAGMSG #c").await;
    let answer = ask(&mut alice, &format!("@label=l1 REDACT #c {id} :typo")).await;
    assert_eq!(answer.len(), 1, "{answer:#?}");
    assert!(answer[0].starts_with("@label=l1;msgid="), "{answer:#?}");
    assert_eq!(
        untagged(&answer[0]),
        format!("{} REDACT #c {id} :typo", src("alice"))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn private_messages_are_redacted_by_their_sender_only() {
    let server = TestServer::start().await;
    let mut alice = server.client_with_caps("alice", CAPS).await;
    let mut bob = server.client_with_caps("bob", CAPS).await;
    let mut carol = server.client_with_caps("carol", CAPS).await;
    let id = send(&mut alice, "PRIVMSG bob :secret").await;
    pending(&mut bob).await;

    // The recipient may not; a third party does not even learn it exists.
    assert_eq!(
        ask(&mut bob, &format!("REDACT alice {id}")).await,
        [format!(
            ":test.server FAIL REDACT REDACT_FORBIDDEN alice {id} :You are not authorised to delete this message"
        )]
    );
    for target in ["alice", "bob"] {
        assert_eq!(
            ask(&mut carol, &format!("REDACT {target} {id}")).await,
            [format!(
                ":test.server FAIL REDACT UNKNOWN_MSGID {target} {id} :This message does not exist or is too old"
            )]
        );
    }
    alice.send(&format!("REDACT bob {id}")).await;
    let expected = format!("{} REDACT bob {id}", src("alice"));
    assert_eq!(next_redact(&mut alice).await, expected);
    assert_eq!(next_redact(&mut bob).await, expected);
    assert_silent(&mut carol).await;

    // A note to oneself is redacted once, to oneself.
    let note = send(&mut alice, "PRIVMSG alice :note").await;
    pending(&mut alice).await;
    assert_eq!(
        ask(&mut alice, &format!("REDACT alice {note}"))
            .await
            .iter()
            .map(|l| untagged(l))
            .collect::<Vec<_>>(),
        [format!("{} REDACT alice {note}", src("alice"))]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_target_must_be_a_channel_one_is_in_or_a_user_and_match_the_message() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, _carol] = trio(&server).await;
    join(&mut alice, "#other").await;
    let id = send(&mut alice, "PRIVMSG #c :hi").await;
    pending(&mut alice).await;
    pending(&mut bob).await;
    for target in ["#nowhere", "#other", "nobody"] {
        assert_eq!(
            ask(&mut bob, &format!("REDACT {target} {id}")).await,
            [format!(
                ":test.server FAIL REDACT INVALID_TARGET {target} :You cannot delete messages from {target}"
            )]
        );
    }
    // The message went to #c, not #other nor to bob.
    for target in ["#other", "bob"] {
        assert_eq!(
            ask(&mut alice, &format!("REDACT {target} {id}")).await,
            [format!(
                ":test.server FAIL REDACT UNKNOWN_MSGID {target} {id} :This message does not exist or is too old"
            )]
        );
    }
    assert_eq!(
        ask(&mut alice, "REDACT #c").await,
        [":test.server 461 alice REDACT :Not enough parameters"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn statusmsg_messages_are_unknown_to_members_below_the_status() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, _carol] = trio(&server).await;
    let id = send(&mut alice, "PRIVMSG @#c :ops only").await;
    assert_eq!(
        ask(&mut bob, &format!("REDACT #c {id}")).await,
        [format!(
            ":test.server FAIL REDACT UNKNOWN_MSGID #c {id} :This message does not exist or is too old"
        )]
    );
    alice.send(&format!("REDACT #c {id}")).await;
    assert_eq!(
        next_redact(&mut alice).await,
        format!("{} REDACT #c {id}", src("alice"))
    );
    assert_silent(&mut bob).await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_index_and_the_window_are_bounded() {
    let mut config = test_config();
    config.limits.redact_history = 1;
    let server = TestServer::with_config(config).await;
    let mut alice = server.client_with_caps("alice", CAPS).await;
    join(&mut alice, "#c").await;
    pending(&mut alice).await;
    let first = send(&mut alice, "PRIVMSG #c :one").await;
    let second = send(&mut alice, "PRIVMSG #c :two").await;
    assert_eq!(
        ask(&mut alice, &format!("REDACT #c {first}")).await,
        [format!(
            ":test.server FAIL REDACT UNKNOWN_MSGID #c {first} :This message does not exist or is too old"
        )]
    );
    alice.send(&format!("REDACT #c {second}")).await;
    next_redact(&mut alice).await;
    server.shutdown().await;

    let mut config = test_config();
    config.limits.redact_window = Duration::ZERO;
    let server = TestServer::with_config(config).await;
    let mut alice = server.client_with_caps("alice", CAPS).await;
    join(&mut alice, "#c").await;
    pending(&mut alice).await;
    let id = send(&mut alice, "PRIVMSG #c :too late").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        ask(&mut alice, &format!("REDACT #c {id}")).await,
        [format!(
            ":test.server FAIL REDACT REDACT_WINDOW_EXPIRED #c {id} 0 :You can no longer edit this message"
        )]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_multiline_message_is_redacted_by_its_batch_msgid() {
    let server = TestServer::start().await;
    let mut alice = server
        .client_with_caps("alice", &format!("{CAPS} batch draft/multiline"))
        .await;
    join(&mut alice, "#c").await;
    pending(&mut alice).await;
    for line in [
        "BATCH +m draft/multiline #c",
        "@batch=m PRIVMSG #c :one",
        "@batch=m PRIVMSG #c :two",
        "BATCH -m",
    ] {
        alice.send(line).await;
    }
    let start = alice
        .expect(|l| l.command() == "BATCH" && l.param(0).starts_with('+'))
        .await;
    let id = msgid(&start);
    pending(&mut alice).await;
    alice.send(&format!("REDACT #c {id}")).await;
    assert_eq!(
        next_redact(&mut alice).await,
        format!("{} REDACT #c {id}", src("alice"))
    );
    server.shutdown().await;
}
