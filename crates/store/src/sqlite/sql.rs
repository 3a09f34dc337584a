//! The SQL, one function per statement group, over plain `&Connection`s: the
//! writer calls the write functions inside its batch transaction, the readers call
//! the queries.

use rusqlite::types::ToSql;
use rusqlite::{CachedStatement, Connection, OptionalExtension, Row, params, params_from_iter};

use super::writer::WriterCache;
use crate::error::StoreError;
use crate::span::Pos;
use crate::types::{
    AccessEntry, Account, ChannelRegistration, HistoryMessage, ListEntry, ListKind, MessageKind,
    PasswordUpdate, ScramVerifier, ServerBan, ServerBanKind, TargetKey, Timestamp, Topic,
};

type Sql<T> = rusqlite::Result<T>;

// ----- history writes -----

pub(crate) const INSERT_MESSAGE: &str = "INSERT INTO message (target, time, msgid, kind, sender, tags, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// Inserts one message; returns its target's id.
pub(crate) fn insert_message(
    conn: &Connection,
    insert: &mut CachedStatement<'_>,
    cache: &mut WriterCache,
    message: &HistoryMessage,
) -> Sql<i64> {
    let target = target_for_write(conn, cache, &message.target, message.time)?;
    let sender = sender_for_write(conn, cache, &message.sender, message.account.as_deref())?;
    let tags = (!message.tags.is_empty()).then_some(message.tags.as_str());
    insert.execute(params![
        target,
        message.time.0,
        message.msgid,
        message.kind.code(),
        sender,
        tags,
        message.text,
    ])?;
    Ok(target)
}

/// The id of `key`'s target row, creating it (and its party rows) on first use.
fn target_for_write(
    conn: &Connection,
    cache: &mut WriterCache,
    key: &TargetKey,
    time: Timestamp,
) -> Sql<i64> {
    if let Some(&id) = cache.targets.get(key.as_str()) {
        return Ok(id);
    }
    let id = match target_id(conn, key.as_str())? {
        Some(id) => id,
        None => {
            conn.prepare_cached("INSERT INTO target (key, latest) VALUES (?1, ?2)")?
                .execute(params![key.as_str(), time.0])?;
            let id = conn.last_insert_rowid();
            if let Some(parties) = key.parties() {
                let mut party = conn.prepare_cached(
                    "INSERT OR IGNORE INTO target_party (party, target) VALUES (?1, ?2)",
                )?;
                for p in parties {
                    party.execute(params![p, id])?;
                }
            }
            id
        }
    };
    cache.targets.insert(key.as_str().to_owned(), id);
    Ok(id)
}

/// The id of a sender row, creating it on first use. The cache key is built in a
/// reused buffer, so a hit allocates nothing.
fn sender_for_write(
    conn: &Connection,
    cache: &mut WriterCache,
    mask: &str,
    account: Option<&str>,
) -> Sql<i64> {
    let account = account.unwrap_or("");
    cache.key.clear();
    cache.key.push_str(mask);
    cache.key.push('\0');
    cache.key.push_str(account);
    if let Some(&id) = cache.senders.get(cache.key.as_str()) {
        return Ok(id);
    }
    let found = conn
        .prepare_cached("SELECT id FROM sender WHERE mask = ?1 AND account = ?2")?
        .query_row([mask, account], |row| row.get(0))
        .optional()?;
    let id = match found {
        Some(id) => id,
        None => {
            conn.prepare_cached("INSERT INTO sender (mask, account) VALUES (?1, ?2)")?
                .execute([mask, account])?;
            conn.last_insert_rowid()
        }
    };
    cache.senders.insert(cache.key.clone(), id);
    Ok(id)
}

/// Raises a target's `latest` to `at` (once per target per batch).
pub(crate) fn bump_latest(conn: &Connection, target: i64, at: i64) -> Sql<()> {
    conn.prepare_cached("UPDATE target SET latest = max(latest, ?2) WHERE id = ?1")?
        .execute(params![target, at])?;
    Ok(())
}

/// Deletes a message by msgid.
pub(crate) fn redact(conn: &Connection, msgid: &str) -> Sql<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM message WHERE msgid = ?1")?
        .execute([msgid])?
        > 0)
}

// ----- history reads -----

/// A target's row id, if it has history.
pub(crate) fn target_id(conn: &Connection, key: &str) -> Sql<Option<i64>> {
    conn.prepare_cached("SELECT id FROM target WHERE key = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()
}

/// `(time, id)` of `msgid` if it is in `target`.
pub(crate) fn position(conn: &Connection, target: i64, msgid: &str) -> Sql<Option<Pos>> {
    conn.prepare_cached("SELECT time, id FROM message WHERE msgid = ?1 AND target = ?2")?
        .query_row(params![msgid, target], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
}

/// Up to `limit` messages of `target` strictly between `lo` and `hi`: the first
/// ones after `lo`, or with `from_top` the last ones before `hi`. Oldest first.
///
/// The range is written as a time range the `(target, time)` index serves, plus a
/// tie-break on the id for the two boundary milliseconds (portable SQL, no row
/// values).
pub(crate) fn range(
    conn: &Connection,
    target: &TargetKey,
    target_id: i64,
    lo: Pos,
    hi: Pos,
    from_top: bool,
    limit: usize,
) -> Result<Vec<HistoryMessage>, StoreError> {
    const COLUMNS: &str = "SELECT m.time, m.msgid, m.kind, s.mask, s.account, m.tags, m.text \
        FROM message m JOIN sender s ON s.id = m.sender \
        WHERE m.target = ?1 AND m.time >= ?2 AND m.time <= ?4 \
        AND (m.time > ?2 OR m.id > ?3) AND (m.time < ?4 OR m.id < ?5)";
    let sql_up = format!("{COLUMNS} ORDER BY m.time, m.id LIMIT ?6");
    let sql_down = format!("{COLUMNS} ORDER BY m.time DESC, m.id DESC LIMIT ?6");
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let query = |sql: &str| -> Sql<Vec<HistoryMessage>> {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params![target_id, lo.0, lo.1, hi.0, hi.1, limit], |row| {
            message_from_row(row, target)
        })?;
        rows.collect()
    };
    let mut out = query(if from_top { &sql_down } else { &sql_up })
        .map_err(|e| StoreError::backend("history query", e))?;
    if from_top {
        out.reverse();
    }
    Ok(out)
}

/// One message row; an unknown kind code (a hand-edited or damaged database) is an
/// error rather than a guess.
fn message_from_row(row: &Row<'_>, target: &TargetKey) -> Sql<HistoryMessage> {
    let code: i64 = row.get(2)?;
    let kind =
        MessageKind::from_code(code).ok_or(rusqlite::Error::IntegralValueOutOfRange(2, code))?;
    Ok(HistoryMessage {
        time: Timestamp(row.get(0)?),
        msgid: row.get(1)?,
        kind,
        sender: row.get(3)?,
        account: Some(row.get::<_, String>(4)?).filter(|a| !a.is_empty()),
        tags: row.get::<_, Option<String>>(5)?.unwrap_or_default(),
        text: row.get(6)?,
        target: target.clone(),
    })
}

/// `(key, latest)` of one target.
pub(crate) fn target_latest(conn: &Connection, key: &str) -> Sql<Option<i64>> {
    conn.prepare_cached("SELECT latest FROM target WHERE key = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()
}

/// `(key, latest)` of every conversation `party` is in, with `latest` in `[lo, hi]`.
pub(crate) fn party_targets(
    conn: &Connection,
    party: &str,
    lo: i64,
    hi: i64,
) -> Sql<Vec<(String, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.key, t.latest FROM target_party p JOIN target t ON t.id = p.target \
         WHERE p.party = ?1 AND t.latest >= ?2 AND t.latest <= ?3",
    )?;
    let rows = stmt.query_map(params![party, lo, hi], |row| Ok((row.get(0)?, row.get(1)?)))?;
    rows.collect()
}

pub(crate) fn account_keys(conn: &Connection) -> Sql<Vec<String>> {
    conn.prepare_cached("SELECT key FROM account")?
        .query_map([], |row| row.get(0))?
        .collect()
}

// ----- read markers -----

pub(crate) fn set_read_marker(conn: &Connection, account: &str, target: &str, at: i64) -> Sql<i64> {
    conn.prepare_cached(
        "INSERT INTO read_marker (account, target, at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (account, target) DO UPDATE SET at = max(at, excluded.at) RETURNING at",
    )?
    .query_row(params![account, target, at], |row| row.get(0))
}

pub(crate) fn read_marker(conn: &Connection, account: &str, target: &str) -> Sql<Option<i64>> {
    conn.prepare_cached("SELECT at FROM read_marker WHERE account = ?1 AND target = ?2")?
        .query_row(params![account, target], |row| row.get(0))
        .optional()
}

pub(crate) fn all_read_markers(
    conn: &Connection,
    limit: usize,
) -> Sql<Vec<(String, TargetKey, Timestamp)>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    conn.prepare_cached("SELECT account, target, at FROM read_marker ORDER BY at DESC LIMIT ?1")?
        .query_map(params![limit], |row| {
            Ok((
                row.get::<_, String>(0)?,
                TargetKey::from_stored(row.get(1)?),
                Timestamp(row.get(2)?),
            ))
        })?
        .collect()
}

// ----- retention -----

/// Deletes up to `batch` of the oldest rows (by insertion order) older than
/// `cutoff`; returns `(removed, complete)`.
///
/// Why by insertion order (rowid) rather than an index on time: a third index would
/// cost ~15 bytes per message, and rows arrive in time order, so the oldest rows are
/// the first rowids. The pass looks at the first `batch` rowids only, so it is
/// bounded even when nothing is due. (If the clock ever went backwards, a row stuck
/// behind a younger one waits until that one expires.)
pub(crate) fn expire_age(conn: &Connection, cutoff: i64, batch: u32) -> Sql<(u64, bool)> {
    let removed = conn
        .prepare_cached(
            "DELETE FROM message WHERE id IN \
             (SELECT id FROM message ORDER BY id LIMIT ?2) AND time < ?1",
        )?
        .execute(params![cutoff, batch])? as u64;
    Ok((removed, removed < u64::from(batch)))
}

/// Targets examined per retention pass for the per-target limit.
const TARGETS_PER_PASS: i64 = 32;

/// Keeps only the newest `keep` messages of each target, resuming at `cursor`;
/// removes at most `budget` rows. Returns `(removed, complete)`.
pub(crate) fn expire_count(
    conn: &Connection,
    cursor: &mut i64,
    keep: u64,
    budget: u64,
) -> Sql<(u64, bool)> {
    let targets: Vec<i64> = conn
        .prepare_cached("SELECT id FROM target WHERE id >= ?1 ORDER BY id LIMIT ?2")?
        .query_map(params![*cursor, TARGETS_PER_PASS], |row| row.get(0))?
        .collect::<Sql<_>>()?;
    let mut removed = 0u64;
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    for &target in &targets {
        *cursor = target;
        let boundary: Option<Pos> = conn
            .prepare_cached(
                "SELECT time, id FROM message WHERE target = ?1 \
                 ORDER BY time DESC, id DESC LIMIT 1 OFFSET ?2",
            )?
            .query_row(params![target, keep], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        if let Some((time, id)) = boundary {
            let left = budget - removed;
            let n = conn
                .prepare_cached(
                    "DELETE FROM message WHERE id IN (SELECT id FROM message \
                     WHERE target = ?1 AND time <= ?2 AND (time < ?2 OR id <= ?3) \
                     ORDER BY time, id LIMIT ?4)",
                )?
                .execute(params![
                    target,
                    time,
                    id,
                    i64::try_from(left).unwrap_or(i64::MAX)
                ])? as u64;
            removed += n;
            if removed >= budget {
                // This target may have more; resume here next pass.
                return Ok((removed, false));
            }
        }
    }
    let complete = (targets.len() as i64) < TARGETS_PER_PASS;
    *cursor = if complete { 0 } else { *cursor + 1 };
    Ok((removed, complete))
}

// ----- accounts -----

pub(crate) fn insert_account(conn: &Connection, a: &Account) -> Sql<()> {
    conn.prepare_cached(
        "INSERT INTO account (key, name, password_hash, scram_salt, scram_iterations, \
         scram_stored_key, scram_server_key, email, verified, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        a.key,
        a.name,
        a.password_hash,
        a.scram.salt,
        a.scram.iterations,
        a.scram.stored_key,
        a.scram.server_key,
        a.email,
        a.verified,
        a.created_at.0,
    ])?;
    Ok(())
}

/// An `account` row as selected by [`account`] and [`account_by_certfp`].
fn account_row(row: &Row<'_>) -> Sql<Account> {
    Ok(Account {
        key: row.get(0)?,
        name: row.get(1)?,
        password_hash: row.get(2)?,
        scram: ScramVerifier {
            salt: row.get(3)?,
            iterations: row.get(4)?,
            stored_key: row.get(5)?,
            server_key: row.get(6)?,
        },
        email: row.get(7)?,
        verified: row.get(8)?,
        created_at: Timestamp(row.get(9)?),
    })
}

pub(crate) fn account(conn: &Connection, key: &str) -> Sql<Option<Account>> {
    conn.prepare_cached(
        "SELECT key, name, password_hash, scram_salt, scram_iterations, scram_stored_key, \
         scram_server_key, email, verified, created_at FROM account WHERE key = ?1",
    )?
    .query_row([key], account_row)
    .optional()
}

pub(crate) fn set_password(conn: &Connection, key: &str, u: &PasswordUpdate) -> Sql<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE account SET password_hash = ?2, scram_salt = ?3, scram_iterations = ?4, \
             scram_stored_key = ?5, scram_server_key = ?6 WHERE key = ?1",
        )?
        .execute(params![
            key,
            u.password_hash,
            u.scram.salt,
            u.scram.iterations,
            u.scram.stored_key,
            u.scram.server_key,
        ])?
        > 0)
}

pub(crate) fn set_verified(conn: &Connection, key: &str, verified: bool) -> Sql<bool> {
    Ok(conn
        .prepare_cached("UPDATE account SET verified = ?2 WHERE key = ?1")?
        .execute(params![key, verified])?
        > 0)
}

pub(crate) fn delete_account(conn: &Connection, key: &str) -> Sql<bool> {
    conn.prepare_cached("DELETE FROM read_marker WHERE account = ?1")?
        .execute([key])?;
    conn.prepare_cached("DELETE FROM account_certfps WHERE account_key = ?1")?
        .execute([key])?;
    Ok(conn
        .prepare_cached("DELETE FROM account WHERE key = ?1")?
        .execute([key])?
        > 0)
}

// ----- client-certificate fingerprints -----

/// The account `certfp` belongs to, if any.
pub(crate) fn certfp_owner(conn: &Connection, certfp: &str) -> Sql<Option<String>> {
    conn.prepare_cached("SELECT account_key FROM account_certfps WHERE certfp = ?1")?
        .query_row([certfp], |row| row.get(0))
        .optional()
}

pub(crate) fn certfp_count(conn: &Connection, account_key: &str) -> Sql<i64> {
    conn.prepare_cached("SELECT count(*) FROM account_certfps WHERE account_key = ?1")?
        .query_row([account_key], |row| row.get(0))
}

pub(crate) fn insert_certfp(conn: &Connection, account_key: &str, certfp: &str) -> Sql<()> {
    conn.prepare_cached("INSERT INTO account_certfps (certfp, account_key) VALUES (?1, ?2)")?
        .execute([certfp, account_key])?;
    Ok(())
}

pub(crate) fn delete_certfp(conn: &Connection, account_key: &str, certfp: &str) -> Sql<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM account_certfps WHERE certfp = ?1 AND account_key = ?2")?
        .execute([certfp, account_key])?
        > 0)
}

pub(crate) fn certfps(conn: &Connection, account_key: &str) -> Sql<Vec<String>> {
    conn.prepare_cached(
        "SELECT certfp FROM account_certfps WHERE account_key = ?1 ORDER BY certfp",
    )?
    .query_map([account_key], |row| row.get(0))?
    .collect()
}

pub(crate) fn account_by_certfp(conn: &Connection, certfp: &str) -> Sql<Option<Account>> {
    conn.prepare_cached(
        "SELECT a.key, a.name, a.password_hash, a.scram_salt, a.scram_iterations, \
         a.scram_stored_key, a.scram_server_key, a.email, a.verified, a.created_at \
         FROM account_certfps c JOIN account a ON a.key = c.account_key WHERE c.certfp = ?1",
    )?
    .query_row([certfp], account_row)
    .optional()
}

// ----- server bans -----

/// Whether a ban of `kind` on `mask` exists.
pub(crate) fn server_ban_exists(conn: &Connection, kind: ServerBanKind, mask: &str) -> Sql<bool> {
    conn.prepare_cached("SELECT 1 FROM server_ban WHERE kind = ?1 AND mask = ?2")?
        .query_row(params![kind.code(), mask], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
}

/// How many bans of both kinds there are.
pub(crate) fn server_ban_count(conn: &Connection) -> Sql<i64> {
    conn.prepare_cached("SELECT count(*) FROM server_ban")?
        .query_row([], |row| row.get(0))
}

/// Inserts `ban`, or replaces the one of the same kind and mask.
pub(crate) fn upsert_server_ban(conn: &Connection, ban: &ServerBan) -> Sql<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO server_ban (kind, mask, reason, set_by, set_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        ban.kind.code(),
        ban.mask,
        ban.reason,
        ban.set_by,
        ban.set_at.0,
        ban.expires_at.map(|at| at.0),
    ])?;
    Ok(())
}

/// Deletes the ban of `kind` on `mask`; whether there was one.
pub(crate) fn delete_server_ban(conn: &Connection, kind: ServerBanKind, mask: &str) -> Sql<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM server_ban WHERE kind = ?1 AND mask = ?2")?
        .execute(params![kind.code(), mask])?
        > 0)
}

/// Every ban, by kind then mask. A row of an unknown kind (a newer palaver's) is
/// skipped rather than failing the whole list.
pub(crate) fn server_bans(conn: &Connection) -> Sql<Vec<ServerBan>> {
    let mut statement = conn.prepare_cached(
        "SELECT kind, mask, reason, set_by, set_at, expires_at FROM server_ban \
         ORDER BY kind, mask",
    )?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, i64>(4)?,
            row.get::<_, Option<i64>>(5)?,
        ))
    })?;
    let mut bans = Vec::new();
    for row in rows {
        let (kind, mask, reason, set_by, set_at, expires_at) = row?;
        let Some(kind) = ServerBanKind::from_code(kind) else {
            continue;
        };
        bans.push(ServerBan {
            kind,
            mask,
            reason,
            set_by,
            set_at: Timestamp(set_at),
            expires_at: expires_at.map(Timestamp),
        });
    }
    Ok(bans)
}

/// Deletes the bans that expired at or before `now`; how many.
pub(crate) fn expire_server_bans(conn: &Connection, now: Timestamp) -> Sql<u64> {
    let deleted = conn
        .prepare_cached("DELETE FROM server_ban WHERE expires_at IS NOT NULL AND expires_at <= ?1")?
        .execute([now.0])?;
    Ok(deleted as u64)
}

// ----- channels -----

/// The `channel` row's ten columns, in the order `insert_channel` and
/// `update_channel` bind them (`?1` is the key).
fn channel_row(c: &ChannelRegistration) -> [Box<dyn ToSql + '_>; 10] {
    [
        Box::new(&c.key),
        Box::new(&c.name),
        Box::new(&c.founder),
        Box::new(c.created_at.0),
        Box::new(c.topic.as_ref().map(|t| &t.text)),
        Box::new(c.topic.as_ref().map(|t| &t.set_by)),
        Box::new(c.topic.as_ref().map(|t| t.set_at.0)),
        Box::new(&c.modes),
        Box::new(&c.key_mode),
        Box::new(&c.limit),
    ]
}

pub(crate) fn insert_channel(conn: &Connection, c: &ChannelRegistration) -> Sql<()> {
    conn.prepare_cached(
        "INSERT INTO channel (key, name, founder, created_at, topic, topic_set_by, \
         topic_set_at, modes, key_mode, user_limit) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params_from_iter(channel_row(c)))?;
    insert_channel_children(conn, c)
}

fn insert_channel_children(conn: &Connection, c: &ChannelRegistration) -> Sql<()> {
    let mut list = conn.prepare_cached(
        "INSERT OR REPLACE INTO channel_list (channel, kind, mask, set_by, set_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for e in &c.lists {
        list.execute(params![c.key, e.kind.code(), e.mask, e.set_by, e.set_at.0])?;
    }
    let mut access = conn.prepare_cached(
        "INSERT OR REPLACE INTO channel_access (channel, account, level) VALUES (?1, ?2, ?3)",
    )?;
    for e in &c.access {
        access.execute(params![c.key, e.account, e.level])?;
    }
    Ok(())
}

fn delete_channel_children(conn: &Connection, key: &str) -> Sql<()> {
    conn.prepare_cached("DELETE FROM channel_list WHERE channel = ?1")?
        .execute([key])?;
    conn.prepare_cached("DELETE FROM channel_access WHERE channel = ?1")?
        .execute([key])?;
    Ok(())
}

pub(crate) fn update_channel(conn: &Connection, c: &ChannelRegistration) -> Sql<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE channel SET name = ?2, founder = ?3, created_at = ?4, topic = ?5, \
             topic_set_by = ?6, topic_set_at = ?7, modes = ?8, key_mode = ?9, user_limit = ?10 \
             WHERE key = ?1",
        )?
        .execute(params_from_iter(channel_row(c)))?;
    if changed == 0 {
        return Ok(false);
    }
    delete_channel_children(conn, &c.key)?;
    insert_channel_children(conn, c)?;
    Ok(true)
}

pub(crate) fn drop_channel(conn: &Connection, key: &str) -> Sql<bool> {
    delete_channel_children(conn, key)?;
    Ok(conn
        .prepare_cached("DELETE FROM channel WHERE key = ?1")?
        .execute([key])?
        > 0)
}

/// Channels with key `key`, or all of them with `None`, ordered by key.
pub(crate) fn channels(
    conn: &Connection,
    key: Option<&str>,
) -> Result<Vec<ChannelRegistration>, StoreError> {
    let op = "read channel registrations";
    let fail = |e| StoreError::backend(op, e);
    let filter = if key.is_some() {
        "WHERE key = ?1"
    } else {
        "WHERE ?1 IS NULL"
    };
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT key, name, founder, created_at, topic, topic_set_by, topic_set_at, modes, \
             key_mode, user_limit FROM channel {filter} ORDER BY key"
        ))
        .map_err(fail)?;
    let mut out: Vec<ChannelRegistration> = stmt
        .query_map([key], |row| {
            let topic = match (row.get(4)?, row.get(5)?, row.get(6)?) {
                (Some(text), Some(set_by), Some(at)) => Some(Topic {
                    text,
                    set_by,
                    set_at: Timestamp(at),
                }),
                _ => None,
            };
            Ok(ChannelRegistration {
                key: row.get(0)?,
                name: row.get(1)?,
                founder: row.get(2)?,
                created_at: Timestamp(row.get(3)?),
                topic,
                modes: row.get(7)?,
                key_mode: row.get(8)?,
                limit: row.get(9)?,
                lists: Vec::new(),
                access: Vec::new(),
            })
        })
        .map_err(fail)?
        .collect::<Sql<_>>()
        .map_err(fail)?;
    let channel_filter = if key.is_some() {
        "WHERE channel = ?1"
    } else {
        "WHERE ?1 IS NULL"
    };
    let index = |out: &[ChannelRegistration], channel: &str| {
        out.binary_search_by(|c| c.key.as_str().cmp(channel)).ok()
    };
    let mut lists = conn
        .prepare_cached(&format!(
            "SELECT channel, kind, mask, set_by, set_at FROM channel_list {channel_filter} \
             ORDER BY channel, kind, set_at, mask"
        ))
        .map_err(fail)?;
    let mut rows = lists.query([key]).map_err(fail)?;
    while let Some(row) = rows.next().map_err(fail)? {
        let channel: String = row.get(0).map_err(fail)?;
        let code: i64 = row.get(1).map_err(fail)?;
        let kind = ListKind::from_code(code).ok_or(StoreError::Invalid {
            operation: op,
            what: "list kind",
        })?;
        if let Some(i) = index(&out, &channel) {
            out[i].lists.push(ListEntry {
                kind,
                mask: row.get(2).map_err(fail)?,
                set_by: row.get(3).map_err(fail)?,
                set_at: Timestamp(row.get(4).map_err(fail)?),
            });
        }
    }
    let mut access = conn
        .prepare_cached(&format!(
            "SELECT channel, account, level FROM channel_access {channel_filter} \
             ORDER BY channel, account"
        ))
        .map_err(fail)?;
    let mut rows = access.query([key]).map_err(fail)?;
    while let Some(row) = rows.next().map_err(fail)? {
        let channel: String = row.get(0).map_err(fail)?;
        if let Some(i) = index(&out, &channel) {
            out[i].access.push(AccessEntry {
                account: row.get(1).map_err(fail)?,
                level: row.get(2).map_err(fail)?,
            });
        }
    }
    Ok(out)
}
