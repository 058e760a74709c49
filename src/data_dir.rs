//! Opening the data directory, which unseals the HSM: the store (`keyward.sqlite3`) and the
//! master key (`master.key`), whose files, modes and writer lock are
//! [`keyward_keystore::data_dir`]'s. Here: which open each command needs (to read, to write
//! under the writer lock, to serve as a writer or a reader node, or creating a new store),
//! and the errors that tell an operator what to run.

use std::path::Path;

use anyhow::{bail, Context, Result};
use keyward_hsm::{Hsm, MasterKey, OpenOptions};
use keyward_keystore::data_dir::{self as files, DirAccess, WriterLock};
use keyward_keystore::SqliteBackend;

pub(crate) use keyward_keystore::data_dir::{store_path, MASTER_KEY_FILE, STORE_FILE};

/// Refuses a master key file that group or others may access.
fn read_master_key(path: &Path) -> Result<MasterKey> {
    let bytes = files::read_master_key(path)?;
    MasterKey::from_bytes(&bytes).with_context(|| format!("master key file {}", path.display()))
}

/// Refuses a data directory that group or others may write; warns when they may read it.
fn check_dir_mode(dir: &Path) -> Result<()> {
    if let DirAccess::ReadableByOthers { mode } = files::check_dir_mode(dir)? {
        tracing::warn!(
            dir = %dir.display(),
            mode = %format!("{mode:04o}"),
            "data directory is readable by group or others; chmod 700 it"
        );
    }
    Ok(())
}

/// The error for a data directory without a store: `keyward init` first.
fn no_store(dir: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "no HSM store at {}: create one with `keyward init --data-dir {}` (`keyward quickstart` and `keyward key generate` also create an empty one)",
        store_path(dir).display(),
        dir.display()
    )
}

/// Opens an existing data directory; creates nothing.
pub(crate) fn open(dir: &Path) -> Result<Hsm> {
    open_with(dir, OpenOptions::default())
}

/// [`open`], accepting (and auditing) what `options` says instead of refusing to open.
fn open_with(dir: &Path, options: OpenOptions) -> Result<Hsm> {
    let (backend, master) = backend(dir)?;
    let hsm = Hsm::open_with(Box::new(backend), &master, options)
        .map_err(|e| unsealing_failed(dir, e))?;
    for what in hsm.accepted_at_open() {
        tracing::warn!(dir = %dir.display(), "{what} (recorded in the audit trail)");
    }
    Ok(hsm)
}

/// Opens an existing data directory that another process may be writing, only to read it
/// (`key list`, `cert`): the store is read as one consistent snapshot and never written.
pub(crate) fn open_to_read(dir: &Path) -> Result<Hsm> {
    let (backend, master) = backend(dir)?;
    Hsm::open_read_only(Box::new(backend), &master).map_err(|e| unsealing_failed(dir, e))
}

/// The store and master key of an existing data directory, modes checked.
fn backend(dir: &Path) -> Result<(SqliteBackend, MasterKey)> {
    let store = store_path(dir);
    if !store.is_file() {
        return Err(no_store(dir));
    }
    check_dir_mode(dir)?;
    files::check_store_modes(dir)?;
    let master = read_master_key(&dir.join(MASTER_KEY_FILE))?;
    let backend =
        SqliteBackend::open(&store).with_context(|| format!("store {}", store.display()))?;
    Ok((backend, master))
}

/// The error of an open that failed inside the HSM, with the way out for the refusals an
/// operator may override.
fn unsealing_failed(dir: &Path, e: keyward_hsm::Error) -> anyhow::Error {
    let hint = match e.code() {
        keyward_hsm::ErrorCode::AuditDamaged => "; to start anyway, accepting the damage up to now (audited; `audit verify` keeps reporting it), add --accept-audit-damage",
        keyward_hsm::ErrorCode::StoreRolledBack => "; restore the newest copy of the store if you have one; to start from this store as it is (audited), add --accept-rollback",
        _ => "",
    };
    anyhow::Error::new(e).context(format!("cannot unseal the HSM in {}{hint}", dir.display()))
}

/// Opens the data directory, creating it, a new master key (0600) and an empty store when
/// there is none; a directory it creates or populates gets mode 0700.
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
    // A folder that is about to hold a master key is the owner's alone, whether we made it or
    // it existed (`init` into a 0777 folder must not leave it 0777).
    files::prepare_dir(dir)?;
    let master = MasterKey::generate()?;
    files::create_master_key_file(&key_path, master.as_bytes())?;
    let store = store_path(dir);
    let backend = SqliteBackend::create(&store)
        .with_context(|| format!("cannot create store {}", store.display()))?;
    files::restrict_store_files(&store)?;
    let hsm = Hsm::create(Box::new(backend), &master)?;
    tracing::info!(dir = %dir.display(), "created a new HSM store and master key");
    Ok(hsm)
}

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
    Ok(files::try_lock_for_writing(dir)?)
}

/// Opens the data directory for `keyward serve`: as the writer (with the writer lock) when no
/// other process holds the lock; otherwise as a reader node sharing the store with that
/// writer: the HSM is opened read-only (it never writes the store; the writer's ticket keys
/// are re-read from it), and the `[api]` (which writes) is refused.
pub(crate) fn open_for_serving(
    dir: &Path,
    serves_api: bool,
    options: OpenOptions,
) -> Result<(Hsm, Option<WriterLock>)> {
    if !store_path(dir).is_file() {
        return Err(no_store(dir));
    }
    if let Some(lock) = try_lock_for_writing(dir)? {
        return Ok((open_with(dir, options)?, Some(lock)));
    }
    if serves_api {
        bail!(
            "the data directory {} is in use by another keyward process, so this one can only be a reader node, which cannot serve the HSM API ([api] writes to the store): remove [api] from this node's configuration, or serve the API from the writer",
            dir.display()
        );
    }
    let hsm = open_to_read(dir)?;
    tracing::info!(
        dir = %dir.display(),
        "this node shares the data directory with a writer (another keyward process holds its lock): it runs as a reader node, never writes the store, and loads the session ticket keys the writer makes"
    );
    Ok((hsm, None))
}

/// [`open_with`] for a process that writes: takes the writer lock first.
pub(crate) fn open_for_writing(dir: &Path, options: OpenOptions) -> Result<(Hsm, WriterLock)> {
    if !store_path(dir).is_file() {
        return Err(no_store(dir));
    }
    let lock = lock_for_writing(dir)?;
    Ok((open_with(dir, options)?, lock))
}

/// [`open_or_create`] for a process that writes: the new or existing store, locked.
pub(crate) fn open_or_create_for_writing(dir: &Path) -> Result<(Hsm, WriterLock)> {
    if store_path(dir).is_file() {
        return open_for_writing(dir, OpenOptions::default());
    }
    let hsm = open_or_create(dir)?;
    let lock = lock_for_writing(dir)?;
    Ok((hsm, lock))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn error_of<T>(r: Result<T>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn a_missing_store_names_keyward_init_first() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        for message in [
            error_of(open(&dir)),
            error_of(open_for_writing(&dir, OpenOptions::default())),
            error_of(open_for_serving(&dir, false, OpenOptions::default())),
        ] {
            assert!(
                message.contains(&store_path(&dir).display().to_string()),
                "{message}"
            );
            let init = message.find("`keyward init --data-dir").expect(&message);
            let others = message.find("quickstart").expect(&message);
            assert!(init < others, "{message}");
        }
        assert!(!dir.exists(), "opening created nothing");
    }

    #[test]
    fn a_master_key_that_group_or_others_may_read_is_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        drop(open_or_create(&dir).unwrap());
        let key = dir.join(MASTER_KEY_FILE);
        for loose in [0o640, 0o604, 0o660, 0o644] {
            chmod(&key, loose);
            for message in [
                error_of(open(&dir)),
                error_of(open_for_serving(&dir, false, OpenOptions::default())),
            ] {
                assert!(
                    message.contains(&format!("master key file {}", key.display())),
                    "{message}"
                );
                assert!(
                    message.contains(&format!("run `chmod 600 {}`", key.display())),
                    "{message}"
                );
                assert!(message.contains(&format!("mode {loose:04o}")), "{message}");
            }
        }
        chmod(&key, 0o600);
        open(&dir).unwrap();
        chmod(&key, 0o400);
        open(&dir).unwrap();
    }

    #[test]
    fn store_files_that_group_or_others_may_write_are_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        drop(open_or_create(&dir).unwrap());
        for name in [STORE_FILE.to_owned(), format!("{STORE_FILE}.anchor")] {
            let file = dir.join(&name);
            chmod(&file, 0o666);
            let message = error_of(open(&dir));
            assert!(
                message.contains(&format!("run `chmod 600 {}`", file.display()))
                    && message.contains("roll the store back"),
                "{message}"
            );
            chmod(&file, 0o600);
        }
        open(&dir).unwrap();
    }

    #[test]
    fn a_data_directory_that_group_or_others_may_write_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        drop(open_or_create(&dir).unwrap());
        for loose in [0o770, 0o702, 0o777] {
            chmod(&dir, loose);
            let message = error_of(open(&dir));
            assert!(
                message.contains(&format!(
                    "data directory {} is writable by group or others (mode {loose:04o})",
                    dir.display()
                )),
                "{message}"
            );
            assert!(
                message.contains(&format!("run `chmod 700 {}`", dir.display())),
                "{message}"
            );
            // A first use does not tighten an existing store's folder: it refuses it too.
            assert!(error_of(open_or_create(&dir)).contains("chmod 700"));
            assert_eq!(mode(&dir), loose, "refusing changed nothing");
        }
        // Readable (not writable) by others: opened, with a warning.
        chmod(&dir, 0o755);
        open(&dir).unwrap();
    }

    #[test]
    fn a_directory_that_a_first_use_creates_or_populates_becomes_0700() {
        let tmp = tempfile::tempdir().unwrap();
        let created = tmp.path().join("new/data");
        drop(open_or_create(&created).unwrap());
        assert_eq!(mode(&created), 0o700);
        assert_eq!(mode(&created.join(MASTER_KEY_FILE)), 0o600);
        let existing = tmp.path().join("existing");
        fs::create_dir(&existing).unwrap();
        chmod(&existing, 0o777);
        drop(open_or_create(&existing).unwrap());
        assert_eq!(mode(&existing), 0o700);
        assert_eq!(mode(&existing.join(MASTER_KEY_FILE)), 0o600);
        open(&existing).unwrap();
    }
}
