//! MODE for users (`+i`) and channels (status, bans, keys, limits, flags).

use palaver_test_support::{Line, TestServer};

use crate::channels::{ask, assert_silent, clients, commands, in_channel, join, pending, src};

#[tokio::test]
async fn user_mode_invisible_and_221() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;

    assert_eq!(
        ask(&mut alice, "MODE alice").await,
        [":test.server 221 alice +"]
    );
    assert_eq!(
        ask(&mut alice, "MODE alice +i").await,
        [":alice MODE alice :+i"]
    );
    assert_eq!(
        ask(&mut alice, "MODE ALICE").await,
        [":test.server 221 alice +i"]
    );
    // Setting what is already set changes nothing and says nothing.
    assert!(ask(&mut alice, "MODE alice +i").await.is_empty());
    // Users cannot make themselves operators.
    assert!(ask(&mut alice, "MODE alice +o").await.is_empty());
    assert_eq!(
        ask(&mut alice, "MODE alice -i").await,
        [":alice MODE alice :-i"]
    );
    assert_eq!(
        ask(&mut alice, "MODE alice").await,
        [":test.server 221 alice +"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn user_mode_errors_502_501_401() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = clients(&server, ["alice", "bob"]).await;

    for line in ["MODE bob +i", "MODE bob"] {
        assert_eq!(
            ask(&mut alice, line).await,
            [":test.server 502 alice :Can't change mode for other users"],
            "{line}"
        );
    }
    assert_silent(&mut bob).await;
    assert_eq!(ask(&mut bob, "MODE bob").await, [":test.server 221 bob +"]);

    assert_eq!(
        ask(&mut alice, "MODE alice +x").await,
        [":test.server 501 alice :Unknown MODE flag"]
    );
    // Known flags in the same change still apply.
    assert_eq!(
        ask(&mut alice, "MODE alice +xi").await,
        [
            ":test.server 501 alice :Unknown MODE flag",
            ":alice MODE alice :+i"
        ]
    );
    assert_eq!(
        ask(&mut alice, "MODE nobody +i").await,
        [":test.server 401 alice nobody :No such nick/channel"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn channel_mode_query_is_324_and_329() {
    let server = TestServer::start().await;
    let [mut alice] = in_channel(&server, "#lobby", ["alice"]).await;
    let mut bob = server.client("bob").await;

    let lines: Vec<Line> = ask(&mut alice, "MODE #lobby")
        .await
        .into_iter()
        .map(Line)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(lines[0].0, ":test.server 324 alice #lobby +nt");
    assert_eq!(lines[1].command(), "329");
    assert_eq!(lines[1].param(0), "alice");
    assert_eq!(lines[1].param(1), "#lobby");
    assert!(
        lines[1]
            .param(2)
            .parse::<u64>()
            .is_ok_and(|t| t > 1_600_000_000),
        "{lines:#?}"
    );

    // The key is shown to members only.
    ask(&mut alice, "MODE #lobby +kl sesame 10").await;
    assert_eq!(
        ask(&mut alice, "MODE #lobby").await[0],
        ":test.server 324 alice #lobby +ntkl sesame 10"
    );
    assert_eq!(
        ask(&mut bob, "MODE #lobby").await[0],
        ":test.server 324 bob #lobby +ntkl * 10"
    );
    assert_eq!(
        ask(&mut bob, "MODE #nowhere").await,
        [":test.server 403 bob #nowhere :No such channel"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn op_and_voice_are_broadcast() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] =
        in_channel(&server, "#lobby", ["alice", "bob", "carol"]).await;
    let mut dave = server.client("dave").await;

    let op = format!("{} MODE #lobby +o bob", src("alice"));
    assert_eq!(ask(&mut alice, "MODE #lobby +o bob").await, [op.as_str()]);
    assert_eq!(pending(&mut bob).await, [op.as_str()]);
    assert_eq!(pending(&mut carol).await, [op]);
    assert_silent(&mut dave).await;

    // The new operator can use it.
    let voice = format!("{} MODE #lobby +v carol", src("bob"));
    assert_eq!(
        ask(&mut bob, "MODE #lobby +v carol").await,
        [voice.as_str()]
    );
    assert_eq!(pending(&mut alice).await, [voice.as_str()]);
    assert_eq!(pending(&mut carol).await, [voice]);
    assert_eq!(
        ask(&mut alice, "NAMES #lobby").await[0],
        ":test.server 353 alice = #lobby :@alice @bob +carol"
    );

    let deop = format!("{} MODE #lobby -o+v bob bob", src("alice"));
    assert_eq!(
        ask(&mut alice, "MODE #lobby -o+v bob bob").await,
        [deop.as_str()]
    );
    assert_eq!(pending(&mut bob).await, [deop.as_str()]);
    assert_eq!(pending(&mut carol).await, [deop]);
    assert_eq!(
        ask(&mut bob, "MODE #lobby -v carol").await,
        [":test.server 482 bob #lobby :You're not channel operator"]
    );

    // No-ops, unknown nicks and non-members.
    assert!(ask(&mut alice, "MODE #lobby +o alice").await.is_empty());
    assert_eq!(
        ask(&mut alice, "MODE #lobby +o nobody").await,
        [":test.server 401 alice nobody :No such nick/channel"]
    );
    assert_eq!(
        ask(&mut alice, "MODE #lobby +v dave").await,
        [":test.server 441 alice dave #lobby :They aren't on that channel"]
    );
    assert_silent(&mut bob).await;
    server.shutdown().await;
}

#[tokio::test]
async fn bans_are_normalised_listed_and_enforced() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = in_channel(&server, "#lobby", ["alice", "bob"]).await;
    let mut dave = server.client("dave").await;

    let ban = format!("{} MODE #lobby +b dave!*@*", src("alice"));
    assert_eq!(ask(&mut alice, "MODE #lobby +b dave").await, [ban.as_str()]);
    assert_eq!(pending(&mut bob).await, [ban]);
    assert_eq!(
        ask(&mut alice, "MODE #lobby +b *@10.0.0.1").await,
        [format!("{} MODE #lobby +b *!*@10.0.0.1", src("alice"))]
    );
    // The same mask again (in another case) is not added twice.
    assert!(ask(&mut alice, "MODE #lobby +b DAVE!*@*").await.is_empty());
    bob.sync().await;

    // Anyone may list the bans; the list says who set each and when.
    let list: Vec<Line> = ask(&mut bob, "MODE #lobby +b")
        .await
        .into_iter()
        .map(Line)
        .collect();
    assert_eq!(list.len(), 3, "{list:#?}");
    for (line, mask) in list.iter().zip(["dave!*@*", "*!*@10.0.0.1"]) {
        assert_eq!(line.command(), "367");
        assert_eq!(
            [line.param(0), line.param(1), line.param(2), line.param(3)],
            ["bob", "#lobby", mask, "alice!~alice@127.0.0.1"]
        );
        assert!(line.param(4).parse::<u64>().is_ok(), "{line:?}");
    }
    assert_eq!(
        list[2].0,
        ":test.server 368 bob #lobby :End of channel ban list"
    );

    assert_eq!(
        ask(&mut dave, "JOIN #lobby").await,
        [":test.server 474 dave #lobby :Cannot join channel (+b)"]
    );
    assert_silent(&mut alice).await;

    // Removal matches case-insensitively and announces the stored mask.
    let unban = format!("{} MODE #lobby -b dave!*@*", src("alice"));
    assert_eq!(
        ask(&mut alice, "MODE #lobby -b DAVE!*@*").await,
        [unban.as_str()]
    );
    assert_eq!(pending(&mut bob).await, [unban]);
    assert_eq!(
        ask(&mut dave, "JOIN #lobby").await[0],
        format!("{} JOIN #lobby", src("dave"))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn invite_only_key_and_limit() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = clients(&server, ["alice", "bob"]).await;
    join(&mut alice, "#c").await;

    // +i
    assert_eq!(
        ask(&mut alice, "MODE #c +i").await,
        [format!("{} MODE #c +i", src("alice"))]
    );
    assert_eq!(
        ask(&mut bob, "JOIN #c").await,
        [":test.server 473 bob #c :Cannot join channel (+i)"]
    );
    ask(&mut alice, "MODE #c -i").await;

    // +k
    assert_eq!(
        ask(&mut alice, "MODE #c +k sesame").await,
        [format!("{} MODE #c +k sesame", src("alice"))]
    );
    for line in ["JOIN #c", "JOIN #c wrong"] {
        assert_eq!(
            ask(&mut bob, line).await,
            [":test.server 475 bob #c :Cannot join channel (+k)"],
            "{line}"
        );
    }
    assert_eq!(
        ask(&mut bob, "JOIN #c sesame").await[0],
        format!("{} JOIN #c", src("bob"))
    );
    alice.sync().await;
    // -k does not reveal the key it removes.
    let unkey = format!("{} MODE #c -k *", src("alice"));
    assert_eq!(ask(&mut alice, "MODE #c -k sesame").await, [unkey.as_str()]);
    assert_eq!(pending(&mut bob).await, [unkey]);

    // +l 2 with two members: a third cannot join until the limit is lifted.
    let limit = format!("{} MODE #c +l 2", src("alice"));
    assert_eq!(ask(&mut alice, "MODE #c +l 2").await, [limit.as_str()]);
    assert_eq!(pending(&mut bob).await, [limit]);
    let mut carol = server.client("carol").await;
    assert_eq!(
        ask(&mut carol, "JOIN #c").await,
        [":test.server 471 carol #c :Cannot join channel (+l)"]
    );
    assert_eq!(
        ask(&mut alice, "MODE #c -l").await,
        [format!("{} MODE #c -l", src("alice"))]
    );
    assert_eq!(
        ask(&mut carol, "JOIN #c").await[0],
        format!("{} JOIN #c", src("carol"))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn flags_m_n_s_t_are_announced_shown_and_enforced() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = in_channel(&server, "#c", ["alice", "bob"]).await;
    let mut dave = server.client("dave").await;

    let set = format!("{} MODE #c +ms-nt", src("alice"));
    assert_eq!(ask(&mut alice, "MODE #c +ms-nt").await, [set.as_str()]);
    assert_eq!(pending(&mut bob).await, [set]);
    assert_eq!(
        ask(&mut alice, "MODE #c").await[0],
        ":test.server 324 alice #c +ms"
    );

    // +m: bob (no voice) is silenced; -n: dave (outside) is not refused for being
    // outside, but +m applies to him as well (told as 401: the channel is +s).
    assert_eq!(
        ask(&mut bob, "PRIVMSG #c :hi").await,
        [":test.server 404 bob #c :Cannot send to channel (+m)"]
    );
    assert_eq!(
        ask(&mut dave, "PRIVMSG #c :hi").await,
        [":test.server 401 dave #c :No such nick/channel"]
    );
    // -t: any member sets the topic.
    assert_eq!(
        ask(&mut bob, "TOPIC #c :bob was here").await,
        [format!("{} TOPIC #c :bob was here", src("bob"))]
    );
    // +s: hidden from outsiders' LIST.
    assert_eq!(
        ask(&mut dave, "LIST").await,
        [
            ":test.server 321 dave Channel :Users  Name",
            ":test.server 323 dave :End of /LIST",
        ]
    );
    alice.sync().await;

    let unset = format!("{} MODE #c -ms+nt", src("alice"));
    assert_eq!(ask(&mut alice, "MODE #c -ms+nt").await, [unset.as_str()]);
    assert_eq!(pending(&mut bob).await, [unset]);
    assert_eq!(
        ask(&mut alice, "MODE #c").await[0],
        ":test.server 324 alice #c +nt"
    );
    assert_eq!(
        ask(&mut dave, "PRIVMSG #c :hi").await,
        [":test.server 404 dave #c :Cannot send to channel (no external messages)"]
    );
    assert_eq!(
        ask(&mut bob, "TOPIC #c :again").await,
        [":test.server 482 bob #c :You're not channel operator"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn non_operators_cannot_change_channel_modes() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = in_channel(&server, "#c", ["alice", "bob"]).await;
    let mut dave = server.client("dave").await;

    for line in [
        "MODE #c +m",
        "MODE #c +o bob",
        "MODE #c +b alice",
        "MODE #c -nt",
    ] {
        assert_eq!(
            ask(&mut bob, line).await,
            [":test.server 482 bob #c :You're not channel operator"],
            "{line}"
        );
    }
    assert_eq!(
        ask(&mut dave, "MODE #c +m").await,
        [":test.server 482 dave #c :You're not channel operator"]
    );
    assert_silent(&mut alice).await;
    assert_eq!(
        ask(&mut bob, "MODE #c").await[0],
        ":test.server 324 bob #c +nt"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_channel_mode_is_472() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = in_channel(&server, "#c", ["alice", "bob"]).await;

    assert_eq!(
        ask(&mut alice, "MODE #c +Q").await,
        [":test.server 472 alice Q :is unknown mode char to me"]
    );
    // The known letters around it still apply.
    assert_eq!(
        ask(&mut alice, "MODE #c +Qm").await,
        [
            ":test.server 472 alice Q :is unknown mode char to me".to_owned(),
            format!("{} MODE #c +m", src("alice")),
        ]
    );
    assert_eq!(
        pending(&mut bob).await,
        [format!("{} MODE #c +m", src("alice"))]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn at_most_modes_4_parameter_changes_per_command() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = in_channel(&server, "#c", ["alice", "bob"]).await;

    let applied = format!("{} MODE #c +bbbb a!*@* b!*@* c!*@* d!*@*", src("alice"));
    assert_eq!(
        ask(&mut alice, "MODE #c +bbbbb a b c d e").await,
        [applied.as_str()]
    );
    assert_eq!(pending(&mut bob).await, [applied]);
    let list = ask(&mut alice, "MODE #c b").await;
    let masks: Vec<String> = list
        .into_iter()
        .map(Line)
        .filter(|l| l.command() == "367")
        .map(|l| l.param(2))
        .collect();
    assert_eq!(masks, ["a!*@*", "b!*@*", "c!*@*", "d!*@*"]);

    // Flags without parameters do not count towards the limit.
    let applied = format!("{} MODE #c +mv-bbb bob a!*@* b!*@* c!*@*", src("alice"));
    assert_eq!(
        ask(&mut alice, "MODE #c +mv-bbbb bob a b c d").await,
        [applied.as_str()]
    );
    assert_eq!(pending(&mut bob).await, [applied]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_mute_lets_a_user_join_but_not_speak_unless_voiced() {
    let server = TestServer::start().await;
    let [mut op, mut bob] = in_channel(&server, "#m", ["op", "bob"]).await;
    assert_eq!(
        ask(&mut op, "MODE #m +b m:bob").await,
        [format!("{} MODE #m +b m:bob!*@*", src("op"))]
    );
    pending(&mut bob).await;
    assert_eq!(
        ask(&mut bob, "PRIVMSG #m :hello?").await,
        [":test.server 404 bob #m :Cannot send to channel (muted)"]
    );
    assert_silent(&mut op).await;
    // A mute does not keep anyone out.
    ask(&mut bob, "PART #m").await;
    pending(&mut op).await;
    bob.send("JOIN #m").await;
    bob.expect_command("366").await;
    pending(&mut op).await;
    // A mute exception (`+e m:mask`) lets the user speak again.
    ask(&mut op, "MODE #m +e m:*!~bob@*").await;
    pending(&mut bob).await;
    bob.send("PRIVMSG #m :excepted").await;
    assert_eq!(op.expect_command("PRIVMSG").await.last(), "excepted");
    ask(&mut op, "MODE #m -e m:*!~bob@*").await;
    pending(&mut bob).await;
    assert_eq!(
        commands(&ask(&mut bob, "PRIVMSG #m :muted again").await),
        ["404"]
    );
    ask(&mut op, "MODE #m +v bob").await;
    pending(&mut bob).await;
    bob.send("PRIVMSG #m :now I can").await;
    assert_eq!(op.expect_command("PRIVMSG").await.last(), "now I can");
}

#[tokio::test]
async fn no_ctcp_mode_refuses_ctcp_but_action() {
    let server = TestServer::start().await;
    let [mut op, mut bob] = in_channel(&server, "#c", ["op", "bob"]).await;
    ask(&mut op, "MODE #c +C").await;
    pending(&mut bob).await;
    assert_eq!(
        ask(&mut bob, "PRIVMSG #c :\u{1}VERSION\u{1}").await,
        [":test.server 404 bob #c :Cannot send CTCP to channel (+C)"]
    );
    bob.send("PRIVMSG #c :\u{1}ACTION waves\u{1}").await;
    assert_eq!(
        op.expect_command("PRIVMSG").await.last(),
        "\u{1}ACTION waves\u{1}"
    );
}
