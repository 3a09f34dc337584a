//! The SQL, one async function per statement group, over a `tokio_postgres::Client`:
//! the writer calls the write functions inside its batch transaction, the readers
//! the queries (each a single statement in autocommit, so it sees committed rows
//! only).
//!
//! Rows are read with `try_get` only: a column of an unexpected type (a hand-edited
//! database) is an error, never a panic.

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

use crate::error::StoreError;
use crate::span::Pos;
use crate::types::{
    AccessEntry, Account, ChannelRegistration, HistoryMessage, ListEntry, ListKind, MessageKind,
    PasswordUpdate, ScramVerifier, ServerBan, ServerBanKind, TargetKey, Timestamp, Topic,
};

type Sql<T> = Result<T, tokio_postgres::Error>;

/// Maps a driver error to [`StoreError::Backend`] for `operation`.
pub(crate) fn pg_err(operation: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::backend(operation, e)
}

/// Whether `e` is a unique-constraint violation (a key already taken).
pub(crate) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

// ----- history writes -----

/// Whether PostgreSQL can store `m`: text columns cannot hold NUL (IRC lines never
/// carry one, but a bad message must not abort the whole batch).
pub(crate) fn storable(m: &HistoryMessage) -> bool {
    let nul = |s: &str| s.contains('\0');
    !(nul(&m.msgid)
        || nul(m.target.as_str())
        || nul(&m.sender)
        || m.account.as_deref().is_some_and(nul)
        || nul(&m.tags)
        || nul(&m.text))
}

/// Registers a target (and the parties of a private conversation); idempotent,
/// in autocommit.
pub(crate) async fn register_target(client: &Client, key: &TargetKey) -> Result<(), StoreError> {
    let fail = pg_err("register history target");
    let parties: Vec<&str> = key
        .parties()
        .map(|p| p.iter().map(String::as_str).collect())
        .unwrap_or_default();
    client
        .execute(
            "WITH t AS (INSERT INTO target (key) VALUES ($1) ON CONFLICT (key) DO NOTHING) \
             INSERT INTO target_party (party, target) \
             SELECT p, $1 FROM unnest($2::text[]) AS p ON CONFLICT DO NOTHING",
            &[&key.as_str(), &parties],
        )
        .await
        .map_err(fail)?;
    Ok(())
}

/// Inserts a run of messages in one statement, in order (identity values follow
/// the ordinality); a duplicate msgid is skipped. Prepared once per connection.
pub(crate) const INSERT_MESSAGES: &str = "INSERT INTO message (target, time, msgid, kind, sender, account, tags, text) \
     SELECT target, time, msgid, kind, sender, account, tags, text \
     FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::text[], \
                 $6::text[], $7::text[], $8::text[]) \
          WITH ORDINALITY AS r(target, time, msgid, kind, sender, account, tags, text, n) \
     ORDER BY n \
     ON CONFLICT (msgid) DO NOTHING";

/// Runs [`INSERT_MESSAGES`] (prepared as `insert`) for `messages`; returns how many
/// rows were inserted.
pub(crate) async fn insert_messages(
    client: &Client,
    insert: &Statement,
    messages: &[HistoryMessage],
) -> Sql<u64> {
    let n = messages.len();
    let mut targets = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    let mut msgids = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut senders = Vec::with_capacity(n);
    let mut accounts = Vec::with_capacity(n);
    let mut tags = Vec::with_capacity(n);
    let mut texts = Vec::with_capacity(n);
    for m in messages {
        targets.push(m.target.as_str());
        times.push(m.time.0);
        msgids.push(m.msgid.as_str());
        kinds.push(m.kind.code());
        senders.push(m.sender.as_str());
        accounts.push(m.account.as_deref());
        tags.push((!m.tags.is_empty()).then_some(m.tags.as_str()));
        texts.push(m.text.as_str());
    }
    client
        .execute(
            insert,
            &[
                &targets, &times, &msgids, &kinds, &senders, &accounts, &tags, &texts,
            ],
        )
        .await
}

/// Deletes a message by msgid.
pub(crate) async fn redact(client: &Client, msgid: &str) -> Sql<bool> {
    Ok(client
        .execute("DELETE FROM message WHERE msgid = $1", &[&msgid])
        .await?
        > 0)
}

// ----- history reads -----

/// `(time, id)` of `msgid` if it is in `target`.
pub(crate) async fn position(client: &Client, target: &str, msgid: &str) -> Sql<Option<Pos>> {
    match client
        .query_opt(
            "SELECT time, id FROM message WHERE msgid = $1 AND target = $2",
            &[&msgid, &target],
        )
        .await?
    {
        Some(row) => Ok(Some((row.try_get(0)?, row.try_get(1)?))),
        None => Ok(None),
    }
}

/// Up to `limit` messages of `target` strictly between `lo` and `hi`: the first
/// ones after `lo`, or with `from_top` the last ones before `hi`. Oldest first.
/// Row comparisons on `(time, id)` are served by the `(target, time, id)` index.
pub(crate) async fn range(
    client: &Client,
    target: &TargetKey,
    lo: Pos,
    hi: Pos,
    from_top: bool,
    limit: usize,
) -> Result<Vec<HistoryMessage>, StoreError> {
    const COLUMNS: &str = "SELECT time, msgid, kind, sender, account, tags, text FROM message \
        WHERE target = $1 AND (time, id) > ($2, $3) AND (time, id) < ($4, $5)";
    let sql = if from_top {
        format!("{COLUMNS} ORDER BY time DESC, id DESC LIMIT $6")
    } else {
        format!("{COLUMNS} ORDER BY time, id LIMIT $6")
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let fail = pg_err("history query");
    let rows = client
        .query(
            &sql,
            &[&target.as_str(), &lo.0, &lo.1, &hi.0, &hi.1, &limit],
        )
        .await
        .map_err(&fail)?;
    let mut out = rows
        .iter()
        .map(|row| message_from_row(row, target))
        .collect::<Result<Vec<_>, _>>()?;
    if from_top {
        out.reverse();
    }
    Ok(out)
}

/// One message row; an unknown kind code is an error rather than a guess.
fn message_from_row(row: &Row, target: &TargetKey) -> Result<HistoryMessage, StoreError> {
    let fail = pg_err("history query");
    let code: i64 = row.try_get(2).map_err(&fail)?;
    let kind = MessageKind::from_code(code).ok_or(StoreError::Invalid {
        operation: "history query",
        what: "message kind",
    })?;
    Ok(HistoryMessage {
        time: Timestamp(row.try_get(0).map_err(&fail)?),
        msgid: row.try_get(1).map_err(&fail)?,
        kind,
        sender: row.try_get(3).map_err(&fail)?,
        account: row.try_get(4).map_err(&fail)?,
        tags: row
            .try_get::<_, Option<String>>(5)
            .map_err(&fail)?
            .unwrap_or_default(),
        text: row.try_get(6).map_err(&fail)?,
        target: target.clone(),
    })
}

/// `(key, latest)` of each of `channels` that has history.
pub(crate) async fn channel_latest(
    client: &Client,
    channels: &[String],
) -> Sql<Vec<(String, i64)>> {
    let rows = client
        .query(
            "SELECT u.k, (SELECT max(m.time) FROM message m WHERE m.target = u.k COLLATE \"C\") \
             FROM unnest($1::text[]) AS u(k)",
            &[&channels],
        )
        .await?;
    let mut out = Vec::new();
    for row in rows {
        if let Some(latest) = row.try_get::<_, Option<i64>>(1)? {
            out.push((row.try_get(0)?, latest));
        }
    }
    Ok(out)
}

/// `(key, latest)` of every conversation one of `parties` is in.
pub(crate) async fn party_targets(client: &Client, parties: &[String]) -> Sql<Vec<(String, i64)>> {
    let rows = client
        .query(
            "SELECT p.target, (SELECT max(m.time) FROM message m WHERE m.target = p.target) \
             FROM target_party p WHERE p.party = ANY($1::text[])",
            &[&parties],
        )
        .await?;
    let mut out = Vec::new();
    for row in rows {
        if let Some(latest) = row.try_get::<_, Option<i64>>(1)? {
            out.push((row.try_get(0)?, latest));
        }
    }
    Ok(out)
}

// ----- read markers -----

pub(crate) async fn set_read_marker(
    client: &Client,
    account: &str,
    target: &str,
    at: i64,
) -> Sql<i64> {
    client
        .query_one(
            "INSERT INTO read_marker (account, target, at) VALUES ($1, $2, $3) \
             ON CONFLICT (account, target) DO UPDATE \
             SET at = GREATEST(read_marker.at, excluded.at) RETURNING at",
            &[&account, &target, &at],
        )
        .await?
        .try_get(0)
}

pub(crate) async fn read_marker(client: &Client, account: &str, target: &str) -> Sql<Option<i64>> {
    match client
        .query_opt(
            "SELECT at FROM read_marker WHERE account = $1 AND target = $2",
            &[&account, &target],
        )
        .await?
    {
        Some(row) => Ok(Some(row.try_get(0)?)),
        None => Ok(None),
    }
}

pub(crate) async fn all_read_markers(
    client: &Client,
    limit: usize,
) -> Sql<Vec<(String, TargetKey, Timestamp)>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client
        .query(
            "SELECT account, target, at FROM read_marker ORDER BY at DESC LIMIT $1",
            &[&limit],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get::<_, String>(0)?,
                TargetKey::from_stored(row.try_get(1)?),
                Timestamp(row.try_get(2)?),
            ))
        })
        .collect()
}

// ----- retention -----

/// Deletes up to `batch` of the oldest rows (by insertion order) older than
/// `cutoff`; returns `(removed, complete)`. Same rule as SQLite's: only the first
/// `batch` rows by id are looked at, so a pass is bounded even when nothing is due.
pub(crate) async fn expire_age(client: &Client, cutoff: i64, batch: u32) -> Sql<(u64, bool)> {
    let removed = client
        .execute(
            "DELETE FROM message WHERE id IN \
             (SELECT id FROM message ORDER BY id LIMIT $2) AND time < $1",
            &[&cutoff, &i64::from(batch)],
        )
        .await?;
    Ok((removed, removed < u64::from(batch)))
}

/// Targets examined per retention pass for the per-target limit.
const TARGETS_PER_PASS: i64 = 32;

/// Keeps only the newest `keep` messages of each target, resuming at `cursor` (a
/// target key, inclusive); removes at most `budget` rows. Returns
/// `(removed, complete)`.
pub(crate) async fn expire_count(
    client: &Client,
    cursor: &mut String,
    keep: u64,
    budget: u64,
) -> Sql<(u64, bool)> {
    let targets: Vec<String> = client
        .query(
            "SELECT key FROM target WHERE key >= $1 ORDER BY key LIMIT $2",
            &[&cursor.as_str(), &TARGETS_PER_PASS],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Sql<_>>()?;
    let mut removed = 0u64;
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    for target in &targets {
        cursor.clone_from(target);
        let boundary = client
            .query_opt(
                "SELECT time, id FROM message WHERE target = $1 \
                 ORDER BY time DESC, id DESC LIMIT 1 OFFSET $2",
                &[&target.as_str(), &keep],
            )
            .await?;
        if let Some(row) = boundary {
            let (time, id): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
            let left = i64::try_from(budget - removed).unwrap_or(i64::MAX);
            let n = client
                .execute(
                    "DELETE FROM message WHERE id IN (SELECT id FROM message \
                     WHERE target = $1 AND (time, id) <= ($2, $3) \
                     ORDER BY time, id LIMIT $4)",
                    &[&target.as_str(), &time, &id, &left],
                )
                .await?;
            removed += n;
            if removed >= budget {
                // This target may have more; resume here next pass.
                return Ok((removed, false));
            }
        }
    }
    let complete = (targets.len() as i64) < TARGETS_PER_PASS;
    if complete {
        cursor.clear();
    } else {
        // The smallest key after the last one visited: keys are compared byte for
        // byte (`COLLATE "C"`) and text never holds NUL, so nothing sorts between.
        cursor.push('\u{1}');
    }
    Ok((removed, complete))
}

// ----- accounts -----

pub(crate) async fn insert_account(client: &Client, a: &Account) -> Sql<()> {
    client
        .execute(
            "INSERT INTO account (key, name, password_hash, scram_salt, scram_iterations, \
             scram_stored_key, scram_server_key, email, verified, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &a.key,
                &a.name,
                &a.password_hash,
                &a.scram.salt,
                &i64::from(a.scram.iterations),
                &a.scram.stored_key,
                &a.scram.server_key,
                &a.email,
                &a.verified,
                &a.created_at.0,
            ],
        )
        .await?;
    Ok(())
}

const ACCOUNT_COLUMNS: &str = "a.key, a.name, a.password_hash, a.scram_salt, \
    a.scram_iterations, a.scram_stored_key, a.scram_server_key, a.email, a.verified, \
    a.created_at";

/// An `account` row as selected with [`ACCOUNT_COLUMNS`].
fn account_row(row: &Row) -> Result<Account, StoreError> {
    let fail = pg_err("read account");
    let iterations: i64 = row.try_get(4).map_err(&fail)?;
    Ok(Account {
        key: row.try_get(0).map_err(&fail)?,
        name: row.try_get(1).map_err(&fail)?,
        password_hash: row.try_get(2).map_err(&fail)?,
        scram: ScramVerifier {
            salt: row.try_get(3).map_err(&fail)?,
            iterations: u32::try_from(iterations).map_err(|_| StoreError::Invalid {
                operation: "read account",
                what: "SCRAM iteration count",
            })?,
            stored_key: row.try_get(5).map_err(&fail)?,
            server_key: row.try_get(6).map_err(&fail)?,
        },
        email: row.try_get(7).map_err(&fail)?,
        verified: row.try_get(8).map_err(&fail)?,
        created_at: Timestamp(row.try_get(9).map_err(&fail)?),
    })
}

pub(crate) async fn account(client: &Client, key: &str) -> Result<Option<Account>, StoreError> {
    let row = client
        .query_opt(
            &format!("SELECT {ACCOUNT_COLUMNS} FROM account a WHERE a.key = $1"),
            &[&key],
        )
        .await
        .map_err(pg_err("read account"))?;
    row.as_ref().map(account_row).transpose()
}

pub(crate) async fn account_keys(client: &Client) -> Sql<Vec<String>> {
    client
        .query("SELECT key FROM account ORDER BY key", &[])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect()
}

pub(crate) async fn set_password(client: &Client, key: &str, u: &PasswordUpdate) -> Sql<bool> {
    Ok(client
        .execute(
            "UPDATE account SET password_hash = $2, scram_salt = $3, scram_iterations = $4, \
             scram_stored_key = $5, scram_server_key = $6 WHERE key = $1",
            &[
                &key,
                &u.password_hash,
                &u.scram.salt,
                &i64::from(u.scram.iterations),
                &u.scram.stored_key,
                &u.scram.server_key,
            ],
        )
        .await?
        > 0)
}

pub(crate) async fn set_verified(client: &Client, key: &str, verified: bool) -> Sql<bool> {
    Ok(client
        .execute(
            "UPDATE account SET verified = $2 WHERE key = $1",
            &[&key, &verified],
        )
        .await?
        > 0)
}

pub(crate) async fn delete_account(client: &Client, key: &str) -> Sql<bool> {
    client
        .execute("DELETE FROM read_marker WHERE account = $1", &[&key])
        .await?;
    client
        .execute(
            "DELETE FROM account_certfps WHERE account_key = $1",
            &[&key],
        )
        .await?;
    Ok(client
        .execute("DELETE FROM account WHERE key = $1", &[&key])
        .await?
        > 0)
}

/// Locks the account row until the transaction ends (so that two nodes adding
/// fingerprints to one account take turns); whether it exists.
pub(crate) async fn lock_account(client: &Client, key: &str) -> Sql<bool> {
    Ok(client
        .query_opt("SELECT 1 FROM account WHERE key = $1 FOR UPDATE", &[&key])
        .await?
        .is_some())
}

// ----- client-certificate fingerprints -----

/// The account `certfp` belongs to, if any.
pub(crate) async fn certfp_owner(client: &Client, certfp: &str) -> Sql<Option<String>> {
    match client
        .query_opt(
            "SELECT account_key FROM account_certfps WHERE certfp = $1",
            &[&certfp],
        )
        .await?
    {
        Some(row) => Ok(Some(row.try_get(0)?)),
        None => Ok(None),
    }
}

pub(crate) async fn certfp_count(client: &Client, account_key: &str) -> Sql<i64> {
    client
        .query_one(
            "SELECT count(*) FROM account_certfps WHERE account_key = $1",
            &[&account_key],
        )
        .await?
        .try_get(0)
}

/// Inserts the fingerprint unless it is taken; whether it was inserted.
pub(crate) async fn insert_certfp(client: &Client, account_key: &str, certfp: &str) -> Sql<bool> {
    Ok(client
        .execute(
            "INSERT INTO account_certfps (certfp, account_key) VALUES ($1, $2) \
             ON CONFLICT (certfp) DO NOTHING",
            &[&certfp, &account_key],
        )
        .await?
        > 0)
}

pub(crate) async fn delete_certfp(client: &Client, account_key: &str, certfp: &str) -> Sql<bool> {
    Ok(client
        .execute(
            "DELETE FROM account_certfps WHERE certfp = $1 AND account_key = $2",
            &[&certfp, &account_key],
        )
        .await?
        > 0)
}

pub(crate) async fn certfps(client: &Client, account_key: &str) -> Sql<Vec<String>> {
    client
        .query(
            "SELECT certfp FROM account_certfps WHERE account_key = $1 ORDER BY certfp",
            &[&account_key],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect()
}

pub(crate) async fn account_by_certfp(
    client: &Client,
    certfp: &str,
) -> Result<Option<Account>, StoreError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {ACCOUNT_COLUMNS} FROM account_certfps c \
                 JOIN account a ON a.key = c.account_key WHERE c.certfp = $1"
            ),
            &[&certfp],
        )
        .await
        .map_err(pg_err("account_by_certfp"))?;
    row.as_ref().map(account_row).transpose()
}

// ----- server bans -----

/// The advisory lock serialising server-ban additions across nodes (count, then
/// insert), held until the batch transaction ends.
const SERVER_BAN_LOCK: i64 = 0x706c_7672_0001;

pub(crate) async fn lock_server_bans(client: &Client) -> Sql<()> {
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&SERVER_BAN_LOCK])
        .await?;
    Ok(())
}

pub(crate) async fn server_ban_exists(
    client: &Client,
    kind: ServerBanKind,
    mask: &str,
) -> Sql<bool> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM server_ban WHERE kind = $1 AND mask = $2",
            &[&kind.code(), &mask],
        )
        .await?
        .is_some())
}

pub(crate) async fn server_ban_count(client: &Client) -> Sql<i64> {
    client
        .query_one("SELECT count(*) FROM server_ban", &[])
        .await?
        .try_get(0)
}

pub(crate) async fn upsert_server_ban(client: &Client, ban: &ServerBan) -> Sql<()> {
    client
        .execute(
            "INSERT INTO server_ban (kind, mask, reason, set_by, set_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kind, mask) DO UPDATE SET \
             reason = excluded.reason, set_by = excluded.set_by, set_at = excluded.set_at, \
             expires_at = excluded.expires_at",
            &[
                &ban.kind.code(),
                &ban.mask,
                &ban.reason,
                &ban.set_by,
                &ban.set_at.0,
                &ban.expires_at.map(|at| at.0),
            ],
        )
        .await?;
    Ok(())
}

pub(crate) async fn delete_server_ban(
    client: &Client,
    kind: ServerBanKind,
    mask: &str,
) -> Sql<bool> {
    Ok(client
        .execute(
            "DELETE FROM server_ban WHERE kind = $1 AND mask = $2",
            &[&kind.code(), &mask],
        )
        .await?
        > 0)
}

/// Every ban, by kind then mask; a row of an unknown kind (a newer palaver's) is
/// skipped rather than failing the whole list.
pub(crate) async fn server_bans(client: &Client) -> Sql<Vec<ServerBan>> {
    let rows = client
        .query(
            "SELECT kind, mask, reason, set_by, set_at, expires_at FROM server_ban \
             ORDER BY kind, mask",
            &[],
        )
        .await?;
    let mut bans = Vec::new();
    for row in rows {
        let Some(kind) = ServerBanKind::from_code(row.try_get(0)?) else {
            continue;
        };
        bans.push(ServerBan {
            kind,
            mask: row.try_get(1)?,
            reason: row.try_get(2)?,
            set_by: row.try_get(3)?,
            set_at: Timestamp(row.try_get(4)?),
            expires_at: row.try_get::<_, Option<i64>>(5)?.map(Timestamp),
        });
    }
    Ok(bans)
}

pub(crate) async fn expire_server_bans(client: &Client, now: Timestamp) -> Sql<u64> {
    client
        .execute(
            "DELETE FROM server_ban WHERE expires_at IS NOT NULL AND expires_at <= $1",
            &[&now.0],
        )
        .await
}

// ----- channels -----

pub(crate) async fn insert_channel(client: &Client, c: &ChannelRegistration) -> Sql<()> {
    client
        .execute(
            "INSERT INTO channel (key, name, founder, created_at, topic, topic_set_by, \
             topic_set_at, modes, key_mode, user_limit) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &channel_params(c).each(),
        )
        .await?;
    insert_channel_children(client, c).await
}

/// The `channel` row's ten values, in the order the statements bind them.
struct ChannelParams<'a> {
    c: &'a ChannelRegistration,
    topic: Option<&'a str>,
    topic_by: Option<&'a str>,
    topic_at: Option<i64>,
    limit: Option<i64>,
}

fn channel_params(c: &ChannelRegistration) -> ChannelParams<'_> {
    ChannelParams {
        c,
        topic: c.topic.as_ref().map(|t| t.text.as_str()),
        topic_by: c.topic.as_ref().map(|t| t.set_by.as_str()),
        topic_at: c.topic.as_ref().map(|t| t.set_at.0),
        limit: c.limit.map(i64::from),
    }
}

impl ChannelParams<'_> {
    fn each(&self) -> [&(dyn ToSql + Sync); 10] {
        [
            &self.c.key,
            &self.c.name,
            &self.c.founder,
            &self.c.created_at.0,
            &self.topic,
            &self.topic_by,
            &self.topic_at,
            &self.c.modes,
            &self.c.key_mode,
            &self.limit,
        ]
    }
}

async fn insert_channel_children(client: &Client, c: &ChannelRegistration) -> Sql<()> {
    for e in &c.lists {
        client
            .execute(
                "INSERT INTO channel_list (channel, kind, mask, set_by, set_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (channel, kind, mask) DO UPDATE \
                 SET set_by = excluded.set_by, set_at = excluded.set_at",
                &[&c.key, &e.kind.code(), &e.mask, &e.set_by, &e.set_at.0],
            )
            .await?;
    }
    for e in &c.access {
        client
            .execute(
                "INSERT INTO channel_access (channel, account, level) VALUES ($1, $2, $3) \
                 ON CONFLICT (channel, account) DO UPDATE SET level = excluded.level",
                &[&c.key, &e.account, &e.level],
            )
            .await?;
    }
    Ok(())
}

async fn delete_channel_children(client: &Client, key: &str) -> Sql<()> {
    client
        .execute("DELETE FROM channel_list WHERE channel = $1", &[&key])
        .await?;
    client
        .execute("DELETE FROM channel_access WHERE channel = $1", &[&key])
        .await?;
    Ok(())
}

pub(crate) async fn update_channel(client: &Client, c: &ChannelRegistration) -> Sql<bool> {
    let changed = client
        .execute(
            "UPDATE channel SET name = $2, founder = $3, created_at = $4, topic = $5, \
             topic_set_by = $6, topic_set_at = $7, modes = $8, key_mode = $9, user_limit = $10 \
             WHERE key = $1",
            &channel_params(c).each(),
        )
        .await?;
    if changed == 0 {
        return Ok(false);
    }
    delete_channel_children(client, &c.key).await?;
    insert_channel_children(client, c).await?;
    Ok(true)
}

pub(crate) async fn drop_channel(client: &Client, key: &str) -> Sql<bool> {
    delete_channel_children(client, key).await?;
    Ok(client
        .execute("DELETE FROM channel WHERE key = $1", &[&key])
        .await?
        > 0)
}

/// Channels with key `key`, or all of them with `None`, ordered by key.
pub(crate) async fn channels(
    client: &Client,
    key: Option<&str>,
) -> Result<Vec<ChannelRegistration>, StoreError> {
    let op = "read channel registrations";
    let fail = pg_err(op);
    let rows = client
        .query(
            "SELECT key, name, founder, created_at, topic, topic_set_by, topic_set_at, modes, \
             key_mode, user_limit FROM channel WHERE $1::text IS NULL OR key = $1 ORDER BY key",
            &[&key],
        )
        .await
        .map_err(&fail)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let topic = match (
            row.try_get::<_, Option<String>>(4).map_err(&fail)?,
            row.try_get::<_, Option<String>>(5).map_err(&fail)?,
            row.try_get::<_, Option<i64>>(6).map_err(&fail)?,
        ) {
            (Some(text), Some(set_by), Some(at)) => Some(Topic {
                text,
                set_by,
                set_at: Timestamp(at),
            }),
            _ => None,
        };
        let limit = row
            .try_get::<_, Option<i64>>(9)
            .map_err(&fail)?
            .map(u32::try_from)
            .transpose()
            .map_err(|_| StoreError::Invalid {
                operation: op,
                what: "user limit",
            })?;
        out.push(ChannelRegistration {
            key: row.try_get(0).map_err(&fail)?,
            name: row.try_get(1).map_err(&fail)?,
            founder: row.try_get(2).map_err(&fail)?,
            created_at: Timestamp(row.try_get(3).map_err(&fail)?),
            topic,
            modes: row.try_get(7).map_err(&fail)?,
            key_mode: row.try_get(8).map_err(&fail)?,
            limit,
            lists: Vec::new(),
            access: Vec::new(),
        });
    }
    let index = |out: &[ChannelRegistration], channel: &str| {
        out.binary_search_by(|c| c.key.as_str().cmp(channel)).ok()
    };
    let rows = client
        .query(
            "SELECT channel, kind, mask, set_by, set_at FROM channel_list \
             WHERE $1::text IS NULL OR channel = $1 ORDER BY channel, kind, set_at, mask",
            &[&key],
        )
        .await
        .map_err(&fail)?;
    for row in &rows {
        let channel: String = row.try_get(0).map_err(&fail)?;
        let kind =
            ListKind::from_code(row.try_get(1).map_err(&fail)?).ok_or(StoreError::Invalid {
                operation: op,
                what: "list kind",
            })?;
        if let Some(i) = index(&out, &channel) {
            out[i].lists.push(ListEntry {
                kind,
                mask: row.try_get(2).map_err(&fail)?,
                set_by: row.try_get(3).map_err(&fail)?,
                set_at: Timestamp(row.try_get(4).map_err(&fail)?),
            });
        }
    }
    let rows = client
        .query(
            "SELECT channel, account, level FROM channel_access \
             WHERE $1::text IS NULL OR channel = $1 ORDER BY channel, account",
            &[&key],
        )
        .await
        .map_err(&fail)?;
    for row in &rows {
        let channel: String = row.try_get(0).map_err(&fail)?;
        if let Some(i) = index(&out, &channel) {
            out[i].access.push(AccessEntry {
                account: row.try_get(1).map_err(&fail)?,
                level: row.try_get(2).map_err(&fail)?,
            });
        }
    }
    Ok(out)
}
