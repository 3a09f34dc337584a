//! Who may get into a channel and who may learn that it exists: whose INVITE gets
//! past `+b`, `+k` and `+l`; secret (`+s`) channels answering outsiders exactly as
//! missing ones do; private (`+p`) channels.

use palaver_test_support::{TestClient, TestServer};

use crate::channels::{ask, assert_silent, in_channel, pending, src};

/// `#chan` with its operator `chanop` and a plain member `carol`, after `chanop` set
/// `modes` on it; and `bar`, outside.
async fn guarded(server: &TestServer, modes: &str) -> [TestClient; 3] {
    let [mut chanop, mut carol] = in_channel(server, "#chan", ["chanop", "carol"]).await;
    ask(&mut chanop, &format!("MODE #chan {modes}")).await;
    carol.sync().await;
    let bar = server.client("bar").await;
    [chanop, carol, bar]
}

/// A plain member's INVITE reaches `bar` but does not get it past whatever `modes`
/// set (`bar` gets `refusal`), nor leave a pending invitation; the operator's does.
async fn only_an_operators_invitation_lifts(modes: &str, refusal: &str) {
    let server = TestServer::start().await;
    let [mut chanop, mut carol, mut bar] = guarded(&server, modes).await;

    // Any member may invite to a channel that is not +i: it is a notice.
    assert_eq!(
        ask(&mut carol, "INVITE bar #chan").await,
        [":test.server 341 carol bar #chan"]
    );
    assert_eq!(
        pending(&mut bar).await,
        [format!("{} INVITE bar #chan", src("carol"))]
    );
    assert_eq!(ask(&mut bar, "JOIN #chan sesame-not").await, [refusal]);
    assert_eq!(
        ask(&mut bar, "INVITE").await,
        [":test.server 337 bar :End of /INVITE list"]
    );
    assert_silent(&mut chanop).await;

    // The operator's invitation opens the door, for one join.
    ask(&mut chanop, "INVITE bar #chan").await;
    bar.sync().await;
    assert_eq!(
        ask(&mut bar, "JOIN #chan").await[0],
        format!("{} JOIN #chan", src("bar"))
    );
    ask(&mut bar, "PART #chan").await;
    assert_eq!(ask(&mut bar, "JOIN #chan").await, [refusal]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_plain_members_invitation_does_not_lift_a_ban() {
    only_an_operators_invitation_lifts(
        "+b bar",
        ":test.server 474 bar #chan :Cannot join channel (+b)",
    )
    .await;
}

#[tokio::test]
async fn a_plain_members_invitation_does_not_lift_the_limit() {
    only_an_operators_invitation_lifts(
        "+l 2",
        ":test.server 471 bar #chan :Cannot join channel (+l)",
    )
    .await;
}

#[tokio::test]
async fn a_plain_members_invitation_does_not_lift_the_key() {
    only_an_operators_invitation_lifts(
        "+k sesame",
        ":test.server 475 bar #chan :Cannot join channel (+k)",
    )
    .await;
}

#[tokio::test]
async fn a_plain_members_invitation_does_not_survive_plus_i() {
    let server = TestServer::start().await;
    let [mut chanop, mut carol, mut bar] = guarded(&server, "-t").await;
    ask(&mut carol, "INVITE bar #chan").await;
    bar.sync().await;
    // Closing the channel afterwards: carol could not have invited bar into it.
    ask(&mut chanop, "MODE #chan +i").await;
    assert_eq!(
        ask(&mut bar, "JOIN #chan").await,
        [":test.server 473 bar #chan :Cannot join channel (+i)"]
    );
    server.shutdown().await;
}

/// `#hidden` (`+s`, with `alice` in it) and `dave` outside; `#nowhere` does not exist.
async fn secret_channel(server: &TestServer) -> [TestClient; 2] {
    let [mut alice] = in_channel(server, "#hidden", ["alice"]).await;
    ask(&mut alice, "MODE #hidden +s").await;
    let dave = server.client("dave").await;
    [alice, dave]
}

/// Sends `command` (with `{}` for the channel) from `dave` about `#hidden` and about
/// `#nowhere`: the answers must be the same but for the name, and be `expected`.
async fn answered_as_missing(dave: &mut TestClient, command: &str, expected: &[&str]) {
    let secret = ask(dave, &command.replace("{}", "#hidden")).await;
    let missing = ask(dave, &command.replace("{}", "#nowhere")).await;
    let secret: Vec<String> = secret
        .iter()
        .map(|line| line.replace("#hidden", "#nowhere"))
        .collect();
    assert_eq!(secret, missing, "{command}");
    assert_eq!(missing, expected, "{command}");
}

#[tokio::test]
async fn mode_on_a_secret_channel_answers_outsiders_as_a_missing_one() {
    let server = TestServer::start().await;
    let [mut alice, mut dave] = secret_channel(&server).await;
    let missing = [":test.server 403 dave #nowhere :No such channel"];
    for command in [
        "MODE {}",
        "MODE {} +m",
        "MODE {} b",
        "MODE {} +b x",
        "MODE {} e",
    ] {
        answered_as_missing(&mut dave, command, &missing).await;
    }
    assert_silent(&mut alice).await;
    // Members still see it.
    assert_eq!(
        ask(&mut alice, "MODE #hidden").await[0],
        ":test.server 324 alice #hidden +nst"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn topic_on_a_secret_channel_answers_outsiders_as_a_missing_one() {
    let server = TestServer::start().await;
    let [mut alice, mut dave] = secret_channel(&server).await;
    ask(&mut alice, "TOPIC #hidden :hush").await;
    let missing = [":test.server 403 dave #nowhere :No such channel"];
    answered_as_missing(&mut dave, "TOPIC {}", &missing).await;
    answered_as_missing(&mut dave, "TOPIC {} :mine", &missing).await;
    assert_silent(&mut alice).await;
    server.shutdown().await;
}

#[tokio::test]
async fn part_kick_and_invite_on_a_secret_channel_answer_outsiders_as_a_missing_one() {
    let server = TestServer::start().await;
    let [mut alice, mut dave] = secret_channel(&server).await;
    let missing = [":test.server 403 dave #nowhere :No such channel"];
    for command in ["PART {}", "KICK {} alice", "INVITE alice {}"] {
        answered_as_missing(&mut dave, command, &missing).await;
    }
    assert_silent(&mut alice).await;
    server.shutdown().await;
}

#[tokio::test]
async fn messages_refused_by_a_secret_channel_answer_outsiders_as_a_missing_one() {
    let server = TestServer::start().await;
    let [mut alice, mut dave] = secret_channel(&server).await;
    let missing = [":test.server 401 dave #nowhere :No such nick/channel"];
    // +n refuses outsiders.
    answered_as_missing(&mut dave, "PRIVMSG {} :hi", &missing).await;
    answered_as_missing(
        &mut dave,
        "PRIVMSG @{} :hi",
        &[":test.server 401 dave @#nowhere :No such nick/channel"],
    )
    .await;
    // So does a ban, once the channel takes messages from outside.
    ask(&mut alice, "MODE #hidden -n+b dave").await;
    answered_as_missing(&mut dave, "PRIVMSG {} :hi", &missing).await;
    assert_silent(&mut alice).await;
    // Members still get the real reason.
    ask(&mut alice, "MODE #hidden +m").await;
    let mut bob = server.client("bob").await;
    ask(&mut bob, "JOIN #hidden").await;
    assert_eq!(
        ask(&mut bob, "PRIVMSG #hidden :hi").await,
        [":test.server 404 bob #hidden :Cannot send to channel (+m)"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn metadata_of_a_secret_channel_answers_outsiders_as_a_missing_one() {
    let server = TestServer::start().await;
    let [mut alice, mut dave] = secret_channel(&server).await;
    answered_as_missing(
        &mut dave,
        "METADATA {} GET url",
        &[":test.server FAIL METADATA INVALID_TARGET #nowhere :Invalid metadata target"],
    )
    .await;
    assert_silent(&mut alice).await;
    server.shutdown().await;
}

#[tokio::test]
async fn private_mode_is_set_shown_and_unset() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = in_channel(&server, "#c", ["alice", "bob"]).await;
    let mut dave = server.client("dave").await;

    let set = format!("{} MODE #c +p", src("alice"));
    assert_eq!(ask(&mut alice, "MODE #c +p").await, [set.as_str()]);
    assert_eq!(pending(&mut bob).await, [set]);
    // Setting it again changes nothing and announces nothing.
    assert!(ask(&mut alice, "MODE #c +p").await.is_empty());
    assert_eq!(
        ask(&mut alice, "MODE #c").await[0],
        ":test.server 324 alice #c +npt"
    );
    // Unlike +s, +p does not hide the channel from one who names it.
    assert_eq!(
        ask(&mut dave, "MODE #c").await[0],
        ":test.server 324 dave #c +npt"
    );
    assert_eq!(
        ask(&mut bob, "MODE #c -p").await,
        [":test.server 482 bob #c :You're not channel operator"]
    );
    let unset = format!("{} MODE #c -p", src("alice"));
    assert_eq!(ask(&mut alice, "MODE #c -p").await, [unset.as_str()]);
    assert_eq!(pending(&mut bob).await, [unset]);
    assert_eq!(
        ask(&mut alice, "MODE #c").await[0],
        ":test.server 324 alice #c +nt"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_private_channel_is_left_out_of_listings_for_outsiders_only() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    alice.send("JOIN #priv").await;
    alice.send("MODE #priv +p").await;
    alice.sync().await;
    let mut dave = server.client("dave").await;

    // LIST, WHO #chan, NAMES and WHOIS say nothing of it to an outsider.
    dave.send("LIST").await;
    let listed = dave.sync().await;
    assert!(listed.iter().all(|l| l.command() != "322"), "{listed:#?}");
    dave.send("WHO #priv").await;
    let who = dave.sync().await;
    assert!(who.iter().all(|l| l.command() != "352"), "{who:#?}");
    dave.send("NAMES #priv").await;
    let names = dave.sync().await;
    assert!(names.iter().all(|l| l.command() != "353"), "{names:#?}");
    dave.send("WHOIS alice").await;
    let whois = dave.sync().await;
    assert!(whois.iter().all(|l| l.command() != "319"), "{whois:#?}");

    // A member sees it, marked `*` in NAMES.
    alice.send("LIST").await;
    let listed = alice.sync().await;
    assert!(
        listed
            .iter()
            .any(|l| l.command() == "322" && l.param(1) == "#priv"),
        "{listed:#?}"
    );
    alice.send("NAMES #priv").await;
    let names = alice.sync().await;
    assert!(
        names
            .iter()
            .any(|l| l.command() == "353" && l.param(1) == "*"),
        "{names:#?}"
    );
    server.shutdown().await;
}
