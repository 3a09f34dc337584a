//! `chat-server backup` and `chat-server restore`: a consistent copy of a data
//! directory's database, taken while the server keeps running, and putting one back.
//!
//! The copy is made with SQLite's online backup API from a read-only connection of
//! its own, all pages in one step: that step is one read transaction, so the copy is
//! the database as of one commit, whatever the server writes meanwhile (WAL lets the
//! writer go on; it never waits for the backup). Restoring needs the server stopped:
//! it takes the data directory's lock, checks that the file is a palaver database
//! this build can open (application id, schema version, `PRAGMA integrity_check`),
//! keeps the database it replaces beside it, and swaps the files with a rename, so a
//! crash half-way leaves either the old database or the new one, never a mix.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};

use super::schema::{APPLICATION_ID, CURRENT_VERSION};
use super::{DATABASE_FILE, classify, lock_data_dir};
use crate::error::StoreError;

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    /// The database copied.
    pub source: PathBuf,
    /// Bytes in the copy.
    pub bytes: u64,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSummary {
    /// The database now in place.
    pub database: PathBuf,
    /// Where the database it replaced was moved (with its WAL), if there was one;
    /// delete it once the restored server is known to be good.
    pub previous: Option<PathBuf>,
}

/// Copies `data_dir`'s database to `out` (which must not exist yet), consistently,
/// whether or not a server is using it.
pub fn backup(data_dir: &Path, out: &Path) -> Result<BackupSummary, StoreError> {
    let source = data_dir.join(DATABASE_FILE);
    if !source.is_file() {
        return Err(StoreError::Open {
            path: source,
            operation: "find the database to back up",
            source: "no such file: is this the server's --data-dir?".into(),
        });
    }
    if out.exists() {
        return Err(StoreError::Open {
            path: out.to_owned(),
            operation: "create the backup",
            source: "the file exists already; choose a new name (backups are never overwritten)"
                .into(),
        });
    }
    // Read-only: a backup never migrates, checkpoints or otherwise writes the
    // server's database (WAL readers still share its -shm index).
    let from = Connection::open_with_flags(
        &source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| classify(e, &source, "open for backup"))?;
    from.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| classify(e, &source, "set busy timeout"))?;
    check_palaver_database(&from, &source)?;
    let partial = partial_name(out);
    let written = (|| {
        let mut to = Connection::open(&partial).map_err(|e| classify(e, &partial, "create"))?;
        {
            let copy = rusqlite::backup::Backup::new(&from, &mut to)
                .map_err(|e| classify(e, &partial, "start the backup"))?;
            // All pages in one step: one read transaction, one consistent snapshot.
            copy.step(-1)
                .map_err(|e| classify(e, &source, "copy the database"))?;
        }
        // A backup is a single file: no WAL beside it to lose.
        to.pragma_update(None, "journal_mode", "DELETE")
            .map_err(|e| classify(e, &partial, "finish the backup"))?;
        drop(to);
        sync_file(&partial)?;
        std::fs::rename(&partial, out).map_err(|e| io_error(out, "rename the backup", e))?;
        sync_parent(out)
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    let bytes = std::fs::metadata(out)
        .map_err(|e| io_error(out, "read the backup's size", e))?
        .len();
    Ok(BackupSummary { source, bytes })
}

/// Puts the backup `from` in place as `data_dir`'s database. Refused while a server
/// (or anything else) holds the data directory, and for a file that is not an
/// intact palaver database this build can open.
pub fn restore(data_dir: &Path, from: &Path) -> Result<RestoreSummary, StoreError> {
    let backup = Connection::open_with_flags(
        from,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| classify(e, from, "open the backup"))?;
    check_palaver_database(&backup, from)?;
    let integrity: String = backup
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .map_err(|e| classify(e, from, "check the backup's integrity"))?;
    if integrity != "ok" {
        return Err(StoreError::Corrupt {
            path: from.to_owned(),
            source: format!("integrity check: {integrity}").into(),
        });
    }
    drop(backup);

    std::fs::create_dir_all(data_dir).map_err(|source| StoreError::CreateDir {
        path: data_dir.to_owned(),
        source,
    })?;
    // Held until the swap is done: no server may open the directory meanwhile.
    let _lock = lock_data_dir(data_dir)?;
    let database = data_dir.join(DATABASE_FILE);
    let incoming = partial_name(&database);
    std::fs::copy(from, &incoming).map_err(|e| io_error(&incoming, "copy the backup in", e))?;
    sync_file(&incoming)?;
    let previous = if database.exists() {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let aside = data_dir.join(format!("{DATABASE_FILE}.before-restore-{stamp}"));
        // The WAL holds committed transactions not yet in the main file: it moves
        // with it, so the replaced database stays whole. The -shm index is rebuilt.
        for suffix in ["", "-wal"] {
            let file = PathBuf::from(format!("{}{suffix}", database.display()));
            if file.exists() {
                let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                std::fs::rename(&file, &to).map_err(|e| io_error(&file, "move aside", e))?;
            }
        }
        Some(aside)
    } else {
        None
    };
    let shm = PathBuf::from(format!("{}-shm", database.display()));
    if shm.exists() {
        std::fs::remove_file(&shm).map_err(|e| io_error(&shm, "remove", e))?;
    }
    std::fs::rename(&incoming, &database)
        .map_err(|e| io_error(&database, "move the backup in", e))?;
    sync_parent(&database)?;
    Ok(RestoreSummary { database, previous })
}

/// Refuses a file that is not a palaver database, or one from a newer palaver.
fn check_palaver_database(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let fail = |operation| move |e| classify(e, path, operation);
    let app_id: i32 = conn
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .map_err(fail("read application id"))?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(fail("read schema version"))?;
    if app_id != APPLICATION_ID {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            source: "not a palaver database (its application id differs)".into(),
        });
    }
    if version > CURRENT_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found: version,
            supported: CURRENT_VERSION,
        });
    }
    Ok(())
}

/// Where a file is written before it is renamed into place.
fn partial_name(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.partial", path.display()))
}

fn sync_file(path: &Path) -> Result<(), StoreError> {
    File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|e| io_error(path, "sync", e))
}

/// Makes a rename in `path`'s directory durable (a no-op where directories cannot
/// be opened, as on Windows).
fn sync_parent(path: &Path) -> Result<(), StoreError> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match File::open(parent) {
        Ok(dir) => dir.sync_all().or_else(|e| {
            // Some file systems refuse to fsync a directory; the rename still happened.
            if e.kind() == std::io::ErrorKind::InvalidInput {
                Ok(())
            } else {
                Err(io_error(parent, "sync the directory", e))
            }
        }),
        Err(_) => Ok(()),
    }
}

fn io_error(path: &Path, operation: &'static str, source: std::io::Error) -> StoreError {
    StoreError::Open {
        path: path.to_owned(),
        operation,
        source: Box::new(source),
    }
}
