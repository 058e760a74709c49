//! SQLite backend: one file, WAL journal, `synchronous=FULL`.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::{Backend, Error, Record, Result};

/// Schema version written by this build (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

/// The embedded SQLite backend.
///
/// All calls go through one connection behind a mutex; the HSM reads the store at start-up
/// and on management operations only, never on the signing path.
pub struct SqliteBackend {
    conn: Mutex<Connection>,
    /// The rollback anchor file, `<store>.anchor`.
    anchor: PathBuf,
}

/// `<store>.anchor`: beside the database, so that copying an older database over the current
/// one (or losing its WAL) leaves the anchor ahead of it.
fn anchor_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".anchor");
    PathBuf::from(name)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend").finish_non_exhaustive()
    }
}

impl SqliteBackend {
    /// Creates a new store file at `path`.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] if the file exists; [`Error::Database`] on I/O failure.
    pub fn create(path: &Path) -> Result<Self> {
        if path.exists() {
            return Err(Error::AlreadyExists {
                path: path.display().to_string(),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure(&conn)?;
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE records (
                 kind    TEXT    NOT NULL,
                 id      TEXT    NOT NULL,
                 version INTEGER NOT NULL,
                 blob    BLOB    NOT NULL,
                 PRIMARY KEY (kind, id)
             ) WITHOUT ROWID;
             PRAGMA user_version = 1;
             COMMIT;",
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
            anchor: anchor_path(path),
        })
    }

    /// Opens an existing store file. Writes nothing to it.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is no file, [`Error::Schema`] if it is not a Keyward store
    /// of a version this build reads, [`Error::Database`] otherwise.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::NotFound {
                path: path.display().to_string(),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure(&conn)?;
        let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found != SCHEMA_VERSION {
            return Err(Error::Schema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(Self {
            conn: Mutex::new(conn),
            anchor: anchor_path(path),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave the connection half-written: every
        // statement is its own transaction. Recover the guard.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // journal_mode is persistent in the file; setting it again on an existing WAL store
    // changes nothing on disk.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Database(rusqlite::Error::InvalidParameterName(
            format!("journal_mode stayed {mode}"),
        )));
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
    Ok(())
}

fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    let version: i64 = r.get(2)?;
    Ok(Record {
        kind: r.get(0)?,
        id: r.get(1)?,
        version: u64::try_from(version).unwrap_or(0),
        blob: r.get(3)?,
    })
}

fn version_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn insert_on(conn: &Connection, record: &Record) -> Result<()> {
    let res = conn.execute(
        "INSERT INTO records (kind, id, version, blob) VALUES (?1, ?2, ?3, ?4)",
        params![
            record.kind,
            record.id,
            version_sql(record.version),
            record.blob
        ],
    );
    match res {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(Error::Duplicate {
                kind: record.kind.clone(),
                id: record.id.clone(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

fn update_on(conn: &Connection, record: &Record) -> Result<()> {
    let expected = record.version.saturating_sub(1);
    let n = conn.execute(
        "UPDATE records SET version = ?3, blob = ?4 WHERE kind = ?1 AND id = ?2 AND version = ?5",
        params![
            record.kind,
            record.id,
            version_sql(record.version),
            record.blob,
            version_sql(expected)
        ],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(Error::VersionConflict {
            kind: record.kind.clone(),
            id: record.id.clone(),
            expected,
        })
    }
}

fn rewrite_on(conn: &Connection, record: &Record) -> Result<()> {
    let n = conn.execute(
        "UPDATE records SET blob = ?4 WHERE kind = ?1 AND id = ?2 AND version = ?3",
        params![
            record.kind,
            record.id,
            version_sql(record.version),
            record.blob
        ],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(Error::VersionConflict {
            kind: record.kind.clone(),
            id: record.id.clone(),
            expected: record.version,
        })
    }
}

fn delete_on(conn: &Connection, kind: &str, id: &str, version: u64) -> Result<()> {
    let n = conn.execute(
        "DELETE FROM records WHERE kind = ?1 AND id = ?2 AND version = ?3",
        params![kind, id, version_sql(version)],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(Error::VersionConflict {
            kind: kind.to_owned(),
            id: id.to_owned(),
            expected: version,
        })
    }
}

impl Backend for SqliteBackend {
    fn get(&self, kind: &str, id: &str) -> Result<Option<Record>> {
        let conn = self.conn();
        let rec = conn
            .prepare_cached(
                "SELECT kind, id, version, blob FROM records WHERE kind = ?1 AND id = ?2",
            )?
            .query_row(params![kind, id], row_to_record)
            .optional()?;
        Ok(rec)
    }

    fn list(&self, kind: &str) -> Result<Vec<Record>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT kind, id, version, blob FROM records WHERE kind = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![kind], row_to_record)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn insert(&self, record: &Record) -> Result<()> {
        insert_on(&self.conn(), record)
    }

    fn update(&self, record: &Record) -> Result<()> {
        update_on(&self.conn(), record)
    }

    fn delete(&self, kind: &str, id: &str, version: u64) -> Result<()> {
        delete_on(&self.conn(), kind, id, version)
    }

    fn kinds(&self) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT DISTINCT kind FROM records ORDER BY kind")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
    }

    fn write_batch(&self, writes: &[crate::Write]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for w in writes {
            match w {
                crate::Write::Insert(r) => insert_on(&tx, r)?,
                crate::Write::Update(r) => update_on(&tx, r)?,
                crate::Write::Delete(k, i, v) => delete_on(&tx, k, i, *v)?,
                crate::Write::Rewrite(r) => rewrite_on(&tx, r)?,
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn read_anchor(&self) -> Result<Option<Vec<u8>>> {
        match std::fs::read(&self.anchor) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&self.anchor)(e)),
        }
    }

    /// Writes `<store>.anchor.tmp` (mode 0600), syncs it, renames it over `<store>.anchor`
    /// and syncs the folder.
    fn write_anchor(&self, blob: &[u8]) -> Result<()> {
        let mut tmp = self.anchor.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_error(&tmp))?;
        f.write_all(blob).map_err(io_error(&tmp))?;
        f.sync_all().map_err(io_error(&tmp))?;
        std::fs::rename(&tmp, &self.anchor).map_err(io_error(&self.anchor))?;
        if let Some(dir) = self.anchor.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_error(dir))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, version: u64, blob: &[u8]) -> Record {
        Record {
            kind: "key".into(),
            id: id.into(),
            version,
            blob: blob.to_vec(),
        }
    }

    #[test]
    fn the_anchor_lives_beside_the_store_owner_only_and_is_replaced_whole() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        let s = SqliteBackend::create(&path).unwrap();
        assert_eq!(s.read_anchor().unwrap(), None);
        s.write_anchor(b"first").unwrap();
        s.write_anchor(b"second").unwrap();
        let file = dir.path().join("s.sqlite3.anchor");
        assert_eq!(std::fs::read(&file).unwrap(), b"second");
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!dir.path().join("s.sqlite3.anchor.tmp").exists());
        // Copying an older database over the store leaves the anchor as it was.
        drop(s);
        let s = SqliteBackend::open(&path).unwrap();
        assert_eq!(s.read_anchor().unwrap().as_deref(), Some(&b"second"[..]));
    }

    #[test]
    fn create_insert_update_delete_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        let s = SqliteBackend::create(&path).unwrap();
        s.insert(&rec("a", 1, b"one")).unwrap();
        assert!(matches!(
            s.insert(&rec("a", 1, b"x")),
            Err(Error::Duplicate { .. })
        ));
        s.update(&rec("a", 2, b"two")).unwrap();
        assert!(matches!(
            s.update(&rec("a", 2, b"stale")),
            Err(Error::VersionConflict { expected: 1, .. })
        ));
        assert_eq!(s.get("key", "a").unwrap().unwrap().blob, b"two");
        drop(s);
        let s = SqliteBackend::open(&path).unwrap();
        assert_eq!(s.list("key").unwrap().len(), 1);
        s.delete("key", "a", 2).unwrap();
        assert!(s.get("key", "a").unwrap().is_none());
    }

    #[test]
    fn a_failing_batch_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteBackend::create(&dir.path().join("s.sqlite3")).unwrap();
        s.insert(&rec("a", 1, b"one")).unwrap();
        let res = s.write_batch(&[
            crate::Write::Insert(rec("b", 1, b"b")),
            crate::Write::Update(rec("a", 5, b"stale")),
        ]);
        assert!(matches!(res, Err(Error::VersionConflict { .. })));
        assert!(s.get("key", "b").unwrap().is_none());
        s.write_batch(&[
            crate::Write::Insert(rec("b", 1, b"b")),
            crate::Write::Update(rec("a", 2, b"two")),
        ])
        .unwrap();
        assert_eq!(s.list("key").unwrap().len(), 2);
    }

    #[test]
    fn open_refuses_missing_and_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            SqliteBackend::open(&dir.path().join("none")),
            Err(Error::NotFound { .. })
        ));
        let other = dir.path().join("other.sqlite3");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        assert!(matches!(
            SqliteBackend::open(&other),
            Err(Error::Schema { found: 0, .. })
        ));
        assert!(matches!(
            SqliteBackend::create(&other),
            Err(Error::AlreadyExists { .. })
        ));
    }
}
