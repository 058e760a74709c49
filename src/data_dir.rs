//! The data directory: `keyward.sqlite3` (the encrypted store) and `master.key` (the 32-byte
//! master key, mode 0600). Opening it unseals the HSM.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use keyward_hsm::{Hsm, MasterKey};
use keyward_keystore::SqliteBackend;
use zeroize::Zeroizing;

/// File name of the store inside the data directory.
pub(crate) const STORE_FILE: &str = "keyward.sqlite3";
/// File name of the master key inside the data directory.
pub(crate) const MASTER_KEY_FILE: &str = "master.key";

pub(crate) fn store_path(dir: &Path) -> PathBuf {
    dir.join(STORE_FILE)
}

fn read_master_key(path: &Path) -> Result<MasterKey> {
    let meta = fs::metadata(path)
        .with_context(|| format!("cannot read master key file {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "master key file is readable by group or others; chmod 600 it");
    }
    let bytes = Zeroizing::new(
        fs::read(path)
            .with_context(|| format!("cannot read master key file {}", path.display()))?,
    );
    MasterKey::from_bytes(&bytes).with_context(|| format!("master key file {}", path.display()))
}

/// Opens an existing data directory; creates nothing.
pub(crate) fn open(dir: &Path) -> Result<Hsm> {
    let store = store_path(dir);
    if !store.is_file() {
        bail!(
            "no HSM store at {} (create one with `keyward key generate` or `keyward quickstart`)",
            store.display()
        );
    }
    let master = read_master_key(&dir.join(MASTER_KEY_FILE))?;
    let backend =
        SqliteBackend::open(&store).with_context(|| format!("store {}", store.display()))?;
    Hsm::open(Box::new(backend), &master)
        .with_context(|| format!("cannot unseal the HSM in {}", dir.display()))
}

/// Opens the data directory, creating it (mode 0700), a new master key (0600) and an empty
/// store when there is none.
pub(crate) fn open_or_create(dir: &Path) -> Result<Hsm> {
    if store_path(dir).is_file() {
        return open(dir);
    }
    let key_path = dir.join(MASTER_KEY_FILE);
    if key_path.exists() {
        bail!(
            "{} exists but {} does not: restore the store from a backup, or remove the master key file to start a new, empty HSM",
            key_path.display(),
            store_path(dir).display()
        );
    }
    if !dir.exists() {
        // Only a folder we create is restricted; an existing one keeps its owner's mode.
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data directory {}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict data directory {}", dir.display()))?;
    }
    let master = MasterKey::generate()?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .with_context(|| format!("cannot create master key file {}", key_path.display()))?;
    f.write_all(master.as_bytes())?;
    f.sync_all()?;
    let store = store_path(dir);
    let backend = SqliteBackend::create(&store)
        .with_context(|| format!("cannot create store {}", store.display()))?;
    fs::set_permissions(&store, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict store {}", store.display()))?;
    // SQLite made its WAL and shared-memory files before the chmod; later ones copy the
    // store's mode.
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", store.display()));
        if side.exists() {
            fs::set_permissions(&side, fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot restrict {}", side.display()))?;
        }
    }
    let hsm = Hsm::create(Box::new(backend), &master)?;
    tracing::info!(dir = %dir.display(), "created a new HSM store and master key");
    Ok(hsm)
}

/// An exclusive lock on the data directory's store, held while a process may write to it.
/// Dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct WriterLock(#[allow(dead_code, reason = "held for its lock")] fs::File);

/// Takes the writer lock on `dir` (an advisory `flock` on the store file, so nothing new is
/// written): one process at a time may write a data directory; readers (`key list`, `cert`)
/// need no lock. Two writers would each keep their own view of the audit chain and the
/// manifest and break each other.
pub(crate) fn lock_for_writing(dir: &Path) -> Result<WriterLock> {
    match try_lock_for_writing(dir)? {
        Some(lock) => Ok(lock),
        None => bail!(
            "the data directory {} is in use by another keyward process (serve, hsm serve or quickstart): stop it, or manage keys through its API with --server",
            dir.display()
        ),
    }
}

/// [`lock_for_writing`], but `None` when another process holds the lock.
fn try_lock_for_writing(dir: &Path) -> Result<Option<WriterLock>> {
    let path = store_path(dir);
    let f = fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(WriterLock(f))),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Opens the data directory for `keyward serve`: as the writer (with the writer lock) when no
/// other process holds the lock; otherwise as a reader node sharing the store with that
/// writer: the HSM is opened read-only (it never writes the store; the writer's ticket keys
/// are re-read from it), and the `[api]` (which writes) is refused.
pub(crate) fn open_for_serving(dir: &Path, serves_api: bool) -> Result<(Hsm, Option<WriterLock>)> {
    if !store_path(dir).is_file() {
        // Let `open` report the missing store.
        open(dir)?;
    }
    if let Some(lock) = try_lock_for_writing(dir)? {
        return Ok((open(dir)?, Some(lock)));
    }
    if serves_api {
        bail!(
            "the data directory {} is in use by another keyward process, so this one can only be a reader node, which cannot serve the HSM API ([api] writes to the store): remove [api] from this node's configuration, or serve the API from the writer",
            dir.display()
        );
    }
    let store = store_path(dir);
    let master = read_master_key(&dir.join(MASTER_KEY_FILE))?;
    let backend =
        SqliteBackend::open(&store).with_context(|| format!("store {}", store.display()))?;
    let hsm = Hsm::open_read_only(Box::new(backend), &master)
        .with_context(|| format!("cannot unseal the HSM in {}", dir.display()))?;
    tracing::info!(
        dir = %dir.display(),
        "this node shares the data directory with a writer (another keyward process holds its lock): it runs as a reader node, never writes the store, and loads the session ticket keys the writer makes"
    );
    Ok((hsm, None))
}

/// [`open`] for a process that writes: takes the writer lock first.
pub(crate) fn open_for_writing(dir: &Path) -> Result<(Hsm, WriterLock)> {
    if !store_path(dir).is_file() {
        // Let `open` report the missing store.
        open(dir)?;
    }
    let lock = lock_for_writing(dir)?;
    Ok((open(dir)?, lock))
}

/// [`open_or_create`] for a process that writes: the new or existing store, locked.
pub(crate) fn open_or_create_for_writing(dir: &Path) -> Result<(Hsm, WriterLock)> {
    if store_path(dir).is_file() {
        return open_for_writing(dir);
    }
    let hsm = open_or_create(dir)?;
    let lock = lock_for_writing(dir)?;
    Ok((hsm, lock))
}
