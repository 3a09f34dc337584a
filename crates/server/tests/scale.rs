//! Scale: a thousand concurrent clients in one channel, each message delivered to every
//! other member exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use palaver_test_support::{TestClient, TestServer, raise_fd_limit};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const CLIENTS: usize = 1_000;
/// Connections accepted but not yet registered at any moment (see below).
const CONNECTING: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_members_each_receive_a_message_exactly_once() {
    raise_fd_limit();
    let started = Instant::now();
    let server = TestServer::start().await;
    let addr = server.addr;

    // Connect, register and join concurrently. JOINs of later members keep arriving
    // in everyone's socket; they are skipped below.
    //
    // At most CONNECTING handshakes are in flight until the server has answered them:
    // the listener has the standard backlog of 128, and a thousand simultaneous SYNs
    // overflow it (the kernel then falls back to SYN cookies and resets some of them).
    let connecting = Arc::new(Semaphore::new(CONNECTING));
    let mut joining = JoinSet::new();
    for n in 0..CLIENTS {
        let connecting = Arc::clone(&connecting);
        joining.spawn(async move {
            let permit = connecting.acquire_owned().await.expect("semaphore open");
            let mut client = TestClient::connect(addr).await;
            client.register(&format!("user{n}")).await;
            drop(permit);
            client.send("JOIN #crowd").await;
            client.expect_command("366").await;
            client
        });
    }
    let mut clients = Vec::with_capacity(CLIENTS);
    while let Some(joined) = joining.join_next().await {
        clients.push(joined.expect("client task"));
    }
    let joined_after = started.elapsed();

    // Every member got its 366, so the channel has all of them now.
    let mut sender = clients.pop().expect("clients");
    let text = format!("hello {CLIENTS} people");
    sender.send(&format!("PRIVMSG #crowd :{text}")).await;

    let mut receiving = JoinSet::new();
    for mut client in clients {
        let text = text.clone();
        let from = sender.nick.clone();
        receiving.spawn(async move {
            let is_ours =
                |l: &palaver_test_support::Line| l.command() == "PRIVMSG" && l.last() == text;
            let line = client.expect(is_ours).await;
            assert_eq!(line.source_nick(), from);
            assert_eq!(line.param(0), "#crowd");
            // Anything else the PRIVMSG caused was queued before this PONG.
            let rest = client.sync().await;
            assert!(
                !rest.iter().any(is_ours),
                "{} received the message twice",
                client.nick
            );
            client
        });
    }
    let mut received = 0;
    let mut clients = Vec::with_capacity(CLIENTS);
    while let Some(done) = receiving.join_next().await {
        clients.push(done.expect("receiver task"));
        received += 1;
    }
    assert_eq!(received, CLIENTS - 1);

    let rest = sender.sync().await;
    assert!(
        !rest.iter().any(|l| l.command() == "PRIVMSG"),
        "the sender got its own message back: {:?}",
        rest.iter().find(|l| l.command() == "PRIVMSG")
    );

    let took = started.elapsed();
    eprintln!("scale: {CLIENTS} joined in {joined_after:?}, all done in {took:?}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
    // Shut down first: departures then need no QUIT broadcasts to 999 members each.
    server.shutdown().await;
    drop(clients);
}
