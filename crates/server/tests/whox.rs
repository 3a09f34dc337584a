//! WHOX: `WHO <mask> %<fields>[,<token>]` answered with 354 RPL_WHOSPCRPL.

use palaver_test_support::TestServer;

use crate::channels::{ask, clients, in_channel};

#[tokio::test]
async fn every_field_in_the_standard_order() {
    let server = TestServer::start().await;
    let [_alice, mut bob] = in_channel(&server, "#lobby", ["alice", "bob"]).await;

    // Requested out of order; answered in the order t c u i h s n f d a o r.
    assert_eq!(
        ask(&mut bob, "WHO #lobby %raodfnshiuct,42").await,
        [
            ":test.server 354 bob 42 #lobby ~alice 127.0.0.1 127.0.0.1 test.server alice H@ 0 0 n/a :Test user alice",
            ":test.server 354 bob 42 #lobby ~bob 127.0.0.1 127.0.0.1 test.server bob H 0 0 n/a :Test user bob",
            ":test.server 315 bob #lobby :End of WHO list",
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn only_the_requested_fields() {
    let server = TestServer::start().await;
    let [mut alice, _bob] = clients(&server, ["alice", "bob"]).await;

    assert_eq!(
        ask(&mut alice, "WHO bob %na").await,
        [
            ":test.server 354 alice bob 0",
            ":test.server 315 alice bob :End of WHO list",
        ]
    );
    // `o` after `%` is the op-level field, not the operators-only filter.
    assert_eq!(
        ask(&mut alice, "WHO bob %no").await,
        [
            ":test.server 354 alice bob n/a",
            ":test.server 315 alice bob :End of WHO list",
        ]
    );
    // A user outside any visible channel is shown in `*`.
    assert_eq!(
        ask(&mut alice, "WHO b* %cn").await,
        [
            ":test.server 354 alice * bob",
            ":test.server 315 alice b* :End of WHO list",
        ]
    );
    // Idle seconds: a number.
    let lines = ask(&mut alice, "WHO bob %nl").await;
    let (head, idle) = lines[0].rsplit_once(' ').expect("two fields");
    assert_eq!(head, ":test.server 354 alice bob");
    assert!(idle.parse::<u64>().is_ok(), "{lines:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn tokens_must_be_up_to_three_digits() {
    let server = TestServer::start().await;
    let [mut alice, _bob] = clients(&server, ["alice", "bob"]).await;
    for (request, token) in [
        ("%tn,7", "7"),
        ("%tn,123", "123"),
        ("%tn,1234", "0"),
        ("%tn,abc", "0"),
        ("%tn", "0"),
        // A token without `t` is not sent.
        ("%n,55", ""),
    ] {
        let expected = if token.is_empty() {
            ":test.server 354 alice bob".to_owned()
        } else {
            format!(":test.server 354 alice {token} bob")
        };
        assert_eq!(
            ask(&mut alice, &format!("WHO bob {request}")).await[0],
            expected,
            "{request}"
        );
    }
    // No known field: no 354 at all, only the end.
    assert_eq!(
        ask(&mut alice, "WHO bob %xyz").await,
        [":test.server 315 alice bob :End of WHO list"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_operators_only_flag_still_works_before_the_percent() {
    let server = TestServer::start().await;
    let [mut alice, _bob] = clients(&server, ["alice", "bob"]).await;
    assert_eq!(
        ask(&mut alice, "WHO * o%n").await,
        [":test.server 315 alice * :End of WHO list"]
    );
    assert_eq!(
        ask(&mut alice, "WHO * %n").await,
        [
            ":test.server 354 alice alice",
            ":test.server 354 alice bob",
            ":test.server 315 alice * :End of WHO list",
        ]
    );
    // Plain WHO is unchanged.
    assert_eq!(
        ask(&mut alice, "WHO bob").await,
        [
            ":test.server 352 alice * ~bob 127.0.0.1 test.server bob H :0 Test user bob",
            ":test.server 315 alice bob :End of WHO list",
        ]
    );
    let isupport = ask(&mut alice, "VERSION").await.join("\n");
    assert!(isupport.contains(" WHOX "), "{isupport}");
    server.shutdown().await;
}
