//! CAP negotiation (IRCv3 CAP 302): LS, REQ, LIST, END, and the capabilities' effects.

use palaver_test_support::TestServer;

use crate::channels::{ask, assert_silent, in_channel, pending};

const OFFERED: &str = "cap-notify multi-prefix userhost-in-names message-tags server-time \
     echo-message batch labeled-response away-notify extended-join sasl account-notify \
     account-tag draft/account-registration invite-notify draft/no-implicit-names setname \
     extended-monitor draft/multiline draft/metadata-3 draft/read-marker draft/message-redaction \
     draft/chathistory draft/event-playback draft/channel-rename";

#[tokio::test]
async fn cap_ls_suspends_registration_until_cap_end() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;

    // CAP LS 302 may span several lines (`LS *` on all but the last) and carries
    // values (`name=value`); the names are what we offer, in order.
    let lines = ask(&mut client, "CAP LS 302").await;
    let (last, more) = lines.split_last().expect("an LS reply");
    assert!(
        more.iter()
            .all(|l| l.starts_with(":test.server CAP * LS * :")),
        "{lines:#?}"
    );
    assert!(last.starts_with(":test.server CAP * LS :"), "{lines:#?}");
    let names: Vec<&str> = lines
        .iter()
        .flat_map(|l| l.split_once(" :").map_or("", |(_, caps)| caps).split(' '))
        .map(|cap| cap.split_once('=').map_or(cap, |(name, _)| name))
        .collect();
    assert_eq!(names.join(" "), OFFERED);
    client.send("NICK alice").await;
    client.send("USER alice 0 * :Alice").await;
    // NICK and USER are in, but negotiation is open: no welcome yet.
    assert_silent(&mut client).await;
    assert_eq!(
        ask(&mut client, "CAP REQ :multi-prefix").await,
        [":test.server CAP alice ACK :multi-prefix"]
    );
    assert_silent(&mut client).await;

    client.send("CAP END").await;
    let welcome = client.expect_command("001").await;
    assert_eq!(welcome.param(0), "alice");
    client.expect_command("376").await;
    // The capability negotiated before registration stays on.
    assert_eq!(
        ask(&mut client, "CAP LIST").await,
        [":test.server CAP alice LIST :cap-notify multi-prefix"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn cap_req_alone_also_suspends_registration() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send("CAP REQ :userhost-in-names").await;
    client.send("NICK bob").await;
    client.send("USER bob 0 * :Bob").await;
    assert_eq!(
        pending(&mut client).await,
        [":test.server CAP * ACK :userhost-in-names"]
    );
    client.send("CAP END").await;
    client.expect_command("001").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_sends_cap_registers_normally() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send("NICK carol").await;
    client.send("USER carol 0 * :Carol").await;
    let welcome = client.expect_command("001").await;
    assert_eq!(welcome.param(0), "carol");
    client.expect_command("376").await;
    assert_eq!(
        ask(&mut client, "CAP LIST").await,
        [":test.server CAP carol LIST :"]
    );
    // CAP END after registration is harmless, and LS without a version works too.
    assert!(ask(&mut client, "CAP END").await.is_empty());
    assert_eq!(
        ask(&mut client, "CAP LS").await,
        [format!(":test.server CAP carol LS :{OFFERED}")]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn req_is_atomic_and_caps_can_be_removed() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;

    // One unknown capability NAKs the whole request and enables nothing.
    assert_eq!(
        ask(&mut alice, "CAP REQ :multi-prefix bogus-cap").await,
        [":test.server CAP alice NAK :multi-prefix bogus-cap"]
    );
    assert_eq!(
        ask(&mut alice, "CAP LIST").await,
        [":test.server CAP alice LIST :"]
    );

    assert_eq!(
        ask(&mut alice, "CAP REQ :multi-prefix userhost-in-names").await,
        [":test.server CAP alice ACK :multi-prefix userhost-in-names"]
    );
    assert_eq!(
        ask(&mut alice, "CAP LIST").await,
        [":test.server CAP alice LIST :multi-prefix userhost-in-names"]
    );

    assert_eq!(
        ask(&mut alice, "CAP REQ -multi-prefix").await,
        [":test.server CAP alice ACK :-multi-prefix"]
    );
    assert_eq!(
        ask(&mut alice, "CAP LIST").await,
        [":test.server CAP alice LIST :userhost-in-names"]
    );

    // A NAKed removal removes nothing either.
    assert_eq!(
        ask(&mut alice, "CAP REQ :-userhost-in-names -bogus").await,
        [":test.server CAP alice NAK :-userhost-in-names -bogus"]
    );
    assert_eq!(
        ask(&mut alice, "CAP LIST").await,
        [":test.server CAP alice LIST :userhost-in-names"]
    );

    assert_eq!(
        ask(&mut alice, "CAP FROB").await,
        [":test.server 410 alice FROB :Invalid CAP subcommand"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn multi_prefix_and_userhost_in_names_change_names() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = in_channel(&server, "#lobby", ["alice", "bob"]).await;
    ask(&mut alice, "MODE #lobby +v alice").await;
    bob.sync().await;

    assert_eq!(
        ask(&mut alice, "NAMES #lobby").await[0],
        ":test.server 353 alice = #lobby :@alice bob"
    );
    ask(&mut alice, "CAP REQ multi-prefix").await;
    assert_eq!(
        ask(&mut alice, "NAMES #lobby").await[0],
        ":test.server 353 alice = #lobby :@+alice bob"
    );

    ask(&mut bob, "CAP REQ userhost-in-names").await;
    assert_eq!(
        ask(&mut bob, "NAMES #lobby").await[0],
        ":test.server 353 bob = #lobby :@alice!~alice@127.0.0.1 bob!~bob@127.0.0.1"
    );
    ask(&mut bob, "CAP REQ multi-prefix").await;
    assert_eq!(
        ask(&mut bob, "NAMES #lobby").await[0],
        ":test.server 353 bob = #lobby :@+alice!~alice@127.0.0.1 bob!~bob@127.0.0.1"
    );

    // multi-prefix shows in WHO flags too.
    let who = ask(&mut bob, "WHO #lobby").await;
    assert_eq!(
        who[0],
        ":test.server 352 bob #lobby ~alice 127.0.0.1 test.server alice H@+ :0 Test user alice"
    );
    server.shutdown().await;
}
