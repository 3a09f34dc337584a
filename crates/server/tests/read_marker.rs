//! IRCv3 `draft/read-marker`: MARKREAD get and set, forward-only timestamps, the
//! marker after JOIN, errors.

use palaver_test_support::TestServer;

use crate::channels::{ask, assert_silent, src};

#[tokio::test]
async fn get_answers_star_until_set_then_the_stored_timestamp() {
    let server = TestServer::start().await;
    let mut alice = server.client_with_caps("alice", "draft/read-marker").await;
    assert_eq!(
        ask(&mut alice, "MARKREAD #nowhere").await,
        [":test.server MARKREAD #nowhere *"]
    );
    assert_eq!(
        ask(&mut alice, "MARKREAD #c timestamp=2019-01-04T14:33:26.123Z").await,
        [":test.server MARKREAD #c timestamp=2019-01-04T14:33:26.123Z"]
    );
    // Targets compare case-insensitively; the answer names the target as asked.
    assert_eq!(
        ask(&mut alice, "MARKREAD #C").await,
        [":test.server MARKREAD #C timestamp=2019-01-04T14:33:26.123Z"]
    );
    // Nicknames are targets too, whether or not they are online.
    assert_eq!(
        ask(&mut alice, "MARKREAD bob timestamp=2023-07-04T00:00:00Z").await,
        [":test.server MARKREAD bob timestamp=2023-07-04T00:00:00.000Z"]
    );
    assert_eq!(
        ask(&mut alice, "MARKREAD bob").await,
        [":test.server MARKREAD bob timestamp=2023-07-04T00:00:00.000Z"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn timestamps_only_move_forward_and_never_past_now() {
    let server = TestServer::start().await;
    let mut alice = server.client_with_caps("alice", "draft/read-marker").await;
    let newer = ":test.server MARKREAD #c timestamp=2019-06-01T12:00:00.000Z";
    assert_eq!(
        ask(&mut alice, "MARKREAD #c timestamp=2019-06-01T12:00:00.000Z").await,
        [newer]
    );
    // An older or equal timestamp is ignored and answered with the stored one.
    assert_eq!(
        ask(&mut alice, "MARKREAD #c timestamp=2019-01-01T00:00:00.000Z").await,
        [newer]
    );
    assert_eq!(
        ask(&mut alice, "MARKREAD #c timestamp=2019-06-01T12:00:00.000Z").await,
        [newer]
    );
    // A timestamp in the future is clamped to the present.
    let clamped = ask(&mut alice, "MARKREAD #c timestamp=2999-01-01T00:00:00.000Z").await;
    assert_eq!(clamped.len(), 1, "{clamped:#?}");
    let stored = clamped[0]
        .strip_prefix(":test.server MARKREAD #c timestamp=")
        .unwrap_or_else(|| panic!("{clamped:#?}"));
    assert!(
        ("2020".."2999").contains(&stored) && stored.len() == 24,
        "{stored}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn join_sends_the_marker_before_the_end_of_names_to_clients_with_the_cap() {
    let server = TestServer::start().await;
    let mut alice = server.client_with_caps("alice", "draft/read-marker").await;
    let mut bob = server.client("bob").await;
    assert_eq!(
        ask(&mut alice, "JOIN #c").await,
        [
            format!("{} JOIN #c", src("alice")),
            ":test.server MARKREAD #c *".to_owned(),
            ":test.server 353 alice = #c :@alice".to_owned(),
            ":test.server 366 alice #c :End of /NAMES list".to_owned(),
        ]
    );
    ask(&mut alice, "MARKREAD #c timestamp=2020-03-15T10:00:00.000Z").await;
    ask(&mut alice, "PART #c").await;
    // The marker outlives the membership, and uses the channel's own spelling.
    ask(&mut bob, "JOIN #c").await;
    let rejoin = ask(&mut alice, "JOIN #C").await;
    assert_eq!(
        rejoin[..2],
        [
            format!("{} JOIN #c", src("alice")),
            ":test.server MARKREAD #c timestamp=2020-03-15T10:00:00.000Z".to_owned(),
        ]
    );
    assert_eq!(
        rejoin.last().map(String::as_str),
        Some(":test.server 366 alice #c :End of /NAMES list")
    );
    // Without the capability, JOIN is as always.
    ask(&mut bob, "PART #c").await;
    assert_eq!(
        ask(&mut bob, "JOIN #c").await,
        [
            format!("{} JOIN #c", src("bob")),
            ":test.server 353 bob = #c :alice bob".to_owned(),
            ":test.server 366 bob #c :End of /NAMES list".to_owned(),
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn markers_are_private_to_their_connection() {
    let server = TestServer::start().await;
    let mut alice = server.client_with_caps("alice", "draft/read-marker").await;
    let mut bob = server.client_with_caps("bob", "draft/read-marker").await;
    ask(&mut alice, "MARKREAD #c timestamp=2021-05-20T08:30:00.000Z").await;
    assert_silent(&mut bob).await;
    assert_eq!(
        ask(&mut bob, "MARKREAD #c").await,
        [":test.server MARKREAD #c *"]
    );
    // A later connection with the same nickname starts without markers.
    alice.send("QUIT").await;
    alice.expect_closed().await;
    let mut again = server.client_with_caps("alice", "draft/read-marker").await;
    assert_eq!(
        ask(&mut again, "MARKREAD #c").await,
        [":test.server MARKREAD #c *"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_standard_replies() {
    let server = TestServer::start().await;
    let mut alice = server
        .client_with_caps("alice", "draft/read-marker labeled-response")
        .await;
    assert_eq!(
        ask(&mut alice, "MARKREAD").await,
        [":test.server FAIL MARKREAD NEED_MORE_PARAMS :Missing parameters"]
    );
    // `*` is for servers only.
    assert_eq!(
        ask(&mut alice, "MARKREAD #c *").await,
        [":test.server FAIL MARKREAD INVALID_PARAMS * :Invalid timestamp"]
    );
    assert_eq!(
        ask(&mut alice, "MARKREAD #c timestamp=not-a-timestamp").await,
        [":test.server FAIL MARKREAD INVALID_PARAMS timestamp=not-a-timestamp :Invalid timestamp"]
    );
    assert_eq!(
        ask(&mut alice, "MARKREAD #c 2019-01-04T14:33:26.123Z").await,
        [":test.server FAIL MARKREAD INVALID_PARAMS 2019-01-04T14:33:26.123Z :Invalid timestamp"]
    );
    assert_eq!(
        ask(&mut alice, "MARKREAD a,b").await,
        [":test.server FAIL MARKREAD INVALID_PARAMS a,b :Invalid target"]
    );
    // Nothing was stored by the refused requests; answers are labeled.
    assert_eq!(
        ask(&mut alice, "@label=x MARKREAD #c").await,
        ["@label=x :test.server MARKREAD #c *"]
    );
    assert_silent(&mut alice).await;
    server.shutdown().await;
}
