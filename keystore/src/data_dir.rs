//! The files of a data directory and who may touch them: `keyward.sqlite3` (the store, with
//! its `-wal`, `-shm` and `.anchor` files beside it) and `master.key` (the master key, mode
//! 0600), and the writer lock that lets one process at a time write the store.
//!
//! File modes, checked on every open (as OpenSSH checks private key files): a master key that
//! group or others may access (any of mode `0o077`) is refused, and so is a data directory or
//! store file that group or others may write (`0o022`: they could swap the master key or roll
//! the store back); a directory that group or others may only read is allowed (the caller
//! warns). A directory a first use creates or populates gets mode [`DIR_MODE`].

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::{Error, Result};

/// File name of the store inside the data directory.
pub const STORE_FILE: &str = "keyward.sqlite3";
/// File name of the master key inside the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";
/// Mode of a data directory that a first use creates or populates.
pub const DIR_MODE: u32 = 0o700;

/// The store's path inside the data directory `dir`.
pub fn store_path(dir: &Path) -> PathBuf {
    dir.join(STORE_FILE)
}

fn file_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.display().to_string();
    move |source| Error::File {
        action,
        path,
        source,
    }
}

fn mode_of(meta: &fs::Metadata) -> u32 {
    meta.permissions().mode() & 0o7777
}

/// Reads the master key file at `path`; refuses one that group or others may access
/// ([`Error::MasterKeyExposed`]).
pub fn read_master_key(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let meta = fs::metadata(path).map_err(file_error("read master key file", path))?;
    let mode = mode_of(&meta);
    if mode & 0o077 != 0 {
        return Err(Error::MasterKeyExposed {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(Zeroizing::new(
        fs::read(path).map_err(file_error("read master key file", path))?,
    ))
}

/// Who besides the owner may read a data directory that passed [`check_dir_mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirAccess {
    /// Nobody but the owner may read it.
    OwnerOnly,
    /// Group or others may read (not write) it: allowed, worth a warning.
    ReadableByOthers {
        /// The directory's mode, e.g. `0o755`.
        mode: u32,
    },
}

/// Refuses a data directory that group or others may write ([`Error::DataDirWritable`]); says
/// whether they may read it.
pub fn check_dir_mode(dir: &Path) -> Result<DirAccess> {
    let meta = fs::metadata(dir).map_err(file_error("read data directory", dir))?;
    let mode = mode_of(&meta);
    if mode & 0o022 != 0 {
        return Err(Error::DataDirWritable {
            path: dir.display().to_string(),
            mode,
        });
    }
    Ok(if mode & 0o044 != 0 {
        DirAccess::ReadableByOthers { mode }
    } else {
        DirAccess::OwnerOnly
    })
}

/// Refuses a store file (the database, its WAL and shared-memory files, the rollback anchor)
/// that group or others may write ([`Error::StoreFileWritable`]): they could roll the store and
/// its anchor back together, which no check at open can see. Files that do not exist (yet)
/// pass.
pub fn check_store_modes(dir: &Path) -> Result<()> {
    let store = store_path(dir);
    for suffix in ["", "-wal", "-shm", ".anchor"] {
        let path = PathBuf::from(format!("{}{suffix}", store.display()));
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        let mode = mode_of(&meta);
        if mode & 0o022 != 0 {
            return Err(Error::StoreFileWritable {
                path: path.display().to_string(),
                mode,
            });
        }
    }
    Ok(())
}

/// Creates `dir` if it does not exist and sets it to [`DIR_MODE`]: a folder that is about to
/// hold a master key is the owner's alone, whether it was made here or existed.
pub fn prepare_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(file_error("create data directory", dir))?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)).map_err(|source| {
        Error::RestrictDataDir {
            path: dir.display().to_string(),
            source,
        }
    })
}

/// Writes a new master key file at `path` (mode 0600; fails if it exists) and syncs it.
pub fn create_master_key_file(path: &Path, key: &[u8]) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(file_error("create master key file", path))?;
    f.write_all(key)
        .and_then(|()| f.sync_all())
        .map_err(file_error("write master key file", path))
}

/// Sets a new store and the WAL and shared-memory files SQLite made before it to mode 0600
/// (later ones copy the store's mode).
pub fn restrict_store_files(store: &Path) -> Result<()> {
    fs::set_permissions(store, fs::Permissions::from_mode(0o600))
        .map_err(file_error("restrict store", store))?;
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", store.display()));
        if side.exists() {
            fs::set_permissions(&side, fs::Permissions::from_mode(0o600))
                .map_err(file_error("restrict", &side))?;
        }
    }
    Ok(())
}

/// An exclusive lock on the data directory's store, held while a process may write to it.
/// Dropping it releases the lock.
#[derive(Debug)]
pub struct WriterLock(#[allow(dead_code, reason = "held for its lock")] fs::File);

/// Takes the writer lock on `dir` (an advisory `flock` on the store file, so nothing new is
/// written), or `None` when another process holds it: one process at a time may write a data
/// directory; readers need no lock. Two writers would each keep their own view of the audit
/// chain and the manifest and break each other.
pub fn try_lock_for_writing(dir: &Path) -> Result<Option<WriterLock>> {
    let path = store_path(dir);
    let f = fs::File::open(&path).map_err(file_error("open", &path))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(WriterLock(f))),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(file_error("lock", &path)(e)),
    }
}
