//! ChanServ: channel registration (REGISTER, INFO, DROP), the founder and the access
//! list's operators opped on join (and nobody else), OP/DEOP, and a registered
//! channel's topic, modes and lists surviving a restart.

use std::sync::Arc;

use palaver_test_support::{TestClient, TestServer, test_config};

use crate::channels::{ask, assert_silent, join, pending};

/// The source of every ChanServ line.
const CS: &str = ":ChanServ!ChanServ@services.";

/// A registered client logged in to a new account named after its nick.
async fn logged_in(server: &TestServer, nick: &str) -> TestClient {
    let mut client = server.client(nick).await;
    let replies = ask(&mut client, "REGISTER * * correct-horse").await;
    assert!(replies[0].contains("REGISTER SUCCESS"), "{replies:#?}");
    client
}

/// The texts of ChanServ's NOTICEs to `client` in answer to `command`.
async fn cs(client: &mut TestClient, command: &str) -> Vec<String> {
    let replies = ask(client, &format!("PRIVMSG ChanServ :{command}")).await;
    let prefix = format!("{CS} NOTICE {} :", client.nick);
    replies
        .iter()
        .map(|line| {
            line.strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("not a ChanServ notice: {line}"))
                .to_owned()
        })
        .collect()
}

/// Registers `chan` as `client` (which is its operator and logged in).
async fn register(client: &mut TestClient, chan: &str) {
    let account = client.nick.clone();
    assert_eq!(
        cs(client, &format!("REGISTER {chan}")).await,
        [format!("{chan} is now registered to {account}")]
    );
}

#[tokio::test]
async fn chanserv_register_needs_an_account_and_channel_operator_status() {
    let server = TestServer::start().await;
    let mut bob = server.client("bob").await;
    join(&mut bob, "#c").await;
    pending(&mut bob).await;
    assert_eq!(
        cs(&mut bob, "REGISTER #c").await,
        ["You must be logged in to an account to register a channel (see /msg NickServ HELP)"]
    );

    let mut alice = logged_in(&server, "alice").await;
    join(&mut alice, "#c").await;
    pending(&mut bob).await;
    assert_eq!(
        cs(&mut alice, "REGISTER #c").await,
        ["You must be a channel operator of #c to register it"]
    );
    assert_eq!(
        cs(&mut alice, "REGISTER #nowhere").await,
        ["#nowhere does not exist; join it and register it as its operator"]
    );
    assert_eq!(
        cs(&mut alice, "REGISTER").await,
        ["Syntax error for REGISTER; see /msg ChanServ HELP"]
    );

    join(&mut alice, "#Mine").await;
    register(&mut alice, "#Mine").await;
    assert_eq!(
        cs(&mut alice, "REGISTER #MINE").await,
        ["#Mine is already registered"]
    );
    // The aliases work the same.
    let info = ask(&mut alice, "CS INFO #mine").await;
    assert_eq!(info.len(), 5, "{info:#?}");
    assert_eq!(info[0], format!("{CS} NOTICE alice :Channel: #Mine"));
    assert_eq!(info[1], format!("{CS} NOTICE alice :Founder: alice"));
    assert!(info[2].contains(":Registered: "), "{info:#?}");
    assert_eq!(info[3], format!("{CS} NOTICE alice :Modes: +nt"));
    let info = ask(&mut bob, "CHANSERV INFO #c").await;
    assert_eq!(info, [format!("{CS} NOTICE bob :#c is not registered")]);
    assert_eq!(
        cs(&mut bob, "FROB").await,
        ["Unknown command FROB; see /msg ChanServ HELP"]
    );
    let help = cs(&mut bob, "HELP").await;
    assert!(
        help.iter().any(|l| l.starts_with("REGISTER <#channel>")),
        "{help:#?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn chanserv_founder_is_opped_on_join_and_a_stranger_is_not() {
    let server = TestServer::start().await;
    let mut alice = logged_in(&server, "alice").await;
    join(&mut alice, "#a").await;
    register(&mut alice, "#a").await;
    ask(&mut alice, "PART #a").await;

    // The channel is gone; whoever creates it again gets no operator status.
    let mut bob = server.client("bob").await;
    let joined = ask(&mut bob, "JOIN #a").await;
    assert_eq!(
        joined,
        [
            ":bob!~bob@127.0.0.1 JOIN #a",
            ":test.server 353 bob = #a :bob",
            ":test.server 366 bob #a :End of /NAMES list",
        ]
    );
    // The founder is, and everyone sees it.
    let joined = ask(&mut alice, "JOIN #a").await;
    assert_eq!(
        joined,
        [
            ":alice!~alice@127.0.0.1 JOIN #a".to_owned(),
            format!("{CS} MODE #a +o alice"),
            ":test.server 353 alice = #a :@alice bob".to_owned(),
            ":test.server 366 alice #a :End of /NAMES list".to_owned(),
        ]
    );
    assert_eq!(
        pending(&mut bob).await,
        [
            ":alice!~alice@127.0.0.1 JOIN #a".to_owned(),
            format!("{CS} MODE #a +o alice"),
        ]
    );
    // Bob is no operator, so he may not set the topic of the +t channel.
    let refused = ask(&mut bob, "TOPIC #a :mine").await;
    assert!(refused[0].contains(" 482 "), "{refused:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn chanserv_access_list_ops_on_join_and_op_deop() {
    let server = TestServer::start().await;
    let mut alice = logged_in(&server, "alice").await;
    let mut carol = logged_in(&server, "carol").await;
    let mut bob = server.client("bob").await;
    join(&mut alice, "#a").await;
    register(&mut alice, "#a").await;

    assert_eq!(
        cs(&mut carol, "ACCESS #a ADD carol").await,
        ["Only the founder of #a may change its access list"]
    );
    assert_eq!(
        cs(&mut alice, "ACCESS #a ADD carol op").await,
        ["carol now has operator access to #a"]
    );
    assert_eq!(
        cs(&mut alice, "ACCESS #a LIST").await,
        [
            "Access list of #a:",
            "alice (founder)",
            "carol op",
            "End of access list"
        ]
    );
    assert_eq!(
        cs(&mut bob, "ACCESS #a LIST").await,
        ["You must be logged in to an account to use the access list (see /msg NickServ HELP)"]
    );

    // On the list: opped on join.
    let joined = ask(&mut carol, "JOIN #a").await;
    assert_eq!(joined[1], format!("{CS} MODE #a +o carol"), "{joined:#?}");
    join(&mut bob, "#a").await;
    pending(&mut alice).await;
    pending(&mut carol).await;

    // OP and DEOP need access; the change is announced from ChanServ.
    assert_eq!(
        cs(&mut bob, "OP #a").await,
        ["You have no operator access to #a"]
    );
    let deop = ask(&mut alice, "CS DEOP #a carol").await;
    assert_eq!(deop, [format!("{CS} MODE #a -o carol")]);
    assert_eq!(pending(&mut bob).await, [format!("{CS} MODE #a -o carol")]);
    pending(&mut carol).await;
    let op = ask(&mut carol, "CS OP #a").await;
    assert_eq!(op, [format!("{CS} MODE #a +o carol")]);
    assert_eq!(
        cs(&mut carol, "OP #a").await,
        ["carol is already an operator there"]
    );
    assert_eq!(
        cs(&mut carol, "OP #a nobody").await,
        ["nobody is not in #a"]
    );
    pending(&mut alice).await;
    pending(&mut bob).await;

    // Off the list: no longer opped on join.
    assert_eq!(
        cs(&mut alice, "ACCESS #a DEL carol").await,
        ["carol no longer has access to #a"]
    );
    ask(&mut carol, "PART #a").await;
    let joined = ask(&mut carol, "JOIN #a").await;
    assert!(!joined.iter().any(|l| l.contains(" MODE ")), "{joined:#?}");
    assert_eq!(
        cs(&mut carol, "OP #a").await,
        ["You have no operator access to #a"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn chanserv_drop_is_for_the_founder_only() {
    let server = TestServer::start().await;
    let mut alice = logged_in(&server, "alice").await;
    let mut carol = logged_in(&server, "carol").await;
    join(&mut alice, "#a").await;
    register(&mut alice, "#a").await;
    assert_eq!(
        cs(&mut carol, "DROP #a").await,
        ["Only the founder of #a may drop it"]
    );
    assert_eq!(
        cs(&mut alice, "DROP #a").await,
        ["#a is no longer registered"]
    );
    assert_eq!(cs(&mut alice, "INFO #a").await, ["#a is not registered"]);
    // An ordinary channel again: its creator is opped, the former founder is not.
    ask(&mut alice, "PART #a").await;
    let joined = ask(&mut carol, "JOIN #a").await;
    assert_eq!(joined[1], ":test.server 353 carol = #a :@carol");
    let joined = ask(&mut alice, "JOIN #a").await;
    assert!(!joined.iter().any(|l| l.contains(" MODE ")), "{joined:#?}");
    // Registering again works.
    pending(&mut carol).await;
    register(&mut carol, "#a").await;
    assert_silent(&mut alice).await;
    // Dropping the founder's account drops its registrations.
    let dropped = ask(&mut carol, "NS DROP").await;
    assert!(
        dropped.contains(&format!(
            "{CS} NOTICE carol :1 channel registration(s) of the dropped account were dropped too"
        )),
        "{dropped:#?}"
    );
    assert_eq!(cs(&mut alice, "INFO #a").await, ["#a is not registered"]);
    server.shutdown().await;
}

#[tokio::test]
async fn chanserv_secret_registered_channels_stay_secret() {
    let server = TestServer::start().await;
    let mut alice = logged_in(&server, "alice").await;
    let mut bob = server.client("bob").await;
    join(&mut alice, "#hidden").await;
    ask(&mut alice, "MODE #hidden +s").await;
    register(&mut alice, "#hidden").await;
    assert_eq!(
        cs(&mut bob, "INFO #hidden").await,
        ["#hidden is not registered"]
    );
    ask(&mut alice, "PART #hidden").await;
    assert_eq!(
        cs(&mut bob, "INFO #hidden").await,
        ["#hidden is not registered"]
    );
    assert_eq!(cs(&mut alice, "INFO #hidden").await[0], "Channel: #hidden");
    server.shutdown().await;
}

#[tokio::test]
async fn registered_channels_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || {
        let store = palaver_store::SqliteStore::open(dir.path()).expect("open the store");
        let mut config = test_config();
        config.store = Some(Arc::new(store));
        config
    };
    let server = TestServer::with_config(open()).await;
    let mut alice = logged_in(&server, "alice").await;
    let mut carol = logged_in(&server, "carol").await;
    join(&mut alice, "#a").await;
    register(&mut alice, "#a").await;
    assert_eq!(
        cs(&mut alice, "ACCESS #a ADD carol").await,
        ["carol now has operator access to #a"]
    );
    // Changes after the registration are written back.
    ask(&mut alice, "TOPIC #a :Welcome back").await;
    ask(&mut alice, "MODE #a +imCk-t sesame").await;
    ask(&mut alice, "MODE #a +l 10").await;
    ask(&mut alice, "MODE #a +beI bad!*@* good!*@* friend!*@*").await;
    // An unregistered channel is not kept.
    join(&mut alice, "#plain").await;
    ask(&mut alice, "TOPIC #plain :gone").await;
    carol.send("QUIT").await;
    carol.expect_closed().await;
    server.shutdown().await;

    let server = TestServer::with_config(open()).await;
    // The restored modes apply to whoever creates the channel again.
    let mut bob = server.client("bob").await;
    let refused = ask(&mut bob, "JOIN #a").await;
    assert_eq!(
        refused,
        [":test.server 473 bob #a :Cannot join channel (+i)"]
    );
    // The founder gets in (access passes +i and +k) and is opped.
    let mut alice = server.client("alice").await;
    let identified = ask(&mut alice, "PRIVMSG NickServ :IDENTIFY correct-horse").await;
    assert!(
        identified.iter().any(|l| l.contains(" 900 ")),
        "{identified:#?}"
    );
    let joined = ask(&mut alice, "JOIN #a").await;
    assert_eq!(joined[0], ":alice!~alice@127.0.0.1 JOIN #a");
    assert_eq!(joined[1], format!("{CS} MODE #a +o alice"));
    assert_eq!(joined[2], ":test.server 332 alice #a :Welcome back");
    assert!(joined[3].starts_with(":test.server 333 alice #a alice!~alice@127.0.0.1 "));
    let modes = ask(&mut alice, "MODE #a").await;
    assert_eq!(modes[0], ":test.server 324 alice #a +Cimnkl sesame 10");
    let bans = ask(&mut alice, "MODE #a b").await;
    assert!(
        bans[0].starts_with(":test.server 367 alice #a bad!*@* alice!~alice@127.0.0.1 "),
        "{bans:#?}"
    );
    let excepts = ask(&mut alice, "MODE #a e").await;
    assert!(
        excepts[0].starts_with(":test.server 348 alice #a good!*@* "),
        "{excepts:#?}"
    );
    let invexes = ask(&mut alice, "MODE #a I").await;
    assert!(
        invexes[0].starts_with(":test.server 346 alice #a friend!*@* "),
        "{invexes:#?}"
    );
    // The access list came back too.
    assert_eq!(
        cs(&mut alice, "ACCESS #a LIST").await,
        [
            "Access list of #a:",
            "alice (founder)",
            "carol op",
            "End of access list"
        ]
    );
    let topic = ask(&mut alice, "JOIN #plain").await;
    assert!(!topic.iter().any(|l| l.contains(" 332 ")), "{topic:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn chanserv_registrations_and_access_lists_are_bounded() {
    let server = TestServer::start().await;
    let mut alice = logged_in(&server, "alice").await;
    for n in 0..20 {
        join(&mut alice, &format!("#c{n}")).await;
        register(&mut alice, &format!("#c{n}")).await;
    }
    join(&mut alice, "#one-more").await;
    assert_eq!(
        cs(&mut alice, "REGISTER #one-more").await,
        ["An account may register at most 20 channels"]
    );
    for n in 0..100 {
        assert_eq!(
            cs(&mut alice, &format!("ACCESS #c0 ADD friend{n}")).await,
            [format!("friend{n} now has operator access to #c0")]
        );
    }
    assert_eq!(
        cs(&mut alice, "ACCESS #c0 ADD friend100").await,
        ["The access list of #c0 is full (100 accounts)"]
    );
    // Adding again changes nothing and costs no room.
    assert_eq!(
        cs(&mut alice, "ACCESS #c0 ADD friend5").await,
        ["friend5 now has operator access to #c0"]
    );
    assert_eq!(cs(&mut alice, "ACCESS #c0 ADD bad,name").await.len(), 1);
    server.shutdown().await;
}
