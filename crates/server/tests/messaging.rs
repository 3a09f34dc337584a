//! PRIVMSG and NOTICE: who receives what, who does not, and the error replies.

use palaver_test_support::TestServer;

use crate::channels::{ask, assert_silent, clients, in_channel, pending, src};

#[tokio::test]
async fn channel_message_reaches_every_other_member_but_not_the_sender() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] =
        in_channel(&server, "#lobby", ["alice", "bob", "carol"]).await;
    let mut dave = server.client("dave").await;

    assert!(
        ask(&mut alice, "PRIVMSG #lobby :hello, world")
            .await
            .is_empty()
    );
    let line = format!("{} PRIVMSG #lobby :hello, world", src("alice"));
    assert_eq!(pending(&mut bob).await, [line.as_str()]);
    assert_eq!(pending(&mut carol).await, [line]);
    assert_silent(&mut dave).await;

    // NOTICE travels the same way; the target is named as the sender wrote it.
    assert!(ask(&mut bob, "NOTICE #LOBBY :psst").await.is_empty());
    let line = format!("{} NOTICE #LOBBY :psst", src("bob"));
    assert_eq!(pending(&mut alice).await, [line.as_str()]);
    assert_eq!(pending(&mut carol).await, [line]);
    assert_silent(&mut dave).await;
    server.shutdown().await;
}

#[tokio::test]
async fn private_message_reaches_only_its_target() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] =
        in_channel(&server, "#lobby", ["alice", "bob", "carol"]).await;

    assert!(ask(&mut alice, "PRIVMSG BOB :just you").await.is_empty());
    assert_eq!(
        pending(&mut bob).await,
        [format!("{} PRIVMSG bob :just you", src("alice"))]
    );
    assert_silent(&mut carol).await;

    assert!(ask(&mut bob, "NOTICE alice :noted").await.is_empty());
    assert_eq!(
        pending(&mut alice).await,
        [format!("{} NOTICE alice :noted", src("bob"))]
    );
    assert_silent(&mut carol).await;
    server.shutdown().await;
}

#[tokio::test]
async fn several_targets_in_one_message() {
    let server = TestServer::start().await;
    let [mut alice, mut carol] = in_channel(&server, "#a", ["alice", "carol"]).await;
    let mut bob = server.client("bob").await;

    assert_eq!(
        ask(&mut alice, "PRIVMSG #a,bob,nobody :hi").await,
        [":test.server 401 alice nobody :No such nick/channel"]
    );
    assert_eq!(
        pending(&mut carol).await,
        [format!("{} PRIVMSG #a :hi", src("alice"))]
    );
    assert_eq!(
        pending(&mut bob).await,
        [format!("{} PRIVMSG bob :hi", src("alice"))]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_targets_are_401() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    assert_eq!(
        ask(&mut alice, "PRIVMSG nobody :hi").await,
        [":test.server 401 alice nobody :No such nick/channel"]
    );
    assert_eq!(
        ask(&mut alice, "PRIVMSG #nowhere :hi").await,
        [":test.server 401 alice #nowhere :No such nick/channel"]
    );
    // A connection that has not registered is no one to talk to.
    let mut stranger = server.connect().await;
    stranger.send("NICK ghost").await;
    stranger.sync().await;
    assert_eq!(
        ask(&mut alice, "PRIVMSG ghost :boo").await,
        [":test.server 401 alice ghost :No such nick/channel"]
    );
    assert_silent(&mut stranger).await;
    server.shutdown().await;
}

#[tokio::test]
async fn cannot_send_to_channel_is_404() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] =
        in_channel(&server, "#lobby", ["alice", "bob", "carol"]).await;
    let mut dave = server.client("dave").await;

    // +n (the default): outsiders cannot send.
    assert_eq!(
        ask(&mut dave, "PRIVMSG #lobby :let me in").await,
        [":test.server 404 dave #lobby :Cannot send to channel (no external messages)"]
    );
    assert_silent(&mut alice).await;
    // -n: they can.
    ask(&mut alice, "MODE #lobby -n").await;
    assert!(
        ask(&mut dave, "PRIVMSG #lobby :from outside")
            .await
            .is_empty()
    );
    assert_eq!(
        pending(&mut bob).await,
        [
            format!("{} MODE #lobby -n", src("alice")),
            format!("{} PRIVMSG #lobby :from outside", src("dave")),
        ]
    );

    // +m: only voiced members and operators speak.
    ask(&mut alice, "MODE #lobby +mv carol").await;
    bob.sync().await;
    carol.sync().await;
    assert_eq!(
        ask(&mut bob, "PRIVMSG #lobby :can I?").await,
        [":test.server 404 bob #lobby :Cannot send to channel (+m)"]
    );
    assert!(ask(&mut carol, "PRIVMSG #lobby :I can").await.is_empty());
    alice.sync().await;
    assert!(ask(&mut alice, "PRIVMSG #lobby :so can I").await.is_empty());
    assert_eq!(
        pending(&mut bob).await,
        [
            format!("{} PRIVMSG #lobby :I can", src("carol")),
            format!("{} PRIVMSG #lobby :so can I", src("alice")),
        ]
    );
    ask(&mut alice, "MODE #lobby -m").await;

    // Banned members cannot speak, even though they are in the channel.
    ask(&mut alice, "MODE #lobby +b bob").await;
    bob.sync().await;
    carol.sync().await;
    assert_eq!(
        ask(&mut bob, "PRIVMSG #lobby :am I banned?").await,
        [":test.server 404 bob #lobby :Cannot send to channel (+b)"]
    );
    assert_silent(&mut alice).await;
    assert_silent(&mut carol).await;
    server.shutdown().await;
}

#[tokio::test]
async fn missing_recipient_or_text_is_411_or_412() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = clients(&server, ["alice", "bob"]).await;
    assert_eq!(
        ask(&mut alice, "PRIVMSG").await,
        [":test.server 411 alice :No recipient given (PRIVMSG)"]
    );
    assert_eq!(
        ask(&mut alice, "PRIVMSG bob").await,
        [":test.server 412 alice :No text to send"]
    );
    assert_eq!(
        ask(&mut alice, "PRIVMSG bob :").await,
        [":test.server 412 alice :No text to send"]
    );
    assert_silent(&mut bob).await;
    server.shutdown().await;
}

#[tokio::test]
async fn more_than_maxtargets_is_407_and_delivers_nothing() {
    let server = TestServer::start().await;
    let [mut alice, mut b1, mut b2, mut b3, mut b4, mut b5] =
        clients(&server, ["alice", "b1", "b2", "b3", "b4", "b5"]).await;

    assert_eq!(
        ask(&mut alice, "PRIVMSG b1,b2,b3,b4,b5 :spam").await,
        [":test.server 407 alice b5 :Too many targets"]
    );
    for client in [&mut b1, &mut b2, &mut b3, &mut b4, &mut b5] {
        assert_silent(client).await;
    }
    // Exactly MAXTARGETS=4 is fine.
    assert!(ask(&mut alice, "PRIVMSG b1,b2,b3,b4 :hi").await.is_empty());
    for client in [&mut b1, &mut b2, &mut b3, &mut b4] {
        let nick = client.nick.clone();
        assert_eq!(
            pending(client).await,
            [format!("{} PRIVMSG {nick} :hi", src("alice"))]
        );
    }
    assert_silent(&mut b5).await;
    server.shutdown().await;
}

#[tokio::test]
async fn notice_never_produces_error_replies() {
    let server = TestServer::start().await;
    let [mut alice] = in_channel(&server, "#lobby", ["alice"]).await;
    ask(&mut alice, "MODE #lobby +m").await;
    let [mut bob, mut carol, mut dave, mut erin] =
        clients(&server, ["bob", "carol", "dave", "erin"]).await;
    ask(&mut bob, "AWAY :not here").await;

    for line in [
        "NOTICE",
        "NOTICE bob",
        "NOTICE bob :",
        "NOTICE nobody :x",
        "NOTICE #nowhere :x",
        "NOTICE #lobby :outsider",
        "NOTICE bob,carol,dave,erin,alice :too many",
    ] {
        assert!(ask(&mut carol, line).await.is_empty(), "{line}");
    }
    // Nothing was delivered either.
    for client in [&mut alice, &mut bob, &mut dave, &mut erin] {
        assert_silent(client).await;
    }
    // And no RPL_AWAY for a NOTICE to an away user.
    assert!(ask(&mut carol, "NOTICE bob :fyi").await.is_empty());
    assert_eq!(
        pending(&mut bob).await,
        [format!("{} NOTICE bob :fyi", src("carol"))]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn messaging_an_away_user_answers_rpl_away() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = in_channel(&server, "#lobby", ["alice", "bob"]).await;
    ask(&mut bob, "AWAY :gone fishing").await;

    assert_eq!(
        ask(&mut alice, "PRIVMSG bob :are you there?").await,
        [":test.server 301 alice bob :gone fishing"]
    );
    assert_eq!(
        pending(&mut bob).await,
        [format!("{} PRIVMSG bob :are you there?", src("alice"))]
    );
    // Channel messages do not.
    assert!(ask(&mut alice, "PRIVMSG #lobby :anyone?").await.is_empty());
    bob.sync().await;
    // Back again: no more 301.
    ask(&mut bob, "AWAY").await;
    assert!(
        ask(&mut alice, "PRIVMSG bob :welcome back")
            .await
            .is_empty()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn statusmsg_reaches_only_members_with_that_status() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol, mut dave] =
        in_channel(&server, "#lobby", ["alice", "bob", "carol", "dave"]).await;
    ask(&mut alice, "MODE #lobby +ov bob carol").await;
    for client in [&mut bob, &mut carol, &mut dave] {
        client.sync().await;
    }

    assert!(
        ask(&mut alice, "PRIVMSG @#lobby :ops only")
            .await
            .is_empty()
    );
    assert_eq!(
        pending(&mut bob).await,
        [format!("{} PRIVMSG @#lobby :ops only", src("alice"))]
    );
    assert_silent(&mut carol).await;
    assert_silent(&mut dave).await;

    // `+#chan` reaches voiced members and operators.
    assert!(
        ask(&mut dave, "NOTICE +#lobby :voices and ops")
            .await
            .is_empty()
    );
    let line = format!("{} NOTICE +#lobby :voices and ops", src("dave"));
    assert_eq!(pending(&mut alice).await, [line.as_str()]);
    assert_eq!(pending(&mut bob).await, [line.as_str()]);
    assert_eq!(pending(&mut carol).await, [line]);
    server.shutdown().await;
}

#[tokio::test]
async fn relayed_long_messages_stay_within_512_bytes() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = in_channel(&server, "#lobby", ["alice", "bob"]).await;

    // The longest line a client may send (510 bytes + CRLF); relayed with the
    // sender's full source in front, it would exceed the limit unless cut.
    for filler in ["x", "é"] {
        let prefix = "PRIVMSG #lobby :";
        let mut text = filler.repeat((510 - prefix.len()) / filler.len());
        while prefix.len() + text.len() < 510 {
            text.push('y');
        }
        let line = format!("{prefix}{text}");
        assert_eq!(line.len(), 510);
        alice.send(&line).await;

        let raw = bob.next_raw_line().await.expect("bob gets the message");
        assert!(raw.len() <= 510, "{} bytes + CRLF > 512", raw.len());
        let relayed = String::from_utf8(raw).expect("cut on a character boundary");
        let head = format!("{} PRIVMSG #lobby :", src("alice"));
        let body = relayed.strip_prefix(&head).expect("relayed as a PRIVMSG");
        assert!(!body.is_empty() && text.starts_with(body), "{relayed}");
        assert_silent(&mut alice).await;
    }
    server.shutdown().await;
}
