//! Questions about users: WHO, WHOIS, WHOWAS, AWAY, ISON, USERHOST.

use palaver_test_support::{Line, TestServer};

use crate::channels::{ask, clients, commands, in_channel, join};

/// The 352 line `viewer` gets for `nick` (registered by the test helpers).
fn who_line(viewer: &str, chan: &str, nick: &str, flags: &str) -> String {
    format!(
        ":test.server 352 {viewer} {chan} ~{nick} 127.0.0.1 test.server {nick} {flags} :0 Test user {nick}"
    )
}

#[tokio::test]
async fn who_channel_lists_members_with_flags() {
    let server = TestServer::start().await;
    let [_alice, mut bob, mut carol] =
        in_channel(&server, "#lobby", ["alice", "bob", "carol"]).await;
    ask(&mut bob, "AWAY :brb").await;

    assert_eq!(
        ask(&mut carol, "WHO #lobby").await,
        [
            who_line("carol", "#lobby", "alice", "H@"),
            who_line("carol", "#lobby", "bob", "G"),
            who_line("carol", "#lobby", "carol", "H"),
            ":test.server 315 carol #lobby :End of WHO list".to_owned(),
        ]
    );
    assert_eq!(
        ask(&mut carol, "WHO #nowhere").await,
        [":test.server 315 carol #nowhere :End of WHO list"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn who_nick_and_who_mask() {
    let server = TestServer::start().await;
    let [mut alice, _bob, _bert] = clients(&server, ["alice", "bob", "bert"]).await;
    let [_carol] = in_channel(&server, "#room", ["carol"]).await;

    assert_eq!(
        ask(&mut alice, "WHO bob").await,
        [
            who_line("alice", "*", "bob", "H"),
            ":test.server 315 alice bob :End of WHO list".to_owned(),
        ]
    );
    // A user in a channel is shown with it.
    assert_eq!(
        ask(&mut alice, "WHO CAROL").await,
        [
            who_line("alice", "#room", "carol", "H@"),
            ":test.server 315 alice CAROL :End of WHO list".to_owned(),
        ]
    );
    // A mask lists users in nickname order.
    assert_eq!(
        ask(&mut alice, "WHO b*").await,
        [
            who_line("alice", "*", "bert", "H"),
            who_line("alice", "*", "bob", "H"),
            ":test.server 315 alice b* :End of WHO list".to_owned(),
        ]
    );
    assert_eq!(
        ask(&mut alice, "WHO nobody").await,
        [":test.server 315 alice nobody :End of WHO list"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn invisible_users_are_hidden_from_strangers() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = clients(&server, ["alice", "bob"]).await;
    let [mut carol, _dave] = in_channel(&server, "#hide", ["carol", "dave"]).await;
    ask(&mut carol, "MODE carol +i").await;

    let nicks = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .map(Line)
            .filter(|l| l.command() == "352")
            .map(|l| l.param(5))
            .collect()
    };
    assert_eq!(
        nicks(ask(&mut alice, "WHO *").await),
        ["alice", "bob", "dave"]
    );
    assert_eq!(nicks(ask(&mut alice, "WHO #hide").await), ["dave"]);
    // carol sees herself.
    assert_eq!(nicks(ask(&mut carol, "WHO c*").await), ["carol"]);
    // Sharing a channel makes her visible.
    join(&mut bob, "#hide").await;
    bob.sync().await;
    assert_eq!(
        nicks(ask(&mut bob, "WHO *").await),
        ["alice", "bob", "carol", "dave"]
    );
    assert_eq!(
        nicks(ask(&mut bob, "WHO #hide").await),
        ["bob", "carol", "dave"]
    );
    // Her channels stay hidden from strangers' WHOIS.
    let whois = ask(&mut alice, "WHOIS carol").await;
    assert_eq!(commands(&whois), ["311", "312", "317", "318"], "{whois:#?}");
    let whois = ask(&mut bob, "WHOIS carol").await;
    assert_eq!(
        commands(&whois),
        ["311", "319", "312", "317", "318"],
        "{whois:#?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn whois_shows_user_channels_server_idle_and_away() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = in_channel(&server, "#lobby", ["alice", "bob"]).await;
    join(&mut bob, "#bob").await;
    alice.sync().await;

    let lines: Vec<Line> = ask(&mut alice, "WHOIS bob")
        .await
        .into_iter()
        .map(Line)
        .collect();
    let codes: Vec<&str> = lines.iter().map(Line::command).collect();
    assert_eq!(codes, ["311", "319", "312", "317", "318"], "{lines:#?}");
    assert_eq!(
        lines[0].0,
        ":test.server 311 alice bob ~bob 127.0.0.1 * :Test user bob"
    );
    assert_eq!(lines[1].0, ":test.server 319 alice bob :#lobby @#bob");
    assert_eq!(
        lines[2].0,
        ":test.server 312 alice bob test.server :Palaver"
    );
    assert_eq!(lines[3].param(1), "bob");
    assert!(
        lines[3].param(2).parse::<u64>().is_ok_and(|idle| idle < 60),
        "{lines:#?}"
    );
    assert!(
        lines[3]
            .param(3)
            .parse::<u64>()
            .is_ok_and(|t| t > 1_600_000_000),
        "{lines:#?}"
    );
    assert_eq!(lines[3].last(), "seconds idle, signon time");
    assert_eq!(lines[4].0, ":test.server 318 alice bob :End of /WHOIS list");

    // Away: 301 joins the reply; the server form `WHOIS <server> <nick>` works too.
    ask(&mut bob, "AWAY :out to lunch").await;
    let lines = ask(&mut alice, "WHOIS test.server BOB").await;
    assert_eq!(
        commands(&lines),
        ["311", "319", "312", "301", "317", "318"],
        "{lines:#?}"
    );
    assert_eq!(lines[3], ":test.server 301 alice bob :out to lunch");

    // Secret channels are left out for non-members.
    ask(&mut bob, "MODE #bob +s").await;
    let mut carol = server.client("carol").await;
    assert_eq!(
        ask(&mut carol, "WHOIS bob").await[1],
        ":test.server 319 carol bob :#lobby"
    );

    assert_eq!(
        ask(&mut alice, "WHOIS nobody").await,
        [
            ":test.server 401 alice nobody :No such nick/channel",
            ":test.server 318 alice nobody :End of /WHOIS list",
        ]
    );
    assert_eq!(
        ask(&mut alice, "WHOIS").await,
        [":test.server 431 alice :No nickname given"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn whowas_remembers_users_who_left() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = clients(&server, ["alice", "bob"]).await;
    bob.send("QUIT :bye").await;
    bob.expect_closed().await;

    let lines: Vec<Line> = ask(&mut alice, "WHOWAS bob")
        .await
        .into_iter()
        .map(Line)
        .collect();
    let codes: Vec<&str> = lines.iter().map(Line::command).collect();
    assert_eq!(codes, ["314", "312", "369"], "{lines:#?}");
    assert_eq!(
        lines[0].0,
        ":test.server 314 alice bob ~bob 127.0.0.1 * :Test user bob"
    );
    assert_eq!(
        [lines[1].param(0), lines[1].param(1), lines[1].param(2)],
        ["alice", "bob", "test.server"]
    );
    assert_eq!(lines[2].0, ":test.server 369 alice bob :End of WHOWAS");

    assert_eq!(
        ask(&mut alice, "WHOWAS nobody").await,
        [
            ":test.server 406 alice nobody :There was no such nickname",
            ":test.server 369 alice nobody :End of WHOWAS",
        ]
    );

    // A nick change leaves an entry too, newest first; a count limits the entries.
    let mut bob = server.client("bob").await;
    ask(&mut bob, "NICK robert").await;
    let lines = ask(&mut alice, "WHOWAS BOB").await;
    assert_eq!(
        commands(&lines),
        ["314", "312", "314", "312", "369"],
        "{lines:#?}"
    );
    let lines = ask(&mut alice, "WHOWAS bob 1").await;
    assert_eq!(commands(&lines), ["314", "312", "369"], "{lines:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn away_set_and_unset() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = clients(&server, ["alice", "bob"]).await;

    assert_eq!(
        ask(&mut alice, "AWAY :gone").await,
        [":test.server 306 alice :You have been marked as being away"]
    );
    assert_eq!(
        ask(&mut bob, "WHO alice").await[0],
        who_line("bob", "*", "alice", "G")
    );
    assert_eq!(
        ask(&mut alice, "AWAY").await,
        [":test.server 305 alice :You are no longer marked as being away"]
    );
    assert_eq!(
        ask(&mut bob, "WHO alice").await[0],
        who_line("bob", "*", "alice", "H")
    );
    assert!(ask(&mut bob, "PRIVMSG alice :hi").await.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn ison_lists_only_online_nicks() {
    let server = TestServer::start().await;
    let [mut alice, _bob, _carol] = clients(&server, ["alice", "bob", "carol"]).await;
    assert_eq!(
        ask(&mut alice, "ISON bob nobody CAROL").await,
        [":test.server 303 alice :bob carol"]
    );
    assert_eq!(
        ask(&mut alice, "ISON :nobody bob").await,
        [":test.server 303 alice :bob"]
    );
    assert_eq!(
        ask(&mut alice, "ISON nobody").await,
        [":test.server 303 alice :"]
    );
    assert_eq!(
        ask(&mut alice, "ISON").await,
        [":test.server 461 alice ISON :Not enough parameters"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn userhost_shows_user_host_and_away_state() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = clients(&server, ["alice", "bob"]).await;
    assert_eq!(
        ask(&mut alice, "USERHOST bob").await,
        [":test.server 302 alice :bob=+~bob@127.0.0.1"]
    );
    ask(&mut bob, "AWAY :zzz").await;
    assert_eq!(
        ask(&mut alice, "USERHOST bob nobody alice").await,
        [":test.server 302 alice :bob=-~bob@127.0.0.1 alice=+~alice@127.0.0.1"]
    );
    server.shutdown().await;
}
