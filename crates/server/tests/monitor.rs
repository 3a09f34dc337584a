//! MONITOR (IRCv3): lists, status replies, and notifications on sign-on, sign-off
//! (every way a client leaves) and nick changes.

use palaver_test_support::{TestServer, test_config};

use crate::channels::{ask, assert_silent, clients, pending};

#[tokio::test]
async fn adding_targets_reports_their_status() {
    let server = TestServer::start().await;
    let [mut alice, _bob] = clients(&server, ["alice", "bob"]).await;

    assert_eq!(
        ask(&mut alice, "MONITOR + Bob,carol").await,
        [
            ":test.server 730 alice :bob!~bob@127.0.0.1",
            ":test.server 731 alice :carol",
        ]
    );
    // Already monitored (in any case), invalid and empty targets are skipped.
    assert!(
        ask(&mut alice, "MONITOR + BOB,#chan,,carol")
            .await
            .is_empty()
    );
    assert_eq!(
        ask(&mut alice, "MONITOR L").await,
        [
            ":test.server 732 alice :Bob,carol",
            ":test.server 733 alice :End of MONITOR list",
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn watchers_hear_of_sign_on_and_sign_off() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = clients(&server, ["alice", "bob"]).await;
    ask(&mut alice, "MONITOR + bob,carol").await;

    let carol = server.client("carol").await;
    assert_eq!(
        pending(&mut alice).await,
        [":test.server 730 * :carol!~carol@127.0.0.1"]
    );

    bob.send("QUIT :bye").await;
    bob.expect_closed().await;
    assert_eq!(pending(&mut alice).await, [":test.server 731 * :bob"]);

    // A connection that just drops is a sign-off too.
    drop(carol);
    alice.expect(|l| l.0 == ":test.server 731 * :carol").await;
    assert_silent(&mut alice).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_nick_change_is_the_old_nick_leaving_and_the_new_one_arriving() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = clients(&server, ["alice", "bob"]).await;
    ask(&mut alice, "MONITOR + bob,robert").await;

    ask(&mut bob, "NICK robert").await;
    assert_eq!(
        pending(&mut alice).await,
        [
            ":test.server 731 * :bob",
            ":test.server 730 * :robert!~bob@127.0.0.1",
        ]
    );
    // A change of case only is the same nickname: nothing to say.
    ask(&mut bob, "NICK Robert").await;
    assert_silent(&mut alice).await;
    // A client registering under a monitored nick only counts once registered.
    let mut early = server.connect().await;
    early.send("NICK bob").await;
    early.sync().await;
    assert_silent(&mut alice).await;
    early.send("USER bob 0 * :Bob again").await;
    early.expect_command("376").await;
    assert_eq!(
        pending(&mut alice).await,
        [":test.server 730 * :bob!~bob@127.0.0.1"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn remove_clear_list_and_status() {
    let server = TestServer::start().await;
    let [mut alice, _bob, _dave] = clients(&server, ["alice", "bob", "dave"]).await;
    ask(&mut alice, "MONITOR + bob,carol,dave,erin").await;

    assert!(ask(&mut alice, "MONITOR - BOB,nobody").await.is_empty());
    assert_eq!(
        ask(&mut alice, "MONITOR S").await,
        [
            ":test.server 730 alice :dave!~dave@127.0.0.1",
            ":test.server 731 alice :carol,erin",
        ]
    );
    assert!(ask(&mut alice, "MONITOR C").await.is_empty());
    assert_eq!(
        ask(&mut alice, "MONITOR L").await,
        [":test.server 733 alice :End of MONITOR list"]
    );
    assert!(ask(&mut alice, "MONITOR S").await.is_empty());

    // Removed targets are no longer watched.
    let mut carol = server.client("carol").await;
    assert_silent(&mut alice).await;
    carol.send("QUIT").await;
    carol.expect_closed().await;
    assert_silent(&mut alice).await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_list_is_bounded_and_announced() {
    let mut config = test_config();
    config.limits.max_monitor = 2;
    let server = TestServer::with_config(config).await;
    let mut alice = server.connect().await;
    alice.nick = "alice".to_owned();
    alice.send("NICK alice").await;
    alice.send("USER alice 0 * :Alice").await;
    let isupport = alice
        .expect(|l| l.command() == "005" && l.0.contains("MONITOR="))
        .await;
    assert!(isupport.0.contains(" MONITOR=2 "), "{}", isupport.0);
    alice.expect_command("376").await;

    assert_eq!(
        ask(&mut alice, "MONITOR + a,b,c,d").await,
        [
            ":test.server 731 alice :a,b",
            ":test.server 734 alice 2 c,d :Monitor list is full.",
        ]
    );
    // Targets already listed don't count against the limit.
    assert!(ask(&mut alice, "MONITOR + A").await.is_empty());
    assert_eq!(
        ask(&mut alice, "MONITOR + e").await,
        [":test.server 734 alice 2 e :Monitor list is full."]
    );
    ask(&mut alice, "MONITOR - a").await;
    assert_eq!(
        ask(&mut alice, "MONITOR + e").await,
        [":test.server 731 alice :e"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn long_replies_are_split_within_the_line_limit() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let nicks: Vec<String> = (0..100).map(|i| format!("someone_{i:02}")).collect();
    for chunk in nicks.chunks(40) {
        ask(&mut alice, &format!("MONITOR + {}", chunk.join(","))).await;
    }
    let lines = ask(&mut alice, "MONITOR L").await;
    assert!(lines.len() > 2, "{lines:#?}");
    let mut listed = Vec::new();
    for line in &lines[..lines.len() - 1] {
        assert!(line.len() <= 510, "{line}");
        let (head, list) = line.split_once(" :").expect("trailing list");
        assert_eq!(head, ":test.server 732 alice");
        listed.extend(list.split(',').map(str::to_owned));
    }
    assert_eq!(listed, nicks);
    server.shutdown().await;
}

#[tokio::test]
async fn a_departed_watcher_leaves_nothing_behind() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = clients(&server, ["alice", "bob"]).await;
    ask(&mut alice, "MONITOR + bob").await;
    alice.send("QUIT").await;
    alice.expect_closed().await;

    // The next client called alice inherits no list and hears nothing.
    let mut alice = server.client("alice").await;
    assert_eq!(
        ask(&mut alice, "MONITOR L").await,
        [":test.server 733 alice :End of MONITOR list"]
    );
    bob.send("QUIT").await;
    bob.expect_closed().await;
    assert_silent(&mut alice).await;
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_monitor_commands_get_errors() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    assert_eq!(
        ask(&mut alice, "MONITOR").await,
        [":test.server 461 alice MONITOR :Not enough parameters"]
    );
    assert_eq!(
        ask(&mut alice, "MONITOR +").await,
        [":test.server 461 alice MONITOR :Not enough parameters"]
    );
    assert_eq!(
        ask(&mut alice, "MONITOR X bob").await,
        [":test.server 400 alice MONITOR X :Unknown MONITOR modifier (use +, -, C, L or S)"]
    );
    let mut early = server.connect().await;
    early.send("MONITOR + alice").await;
    early.expect_command("451").await;
    server.shutdown().await;
}
