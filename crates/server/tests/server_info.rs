//! Questions about the server: PING, MOTD, LUSERS, VERSION, TIME, unknown commands.

use std::time::{SystemTime, UNIX_EPOCH};

use palaver_test_support::{Line, TestServer, test_config};

use crate::channels::{ask, clients, commands, join};

#[tokio::test]
async fn ping_is_answered_with_pong_before_and_after_registration() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    assert_eq!(
        ask(&mut client, "PING early-bird").await,
        [":test.server PONG test.server :early-bird"]
    );
    client.register("alice").await;
    assert_eq!(
        ask(&mut client, "PING :two words").await,
        [":test.server PONG test.server :two words"]
    );
    assert_eq!(
        ask(&mut client, "PING").await,
        [":test.server 409 alice :No origin specified"]
    );
    // PONG is accepted silently.
    assert!(ask(&mut client, "PONG :whatever").await.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn motd_on_request() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    assert_eq!(
        ask(&mut alice, "MOTD").await,
        [
            ":test.server 375 alice :- test.server Message of the day - ",
            ":test.server 372 alice :- Welcome to palaver.",
            ":test.server 372 alice :- Join #lobby to meet everyone: /join #lobby",
            ":test.server 376 alice :End of /MOTD command.",
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn no_motd_is_422_in_the_welcome_burst_and_on_request() {
    let mut config = test_config();
    config.motd = None;
    let server = TestServer::with_config(config).await;
    let mut alice = server.connect().await;
    alice.send("NICK alice").await;
    alice.send("USER alice 0 * :Alice").await;
    let end = alice
        .expect(|l| ["375", "376", "422"].contains(&l.command()))
        .await;
    assert_eq!(end.0, ":test.server 422 alice :MOTD File is missing");
    assert_eq!(
        ask(&mut alice, "MOTD").await,
        [":test.server 422 alice :MOTD File is missing"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn lusers_counts_users_invisible_unknown_and_channels() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = clients(&server, ["alice", "bob"]).await;
    ask(&mut bob, "MODE bob +i").await;
    // Counted once, and not at all once undone.
    ask(&mut bob, "MODE bob +i").await;
    ask(&mut alice, "MODE alice +i").await;
    ask(&mut alice, "MODE alice -i").await;
    join(&mut alice, "#lobby").await;
    join(&mut bob, "#other").await;
    join(&mut bob, "#lobby").await;
    // A connection that has not registered: once it has had an answer, it is counted.
    let mut pending = server.connect().await;
    pending.sync().await;
    alice.sync().await;

    assert_eq!(
        ask(&mut alice, "LUSERS").await,
        [
            ":test.server 251 alice :There are 1 users and 1 invisible on 1 servers",
            ":test.server 252 alice 0 :operator(s) online",
            ":test.server 253 alice 1 :unknown connection(s)",
            ":test.server 254 alice 2 :channels formed",
            ":test.server 255 alice :I have 2 clients and 0 servers",
            ":test.server 265 alice 2 2 :Current local users 2, max 2",
            ":test.server 266 alice 2 2 :Current global users 2, max 2",
        ]
    );

    // The maximum is remembered after a user leaves.
    bob.send("QUIT").await;
    bob.expect_closed().await;
    alice.sync().await;
    let lines = ask(&mut alice, "LUSERS").await;
    assert_eq!(
        lines[0],
        ":test.server 251 alice :There are 1 users and 0 invisible on 1 servers"
    );
    assert_eq!(lines[3], ":test.server 254 alice 1 :channels formed");
    assert_eq!(
        lines[5],
        ":test.server 265 alice 1 2 :Current local users 1, max 2"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn version_is_351_followed_by_isupport() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let lines = ask(&mut alice, "VERSION").await;
    assert_eq!(commands(&lines), ["351", "005", "005", "005"], "{lines:#?}");
    assert_eq!(
        lines[0],
        format!(
            ":test.server 351 alice {} test.server :palaver IRC server",
            palaver_server::VERSION
        )
    );
    let tokens: Vec<String> = lines[1..]
        .iter()
        .flat_map(|line| {
            let line = Line(line.clone());
            let params = line.msg().params().to_vec();
            // Between the nickname and the trailing "are supported by this server".
            params[1..params.len() - 1]
                .iter()
                .map(|p| (*p).to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    for token in [
        "CASEMAPPING=rfc1459",
        "CHANTYPES=#",
        "MAXTARGETS=4",
        "MODES=4",
        "PREFIX=(ov)@+",
        "STATUSMSG=@+",
        "NETWORK=Palaver",
    ] {
        assert!(
            tokens.iter().any(|t| t == token),
            "{token} not in {tokens:?}"
        );
    }
    assert!(
        lines[1].ends_with(" :are supported by this server"),
        "{lines:#?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn time_is_391() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let lines = ask(&mut alice, "TIME").await;
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line = Line(lines[0].clone());
    assert_eq!(line.command(), "391");
    assert_eq!([line.param(0), line.param(1)], ["alice", "test.server"]);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let stamp: u64 = line.param(2).parse().expect("a Unix timestamp");
    assert!(stamp.abs_diff(now) <= 5, "{line:?}");
    assert_eq!(line.param(3), "0");
    assert!(
        line.last().contains("+0000"),
        "human-readable UTC time: {line:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_command_after_registration_is_421() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    assert_eq!(
        ask(&mut alice, "FROBNICATE now").await,
        [":test.server 421 alice FROBNICATE :Unknown command"]
    );
    assert_eq!(
        ask(&mut alice, "frob").await,
        [":test.server 421 alice frob :Unknown command"]
    );
    // Known commands are case-insensitive.
    assert_eq!(
        ask(&mut alice, "ping :x").await,
        [":test.server PONG test.server :x"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn help_lists_commands_and_explains_one() {
    let server = TestServer::start().await;
    let [mut alice] = clients(&server, ["alice"]).await;
    let index = ask(&mut alice, "HELP").await;
    assert_eq!(commands(&index).first().map(String::as_str), Some("704"));
    assert_eq!(commands(&index).last().map(String::as_str), Some("706"));
    assert!(index.iter().any(|l| l.contains("PRIVMSG")), "{index:#?}");
    assert_eq!(
        ask(&mut alice, "HELPOP privmsg").await,
        [
            ":test.server 704 alice privmsg :PRIVMSG <target>[,<target>] :<text>",
            ":test.server 705 alice privmsg :Sends a message to channels or people.",
            ":test.server 706 alice privmsg :End of /HELP",
        ]
    );
    assert_eq!(
        ask(&mut alice, "HELP NOSUCHTHING").await,
        [":test.server 524 alice NOSUCHTHING :No help available on this topic"]
    );
}

#[tokio::test]
async fn info_and_links_describe_this_single_server() {
    let server = TestServer::start().await;
    let [mut alice] = clients(&server, ["alice"]).await;
    let info = ask(&mut alice, "INFO").await;
    let codes = commands(&info);
    assert!(
        codes.len() >= 2 && codes[..codes.len() - 1].iter().all(|c| c == "371"),
        "{info:#?}"
    );
    assert_eq!(codes.last().map(String::as_str), Some("374"));
    assert_eq!(
        ask(&mut alice, "LINKS").await,
        [
            ":test.server 364 alice test.server test.server :0 palaver chat server",
            ":test.server 365 alice * :End of /LINKS list",
        ]
    );
}

#[tokio::test]
async fn wallops_reaches_users_with_plus_w_and_needs_an_operator() {
    let server = crate::oper::server_with_oper().await;
    let [mut oper, mut listener, mut other] = clients(&server, ["oper", "listener", "other"]).await;
    assert_eq!(
        ask(&mut listener, "WALLOPS :hi").await,
        [":test.server 481 listener :Permission Denied- You're not an IRC operator"]
    );
    assert_eq!(
        ask(&mut listener, "MODE listener +w").await,
        [":listener MODE listener :+w"]
    );
    oper.send("OPER root s3cret").await;
    oper.expect_command("381").await;
    oper.sync().await;
    oper.send("WALLOPS :maintenance at noon").await;
    let expected = ":oper!~oper@127.0.0.1 WALLOPS :maintenance at noon";
    assert_eq!(listener.expect_command("WALLOPS").await.0, expected);
    assert_eq!(oper.expect_command("WALLOPS").await.0, expected);
    assert!(other.sync().await.is_empty());
}
