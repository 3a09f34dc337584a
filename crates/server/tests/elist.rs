//! LIST filters (`ELIST=CMNTU`): masks, negated masks, user counts, creation and
//! topic times; sorted output; secret channels only for their members.

use palaver_test_support::{Line, TestClient, TestServer};

use crate::channels::{ask, clients, in_channel, join};

/// The channels a LIST answered, in order, after checking it is framed by 321/323.
async fn listed(client: &mut TestClient, line: &str) -> Vec<String> {
    let lines: Vec<Line> = ask(client, line).await.into_iter().map(Line).collect();
    let commands: Vec<&str> = lines.iter().map(Line::command).collect();
    assert_eq!(commands.first(), Some(&"321"), "{lines:#?}");
    assert_eq!(commands.last(), Some(&"323"), "{lines:#?}");
    lines[1..lines.len() - 1]
        .iter()
        .map(|l| {
            assert_eq!(l.command(), "322", "{lines:#?}");
            l.param(1)
        })
        .collect()
}

#[tokio::test]
async fn isupport_announces_elist() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let version = ask(&mut alice, "VERSION").await.join("\n");
    assert!(version.contains(" ELIST=CMNTU "), "{version}");
    server.shutdown().await;
}

#[tokio::test]
async fn masks_and_negated_masks() {
    let server = TestServer::start().await;
    let [mut foo, mut bar] = clients(&server, ["foo", "bar"]).await;
    join(&mut foo, "#chan2").await;
    join(&mut foo, "#chan1").await;

    // Sorted by name, whatever the creation order.
    assert_eq!(listed(&mut bar, "LIST").await, ["#chan1", "#chan2"]);
    for (query, expected) in [
        ("LIST *an1", &["#chan1"][..]),
        ("LIST *an2", &["#chan2"]),
        ("LIST #c*n2", &["#chan2"]),
        ("LIST *an3", &[]),
        ("LIST #ch*", &["#chan1", "#chan2"]),
        ("LIST #CHAN1", &["#chan1"]),
        ("LIST #chan1,#chan2", &["#chan1", "#chan2"]),
        ("LIST #nonexistent", &[]),
        ("LIST !*an1", &["#chan2"]),
        ("LIST !*an2", &["#chan1"]),
        ("LIST !#c*n2", &["#chan1"]),
        ("LIST !*an3", &["#chan1", "#chan2"]),
        ("LIST !#ch*", &[]),
        // A mask and a negated mask together.
        ("LIST #ch*,!*2", &["#chan1"]),
    ] {
        assert_eq!(listed(&mut bar, query).await, expected, "{query}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn user_counts() {
    let server = TestServer::start().await;
    let [mut foo, mut bar, mut baz] = clients(&server, ["foo", "bar", "baz"]).await;
    join(&mut foo, "#chan1").await;
    join(&mut foo, "#chan2").await;
    join(&mut bar, "#chan2").await;

    for (query, expected) in [
        ("LIST >0", &["#chan1", "#chan2"][..]),
        ("LIST <1", &[]),
        ("LIST <100", &["#chan1", "#chan2"]),
        ("LIST >1", &["#chan2"]),
        ("LIST <2", &["#chan1"]),
        ("LIST >0,<2", &["#chan1"]),
        // Conditions in the second parameter, masks in the first.
        ("LIST #chan* >1", &["#chan2"]),
        ("LIST #chan1 >1", &[]),
        ("LIST #chan*,>1", &["#chan2"]),
    ] {
        assert_eq!(listed(&mut baz, query).await, expected, "{query}");
    }

    // Invisible users are not counted for outsiders, as LIST shows them.
    ask(&mut bar, "MODE bar +i").await;
    foo.sync().await;
    assert_eq!(listed(&mut baz, "LIST >1").await, Vec::<String>::new());
    assert_eq!(listed(&mut foo, "LIST >1").await, ["#chan2"]);
    server.shutdown().await;
}

#[tokio::test]
async fn creation_and_topic_times_in_minutes() {
    let server = TestServer::start().await;
    let [mut foo] = in_channel(&server, "#chan1", ["foo"]).await;
    join(&mut foo, "#chan2").await;
    ask(&mut foo, "TOPIC #chan1 :First channel").await;
    let mut bar = server.client("bar").await;

    // Both channels were created (and #chan1's topic set) less than a minute ago.
    for (query, expected) in [
        ("LIST C<1", &["#chan1", "#chan2"][..]),
        ("LIST C<10", &["#chan1", "#chan2"]),
        ("LIST C>0", &["#chan1", "#chan2"]),
        ("LIST C<0", &[]),
        ("LIST C>1", &[]),
        // Only a channel with a topic has a topic time.
        ("LIST T<1", &["#chan1"]),
        ("LIST T<10", &["#chan1"]),
        ("LIST T>0", &["#chan1"]),
        ("LIST T<0", &[]),
        ("LIST T>1", &[]),
        ("LIST c<1,t<1", &["#chan1"]),
        ("LIST #chan2 C<1", &["#chan2"]),
    ] {
        assert_eq!(listed(&mut bar, query).await, expected, "{query}");
    }

    // Clearing the topic removes the topic time.
    ask(&mut foo, "TOPIC #chan1 :").await;
    assert_eq!(listed(&mut bar, "LIST T<10").await, Vec::<String>::new());
    server.shutdown().await;
}

#[tokio::test]
async fn filters_never_reveal_secret_channels() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = clients(&server, ["alice", "bob"]).await;
    join(&mut alice, "#open").await;
    join(&mut alice, "#hidden").await;
    ask(&mut alice, "MODE #hidden +s").await;

    for query in [
        "LIST",
        "LIST #hidden",
        "LIST !#open",
        "LIST >0",
        "LIST C<10",
    ] {
        assert_eq!(
            listed(&mut bob, query).await,
            if query == "LIST" || query == "LIST >0" || query == "LIST C<10" {
                vec!["#open".to_owned()]
            } else {
                Vec::new()
            },
            "{query}"
        );
        assert!(
            listed(&mut alice, query)
                .await
                .contains(&"#hidden".to_owned()),
            "{query}"
        );
    }
    // The 322 line itself: name, visible users, modes and topic.
    let lines = ask(&mut alice, "LIST #hidden").await;
    assert_eq!(lines[1], ":test.server 322 alice #hidden 1 :[+nst] ");
    server.shutdown().await;
}
