//! What only the SQLite backend has: files, locks, schema versions, the queue bound.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use palaver_store::conformance::{account, certfp, channel, message};
use palaver_store::{
    AppendError, CertfpAdded, DATABASE_FILE, HistoryRef, SqliteOptions, SqliteStore, Store,
    StoreError, SyncMode, TargetKey, Timestamp,
};

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir")
}

fn quick() -> SqliteOptions {
    SqliteOptions {
        busy_timeout: Duration::from_millis(100),
        ..SqliteOptions::default()
    }
}

/// The error an operator reads: one sentence naming the file.
fn assert_one_sentence(e: &StoreError, path: &Path) {
    let text = e.to_string();
    assert!(!text.contains('\n'), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
}

#[test]
fn creates_the_data_directory_and_the_database() {
    let dir = tempdir();
    let data = dir.path().join("a").join("palaver-data");
    let store = SqliteStore::open(&data).expect("open");
    assert_eq!(store.path(), data.join(DATABASE_FILE));
    assert!(data.join(DATABASE_FILE).is_file());
}

#[test]
fn garbage_file_is_reported_corrupt() {
    let dir = tempdir();
    let path = dir.path().join(DATABASE_FILE);
    // Deterministic non-database bytes (an xorshift stream), 64 KiB.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..65_536)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&path, &bytes).expect("write garbage");
    let e = SqliteStore::open(dir.path()).expect_err("garbage must not open");
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
    assert_one_sentence(&e, &path);
    // Nothing was written into it.
    assert_eq!(std::fs::read(&path).expect("read"), bytes);
}

#[test]
fn another_application_database_is_refused() {
    let dir = tempdir();
    let path = dir.path().join(DATABASE_FILE);
    let other = rusqlite::Connection::open(&path).expect("create");
    other
        .execute_batch("CREATE TABLE notes (body TEXT)")
        .expect("table");
    drop(other);
    let e = SqliteStore::open(dir.path()).expect_err("foreign database");
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
    assert_one_sentence(&e, &path);
}

#[test]
fn a_second_store_on_the_same_directory_is_locked() {
    let dir = tempdir();
    let first = SqliteStore::open(dir.path()).expect("open");
    let e = SqliteStore::open_with(dir.path(), quick()).expect_err("second open");
    assert!(matches!(e, StoreError::Locked { .. }), "{e:?}");
    assert_one_sentence(&e, first.path());
    drop(first);
    SqliteStore::open(dir.path()).expect("open again once released");
}

/// A server closes its store and may restart on the same directory in the same
/// process while something (a finishing task) still holds the old handle.
#[tokio::test]
async fn a_closed_store_frees_its_directory_before_it_is_dropped() {
    let dir = tempdir();
    let first = SqliteStore::open(dir.path()).expect("open");
    let target = TargetKey::channel("#c");
    let kept = message(&target, 1, 1_000);
    let seq = first.append(kept.clone()).expect("append");
    first.close().await.expect("close");
    assert!(first.committed() >= seq, "close commits what was queued");
    assert!(matches!(
        first.append(message(&target, 2, 2_000)),
        Err(ref rejected) if matches!(rejected.reason, AppendError::Closed)
    ));
    let second =
        SqliteStore::open_with(dir.path(), quick()).expect("open while the first is alive");
    let found = second.latest(&target, None, 10).await.expect("query");
    assert_eq!(found, [kept]);
    // Closing again, and dropping, are harmless.
    first.close().await.expect("close twice");
    drop(first);
}

#[test]
fn an_exclusive_lock_held_by_another_connection_is_reported_locked() {
    for existing in [false, true] {
        let dir = tempdir();
        let path = dir.path().join(DATABASE_FILE);
        if existing {
            drop(SqliteStore::open(dir.path()).expect("create"));
        }
        // Another program (say, the sqlite3 shell) holding the database exclusively.
        let other = rusqlite::Connection::open(&path).expect("open");
        other
            .execute_batch(
                "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; \
                 CREATE TABLE IF NOT EXISTS holder (x); INSERT INTO holder VALUES (1);",
            )
            .expect("lock");
        let e = SqliteStore::open_with(dir.path(), quick()).expect_err("locked");
        assert!(
            matches!(e, StoreError::Locked { .. }),
            "existing={existing}: {e:?}"
        );
        assert_one_sentence(&e, &path);
        drop(other);
    }
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempdir();
    drop(SqliteStore::open(dir.path()).expect("create"));
    let path = dir.path().join(DATABASE_FILE);
    let raw = rusqlite::Connection::open(&path).expect("open");
    raw.pragma_update(None, "user_version", 99).expect("bump");
    drop(raw);
    let e = SqliteStore::open(dir.path()).expect_err("too new");
    assert!(
        matches!(
            e,
            StoreError::TooNew {
                found: 99,
                supported: 3,
                ..
            }
        ),
        "{e:?}"
    );
    assert_one_sentence(&e, &path);
}

/// A database at schema version 1 (before certificate fingerprints and server
/// bans) is migrated on open, keeping its data. Version 1 is rebuilt from a
/// current database by undoing migrations 2 and 3 by hand (dropping their tables,
/// and the index with them) and setting the version back.
#[tokio::test]
async fn a_version_1_database_is_migrated() {
    let dir = tempdir();
    {
        let store = SqliteStore::open(dir.path()).expect("create");
        store
            .create_account(account("alice"))
            .await
            .expect("account");
    }
    let path = dir.path().join(DATABASE_FILE);
    let raw = rusqlite::Connection::open(&path).expect("open");
    raw.execute_batch(
        "DROP TABLE account_certfps; DROP TABLE server_ban; PRAGMA user_version = 1;",
    )
    .expect("downgrade");
    let tables: i64 = raw
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'account_certfps%'",
            [],
            |row| row.get(0),
        )
        .expect("schema");
    assert_eq!(tables, 0, "the table and its index are gone");
    drop(raw);

    let store = SqliteStore::open(dir.path()).expect("migrate");
    assert_eq!(
        store.account("alice").await.expect("get"),
        Some(account("alice"))
    );
    assert_eq!(
        store.add_certfp("alice", &certfp(1)).await.expect("add"),
        CertfpAdded::Added
    );
    assert_eq!(
        store.account_by_certfp(&certfp(1)).await.expect("lookup"),
        Some(account("alice"))
    );
    store.close().await.expect("close");
    drop(store);
    let raw = rusqlite::Connection::open(&path).expect("open");
    let version: i64 = raw
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .expect("version");
    assert_eq!(version, 3);
    let index: i64 = raw
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'index' \
             AND name = 'account_certfps_account'",
            [],
            |row| row.get(0),
        )
        .expect("schema");
    assert_eq!(index, 1);
}

#[tokio::test]
async fn everything_survives_a_restart() {
    let dir = tempdir();
    let chan = TargetKey::channel("#keep");
    let messages: Vec<_> = (0..50)
        .map(|i| message(&chan, i, 1000 + i as i64))
        .collect();
    {
        let store = SqliteStore::open(dir.path()).expect("open");
        store
            .create_account(account("alice"))
            .await
            .expect("account");
        store
            .register_channel(channel("#keep", "alice"))
            .await
            .expect("channel");
        store
            .set_read_marker("alice", &chan, Timestamp(1020))
            .await
            .expect("marker");
        store.add_certfp("alice", &certfp(7)).await.expect("certfp");
        for m in &messages {
            store.append(m.clone()).expect("append");
        }
        // No flush: dropping the store commits what is queued.
    }
    let store = SqliteStore::open(dir.path()).expect("reopen");
    assert_eq!(
        store.account("alice").await.expect("get"),
        Some(account("alice"))
    );
    let got = store.channel("#keep").await.expect("get").expect("kept");
    assert_eq!(got.founder, "alice");
    assert_eq!(got.lists.len(), 3);
    assert_eq!(
        store.read_marker("alice", &chan).await.expect("get"),
        Some(Timestamp(1020))
    );
    assert_eq!(store.certfps("alice").await.expect("list"), [certfp(7)]);
    assert_eq!(
        store.latest(&chan, None, 100).await.expect("latest"),
        messages
    );
    // Appends after the restart continue the same target.
    let more = message(&chan, 1000, 5000);
    store.append(more.clone()).expect("append");
    store.flush().await.expect("flush");
    let got = store
        .after(&chan, HistoryRef::MsgId(messages[49].msgid.clone()), 10)
        .await
        .expect("after");
    assert_eq!(got, [more]);
}

#[tokio::test]
async fn a_refused_message_does_not_sink_its_batch() {
    let store = SqliteStore::open_in_memory().expect("open");
    let chan = TargetKey::channel("#dup");
    let first = message(&chan, 1, 10);
    let mut dup = message(&chan, 2, 20);
    dup.msgid = first.msgid.clone();
    let third = message(&chan, 3, 30);
    store.append(first.clone()).expect("append");
    store.append(dup).expect("append");
    let last = store.append(third.clone()).expect("append");
    assert!(store.flush().await.expect("flush") >= last);
    assert_eq!(store.write_failures(), 1);
    let got = store.latest(&chan, None, 10).await.expect("latest");
    assert_eq!(got, [first, third]);
}

#[tokio::test]
async fn a_full_queue_is_refused_and_hands_the_message_back() {
    let dir = tempdir();
    let options = SqliteOptions {
        queue_capacity: 4,
        busy_timeout: Duration::from_secs(30),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(dir.path(), options).expect("open");
    // Another connection holds the write lock, so the writer is stuck in BEGIN.
    let other = rusqlite::Connection::open(store.path()).expect("open");
    other.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let chan = TargetKey::channel("#full");
    let mut accepted = Vec::new();
    let mut refused = None;
    for i in 0..20 {
        match store.append(message(&chan, i, i as i64)) {
            Ok(_) => accepted.push(i),
            Err(rejected) => {
                refused = Some(rejected);
                break;
            }
        }
    }
    let refused = refused.expect("the queue must fill");
    assert_eq!(refused.reason, AppendError::Full);
    assert_eq!(
        refused.message,
        message(&chan, accepted.len() as u64, accepted.len() as i64)
    );
    // At most the bound queued, plus the batch the writer already took.
    assert!((4..=8).contains(&accepted.len()), "{accepted:?}");
    other.execute_batch("COMMIT").expect("unlock");
    store.flush().await.expect("flush");
    let got = store.latest(&chan, None, 100).await.expect("latest");
    assert_eq!(got.len(), accepted.len());
    store.append(refused.message).expect("room again");
}

#[tokio::test]
async fn fsync_full_and_the_commit_hook() {
    let dir = tempdir();
    let seen = Arc::new(AtomicU64::new(0));
    let hook_seen = Arc::clone(&seen);
    let options = SqliteOptions {
        sync: SyncMode::Full,
        on_commit: Some(Arc::new(move |seq| {
            hook_seen.fetch_max(seq, Ordering::SeqCst);
        })),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(dir.path(), options).expect("open");
    let chan = TargetKey::channel("#sync");
    let mut last = 0;
    for i in 0..100 {
        last = store.append(message(&chan, i, i as i64)).expect("append");
    }
    store.flush().await.expect("flush");
    assert!(seen.load(Ordering::SeqCst) >= last);
    assert_eq!(store.latest(&chan, None, 1000).await.expect("q").len(), 100);
}

#[tokio::test]
async fn a_backup_taken_while_the_store_writes_restores_everything_committed() {
    let dir = tempdir();
    let live = dir.path().join("live");
    let chan = TargetKey::channel("#keep");
    let store = SqliteStore::open(&live).expect("open");
    store
        .create_account(account("alice"))
        .await
        .expect("account");
    let first: Vec<_> = (0..40)
        .map(|i| message(&chan, i, 1000 + i as i64))
        .collect();
    for m in &first {
        store.append(m.clone()).expect("append");
    }
    store.flush().await.expect("flush");

    // The store stays open (a running server): the copy is taken beside it.
    let copy = dir.path().join("palaver-backup.db");
    let summary = palaver_store::backup(&live, &copy).expect("backup");
    assert_eq!(summary.source, live.join(DATABASE_FILE));
    assert!(summary.bytes > 0);
    assert_eq!(std::fs::metadata(&copy).expect("copy").len(), summary.bytes);
    // Never overwritten.
    let again = palaver_store::backup(&live, &copy).expect_err("exists");
    assert_one_sentence(&again, &copy);

    // Written after the backup: not in it.
    let later = message(&chan, 99, 9000);
    store.append(later.clone()).expect("append");
    store.flush().await.expect("flush");

    // A restore into a directory in use is refused, and changes nothing.
    let refused = palaver_store::restore(&live, &copy).expect_err("server running");
    assert!(matches!(refused, StoreError::Locked { .. }), "{refused:?}");
    drop(store);

    let summary = palaver_store::restore(&live, &copy).expect("restore");
    let previous = summary.previous.expect("the replaced database is kept");
    assert!(previous.is_file());
    let store = SqliteStore::open(&live).expect("open the restored database");
    assert_eq!(
        store.account("alice").await.expect("get"),
        Some(account("alice"))
    );
    assert_eq!(store.latest(&chan, None, 100).await.expect("latest"), first);
    drop(store);

    // The replaced database is whole, the message written after the backup included.
    let aside = dir.path().join("aside");
    std::fs::create_dir(&aside).expect("dir");
    std::fs::rename(&previous, aside.join(DATABASE_FILE)).expect("move");
    let wal = std::path::PathBuf::from(format!("{}-wal", previous.display()));
    if wal.exists() {
        std::fs::rename(&wal, aside.join(format!("{DATABASE_FILE}-wal"))).expect("move wal");
    }
    let old = SqliteStore::open(&aside).expect("open the replaced database");
    let got = old.latest(&chan, None, 100).await.expect("latest");
    assert_eq!(got.last(), Some(&later));
}

#[test]
fn restore_refuses_what_is_not_an_intact_palaver_database() {
    let dir = tempdir();
    let foreign = dir.path().join("notes.db");
    let other = rusqlite::Connection::open(&foreign).expect("create");
    other
        .execute_batch("CREATE TABLE notes (body TEXT)")
        .expect("table");
    drop(other);
    let data = dir.path().join("data");
    let e = palaver_store::restore(&data, &foreign).expect_err("foreign");
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
    assert_one_sentence(&e, &foreign);
    assert!(!data.join(DATABASE_FILE).exists());

    let missing = palaver_store::backup(&data, &dir.path().join("out.db")).expect_err("none");
    assert_one_sentence(&missing, &data.join(DATABASE_FILE));
}

/// A database at schema version 2 (before server bans) gets the `server_ban`
/// table on open, keeping its data.
#[tokio::test]
async fn a_version_2_database_gets_server_bans() {
    use palaver_store::{ServerBanAdded, ServerBanKind};
    let dir = tempdir();
    {
        let store = SqliteStore::open(dir.path()).expect("create");
        store
            .create_account(account("alice"))
            .await
            .expect("account");
    }
    let path = dir.path().join(DATABASE_FILE);
    let raw = rusqlite::Connection::open(&path).expect("open");
    raw.execute_batch("DROP TABLE server_ban; PRAGMA user_version = 2;")
        .expect("downgrade");
    drop(raw);
    let store = SqliteStore::open(dir.path()).expect("migrate");
    assert_eq!(
        store.account("alice").await.expect("get"),
        Some(account("alice"))
    );
    let ban = palaver_store::conformance::server_ban(ServerBanKind::KLine, "*@bad", None);
    assert_eq!(
        store.add_server_ban(ban.clone(), 10).await.expect("add"),
        ServerBanAdded::Added
    );
    assert_eq!(store.server_bans().await.expect("list"), [ban]);
}
