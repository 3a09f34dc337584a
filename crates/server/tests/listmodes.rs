//! Channel mask lists beyond bans: ban exceptions (`+e`, `EXCEPTS=e`) and invite
//! exceptions (`+I`, `INVEX=I`); also `INVITE` alone (the invitation list) and KICK
//! with several channels and nicks (`TARGMAX=KICK:`).

use palaver_test_support::{Line, TestServer, test_config};

use crate::channels::{ask, assert_silent, clients, commands, in_channel, join, pending, src};

/// Every ISUPPORT token, from VERSION's repeat of the 005 lines.
async fn isupport(client: &mut palaver_test_support::TestClient) -> Vec<String> {
    ask(client, "VERSION")
        .await
        .into_iter()
        .map(Line)
        .filter(|line| line.command() == "005")
        .flat_map(|line| {
            let params = line.msg().params().to_vec();
            // Skip the nick and the trailing "are supported by this server".
            params[1..params.len() - 1]
                .iter()
                .map(|p| (*p).to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn isupport_and_004_announce_the_list_modes() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    alice.send("NICK alice").await;
    alice.send("USER alice 0 * :Alice").await;
    let myinfo = alice.expect_command("004").await;
    assert_eq!(myinfo.param(4), "CERbeIiklmnopstvz", "{myinfo:?}");
    assert_eq!(myinfo.param(5), "beIklov", "{myinfo:?}");
    alice.expect_command("376").await;

    let tokens = isupport(&mut alice).await;
    for token in [
        "CHANMODES=beI,k,l,CERimnpstz",
        "EXTBAN=,am",
        "ACCOUNTEXTBAN=a",
        "EXCEPTS=e",
        "INVEX=I",
        "MAXLIST=beI:100",
    ] {
        assert!(tokens.iter().any(|t| t == token), "{token}: {tokens:?}");
    }
    let targmax = tokens
        .iter()
        .find(|t| t.starts_with("TARGMAX="))
        .unwrap_or_else(|| panic!("no TARGMAX: {tokens:?}"));
    assert!(targmax.contains(",KICK:4,"), "{targmax}");
    server.shutdown().await;
}

#[tokio::test]
async fn ban_exception_lets_a_banned_user_join() {
    let server = TestServer::start().await;
    let [mut chanop, mut carol] = in_channel(&server, "#chan", ["chanop", "carol"]).await;
    let mut bar = server.client("bar").await;

    ask(&mut chanop, "MODE #chan +b ba*!*@*").await;
    carol.sync().await;
    assert_eq!(
        ask(&mut bar, "JOIN #chan").await,
        [":test.server 474 bar #chan :Cannot join channel (+b)"]
    );

    // The exception is normalised like a ban and announced to every member.
    let except = format!("{} MODE #chan +e *ar!*@*", src("chanop"));
    assert_eq!(
        ask(&mut chanop, "MODE #chan +e *ar").await,
        [except.as_str()]
    );
    assert_eq!(pending(&mut carol).await, [except]);
    assert_eq!(
        ask(&mut bar, "JOIN #chan").await[0],
        format!("{} JOIN #chan", src("bar"))
    );

    chanop.sync().await;
    // Without the exception the ban holds again.
    ask(&mut bar, "PART #chan").await;
    assert_eq!(
        ask(&mut chanop, "MODE #chan -e *AR!*@*").await,
        [
            format!("{} PART #chan", src("bar")),
            format!("{} MODE #chan -e *ar!*@*", src("chanop")),
        ]
    );
    assert_eq!(
        ask(&mut bar, "JOIN #chan").await,
        [":test.server 474 bar #chan :Cannot join channel (+b)"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn ban_exception_lets_a_banned_member_speak() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = in_channel(&server, "#lobby", ["alice", "bob"]).await;

    ask(&mut alice, "MODE #lobby +b bob").await;
    bob.sync().await;
    assert_eq!(
        ask(&mut bob, "PRIVMSG #lobby :hello?").await,
        [":test.server 404 bob #lobby :Cannot send to channel (+b)"]
    );
    assert_silent(&mut alice).await;

    ask(&mut alice, "MODE #lobby +e *!~bob@*").await;
    bob.sync().await;
    assert!(ask(&mut bob, "PRIVMSG #lobby :hello!").await.is_empty());
    assert_eq!(
        pending(&mut alice).await,
        [format!("{} PRIVMSG #lobby :hello!", src("bob"))]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn exception_lists_are_listed_to_operators_only() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = in_channel(&server, "#lobby", ["alice", "bob"]).await;

    ask(&mut alice, "MODE #lobby +e dave").await;
    ask(&mut alice, "MODE #lobby +I *@10.0.0.1").await;
    // The same mask again (in another case) is not added twice.
    assert!(ask(&mut alice, "MODE #lobby +e DAVE!*@*").await.is_empty());
    bob.sync().await;

    for (query, entry, end) in [
        (
            "MODE #lobby e",
            "348",
            "349 alice #lobby :End of channel exception list",
        ),
        (
            "MODE #lobby +I",
            "346",
            "347 alice #lobby :End of Channel Invite Exception List",
        ),
    ] {
        let lines: Vec<Line> = ask(&mut alice, query).await.into_iter().map(Line).collect();
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert_eq!(lines[0].command(), entry, "{lines:#?}");
        let mask = if entry == "348" {
            "dave!*@*"
        } else {
            "*!*@10.0.0.1"
        };
        assert_eq!(
            [
                lines[0].param(0),
                lines[0].param(1),
                lines[0].param(2),
                lines[0].param(3)
            ],
            ["alice", "#lobby", mask, "alice!~alice@127.0.0.1"]
        );
        assert!(lines[0].param(4).parse::<u64>().is_ok(), "{lines:#?}");
        assert_eq!(lines[1].0, format!(":test.server {end}"));
    }

    // Non-operators may list the bans but not the exceptions, nor change them.
    assert_eq!(commands(&ask(&mut bob, "MODE #lobby b").await), ["368"]);
    for line in [
        "MODE #lobby e",
        "MODE #lobby I",
        "MODE #lobby +e x",
        "MODE #lobby -I *!*@10.0.0.1",
    ] {
        assert_eq!(
            ask(&mut bob, line).await,
            [":test.server 482 bob #lobby :You're not channel operator"],
            "{line}"
        );
    }
    assert_silent(&mut alice).await;
    server.shutdown().await;
}

#[tokio::test]
async fn invite_exception_opens_an_invite_only_channel() {
    let server = TestServer::start().await;
    let [mut chanop] = in_channel(&server, "#chan", ["chanop"]).await;
    let [mut bar, mut baz] = clients(&server, ["bar", "baz"]).await;
    ask(&mut chanop, "MODE #chan +i").await;

    assert_eq!(
        ask(&mut bar, "JOIN #chan").await,
        [":test.server 473 bar #chan :Cannot join channel (+i)"]
    );
    assert_eq!(
        ask(&mut chanop, "MODE #chan +I bar!*@*").await,
        [format!("{} MODE #chan +I bar!*@*", src("chanop"))]
    );
    assert_eq!(
        ask(&mut bar, "JOIN #chan").await[0],
        format!("{} JOIN #chan", src("bar"))
    );
    // Only the matching user gets in.
    assert_eq!(
        ask(&mut baz, "JOIN #chan").await,
        [":test.server 473 baz #chan :Cannot join channel (+i)"]
    );
    chanop.sync().await;

    // An invite exception stands in for an INVITE against +i only, not +k or +b.
    ask(&mut bar, "PART #chan").await;
    ask(&mut chanop, "MODE #chan +k sesame").await;
    assert_eq!(
        ask(&mut bar, "JOIN #chan").await,
        [":test.server 475 bar #chan :Cannot join channel (+k)"]
    );
    ask(&mut chanop, "MODE #chan -k *").await;
    ask(&mut chanop, "MODE #chan +b bar").await;
    assert_eq!(
        ask(&mut bar, "JOIN #chan").await,
        [":test.server 474 bar #chan :Cannot join channel (+b)"]
    );
    ask(&mut chanop, "MODE #chan -b bar").await;

    // Removing it closes the door again.
    assert_eq!(
        ask(&mut chanop, "MODE #chan -I bar!*@*").await,
        [format!("{} MODE #chan -I bar!*@*", src("chanop"))]
    );
    assert_eq!(
        ask(&mut bar, "JOIN #chan").await,
        [":test.server 473 bar #chan :Cannot join channel (+i)"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn list_changes_combine_and_share_one_bound() {
    let mut config = test_config();
    config.limits.max_bans = 3;
    let server = TestServer::with_config(config).await;
    let [mut alice] = in_channel(&server, "#lobby", ["alice"]).await;

    // Several list changes in one MODE, announced in one line.
    assert_eq!(
        ask(&mut alice, "MODE #lobby +beI x y z").await,
        [format!(
            "{} MODE #lobby +beI x!*@* y!*@* z!*@*",
            src("alice")
        )]
    );
    // MAXLIST=beI:3 counts the three lists together.
    for (letter, list) in [("b", "ban"), ("e", "exception"), ("I", "invite-exception")] {
        assert_eq!(
            ask(&mut alice, &format!("MODE #lobby +{letter} w")).await,
            [format!(
                ":test.server 478 alice #lobby w!*@* :Channel {list} list is full"
            )]
        );
    }
    // Removing one entry makes room in any list.
    ask(&mut alice, "MODE #lobby -b x").await;
    assert_eq!(
        ask(&mut alice, "MODE #lobby +I w").await,
        [format!("{} MODE #lobby +I w!*@*", src("alice"))]
    );
    let isupport = isupport(&mut alice).await;
    assert!(
        isupport.iter().any(|t| t == "MAXLIST=beI:3"),
        "{isupport:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn invite_alone_lists_pending_invitations() {
    let server = TestServer::start().await;
    let [mut alice] = in_channel(&server, "#Priv", ["alice"]).await;
    join(&mut alice, "#other").await;
    let mut bob = server.client("bob").await;

    assert_eq!(
        ask(&mut bob, "INVITE").await,
        [":test.server 337 bob :End of /INVITE list"]
    );
    ask(&mut alice, "INVITE bob #priv").await;
    ask(&mut alice, "INVITE bob #other").await;
    bob.sync().await;
    // Oldest first, in the channel's own spelling.
    assert_eq!(
        ask(&mut bob, "INVITE").await,
        [
            ":test.server 336 bob #Priv",
            ":test.server 336 bob #other",
            ":test.server 337 bob :End of /INVITE list",
        ]
    );
    // A used invitation leaves the list.
    join(&mut bob, "#priv").await;
    assert_eq!(
        ask(&mut bob, "INVITE").await,
        [
            ":test.server 336 bob #other",
            ":test.server 337 bob :End of /INVITE list",
        ]
    );
    // One parameter is still too few.
    assert_eq!(
        ask(&mut bob, "INVITE alice").await,
        [":test.server 461 bob INVITE :Not enough parameters"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn kick_pairs_channels_with_nicks() {
    let server = TestServer::start().await;
    let [mut foo, mut bar, mut baz, mut qux] =
        in_channel(&server, "#chan", ["foo", "bar", "baz", "qux"]).await;

    // The same channel twice, as irctest's MULTI_KICK check sends it.
    assert!(ask(&mut foo, "KICK #chan,#chan bar,baz :bye").await.len() == 2);
    assert_eq!(
        pending(&mut qux).await,
        [
            format!("{} KICK #chan bar :bye", src("foo")),
            format!("{} KICK #chan baz :bye", src("foo")),
        ]
    );
    bar.sync().await;
    baz.sync().await;

    // Two channels, one nick each.
    join(&mut bar, "#chan").await;
    join(&mut foo, "#other").await;
    join(&mut baz, "#other").await;
    for client in [&mut foo, &mut bar, &mut baz, &mut qux] {
        client.sync().await;
    }
    assert_eq!(
        ask(&mut foo, "KICK #chan,#other bar,baz").await,
        [
            format!("{} KICK #chan bar :foo", src("foo")),
            format!("{} KICK #other baz :foo", src("foo")),
        ]
    );
    assert_eq!(
        pending(&mut qux).await,
        [format!("{} KICK #chan bar :foo", src("foo"))]
    );

    // Neither one channel nor as many channels as nicks.
    assert_eq!(
        ask(&mut foo, "KICK #chan,#other qux").await,
        [":test.server 461 foo KICK :Not enough parameters"]
    );
    assert_silent(&mut qux).await;
    server.shutdown().await;
}

#[tokio::test]
async fn kick_refusals_come_once_per_channel_and_targets_are_capped() {
    let server = TestServer::start().await;
    let [mut op, mut a, mut b, mut c, mut d, mut e] =
        in_channel(&server, "#big", ["op", "a", "b", "c", "d", "e"]).await;

    // A non-operator hears 482 once, however many nicks it names.
    assert_eq!(
        ask(&mut a, "KICK #big,#big,#nowhere b,c,d").await,
        [
            ":test.server 482 a #big :You're not channel operator",
            ":test.server 403 a #nowhere :No such channel",
        ]
    );
    // TARGMAX=KICK:4: the fifth nick is dropped silently; missing nicks get 441.
    let lines = ask(&mut op, "KICK #big a,b,nobody,c,d,e :out").await;
    assert_eq!(
        lines,
        [
            format!("{} KICK #big a :out", src("op")),
            format!("{} KICK #big b :out", src("op")),
            ":test.server 441 op nobody #big :They aren't on that channel".to_owned(),
            format!("{} KICK #big c :out", src("op")),
        ]
    );
    for client in [&mut a, &mut b, &mut c, &mut d, &mut e] {
        client.sync().await;
    }
    assert_eq!(
        ask(&mut op, "NAMES #big").await[0],
        ":test.server 353 op = #big :@op d e"
    );
    server.shutdown().await;
}
