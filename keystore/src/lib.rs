//! Durable storage of Keyward's records.
//!
//! This crate is the bottom layer of the keystore (see `docs/architecture.md`): it stores and returns
//! opaque, already-encrypted blobs addressed by `(kind, id)` with a version number. It never
//! sees plaintext key material; the encryption format lives in `keyward-hsm`, which uses the
//! record kind, id and version as AES-GCM associated data so that a swapped or edited row fails
//! to open there.
//!
//! Backends: [`SqliteBackend`] (the embedded default: WAL journal, `synchronous=FULL`; its
//! rollback anchor is the file `<store>.anchor` beside the database) and [`PostgresBackend`]
//! (the store of a cluster: every node points at one database; the anchor is a row in it). [`data_dir`] holds the
//! files of a data directory: their modes and the writer lock. With the `test-util` feature
//! (tests only), `test_util` adds an in-memory backend, the conformance suite every backend
//! passes, and a batch-recording wrapper.
//!
//! ```
//! use keyward_keystore::{Backend, Record, SqliteBackend};
//! let dir = tempfile::tempdir().unwrap();
//! let store = SqliteBackend::create(&dir.path().join("keyward.sqlite3")).unwrap();
//! store.insert(&Record { kind: "key".into(), id: "1".into(), version: 1, blob: vec![1, 2, 3] }).unwrap();
//! assert_eq!(store.get("key", "1").unwrap().unwrap().blob, vec![1, 2, 3]);
//! ```
//!
//! Where this crate sits among the others, the handshake path and the design decisions:
//! `docs/architecture.md` in the repository.

#![deny(missing_docs)]

pub mod data_dir;
pub mod postgres;
mod sqlite;
#[cfg(feature = "test-util")]
pub mod test_util;

pub use postgres::{PostgresBackend, PostgresOptions};
pub use sqlite::SqliteBackend;

/// One stored record: an opaque encrypted blob with its address and version.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    /// Record kind, e.g. `key` or `data-key`. At most 64 bytes of ASCII.
    pub kind: String,
    /// Identifier unique within the kind, e.g. a key handle in decimal.
    pub id: String,
    /// Version, starting at 1 and increased by one on every update.
    pub version: u64,
    /// The encrypted record, as produced by the HSM's record format.
    pub blob: Vec<u8>,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("version", &self.version)
            .field("blob_bytes", &self.blob.len())
            .finish()
    }
}

/// Errors from a storage backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store file or database does not exist (and was not to be created).
    #[error("no store at {path}")]
    NotFound {
        /// Where the store was looked for.
        path: String,
    },
    /// A store already exists where a new one was to be created.
    #[error("a store already exists at {path}")]
    AlreadyExists {
        /// Where the store was found.
        path: String,
    },
    /// A record with this kind and id already exists.
    #[error("record {kind}/{id} already exists")]
    Duplicate {
        /// Record kind.
        kind: String,
        /// Record id.
        id: String,
    },
    /// An update or delete named a version that is not the stored one (a concurrent change).
    #[error("record {kind}/{id} changed concurrently (expected version {expected})")]
    VersionConflict {
        /// Record kind.
        kind: String,
        /// Record id.
        id: String,
        /// The version the caller expected to replace.
        expected: u64,
    },
    /// The store's schema is newer than this build understands, or is not a Keyward store.
    #[error("unsupported store schema version {found} (this build reads {supported})")]
    Schema {
        /// Schema version found in the store.
        found: i64,
        /// Schema version this build writes.
        supported: i64,
    },
    /// The database itself failed (I/O error, corruption, lock timeout).
    #[error("store database error: {0}")]
    Database(rusqlite::Error),
    /// PostgreSQL refused a statement or a login (its message and SQLSTATE are shown, e.g.
    /// `password authentication failed for user "keyward" (28P01)`).
    #[error("store database error: {}", postgres::describe(.0))]
    Postgres(tokio_postgres::Error),
    /// The store's database cannot be reached: connection refused or lost, or no pooled
    /// connection free within 5 s. Reads from memory go on; writes wait for it to return.
    #[error("store database unavailable: {reason}")]
    Unavailable {
        /// What the driver said.
        reason: String,
    },
    /// The store's settings are wrong (e.g. a URL that does not parse).
    #[error("{reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// A file beside the database (the rollback anchor) could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A file or folder of a data directory could not be read, created, restricted, opened or
    /// locked (`action` names what, e.g. `read master key file`).
    #[error("cannot {action} {path}")]
    File {
        /// What was attempted, e.g. `create data directory`.
        action: &'static str,
        /// The file or folder.
        path: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A data directory could not be set to mode 0700 before a master key is written into it.
    #[error("cannot restrict data directory {path} to mode 0700 before writing a master key into it (use a directory you own)")]
    RestrictDataDir {
        /// The folder.
        path: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A master key file that group or others may access.
    #[error("master key file {path} is accessible by group or others (mode {mode:04o}); it must be readable by its owner only: run `chmod 600 {path}`")]
    MasterKeyExposed {
        /// The file.
        path: String,
        /// Its mode.
        mode: u32,
    },
    /// A data directory that group or others may write.
    #[error("data directory {path} is writable by group or others (mode {mode:04o}), so they could replace its master key or store: run `chmod 700 {path}`")]
    DataDirWritable {
        /// The folder.
        path: String,
        /// Its mode.
        mode: u32,
    },
    /// A store file (database, WAL, shared memory, anchor) that group or others may write.
    #[error("{path} is writable by group or others (mode {mode:04o}), so they could roll the store back: run `chmod 600 {path}`")]
    StoreFileWritable {
        /// The file.
        path: String,
        /// Its mode.
        mode: u32,
    },
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Database(e)
    }
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// A storage backend: durable, ordered by nothing, addressed by `(kind, id)`.
///
/// Implementations must make each call atomic and durable before it returns.
pub trait Backend: Send + Sync + 'static {
    /// Reads one record; `Ok(None)` when it does not exist.
    fn get(&self, kind: &str, id: &str) -> Result<Option<Record>>;
    /// Lists every record of a kind, ordered by id.
    fn list(&self, kind: &str) -> Result<Vec<Record>>;
    /// Inserts a new record. Fails with [`Error::Duplicate`] if `(kind, id)` exists.
    fn insert(&self, record: &Record) -> Result<()>;
    /// Replaces the record whose stored version is `record.version - 1`.
    /// Fails with [`Error::VersionConflict`] otherwise.
    fn update(&self, record: &Record) -> Result<()>;
    /// Deletes a record if it exists at `version`.
    fn delete(&self, kind: &str, id: &str, version: u64) -> Result<()>;
    /// Every distinct record kind present, sorted.
    fn kinds(&self) -> Result<Vec<String>>;
    /// Applies several writes atomically: all of them, or none (the first error is returned).
    fn write_batch(&self, writes: &[Write]) -> Result<()>;
    /// Reads the rollback anchor: a small blob (written by [`write_anchor`](Self::write_anchor))
    /// kept where restoring an older copy of the store does not roll it back. `Ok(None)` if
    /// none was written.
    fn read_anchor(&self) -> Result<Option<Vec<u8>>>;
    /// Replaces the rollback anchor atomically and durably (a crash leaves the old or the new
    /// one, never a mix).
    fn write_anchor(&self, blob: &[u8]) -> Result<()>;
    /// Serializes the writers of a store that several processes write (a cluster's nodes):
    /// while the returned guard lives, no other process's `lock_writes` returns. `None` (the
    /// default): this backend has one writer process (SQLite: the data directory's lock).
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the lock cannot be taken (the database is down, or another
    /// process held it for longer than the backend waits).
    fn lock_writes(&self) -> Result<Option<WriteLock>> {
        Ok(None)
    }
    /// Checks that the store can be reached now (PostgreSQL: `SELECT 1` on a pooled
    /// connection). Default: always.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when it cannot.
    fn ping(&self) -> Result<()> {
        Ok(())
    }
    /// Records that a node is alive (cluster stores). Default: nothing.
    ///
    /// # Errors
    /// As the backend's writes.
    fn heartbeat(&self, _beat: &NodeBeat) -> Result<()> {
        Ok(())
    }
    /// Removes a node's heartbeat (it stopped cleanly). Default: nothing.
    ///
    /// # Errors
    /// As the backend's writes.
    fn forget_node(&self, _node: &str) -> Result<()> {
        Ok(())
    }
    /// Every node's last heartbeat, by name. Default: none.
    ///
    /// # Errors
    /// As the backend's reads.
    fn nodes(&self) -> Result<Vec<NodeBeat>> {
        Ok(Vec::new())
    }
    /// The stored version of one record, without its blob (`None`: no such record). Default:
    /// through [`get`](Self::get).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    fn version_of(&self, kind: &str, id: &str) -> Result<Option<u64>> {
        Ok(self.get(kind, id)?.map(|r| r.version))
    }
    /// Keeps `blob` under `id` for `ttl` (first writer wins: an existing unexpired entry is
    /// kept), for every process sharing the store; expired entries are removed. Default:
    /// nothing (a store with one process keeps such entries in memory).
    ///
    /// # Errors
    /// As the backend's writes.
    fn put_expiring(&self, _id: &str, _blob: &[u8], _ttl: std::time::Duration) -> Result<()> {
        Ok(())
    }
    /// The unexpired blob [`put_expiring`](Self::put_expiring) kept under `id`. Default: none.
    ///
    /// # Errors
    /// As the backend's reads.
    fn get_expiring(&self, _id: &str) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    /// Whether several processes write this store (a cluster's nodes). Default `false`.
    fn is_shared(&self) -> bool {
        false
    }
    /// A channel that receives `()` whenever another process may have changed the store
    /// (PostgreSQL: a notification after each committed batch, and one after every
    /// (re)connection of the listener, since notifications sent meanwhile are lost). `None`
    /// (the default): no such signal; the store has no other writer.
    ///
    /// # Errors
    /// As the backend's reads.
    fn subscribe(&self) -> Result<Option<std::sync::mpsc::Receiver<()>>> {
        Ok(None)
    }
}

/// One node's heartbeat in a cluster store ([`Backend::heartbeat`], [`Backend::nodes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeBeat {
    /// The node's name, unique in the cluster (e.g. `host:port`).
    pub node: String,
    /// What it runs, e.g. `keyward 0.1.0 hsm serve`.
    pub version: String,
    /// The store's change sequence the node has applied (its manifest version).
    pub applied_seq: u64,
    /// The store's change sequence when the heartbeat was written (so `store_seq -
    /// applied_seq` is how far behind the node was then).
    pub store_seq: u64,
    /// When the node started, in ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// How long ago its last heartbeat was, in ms, by the database's clock (ignored when
    /// writing one).
    pub seen_ms_ago: u64,
}

impl NodeBeat {
    /// A heartbeat to write.
    pub fn new(
        node: String,
        version: String,
        applied_seq: u64,
        store_seq: u64,
        started_unix_ms: u64,
    ) -> Self {
        Self {
            node,
            version,
            applied_seq,
            store_seq,
            started_unix_ms,
            seen_ms_ago: 0,
        }
    }
}

/// What [`Backend::lock_writes`] returns: the lock is released when it is dropped.
pub type WriteLock = Box<dyn std::any::Any + Send>;

/// One write of a [`Backend::write_batch`].
#[derive(Debug, Clone)]
pub enum Write {
    /// As [`Backend::insert`].
    Insert(Record),
    /// As [`Backend::update`].
    Update(Record),
    /// As [`Backend::delete`]: kind, id, version.
    Delete(String, String, u64),
    /// Replaces the blob of the record stored at exactly `record.version`, keeping the
    /// version (a record re-encrypted under a new key, its content unchanged); fails with
    /// [`Error::VersionConflict`] if it is not at that version.
    Rewrite(Record),
}
