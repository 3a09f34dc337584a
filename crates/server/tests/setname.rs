//! SETNAME (IRCv3 setname, with extended-monitor): changing the real name.

use palaver_test_support::TestServer;

use crate::channels::{ask, assert_silent, join, pending, src};

#[tokio::test]
async fn setname_is_announced_to_peers_that_asked() {
    let server = TestServer::start().await;
    let mut alice = server.client_with_caps("alice", "setname").await;
    let mut bob = server.client_with_caps("bob", "setname").await;
    let mut carol = server.client("carol").await;
    let mut dave = server.client_with_caps("dave", "setname").await;
    for client in [&mut alice, &mut bob, &mut carol] {
        join(client, "#lobby").await;
    }
    for client in [&mut alice, &mut bob, &mut carol] {
        client.sync().await;
    }

    let line = format!("{} SETNAME :Alice Liddell", src("alice"));
    assert_eq!(
        ask(&mut alice, "SETNAME :Alice Liddell").await,
        std::slice::from_ref(&line)
    );
    assert_eq!(pending(&mut bob).await, [line]);
    // Carol did not ask for setname; dave shares no channel.
    assert_silent(&mut carol).await;
    assert_silent(&mut dave).await;
    assert_eq!(
        ask(&mut carol, "WHOIS alice").await[0],
        ":test.server 311 carol alice ~alice 127.0.0.1 * :Alice Liddell"
    );

    // A client without the capability is changed silently; peers with it are told.
    assert!(ask(&mut carol, "SETNAME :C. Arol").await.is_empty());
    assert_eq!(
        pending(&mut bob).await,
        [format!("{} SETNAME :C. Arol", src("carol"))]
    );
    assert_eq!(
        ask(&mut bob, "WHO carol").await[0],
        ":test.server 352 bob #lobby ~carol 127.0.0.1 test.server carol H :0 C. Arol"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn invalid_real_names_fail() {
    let server = TestServer::start().await;
    let mut alice = server.client_with_caps("alice", "setname").await;
    let fail = ":test.server FAIL SETNAME INVALID_REALNAME :Realname is not valid";
    assert_eq!(ask(&mut alice, "SETNAME :").await, [fail]);
    let long = "x".repeat(129);
    assert_eq!(ask(&mut alice, &format!("SETNAME :{long}")).await, [fail]);
    assert_eq!(
        ask(&mut alice, "SETNAME").await,
        [":test.server 461 alice SETNAME :Not enough parameters"]
    );
    // The longest allowed name is fine; nothing above changed it.
    let longest = "y".repeat(128);
    assert_eq!(
        ask(&mut alice, &format!("SETNAME {longest}")).await,
        [format!("{} SETNAME :{longest}", src("alice"))]
    );
    let mut early = server.connect().await;
    early.send("SETNAME :x").await;
    early.expect_command("451").await;
    server.shutdown().await;
}

#[tokio::test]
async fn extended_monitor_carries_setname_beyond_shared_channels() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut watcher = server
        .client_with_caps("watcher", "setname extended-monitor")
        .await;
    let mut plain = server.client_with_caps("plain", "setname").await;
    let mut both = server
        .client_with_caps("both", "setname extended-monitor")
        .await;
    for client in [&mut watcher, &mut plain, &mut both] {
        ask(client, "MONITOR + alice").await;
    }
    // `both` also shares a channel with alice: told once, not twice.
    join(&mut alice, "#lobby").await;
    join(&mut both, "#lobby").await;
    alice.sync().await;
    both.sync().await;

    ask(&mut alice, "SETNAME :Alice L.").await;
    let line = format!("{} SETNAME :Alice L.", src("alice"));
    assert_eq!(pending(&mut watcher).await, std::slice::from_ref(&line));
    assert_eq!(pending(&mut both).await, [line]);
    assert_silent(&mut plain).await;

    let caps = ask(&mut plain, "CAP LS").await.join("\n");
    assert!(caps.contains("setname"), "{caps}");
    assert!(caps.contains("extended-monitor"), "{caps}");
    server.shutdown().await;
}
