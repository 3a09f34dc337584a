//! RENAME (IRCv3 `draft/channel-rename`): the RENAME line for members with the
//! capability, PART and JOIN (with the join burst) for the others, the channel
//! working under its new name only, and every refusal.

use palaver_test_support::{TestClient, TestServer};

use crate::channels::{ask, assert_silent, commands, join, pending, src};

const CAP: &str = "draft/channel-rename";

/// `alice` (with the capability, operator) and `bob` (without) in `#old`, whose
/// topic is set; nothing left unread.
async fn pair(server: &TestServer) -> (TestClient, TestClient) {
    let mut alice = server.client_with_caps("alice", CAP).await;
    join(&mut alice, "#old").await;
    let mut bob = server.client("bob").await;
    join(&mut bob, "#old").await;
    ask(&mut alice, "TOPIC #old :the topic").await;
    pending(&mut alice).await;
    pending(&mut bob).await;
    (alice, bob)
}

#[tokio::test]
async fn rename_is_rename_with_the_cap_and_part_join_without() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = pair(&server).await;

    assert_eq!(
        ask(&mut alice, "RENAME #old #new :tidier").await,
        [format!("{} RENAME #old #new :tidier", src("alice"))]
    );
    let lines = pending(&mut bob).await;
    assert_eq!(
        commands(&lines),
        ["PART", "JOIN", "332", "333", "353", "366"],
        "{lines:#?}"
    );
    assert_eq!(
        lines[0],
        format!("{} PART #old :Renamed to #new: tidier", src("bob"))
    );
    assert_eq!(lines[1], format!("{} JOIN #new", src("bob")));
    assert_eq!(lines[2], ":test.server 332 bob #new :the topic");
    assert!(
        lines[4].starts_with(":test.server 353 bob = #new :"),
        "{lines:#?}"
    );
    assert!(
        lines[4].contains("@alice") && lines[4].contains("bob"),
        "{lines:#?}"
    );

    // Without a reason, the RENAME still has three parameters.
    assert_eq!(
        ask(&mut alice, "RENAME #new #newer").await,
        [format!("{} RENAME #new #newer :", src("alice"))]
    );
    let lines = pending(&mut bob).await;
    assert_eq!(
        lines[0],
        format!("{} PART #new :Renamed to #newer", src("bob"))
    );
}

#[tokio::test]
async fn a_renamer_without_the_cap_gets_part_and_join_too() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    join(&mut alice, "#old").await;
    let mut bob = server.client_with_caps("bob", CAP).await;
    join(&mut bob, "#old").await;
    pending(&mut alice).await;

    let lines = ask(&mut alice, "RENAME #old #new").await;
    assert_eq!(
        commands(&lines),
        ["PART", "JOIN", "353", "366"],
        "{lines:#?}"
    );
    assert_eq!(
        pending(&mut bob).await,
        [format!("{} RENAME #old #new :", src("alice"))]
    );
}

#[tokio::test]
async fn the_new_name_works_and_the_old_one_is_gone() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = pair(&server).await;
    ask(&mut alice, "RENAME #old #new :moving").await;
    pending(&mut bob).await;

    alice.send("PRIVMSG #new :hello").await;
    let line = bob.expect_command("PRIVMSG").await;
    assert_eq!(line.0, format!("{} PRIVMSG #new :hello", src("alice")));
    let lines = ask(&mut alice, "MODE #new +m").await;
    assert_eq!(lines, [format!("{} MODE #new +m", src("alice"))]);
    pending(&mut bob).await;
    let lines = ask(&mut alice, "TOPIC #new :renamed").await;
    assert_eq!(lines, [format!("{} TOPIC #new :renamed", src("alice"))]);
    pending(&mut bob).await;
    // The channel kept its members' status: bob, not voiced, is muted by +m.
    let lines = ask(&mut bob, "PRIVMSG #new :hi").await;
    assert_eq!(commands(&lines), ["404"], "{lines:#?}");

    let lines = ask(&mut alice, "PRIVMSG #old :hello").await;
    assert_eq!(commands(&lines), ["401"], "{lines:#?}");
    let lines = ask(&mut alice, "MODE #old").await;
    assert_eq!(commands(&lines), ["403"], "{lines:#?}");
    let lines = ask(&mut alice, "TOPIC #old").await;
    assert_eq!(commands(&lines), ["403"], "{lines:#?}");
    let lines = ask(&mut alice, "LIST").await;
    assert!(lines.iter().any(|l| l.contains(" #new ")), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("#old")), "{lines:#?}");
    // Leaving the new name works (the client's channel set was updated).
    let lines = ask(&mut bob, "PART #new").await;
    assert_eq!(lines, [format!("{} PART #new", src("bob"))]);
    let lines = ask(&mut bob, "PART #old").await;
    assert_eq!(commands(&lines), ["403"], "{lines:#?}");
}

#[tokio::test]
async fn rename_refusals() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = pair(&server).await;
    let mut carol = server.client("carol").await;
    join(&mut carol, "#taken").await;
    pending(&mut alice).await;

    let fail = |code: &str, new: &str, text: &str| {
        vec![format!(
            ":test.server FAIL RENAME {code} #old {new} :{text}"
        )]
    };
    assert_eq!(
        ask(&mut alice, "RENAME #old #taken").await,
        fail(
            "CHANNEL_NAME_IN_USE",
            "#taken",
            "A channel named #taken already exists"
        )
    );
    assert_eq!(
        ask(&mut alice, "RENAME #old #TAKEN").await,
        fail(
            "CHANNEL_NAME_IN_USE",
            "#TAKEN",
            "A channel named #TAKEN already exists"
        )
    );
    assert_eq!(
        ask(&mut alice, "RENAME #old &old").await,
        fail(
            "CANNOT_RENAME",
            "&old",
            "A channel's type (the first character of its name) cannot change"
        )
    );
    assert_eq!(
        ask(&mut alice, "RENAME #old #a,b").await,
        fail("CANNOT_RENAME", "#a,b", "#a,b is not a valid channel name")
    );
    assert_eq!(
        ask(&mut alice, "RENAME #old #old").await,
        fail("CANNOT_RENAME", "#old", "The channel is already named #old")
    );
    assert_eq!(
        ask(&mut bob, "RENAME #old #new").await,
        [":test.server 482 bob #old :You're not channel operator"]
    );
    assert_eq!(
        ask(&mut carol, "RENAME #old #new").await,
        [":test.server 442 carol #old :You're not on that channel"]
    );
    assert_eq!(
        ask(&mut alice, "RENAME #nowhere #new").await,
        [":test.server 403 alice #nowhere :No such channel"]
    );
    assert_eq!(
        ask(&mut alice, "RENAME #old").await,
        [":test.server 461 alice RENAME :Not enough parameters"]
    );
    // Nothing happened to anyone.
    assert_silent(&mut bob).await;
    assert_silent(&mut carol).await;
    let lines = ask(&mut alice, "NAMES #old").await;
    assert_eq!(commands(&lines), ["353", "366"], "{lines:#?}");
}

#[tokio::test]
async fn a_change_of_case_only_changes_the_spelling() {
    let server = TestServer::start().await;
    let mut alice = server.client_with_caps("alice", CAP).await;
    join(&mut alice, "#chan").await;
    let mut bob = server.client("bob").await;
    join(&mut bob, "#chan").await;
    pending(&mut alice).await;

    assert_eq!(
        ask(&mut alice, "RENAME #chan #Chan").await,
        [format!("{} RENAME #chan #Chan :", src("alice"))]
    );
    let lines = pending(&mut bob).await;
    assert_eq!(
        lines[0],
        format!("{} PART #chan :Renamed to #Chan", src("bob"))
    );
    assert_eq!(lines[1], format!("{} JOIN #Chan", src("bob")));
    let lines = ask(&mut bob, "NAMES #chan").await;
    assert!(
        lines[0].starts_with(":test.server 353 bob = #Chan :"),
        "{lines:#?}"
    );
    alice.send("PRIVMSG #CHAN :still here").await;
    let line = bob.expect_command("PRIVMSG").await;
    assert_eq!(line.param(0), "#CHAN", "{line:?}");
    assert_eq!(line.last(), "still here");
}

#[tokio::test]
async fn invitations_follow_the_channel() {
    let server = TestServer::start().await;
    let (mut alice, mut bob) = pair(&server).await;
    let mut carol = server.client("carol").await;
    ask(&mut alice, "MODE #old +i").await;
    ask(&mut alice, "INVITE carol #old").await;
    pending(&mut bob).await;
    pending(&mut carol).await;

    ask(&mut alice, "RENAME #old #new").await;
    pending(&mut bob).await;
    let lines = ask(&mut carol, "INVITE").await;
    assert_eq!(lines[0], ":test.server 336 carol #new", "{lines:#?}");
    join(&mut carol, "#new").await;
}

#[tokio::test]
async fn a_registered_channel_is_not_renamed_and_its_name_not_taken() {
    let server = TestServer::start().await;
    let mut alice = server.client_with_caps("alice", CAP).await;
    let replies = ask(&mut alice, "REGISTER * * correct-horse").await;
    assert!(replies[0].contains("REGISTER SUCCESS"), "{replies:#?}");
    join(&mut alice, "#reg").await;
    let replies = ask(&mut alice, "PRIVMSG ChanServ :REGISTER #reg").await;
    assert!(replies[0].contains("is now registered"), "{replies:#?}");

    assert_eq!(
        ask(&mut alice, "RENAME #reg #other").await,
        [
            ":test.server FAIL RENAME CANNOT_RENAME #reg #other :#reg is registered with \
          ChanServ; drop its registration first (/msg ChanServ DROP #reg)"
        ]
    );
    assert_eq!(
        ask(&mut alice, "RENAME #reg #Reg").await,
        [
            ":test.server FAIL RENAME CANNOT_RENAME #reg #Reg :#reg is registered with \
          ChanServ; drop its registration first (/msg ChanServ DROP #reg)"
        ]
    );

    // Once empty, the registered channel ends, but its name stays taken.
    ask(&mut alice, "PART #reg").await;
    join(&mut alice, "#plain").await;
    assert_eq!(
        ask(&mut alice, "RENAME #plain #REG").await,
        [
            ":test.server FAIL RENAME CHANNEL_NAME_IN_USE #plain #REG :#REG is registered with ChanServ"
        ]
    );
}
