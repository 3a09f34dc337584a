//! IRCv3 metadata (`draft/metadata-3`): the capability value, METADATA GET LIST SET
//! CLEAR SUB UNSUB SUBS SYNC, before-connect, notifications, JOIN and WHOIS.

use palaver_test_support::{TestClient, TestServer, test_config};

use crate::channels::{ask, assert_silent, join, pending};

const CAP_VALUE: &str =
    "draft/metadata-3=before-connect,max-subs=50,max-keys=20,max-key-bytes=64,max-value-bytes=300";

/// Registers `nick` with `draft/metadata-3` and `batch` (plus `extra` caps).
async fn meta_client(server: &TestServer, nick: &str, extra: &str) -> TestClient {
    server
        .client_with_caps(nick, &format!("draft/metadata-3 batch{extra}"))
        .await
}

/// Replaces batch references with `B1`, `B2`, ... in order of appearance, so
/// lines can be compared exactly.
fn norm(lines: Vec<String>) -> Vec<String> {
    let mut refs: Vec<String> = Vec::new();
    for line in &lines {
        let msg = palaver_test_support::Line(line.clone());
        if msg.command() == "BATCH"
            && let Some(reference) = msg.param(0).strip_prefix('+')
        {
            refs.push(reference.to_owned());
        }
    }
    lines
        .into_iter()
        .map(|mut line| {
            for (index, reference) in refs.iter().enumerate() {
                line = line.replace(reference.as_str(), &format!("B{}", index + 1));
            }
            line
        })
        .collect()
}

/// `ask`, with batch references normalised.
async fn query(client: &mut TestClient, line: &str) -> Vec<String> {
    norm(ask(client, line).await)
}

fn s(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|l| (*l).to_owned()).collect()
}

#[tokio::test]
async fn the_capability_value_is_shown_to_cap_302_clients_only() {
    let server = TestServer::start().await;
    let mut old = server.connect().await;
    let ls = ask(&mut old, "CAP LS").await.join(" ");
    assert!(ls.contains(" draft/metadata-3"), "{ls}");
    assert!(!ls.contains("draft/metadata-3="), "{ls}");

    let mut new = server.connect().await;
    let ls = ask(&mut new, "CAP LS 302").await.join(" ");
    assert!(ls.contains(CAP_VALUE), "{ls}");
    server.shutdown().await;
}

#[tokio::test]
async fn set_get_list_and_unset_on_oneself() {
    let server = TestServer::start().await;
    let mut foo = meta_client(&server, "foo", "").await;

    assert_eq!(
        query(&mut foo, "METADATA * GET display-name avatar").await,
        s(&[
            ":test.server BATCH +B1 metadata foo",
            "@batch=B1 :test.server 766 foo foo display-name :Key not set",
            "@batch=B1 :test.server 766 foo foo avatar :Key not set",
            ":test.server BATCH -B1",
        ])
    );
    assert_eq!(
        query(&mut foo, "METADATA * SET display-name :Foo The First").await,
        s(&[":test.server 761 foo foo display-name * :Foo The First"])
    );
    assert_eq!(
        query(
            &mut foo,
            "METADATA foo SET avatar :https://example.com/a.png"
        )
        .await,
        s(&[":test.server 761 foo foo avatar * :https://example.com/a.png"])
    );
    assert_eq!(
        query(&mut foo, "METADATA * GET display-name BAD").await,
        s(&[
            ":test.server BATCH +B1 metadata foo",
            "@batch=B1 :test.server 761 foo foo display-name * :Foo The First",
            "@batch=B1 :test.server WARN METADATA INVALID_KEY BAD :Invalid key",
            ":test.server BATCH -B1",
        ])
    );
    assert_eq!(
        query(&mut foo, "METADATA * LIST").await,
        s(&[
            ":test.server BATCH +B1 metadata foo",
            "@batch=B1 :test.server 761 foo foo avatar * :https://example.com/a.png",
            "@batch=B1 :test.server 761 foo foo display-name * :Foo The First",
            ":test.server BATCH -B1",
        ])
    );
    // No value (or an empty one) removes the key; removing it again is no error.
    assert_eq!(
        query(&mut foo, "METADATA * SET display-name").await,
        s(&[":test.server 766 foo foo display-name :Key not set"])
    );
    assert_eq!(
        query(&mut foo, "METADATA * SET avatar :").await,
        s(&[":test.server 766 foo foo avatar :Key not set"])
    );
    assert_eq!(
        query(&mut foo, "METADATA * LIST").await,
        s(&[
            ":test.server BATCH +B1 metadata foo",
            ":test.server BATCH -B1"
        ])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn without_batch_the_same_lines_come_unframed() {
    let server = TestServer::start().await;
    let mut foo = server.connect().await;
    foo.nick = "foo".to_owned();
    ask(&mut foo, "CAP REQ draft/metadata-3").await;
    foo.send("CAP END").await;
    foo.register("foo").await;
    ask(&mut foo, "METADATA * SET color :red").await;
    assert_eq!(
        ask(&mut foo, "METADATA * LIST").await,
        s(&[":test.server 761 foo foo color * :red"])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn errors_are_standard_replies() {
    let mut config = test_config();
    config.limits.metadata_max_keys = 2;
    let server = TestServer::with_config(config).await;
    let mut foo = meta_client(&server, "foo", "").await;
    let mut bar = meta_client(&server, "bar", "").await;

    for (line, reply) in [
        (
            "METADATA",
            "FAIL METADATA INVALID_PARAMS * :Not enough parameters",
        ),
        (
            "METADATA *",
            "FAIL METADATA INVALID_PARAMS * :Not enough parameters",
        ),
        (
            "METADATA * GET",
            "FAIL METADATA INVALID_PARAMS GET :Not enough parameters",
        ),
        (
            "METADATA * SNEEZE",
            "FAIL METADATA INVALID_PARAMS SNEEZE :Unknown subcommand",
        ),
        (
            "METADATA * SET a b c",
            "FAIL METADATA INVALID_PARAMS SET :Too many parameters",
        ),
        (
            "METADATA nobody LIST",
            "FAIL METADATA INVALID_TARGET nobody :Invalid metadata target",
        ),
        (
            "METADATA #none GET x",
            "FAIL METADATA INVALID_TARGET #none :Invalid metadata target",
        ),
        (
            "METADATA bar SUB x",
            "FAIL METADATA INVALID_TARGET bar :Invalid metadata target",
        ),
        (
            "METADATA * SET Bad :v",
            "FAIL METADATA INVALID_KEY Bad :Invalid key",
        ),
        (
            "METADATA * SET $url :v",
            "FAIL METADATA INVALID_KEY $url :Invalid key",
        ),
        (
            "METADATA bar SET x :v",
            "FAIL METADATA KEY_NO_PERMISSION bar x :Permission denied",
        ),
        (
            "METADATA bar CLEAR",
            "FAIL METADATA KEY_NO_PERMISSION bar * :Permission denied",
        ),
    ] {
        assert_eq!(
            ask(&mut foo, line).await,
            [format!(":test.server {reply}")],
            "{line}"
        );
    }
    let long = "x".repeat(301);
    assert_eq!(
        ask(&mut foo, &format!("METADATA * SET k :{long}")).await,
        [":test.server FAIL METADATA INVALID_VALUE k :Value too long (at most 300 bytes)"]
    );
    assert_eq!(
        ask(&mut foo, &format!("METADATA * SET k :{}", &long[1..]))
            .await
            .len(),
        1
    );
    // Values must be UTF-8 (the line is refused before METADATA sees it).
    foo.send_raw(b"METADATA * SET k :bad \xc3 utf-8\r\n").await;
    assert_eq!(
        pending(&mut foo).await,
        [":test.server FAIL METADATA INVALID_UTF8 :Message refused: your client must send UTF-8"]
    );
    ask(&mut foo, "METADATA * SET j :1").await;
    assert_eq!(
        ask(&mut foo, "METADATA * SET l :1").await,
        [":test.server FAIL METADATA LIMIT_REACHED SET foo 2 :Metadata limit reached"]
    );
    // Changing a key that is set is no new key.
    assert_eq!(
        ask(&mut foo, "METADATA * SET j :2").await,
        [":test.server 761 foo foo j * :2"]
    );
    assert_silent(&mut bar).await;
    server.shutdown().await;
}

#[tokio::test]
async fn metadata_set_before_registration_arrives_in_the_welcome_burst() {
    let server = TestServer::start().await;
    let mut foo = server.connect().await;
    foo.nick = "foo".to_owned();
    foo.send("CAP LS 302").await;
    foo.send("CAP REQ :draft/metadata-3 batch").await;
    foo.expect(|l| l.command() == "CAP" && l.param(1) == "ACK")
        .await;
    assert_eq!(
        ask(&mut foo, "METADATA * SET display-name :Foo The First").await,
        [":test.server 761 * * display-name * :Foo The First"]
    );
    // Before registration only `*` is a target, even with a nickname chosen.
    foo.send("NICK foo").await;
    assert_eq!(
        ask(&mut foo, "METADATA foo GET display-name").await,
        [":test.server FAIL METADATA INVALID_TARGET foo :Invalid metadata target"]
    );
    foo.send("USER foo 0 * :foo").await;
    foo.send("CAP END").await;
    let burst = norm(pending(&mut foo).await);
    let start = burst
        .iter()
        .position(|l| l.contains("BATCH +B1 metadata foo"))
        .expect("metadata batch in the burst");
    assert_eq!(
        burst[start..start + 3],
        s(&[
            ":test.server BATCH +B1 metadata foo",
            "@batch=B1 :test.server 761 foo foo display-name * :Foo The First",
            ":test.server BATCH -B1",
        ])
    );
    let motd_end = burst.iter().position(|l| l.contains(" 376 ")).expect("376");
    assert!(start < motd_end, "{burst:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn subscribers_sharing_a_channel_hear_of_changes() {
    let server = TestServer::start().await;
    let mut foo = meta_client(&server, "foo", "").await;
    let mut bar = meta_client(&server, "bar", "").await;
    let mut baz = meta_client(&server, "baz", "").await;
    let mut plain = server.client("plain").await;

    assert_eq!(
        ask(&mut bar, "METADATA * SUB display-name avatar Bad").await,
        [
            ":test.server 770 bar display-name avatar",
            ":test.server WARN METADATA INVALID_KEY Bad :Invalid key",
            ":test.server 774 bar *ALL 0 :Use METADATA *ALL SYNC for the current values",
        ]
    );
    // Subscribing again is no new subscription: no sync is suggested.
    assert_eq!(
        ask(&mut bar, "METADATA * SUB avatar").await,
        [":test.server 770 bar avatar"]
    );
    // Not sharing a channel yet: nobody hears.
    ask(&mut foo, "METADATA * SET display-name :One").await;
    assert_silent(&mut bar).await;

    for client in [&mut foo, &mut bar, &mut baz, &mut plain] {
        join(client, "#chan").await;
    }
    for client in [&mut foo, &mut bar, &mut baz, &mut plain] {
        pending(client).await;
    }
    assert_eq!(
        ask(&mut foo, "METADATA * SET display-name :Two").await,
        [":test.server 761 foo foo display-name * :Two"]
    );
    assert_eq!(
        pending(&mut bar).await,
        [":test.server 761 bar foo display-name * :Two"]
    );
    // Setting the same value again is no change.
    ask(&mut foo, "METADATA * SET display-name :Two").await;
    ask(&mut foo, "METADATA * SET display-name").await;
    assert_eq!(
        pending(&mut bar).await,
        [":test.server 766 bar foo display-name :Key not set"]
    );
    // Not subscribed to the key, or without the capability: nothing.
    ask(&mut foo, "METADATA * SET color :red").await;
    assert_silent(&mut bar).await;
    assert_silent(&mut baz).await;
    assert_silent(&mut plain).await;

    assert_eq!(
        ask(&mut bar, "METADATA * UNSUB display-name nope").await,
        [":test.server 771 bar display-name nope"]
    );
    assert_eq!(
        query(&mut bar, "METADATA * SUBS").await,
        s(&[
            ":test.server BATCH +B1 metadata-subs",
            "@batch=B1 :test.server 772 bar avatar",
            ":test.server BATCH -B1",
        ])
    );
    ask(&mut foo, "METADATA * SET display-name :Three").await;
    assert_silent(&mut bar).await;
    server.shutdown().await;
}

#[tokio::test]
async fn subscriptions_are_bounded() {
    let mut config = test_config();
    config.limits.metadata_max_subs = 2;
    let server = TestServer::with_config(config).await;
    let mut foo = meta_client(&server, "foo", "").await;
    assert_eq!(
        ask(&mut foo, "METADATA * SUB a b c d").await,
        [
            ":test.server 770 foo a b",
            ":test.server FAIL METADATA LIMIT_REACHED SUB c 2 :Too many subscriptions",
            ":test.server 774 foo *ALL 0 :Use METADATA *ALL SYNC for the current values",
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn channel_metadata_is_for_members_and_set_by_operators() {
    let server = TestServer::start().await;
    let mut foo = meta_client(&server, "foo", "").await;
    let mut bar = meta_client(&server, "bar", "").await;
    let mut out = meta_client(&server, "out", "").await;
    join(&mut foo, "#chan").await;
    join(&mut bar, "#chan").await;
    pending(&mut foo).await;
    pending(&mut bar).await;
    ask(&mut bar, "METADATA * SUB display-name").await;

    assert_eq!(
        ask(&mut foo, "METADATA #CHAN SET display-name :Hash").await,
        [":test.server 761 foo #chan display-name * :Hash"]
    );
    assert_eq!(
        pending(&mut bar).await,
        [":test.server 761 bar #chan display-name * :Hash"]
    );
    ask(&mut foo, "METADATA #chan SET url :https://example.com").await;
    assert_silent(&mut bar).await;
    assert_eq!(
        ask(&mut bar, "METADATA #chan SET url :mine").await,
        [":test.server FAIL METADATA KEY_NO_PERMISSION #chan url :Permission denied"]
    );
    assert_eq!(
        query(&mut bar, "METADATA #chan LIST").await,
        s(&[
            ":test.server BATCH +B1 metadata #chan",
            "@batch=B1 :test.server 761 bar #chan display-name * :Hash",
            "@batch=B1 :test.server 761 bar #chan url * :https://example.com",
            ":test.server BATCH -B1",
        ])
    );
    for line in [
        "METADATA #chan GET url",
        "METADATA #chan LIST",
        "METADATA #chan SYNC",
    ] {
        assert_eq!(
            ask(&mut out, line).await,
            [":test.server FAIL METADATA KEY_NO_PERMISSION #chan * :Permission denied"],
            "{line}"
        );
    }
    assert_eq!(
        query(&mut foo, "METADATA #chan CLEAR").await,
        s(&[
            ":test.server BATCH +B1 metadata #chan",
            "@batch=B1 :test.server 766 foo #chan display-name :Key not set",
            "@batch=B1 :test.server 766 foo #chan url :Key not set",
            ":test.server BATCH -B1",
        ])
    );
    assert_eq!(
        pending(&mut bar).await,
        [":test.server 766 bar #chan display-name :Key not set"]
    );

    // The channel's metadata goes with the channel.
    ask(&mut foo, "METADATA #chan SET topic-url :x").await;
    ask(&mut foo, "PART #chan").await;
    ask(&mut bar, "PART #chan").await;
    join(&mut foo, "#chan").await;
    pending(&mut foo).await;
    assert_eq!(
        query(&mut foo, "METADATA #chan LIST").await,
        s(&[
            ":test.server BATCH +B1 metadata #chan",
            ":test.server BATCH -B1"
        ])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn joining_syncs_the_channel_and_its_members() {
    let server = TestServer::start().await;
    let mut foo = meta_client(&server, "foo", "").await;
    let mut bar = meta_client(&server, "bar", "").await;
    ask(&mut bar, "METADATA * SUB display-name").await;
    join(&mut foo, "#chan").await;
    pending(&mut foo).await;
    ask(&mut foo, "METADATA * SET display-name :Foo").await;
    ask(&mut foo, "METADATA * SET color :red").await;
    ask(&mut foo, "METADATA #chan SET display-name :Chan").await;
    assert_silent(&mut bar).await;

    let lines = query(&mut bar, "JOIN #chan").await;
    assert_eq!(
        lines[lines.len() - 4..],
        s(&[
            ":test.server BATCH +B1 metadata #chan",
            "@batch=B1 :test.server 761 bar #chan display-name * :Chan",
            "@batch=B1 :test.server 761 bar foo display-name * :Foo",
            ":test.server BATCH -B1",
        ]),
        "{lines:#?}"
    );
    assert_eq!(
        query(&mut bar, "METADATA *ALL SYNC").await,
        s(&[
            ":test.server BATCH +B1 metadata *ALL",
            "@batch=B1 :test.server 761 bar #chan display-name * :Chan",
            "@batch=B1 :test.server 761 bar foo display-name * :Foo",
            ":test.server BATCH -B1",
        ])
    );
    assert_eq!(
        query(&mut bar, "METADATA foo SYNC").await,
        s(&[
            ":test.server BATCH +B1 metadata foo",
            "@batch=B1 :test.server 761 bar foo display-name * :Foo",
            ":test.server BATCH -B1",
        ])
    );
    // A joiner without the capability gets nothing extra.
    let mut plain = server.client("plain").await;
    let lines = ask(&mut plain, "JOIN #chan").await;
    assert!(
        lines.last().is_some_and(|l| l.contains(" 366 ")),
        "{lines:#?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_clients_metadata_leaves_with_it() {
    let server = TestServer::start().await;
    let mut foo = meta_client(&server, "foo", "").await;
    ask(&mut foo, "METADATA * SET display-name :Foo").await;
    foo.send("QUIT").await;
    foo.expect_closed().await;
    let mut bar = meta_client(&server, "bar", "").await;
    assert_eq!(
        ask(&mut bar, "METADATA foo GET display-name").await,
        [":test.server FAIL METADATA INVALID_TARGET foo :Invalid metadata target"]
    );
    let mut foo = meta_client(&server, "foo", "").await;
    assert_eq!(
        query(&mut foo, "METADATA * LIST").await,
        s(&[
            ":test.server BATCH +B1 metadata foo",
            ":test.server BATCH -B1"
        ])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn whois_shows_readable_keys() {
    let server = TestServer::start().await;
    let mut foo = meta_client(&server, "foo", "").await;
    let mut bar = server.client("bar").await;
    ask(&mut foo, "METADATA * SET display-name :Foo The First").await;
    ask(&mut foo, "METADATA * SET avatar :https://example.com/a.png").await;
    let lines = ask(&mut bar, "WHOIS foo").await;
    let keyvalues: Vec<&String> = lines.iter().filter(|l| l.contains(" 760 ")).collect();
    assert_eq!(
        keyvalues,
        [":test.server 760 bar foo display-name * :Foo The First"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_labeled_metadata_batch_nests_in_the_labeled_response() {
    let server = TestServer::start().await;
    let mut foo = meta_client(&server, "foo", " labeled-response").await;
    ask(&mut foo, "METADATA * SET color :red").await;
    assert_eq!(
        query(&mut foo, "@label=l1 METADATA * LIST").await,
        s(&[
            "@label=l1 :test.server BATCH +B1 labeled-response",
            "@batch=B1 :test.server BATCH +B2 metadata foo",
            "@batch=B2 :test.server 761 foo foo color * :red",
            "@batch=B1 :test.server BATCH -B2",
            ":test.server BATCH -B1",
        ])
    );
    assert_eq!(
        ask(&mut foo, "@label=l2 METADATA * SET color :blue").await,
        ["@label=l2 :test.server 761 foo foo color * :blue"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn monitors_hear_of_changes_and_are_told_to_sync() {
    let server = TestServer::start().await;
    let mut bar = meta_client(&server, "bar", "").await;
    ask(&mut bar, "METADATA * SUB status").await;
    assert_eq!(
        ask(&mut bar, "MONITOR + foo").await,
        [":test.server 731 bar :foo"]
    );
    let mut foo = meta_client(&server, "foo", "").await;
    assert_eq!(
        pending(&mut bar).await,
        [
            ":test.server 730 * :foo!~foo@127.0.0.1",
            ":test.server 774 bar foo 0 :Use METADATA SYNC for the current values",
        ]
    );
    ask(&mut foo, "METADATA * SET status :busy").await;
    assert_eq!(
        pending(&mut bar).await,
        [":test.server 761 bar foo status * :busy"]
    );
    assert_eq!(
        ask(&mut bar, "MONITOR S").await,
        [
            ":test.server 730 bar :foo!~foo@127.0.0.1",
            ":test.server 774 bar foo 0 :Use METADATA SYNC for the current values",
        ]
    );
    server.shutdown().await;
}
