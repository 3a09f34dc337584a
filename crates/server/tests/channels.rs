//! Channels: JOIN, PART, TOPIC, NAMES, LIST, KICK, INVITE.
//!
//! Also home of the helpers the other command modules share (`pub(crate)` below).

use palaver_test_support::{TestClient, TestServer, test_config};

/// `:nick!~nick@127.0.0.1`: the source of lines from a client registered as `nick`.
pub(crate) fn src(nick: &str) -> String {
    format!(":{nick}!~{nick}@127.0.0.1")
}

/// Every line received before a PING barrier, as text.
pub(crate) async fn pending(client: &mut TestClient) -> Vec<String> {
    client.sync().await.into_iter().map(|line| line.0).collect()
}

/// Sends `line` and returns everything that arrived until the server answered a PING
/// sent after it: the complete reply to a command that answers at once.
pub(crate) async fn ask(client: &mut TestClient, line: &str) -> Vec<String> {
    client.send(line).await;
    pending(client).await
}

/// Asserts that nothing at all is waiting for `client`.
pub(crate) async fn assert_silent(client: &mut TestClient) {
    let lines = pending(client).await;
    assert!(
        lines.is_empty(),
        "{}: unexpected lines {lines:#?}",
        client.nick
    );
}

/// The commands/numerics of `lines`, in order.
pub(crate) fn commands(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|line| {
            palaver_test_support::Line(line.clone())
                .command()
                .to_owned()
        })
        .collect()
}

/// Registers one client per nickname.
pub(crate) async fn clients<const N: usize>(
    server: &TestServer,
    nicks: [&str; N],
) -> [TestClient; N] {
    let mut out = Vec::with_capacity(N);
    for nick in nicks {
        out.push(server.client(nick).await);
    }
    out.try_into()
        .unwrap_or_else(|_| unreachable!("N clients were made"))
}

/// Joins `chan` and waits for the end of its NAMES.
pub(crate) async fn join(client: &mut TestClient, chan: &str) {
    client.send(&format!("JOIN {chan}")).await;
    client
        .expect(|l| l.command() == "366" && l.param(1).eq_ignore_ascii_case(chan))
        .await;
}

/// Registers one client per nickname and joins each to `chan` in order (so the first
/// is its operator); returns with nothing left unread by anyone.
pub(crate) async fn in_channel<const N: usize>(
    server: &TestServer,
    chan: &str,
    nicks: [&str; N],
) -> [TestClient; N] {
    server
        .clients_in(chan, &nicks)
        .await
        .try_into()
        .unwrap_or_else(|_| unreachable!("N clients were made"))
}

#[tokio::test]
async fn creator_gets_its_join_op_names_and_end_of_names() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = clients(&server, ["alice", "bob"]).await;

    assert_eq!(
        ask(&mut alice, "JOIN #lobby").await,
        [
            format!("{} JOIN #lobby", src("alice")),
            ":test.server 353 alice = #lobby :@alice".to_owned(),
            ":test.server 366 alice #lobby :End of /NAMES list".to_owned(),
        ]
    );
    // A second member joins with no status; the channel's own spelling is used.
    assert_eq!(
        ask(&mut bob, "JOIN #LOBBY").await,
        [
            format!("{} JOIN #lobby", src("bob")),
            ":test.server 353 bob = #lobby :@alice bob".to_owned(),
            ":test.server 366 bob #lobby :End of /NAMES list".to_owned(),
        ]
    );
    assert_eq!(
        pending(&mut alice).await,
        [format!("{} JOIN #lobby", src("bob"))]
    );
    // Joining a channel one is already in does nothing at all.
    assert!(ask(&mut bob, "JOIN #lobby").await.is_empty());
    assert_silent(&mut alice).await;
    server.shutdown().await;
}

#[tokio::test]
async fn join_sends_the_topic_and_who_set_it() {
    let server = TestServer::start().await;
    let [mut alice] = in_channel(&server, "#lobby", ["alice"]).await;
    ask(&mut alice, "TOPIC #lobby :Welcome all").await;

    let mut bob = server.client("bob").await;
    let lines = ask(&mut bob, "JOIN #lobby").await;
    assert_eq!(
        commands(&lines),
        ["JOIN", "332", "333", "353", "366"],
        "{lines:#?}"
    );
    assert_eq!(lines[1], ":test.server 332 bob #lobby :Welcome all");
    let who_time = palaver_test_support::Line(lines[2].clone());
    assert_eq!(who_time.param(0), "bob");
    assert_eq!(who_time.param(1), "#lobby");
    assert_eq!(who_time.param(2), "alice!~alice@127.0.0.1");
    assert!(
        who_time
            .param(3)
            .parse::<u64>()
            .is_ok_and(|t| t > 1_600_000_000),
        "{who_time:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn join_several_channels_with_keys() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = clients(&server, ["alice", "bob"]).await;
    join(&mut alice, "#a").await;
    join(&mut alice, "#b").await;
    ask(&mut alice, "MODE #a +k ka").await;
    ask(&mut alice, "MODE #b +k kb").await;

    // Keys are matched by position: swapped keys fit neither channel.
    assert_eq!(
        ask(&mut bob, "JOIN #a,#b kb,ka").await,
        [
            ":test.server 475 bob #a :Cannot join channel (+k)",
            ":test.server 475 bob #b :Cannot join channel (+k)",
        ]
    );
    // Right keys, and a third channel without a key (created by bob).
    let lines = ask(&mut bob, "JOIN #a,#b,#c ka,kb").await;
    let joins: Vec<&String> = lines.iter().filter(|l| l.contains(" JOIN ")).collect();
    assert_eq!(
        joins,
        [
            &format!("{} JOIN #a", src("bob")),
            &format!("{} JOIN #b", src("bob")),
            &format!("{} JOIN #c", src("bob")),
        ]
    );
    assert!(
        lines.contains(&":test.server 353 bob = #c :@bob".to_owned()),
        "{lines:#?}"
    );
    assert_eq!(
        pending(&mut alice).await,
        [
            format!("{} JOIN #a", src("bob")),
            format!("{} JOIN #b", src("bob"))
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn join_0_parts_every_channel() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = clients(&server, ["alice", "bob"]).await;
    for chan in ["#a", "#b"] {
        join(&mut alice, chan).await;
        join(&mut bob, chan).await;
    }
    alice.sync().await;

    let mut parts = ask(&mut bob, "JOIN 0").await;
    parts.sort();
    let expected = [
        format!("{} PART #a", src("bob")),
        format!("{} PART #b", src("bob")),
    ];
    assert_eq!(parts, expected);
    let mut seen = pending(&mut alice).await;
    seen.sort();
    assert_eq!(seen, expected);
    // bob is in nothing now: parting again is 442.
    assert_eq!(
        ask(&mut bob, "PART #a").await,
        [":test.server 442 bob #a :You're not on that channel"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn invalid_channel_names_are_403() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    assert_eq!(
        ask(&mut alice, "JOIN lobby,#,#ok").await,
        [
            ":test.server 403 alice lobby :No such channel".to_owned(),
            ":test.server 403 alice # :No such channel".to_owned(),
            format!("{} JOIN #ok", src("alice")),
            ":test.server 353 alice = #ok :@alice".to_owned(),
            ":test.server 366 alice #ok :End of /NAMES list".to_owned(),
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn too_many_channels_is_405() {
    let mut config = test_config();
    config.limits.max_channels_per_client = 2;
    let server = TestServer::with_config(config).await;
    let mut alice = server.client("alice").await;

    let lines = ask(&mut alice, "JOIN #a,#b,#c").await;
    assert_eq!(
        commands(&lines),
        ["JOIN", "353", "366", "JOIN", "353", "366", "405"],
        "{lines:#?}"
    );
    assert_eq!(
        lines[6],
        ":test.server 405 alice #c :You have joined too many channels"
    );
    // Leaving one makes room again.
    ask(&mut alice, "PART #a").await;
    let lines = ask(&mut alice, "JOIN #c").await;
    assert_eq!(lines[0], format!("{} JOIN #c", src("alice")));
    server.shutdown().await;
}

#[tokio::test]
async fn part_with_and_without_reason_and_its_errors() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] =
        in_channel(&server, "#lobby", ["alice", "bob", "carol"]).await;
    join(&mut carol, "#other").await;
    carol.sync().await;

    let part = format!("{} PART #lobby :bye now", src("bob"));
    assert_eq!(ask(&mut bob, "PART #lobby :bye now").await, [part.as_str()]);
    assert_eq!(pending(&mut alice).await, [part.as_str()]);
    assert_eq!(pending(&mut carol).await, [part]);

    let part = format!("{} PART #lobby", src("carol"));
    assert_eq!(ask(&mut carol, "PART #lobby").await, [part.as_str()]);
    assert_eq!(pending(&mut alice).await, [part]);
    assert_silent(&mut bob).await;

    assert_eq!(
        ask(&mut alice, "PART #other,#nowhere").await,
        [
            ":test.server 442 alice #other :You're not on that channel",
            ":test.server 403 alice #nowhere :No such channel",
        ]
    );
    assert_silent(&mut carol).await;
    // The last member leaving destroys the channel.
    ask(&mut carol, "PART #other").await;
    assert_eq!(
        ask(&mut alice, "PART #other").await,
        [":test.server 403 alice #other :No such channel"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn topic_set_query_and_clear() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = in_channel(&server, "#lobby", ["alice", "bob"]).await;

    assert_eq!(
        ask(&mut bob, "TOPIC #lobby").await,
        [":test.server 331 bob #lobby :No topic is set"]
    );
    let set = format!("{} TOPIC #lobby :Rust and IRC", src("alice"));
    assert_eq!(
        ask(&mut alice, "TOPIC #lobby :Rust and IRC").await,
        [set.as_str()]
    );
    assert_eq!(pending(&mut bob).await, [set]);

    let lines = ask(&mut bob, "TOPIC #lobby").await;
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(lines[0], ":test.server 332 bob #lobby :Rust and IRC");
    assert!(
        lines[1].starts_with(":test.server 333 bob #lobby alice!~alice@127.0.0.1 "),
        "{lines:#?}"
    );

    // An empty topic clears it.
    let clear = format!("{} TOPIC #lobby :", src("alice"));
    assert_eq!(ask(&mut alice, "TOPIC #lobby :").await, [clear.as_str()]);
    assert_eq!(pending(&mut bob).await, [clear]);
    assert_eq!(
        ask(&mut bob, "TOPIC #lobby").await,
        [":test.server 331 bob #lobby :No topic is set"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn topic_permissions() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = in_channel(&server, "#lobby", ["alice", "bob"]).await;
    let mut carol = server.client("carol").await;

    // New channels are +t: only operators set the topic.
    assert_eq!(
        ask(&mut bob, "TOPIC #lobby :mine").await,
        [":test.server 482 bob #lobby :You're not channel operator"]
    );
    assert_eq!(
        ask(&mut carol, "TOPIC #lobby :outsider").await,
        [":test.server 442 carol #lobby :You're not on that channel"]
    );
    assert_eq!(
        ask(&mut carol, "TOPIC #nowhere").await,
        [":test.server 403 carol #nowhere :No such channel"]
    );
    assert_silent(&mut alice).await;

    // Once -t, any member may.
    ask(&mut alice, "MODE #lobby -t").await;
    bob.sync().await;
    let set = format!("{} TOPIC #lobby :mine", src("bob"));
    assert_eq!(ask(&mut bob, "TOPIC #lobby :mine").await, [set.as_str()]);
    assert_eq!(pending(&mut alice).await, [set]);
    // A non-member may read the topic of a channel that is not secret.
    assert_eq!(ask(&mut carol, "TOPIC #lobby").await.len(), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn names_lists_members_with_prefixes_and_hides_what_it_must() {
    let server = TestServer::start().await;
    let [mut alice, _bob, mut carol] =
        in_channel(&server, "#lobby", ["alice", "bob", "carol"]).await;
    ask(&mut alice, "MODE #lobby +v bob").await;
    ask(&mut carol, "MODE carol +i").await;
    let mut dave = server.client("dave").await;

    assert_eq!(
        ask(&mut alice, "NAMES #lobby").await,
        [
            ":test.server 353 alice = #lobby :@alice +bob carol",
            ":test.server 366 alice #lobby :End of /NAMES list",
        ]
    );
    // A non-member does not see the invisible carol.
    assert_eq!(
        ask(&mut dave, "NAMES #lobby,#nowhere").await,
        [
            ":test.server 353 dave = #lobby :@alice +bob",
            ":test.server 366 dave #lobby,#nowhere :End of /NAMES list",
        ]
    );
    // Secret channels: '@' symbol for members, nothing but 366 for others.
    ask(&mut alice, "MODE #lobby +s").await;
    assert_eq!(
        ask(&mut alice, "NAMES #lobby").await[0],
        ":test.server 353 alice @ #lobby :@alice +bob carol"
    );
    assert_eq!(
        ask(&mut dave, "NAMES #lobby").await,
        [":test.server 366 dave #lobby :End of /NAMES list"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn list_shows_channels_but_hides_secret_ones_from_non_members() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = clients(&server, ["alice", "bob", "carol"]).await;
    join(&mut alice, "#pub").await;
    join(&mut carol, "#pub").await;
    ask(&mut alice, "TOPIC #pub :open to all").await;
    join(&mut bob, "#sec").await;
    ask(&mut bob, "MODE #sec +s").await;
    carol.sync().await;

    assert_eq!(
        ask(&mut carol, "LIST").await,
        [
            ":test.server 321 carol Channel :Users  Name",
            ":test.server 322 carol #pub 2 :[+nt] open to all",
            ":test.server 323 carol :End of /LIST",
        ]
    );
    assert_eq!(
        ask(&mut bob, "LIST").await,
        [
            ":test.server 321 bob Channel :Users  Name",
            ":test.server 322 bob #pub 2 :[+nt] open to all",
            ":test.server 322 bob #sec 1 :[+nst] ",
            ":test.server 323 bob :End of /LIST",
        ]
    );
    // A mask filters.
    assert_eq!(
        ask(&mut bob, "LIST #s*").await,
        [
            ":test.server 321 bob Channel :Users  Name",
            ":test.server 322 bob #sec 1 :[+nst] ",
            ":test.server 323 bob :End of /LIST",
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn kick_needs_op_and_removes_the_victim() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] =
        in_channel(&server, "#lobby", ["alice", "bob", "carol"]).await;
    let mut dave = server.client("dave").await;

    assert_eq!(
        ask(&mut bob, "KICK #lobby carol").await,
        [":test.server 482 bob #lobby :You're not channel operator"]
    );
    assert_eq!(
        ask(&mut dave, "KICK #lobby carol").await,
        [":test.server 442 dave #lobby :You're not on that channel"]
    );
    assert_eq!(
        ask(&mut alice, "KICK #lobby dave").await,
        [":test.server 441 alice dave #lobby :They aren't on that channel"]
    );
    assert_eq!(
        ask(&mut alice, "KICK #nowhere dave").await,
        [":test.server 403 alice #nowhere :No such channel"]
    );
    assert_silent(&mut carol).await;

    let kick = format!("{} KICK #lobby bob :behave", src("alice"));
    assert_eq!(
        ask(&mut alice, "KICK #lobby bob :behave").await,
        [kick.as_str()]
    );
    assert_eq!(pending(&mut bob).await, [kick.as_str()]);
    assert_eq!(pending(&mut carol).await, [kick]);
    assert_silent(&mut dave).await;

    // bob is gone: not in NAMES, cannot speak, and hears nothing more.
    assert_eq!(
        ask(&mut alice, "NAMES #lobby").await[0],
        ":test.server 353 alice = #lobby :@alice carol"
    );
    assert_eq!(
        ask(&mut bob, "PRIVMSG #lobby :hello?").await,
        [":test.server 404 bob #lobby :Cannot send to channel (no external messages)"]
    );
    ask(&mut carol, "PRIVMSG #lobby :bob is gone").await;
    assert_eq!(
        pending(&mut alice).await,
        [format!("{} PRIVMSG #lobby :bob is gone", src("carol"))]
    );
    assert_silent(&mut bob).await;

    // Without a reason, the kicker's nickname is the reason.
    let kick = format!("{} KICK #lobby carol :alice", src("alice"));
    assert_eq!(ask(&mut alice, "KICK #lobby carol").await, [kick.as_str()]);
    assert_eq!(pending(&mut carol).await, [kick]);
    server.shutdown().await;
}

#[tokio::test]
async fn invite_lets_a_user_into_an_invite_only_channel() {
    let server = TestServer::start().await;
    let [mut alice, mut carol] = in_channel(&server, "#priv", ["alice", "carol"]).await;
    ask(&mut alice, "MODE #priv +i").await;
    carol.sync().await;
    let mut bob = server.client("bob").await;

    assert_eq!(
        ask(&mut bob, "JOIN #priv").await,
        [":test.server 473 bob #priv :Cannot join channel (+i)"]
    );
    // Only operators invite into a +i channel.
    assert_eq!(
        ask(&mut carol, "INVITE bob #priv").await,
        [":test.server 482 carol #priv :You're not channel operator"]
    );
    assert_silent(&mut bob).await;

    assert_eq!(
        ask(&mut alice, "INVITE bob #priv").await,
        [":test.server 341 alice bob #priv"]
    );
    assert_eq!(
        pending(&mut bob).await,
        [format!("{} INVITE bob #priv", src("alice"))]
    );
    assert_silent(&mut carol).await;

    let lines = ask(&mut bob, "JOIN #priv").await;
    assert_eq!(lines[0], format!("{} JOIN #priv", src("bob")));
    assert_eq!(lines[1], ":test.server 353 bob = #priv :@alice carol bob");

    assert_eq!(
        ask(&mut alice, "INVITE bob #priv").await,
        [
            format!("{} JOIN #priv", src("bob")),
            ":test.server 443 alice bob #priv :is already on channel".to_owned(),
        ]
    );
    assert_eq!(
        ask(&mut alice, "INVITE nobody #priv").await,
        [":test.server 401 alice nobody :No such nick/channel"]
    );

    // The invitation was used up: after leaving, bob cannot come back uninvited.
    ask(&mut bob, "PART #priv").await;
    assert_eq!(
        ask(&mut bob, "JOIN #priv").await,
        [":test.server 473 bob #priv :Cannot join channel (+i)"]
    );
    server.shutdown().await;
}
