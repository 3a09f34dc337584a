//! The [`Store`] contract as executable tests, one function per behaviour, each
//! taking a factory that makes a fresh, empty store. Every backend runs all of them
//! (this crate runs them against SQLite in memory and on disk, and against a
//! PostgreSQL server in `tests/postgres.rs`), which is what "no SQLite-only assumptions"
//! means in practice.
//!
//! The quickest way to run them all is [`conformance_tests!`](crate::conformance_tests),
//! which writes one `#[tokio::test]` per behaviour:
//!
//! ```ignore
//! mod sqlite_memory {
//!     palaver_store::conformance_tests!(|| async {
//!         std::sync::Arc::new(palaver_store::SqliteStore::open_in_memory().expect("open"))
//!             as std::sync::Arc<dyn palaver_store::Store>
//!     });
//! }
//! ```
//!
//! These are tests: they panic (with a message) on any failure.

use std::future::Future;
use std::sync::Arc;

use crate::{
    AccessEntry, Account, AppendError, CertfpAdded, ChannelRegistration, HistoryMessage,
    HistoryRef, ListEntry, ListKind, MAX_CERTFPS_PER_ACCOUNT, MessageKind, Party, PasswordUpdate,
    Retention, ScramVerifier, ServerBan, ServerBanAdded, ServerBanKind, Store, StoreError,
    TargetKey, TargetScope, Timestamp, Topic,
};

/// Writes one `#[tokio::test]` per conformance behaviour, each calling the
/// function of the same name in [`crate::conformance`] with `$make`, an expression
/// of type `Fn() -> impl Future<Output = Arc<dyn Store>>`.
///
/// `conformance_tests!(ignored = "reason", $make)` writes the same tests marked
/// `#[ignore = "reason"]`: for a backend that needs a server the plain
/// `cargo test` does not start (PostgreSQL), run with `-- --ignored`.
#[macro_export]
macro_rules! conformance_tests {
    (ignored = $reason:literal, $make:expr $(,)?) => {
        $crate::conformance_tests!(@list [ignore = $reason] $make);
    };
    ($make:expr) => {
        $crate::conformance_tests!(@list [] $make);
    };
    (@list $attrs:tt $make:expr) => {
        $crate::conformance_tests!(@each $attrs $make;
            accounts, account_conflicts, certfps, certfps_of_deleted_account, channels, history_roundtrip, watermark,
            latest, before_after, around, between, same_millisecond_order,
            unknown_references, targets, redact, read_markers, retention_age,
            retention_count, server_bans, server_ban_limit, server_ban_expiry, close);
    };
    (@each $attrs:tt $make:expr; $($name:ident),*) => {
        $(
            $crate::conformance_tests!(@one $attrs $make; $name);
        )*
    };
    (@one [$($attr:meta)?] $make:expr; $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])?
        async fn $name() {
            $crate::conformance::$name($make).await;
        }
    };
}

/// A test account named `name`.
pub fn account(name: &str) -> Account {
    Account {
        key: name.to_lowercase(),
        name: name.to_owned(),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${name}"),
        scram: ScramVerifier {
            salt: b"salt".to_vec(),
            iterations: 4096,
            stored_key: vec![1; 32],
            server_key: vec![2; 32],
        },
        email: None,
        verified: false,
        created_at: Timestamp(1_700_000_000_000),
    }
}

/// A test channel registration.
pub fn channel(name: &str, founder: &str) -> ChannelRegistration {
    ChannelRegistration {
        key: name.to_lowercase(),
        name: name.to_owned(),
        founder: founder.to_owned(),
        created_at: Timestamp(1_700_000_000_000),
        topic: Some(Topic {
            text: "welcome".into(),
            set_by: format!("{founder}!u@h"),
            set_at: Timestamp(1_700_000_000_500),
        }),
        modes: "nt".into(),
        key_mode: Some("sekrit".into()),
        limit: Some(50),
        lists: vec![
            ListEntry {
                kind: ListKind::Ban,
                mask: "*!*@bad.example".into(),
                set_by: founder.to_owned(),
                set_at: Timestamp(1_700_000_001_000),
            },
            ListEntry {
                kind: ListKind::Except,
                mask: "$a:friend".into(),
                set_by: founder.to_owned(),
                set_at: Timestamp(1_700_000_002_000),
            },
            ListEntry {
                kind: ListKind::InviteExcept,
                mask: "*!*@good.example".into(),
                set_by: founder.to_owned(),
                set_at: Timestamp(1_700_000_003_000),
            },
        ],
        access: vec![
            AccessEntry {
                account: founder.to_owned(),
                level: 100,
            },
            AccessEntry {
                account: "helper".into(),
                level: 10,
            },
        ],
    }
}

/// A test PRIVMSG `n` in `target` at `time` ms.
pub fn message(target: &TargetKey, n: u64, time: i64) -> HistoryMessage {
    HistoryMessage {
        msgid: format!("m-{}-{n:x}", target.as_str().len()),
        time: Timestamp(time),
        target: target.clone(),
        sender: "alice!a@example.org".into(),
        account: Some("alice".into()),
        kind: MessageKind::Privmsg,
        tags: String::new(),
        text: format!("message {n}"),
    }
}

async fn append_all(store: &dyn Store, messages: &[HistoryMessage]) {
    for m in messages {
        store.append(m.clone()).expect("append");
    }
    store.flush().await.expect("flush");
}

fn ids(messages: &[HistoryMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.msgid.as_str()).collect()
}

/// `#chan` with messages 0..n at times 1000, 1010, 1020, …
async fn channel_with(store: &dyn Store, n: u64) -> (TargetKey, Vec<HistoryMessage>) {
    let target = TargetKey::channel("#chan");
    let messages: Vec<_> = (0..n)
        .map(|i| message(&target, i, 1000 + 10 * i as i64))
        .collect();
    append_all(store, &messages).await;
    (target, messages)
}

/// Accounts: create, read back every field, change the password and the verified
/// flag, delete.
pub async fn accounts<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    assert_eq!(store.account("alice").await.expect("get"), None);
    let mut alice = account("Alice");
    alice.email = Some("alice@example.org".into());
    store.create_account(alice.clone()).await.expect("create");
    assert_eq!(
        store.account("alice").await.expect("get"),
        Some(alice.clone())
    );

    let update = PasswordUpdate {
        password_hash: "$argon2id$new".into(),
        scram: ScramVerifier {
            salt: b"pepper".to_vec(),
            iterations: 10_000,
            stored_key: vec![3; 32],
            server_key: vec![4; 32],
        },
    };
    store
        .set_password("alice", update.clone())
        .await
        .expect("set password");
    store
        .set_verified("alice", true)
        .await
        .expect("set verified");
    let got = store.account("alice").await.expect("get").expect("exists");
    assert_eq!(got.password_hash, update.password_hash);
    assert_eq!(got.scram, update.scram);
    assert!(got.verified);
    assert_eq!(got.created_at, alice.created_at);
    assert_eq!(store.account_keys().await.expect("keys"), ["alice"]);

    assert!(store.delete_account("alice").await.expect("delete"));
    assert!(store.account_keys().await.expect("keys").is_empty());
    assert!(!store.delete_account("alice").await.expect("delete again"));
    assert_eq!(store.account("alice").await.expect("get"), None);
}

/// Accounts: a taken key is `AlreadyExists`; changing a missing account is
/// `NotFound`; deleting an account removes its read markers.
pub async fn account_conflicts<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    store.create_account(account("bob")).await.expect("create");
    let again = store.create_account(account("BOB")).await;
    assert!(
        matches!(&again, Err(StoreError::AlreadyExists { what: "account", key }) if key == "bob"),
        "{again:?}"
    );
    let missing = store.set_verified("nobody", true).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    let update = PasswordUpdate {
        password_hash: "x".into(),
        scram: ScramVerifier::default(),
    };
    let missing = store.set_password("nobody", update).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );

    let target = TargetKey::channel("#c");
    store
        .set_read_marker("bob", &target, Timestamp(5))
        .await
        .expect("marker");
    store.delete_account("bob").await.expect("delete");
    assert_eq!(store.read_marker("bob", &target).await.expect("get"), None);
    // The store still works after a refused write in the same batch.
    store
        .create_account(account("carol"))
        .await
        .expect("create");
}

/// A test client-certificate fingerprint: lowercase hex SHA-256, 64 characters,
/// distinct for each `n`.
pub fn certfp(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

/// Certificate fingerprints: add, add again, add another account's, the
/// per-account limit, the sorted list, removal, the SASL EXTERNAL lookup, and
/// `NotFound` for a missing account.
pub async fn certfps<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    store
        .create_account(account("alice"))
        .await
        .expect("create");
    store.create_account(account("bob")).await.expect("create");
    assert!(store.certfps("alice").await.expect("list").is_empty());
    assert_eq!(
        store.account_by_certfp(&certfp(1)).await.expect("get"),
        None
    );

    // Added out of order, listed sorted.
    for n in [3, 1, 2] {
        let added = store.add_certfp("alice", &certfp(n)).await.expect("add");
        assert_eq!(added, CertfpAdded::Added, "certfp {n}");
    }
    assert_eq!(
        store.certfps("alice").await.expect("list"),
        [certfp(1), certfp(2), certfp(3)]
    );
    let again = store.add_certfp("alice", &certfp(1)).await.expect("add");
    assert_eq!(again, CertfpAdded::AlreadyPresent);
    let taken = store.add_certfp("bob", &certfp(1)).await.expect("add");
    assert_eq!(taken, CertfpAdded::Taken);
    assert!(store.certfps("bob").await.expect("list").is_empty());
    assert_eq!(
        store.account_by_certfp(&certfp(1)).await.expect("get"),
        Some(account("alice"))
    );

    let missing = store.add_certfp("nobody", &certfp(9)).await;
    assert!(
        matches!(&missing, Err(StoreError::NotFound { what: "account", key }) if key == "nobody"),
        "{missing:?}"
    );
    assert_eq!(
        store.account_by_certfp(&certfp(9)).await.expect("get"),
        None
    );

    // The limit: alice has 3; fill up to the maximum, then one more is refused,
    // but one she already has is still reported as present.
    for n in 4..=MAX_CERTFPS_PER_ACCOUNT as u8 {
        let added = store.add_certfp("alice", &certfp(n)).await.expect("add");
        assert_eq!(added, CertfpAdded::Added, "certfp {n}");
    }
    let full = store.add_certfp("alice", &certfp(200)).await.expect("add");
    assert_eq!(full, CertfpAdded::LimitReached);
    assert_eq!(
        store.certfps("alice").await.expect("list").len(),
        MAX_CERTFPS_PER_ACCOUNT
    );
    assert_eq!(
        store.account_by_certfp(&certfp(200)).await.expect("get"),
        None
    );
    let again = store.add_certfp("alice", &certfp(2)).await.expect("add");
    assert_eq!(again, CertfpAdded::AlreadyPresent);
    // The limit is per account.
    let added = store.add_certfp("bob", &certfp(200)).await.expect("add");
    assert_eq!(added, CertfpAdded::Added);

    // Removal: only from its own account, and once.
    assert!(
        !store
            .remove_certfp("bob", &certfp(2))
            .await
            .expect("remove")
    );
    assert!(
        store
            .remove_certfp("alice", &certfp(2))
            .await
            .expect("remove")
    );
    assert!(
        !store
            .remove_certfp("alice", &certfp(2))
            .await
            .expect("remove")
    );
    assert!(
        !store
            .remove_certfp("nobody", &certfp(2))
            .await
            .expect("remove")
    );
    assert_eq!(
        store.account_by_certfp(&certfp(2)).await.expect("get"),
        None
    );
    assert!(
        !store
            .certfps("alice")
            .await
            .expect("list")
            .contains(&certfp(2))
    );
    // Below the limit again.
    let added = store.add_certfp("alice", &certfp(201)).await.expect("add");
    assert_eq!(added, CertfpAdded::Added);
    // A removed fingerprint is free for another account.
    let added = store.add_certfp("bob", &certfp(2)).await.expect("add");
    assert_eq!(added, CertfpAdded::Added);
    assert_eq!(
        store.account_by_certfp(&certfp(2)).await.expect("get"),
        Some(account("bob"))
    );
    assert_eq!(
        store.certfps("bob").await.expect("list"),
        [certfp(2), certfp(200)]
    );
}

/// Deleting an account deletes its fingerprints: the old certificate no longer
/// logs in (not even to a new account of the same name), and the fingerprint can
/// be added to another account.
pub async fn certfps_of_deleted_account<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    store.create_account(account("dave")).await.expect("create");
    store.create_account(account("erin")).await.expect("create");
    for n in [1, 2] {
        let added = store.add_certfp("dave", &certfp(n)).await.expect("add");
        assert_eq!(added, CertfpAdded::Added);
    }
    assert!(store.delete_account("dave").await.expect("delete"));
    assert_eq!(
        store.account_by_certfp(&certfp(1)).await.expect("get"),
        None
    );
    assert!(store.certfps("dave").await.expect("list").is_empty());

    store
        .create_account(account("dave"))
        .await
        .expect("recreate");
    assert_eq!(
        store.account_by_certfp(&certfp(2)).await.expect("get"),
        None
    );
    assert!(store.certfps("dave").await.expect("list").is_empty());

    let added = store.add_certfp("erin", &certfp(1)).await.expect("add");
    assert_eq!(added, CertfpAdded::Added);
    assert_eq!(
        store.account_by_certfp(&certfp(1)).await.expect("get"),
        Some(account("erin"))
    );
}

/// Channel registrations: register, read back (topic, modes, lists, access),
/// refuse a duplicate, replace as a whole, list in key order, drop.
pub async fn channels<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    assert_eq!(store.channel("#a").await.expect("get"), None);
    let a = channel("#A", "alice");
    store.register_channel(a.clone()).await.expect("register");
    let got = store.channel("#a").await.expect("get").expect("exists");
    assert_eq!(got.name, a.name);
    assert_eq!(got.topic, a.topic);
    assert_eq!(got.key_mode, a.key_mode);
    assert_eq!(got.limit, a.limit);
    assert_eq!(got.modes, a.modes);
    let mut lists = got.lists.clone();
    lists.sort_by(|x, y| (x.kind, &x.mask).cmp(&(y.kind, &y.mask)));
    assert_eq!(lists, a.lists);
    let mut access = got.access.clone();
    access.sort_by(|x, y| x.account.cmp(&y.account));
    assert_eq!(access, a.access);

    let dup = store.register_channel(channel("#a", "mallory")).await;
    assert!(
        matches!(
            dup,
            Err(StoreError::AlreadyExists {
                what: "channel",
                ..
            })
        ),
        "{dup:?}"
    );

    let mut changed = a.clone();
    changed.topic = None;
    changed.key_mode = None;
    changed.limit = None;
    changed.modes = "ntm".into();
    changed.lists.truncate(1);
    changed.access = vec![AccessEntry {
        account: "alice".into(),
        level: 50,
    }];
    store.update_channel(changed.clone()).await.expect("update");
    assert_eq!(
        store.channel("#a").await.expect("get"),
        Some(changed.clone())
    );
    let missing = store.update_channel(channel("#zzz", "x")).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );

    store
        .register_channel(channel("#0first", "bob"))
        .await
        .expect("register");
    let all = store.channels().await.expect("list");
    let keys: Vec<_> = all.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["#0first", "#a"]);
    assert_eq!(all[1], changed);
    assert_eq!(all[0].lists.len(), 3);

    assert!(store.drop_channel("#a").await.expect("drop"));
    assert!(!store.drop_channel("#a").await.expect("drop again"));
    assert_eq!(store.channel("#a").await.expect("get"), None);
    assert_eq!(store.channels().await.expect("list").len(), 1);
}

/// History: every field of every kind comes back as appended.
pub async fn history_roundtrip<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    let target = TargetKey::channel("#kinds");
    let kinds = [
        MessageKind::Privmsg,
        MessageKind::Notice,
        MessageKind::Tagmsg,
        MessageKind::Join,
        MessageKind::Part,
        MessageKind::Quit,
        MessageKind::Kick,
        MessageKind::Mode,
        MessageKind::Topic,
        MessageKind::Nick,
        MessageKind::MultilinePrivmsg,
        MessageKind::MultilineNotice,
    ];
    let messages: Vec<_> = kinds
        .iter()
        .enumerate()
        .map(|(i, &kind)| HistoryMessage {
            msgid: format!("kind-{i}"),
            time: Timestamp(1_700_000_000_000 + i as i64),
            target: target.clone(),
            sender: format!("nick{i}!user@host.example"),
            account: (i % 2 == 0).then(|| format!("acct{i}")),
            kind,
            tags: if kind == MessageKind::Tagmsg {
                "+draft/react=\\:)".into()
            } else {
                String::new()
            },
            text: if i == 3 {
                String::new()
            } else {
                format!("text ü {i}")
            },
        })
        .collect();
    append_all(&*store, &messages).await;
    let got = store.latest(&target, None, 100).await.expect("latest");
    assert_eq!(got, messages);

    let private = TargetKey::private(&Party::Account("zed".into()), &Party::Account("amy".into()));
    assert_eq!(
        private,
        TargetKey::private(&Party::Account("amy".into()), &Party::Account("zed".into()))
    );
    let dm = message(&private, 1, 5);
    append_all(&*store, std::slice::from_ref(&dm)).await;
    let got = store.latest(&private, None, 10).await.expect("latest");
    assert_eq!(got, [dm]);
}

/// The watermark: sequence numbers increase; once `flush` returns, `committed`
/// covers them and a watcher has seen the change; queries see committed messages.
pub async fn watermark<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    let mut watch = store.watch_committed();
    let start = *watch.borrow_and_update();
    let target = TargetKey::channel("#w");
    let mut last = 0;
    for i in 0..500 {
        let seq = store.append(message(&target, i, i as i64)).expect("append");
        assert!(seq > last, "sequence numbers increase: {seq} after {last}");
        last = seq;
    }
    let flushed = store.flush().await.expect("flush");
    assert!(flushed >= last);
    assert!(store.committed() >= last);
    watch.changed().await.expect("watch");
    assert!(*watch.borrow() > start);
    assert_eq!(store.write_failures(), 0);
    let got = store.latest(&target, None, 1000).await.expect("latest");
    assert_eq!(got.len(), 500);
    // Each append waits for its own commit: the watermark reaches every one.
    for i in 500..510 {
        let seq = store.append(message(&target, i, i as i64)).expect("append");
        let mut w = store.watch_committed();
        w.wait_for(|&c| c >= seq).await.expect("committed");
        assert!(store.committed() >= seq);
    }
}

/// LATEST: the newest `limit`, oldest first; with a bound, only newer than it.
pub async fn latest<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    let (target, m) = channel_with(&*store, 20).await;
    let got = store.latest(&target, None, 5).await.expect("latest");
    assert_eq!(ids(&got), ids(&m[15..]));
    let got = store
        .latest(&target, Some(HistoryRef::MsgId(m[17].msgid.clone())), 5)
        .await
        .expect("latest after msgid");
    assert_eq!(ids(&got), ids(&m[18..]));
    let got = store
        .latest(&target, Some(HistoryRef::Time(m[10].time)), 100)
        .await
        .expect("latest after time");
    assert_eq!(ids(&got), ids(&m[11..]));
    assert!(
        store
            .latest(&target, None, 0)
            .await
            .expect("zero")
            .is_empty()
    );
    let other = TargetKey::channel("#empty");
    assert!(
        store
            .latest(&other, None, 10)
            .await
            .expect("none")
            .is_empty()
    );
}

/// BEFORE and AFTER, by msgid and by timestamp, exclusive of the reference.
pub async fn before_after<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    let (target, m) = channel_with(&*store, 20).await;
    let by_id = |i: usize| HistoryRef::MsgId(m[i].msgid.clone());
    let got = store.before(&target, by_id(10), 3).await.expect("before");
    assert_eq!(ids(&got), ids(&m[7..10]));
    let got = store
        .before(&target, HistoryRef::Time(m[10].time), 3)
        .await
        .expect("before time");
    assert_eq!(ids(&got), ids(&m[7..10]));
    // A time between two messages.
    let got = store
        .before(&target, HistoryRef::Time(Timestamp(m[10].time.0 + 5)), 2)
        .await
        .expect("before mid");
    assert_eq!(ids(&got), ids(&m[9..11]));
    let got = store.after(&target, by_id(10), 3).await.expect("after");
    assert_eq!(ids(&got), ids(&m[11..14]));
    let got = store
        .after(&target, HistoryRef::Time(m[10].time), 3)
        .await
        .expect("after time");
    assert_eq!(ids(&got), ids(&m[11..14]));
    let got = store
        .after(&target, by_id(18), 10)
        .await
        .expect("after end");
    assert_eq!(ids(&got), ids(&m[19..]));
    let got = store
        .before(&target, by_id(1), 10)
        .await
        .expect("before start");
    assert_eq!(ids(&got), ids(&m[..1]));
}

/// AROUND: half before (exclusive), the rest from the reference on (inclusive).
pub async fn around<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    let (target, m) = channel_with(&*store, 20).await;
    let got = store
        .around(&target, HistoryRef::MsgId(m[10].msgid.clone()), 5)
        .await
        .expect("around");
    assert_eq!(ids(&got), ids(&m[8..13]));
    let got = store
        .around(&target, HistoryRef::Time(m[10].time), 4)
        .await
        .expect("around time");
    assert_eq!(ids(&got), ids(&m[8..12]));
    // Near the start, the rest comes from after.
    let got = store
        .around(&target, HistoryRef::MsgId(m[0].msgid.clone()), 4)
        .await
        .expect("around start");
    assert_eq!(ids(&got), ids(&m[..4]));
}

/// BETWEEN: exclusive at both ends, nearest the first reference, oldest first.
pub async fn between<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    let (target, m) = channel_with(&*store, 20).await;
    let by_id = |i: usize| HistoryRef::MsgId(m[i].msgid.clone());
    let got = store
        .between(&target, by_id(5), by_id(15), 100)
        .await
        .expect("between");
    assert_eq!(ids(&got), ids(&m[6..15]));
    let got = store
        .between(&target, by_id(5), by_id(15), 3)
        .await
        .expect("between limited");
    assert_eq!(ids(&got), ids(&m[6..9]));
    let got = store
        .between(&target, by_id(15), by_id(5), 3)
        .await
        .expect("between backwards");
    assert_eq!(ids(&got), ids(&m[12..15]));
    let got = store
        .between(
            &target,
            HistoryRef::Time(m[5].time),
            HistoryRef::Time(m[8].time),
            100,
        )
        .await
        .expect("between times");
    assert_eq!(ids(&got), ids(&m[6..8]));
    let got = store
        .between(&target, HistoryRef::Time(m[8].time), by_id(5), 100)
        .await
        .expect("between mixed backwards");
    assert_eq!(ids(&got), ids(&m[6..8]));
}

/// Messages in the same millisecond keep the order they were appended in, and a
/// msgid reference splits them exactly.
pub async fn same_millisecond_order<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    let target = TargetKey::channel("#burst");
    // msgids deliberately not in text order.
    let m: Vec<_> = (0..10u64)
        .map(|i| {
            let mut msg = message(&target, 100 - i, 5000);
            msg.msgid = format!("z{}", 9 - i);
            msg
        })
        .collect();
    append_all(&*store, &m).await;
    let got = store.latest(&target, None, 100).await.expect("latest");
    assert_eq!(ids(&got), ids(&m));
    let got = store
        .before(&target, HistoryRef::MsgId(m[5].msgid.clone()), 2)
        .await
        .expect("before");
    assert_eq!(ids(&got), ids(&m[3..5]));
    let got = store
        .after(&target, HistoryRef::MsgId(m[5].msgid.clone()), 2)
        .await
        .expect("after");
    assert_eq!(ids(&got), ids(&m[6..8]));
    let got = store
        .before(&target, HistoryRef::Time(Timestamp(5000)), 5)
        .await
        .expect("before the millisecond");
    assert!(got.is_empty());
    let got = store
        .after(&target, HistoryRef::Time(Timestamp(4999)), 3)
        .await
        .expect("after the millisecond before");
    assert_eq!(ids(&got), ids(&m[..3]));
}

/// A msgid that is not in the target (unknown, or another target's) gives an
/// empty result, not an error.
pub async fn unknown_references<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    let (target, _) = channel_with(&*store, 5).await;
    let other = TargetKey::channel("#other");
    let elsewhere = message(&other, 99, 1020);
    append_all(&*store, std::slice::from_ref(&elsewhere)).await;
    let unknown = HistoryRef::MsgId("nope".into());
    let foreign = HistoryRef::MsgId(elsewhere.msgid.clone());
    for r in [unknown, foreign] {
        let results = [
            store.before(&target, r.clone(), 10).await,
            store.after(&target, r.clone(), 10).await,
            store.around(&target, r.clone(), 10).await,
            store.latest(&target, Some(r.clone()), 10).await,
            store
                .between(&target, r.clone(), HistoryRef::Time(Timestamp(0)), 10)
                .await,
        ];
        for (query, found) in ["before", "after", "around", "latest", "between"]
            .iter()
            .zip(results)
        {
            assert!(found.expect("query").is_empty(), "{query} {r:?}");
        }
    }
}

/// TARGETS: channels in scope and the user's private conversations, by latest
/// message time, within the window, nearest `from`.
pub async fn targets<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    let amy = Party::Account("amy".into());
    let a = TargetKey::channel("#a");
    let b = TargetKey::channel("#b");
    let hidden = TargetKey::channel("#hidden");
    let dm = TargetKey::private(&amy, &Party::Account("bob".into()));
    let others = TargetKey::private(
        &Party::Account("carl".into()),
        &Party::Account("dan".into()),
    );
    let nick_dm = TargetKey::private(&Party::Nick("amy".into()), &Party::Nick("eve".into()));
    let mut all = Vec::new();
    for (i, (t, time)) in [
        (&a, 100),
        (&a, 400),
        (&b, 200),
        (&hidden, 300),
        (&dm, 300),
        (&others, 350),
        (&nick_dm, 500),
    ]
    .into_iter()
    .enumerate()
    {
        let mut m = message(t, i as u64, time);
        m.msgid = format!("t{i}");
        all.push(m);
    }
    append_all(&*store, &all).await;
    let scope = TargetScope {
        channels: vec!["#a".into(), "#b".into(), "#nohistory".into()],
        parties: vec![amy.clone()],
    };
    let got = store
        .targets(&scope, Timestamp(0), Timestamp(1000), 10)
        .await
        .expect("targets");
    let names: Vec<_> = got
        .iter()
        .map(|t| (t.target.as_str().to_owned(), t.latest.0))
        .collect();
    assert_eq!(
        names,
        [
            ("#b".to_owned(), 200),
            (dm.as_str().to_owned(), 300),
            ("#a".to_owned(), 400)
        ]
    );
    assert_eq!(got[1].target, dm);
    let got = store
        .targets(&scope, Timestamp(0), Timestamp(1000), 2)
        .await
        .expect("targets limited");
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].target, dm);
    let got = store
        .targets(&scope, Timestamp(1000), Timestamp(0), 2)
        .await
        .expect("targets backwards");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].target, dm);
    assert_eq!(got[1].target, a);
    let got = store
        .targets(&scope, Timestamp(250), Timestamp(350), 10)
        .await
        .expect("targets window");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].target, dm);
    let nick_scope = TargetScope {
        channels: vec![],
        parties: vec![Party::Nick("amy".into())],
    };
    let got = store
        .targets(&nick_scope, Timestamp(0), Timestamp(1000), 10)
        .await
        .expect("nick targets");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].target, nick_dm);
}

/// Redaction deletes exactly that message.
pub async fn redact<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    let (target, m) = channel_with(&*store, 5).await;
    assert!(store.redact(&m[2].msgid).await.expect("redact"));
    assert!(!store.redact(&m[2].msgid).await.expect("redact again"));
    let got = store.latest(&target, None, 10).await.expect("latest");
    assert_eq!(
        ids(&got),
        [&m[0].msgid, &m[1].msgid, &m[3].msgid, &m[4].msgid]
    );
}

/// Read markers only move forward; each account and target has its own.
pub async fn read_markers<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    let chan = TargetKey::channel("#m");
    let dm = TargetKey::private(&Party::Account("a".into()), &Party::Account("b".into()));
    assert_eq!(store.read_marker("a", &chan).await.expect("get"), None);
    let set = |t: &TargetKey, at: i64| store.set_read_marker("a", t, Timestamp(at));
    assert_eq!(set(&chan, 100).await.expect("set"), Timestamp(100));
    assert_eq!(set(&chan, 50).await.expect("back"), Timestamp(100));
    assert_eq!(set(&chan, 150).await.expect("forward"), Timestamp(150));
    assert_eq!(set(&dm, 7).await.expect("dm"), Timestamp(7));
    assert_eq!(
        store.read_marker("a", &chan).await.expect("get"),
        Some(Timestamp(150))
    );
    assert_eq!(
        store.read_marker("a", &dm).await.expect("get"),
        Some(Timestamp(7))
    );
    assert_eq!(store.read_marker("b", &chan).await.expect("get"), None);
    store
        .set_read_marker("b", &chan, Timestamp(200))
        .await
        .expect("b");
    let mut all = store.all_read_markers(10).await.expect("all");
    all.sort_by(|x, y| (x.0.as_str(), x.1.as_str()).cmp(&(y.0.as_str(), y.1.as_str())));
    assert_eq!(
        all,
        [
            ("a".to_owned(), chan.clone(), Timestamp(150)),
            ("a".to_owned(), dm.clone(), Timestamp(7)),
            ("b".to_owned(), chan.clone(), Timestamp(200)),
        ]
    );
    // The limit keeps the most recently moved.
    let newest = store.all_read_markers(1).await.expect("newest");
    assert_eq!(newest, [("b".to_owned(), chan, Timestamp(200))]);
}

/// Retention by age, in bounded batches, until complete; newer messages stay.
pub async fn retention_age<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    let (target, m) = channel_with(&*store, 50).await; // times 1000..=1490
    let policy = Retention {
        max_age_ms: Some(100),
        max_messages: None,
    };
    let now = Timestamp(1500); // cutoff 1400: messages 0..40 go
    let mut removed = 0;
    let mut passes = 0;
    loop {
        let pass = store.expire(policy, now, 7).await.expect("expire");
        assert!(pass.removed <= 7);
        removed += pass.removed;
        passes += 1;
        if pass.complete {
            break;
        }
        assert!(passes < 100, "expiry never completes");
    }
    assert_eq!(removed, 40);
    assert!(passes >= 6);
    let got = store.latest(&target, None, 100).await.expect("latest");
    assert_eq!(ids(&got), ids(&m[40..]));
    let again = store.expire(policy, now, 7).await.expect("expire");
    assert_eq!(again.removed, 0);
    assert!(again.complete);
}

/// Retention by count per target, in bounded batches, over many targets.
pub async fn retention_count<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    let targets: Vec<_> = (0..40)
        .map(|i| TargetKey::channel(&format!("#t{i}")))
        .collect();
    let mut all = Vec::new();
    for (t, target) in targets.iter().enumerate() {
        for i in 0..(t as u64 % 7) {
            let mut m = message(target, i, 1000 + i as i64);
            m.msgid = format!("{t}-{i}");
            all.push(m);
        }
    }
    append_all(&*store, &all).await;
    let policy = Retention {
        max_age_ms: None,
        max_messages: Some(3),
    };
    let mut removed = 0;
    for _ in 0..100 {
        let pass = store
            .expire(policy, Timestamp(2000), 5)
            .await
            .expect("expire");
        assert!(pass.removed <= 5);
        removed += pass.removed;
        if pass.complete {
            break;
        }
    }
    let expected: u64 = (0..40u64).map(|t| (t % 7).saturating_sub(3)).sum();
    assert_eq!(removed, expected);
    for (t, target) in targets.iter().enumerate() {
        let got = store.latest(target, None, 100).await.expect("latest");
        let n = t as u64 % 7;
        assert_eq!(got.len() as u64, n.min(3), "target {t}");
        if let Some(last) = got.last() {
            assert_eq!(last.msgid, format!("{t}-{}", n - 1), "the newest stay");
        }
    }
}

/// A test server ban of `kind` on `mask`, expiring at `expires_at` (ms).
pub fn server_ban(kind: ServerBanKind, mask: &str, expires_at: Option<i64>) -> ServerBan {
    ServerBan {
        kind,
        mask: mask.to_owned(),
        reason: format!("no {mask}"),
        set_by: "oper".to_owned(),
        set_at: Timestamp(1_700_000_000_000),
        expires_at: expires_at.map(Timestamp),
    }
}

/// Server bans: add, the sorted list (kind, then mask), a replacement keeps one
/// row, the same mask under the other kind is another ban, removal once, masks
/// compared byte for byte.
pub async fn server_bans<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    assert!(store.server_bans().await.expect("list").is_empty());
    let dline = server_ban(ServerBanKind::DLine, "10.0.0.0/8", None);
    let kline_b = server_ban(
        ServerBanKind::KLine,
        "*@bad.example",
        Some(1_800_000_000_000),
    );
    let kline_a = server_ban(ServerBanKind::KLine, "~evil@*", None);
    for ban in [&dline, &kline_b, &kline_a] {
        let added = store.add_server_ban(ban.clone(), 100).await.expect("add");
        assert_eq!(added, ServerBanAdded::Added, "{}", ban.mask);
    }
    // The same text as a D-line is a different ban.
    let same_mask = server_ban(ServerBanKind::DLine, "*@bad.example", None);
    let added = store.add_server_ban(same_mask.clone(), 100).await;
    assert_eq!(added.expect("add"), ServerBanAdded::Added);
    assert_eq!(
        store.server_bans().await.expect("list"),
        [
            kline_b.clone(),
            kline_a.clone(),
            same_mask.clone(),
            dline.clone()
        ]
    );

    // A replacement changes reason, setter and expiry, and stays one ban.
    let mut renewed = kline_a.clone();
    renewed.reason = "still evil".to_owned();
    renewed.set_by = "other".to_owned();
    renewed.expires_at = Some(Timestamp(1_900_000_000_000));
    let replaced = store.add_server_ban(renewed.clone(), 100).await;
    assert_eq!(replaced.expect("add"), ServerBanAdded::Replaced);
    let list = store.server_bans().await.expect("list");
    assert_eq!(list.len(), 4);
    assert_eq!(list[1], renewed);

    // Removal: byte for byte, of the named kind only, once.
    assert!(
        !store
            .remove_server_ban(ServerBanKind::KLine, "~EVIL@*")
            .await
            .expect("remove")
    );
    assert!(
        !store
            .remove_server_ban(ServerBanKind::KLine, "10.0.0.0/8")
            .await
            .expect("remove")
    );
    assert!(
        store
            .remove_server_ban(ServerBanKind::KLine, "~evil@*")
            .await
            .expect("remove")
    );
    assert!(
        !store
            .remove_server_ban(ServerBanKind::KLine, "~evil@*")
            .await
            .expect("remove")
    );
    assert_eq!(
        store.server_bans().await.expect("list"),
        [kline_b, same_mask, dline]
    );
}

/// The limit counts both kinds together; a replacement is allowed at the limit,
/// a new ban is not, and a removal makes room again.
pub async fn server_ban_limit<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    let first = server_ban(ServerBanKind::KLine, "*@one", None);
    let second = server_ban(ServerBanKind::DLine, "192.0.2.1", None);
    for ban in [&first, &second] {
        let added = store.add_server_ban(ban.clone(), 2).await.expect("add");
        assert_eq!(added, ServerBanAdded::Added);
    }
    let third = server_ban(ServerBanKind::KLine, "*@three", None);
    let full = store.add_server_ban(third.clone(), 2).await.expect("add");
    assert_eq!(full, ServerBanAdded::LimitReached);
    assert_eq!(store.server_bans().await.expect("list").len(), 2);
    let again = store.add_server_ban(first.clone(), 2).await.expect("add");
    assert_eq!(again, ServerBanAdded::Replaced);
    assert!(
        store
            .remove_server_ban(ServerBanKind::DLine, "192.0.2.1")
            .await
            .expect("remove")
    );
    let added = store.add_server_ban(third, 2).await.expect("add");
    assert_eq!(added, ServerBanAdded::Added);
}

/// Expiry deletes the bans whose time has come (at `now` included), never a
/// permanent one, and says how many.
pub async fn server_ban_expiry<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    let permanent = server_ban(ServerBanKind::KLine, "*@forever", None);
    let past = server_ban(ServerBanKind::KLine, "*@past", Some(1_000));
    let now = server_ban(ServerBanKind::DLine, "192.0.2.0/24", Some(2_000));
    let later = server_ban(ServerBanKind::DLine, "198.51.100.7", Some(3_000));
    for ban in [&permanent, &past, &now, &later] {
        store.add_server_ban(ban.clone(), 100).await.expect("add");
    }
    assert!(past.is_expired(Timestamp(2_000)) && !later.is_expired(Timestamp(2_000)));
    let removed = store
        .expire_server_bans(Timestamp(2_000))
        .await
        .expect("expire");
    assert_eq!(removed, 2);
    assert_eq!(store.server_bans().await.expect("list"), [permanent, later]);
    let removed = store
        .expire_server_bans(Timestamp(2_000))
        .await
        .expect("expire");
    assert_eq!(removed, 0);
}

/// `close` commits what was queued; afterwards appends and writes are refused
/// with `Closed`.
pub async fn close<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let store = make().await;
    let target = TargetKey::channel("#close");
    let mut last = 0;
    for i in 0..100 {
        last = store.append(message(&target, i, i as i64)).expect("append");
    }
    store.close().await.expect("close");
    assert!(store.committed() >= last);
    let refused = store
        .append(message(&target, 1000, 1000))
        .expect_err("closed");
    assert_eq!(refused.reason, AppendError::Closed);
    assert_eq!(refused.message.msgid, message(&target, 1000, 1000).msgid);
    let write = store.create_account(account("late")).await;
    assert!(matches!(write, Err(StoreError::Closed { .. })), "{write:?}");
}
