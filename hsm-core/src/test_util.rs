//! Test fixtures (feature `test-util`, enabled only through dev-dependencies; no release build
//! contains it): an HSM over a fresh SQLite store in its own temporary folder, and the
//! sessions tests log in with.
//!
//! ```
//! use keyward_hsm::test_util::{password_of, TestHsm, SESSION_TTL};
//! use keyward_hsm::{KeySpec, KeyTemplate};
//!
//! let t = TestHsm::new();
//! let admin = t.admin();
//! let alice = t.crypto_user(&admin, "alice");
//! let key = t.generate_secret_key(&alice, KeySpec::Aes256, &KeyTemplate::labelled("k")).unwrap();
//! let (store, hsm) = t.into_parts();
//! drop(hsm);
//! let again = store.open().unwrap();
//! let (alice, _) = again.login("alice", &password_of("alice"), SESSION_TTL).unwrap();
//! assert_eq!(again.key_info(&alice, key.handle).unwrap().handle, key.handle);
//! ```
//!
//! Each fixture owns its folder and store; nothing is shared between tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use keyward_keystore::data_dir::{MASTER_KEY_FILE, STORE_FILE};
use keyward_keystore::SqliteBackend;

use crate::{Hsm, MasterKey, OpenOptions, Password, Result, Role, Session, PROXY_USER};

/// The admin that [`TestHsm::admin`] bootstraps.
pub const ADMIN: &str = "admin";
/// [`ADMIN`]'s password.
pub const ADMIN_PASSWORD: &str = "admin-password";
/// How long the fixture's logins last.
pub const SESSION_TTL: Duration = Duration::from_secs(3600);

/// The password the fixture gives user `name`: `<name>-password`.
pub fn password_of(name: &str) -> Password {
    Password::from(format!("{name}-password").as_str())
}

/// A store that outlives its [`Hsm`]: a temporary folder holding a SQLite store
/// (`keyward.sqlite3`) and the master key that seals it. Reopen it as often as a test needs.
pub struct TestStore {
    dir: tempfile::TempDir,
    /// The SQLite store file.
    pub path: PathBuf,
    /// The master key the store is sealed under.
    pub master: MasterKey,
}

impl std::fmt::Debug for TestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl TestStore {
    /// A store made elsewhere (e.g. with another seal): its folder, file and master key.
    pub fn from_parts(dir: tempfile::TempDir, path: PathBuf, master: MasterKey) -> Self {
        TestStore { dir, path, master }
    }

    /// The temporary folder (the store file is [`STORE_FILE`] in it; tests may add files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A second connection to the store file, for reading or editing records under the HSM.
    ///
    /// # Panics
    /// If the store does not open.
    pub fn backend(&self) -> SqliteBackend {
        SqliteBackend::open(&self.path).expect("open the test store")
    }

    /// Opens the store as its writer ([`Hsm::open`]).
    ///
    /// # Errors
    /// As [`Hsm::open`].
    pub fn open(&self) -> Result<Hsm> {
        Hsm::open(Box::new(self.backend()), &self.master)
    }

    /// Opens the store as its writer with `options` ([`Hsm::open_with`]).
    ///
    /// # Errors
    /// As [`Hsm::open_with`].
    pub fn open_with(&self, options: OpenOptions) -> Result<Hsm> {
        Hsm::open_with(Box::new(self.backend()), &self.master, options)
    }

    /// Opens the store as a reader node ([`Hsm::open_read_only`]).
    ///
    /// # Errors
    /// As [`Hsm::open_read_only`].
    pub fn open_read_only(&self) -> Result<Hsm> {
        Hsm::open_read_only(Box::new(self.backend()), &self.master)
    }
}

/// An [`Hsm`] over a fresh [`TestStore`]; dereferences to the `Hsm`.
///
/// Sessions: [`service`](Self::service) (the proxy's service user), [`admin`](Self::admin)
/// (bootstraps [`ADMIN`] on first use), [`crypto_user`](Self::crypto_user) (creates a user
/// with [`password_of`] its name and logs it in).
pub struct TestHsm {
    /// The folder, store file and master key.
    pub store: TestStore,
    /// The HSM, the store's writer.
    pub hsm: Hsm,
}

impl std::fmt::Debug for TestHsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestHsm")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Default for TestHsm {
    fn default() -> Self {
        Self::new()
    }
}

impl std::ops::Deref for TestHsm {
    type Target = Hsm;
    fn deref(&self) -> &Hsm {
        &self.hsm
    }
}

impl TestHsm {
    /// A temporary folder, a new SQLite store in it and a new HSM over a new master key.
    ///
    /// # Panics
    /// If any of them cannot be made.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder for the test store");
        let path = dir.path().join(STORE_FILE);
        let master = MasterKey::generate().expect("a master key");
        let backend = SqliteBackend::create(&path).expect("create the test store");
        let hsm = Hsm::create(Box::new(backend), &master).expect("create the HSM");
        TestHsm {
            store: TestStore { dir, path, master },
            hsm,
        }
    }

    /// The store and the HSM apart (drop the HSM, then reopen the store).
    pub fn into_parts(self) -> (TestStore, Hsm) {
        (self.store, self.hsm)
    }

    /// The proxy's service session ([`PROXY_USER`]).
    ///
    /// # Panics
    /// If the HSM refuses it.
    pub fn service(&self) -> Session {
        self.hsm
            .service_session(PROXY_USER)
            .expect("the proxy's service session")
    }

    /// A session of [`ADMIN`], bootstrapped with [`ADMIN_PASSWORD`] if the HSM has no admin.
    ///
    /// # Panics
    /// If the bootstrap or the login fails.
    pub fn admin(&self) -> Session {
        if !self.hsm.has_admin() {
            self.hsm
                .bootstrap_admin(ADMIN, &Password::from(ADMIN_PASSWORD))
                .expect("bootstrap the admin");
        }
        self.login_as(ADMIN, &Password::from(ADMIN_PASSWORD))
    }

    /// Creates crypto-user `name` (password [`password_of`] `name`) as `admin` and logs it in.
    ///
    /// # Panics
    /// If the user cannot be created or log in.
    pub fn crypto_user(&self, admin: &Session, name: &str) -> Session {
        self.hsm
            .create_user(admin, name, Role::CryptoUser, &password_of(name))
            .expect("create the crypto-user");
        self.login_as(name, &password_of(name))
    }

    /// Logs `name` in for [`SESSION_TTL`] (named apart from [`Hsm::login`], which the
    /// fixture dereferences to).
    ///
    /// # Panics
    /// If the login fails.
    pub fn login_as(&self, name: &str, password: &Password) -> Session {
        self.hsm
            .login(name, password, SESSION_TTL)
            .expect("log the test user in")
            .0
    }
}

/// Opens an existing data directory (`master.key` and `keyward.sqlite3`, as `keyward init`
/// writes them) as a writer: a test's second look at a store a `keyward` process made.
///
/// # Panics
/// If the files cannot be read or the store does not open.
pub fn open_data_dir(dir: &Path) -> Hsm {
    let bytes = std::fs::read(dir.join(MASTER_KEY_FILE)).expect("read the master key file");
    let master = MasterKey::from_bytes(&bytes).expect("a master key");
    let backend = SqliteBackend::open(&dir.join(STORE_FILE)).expect("open the store");
    Hsm::open(Box::new(backend), &master).expect("open the HSM")
}
