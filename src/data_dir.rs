//! Opening the HSM, which unseals it: the store (`keyward.sqlite3` in the data directory, or
//! the cluster's PostgreSQL database given by `[hsm] store` / `--store`) and the master key
//! (`master.key` in the data directory), whose files, modes and writer lock are
//! [`keyward_keystore::data_dir`]'s. Here: which open each command needs (to read, to write
//! under the writer lock, to serve as a writer or a reader node, or creating a new store),
//! and the errors that tell an operator what to run.

use std::path::Path;

use anyhow::{bail, Context, Result};
use keyward_config::{HsmConfig, PostgresStore};
use keyward_hsm::{Hsm, MasterKey, OpenOptions};
use keyward_keystore::data_dir::{self as files, DirAccess};
use keyward_keystore::{Backend, PostgresBackend, PostgresOptions, SqliteBackend};
use zeroize::Zeroizing;

use crate::seal::{NewSeal, Sealing};

pub(crate) use keyward_keystore::data_dir::{store_path, MASTER_KEY_FILE, STORE_FILE};

/// The environment variable holding the PostgreSQL store's password when no
/// `store_password_file` is given.
const STORE_PASSWORD_ENV: &str = "KEYWARD_HSM__STORE_PASSWORD";

/// What lets a process write its store: the data directory's writer lock (an advisory
/// `flock` on the SQLite file: one writer process), or, on a PostgreSQL store, nothing to
/// hold: every node writes, each change under the database's write lock (see
/// `keyward_hsm::Hsm::catch_up`).
#[derive(Debug)]
pub(crate) enum WriterLock {
    /// `flock` on `keyward.sqlite3`.
    File(#[expect(dead_code, reason = "held, never read: dropping it unlocks")] files::WriterLock),
    /// A node of a cluster store.
    Cluster,
}

/// The PostgreSQL options of `store`: its password read from `store_password_file`, else
/// from `KEYWARD_HSM__STORE_PASSWORD`.
pub(crate) fn postgres_options(store: &PostgresStore) -> Result<PostgresOptions> {
    let mut options = PostgresOptions::new(store.url.clone());
    options.password = match &store.password_file {
        Some(path) => Some(crate::cmd::read_secret_file(
            path,
            "the store password file",
        )?),
        None => std::env::var(STORE_PASSWORD_ENV).ok().map(Zeroizing::new),
    };
    options.ca_file = store.ca_file.clone();
    options.pool_size = store.pool_size;
    Ok(options)
}

/// What the store is called in messages: its file, or its URL without a password.
pub(crate) fn store_name(hsm: &HsmConfig) -> String {
    match &hsm.store {
        Some(pg) => PostgresOptions::new(pg.url.clone()).redacted_url(),
        None => store_path(&hsm.data_dir).display().to_string(),
    }
}

/// Refuses a master key file that group or others may access.
pub(crate) fn read_master_key(path: &Path) -> Result<MasterKey> {
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
        "no HSM store at {}: create one with `keyward init --data-dir {}` (`keyward quickstart` and `keyward key generate` also create an empty one){}",
        store_path(dir).display(),
        dir.display(),
        if dir.join(MASTER_KEY_FILE).is_file() {
            "; a node of a cluster opens its PostgreSQL store: add --store URL (env KEYWARD_HSM__STORE, or [hsm] store)"
        } else {
            ""
        }
    )
}

/// Whether the store exists: the SQLite file, or (for PostgreSQL, which is asked when it is
/// opened) the files every node of a cluster holds: the master key file (key-file seal) or
/// the API's key file (a seal an operator unseals).
pub(crate) fn exists(hsm: &HsmConfig) -> bool {
    match hsm.store {
        Some(_) => {
            hsm.master_key_file().is_file()
                || keyward_server::tls::api_key_path(&hsm.data_dir).is_file()
        }
        None => store_path(&hsm.data_dir).is_file(),
    }
}

/// The error for a configuration without a store.
fn no_store_for(hsm: &HsmConfig) -> anyhow::Error {
    match &hsm.store {
        None => no_store(&hsm.data_dir),
        Some(_) => anyhow::anyhow!(
            "no master key at {}: the first node of a cluster creates the store and its master key with `keyward init --data-dir {} --store URL`; every other node needs a copy of that master.key (mode 0600) in its data directory (or, for a store sealed by a passphrase or shares, of api-tls.key and api-ca.pem)",
            hsm.master_key_file().display(),
            hsm.data_dir.display()
        ),
    }
}

pub(crate) fn open_backend(
    hsm: &HsmConfig,
    backend: Box<dyn Backend>,
    master: &MasterKey,
    options: OpenOptions,
) -> Result<Hsm> {
    let opened = Hsm::open_with(backend, master, options).map_err(|e| unsealing_failed(hsm, e))?;
    for what in opened.accepted_at_open() {
        tracing::warn!(store = %store_name(hsm), "{what} (recorded in the audit trail)");
    }
    Ok(opened)
}

/// Opens an existing store that another process may be writing, only to read it
/// (`key list`, `cert`): the store is read as one consistent snapshot and never written.
pub(crate) fn open_to_read(hsm: &HsmConfig) -> Result<Hsm> {
    let (backend, master) = backend(hsm)?;
    Hsm::open_read_only(backend.boxed(), &master).map_err(|e| unsealing_failed(hsm, e))
}

/// An opened store of either kind.
pub(crate) enum Opened {
    Sqlite(SqliteBackend),
    Postgres(Box<PostgresBackend>),
}

impl Opened {
    pub(crate) fn as_dyn(&self) -> &dyn Backend {
        match self {
            Opened::Sqlite(b) => b,
            Opened::Postgres(b) => b.as_ref(),
        }
    }

    pub(crate) fn boxed(self) -> Box<dyn Backend> {
        match self {
            Opened::Sqlite(b) => Box::new(b),
            Opened::Postgres(b) => b,
        }
    }

    /// The writer lock of this store; `None` if another process holds it (never for a
    /// cluster store, which every node writes).
    pub(crate) fn try_lock(&self, hsm: &HsmConfig) -> Result<Option<WriterLock>> {
        Ok(match self {
            Opened::Sqlite(_) => files::try_lock_for_writing(&hsm.data_dir)?.map(WriterLock::File),
            Opened::Postgres(_) => Some(WriterLock::Cluster),
        })
    }
}

/// The raw store of a cluster (`--store`), without the master key: for `keyward cluster`,
/// which reads heartbeats and the change sequence only.
pub(crate) fn open_cluster_store(hsm: &HsmConfig) -> Result<PostgresBackend> {
    let Some(pg) = &hsm.store else {
        bail!("a cluster store is a PostgreSQL database: give it with --store postgres://… (env KEYWARD_HSM__STORE)");
    };
    PostgresBackend::open(&postgres_options(pg)?)
        .with_context(|| format!("store {}", store_name(hsm)))
}

/// The store of an existing HSM, modes checked (not yet unsealed).
pub(crate) fn open_store(hsm: &HsmConfig) -> Result<Opened> {
    let dir = &hsm.data_dir;
    if !exists(hsm) {
        return Err(no_store_for(hsm));
    }
    check_dir_mode(dir)?;
    if hsm.store.is_none() {
        files::check_store_modes(dir)?;
    }
    Ok(match &hsm.store {
        None => {
            let store = store_path(dir);
            Opened::Sqlite(
                SqliteBackend::open(&store)
                    .with_context(|| format!("store {}", store.display()))?,
            )
        }
        Some(pg) => Opened::Postgres(Box::new(
            PostgresBackend::open(&postgres_options(pg)?)
                .with_context(|| format!("store {}", store_name(hsm)))?,
        )),
    })
}

/// The store and master key of an existing HSM, modes checked, for a command that opens the
/// store itself (see [`crate::seal::local_master_key`]).
fn backend(hsm: &HsmConfig) -> Result<(Opened, MasterKey)> {
    let backend = open_store(hsm)?;
    let master = crate::seal::local_master_key(hsm, backend.as_dyn())?;
    Ok((backend, master))
}

/// The error of an open that failed inside the HSM, with the way out for the refusals an
/// operator may override.
pub(crate) fn unsealing_failed(hsm: &HsmConfig, e: keyward_hsm::Error) -> anyhow::Error {
    let hint = match e.code() {
        keyward_hsm::ErrorCode::AuditDamaged => "; to start anyway, accepting the damage up to now (audited; `audit verify` keeps reporting it), add --accept-audit-damage",
        keyward_hsm::ErrorCode::StoreRolledBack => "; restore the newest copy of the store if you have one; to start from this store as it is (audited), add --accept-rollback",
        _ => "",
    };
    anyhow::Error::new(e).context(format!(
        "cannot unseal the HSM in {}{hint}",
        hsm.data_dir.display()
    ))
}

/// A new, empty store (the SQLite file in the data directory, made 0700; or the PostgreSQL
/// database's tables), for `init` and `backup restore`.
pub(crate) fn create_backend(hsm: &HsmConfig) -> Result<Opened> {
    let dir = &hsm.data_dir;
    // A folder that is about to hold a master key is the owner's alone, whether we made it or
    // it existed (`init` into a 0777 folder must not leave it 0777). For a PostgreSQL store,
    // only once the database took the new store (a refused init leaves no folder behind).
    Ok(match &hsm.store {
        None => {
            files::prepare_dir(dir)?;
            let store = store_path(dir);
            let backend = SqliteBackend::create(&store)
                .with_context(|| format!("cannot create store {}", store.display()))?;
            files::restrict_store_files(&store)?;
            Opened::Sqlite(backend)
        }
        Some(pg) => match PostgresBackend::create(&postgres_options(pg)?) {
            Ok(backend) => {
                files::prepare_dir(dir)?;
                Opened::Postgres(Box::new(backend))
            }
            Err(keyward_keystore::Error::AlreadyExists { .. }) => bail!(
                "the database {} already holds a Keyward store: this node joins it with a copy of master.key from a node of the cluster in {} (mode 0600)",
                store_name(hsm),
                dir.display()
            ),
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("cannot create store {}", store_name(hsm))))
            }
        },
    })
}

/// The store a backup is restored into: a new one, or (with `replace`) the existing one;
/// whether it was made here.
pub(crate) fn restore_target(hsm: &HsmConfig, replace: bool) -> Result<(Opened, bool)> {
    let taken = || {
        anyhow::anyhow!(
            "{} already holds a store: restore into a new data directory (or an empty database), or replace its contents with --force",
            store_name(hsm)
        )
    };
    match &hsm.store {
        None if store_path(&hsm.data_dir).exists() => {
            if !replace {
                return Err(taken());
            }
            Ok((open_store(hsm)?, false))
        }
        None => Ok((create_backend(hsm)?, true)),
        Some(pg) => {
            match PostgresBackend::create(&postgres_options(pg)?) {
                Ok(backend) => {
                    files::prepare_dir(&hsm.data_dir)?;
                    Ok((Opened::Postgres(Box::new(backend)), true))
                }
                Err(keyward_keystore::Error::AlreadyExists { .. }) if replace => Ok((
                    Opened::Postgres(Box::new(
                        PostgresBackend::open(&postgres_options(pg)?)
                            .with_context(|| format!("store {}", store_name(hsm)))?,
                    )),
                    false,
                )),
                Err(keyward_keystore::Error::AlreadyExists { .. }) => Err(taken()),
                Err(e) => Err(anyhow::Error::new(e)
                    .context(format!("cannot create store {}", store_name(hsm)))),
            }
        }
    }
}

/// A new, empty store, and its new master key made by `seal` (a key file is written; a
/// configured `[seal] key_file` that exists already is used as it is).
fn create_store(hsm: &HsmConfig, seal: &NewSeal) -> Result<(Opened, Sealing)> {
    let dir = &hsm.data_dir;
    let key_path = hsm.master_key_file();
    let given_key_file = hsm.key_file.is_some() && key_path.exists();
    if hsm.store.is_none() && key_path.exists() && !given_key_file {
        bail!(
            "{} exists but {} does not: if this data directory belongs to a node of a cluster, add --store URL (its PostgreSQL store); else restore the store from a backup, or remove the master key file to start a new, empty HSM",
            key_path.display(),
            store_path(dir).display()
        );
    }
    // Everything that can be refused is checked before the store exists: a refused init
    // leaves nothing behind.
    let mut sealing = crate::seal::new_seal(seal)?;
    let is_key_file = matches!(seal, NewSeal::KeyFile);
    if is_key_file && given_key_file {
        sealing.master = read_master_key(&key_path)?;
    }
    if is_key_file && !given_key_file && hsm.key_file.is_some() {
        if let Some(parent) = key_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.is_dir() {
                bail!(
                    "the folder of the seal key file {} does not exist",
                    key_path.display()
                );
            }
        }
    }
    let backend = create_backend(hsm)?;
    if is_key_file && !given_key_file {
        if let Err(e) = files::create_master_key_file(&key_path, sealing.master.as_bytes()) {
            if hsm.store.is_none() {
                let store = store_path(dir);
                for suffix in ["", "-wal", "-shm", ".anchor"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", store.display()));
                }
            }
            return Err(e.into());
        }
    }
    Ok((backend, sealing))
}

/// The error when another process holds the data directory's writer lock.
pub(crate) fn in_use(hsm: &HsmConfig) -> anyhow::Error {
    anyhow::anyhow!(
        "the data directory {} is in use by another keyward process (serve, hsm serve or quickstart): stop it, or manage keys through its API with --server",
        hsm.data_dir.display()
    )
}

/// Opens the store for `keyward serve`: as the writer (with the writer lock) when no other
/// process holds the lock; otherwise as a reader node sharing the store with that writer:
/// the HSM is opened read-only (it never writes the store; the writer's ticket keys are
/// re-read from it), and the `[api]` (which writes) is refused.
pub(crate) fn open_for_serving(
    hsm: &HsmConfig,
    serves_api: bool,
    options: OpenOptions,
) -> Result<(Hsm, Option<WriterLock>)> {
    let (backend, master) = backend(hsm)?;
    if let Some(lock) = backend.try_lock(hsm)? {
        return Ok((
            open_backend(hsm, backend.boxed(), &master, options)?,
            Some(lock),
        ));
    }
    if serves_api {
        bail!(
            "the store {} is in use by another keyward process, so this one can only be a reader node, which cannot serve the HSM API ([api] writes to the store): remove [api] from this node's configuration, or serve the API from the writer",
            store_name(hsm)
        );
    }
    let opened =
        Hsm::open_read_only(backend.boxed(), &master).map_err(|e| unsealing_failed(hsm, e))?;
    tracing::info!(
        store = %store_name(hsm),
        "this node shares the store with a writer (another keyward process holds its lock): it runs as a reader node, never writes the store, and loads the session ticket keys the writer makes"
    );
    Ok((opened, None))
}

/// Opens an existing store for a process that writes: takes the writer lock first.
pub(crate) fn open_for_writing(hsm: &HsmConfig, options: OpenOptions) -> Result<(Hsm, WriterLock)> {
    let (backend, master) = backend(hsm)?;
    let lock = backend.try_lock(hsm)?.ok_or_else(|| in_use(hsm))?;
    Ok((open_backend(hsm, backend.boxed(), &master, options)?, lock))
}

/// Opens the store for a process that writes, creating it, the data directory and a new
/// master key (0600) when there is none (a directory it creates or populates gets mode 0700);
/// the new or existing store, locked.
pub(crate) fn open_or_create_for_writing(hsm: &HsmConfig) -> Result<(Hsm, WriterLock)> {
    if exists(hsm) {
        return open_for_writing(hsm, OpenOptions::default());
    }
    create_for_writing(hsm, &NewSeal::KeyFile).map(|(h, lock, _)| (h, lock))
}

/// Creates a new store sealed by `seal` (see [`open_or_create_for_writing`]); the new HSM,
/// locked, and the unseal shares to print (shamir).
pub(crate) fn create_for_writing(
    hsm: &HsmConfig,
    seal: &NewSeal,
) -> Result<(Hsm, WriterLock, Vec<keyward_hsm::UnsealShare>)> {
    let (backend, sealing) = create_store(hsm, seal)?;
    let lock = backend.try_lock(hsm)?.ok_or_else(|| in_use(hsm))?;
    let created = Hsm::create_sealed(backend.boxed(), &sealing.master, &sealing.config)?;
    tracing::info!(store = %store_name(hsm), seal = sealing.config.seal_type.as_str(), "created a new HSM store and master key");
    Ok((created, lock, sealing.shares))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;

    fn at(dir: &Path) -> HsmConfig {
        HsmConfig::in_data_dir(dir.to_owned())
    }

    fn open(hsm: &HsmConfig) -> Result<Hsm> {
        open_for_writing(hsm, OpenOptions::default()).map(|(opened, _lock)| opened)
    }

    fn open_or_create(hsm: &HsmConfig) -> Result<Hsm> {
        open_or_create_for_writing(hsm).map(|(opened, _lock)| opened)
    }

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
            error_of(open(&at(&dir))),
            error_of(open_for_writing(&at(&dir), OpenOptions::default())),
            error_of(open_for_serving(&at(&dir), false, OpenOptions::default())),
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
        drop(open_or_create(&at(&dir)).unwrap());
        let key = dir.join(MASTER_KEY_FILE);
        for loose in [0o640, 0o604, 0o660, 0o644] {
            chmod(&key, loose);
            for message in [
                error_of(open(&at(&dir))),
                error_of(open_for_serving(&at(&dir), false, OpenOptions::default())),
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
        open(&at(&dir)).unwrap();
        chmod(&key, 0o400);
        open(&at(&dir)).unwrap();
    }

    #[test]
    fn store_files_that_group_or_others_may_write_are_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        drop(open_or_create(&at(&dir)).unwrap());
        for name in [STORE_FILE.to_owned(), format!("{STORE_FILE}.anchor")] {
            let file = dir.join(&name);
            chmod(&file, 0o666);
            let message = error_of(open(&at(&dir)));
            assert!(
                message.contains(&format!("run `chmod 600 {}`", file.display()))
                    && message.contains("roll the store back"),
                "{message}"
            );
            chmod(&file, 0o600);
        }
        open(&at(&dir)).unwrap();
    }

    #[test]
    fn a_data_directory_that_group_or_others_may_write_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        drop(open_or_create(&at(&dir)).unwrap());
        for loose in [0o770, 0o702, 0o777] {
            chmod(&dir, loose);
            let message = error_of(open(&at(&dir)));
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
            assert!(error_of(open_or_create(&at(&dir))).contains("chmod 700"));
            assert_eq!(mode(&dir), loose, "refusing changed nothing");
        }
        // Readable (not writable) by others: opened, with a warning.
        chmod(&dir, 0o755);
        open(&at(&dir)).unwrap();
    }

    #[test]
    fn a_directory_that_a_first_use_creates_or_populates_becomes_0700() {
        let tmp = tempfile::tempdir().unwrap();
        let created = tmp.path().join("new/data");
        drop(open_or_create(&at(&created)).unwrap());
        assert_eq!(mode(&created), 0o700);
        assert_eq!(mode(&created.join(MASTER_KEY_FILE)), 0o600);
        let existing = tmp.path().join("existing");
        fs::create_dir(&existing).unwrap();
        chmod(&existing, 0o777);
        drop(open_or_create(&at(&existing)).unwrap());
        assert_eq!(mode(&existing), 0o700);
        assert_eq!(mode(&existing.join(MASTER_KEY_FILE)), 0o600);
        open(&at(&existing)).unwrap();
    }
}
