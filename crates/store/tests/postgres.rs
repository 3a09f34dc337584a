//! The PostgreSQL store against a real server: the whole conformance suite, then
//! what only a shared database has (migrations raced by several nodes, a newer
//! schema refused, passwords kept out of errors, history and atomic writes shared
//! by several stores on one database).
//!
//! Every test is `#[ignore]`d: `cargo test` on a machine without PostgreSQL stays
//! green. `scripts/test-cluster.sh` starts a throw-away server and runs them with
//! `--ignored`, the server's URL in `PALAVER_TEST_POSTGRES`. Each test gets a fresh
//! database (`CREATE DATABASE palaver_test_…`), left behind for the throw-away server
//! to take with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use palaver_store::conformance::{account, certfp, message, server_ban};
use palaver_store::{
    CertfpAdded, PgStore, ServerBanAdded, ServerBanKind, Store, StoreError, TargetKey,
};

/// The admin URL of the test server (its `postgres` database).
fn admin_url() -> String {
    std::env::var("PALAVER_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "PALAVER_TEST_POSTGRES is not set: run scripts/test-cluster.sh, which starts \
             PostgreSQL and runs these tests against it"
        )
    })
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{base}/{db}{query}")
}

/// Runs `sql` on the test server's `postgres` database (or `db`).
async fn admin(db: Option<&str>, sql: &str) {
    let url = match db {
        Some(db) => with_database(&admin_url(), db),
        None => admin_url(),
    };
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL (is scripts/test-cluster.sh running it?)");
    let driver = tokio::spawn(connection);
    client.batch_execute(sql).await.expect(sql);
    drop(client);
    let _ = driver.await;
}

/// A fresh, empty database; returns its URL.
async fn fresh_database() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let db = format!(
        "palaver_test_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    admin(None, &format!("CREATE DATABASE {db}")).await;
    with_database(&admin_url(), &db)
}

/// A store on a fresh database.
async fn fresh() -> Arc<dyn Store> {
    let url = fresh_database().await;
    Arc::new(PgStore::connect(&url).expect("connect the store")) as Arc<dyn Store>
}

mod postgres_conformance {
    palaver_store::conformance_tests!(
        ignored = "needs PostgreSQL: scripts/test-cluster.sh",
        super::fresh
    );
}

/// The database name of a URL made by [`fresh_database`].
fn database_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test-cluster.sh"]
async fn postgres_concurrent_opens_migrate_once() {
    let url = fresh_database().await;
    // Four nodes open the empty database at the same moment.
    let barrier = Arc::new(std::sync::Barrier::new(4));
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let (url, barrier) = (url.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                PgStore::connect(&url)
            })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.join().expect("thread").expect("every open succeeds"));
    }
    // All four work on the one schema.
    stores[0]
        .create_account(account("first"))
        .await
        .expect("create");
    for store in &stores {
        assert_eq!(
            store.account_keys().await.expect("keys"),
            ["first"],
            "every node sees the same accounts"
        );
    }
    drop(stores);
    // Opening again is a no-op.
    let again = PgStore::connect(&url).expect("reopen");
    assert_eq!(again.account_keys().await.expect("keys"), ["first"]);
    drop(again);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let rows = client
        .query("SELECT version FROM palaver_schema_version", &[])
        .await
        .expect("read the version");
    assert_eq!(rows.len(), 1, "one version row");
    let version: i64 = rows[0].get(0);
    assert_eq!(version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test-cluster.sh"]
async fn postgres_newer_schema_is_refused() {
    let url = fresh_database().await;
    PgStore::connect(&url)
        .expect("create the schema")
        .shutdown();
    admin(
        Some(database_of(&url)),
        "UPDATE palaver_schema_version SET version = 1000",
    )
    .await;
    let refused = PgStore::connect(&url).expect_err("a newer schema is refused");
    assert!(
        matches!(
            refused,
            StoreError::TooNew {
                found: 1000,
                supported: 1,
                ..
            }
        ),
        "{refused:?}"
    );
    let text = refused.to_string();
    assert!(
        text.contains(database_of(&url)),
        "names the database: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test-cluster.sh"]
async fn postgres_another_applications_database_is_refused() {
    let url = fresh_database().await;
    admin(Some(database_of(&url)), "CREATE TABLE invoices (id INT)").await;
    let refused = PgStore::connect(&url).expect_err("refused");
    assert!(matches!(refused, StoreError::Corrupt { .. }), "{refused:?}");
}

/// Every line of an error and its sources, as an operator would see them.
fn full_text(error: &StoreError) -> String {
    let mut text = format!("{error} / {error:?}");
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        text.push_str(&format!(" / {e} / {e:?}"));
        source = e.source();
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test-cluster.sh"]
async fn postgres_a_wrong_password_is_an_error_without_the_password() {
    // scripts/test-cluster.sh makes this role give its password (scram-sha-256).
    admin(
        None,
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'palaver_password') THEN \
             CREATE ROLE palaver_password LOGIN PASSWORD 'the-right-one'; \
           END IF; \
         END $$",
    )
    .await;
    let db_url = fresh_database().await;
    let db = database_of(&db_url);
    admin(
        None,
        &format!("GRANT ALL ON DATABASE {db} TO palaver_password"),
    )
    .await;
    admin(Some(db), "GRANT ALL ON SCHEMA public TO palaver_password").await;
    let address = admin_url()
        .split_once('@')
        .map(|(_, rest)| rest.split('/').next().unwrap_or("").to_owned())
        .expect("the admin URL has user@host:port");
    let secret = "Wr0ng-S3cret-pa55";
    let url = format!("postgres://palaver_password:{secret}@{address}/{db}");
    let refused = PgStore::connect(&url).expect_err("a wrong password is refused");
    let text = full_text(&refused);
    assert!(!text.contains(secret), "the password leaked: {text}");
    assert!(
        text.contains(&format!("postgres://palaver_password@{address}/{db}")),
        "says which database: {text}"
    );
    assert!(text.contains("connect"), "says which step: {text}");
    assert!(text.contains("password"), "says why: {text}");
    // The right password works (the test's setup is sound).
    let url = format!("postgres://palaver_password:the-right-one@{address}/{db}");
    let store = PgStore::connect(&url).expect("the right password");
    assert!(!format!("{store:?}").contains("the-right-one"));
    assert!(!store.database().contains("the-right-one"));
}

#[test]
#[ignore = "needs PostgreSQL: scripts/test-cluster.sh"]
fn postgres_tls_modes_are_refused_clearly() {
    let url = with_database(&admin_url(), "postgres");
    for mode in ["require", "prefer", "verify-full"] {
        let refused = PgStore::connect(&format!("{url}?sslmode={mode}")).expect_err(mode);
        let text = full_text(&refused);
        assert!(text.contains("not supported yet"), "{mode}: {text}");
    }
    let _ = PgStore::connect(&format!("{url}?sslmode=disable")).expect("disable works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test-cluster.sh"]
async fn postgres_history_is_the_same_on_every_node() {
    let url = fresh_database().await;
    let a = PgStore::connect(&url).expect("node a");
    let b = PgStore::connect(&url).expect("node b");
    let target = TargetKey::channel("#shared");
    let mut expected = Vec::new();
    // The nodes take turns, each message a millisecond after the last.
    for i in 0..40u64 {
        let node: &PgStore = if i % 2 == 0 { &a } else { &b };
        let mut m = message(&target, i, 1_000 + i as i64);
        m.msgid = format!("shared-{i}");
        node.append(m.clone()).expect("append");
        node.flush().await.expect("flush");
        expected.push(m);
    }
    assert_eq!(a.write_failures() + b.write_failures(), 0);
    let from_a = a.latest(&target, None, 100).await.expect("latest on a");
    let from_b = b.latest(&target, None, 100).await.expect("latest on b");
    assert_eq!(from_a, expected);
    assert_eq!(from_b, expected, "CHATHISTORY on any node returns the same");
    // Paging by a msgid written by the other node.
    let page = b
        .before(
            &target,
            palaver_store::HistoryRef::MsgId("shared-20".into()),
            5,
        )
        .await
        .expect("before");
    assert_eq!(page, expected[15..20]);
    // A redaction on one node is seen on the other.
    assert!(a.redact("shared-3").await.expect("redact"));
    let from_b = b.latest(&target, None, 100).await.expect("latest on b");
    assert_eq!(from_b.len(), 39);
    assert!(from_b.iter().all(|m| m.msgid != "shared-3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test-cluster.sh"]
async fn postgres_atomic_writes_hold_across_nodes() {
    let url = fresh_database().await;
    let nodes: Vec<Arc<PgStore>> = (0..3)
        .map(|_| Arc::new(PgStore::connect(&url).expect("node")))
        .collect();

    // The same account registered on every node at once: exactly one wins.
    let results = futures_join(nodes.iter().map(|n| {
        let n = Arc::clone(n);
        async move { n.create_account(account("Racer")).await }
    }))
    .await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    for r in &results {
        assert!(
            matches!(r, Ok(()) | Err(StoreError::AlreadyExists { .. })),
            "{r:?}"
        );
    }

    // Fingerprints added to one account from every node: never past the limit.
    let adds = futures_join((0..30u8).map(|i| {
        let n = Arc::clone(&nodes[usize::from(i) % nodes.len()]);
        async move { n.add_certfp("racer", &certfp(i)).await.expect("add") }
    }))
    .await;
    let added = adds.iter().filter(|a| **a == CertfpAdded::Added).count();
    assert_eq!(added, palaver_store::MAX_CERTFPS_PER_ACCOUNT, "{adds:?}");
    assert_eq!(
        nodes[0].certfps("racer").await.expect("list").len(),
        palaver_store::MAX_CERTFPS_PER_ACCOUNT
    );

    // Server bans from every node against one limit: exactly the limit is stored.
    let bans = futures_join((0..24u32).map(|i| {
        let n = Arc::clone(&nodes[i as usize % nodes.len()]);
        async move {
            n.add_server_ban(
                server_ban(ServerBanKind::KLine, &format!("*@host{i}"), None),
                7,
            )
            .await
            .expect("add ban")
        }
    }))
    .await;
    let added = bans.iter().filter(|b| **b == ServerBanAdded::Added).count();
    assert_eq!(added, 7, "{bans:?}");
    assert_eq!(nodes[1].server_bans().await.expect("list").len(), 7);
}

/// Runs the futures concurrently (each on a task of its own) and returns their
/// outputs in order.
async fn futures_join<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test-cluster.sh"]
async fn postgres_full_queue_hands_the_message_back() {
    let url = fresh_database().await;
    let store = PgStore::connect_with(
        &url,
        palaver_store::PgOptions {
            queue_capacity: 4,
            ..palaver_store::PgOptions::default()
        },
    )
    .expect("connect");
    let target = TargetKey::channel("#full");
    // The writer may take a batch at any moment, so push until refused.
    let mut refused = None;
    for i in 0..100_000u64 {
        if let Err(e) = store.append(message(&target, i, i as i64)) {
            refused = Some((i, e));
            break;
        }
    }
    let (i, refused) = refused.expect("a bounded queue refuses at some point");
    assert_eq!(refused.reason, palaver_store::AppendError::Full);
    assert_eq!(refused.message, message(&target, i, i as i64));
    store.flush().await.expect("flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test-cluster.sh"]
async fn postgres_lost_connections_are_reestablished() {
    let url = fresh_database().await;
    let store = PgStore::connect(&url).expect("connect");
    let target = TargetKey::channel("#reconnect");
    store.append(message(&target, 0, 1_000)).expect("append");
    store.flush().await.expect("flush");
    assert_eq!(
        store.latest(&target, None, 10).await.expect("latest").len(),
        1
    );

    // The database server drops every connection of the store (as a restart or a
    // network cut would).
    admin(
        None,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            database_of(&url)
        ),
    )
    .await;

    // Writes and queries work again after at most a failed attempt or two.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut n = 1u64;
    loop {
        let before = store.write_failures();
        store
            .append(message(&target, n, 1_000 + n as i64))
            .expect("append");
        store.flush().await.expect("flush");
        let stored = store.write_failures() == before;
        let read = store.latest(&target, None, 100).await;
        if stored && let Ok(messages) = read {
            assert!(
                messages
                    .iter()
                    .any(|m| m.msgid == message(&target, n, 0).msgid)
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the store did not reconnect: {read:?}"
        );
        n += 1;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // An account write goes through as well.
    store
        .create_account(account("after"))
        .await
        .expect("create after reconnecting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test-cluster.sh"]
async fn postgres_writes_keep_their_place_among_appends() {
    let url = fresh_database().await;
    let store = PgStore::connect(&url).expect("connect");
    let target = TargetKey::channel("#order");
    // Queued back to back, with no wait between: the redaction comes after the
    // append it names, the marker after both, all likely in one batch.
    let first = message(&target, 1, 100);
    store.append(first.clone()).expect("append");
    let redacted = store.redact(&first.msgid);
    let second = message(&target, 2, 200);
    store.append(second.clone()).expect("append");
    let marker = store.set_read_marker("reader", &target, palaver_store::Timestamp(200));
    // A duplicate msgid and a NUL byte are refused alone; the batch commits.
    store.append(second.clone()).expect("append the duplicate");
    let mut nul = message(&target, 3, 300);
    nul.text = "nul\0byte".into();
    store.append(nul).expect("append");
    let third = message(&target, 4, 400);
    store.append(third.clone()).expect("append");
    assert!(
        redacted.await.expect("redact"),
        "the redaction saw the append"
    );
    assert_eq!(marker.await.expect("marker"), palaver_store::Timestamp(200));
    store.flush().await.expect("flush");
    assert_eq!(store.write_failures(), 2, "the duplicate and the NUL");
    assert_eq!(
        store.latest(&target, None, 10).await.expect("latest"),
        [second, third]
    );
}
