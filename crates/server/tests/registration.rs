//! Registration: NICK/USER, the welcome burst, and its errors.

use palaver_test_support::{TestClient, TestServer, test_config};

use crate::channels::{ask, assert_silent, in_channel, join, pending, src};

#[tokio::test]
async fn welcome_burst_has_001_to_005_lusers_and_motd() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    alice.send("NICK alice").await;
    alice.send("USER alice 0 * :Alice Liddell").await;
    let welcome = alice.expect_command("001").await;
    assert_eq!(welcome.param(0), "alice");
    assert!(
        welcome.last().ends_with("alice!~alice@127.0.0.1"),
        "{welcome:?}"
    );
    for code in ["002", "003", "004"] {
        alice.expect_command(code).await;
    }
    let isupport = alice.expect_command("005").await;
    assert!(isupport.0.contains("CASEMAPPING=rfc1459"), "{isupport:?}");
    for code in ["251", "255", "375", "372", "376"] {
        alice.expect_command(code).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn user_before_nick_registers_too() {
    let server = TestServer::start().await;
    let mut bob = server.connect().await;
    bob.send("USER bobby 0 * :Bob the Builder").await;
    assert_silent(&mut bob).await;
    bob.send("NICK bob").await;
    let welcome = bob.expect_command("001").await;
    assert_eq!(
        welcome.0,
        ":test.server 001 bob :Welcome to the Palaver IRC Network bob!~bobby@127.0.0.1"
    );
    bob.expect_command("376").await;
    server.shutdown().await;
}

#[tokio::test]
async fn nick_errors_431_and_432() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    assert_eq!(
        ask(&mut client, "NICK").await,
        [":test.server 431 * :No nickname given"]
    );
    assert_eq!(
        ask(&mut client, "NICK 1abc").await,
        [":test.server 432 * 1abc :Erroneous nickname"]
    );
    assert_eq!(
        ask(&mut client, "NICK a.b").await,
        [":test.server 432 * a.b :Erroneous nickname"]
    );
    // None of that set a nickname: USER alone does not register.
    assert!(ask(&mut client, "USER x 0 * :X").await.is_empty());
    client.send("NICK abc").await;
    let welcome = client.expect_command("001").await;
    assert!(welcome.last().ends_with(" abc!~x@127.0.0.1"), "{welcome:?}");

    // After registration the errors name the client.
    let mut client = server.client("alice").await;
    assert_eq!(
        ask(&mut client, "NICK").await,
        [":test.server 431 alice :No nickname given"]
    );
    assert_eq!(
        ask(&mut client, "NICK -x").await,
        [":test.server 432 alice -x :Erroneous nickname"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn nick_in_use_is_433_case_insensitively_under_rfc1459() {
    let server = TestServer::start().await;
    let _alice = server.client("Alice").await;
    let _brackets = server.client("[a]").await;

    let mut client = server.connect().await;
    assert_eq!(
        ask(&mut client, "NICK alice").await,
        [":test.server 433 * alice :Nickname is already in use"]
    );
    assert_eq!(
        ask(&mut client, "NICK {a}").await,
        [":test.server 433 * {a} :Nickname is already in use"]
    );
    assert_eq!(
        ask(&mut client, "NICK {A}").await,
        [":test.server 433 * {A} :Nickname is already in use"]
    );
    // A nickname taken by a client that has not registered yet is taken too.
    assert!(ask(&mut client, "NICK pending").await.is_empty());
    let mut other = server.connect().await;
    assert_eq!(
        ask(&mut other, "NICK PENDING").await,
        [":test.server 433 * PENDING :Nickname is already in use"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn commands_before_registration_are_451() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    assert_eq!(
        ask(&mut client, "JOIN #lobby").await,
        [":test.server 451 * :You have not registered"]
    );
    client.send("NICK alice").await;
    assert_eq!(
        ask(&mut client, "PRIVMSG bob :hi").await,
        [":test.server 451 alice :You have not registered"]
    );
    // So is anything else: text typed into a raw connection is told what is missing.
    assert_eq!(
        ask(&mut client, "hello everyone").await,
        [":test.server 451 alice :You have not registered"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn user_errors_461_and_462() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send("NICK alice").await;
    assert_eq!(
        ask(&mut client, "USER alice 0 *").await,
        [":test.server 461 alice USER :Not enough parameters"]
    );
    assert_eq!(
        ask(&mut client, "USER").await,
        [":test.server 461 alice USER :Not enough parameters"]
    );
    client.send("USER alice 0 * :Alice").await;
    client.expect_command("001").await;
    client.expect_command("376").await;
    assert_eq!(
        ask(&mut client, "USER again 0 * :Again").await,
        [":test.server 462 alice :You may not reregister"]
    );
    assert_eq!(
        ask(&mut client, "PASS secret").await,
        [":test.server 462 alice :You may not reregister"]
    );
    server.shutdown().await;
}

/// Connects to a server with a password and sends `pass` (if any), NICK and USER.
async fn register_with_password(server: &TestServer, pass: Option<&str>) -> TestClient {
    let mut client = server.connect().await;
    if let Some(pass) = pass {
        client.send(&format!("PASS {pass}")).await;
    }
    client.send("NICK alice").await;
    client.send("USER alice 0 * :Alice").await;
    client
}

#[tokio::test]
async fn password_is_checked_when_registration_completes() {
    let mut config = test_config();
    config.password = Some("sesame".to_owned());
    let server = TestServer::with_config(config).await;

    for pass in [Some("wrong"), None] {
        let mut client = register_with_password(&server, pass).await;
        let lines: Vec<String> = client
            .expect_closed()
            .await
            .into_iter()
            .map(|l| l.0)
            .collect();
        assert_eq!(
            lines,
            [
                ":test.server 464 alice :Password incorrect",
                "ERROR :Bad password"
            ],
            "PASS {pass:?}"
        );
    }

    // The refused clients left nothing behind: the nickname is free.
    let mut client = register_with_password(&server, Some("sesame")).await;
    let welcome = client.expect_command("001").await;
    assert_eq!(welcome.param(0), "alice");
    client.expect_command("376").await;
    server.shutdown().await;
}

#[tokio::test]
async fn nick_change_is_seen_by_peers_once_and_frees_the_old_nick() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = in_channel(&server, "#a", ["alice", "bob"]).await;
    join(&mut alice, "#b").await;
    join(&mut bob, "#b").await;
    alice.sync().await;
    let mut carol = server.client("carol").await;

    let change = format!("{} NICK alicia", src("alice"));
    assert_eq!(ask(&mut alice, "NICK alicia").await, [change.as_str()]);
    // bob shares two channels with alice but hears it once; carol shares none.
    assert_eq!(pending(&mut bob).await, [change]);
    assert_silent(&mut carol).await;

    // The new nick is taken, the old one is free.
    assert_eq!(
        ask(&mut carol, "NICK Alicia").await,
        [":test.server 433 carol Alicia :Nickname is already in use"]
    );
    let _new_alice = server.client("alice").await;
    // Messages now reach the renamed client under its new name.
    bob.send("PRIVMSG alicia :hi").await;
    let line = alice.expect_command("PRIVMSG").await;
    assert_eq!(line.0, format!("{} PRIVMSG alicia :hi", src("bob")));

    // Changing only the case of one's own nick is allowed.
    assert_eq!(
        ask(&mut alice, "NICK Alicia").await,
        [":alicia!~alice@127.0.0.1 NICK Alicia"]
    );
    // Setting the same nick again does nothing.
    assert!(ask(&mut alice, "NICK Alicia").await.is_empty());
    server.shutdown().await;
}
