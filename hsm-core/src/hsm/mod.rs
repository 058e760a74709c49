//! The HSM: key objects in memory over an encrypted store, users and sessions, policy, and
//! the audit trail.
//!
//! [`Hsm`] is the one facade (the token, in PKCS#11 terms); its methods are spread over one
//! file per concept:
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | the `Hsm` and key-object types, create and open |
//! | [`load`] | reading and verifying a store at open; [`integrity`]: audit chain and rollback anchor |
//! | [`accounts`] | users, passwords, lockout, logins and sessions |
//! | [`keys`] | generating, importing, unwrapping, deriving and destroying keys |
//! | [`find`] | listing and looking up keys |
//! | [`attributes`] | changing attributes and sharing |
//! | [`versions`] | key versions (Vault transit style): rotate, version settings, trim, rewrap |
//! | [`crypto`] | sign, verify, encrypt, decrypt, wrap, random |
//! | [`policy`] | who may see, use and manage a key: every check in one place |
//! | [`handles`] | [`KeySigner`] and [`KeyCipher`], the handles the TLS proxy holds |
//! | [`commit`], [`audit`] | writing a change with its audit entry; reading the trail |
//! | [`sync`] | a reader node picking up another process's key changes |
//! | [`cluster`] | several writers on one store: the store's write lock, catching up with other nodes |
//! | [`sessions`] | login sessions as store records on a shared store, so every node accepts them |
//! | [`sealing`] | the seal: rekeying the master key |
//! | [`backup`] | backup archives and restores |
//! | [`rotation`] | data-key rotation: new records under a new data key, old ones rewritten |
//! | [`ticket_keys`] | TLS session-ticket keys made for, and released wrapped to, a remote proxy fleet |
//!
//! Records below this layer: [`crate::store`].
//!
//! # Lock order
//!
//! The HSM has five mutexes; a thread that holds several took them in this order, and never
//! takes an earlier one while it holds a later one:
//!
//! 1. `writer` (the manifest: serializes every change of keys, users and the manifest), then,
//!    on a store several nodes write, the store's write lock ([`cluster`]),
//! 2. `users`,
//! 3. `sessions`,
//! 4. `audit` (the audit head),
//! 5. `anchor` (the rollback anchor, written after every commit: innermost).
//!
//! The signing, verifying and encrypting paths take none of them: key objects are read from an
//! [`ArcSwap`] map and their state from a per-key `ArcSwap`. Every lock goes through [`lock`],
//! which recovers a poisoned mutex (the data it guards is replaced whole, never left half
//! changed).

use crate::audit::{AuditEntry, AuditHead, AuditReport};
use crate::error::printable;
use crate::error::{Error, Result};
use crate::kdf;
use crate::material::Material;
use crate::mechanism::{
    DataKeyMechanism, EncryptMechanism, SignInput, SignMechanism, SignatureEncoding, WrapMechanism,
};
use crate::object::{
    AttributeName, AttributeValue, Attributes, KeyClass, KeyHandle, KeyInfo, KeySpec, KeyTemplate,
};
use crate::seal::config::{DataKeys, ROOT_BOUND, SEAL_CONFIG_ID, SEAL_CONFIG_KIND};
use crate::seal::{MasterKey, SealConfig};
use crate::selftest;
use crate::store::format::{RecordCipher, DATA_KEY_VERSION};
use crate::users::{
    self, Password, Role, Session, SessionToken, UserInfo, UserRecord, MAX_FAILED_LOGINS,
    PROXY_USER,
};
use arc_swap::ArcSwap;
use keyward_keystore::{Backend, Record, Write};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use zeroize::Zeroizing;

mod accounts;
mod attributes;
mod audit;
mod backup;
mod ca;
mod cluster;
mod commit;
mod crypto;
mod data_keys;
mod find;
mod handles;
mod integrity;
mod keys;
mod load;
mod policy;
mod rotation;
mod sealing;
mod sessions;
mod sync;
mod ticket_keys;
mod versions;

use crate::store::record::*;
use crate::store::*;
pub use ca::{check_ca_name, CaRecord, CaSettings, CertRecord, Revocation, CA_NAME_MAX};
pub use cluster::store_sequence;
pub use data_keys::{DataKey, DATA_KEY_LENGTHS, DATA_KEY_TAG};
pub use handles::{KeyCipher, KeySigner};
pub use rotation::RotationStatus;
pub use sync::TokenObjectChanges;
pub use ticket_keys::{ReleasedTicketKey, TICKET_KEY_LABEL_PREFIX, TICKET_KEY_WRAP_MIN_BITS};
pub use versions::{KeyRef, VersionSettings, Versioned};

pub use integrity::OpenOptions;

use audit::{Audit, AuditEvent, NewAuditEntry, Outcome};
use integrity::{Acceptances, Anchor};
use load::load_object;
use policy::sign_checked;
use versions::KeyVersions;

/// Label prefixes only service users (such as [`PROXY_USER`]) may give keys: the proxy's
/// session-ticket keys are `tls-ticket-key-<period>`.
pub const RESERVED_LABEL_PREFIXES: [&str; 2] = ["keyward-", "tls-ticket-key-"];

/// How long an admin stays locked out after [`MAX_FAILED_LOGINS`] consecutive failed logins,
/// unless set otherwise with [`Hsm::set_admin_lockout`] (Vault's default lockout duration).
pub const DEFAULT_ADMIN_LOCKOUT: Duration = Duration::from_secs(15 * 60);

/// Longest session a login may ask for.
pub const MAX_SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Largest random output of one call, in bytes.
pub const MAX_RANDOM_BYTES: usize = 65_536;

/// Largest input to one sign, verify, encrypt or decrypt call, in bytes.
pub const MAX_DATA_BYTES: usize = 16 * 1024 * 1024;

/// Most keys a page of [`Hsm::list_keys`] returns.
pub const MAX_PAGE_SIZE: usize = 1000;

/// The mutable part of a key object: replaced whole on every change. The key material of
/// every version is part of it, so one lock-free load sees attributes, version settings and
/// material that belong together.
#[derive(Clone)]
struct KeyState {
    info: KeyInfo,
    record_version: u64,
    versions: Arc<KeyVersions>,
}

impl KeyState {
    /// The material of the latest version.
    fn latest(&self) -> &Material {
        self.versions.latest()
    }
}

/// Counts of operations per key since the HSM was opened (not stored).
#[derive(Default)]
struct Usage {
    sign: AtomicU64,
    verify: AtomicU64,
    encrypt: AtomicU64,
    decrypt: AtomicU64,
}

/// Operation counts of one key since the HSM was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyUsage {
    /// Signatures and MACs made.
    pub sign: u64,
    /// Verifications made.
    pub verify: u64,
    /// Encryptions and wraps made with this key.
    pub encrypt: u64,
    /// Decryptions and unwraps made with this key.
    pub decrypt: u64,
}

struct KeyObject {
    state: ArcSwap<KeyState>,
    /// For session objects (`token = false`): the session that owns them; only it sees them,
    /// and they are gone when it ends (logout or expiry).
    session: Option<Session>,
    destroyed: AtomicBool,
    usage: Usage,
}

impl KeyObject {
    /// Whether `session` may see this object at all (session objects: only their session,
    /// while it lasts).
    fn in_scope(&self, session: &Session) -> bool {
        match &self.session {
            Some(owner) => owner.id() == session.id() && owner.is_active(),
            None => true,
        }
    }

    fn new(
        info: KeyInfo,
        record_version: u64,
        versions: KeyVersions,
        session: Option<Session>,
    ) -> Self {
        KeyObject {
            state: ArcSwap::from_pointee(KeyState {
                info,
                record_version,
                versions: Arc::new(versions),
            }),
            session,
            destroyed: AtomicBool::new(false),
            usage: Usage::default(),
        }
    }
}

type ObjectMap = HashMap<KeyHandle, Arc<KeyObject>>;

/// A key's state as read lock-free for one operation (no reference-count traffic).
type StateGuard = arc_swap::Guard<Arc<KeyState>>;

/// Filters for [`Hsm::list_keys`]; every set field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyFilter {
    /// Exact label.
    pub label: Option<String>,
    /// Exact owner (user name).
    pub owner: Option<String>,
    /// Key class.
    pub class: Option<KeyClass>,
    /// Key type (`aes`, `generic-secret`, `rsa`, `ec`, `ed25519`).
    pub key_type: Option<String>,
    /// Boolean attributes that must have the given values.
    pub attributes: Vec<(AttributeName, bool)>,
}

/// One page of [`Hsm::list_keys`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPage {
    /// Keys, ordered by handle.
    pub keys: Vec<KeyInfo>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next: Option<KeyHandle>,
}

/// Inputs of ECDH key derivation ([`Hsm::derive_key`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EcdhParams<'a> {
    /// The peer's public key: SubjectPublicKeyInfo DER or an uncompressed SEC 1 point.
    pub peer_public: &'a [u8],
    /// HKDF salt (RFC 5869 §2.2); may be empty.
    pub salt: &'a [u8],
    /// HKDF info (RFC 5869 §2.3); may be empty.
    pub info: &'a [u8],
}

/// What makes a key of an ECDH shared secret ([`Hsm::derive_key_with`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EcdhKdf {
    /// HKDF-SHA256 (RFC 5869) with the salt and info: what [`Hsm::derive_key`] does.
    #[default]
    HkdfSha256,
    /// No KDF (PKCS#11's `CKD_NULL`): the new key's value is the leftmost bytes of the shared
    /// secret Z, the x-coordinate of the shared point (SEC 1 §3.3.1), as long as the key (at
    /// most Z's length). Salt and info must be empty.
    Null,
}

/// What [`Hsm::unwrap_key`] creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnwrapTarget {
    /// A secret key of this spec from the unwrapped value.
    Secret(KeySpec),
    /// A private key from unwrapped PKCS#8 DER; the type is read from it.
    Private,
}

/// The HSM over one store. Share it in an `Arc`.
///
/// All key objects are decrypted into memory when the HSM is opened. Operations on a key look
/// it up in a lock-free map (`ArcSwap`) and read its attributes lock-free; no store access and
/// no lock shared across keys are on the sign, verify, encrypt or decrypt path. Management
/// operations write the store under one mutex and record an audit entry.
pub struct Hsm {
    store: Box<dyn Backend>,
    /// Every data key version still in use, sealing under the current one; replaced whole by
    /// a data-key rotation.
    data_key: ArcSwap<RecordCipher>,
    /// The data keys' bytes, for re-wrapping them under a new master key (taken only under
    /// `writer`).
    data_keys: Mutex<DataKeys>,
    /// The root key, kept while unsealed (as Vault keeps its root key) to re-encrypt the data
    /// keys (rotation) and wrap backup keys; zeroized on drop.
    master: Mutex<Zeroizing<[u8; crate::seal::MASTER_KEY_LEN]>>,
    objects: ArcSwap<ObjectMap>,
    /// Serializes changes to keys, users and the manifest.
    writer: Mutex<Manifest>,
    users: Mutex<HashMap<String, (UserRecord, u64)>>,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    audit: Mutex<AuditHead>,
    /// What the rollback anchor records; written after every commit (innermost lock).
    anchor: Mutex<Anchor>,
    next_session: AtomicU64,
    /// How long an admin stays locked after [`MAX_FAILED_LOGINS`] failures, in ms; 0: until
    /// another admin (or `keyward recover`) sets a new password.
    admin_lockout_ms: AtomicU64,
    /// Opened by [`Hsm::open_read_only`]: every store write is refused.
    read_only: bool,
    /// What [`Hsm::open_with`] found wrong and accepted (audited), for the caller to report.
    accepted_at_open: Vec<String>,
}

impl std::fmt::Debug for Hsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hsm")
            .field("objects", &self.objects.load().len())
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hsm {
    /// Creates a new HSM in an empty store, sealed by `master_key`: runs the self-tests,
    /// generates a random 256-bit data key (stored under the master key), creates the proxy's
    /// service user and starts the audit chain.
    ///
    /// # Errors
    /// [`Error::SelfTestFailed`], [`Error::Store`] (e.g. the store is not empty).
    pub fn create(store: Box<dyn Backend>, master_key: &MasterKey) -> Result<Self> {
        Self::create_sealed(store, master_key, &SealConfig::key_file())
    }

    /// As [`create`](Self::create), for a store sealed by `seal` (which `master_key` came
    /// from: a passphrase or shares, see [`SealConfig`](crate::SealConfig)); the seal configuration is stored
    /// beside the data key and bound to it.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn create_sealed(
        store: Box<dyn Backend>,
        master_key: &MasterKey,
        seal: &SealConfig,
    ) -> Result<Self> {
        selftest::run()?;
        let data_key_bytes = MasterKey::generate()?;
        let mut first = Zeroizing::new([0u8; crate::seal::MASTER_KEY_LEN]);
        first.copy_from_slice(data_key_bytes.as_bytes());
        let data_keys = DataKeys {
            current: DATA_KEY_VERSION,
            keys: vec![(DATA_KEY_VERSION, first)],
            record_version: 1,
        };
        let config_json = seal.to_json()?;
        // The root key, under the unseal key; the data keys under the root key (a rekey
        // replaces the first record only, and every unsealed node keeps working).
        let root = MasterKey::generate()?;
        let root_blob = master_key.cipher()?.seal(
            RecordKind::Seal,
            ID_ROOT_KEY,
            1,
            &crate::seal::config::encode_root(root.as_bytes(), &config_json),
        )?;
        let blob = root.cipher()?.seal(
            RecordKind::Seal,
            ID_DATA_KEY,
            1,
            &data_keys.encode(ROOT_BOUND)?,
        )?;
        let data_key = RecordCipher::new(data_key_bytes.as_bytes(), DATA_KEY_VERSION)?;
        let head = AuditHead {
            seq: 0,
            hash: crate::audit::ZERO_HASH.into(),
            record_version: 1,
        };
        let manifest = Manifest {
            records: BTreeMap::new(),
            anchored: true,
            version: 1,
        };
        // The anchor first: a store that says it is anchored never exists without one.
        store.write_anchor(&integrity::seal_anchor(
            &data_key,
            &Anchor {
                manifest_version: manifest.version,
                audit_seq: head.seq,
                audit_hash: head.hash.clone(),
            },
        )?)?;
        let writes = vec![
            Write::Insert(Record {
                kind: SEAL_CONFIG_KIND.into(),
                id: SEAL_CONFIG_ID.into(),
                version: 1,
                blob: config_json,
            }),
            Write::Insert(Record {
                kind: RecordKind::Seal.into(),
                id: ID_ROOT_KEY.into(),
                version: 1,
                blob: root_blob,
            }),
            Write::Insert(Record {
                kind: RecordKind::Seal.into(),
                id: ID_DATA_KEY.into(),
                version: 1,
                blob,
            }),
            Write::Insert(seal_json(
                &data_key,
                RecordKind::AuditHead,
                ID_AUDIT_HEAD,
                1,
                &head,
            )?),
            Write::Insert(seal_json(
                &data_key,
                RecordKind::Manifest,
                ID_MANIFEST,
                1,
                &manifest,
            )?),
        ];
        store.write_batch(&writes)?;
        let hsm = Hsm::assemble(
            store,
            data_key,
            data_keys,
            HashMap::new(),
            HashMap::new(),
            manifest,
            head,
            false,
        );
        hsm.set_master(&root);
        hsm.insert_user(
            UserRecord {
                name: PROXY_USER.into(),
                role: Role::CryptoUser,
                password_hash: None,
                failed_logins: 0,
                locked: false,
                locked_at_unix_ms: None,
            },
            false,
            Some(&Audit::new("-", AuditEvent::HsmCreate, None)),
        )?;
        Ok(hsm)
    }

    #[expect(clippy::too_many_arguments, reason = "one constructor of every field")]
    fn assemble(
        store: Box<dyn Backend>,
        data_key: RecordCipher,
        data_keys: DataKeys,
        objects: ObjectMap,
        users: HashMap<String, (UserRecord, u64)>,
        manifest: Manifest,
        head: AuditHead,
        read_only: bool,
    ) -> Hsm {
        let anchor = Anchor {
            manifest_version: manifest.version,
            audit_seq: head.seq,
            audit_hash: head.hash.clone(),
        };
        Hsm {
            store,
            data_key: ArcSwap::from_pointee(data_key),
            data_keys: Mutex::new(data_keys),
            master: Mutex::new(Zeroizing::new([0; crate::seal::MASTER_KEY_LEN])),
            objects: ArcSwap::from_pointee(objects),
            writer: Mutex::new(manifest),
            users: Mutex::new(users),
            sessions: Mutex::new(HashMap::new()),
            audit: Mutex::new(head),
            anchor: Mutex::new(anchor),
            next_session: AtomicU64::new(1),
            admin_lockout_ms: AtomicU64::new(
                u64::try_from(DEFAULT_ADMIN_LOCKOUT.as_millis()).unwrap_or(u64::MAX),
            ),
            read_only,
            accepted_at_open: Vec::new(),
        }
    }

    /// Opens (unseals) an existing store with `master_key`, verifies it (every record, the
    /// whole audit chain, the rollback anchor: see [`OpenOptions`]) and loads every key and
    /// user. Writes nothing to the store.
    ///
    /// # Errors
    /// [`Error::SelfTestFailed`]; [`Error::Sealed`] if the master key does not open the store;
    /// [`Error::RecordTampered`] naming the first record that fails authentication;
    /// [`Error::StoreInconsistent`] if a record the manifest lists is missing or another
    /// appeared; [`Error::AuditDamaged`] naming the first bad audit entry;
    /// [`Error::StoreRolledBack`] with the number of missing changes; [`Error::Store`].
    pub fn open(store: Box<dyn Backend>, master_key: &MasterKey) -> Result<Self> {
        Self::open_with(store, master_key, OpenOptions::default())
    }

    /// Opens a store that another process writes (it holds the store's writer lock), as
    /// [`open`](Self::open) does, for a node that only reads: every operation that would write
    /// the store (creating, changing or destroying keys and users, logins, audit records such
    /// as [`record_unseal`](Self::record_unseal)) fails with [`Error::ReadOnly`]; using keys
    /// (sign, verify, encrypt, decrypt) works. Keys the writer makes later are loaded by
    /// [`sync_token_objects`](Self::sync_token_objects).
    ///
    /// The store is read while the writer may commit: the load is repeated (a few times) until
    /// the manifest and the audit head kept their versions from start to end, so what was
    /// read is one consistent state.
    ///
    /// # Errors
    /// As [`open`](Self::open); [`Error::StoreInconsistent`] also when the store kept changing
    /// during every attempt.
    pub fn open_read_only(store: Box<dyn Backend>, master_key: &MasterKey) -> Result<Self> {
        selftest::run()?;
        // A store other nodes write: read it under its write lock (one consistent state)
        // rather than hope for a quiet moment.
        let cluster = store.lock_writes()?;
        for _ in 0..SNAPSHOT_ATTEMPTS {
            let before = change_marks(store.as_ref())?;
            let loaded = Self::load(store.as_ref(), master_key, OpenOptions::default());
            if change_marks(store.as_ref())? != before {
                continue;
            }
            let l = loaded?;
            drop(cluster);
            let hsm = Hsm::assemble(
                store,
                l.data_key,
                l.data_keys,
                l.objects,
                l.users,
                l.manifest,
                l.head,
                true,
            );
            hsm.restore_sessions(&l.sessions);
            hsm.set_master(&l.root);
            return Ok(hsm);
        }
        Err(Error::StoreInconsistent {
            detail: format!(
                "the store changed while it was read, {SNAPSHOT_ATTEMPTS} times in a row"
            ),
        })
    }

    /// Whether this HSM was opened by [`open_read_only`](Self::open_read_only).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn check_writable(&self, operation: &'static str) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly { operation });
        }
        Ok(())
    }

    /// Reads the latest version of a private or secret key's value back. Compiled only for tests (the
    /// `test-secrets` feature, which only tests enable), so a test can look for leaked key
    /// bytes; release builds have no way to read a key in plaintext.
    #[cfg(any(test, feature = "test-secrets"))]
    pub fn test_secret_value(&self, handle: KeyHandle) -> Result<Zeroizing<Vec<u8>>> {
        let obj = self.object(handle)?;
        let state = obj.state.load();
        let v = state
            .latest()
            .wrappable_bytes()
            .ok_or(Error::KeyNotFound { handle })?;
        Ok(Zeroizing::new(v.to_vec()))
    }
}
