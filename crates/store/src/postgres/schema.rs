//! The PostgreSQL schema and its versioned migrations.
//!
//! The version is the one row of `palaver_schema_version`. Every node of a cluster
//! runs [`migrate`] when it opens the store: it takes a transaction-scoped advisory
//! lock first (`pg_advisory_xact_lock`), so concurrent opens queue up, the first one
//! migrates, and the others find the work done. A database whose version is newer
//! than this build's is refused with [`StoreError::TooNew`] (a rolling upgrade must
//! not let an old node write into a schema it does not know), and a database that
//! holds other tables but no version row is refused as another application's.
//!
//! Keys are `COLLATE "C"`: compared and ordered byte for byte, like SQLite's `BINARY`,
//! so both backends list channels and fingerprints in the same order whatever the
//! database's locale. Times are `BIGINT` milliseconds, as in the domain types.
//!
//! Unlike the SQLite schema, the message row keeps its target key and sender as text
//! (no interned ids): interning needs a lookup-or-insert per new sender inside the
//! batch, which would take locks another node's batch could wait for. `target`
//! lists every target that has had history (for the retention pass) and
//! `target_party` the parties of private conversations (for TARGETS); a target's
//! latest message time is read from the `(target, time, id)` index (one index probe)
//! instead of being kept in a row every batch would have to update.

use tokio_postgres::Client;

use crate::error::StoreError;

/// The advisory lock key held while migrating ("plvr", as SQLite's application id).
const MIGRATION_LOCK: i64 = 0x706c_7672;

/// Migration `i` takes the schema from version `i` to `i + 1`. Never edit a released
/// entry: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema (the SQLite schema's three versions together).
    r#"
    CREATE TABLE account (
        key TEXT COLLATE "C" PRIMARY KEY,
        name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        scram_salt BYTEA NOT NULL,
        scram_iterations BIGINT NOT NULL,
        scram_stored_key BYTEA NOT NULL,
        scram_server_key BYTEA NOT NULL,
        email TEXT,
        verified BOOLEAN NOT NULL,
        created_at BIGINT NOT NULL
    );

    CREATE TABLE account_certfps (
        certfp TEXT COLLATE "C" PRIMARY KEY,
        account_key TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX account_certfps_account ON account_certfps (account_key);

    CREATE TABLE channel (
        key TEXT COLLATE "C" PRIMARY KEY,
        name TEXT NOT NULL,
        founder TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        topic TEXT,
        topic_set_by TEXT,
        topic_set_at BIGINT,
        modes TEXT NOT NULL,
        key_mode TEXT,
        user_limit BIGINT
    );

    CREATE TABLE channel_list (
        channel TEXT COLLATE "C" NOT NULL,
        kind BIGINT NOT NULL,
        mask TEXT COLLATE "C" NOT NULL,
        set_by TEXT NOT NULL,
        set_at BIGINT NOT NULL,
        PRIMARY KEY (channel, kind, mask)
    );

    CREATE TABLE channel_access (
        channel TEXT COLLATE "C" NOT NULL,
        account TEXT COLLATE "C" NOT NULL,
        level INTEGER NOT NULL,
        PRIMARY KEY (channel, account)
    );

    CREATE TABLE target (
        key TEXT COLLATE "C" PRIMARY KEY
    );

    CREATE TABLE target_party (
        party TEXT COLLATE "C" NOT NULL,
        target TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (party, target)
    );

    CREATE TABLE message (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        target TEXT COLLATE "C" NOT NULL,
        time BIGINT NOT NULL,
        msgid TEXT COLLATE "C" NOT NULL,
        kind BIGINT NOT NULL,
        sender TEXT NOT NULL,
        account TEXT,
        tags TEXT,
        text TEXT NOT NULL
    );
    CREATE INDEX message_target_time ON message (target, time, id);
    CREATE UNIQUE INDEX message_msgid ON message (msgid);

    CREATE TABLE read_marker (
        account TEXT COLLATE "C" NOT NULL,
        target TEXT COLLATE "C" NOT NULL,
        at BIGINT NOT NULL,
        PRIMARY KEY (account, target)
    );

    CREATE TABLE server_ban (
        kind BIGINT NOT NULL,
        mask TEXT COLLATE "C" NOT NULL,
        reason TEXT NOT NULL,
        set_by TEXT NOT NULL,
        set_at BIGINT NOT NULL,
        expires_at BIGINT,
        PRIMARY KEY (kind, mask)
    );
    "#,
];

/// The schema version this build writes.
pub(crate) const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// The table holding the version (public to the crate for tests that fake a newer
/// database).
pub(crate) const VERSION_TABLE: &str = "palaver_schema_version";

/// Brings the database to [`CURRENT_VERSION`] in one transaction, under the
/// migration lock; `shown` names the database in errors (no password).
pub(crate) async fn migrate(client: &mut Client, shown: &str) -> Result<(), StoreError> {
    let fail = |operation: &'static str| {
        move |e: tokio_postgres::Error| StoreError::Open {
            path: shown.into(),
            operation,
            source: Box::new(e),
        }
    };
    let tx = client
        .transaction()
        .await
        .map_err(fail("begin migration"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(fail("take the migration lock"))?;
    let exists = tx
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_tables \
             WHERE schemaname = current_schema() AND tablename = $1",
            &[&VERSION_TABLE],
        )
        .await
        .map_err(fail("read schema version"))?
        .is_some();
    let version: i64 = if exists {
        let row = tx
            .query_opt(
                &format!("SELECT version FROM {VERSION_TABLE} WHERE id = 1"),
                &[],
            )
            .await
            .map_err(fail("read schema version"))?;
        match row {
            Some(row) => row.try_get(0).map_err(fail("read schema version"))?,
            None => 0,
        }
    } else {
        let tables: i64 = tx
            .query_one(
                "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema()",
                &[],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(fail("read schema"))?;
        if tables > 0 {
            return Err(StoreError::Corrupt {
                path: shown.into(),
                source: "the database has tables but no palaver schema version: it belongs to another application".into(),
            });
        }
        tx.batch_execute(&format!(
            "CREATE TABLE {VERSION_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL); \
             INSERT INTO {VERSION_TABLE} (id, version) VALUES (1, 0)"
        ))
        .await
        .map_err(fail("create the schema version table"))?;
        0
    };
    if version > CURRENT_VERSION {
        return Err(StoreError::TooNew {
            path: shown.into(),
            found: version,
            supported: CURRENT_VERSION,
        });
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        tx.batch_execute(sql)
            .await
            .map_err(fail("migrate schema"))?;
        tx.execute(
            &format!("UPDATE {VERSION_TABLE} SET version = $1 WHERE id = 1"),
            &[&(from as i64 + 1)],
        )
        .await
        .map_err(fail("set schema version"))?;
        tracing::info!(
            database = shown,
            version = from + 1,
            "store: migrated the schema"
        );
    }
    tx.commit().await.map_err(fail("commit migration"))
}
