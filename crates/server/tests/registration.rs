//! Registration: NICK/USER, the welcome burst, and its errors.

use palaver_test_support::TestServer;

#[tokio::test]
async fn welcome_burst_has_001_to_005_lusers_and_motd() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    alice.send("NICK alice").await;
    alice.send("USER alice 0 * :Alice Liddell").await;
    let welcome = alice.expect_command("001").await;
    assert_eq!(welcome.param(0), "alice");
    assert!(welcome.last().ends_with("alice!~alice@127.0.0.1"), "{welcome:?}");
    for code in ["002", "003", "004"] {
        alice.expect_command(code).await;
    }
    let isupport = alice.expect_command("005").await;
    assert!(isupport.0.contains("CASEMAPPING=rfc1459"), "{isupport:?}");
    for code in ["251", "255", "375", "372", "376"] {
        alice.expect_command(code).await;
    }
    server.shutdown().await;
}
