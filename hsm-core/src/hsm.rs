//! The HSM: key objects in memory over an encrypted store, users and sessions, policy, and
//! the audit trail.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use keyward_keystore::{Backend, Record, Write};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::audit::{self, AuditEntry, AuditHead, AuditReport};
use crate::error::{Error, Result};
use crate::kdf;
use crate::material::Material;
use crate::mechanism::{
    EncryptMechanism, SignInput, SignMechanism, SignatureEncoding, WrapMechanism,
};
use crate::object::{
    AttributeName, AttributeValue, Attributes, KeyClass, KeyHandle, KeyInfo, KeySpec, KeyTemplate,
};
use crate::seal::{printable, MasterKey, RecordCipher, DATA_KEY_VERSION};
use crate::selftest;
use crate::users::{
    self, Password, Role, Session, SessionToken, UserInfo, UserRecord, MAX_FAILED_LOGINS,
    PROXY_USER,
};

mod accounts;
mod integrity;

pub use integrity::OpenOptions;
use integrity::{Acceptances, Anchor};

const KIND_SEAL: &str = "seal";
const ID_DATA_KEY: &str = "data-key";
const KIND_KEY: &str = "key";
const KIND_USER: &str = "user";
const KIND_MANIFEST: &str = "manifest";
const ID_MANIFEST: &str = "records";
const KIND_AUDIT: &str = "audit";
const KIND_AUDIT_HEAD: &str = "audit-head";
const ID_AUDIT_HEAD: &str = "head";
const KNOWN_KINDS: [&str; 7] = [
    KIND_SEAL,
    KIND_KEY,
    KIND_USER,
    KIND_MANIFEST,
    KIND_AUDIT,
    KIND_AUDIT_HEAD,
    integrity::KIND_AUDIT_ACCEPT,
];

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

/// The plaintext header of a key record; the key value follows it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRecordMeta {
    info: KeyInfo,
}

/// The list of key and user records with their versions, stored (encrypted) with every change
/// in the same transaction, so that a deleted, re-added or rolled-back record is noticed.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    records: BTreeMap<String, u64>,
    /// Set by every commit since rollback anchors exist: a store so marked must have one.
    #[serde(default)]
    anchored: bool,
    #[serde(skip)]
    version: u64,
}

/// One audit entry to append: who, what, on what, how it ended.
struct AuditEvent<'a> {
    actor: &'a str,
    event: &'a str,
    target: Option<&'a str>,
    outcome: &'a str,
}

/// The mutable part of a key object: replaced whole on every change.
#[derive(Clone)]
struct KeyState {
    info: KeyInfo,
    record_version: u64,
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
    material: Material,
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
        material: Material,
        session: Option<Session>,
    ) -> Self {
        KeyObject {
            state: ArcSwap::from_pointee(KeyState {
                info,
                record_version,
            }),
            material,
            session,
            destroyed: AtomicBool::new(false),
            usage: Usage::default(),
        }
    }
}

type ObjectMap = HashMap<KeyHandle, Arc<KeyObject>>;

/// How often a read of a store that another process writes is repeated when that process
/// committed during the read.
const SNAPSHOT_ATTEMPTS: usize = 5;

/// What [`Hsm::open`] reads from the store, verified.
struct Loaded {
    data_key: RecordCipher,
    objects: ObjectMap,
    users: HashMap<String, (UserRecord, u64)>,
    manifest: Manifest,
    head: AuditHead,
    acceptances: Acceptances,
}

/// The versions of the manifest and the audit head: every commit changes one of them, so equal
/// marks before and after a read mean nothing was committed in between.
fn change_marks(store: &dyn Backend) -> Result<(Option<u64>, Option<u64>)> {
    Ok((
        store.get(KIND_MANIFEST, ID_MANIFEST)?.map(|r| r.version),
        store
            .get(KIND_AUDIT_HEAD, ID_AUDIT_HEAD)?
            .map(|r| r.version),
    ))
}

/// A key's state as read lock-free for one operation (no reference-count traffic).
type StateGuard = arc_swap::Guard<Arc<KeyState>>;

/// What [`Hsm::sync_token_objects`] changed, by handle (each list ordered).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenObjectChanges {
    /// Key objects another process created; now usable here.
    pub added: Vec<KeyHandle>,
    /// Key objects whose attributes (or sharing) another process changed.
    pub updated: Vec<KeyHandle>,
    /// Key objects another process destroyed; destroyed here too.
    pub removed: Vec<KeyHandle>,
}

impl TokenObjectChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.updated.is_empty() && self.removed.is_empty()
    }
}

/// The verified changes [`Hsm::sync_token_objects`] applies.
#[derive(Default)]
struct SyncPlan {
    added: Vec<Arc<KeyObject>>,
    updated: Vec<(Arc<KeyObject>, KeyState)>,
    removed: Vec<KeyHandle>,
}

impl SyncPlan {
    fn changes(&self) -> TokenObjectChanges {
        let mut c = TokenObjectChanges {
            added: self
                .added
                .iter()
                .map(|o| o.state.load().info.handle)
                .collect(),
            updated: self.updated.iter().map(|(_, s)| s.info.handle).collect(),
            removed: self.removed.clone(),
        };
        c.added.sort();
        c.updated.sort();
        c.removed.sort();
        c
    }
}

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
    data_key: RecordCipher,
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

fn encode_key_record(info: &KeyInfo, value: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let header = serde_json::to_vec(&KeyRecordMeta { info: info.clone() })
        .map_err(|_| Error::Internal("key record encode"))?;
    let len = u32::try_from(header.len()).map_err(|_| Error::Internal("key record size"))?;
    let mut out = Zeroizing::new(Vec::with_capacity(4 + header.len() + value.len()));
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(value);
    Ok(out)
}

fn decode_key_record(plain: &[u8]) -> Option<(KeyInfo, &[u8])> {
    let len = u32::from_be_bytes(plain.get(..4)?.try_into().ok()?) as usize;
    let header = plain.get(4..4usize.checked_add(len)?)?;
    let meta: KeyRecordMeta = serde_json::from_slice(header).ok()?;
    Some((meta.info, &plain[4 + len..]))
}

fn manifest_key(kind: &str, id: &str) -> String {
    format!("{kind}/{id}")
}

fn tampered(kind: &str, id: &str) -> Error {
    Error::RecordTampered {
        kind: printable(kind),
        id: printable(id),
    }
}

/// The stored value of a key object: secret value, PKCS#8, or SPKI for public keys.
fn stored_value(m: &Material) -> Result<&[u8]> {
    m.wrappable_bytes()
        .or_else(|| m.spki())
        .ok_or(Error::Internal("material without a value"))
}

impl Hsm {
    /// Creates a new HSM in an empty store, sealed by `master_key`: runs the self-tests,
    /// generates a random 256-bit data key (stored under the master key), creates the proxy's
    /// service user and starts the audit chain.
    ///
    /// # Errors
    /// [`Error::SelfTestFailed`], [`Error::Store`] (e.g. the store is not empty).
    pub fn create(store: Box<dyn Backend>, master_key: &MasterKey) -> Result<Self> {
        selftest::run()?;
        let data_key_bytes = MasterKey::generate()?;
        let blob =
            master_key
                .cipher()?
                .seal(KIND_SEAL, ID_DATA_KEY, 1, data_key_bytes.as_bytes())?;
        let data_key = RecordCipher::new(data_key_bytes.as_bytes(), DATA_KEY_VERSION)?;
        let head = AuditHead {
            seq: 0,
            hash: audit::ZERO_HASH.into(),
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
                kind: KIND_SEAL.into(),
                id: ID_DATA_KEY.into(),
                version: 1,
                blob,
            }),
            Write::Insert(seal_json(
                &data_key,
                KIND_AUDIT_HEAD,
                ID_AUDIT_HEAD,
                1,
                &head,
            )?),
            Write::Insert(seal_json(
                &data_key,
                KIND_MANIFEST,
                ID_MANIFEST,
                1,
                &manifest,
            )?),
        ];
        store.write_batch(&writes)?;
        let hsm = Hsm::assemble(
            store,
            data_key,
            HashMap::new(),
            HashMap::new(),
            manifest,
            head,
            false,
        );
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
        )?;
        hsm.audit_append("-", "hsm.create", None, "ok")?;
        Ok(hsm)
    }

    fn assemble(
        store: Box<dyn Backend>,
        data_key: RecordCipher,
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
            data_key,
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
        for _ in 0..SNAPSHOT_ATTEMPTS {
            let before = change_marks(store.as_ref())?;
            let loaded = Self::load(store.as_ref(), master_key, OpenOptions::default());
            if change_marks(store.as_ref())? != before {
                continue;
            }
            let l = loaded?;
            return Ok(Hsm::assemble(
                store, l.data_key, l.objects, l.users, l.manifest, l.head, true,
            ));
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

    /// Reads and verifies everything [`open`](Self::open) needs.
    fn load(store: &dyn Backend, master_key: &MasterKey, options: OpenOptions) -> Result<Loaded> {
        // Before anything else: a writer committing meanwhile makes the store newer than the
        // anchor read here, never older.
        let anchor_blob = store.read_anchor()?;
        let rec = store.get(KIND_SEAL, ID_DATA_KEY)?.ok_or(Error::Sealed {
            reason: "the store has no data key",
        })?;
        let data_key = master_key
            .cipher()?
            .open(KIND_SEAL, ID_DATA_KEY, rec.version, &rec.blob)
            .map_err(|_| Error::Sealed {
                reason: "the master key does not open this store (wrong key, or the data key record was modified)",
            })?;
        let data_key = RecordCipher::new(&data_key, DATA_KEY_VERSION)?;
        for kind in store.kinds()? {
            if !KNOWN_KINDS.contains(&kind.as_str()) {
                return Err(Error::StoreInconsistent {
                    detail: format!("unknown record kind {:?}", printable(&kind)),
                });
            }
        }
        let mut manifest: Manifest = open_json(&data_key, store, KIND_MANIFEST, ID_MANIFEST)?.ok_or_else(|| Error::StoreInconsistent {
            detail: "the manifest record is missing (or this store was made by a development version before it existed)".into(),
        })?;
        manifest.version = store
            .get(KIND_MANIFEST, ID_MANIFEST)?
            .map(|r| r.version)
            .unwrap_or(0);
        let mut head: AuditHead = open_json(&data_key, store, KIND_AUDIT_HEAD, ID_AUDIT_HEAD)?
            .ok_or_else(|| Error::StoreInconsistent {
                detail: "the audit head record is missing".into(),
            })?;
        head.record_version = store
            .get(KIND_AUDIT_HEAD, ID_AUDIT_HEAD)?
            .map(|r| r.version)
            .unwrap_or(0);
        let acceptances =
            integrity::check(store, &data_key, &manifest, &head, anchor_blob, options)?;

        let mut seen = BTreeMap::new();
        let mut objects = HashMap::new();
        for rec in store.list(KIND_KEY)? {
            let obj = load_object(&data_key, &rec)?;
            seen.insert(manifest_key(&rec.kind, &rec.id), rec.version);
            objects.insert(obj.state.load().info.handle, Arc::new(obj));
        }
        let mut users = HashMap::new();
        for rec in store.list(KIND_USER)? {
            let plain = data_key.open(&rec.kind, &rec.id, rec.version, &rec.blob)?;
            let user: UserRecord =
                serde_json::from_slice(&plain).map_err(|_| tampered(&rec.kind, &rec.id))?;
            if user.name != rec.id {
                return Err(tampered(&rec.kind, &rec.id));
            }
            seen.insert(manifest_key(&rec.kind, &rec.id), rec.version);
            users.insert(user.name.clone(), (user, rec.version));
        }
        for (name, version) in &manifest.records {
            match seen.get(name) {
                Some(v) if v == version => {}
                Some(v) => {
                    return Err(Error::StoreInconsistent {
                        detail: format!(
                            "record {} is at version {v}, the manifest says {version}",
                            printable(name)
                        ),
                    })
                }
                None => {
                    return Err(Error::StoreInconsistent {
                        detail: format!("record {} is missing", printable(name)),
                    })
                }
            }
        }
        if let Some(extra) = seen.keys().find(|k| !manifest.records.contains_key(*k)) {
            return Err(Error::StoreInconsistent {
                detail: format!("record {} is not in the manifest", printable(extra)),
            });
        }
        Ok(Loaded {
            data_key,
            objects,
            users,
            manifest,
            head,
            acceptances,
        })
    }

    // ----- token objects another process made -----

    /// Re-reads the token (persistent) key objects from the store, to learn of keys another
    /// process created, changed or destroyed since this HSM was opened: what a node opened by
    /// [`open_read_only`](Self::open_read_only) calls now and then, the way a PKCS#11
    /// application finds objects another session created. On the writer node it finds
    /// nothing new. Session objects and users are not re-read.
    ///
    /// Records are verified as [`open`](Self::open) verifies them: each decrypts under the data
    /// key with its kind, id and version as AAD; the manifest record is re-read and must list
    /// exactly the key records present, at their versions, and must not be older than the one
    /// this HSM knows. A changed record may change attributes only, never the key's class,
    /// type or value. Nothing is applied unless everything verifies. If the other process
    /// commits while the store is read, the read is repeated.
    ///
    /// Not for the signing path: it reads the whole key table and holds the writer lock.
    ///
    /// # Errors
    /// [`Error::RecordTampered`] naming the record that fails authentication;
    /// [`Error::StoreInconsistent`] for a record missing from or not listed in the manifest,
    /// a manifest older than the one known, or a store that changed during every attempt;
    /// [`Error::Store`].
    pub fn sync_token_objects(&self) -> Result<TokenObjectChanges> {
        let mut manifest = lock(&self.writer);
        for _ in 0..SNAPSHOT_ATTEMPTS {
            let Some(manifest_rec) = self.store.get(KIND_MANIFEST, ID_MANIFEST)? else {
                return Err(Error::StoreInconsistent {
                    detail: "the manifest record is missing".into(),
                });
            };
            let records = self.store.list(KIND_KEY)?;
            let after = self
                .store
                .get(KIND_MANIFEST, ID_MANIFEST)?
                .map(|r| r.version);
            if after != Some(manifest_rec.version) {
                continue;
            }
            let plain = self.data_key.open(
                KIND_MANIFEST,
                ID_MANIFEST,
                manifest_rec.version,
                &manifest_rec.blob,
            )?;
            let mut next: Manifest =
                serde_json::from_slice(&plain).map_err(|_| tampered(KIND_MANIFEST, ID_MANIFEST))?;
            next.version = manifest_rec.version;
            if next.version < manifest.version {
                return Err(Error::StoreInconsistent {
                    detail: format!(
                        "the manifest went back from version {} to {} (a rolled-back or restored store)",
                        manifest.version, next.version
                    ),
                });
            }
            let plan = self.plan_sync(&next, &records)?;
            let changes = plan.changes();
            if !changes.is_empty() {
                let mut map: ObjectMap = (**self.objects.load()).clone();
                for (obj, state) in plan.updated {
                    obj.state.store(Arc::new(state));
                }
                for obj in plan.added {
                    let h = obj.state.load().info.handle;
                    map.insert(h, obj);
                }
                for h in &plan.removed {
                    if let Some(o) = map.remove(h) {
                        o.destroyed.store(true, Ordering::Release);
                    }
                }
                self.objects.store(Arc::new(map));
            }
            *manifest = next;
            return Ok(changes);
        }
        Err(Error::StoreInconsistent {
            detail: format!(
                "the store changed while it was read, {SNAPSHOT_ATTEMPTS} times in a row"
            ),
        })
    }

    /// Verifies `records` (every key record) against `manifest` and works out what changes;
    /// applies nothing.
    fn plan_sync(&self, manifest: &Manifest, records: &[Record]) -> Result<SyncPlan> {
        let key_prefix = manifest_key(KIND_KEY, "");
        for rec in records {
            let name = manifest_key(&rec.kind, &rec.id);
            match manifest.records.get(&name) {
                Some(v) if *v == rec.version => {}
                Some(v) => {
                    return Err(Error::StoreInconsistent {
                        detail: format!(
                            "record {} is at version {}, the manifest says {v}",
                            printable(&name),
                            rec.version
                        ),
                    })
                }
                None => {
                    return Err(Error::StoreInconsistent {
                        detail: format!("record {} is not in the manifest", printable(&name)),
                    })
                }
            }
        }
        let present: std::collections::HashSet<&str> =
            records.iter().map(|r| r.id.as_str()).collect();
        if let Some(missing) = manifest
            .records
            .keys()
            .filter_map(|k| k.strip_prefix(&key_prefix))
            .find(|id| !present.contains(id))
        {
            return Err(Error::StoreInconsistent {
                detail: format!(
                    "record {} is missing",
                    printable(&manifest_key(KIND_KEY, missing))
                ),
            });
        }
        let current = self.objects.load();
        let mut plan = SyncPlan::default();
        let mut in_store = std::collections::HashSet::new();
        for rec in records {
            let handle: KeyHandle = rec.id.parse().map_err(|_| tampered(&rec.kind, &rec.id))?;
            in_store.insert(handle);
            match current.get(&handle) {
                Some(o) if o.session.is_some() => {
                    return Err(Error::StoreInconsistent {
                        detail: format!(
                            "record {} has the handle of a session object of this node",
                            printable(&manifest_key(&rec.kind, &rec.id))
                        ),
                    })
                }
                Some(o) => {
                    let old = o.state.load_full();
                    if old.record_version == rec.version {
                        continue;
                    }
                    let loaded = load_object(&self.data_key, rec)?;
                    let info = loaded.state.load().info.clone();
                    if info.class != old.info.class
                        || info.spec != old.info.spec
                        || info.attributes.check_value != old.info.attributes.check_value
                    {
                        return Err(tampered(&rec.kind, &rec.id));
                    }
                    plan.updated.push((
                        o.clone(),
                        KeyState {
                            info,
                            record_version: rec.version,
                        },
                    ));
                }
                None => plan.added.push(Arc::new(load_object(&self.data_key, rec)?)),
            }
        }
        plan.removed = current
            .iter()
            .filter(|(h, o)| o.session.is_none() && !in_store.contains(*h))
            .map(|(h, _)| *h)
            .collect();
        Ok(plan)
    }

    // ----- store writes -----

    /// Writes `writes` plus the updated manifest in one transaction. `changes` lists
    /// `(kind, id, new version or None for deleted)`.
    fn commit(
        &self,
        manifest: &mut Manifest,
        writes: Vec<Write>,
        changes: &[(&str, &str, Option<u64>)],
    ) -> Result<()> {
        self.commit_audited(manifest, writes, changes, None)
    }

    /// Writes `writes`, the updated manifest and, with `audit`, its audit entry in one
    /// transaction (so the change and its record cannot part, and every such change costs the
    /// same one commit). `changes` lists `(kind, id, new version or None for deleted)`.
    /// Lock order: the caller holds the writer lock (`manifest`); the audit head's is taken
    /// here.
    fn commit_audited(
        &self,
        manifest: &mut Manifest,
        mut writes: Vec<Write>,
        changes: &[(&str, &str, Option<u64>)],
        audit: Option<AuditEvent<'_>>,
    ) -> Result<()> {
        self.check_writable("write the store")?;
        if !manifest.anchored {
            // A store from before rollback anchors: anchor it before marking it anchored.
            self.advance_anchor(|_| {})?;
        }
        let mut next = manifest.clone();
        next.anchored = true;
        for (kind, id, version) in changes {
            match version {
                Some(v) => next.records.insert(manifest_key(kind, id), *v),
                None => next.records.remove(&manifest_key(kind, id)),
            };
        }
        next.version = manifest.version + 1;
        writes.push(Write::Update(seal_json(
            &self.data_key,
            KIND_MANIFEST,
            ID_MANIFEST,
            next.version,
            &next,
        )?));
        let mut head = audit.as_ref().map(|_| lock(&self.audit));
        let next_head = match (&audit, head.as_deref()) {
            (Some(event), Some(current)) => {
                let (audit_writes, h) = self.audit_writes(current, event)?;
                writes.extend(audit_writes);
                Some(h)
            }
            _ => None,
        };
        self.store.write_batch(&writes)?;
        let version = next.version;
        *manifest = next;
        let audited = match (head.as_deref_mut(), next_head) {
            (Some(current), Some(h)) => {
                *current = h;
                Some((current.seq, current.hash.clone()))
            }
            _ => None,
        };
        self.advance_anchor(|a| {
            a.manifest_version = version;
            if let Some((seq, hash)) = audited {
                a.audit_seq = seq;
                a.audit_hash = hash;
            }
        })
    }

    /// The writes that append `event` after `head`, and the head they make.
    fn audit_writes(
        &self,
        head: &AuditHead,
        event: &AuditEvent<'_>,
    ) -> Result<(Vec<Write>, AuditHead)> {
        let entry = AuditEntry {
            seq: head.seq + 1,
            time_unix_ms: audit::now_unix_ms(),
            actor: event.actor.into(),
            event: event.event.into(),
            target: event.target.map(Into::into),
            outcome: event.outcome.into(),
            prev_hash: head.hash.clone(),
        };
        let next = AuditHead {
            seq: entry.seq,
            hash: audit::chain_hash(&entry),
            record_version: head.record_version + 1,
        };
        let writes = vec![
            Write::Insert(seal_json(
                &self.data_key,
                KIND_AUDIT,
                &audit::record_id(entry.seq),
                1,
                &entry,
            )?),
            Write::Update(seal_json(
                &self.data_key,
                KIND_AUDIT_HEAD,
                ID_AUDIT_HEAD,
                next.record_version,
                &next,
            )?),
        ];
        Ok((writes, next))
    }

    fn audit_append(
        &self,
        actor: &str,
        event: &str,
        target: Option<&str>,
        outcome: &str,
    ) -> Result<()> {
        self.check_writable("write an audit record")?;
        let mut head = lock(&self.audit);
        let (writes, next) = self.audit_writes(
            &head,
            &AuditEvent {
                actor,
                event,
                target,
                outcome,
            },
        )?;
        self.store.write_batch(&writes)?;
        let (seq, hash) = (next.seq, next.hash.clone());
        *head = next;
        self.advance_anchor(|a| {
            a.audit_seq = seq;
            a.audit_hash = hash;
        })
    }

    fn audit_result<T>(
        &self,
        actor: &str,
        event: &str,
        target: Option<&str>,
        res: &Result<T>,
    ) -> Result<()> {
        let outcome = match res {
            Ok(_) => "ok",
            Err(Error::PermissionDenied { .. } | Error::AttributeViolation { .. }) => "denied",
            Err(_) => "failed",
        };
        self.audit_append(actor, event, target, outcome)
    }

    /// Records that this node unsealed the HSM and started serving (the caller decides when:
    /// opening the store itself writes nothing).
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn record_unseal(&self, node: &str) -> Result<()> {
        self.audit_append(node, "unseal", None, "ok")
    }

    /// Records that this node stops serving and drops its unsealed keys.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn record_seal(&self, node: &str) -> Result<()> {
        self.audit_append(node, "seal", None, "ok")
    }

    /// Audit entries `from` (sequence number, from 1) on, at most `limit` (admin only).
    ///
    /// # Errors
    /// [`Error::PermissionDenied`]; [`Error::RecordTampered`] for an entry that does not open.
    pub fn audit_entries(
        &self,
        admin: &Session,
        from: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        admin.require(Role::Admin)?;
        let mut out = Vec::new();
        let last = lock(&self.audit).seq;
        let mut seq = from.max(1);
        while seq <= last && out.len() < limit {
            let id = audit::record_id(seq);
            let entry: AuditEntry =
                open_json(&self.data_key, self.store.as_ref(), KIND_AUDIT, &id)?.ok_or_else(
                    || Error::StoreInconsistent {
                        detail: format!("audit entry {seq} is missing"),
                    },
                )?;
            out.push(entry);
            seq += 1;
        }
        Ok(out)
    }

    /// Checks the whole audit chain (admin only).
    ///
    /// # Errors
    /// [`Error::PermissionDenied`]; [`Error::Store`]. Problems in the chain are reported in
    /// the [`AuditReport`], not as errors.
    pub fn verify_audit(&self, admin: &Session) -> Result<AuditReport> {
        admin.require(Role::Admin)?;
        let head: Option<AuditHead> = open_json(
            &self.data_key,
            self.store.as_ref(),
            KIND_AUDIT_HEAD,
            ID_AUDIT_HEAD,
        )
        .unwrap_or_default();
        let Some(head) = head else {
            return Ok(AuditReport {
                entries: 0,
                intact: false,
                problem: Some("the audit head record is missing or does not open".into()),
            });
        };
        // The whole truth: damage an operator accepted at start-up is reported here too.
        let records = self.store.list(KIND_AUDIT)?;
        Ok(audit::verify_chain(&self.data_key, &records, &head, &[]))
    }

    // ----- keys: creation -----

    fn new_handle(&self, taken: &ObjectMap) -> Result<KeyHandle> {
        // Handles are random so that nodes sharing a store do not collide.
        loop {
            let mut b = [0u8; 8];
            aws_lc_rs::rand::fill(&mut b).map_err(|_| Error::Crypto {
                operation: "random",
            })?;
            // 53 bits, so handles survive JSON numbers in any client; never 0.
            let h = KeyHandle(u64::from_be_bytes(b) & ((1 << 53) - 1));
            if h.0 != 0 && !taken.contains_key(&h) {
                return Ok(h);
            }
        }
    }

    /// Checks a label for a key `session` creates or relabels: labels with a reserved prefix
    /// ([`RESERVED_LABEL_PREFIXES`]) are for service users only, and the session's user must not
    /// own another key of `class` with this label (labels are unique per owner and class, as
    /// CloudHSM keys are found by owner and label; two users may each own a key `data`).
    fn check_new_label(&self, session: &Session, label: &str, class: KeyClass) -> Result<()> {
        // Case and leading spaces do not make another name (`KEYWARD-x`, ` keyward-x`).
        let folded = label.trim_start().to_ascii_lowercase();
        if RESERVED_LABEL_PREFIXES
            .iter()
            .any(|p| folded.starts_with(p))
            && !self.is_service_user(session.user())
        {
            return Err(Error::PermissionDenied {
                reason: "labels starting with keyward- or tls-ticket-key- are reserved for Keyward's own service keys",
            });
        }
        if self.objects.load().values().any(|o| {
            !o.destroyed.load(Ordering::Acquire) && {
                let s = o.state.load();
                s.info.class == class
                    && s.info.owner == session.user()
                    && s.info.attributes.label == label
            }
        }) {
            return Err(Error::LabelExists {
                label: label.to_owned(),
                class: class.as_str(),
            });
        }
        Ok(())
    }

    fn is_service_user(&self, name: &str) -> bool {
        lock(&self.users)
            .get(name)
            .is_some_and(|(u, _)| u.password_hash.is_none())
    }

    /// Adds new objects: stores the token ones (with the manifest) and publishes all of them.
    fn add_objects(
        &self,
        session: &Session,
        new: Vec<(KeyInfo, Material)>,
    ) -> Result<Vec<KeyInfo>> {
        // Session objects would not be written, but their creation could not be audited.
        self.check_writable("create a key")?;
        let mut manifest = lock(&self.writer);
        // Re-checked under the writer lock: the session may have ended, its user been deleted,
        // or another call may have taken a label while this key was being generated.
        session.check()?;
        if !lock(&self.users).contains_key(session.user()) {
            return Err(Error::SessionInvalid);
        }
        for (info, _) in &new {
            self.check_new_label(session, &info.attributes.label, info.class)?;
        }
        let mut map: ObjectMap = (**self.objects.load()).clone();
        let mut infos = Vec::new();
        let mut handles: Vec<KeyHandle> = Vec::new();
        while handles.len() < new.len() {
            let h = self.new_handle(&map)?;
            if !handles.contains(&h) {
                handles.push(h);
            }
        }
        let mut writes = Vec::new();
        let mut changes: Vec<(String, Option<u64>)> = Vec::new();
        let mut objects = Vec::new();
        for (i, (mut info, material)) in new.into_iter().enumerate() {
            info.handle = handles[i];
            // Link pairs created together: the second of two objects links the first.
            if let Some(link) = info.linked_handle {
                info.linked_handle = Some(handles[link.0 as usize]);
            }
            info.attributes.check_value = material.check_value()?;
            let owner_session = if info.attributes.token {
                None
            } else {
                Some(session.clone())
            };
            if info.attributes.token {
                let id = info.handle.to_string();
                let plain = encode_key_record(&info, stored_value(&material)?)?;
                let blob = self.data_key.seal(KIND_KEY, &id, 1, &plain)?;
                writes.push(Write::Insert(Record {
                    kind: KIND_KEY.into(),
                    id: id.clone(),
                    version: 1,
                    blob,
                }));
                changes.push((id, Some(1)));
            }
            infos.push(info.clone());
            objects.push(Arc::new(KeyObject::new(info, 1, material, owner_session)));
        }
        if !writes.is_empty() {
            let changes: Vec<(&str, &str, Option<u64>)> = changes
                .iter()
                .map(|(id, v)| (KIND_KEY, id.as_str(), *v))
                .collect();
            self.commit(&mut manifest, writes, &changes)?;
        }
        for o in objects {
            let h = o.state.load().info.handle;
            map.insert(h, o);
        }
        self.objects.store(Arc::new(map));
        Ok(infos)
    }

    fn new_info(
        &self,
        session: &Session,
        class: KeyClass,
        spec: KeySpec,
        attributes: Attributes,
        linked: Option<KeyHandle>,
    ) -> KeyInfo {
        KeyInfo {
            handle: KeyHandle(0),
            linked_handle: linked,
            class,
            spec,
            owner: session.user().to_owned(),
            shared_with: Vec::new(),
            attributes,
        }
    }

    /// Generates a key pair inside the HSM (crypto-users only): a private and a public key
    /// object with linked handles. Returns `(private, public)`.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`], [`Error::InvalidInput`] (bad template, label taken,
    /// symmetric spec), [`Error::Crypto`], [`Error::Store`].
    pub fn generate_key_pair(
        &self,
        session: &Session,
        spec: KeySpec,
        private: &KeyTemplate,
        public: &KeyTemplate,
    ) -> Result<(KeyInfo, KeyInfo)> {
        let res = (|| {
            session.require(Role::CryptoUser)?;
            if spec.is_secret() {
                return Err(Error::invalid(format!(
                    "{spec} is a symmetric key type; generate a secret key"
                )));
            }
            let pa = private.build(KeyClass::Private)?;
            let pu = public.build(KeyClass::Public)?;
            pa.check_separation(Some(&pu))?;
            self.check_new_label(session, &pa.label, KeyClass::Private)?;
            self.check_new_label(session, &pu.label, KeyClass::Public)?;
            let material = Material::generate(spec)?;
            let public_material = material
                .public_half()
                .ok_or(Error::Internal("pair without public half"))?;
            let pi = self.new_info(session, KeyClass::Private, spec, pa, Some(KeyHandle(1)));
            let ui = self.new_info(session, KeyClass::Public, spec, pu, Some(KeyHandle(0)));
            let infos = self.add_objects(session, vec![(pi, material), (ui, public_material)])?;
            Ok((infos[0].clone(), infos[1].clone()))
        })();
        let target = res.as_ref().ok().map(|(p, _)| p.handle.to_string());
        self.audit_result(session.user(), "key.generate", target.as_deref(), &res)?;
        res
    }

    /// Generates a secret key (AES or generic secret) inside the HSM (crypto-users only).
    ///
    /// # Errors
    /// As [`generate_key_pair`](Self::generate_key_pair).
    pub fn generate_secret_key(
        &self,
        session: &Session,
        spec: KeySpec,
        template: &KeyTemplate,
    ) -> Result<KeyInfo> {
        let res = (|| {
            session.require(Role::CryptoUser)?;
            if !spec.is_secret() {
                return Err(Error::invalid(format!(
                    "{spec} is an asymmetric key type; generate a key pair"
                )));
            }
            spec.check()?;
            let a = template.build(KeyClass::Secret)?;
            a.check_separation(None)?;
            self.check_new_label(session, &a.label, KeyClass::Secret)?;
            let material = Material::generate(spec)?;
            let info = self.new_info(session, KeyClass::Secret, spec, a, None);
            Ok(self.add_objects(session, vec![(info, material)])?.remove(0))
        })();
        let target = res.as_ref().ok().map(|k| k.handle.to_string());
        self.audit_result(session.user(), "key.generate", target.as_deref(), &res)?;
        res
    }

    /// Imports a public key from SubjectPublicKeyInfo (RFC 5280 §4.1.2.7), DER or PEM
    /// (`-----BEGIN PUBLIC KEY-----`, RFC 7468 §13) (crypto-users only). Secret and private
    /// keys enter only by [`unwrap_key`](Self::unwrap_key).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for bytes that are not a supported SPKI; as above.
    pub fn import_public_key(
        &self,
        session: &Session,
        spki_der: &[u8],
        template: &KeyTemplate,
    ) -> Result<KeyInfo> {
        let res = (|| {
            session.require(Role::CryptoUser)?;
            let der = if spki_der.starts_with(b"-----BEGIN") {
                let block = pem::parse(spki_der).map_err(|_| Error::invalid("not a PEM block"))?;
                if block.tag() != "PUBLIC KEY" {
                    return Err(Error::invalid(
                        "expected a PEM \"PUBLIC KEY\" block (SubjectPublicKeyInfo)",
                    ));
                }
                block.into_contents()
            } else {
                spki_der.to_vec()
            };
            let material = Material::from_spki(&der)?;
            let mut a = template.build(KeyClass::Public)?;
            a.local = false;
            self.check_new_label(session, &a.label, KeyClass::Public)?;
            let info = self.new_info(session, KeyClass::Public, material.spec(), a, None);
            Ok(self.add_objects(session, vec![(info, material)])?.remove(0))
        })();
        let target = res.as_ref().ok().map(|k| k.handle.to_string());
        self.audit_result(session.user(), "key.import", target.as_deref(), &res)?;
        res
    }

    // ----- keys: lookup and policy -----

    fn object(&self, handle: KeyHandle) -> Result<Arc<KeyObject>> {
        match self.objects.load().get(&handle) {
            Some(o) if !o.destroyed.load(Ordering::Acquire) => Ok(o.clone()),
            _ => Err(Error::KeyNotFound { handle }),
        }
    }

    /// `info` as `session` may see it: a user a key is shared with sees itself in
    /// `shared_with`, not the other users (their names and access are the owner's business).
    fn as_seen_by(session: &Session, mut info: KeyInfo) -> KeyInfo {
        if session.role() != Role::Admin && info.owner != session.user() {
            info.shared_with.retain(|u| u == session.user());
        }
        info
    }

    /// A key the session may see: its own or shared with it; admins see all. Other users'
    /// keys, public keys included, are not visible (their labels and owners are other
    /// tenants' metadata): looking one up answers [`Error::KeyNotFound`], as for a handle that
    /// does not exist.
    fn visible(session: &Session, info: &KeyInfo) -> bool {
        session.role() == Role::Admin || Self::may_use(session, info)
    }

    fn may_use(session: &Session, info: &KeyInfo) -> bool {
        info.owner == session.user() || info.shared_with.iter().any(|u| u == session.user())
    }

    /// Looks up a key the session may use: crypto-users, owner or shared user. A key the
    /// session may not use answers [`Error::KeyNotFound`], exactly as a missing handle does,
    /// so handles cannot be probed for existence.
    fn usable(&self, session: &Session, handle: KeyHandle) -> Result<(Arc<KeyObject>, StateGuard)> {
        session.require(Role::CryptoUser)?;
        let obj = self.object(handle)?;
        let state = obj.state.load();
        if !obj.in_scope(session) || !Self::may_use(session, &state.info) {
            return Err(Error::KeyNotFound { handle });
        }
        Ok((obj, state))
    }

    /// Looks up a key the session owns (management: export, wrap target, destroy, share,
    /// attributes).
    fn owned(&self, session: &Session, handle: KeyHandle) -> Result<(Arc<KeyObject>, StateGuard)> {
        let (obj, state) = self.usable(session, handle)?;
        if state.info.owner != session.user() {
            // A shared user sees the key, so refusing it tells nothing new.
            return Err(Error::PermissionDenied {
                reason: "only the key's owner may manage it",
            });
        }
        Ok((obj, state))
    }

    fn need(
        attr_on: bool,
        handle: KeyHandle,
        operation: &'static str,
        attribute: &'static str,
    ) -> Result<()> {
        if attr_on {
            Ok(())
        } else {
            Err(Error::AttributeViolation {
                handle,
                operation,
                attribute,
            })
        }
    }

    fn mechanism_invalid(state: &KeyState, mechanism: &'static str) -> Error {
        Error::MechanismInvalid {
            handle: state.info.handle,
            mechanism,
            key_type: state.info.spec.as_str(),
        }
    }

    fn check_len(data: &[u8]) -> Result<()> {
        if data.len() > MAX_DATA_BYTES {
            return Err(Error::invalid(format!(
                "input is larger than {MAX_DATA_BYTES} bytes"
            )));
        }
        Ok(())
    }

    /// Every key the session may see that matches `filter`, ordered by handle, `limit` (1 to
    /// [`MAX_PAGE_SIZE`]) at a time, starting after handle `after`.
    ///
    /// # Errors
    /// [`Error::SessionInvalid`]; [`Error::InvalidInput`] for a bad limit.
    pub fn list_keys(
        &self,
        session: &Session,
        filter: &KeyFilter,
        after: Option<KeyHandle>,
        limit: usize,
    ) -> Result<KeyPage> {
        session.check()?;
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(Error::invalid(format!(
                "a page holds 1 to {MAX_PAGE_SIZE} keys"
            )));
        }
        let mut all: Vec<KeyInfo> = self
            .objects
            .load()
            .values()
            .filter(|o| !o.destroyed.load(Ordering::Acquire) && o.in_scope(session))
            .map(|o| o.state.load().info.clone())
            .filter(|k| Self::visible(session, k))
            .map(|k| Self::as_seen_by(session, k))
            .filter(|k| {
                filter
                    .label
                    .as_ref()
                    .is_none_or(|l| &k.attributes.label == l)
            })
            .filter(|k| filter.class.is_none_or(|c| k.class == c))
            .filter(|k| filter.owner.as_ref().is_none_or(|o| &k.owner == o))
            .filter(|k| {
                filter
                    .key_type
                    .as_ref()
                    .is_none_or(|t| k.spec.key_type() == t)
            })
            .filter(|k| {
                filter
                    .attributes
                    .iter()
                    .all(|(n, v)| k.attributes.get_bool(*n) == Some(*v))
            })
            .filter(|k| after.is_none_or(|a| k.handle > a))
            .collect();
        all.sort_by_key(|k| k.handle);
        let next = if all.len() > limit {
            Some(all[limit - 1].handle)
        } else {
            None
        };
        all.truncate(limit);
        Ok(KeyPage { keys: all, next })
    }

    /// One key's description, if the session may see it.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] (also for keys the session may not see), [`Error::SessionInvalid`].
    pub fn key_info(&self, session: &Session, handle: KeyHandle) -> Result<KeyInfo> {
        session.check()?;
        let obj = self.object(handle)?;
        let info = obj.state.load().info.clone();
        if !obj.in_scope(session) || !Self::visible(session, &info) {
            return Err(Error::KeyNotFound { handle });
        }
        Ok(Self::as_seen_by(session, info))
    }

    /// The key of `class` labelled `label` that the session's user owns; if it owns none, the
    /// one such key shared with it. Labels are unique per owner, so a user's own key always
    /// wins over keys others share with it, and a key another user labels alike cannot take
    /// its place.
    ///
    /// # Errors
    /// [`Error::LabelNotFound`]; [`Error::LabelAmbiguous`] when the user owns none and several
    /// users share a key so labelled with it.
    pub fn find_by_label(
        &self,
        session: &Session,
        label: &str,
        class: KeyClass,
    ) -> Result<KeyInfo> {
        let mut page = self.list_keys(
            session,
            &KeyFilter {
                label: Some(label.into()),
                class: Some(class),
                ..KeyFilter::default()
            },
            None,
            MAX_PAGE_SIZE,
        )?;
        if let Some(own) = page.keys.iter().position(|k| k.owner == session.user()) {
            return Ok(page.keys.swap_remove(own));
        }
        match page.keys.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(Error::LabelNotFound {
                label: label.into(),
            }),
            many => Err(Error::LabelAmbiguous {
                label: label.into(),
                count: many.len(),
            }),
        }
    }

    /// The public key of a visible private or public key, as SubjectPublicKeyInfo DER
    /// (RFC 5280 §4.1.2.7).
    ///
    /// # Errors
    /// [`Error::KeyNotFound`]; [`Error::MechanismInvalid`] for a secret key.
    pub fn public_key_spki(&self, session: &Session, handle: KeyHandle) -> Result<Vec<u8>> {
        self.key_info(session, handle)?;
        let obj = self.object(handle)?;
        obj.material
            .spki()
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Self::mechanism_invalid(&obj.state.load(), "public key export"))
    }

    /// Operation counts of a key the session may use.
    ///
    /// # Errors
    /// As [`key_info`](Self::key_info).
    pub fn key_usage(&self, session: &Session, handle: KeyHandle) -> Result<KeyUsage> {
        self.key_info(session, handle)?;
        let u = &self.object(handle)?.usage;
        Ok(KeyUsage {
            sign: u.sign.load(Ordering::Relaxed),
            verify: u.verify.load(Ordering::Relaxed),
            encrypt: u.encrypt.load(Ordering::Relaxed),
            decrypt: u.decrypt.load(Ordering::Relaxed),
        })
    }

    // ----- keys: cryptography -----

    /// Signs (or MACs) with a key the session may use; the key needs `sign`.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::PermissionDenied`], [`Error::AttributeViolation`],
    /// [`Error::MechanismInvalid`], [`Error::InvalidInput`] (digest length, size).
    pub fn sign(
        &self,
        session: &Session,
        handle: KeyHandle,
        mechanism: SignMechanism,
        input: SignInput<'_>,
        encoding: SignatureEncoding,
    ) -> Result<Vec<u8>> {
        let (obj, state) = self.usable(session, handle)?;
        sign_checked(&obj, &state, mechanism, input, encoding)
    }

    /// Verifies a signature or MAC; `Ok(false)` when it does not verify. The key needs
    /// `verify`.
    ///
    /// # Errors
    /// As [`sign`](Self::sign).
    pub fn verify(
        &self,
        session: &Session,
        handle: KeyHandle,
        mechanism: SignMechanism,
        input: SignInput<'_>,
        signature: &[u8],
        encoding: SignatureEncoding,
    ) -> Result<bool> {
        let (obj, state) = self.usable(session, handle)?;
        Self::need(state.info.attributes.verify, handle, "verify", "verify")?;
        if !obj.material.can_verify(mechanism, encoding) {
            return Err(Self::mechanism_invalid(&state, mechanism.as_str()));
        }
        match input {
            SignInput::Message(m) | SignInput::Digest(m) => Self::check_len(m)?,
        }
        let ok = obj.material.verify(mechanism, input, signature, encoding)?;
        obj.usage.verify.fetch_add(1, Ordering::Relaxed);
        Ok(ok)
    }

    /// Encrypts with a key the session may use; the key needs `encrypt`. Output layout per
    /// [`EncryptMechanism`].
    ///
    /// # Errors
    /// As [`sign`](Self::sign).
    pub fn encrypt(
        &self,
        session: &Session,
        handle: KeyHandle,
        mechanism: EncryptMechanism,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>> {
        let (obj, state) = self.usable(session, handle)?;
        Self::need(state.info.attributes.encrypt, handle, "encrypt", "encrypt")?;
        if !obj.material.can_encrypt(mechanism, false) {
            return Err(Self::mechanism_invalid(&state, mechanism.as_str()));
        }
        Self::check_len(plaintext)?;
        let out = obj.material.encrypt(mechanism, plaintext, aad)?;
        obj.usage.encrypt.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    /// Decrypts with a key the session may use; the key needs `decrypt`.
    ///
    /// # Errors
    /// As [`sign`](Self::sign); a failed authentication or padding check is
    /// [`Error::InvalidInput`] "decryption failed".
    pub fn decrypt(
        &self,
        session: &Session,
        handle: KeyHandle,
        mechanism: EncryptMechanism,
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let (obj, state) = self.usable(session, handle)?;
        Self::need(state.info.attributes.decrypt, handle, "decrypt", "decrypt")?;
        if !obj.material.can_encrypt(mechanism, true) {
            return Err(Self::mechanism_invalid(&state, mechanism.as_str()));
        }
        Self::check_len(ciphertext)?;
        let out = obj.material.decrypt(mechanism, ciphertext, aad)?;
        obj.usage.decrypt.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    /// `len` random bytes from the HSM's DRBG (aws-lc-rs, NIST SP 800-90A CTR-DRBG), 1 to
    /// [`MAX_RANDOM_BYTES`]. Any logged-in user.
    ///
    /// # Errors
    /// [`Error::SessionInvalid`], [`Error::InvalidInput`].
    pub fn random(&self, session: &Session, len: usize) -> Result<Vec<u8>> {
        session.check()?;
        if !(1..=MAX_RANDOM_BYTES).contains(&len) {
            return Err(Error::invalid(format!(
                "random output is 1 to {MAX_RANDOM_BYTES} bytes"
            )));
        }
        let mut v = vec![0u8; len];
        aws_lc_rs::rand::fill(&mut v).map_err(|_| Error::Crypto {
            operation: "random",
        })?;
        Ok(v)
    }

    /// Wraps (exports) `target` under `wrapping_key`. The session must own `target`, which
    /// must be `extractable` (and, with `wrap_with_trusted`, the wrapping key `trusted`); the
    /// wrapping key needs `wrap` and may be owned or shared. Private keys are wrapped as PKCS#8.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`], [`Error::AttributeViolation`], [`Error::MechanismInvalid`].
    pub fn wrap_key(
        &self,
        session: &Session,
        wrapping_key: KeyHandle,
        mechanism: WrapMechanism,
        target: KeyHandle,
    ) -> Result<Vec<u8>> {
        let res = (|| {
            let (wobj, wstate) = self.usable(session, wrapping_key)?;
            let (tobj, tstate) = self.owned(session, target)?;
            Self::need(wstate.info.attributes.wrap, wrapping_key, "wrap", "wrap")?;
            Self::need(
                tstate.info.attributes.extractable,
                target,
                "wrap (export)",
                "extractable",
            )?;
            if tstate.info.attributes.wrap_with_trusted {
                Self::need(
                    wstate.info.attributes.trusted,
                    wrapping_key,
                    "wrap a wrap_with_trusted key",
                    "trusted",
                )?;
            }
            if !wobj.material.can_wrap(mechanism, false) {
                return Err(Self::mechanism_invalid(&wstate, mechanism.as_str()));
            }
            let bytes = tobj
                .material
                .wrappable_bytes()
                .ok_or_else(|| Error::invalid("public keys are exported as SPKI, not wrapped"))?;
            let out = wobj.material.wrap(mechanism, bytes)?;
            wobj.usage.encrypt.fetch_add(1, Ordering::Relaxed);
            Ok(out)
        })();
        self.audit_result(session.user(), "key.wrap", Some(&target.to_string()), &res)?;
        res
    }

    /// Unwraps (imports) a key wrapped under `unwrapping_key` (owned or shared, with `unwrap`)
    /// as a new key object owned by the session. The new key is not `local`; its other
    /// attributes come from `template`.
    ///
    /// # Errors
    /// As [`wrap_key`](Self::wrap_key); [`Error::InvalidInput`] "unwrap failed" when the bytes
    /// do not authenticate or do not hold a key of the asked type.
    pub fn unwrap_key(
        &self,
        session: &Session,
        unwrapping_key: KeyHandle,
        mechanism: WrapMechanism,
        wrapped: &[u8],
        target: UnwrapTarget,
        template: &KeyTemplate,
    ) -> Result<KeyInfo> {
        let res = (|| {
            let (uobj, ustate) = self.usable(session, unwrapping_key)?;
            Self::need(
                ustate.info.attributes.unwrap,
                unwrapping_key,
                "unwrap",
                "unwrap",
            )?;
            if !uobj.material.can_wrap(mechanism, true) {
                return Err(Self::mechanism_invalid(&ustate, mechanism.as_str()));
            }
            Self::check_len(wrapped)?;
            if let UnwrapTarget::Secret(spec) = target {
                spec.check()?;
                if !spec.is_secret() {
                    return Err(Error::invalid(
                        "UnwrapTarget::Secret takes a symmetric key type",
                    ));
                }
            }
            let value = uobj.material.unwrap(mechanism, wrapped)?;
            uobj.usage.decrypt.fetch_add(1, Ordering::Relaxed);
            // One message for every mismatch: the error says nothing about the unwrapped bytes,
            // except the name of a key type the HSM does not take (never key bytes).
            let unfit = || {
                Error::invalid("unwrap failed: the unwrapped bytes are not a key of the asked type")
            };
            let (class, material) = match target {
                UnwrapTarget::Secret(spec) => (
                    KeyClass::Secret,
                    Material::secret(spec, value).map_err(|_| unfit())?,
                ),
                UnwrapTarget::Private => (
                    KeyClass::Private,
                    Material::from_pkcs8(None, value).map_err(|e| match e {
                        Error::UnsupportedKeyType { .. } => e,
                        _ => unfit(),
                    })?,
                ),
            };
            let mut a = template.build(class)?;
            a.check_separation(None)?;
            a.local = false;
            a.always_sensitive = false;
            a.never_extractable = false;
            // A key that comes through a trusted (or trusted-only) unwrapping key keeps the
            // restriction: it may again be wrapped only by trusted keys. This is what keeps a
            // wrap_with_trusted key from losing the attribute in a wrap/unwrap round trip.
            if ustate.info.attributes.trusted || ustate.info.attributes.wrap_with_trusted {
                a.wrap_with_trusted = true;
            }
            self.check_new_label(session, &a.label, class)?;
            let info = self.new_info(session, class, material.spec(), a, None);
            Ok(self.add_objects(session, vec![(info, material)])?.remove(0))
        })();
        let target = res.as_ref().ok().map(|k| k.handle.to_string());
        self.audit_result(session.user(), "key.unwrap", target.as_deref(), &res)?;
        res
    }

    /// Derives a secret key by ECDH (SEC 1 §3.3.1) between `base_key` (an EC P-256/384/521
    /// private key with `derive`) and `params.peer_public`, then HKDF-SHA256 (RFC 5869) with
    /// `params.salt` and `params.info`, into a new key of `spec` (AES or generic secret) owned
    /// by the session.
    ///
    /// # Errors
    /// As [`sign`](Self::sign); [`Error::InvalidInput`] for a peer key not on the curve.
    pub fn derive_key(
        &self,
        session: &Session,
        base_key: KeyHandle,
        params: &EcdhParams<'_>,
        spec: KeySpec,
        template: &KeyTemplate,
    ) -> Result<KeyInfo> {
        let res = (|| {
            let (bobj, bstate) = self.usable(session, base_key)?;
            Self::need(bstate.info.attributes.derive, base_key, "derive", "derive")?;
            if bstate.info.spec.key_type() != "ec" || bstate.info.class != KeyClass::Private {
                return Err(Self::mechanism_invalid(&bstate, "ecdh"));
            }
            spec.check()?;
            let len = spec
                .secret_len()
                .ok_or_else(|| Error::invalid("derive makes AES or generic-secret keys"))?;
            Self::check_len(params.peer_public)?;
            Self::check_len(params.info)?;
            Self::check_len(params.salt)?;
            let value =
                bobj.material
                    .derive_ecdh(params.peer_public, params.salt, params.info, len)?;
            let material = Material::secret(spec, value)?;
            let mut a = template.build(KeyClass::Secret)?;
            a.check_separation(None)?;
            a.local = false;
            // The derived secret is no more exportable than its base key.
            let base = &bstate.info.attributes;
            a.extractable = a.extractable && base.extractable;
            a.never_extractable = base.never_extractable && !a.extractable;
            a.always_sensitive = base.always_sensitive && a.sensitive;
            a.wrap_with_trusted = a.wrap_with_trusted || base.wrap_with_trusted;
            self.check_new_label(session, &a.label, KeyClass::Secret)?;
            let new = self.new_info(session, KeyClass::Secret, spec, a, None);
            Ok(self.add_objects(session, vec![(new, material)])?.remove(0))
        })();
        let target = res.as_ref().ok().map(|k| k.handle.to_string());
        self.audit_result(session.user(), "key.derive", target.as_deref(), &res)?;
        res
    }

    // ----- keys: management -----

    /// Writes a key's new state. The caller holds the writer lock (`manifest`) and read `old`
    /// under it, so the read-check-write is atomic.
    fn store_state(
        &self,
        manifest: &mut Manifest,
        obj: &KeyObject,
        old: &KeyState,
        info: KeyInfo,
    ) -> Result<()> {
        let linked = info.linked_handle.and_then(|l| {
            self.objects
                .load()
                .get(&l)
                .map(|o| o.state.load().info.attributes.clone())
        });
        // A lone public key (imported; its private half is elsewhere) cannot open anything in
        // the HSM, so it may both encrypt and wrap for its outside owner.
        if info.class != KeyClass::Public || linked.is_some() {
            info.attributes.check_separation(linked.as_ref())?;
        }
        if obj.state.load().record_version != old.record_version {
            return Err(Error::Store(keyward_keystore::Error::VersionConflict {
                kind: KIND_KEY.into(),
                id: info.handle.to_string(),
                expected: old.record_version,
            }));
        }
        let version = old.record_version + 1;
        if old.info.attributes.token {
            let id = info.handle.to_string();
            let plain = encode_key_record(&info, stored_value(&obj.material)?)?;
            let blob = self.data_key.seal(KIND_KEY, &id, version, &plain)?;
            self.commit(
                manifest,
                vec![Write::Update(Record {
                    kind: KIND_KEY.into(),
                    id: id.clone(),
                    version,
                    blob,
                })],
                &[(KIND_KEY, &id, Some(version))],
            )?;
        }
        obj.state.store(Arc::new(KeyState {
            info,
            record_version: version,
        }));
        Ok(())
    }

    /// Changes one attribute of a key the session owns (`trusted`: admins only, on any key).
    /// Rules: read-only attributes never change; `extractable` is fixed at creation;
    /// `modifiable` goes true → false only and, once false, nothing changes; `wrap_with_trusted`
    /// goes false → true only; `token` goes false → true only (a session key becomes
    /// persistent); `sensitive` goes false → true only.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`], [`Error::AttributeViolation`], [`Error::InvalidInput`].
    pub fn set_attribute(
        &self,
        session: &Session,
        handle: KeyHandle,
        name: AttributeName,
        value: AttributeValue,
    ) -> Result<KeyInfo> {
        let res = (|| {
            let mut manifest = lock(&self.writer);
            let (obj, state) = if name == AttributeName::Trusted {
                session.require(Role::Admin)?;
                let obj = self.object(handle)?;
                if !obj.in_scope(session) {
                    return Err(Error::KeyNotFound { handle });
                }
                let state = obj.state.load();
                (obj, state)
            } else {
                self.owned(session, handle)?
            };
            let violation = |attribute: &'static str| Error::AttributeViolation {
                handle,
                operation: "set-attribute",
                attribute,
            };
            let a = &state.info.attributes;
            if name.is_read_only() {
                return Err(violation("read-only"));
            }
            if !a.modifiable {
                return Err(violation("modifiable is false"));
            }
            let mut info = state.info.clone();
            match (name, &value) {
                (AttributeName::Label, AttributeValue::Text(t)) => {
                    Attributes::check_label(t)?;
                    if t != &a.label {
                        self.check_new_label(session, t, info.class)?;
                    }
                    info.attributes.label = t.clone();
                }
                (AttributeName::Id, AttributeValue::Text(t)) => {
                    Attributes::check_id(t)?;
                    info.attributes.id = t.clone();
                }
                (n, AttributeValue::Bool(v)) if a.get_bool(n).is_some() => {
                    let current = a.get_bool(n).unwrap_or(false);
                    let one_way: Option<bool> = match n {
                        AttributeName::Extractable => {
                            return Err(violation("extractable is set only at creation"))
                        }
                        AttributeName::Modifiable => Some(false),
                        AttributeName::WrapWithTrusted
                        | AttributeName::Token
                        | AttributeName::Sensitive => Some(true),
                        _ => None,
                    };
                    if let Some(allowed) = one_way {
                        if *v != current && *v != allowed {
                            return Err(violation(match n {
                                AttributeName::Modifiable => {
                                    "modifiable goes from true to false only"
                                }
                                AttributeName::WrapWithTrusted => {
                                    "wrap_with_trusted cannot be cleared"
                                }
                                AttributeName::Token => "token goes from false to true only",
                                _ => "sensitive cannot be cleared",
                            }));
                        }
                    }
                    if n == AttributeName::Token && *v && !current {
                        return Err(violation(
                            "making a session key persistent is not supported yet",
                        ));
                    }
                    info.attributes.set_bool(n, *v);
                    if n == AttributeName::Trusted && *v {
                        // A trusted key may itself be wrapped only by trusted keys, so no
                        // untrusted copy of it can unwrap what it protects.
                        info.attributes.wrap_with_trusted = true;
                    }
                    if n == AttributeName::Sensitive {
                        info.attributes.always_sensitive = info.attributes.always_sensitive && *v;
                    }
                }
                (n, _) => {
                    return Err(Error::invalid(format!(
                        "wrong value type for attribute {n}"
                    )))
                }
            }
            self.store_state(&mut manifest, &obj, &state, info.clone())?;
            Ok(info)
        })();
        self.audit_result(
            session.user(),
            &format!("key.set-attribute.{name}"),
            Some(&handle.to_string()),
            &res,
        )?;
        res
    }

    /// Shares a key the session owns with another crypto-user, for use only.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`], [`Error::UserNotFound`], [`Error::InvalidInput`].
    pub fn share_key(&self, session: &Session, handle: KeyHandle, user: &str) -> Result<KeyInfo> {
        let res = (|| {
            let mut manifest = lock(&self.writer);
            let (obj, state) = self.owned(session, handle)?;
            match lock(&self.users).get(user) {
                Some((u, _)) if u.role == Role::CryptoUser => {}
                // One answer whether the name is unknown or not a crypto-user: a crypto-user
                // does not learn other users' roles this way.
                _ => {
                    return Err(Error::invalid(format!(
                        "cannot share with {:?}: keys are shared with existing crypto-users only",
                        printable(user)
                    )))
                }
            }
            if user == session.user() {
                return Err(Error::invalid("the owner already uses the key"));
            }
            let mut info = state.info.clone();
            if !info.shared_with.iter().any(|u| u == user) {
                info.shared_with.push(user.into());
                info.shared_with.sort();
            }
            self.store_state(&mut manifest, &obj, &state, info.clone())?;
            Ok(info)
        })();
        self.audit_result(
            session.user(),
            "key.share",
            Some(&format!("{handle} {user}")),
            &res,
        )?;
        res
    }

    /// Stops sharing a key the session owns.
    ///
    /// # Errors
    /// As [`share_key`](Self::share_key).
    pub fn unshare_key(&self, session: &Session, handle: KeyHandle, user: &str) -> Result<KeyInfo> {
        let res = (|| {
            let mut manifest = lock(&self.writer);
            let (obj, state) = self.owned(session, handle)?;
            let mut info = state.info.clone();
            let before = info.shared_with.len();
            info.shared_with.retain(|u| u != user);
            if info.shared_with.len() == before {
                return Err(Error::invalid(format!(
                    "the key is not shared with {user:?}"
                )));
            }
            self.store_state(&mut manifest, &obj, &state, info.clone())?;
            Ok(info)
        })();
        self.audit_result(
            session.user(),
            "key.unshare",
            Some(&format!("{handle} {user}")),
            &res,
        )?;
        res
    }

    /// Destroys a key the session owns (it must be `destroyable`). Signers held elsewhere stop
    /// working at once.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`], [`Error::AttributeViolation`].
    pub fn destroy_key(&self, session: &Session, handle: KeyHandle) -> Result<()> {
        let res = (|| {
            let (obj, state) = self.owned(session, handle)?;
            Self::need(
                state.info.attributes.destroyable,
                handle,
                "destroy",
                "destroyable",
            )?;
            self.remove_object(&obj, &state)
        })();
        self.audit_result(
            session.user(),
            "key.destroy",
            Some(&handle.to_string()),
            &res,
        )?;
        res
    }

    /// Destroys any crypto-user's token key (admins only): the way to remove a key whose owner
    /// is gone or that should not exist, without shell access to the store. Unlike
    /// [`destroy_key`](Self::destroy_key) it ignores `destroyable`, so it is a separate call
    /// and audit event (`key.destroy-by-admin`, naming the key's owner and label). Keys of
    /// service users (the node's own API TLS key, the proxy's certificate and ticket keys) are
    /// refused: destroying them would take the node down; they are managed on the node. Session
    /// keys belong to one session and are not reachable here.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] for a non-admin or a service user's key;
    /// [`Error::KeyNotFound`].
    pub fn destroy_key_as_admin(&self, admin: &Session, handle: KeyHandle) -> Result<()> {
        let mut target = handle.to_string();
        let res = (|| {
            admin.require(Role::Admin)?;
            let obj = self.object(handle)?;
            if obj.session.is_some() {
                return Err(Error::KeyNotFound { handle });
            }
            let state = obj.state.load();
            target = format!(
                "{handle} owner={} label={:?}",
                state.info.owner,
                printable(&state.info.attributes.label)
            );
            if self.is_service_user(&state.info.owner) {
                return Err(Error::PermissionDenied {
                    reason: "keys of Keyward's service users (the node's API and proxy keys) are managed on the node, not through the API",
                });
            }
            self.remove_object(&obj, &state)
        })();
        self.audit_result(admin.user(), "key.destroy-by-admin", Some(&target), &res)?;
        res
    }

    /// Deletes a key object's record (token keys) and drops it from memory; signers and
    /// ciphers held elsewhere stop working at once.
    fn remove_object(&self, obj: &KeyObject, state: &KeyState) -> Result<()> {
        let handle = state.info.handle;
        let mut manifest = lock(&self.writer);
        if state.info.attributes.token {
            let id = handle.to_string();
            self.commit(
                &mut manifest,
                vec![Write::Delete(
                    KIND_KEY.into(),
                    id.clone(),
                    state.record_version,
                )],
                &[(KIND_KEY, &id, None)],
            )?;
        }
        obj.destroyed.store(true, Ordering::Release);
        let mut map: ObjectMap = (**self.objects.load()).clone();
        map.remove(&handle);
        self.objects.store(Arc::new(map));
        Ok(())
    }

    /// A handle for signing with one private key without looking it up again: what the TLS
    /// proxy keeps per certificate. The session's rights are checked now; each
    /// [`KeySigner::sign`] then checks the key's `sign` attribute and that it was not destroyed,
    /// and makes one aws-lc-rs call: no store, no lock.
    ///
    /// # Errors
    /// As [`sign`](Self::sign); [`Error::MechanismInvalid`] for a key that is not private.
    pub fn signer(&self, session: &Session, handle: KeyHandle) -> Result<KeySigner> {
        let (obj, state) = self.usable(session, handle)?;
        if state.info.class != KeyClass::Private {
            return Err(Self::mechanism_invalid(&state, "sign"));
        }
        Ok(KeySigner {
            obj,
            session: session.clone(),
        })
    }

    /// A handle for AES-GCM encryption and decryption with one secret AES key object without
    /// looking it up again: what the TLS proxy keeps per session-ticket key. The session's
    /// rights are checked now; each [`KeyCipher::encrypt`] / [`KeyCipher::decrypt`] then
    /// checks the key's `encrypt` / `decrypt` attribute, that it was not destroyed and that the
    /// session may still use it, and makes one aws-lc-rs call: no store, no lock. The key's
    /// value never leaves the HSM.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::PermissionDenied`], [`Error::SessionInvalid`];
    /// [`Error::MechanismInvalid`] for a key that is not a secret AES key.
    pub fn cipher(&self, session: &Session, handle: KeyHandle) -> Result<KeyCipher> {
        let (obj, state) = self.usable(session, handle)?;
        if state.info.class != KeyClass::Secret
            || !obj.material.can_encrypt(EncryptMechanism::AesGcm, true)
        {
            return Err(Self::mechanism_invalid(
                &state,
                EncryptMechanism::AesGcm.as_str(),
            ));
        }
        Ok(KeyCipher {
            obj,
            session: session.clone(),
        })
    }

    /// Reads a private or secret key's value back. Compiled only for tests (the
    /// `test-secrets` feature, which only tests enable), so a test can look for leaked key
    /// bytes; release builds have no way to read a key in plaintext.
    #[cfg(any(test, feature = "test-secrets"))]
    pub fn test_secret_value(&self, handle: KeyHandle) -> Result<Zeroizing<Vec<u8>>> {
        let obj = self.object(handle)?;
        let v = obj
            .material
            .wrappable_bytes()
            .ok_or(Error::KeyNotFound { handle })?;
        Ok(Zeroizing::new(v.to_vec()))
    }
}

/// A valid Argon2id hash of a random password, for timing-equal failed logins of unknown users.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$rI3QVyZf9nNHxCRbc8DPa3zVy8L5PcvP0sMGmKRZAjQ";

fn sign_checked(
    obj: &KeyObject,
    state: &KeyState,
    mechanism: SignMechanism,
    input: SignInput<'_>,
    encoding: SignatureEncoding,
) -> Result<Vec<u8>> {
    let handle = state.info.handle;
    if obj.destroyed.load(Ordering::Acquire) {
        return Err(Error::KeyNotFound { handle });
    }
    if !state.info.attributes.sign {
        return Err(Error::AttributeViolation {
            handle,
            operation: "sign",
            attribute: "sign",
        });
    }
    if !obj.material.can_sign(mechanism) {
        return Err(Hsm::mechanism_invalid(state, mechanism.as_str()));
    }
    if let SignInput::Message(m) = input {
        Hsm::check_len(m)?;
    }
    let sig = obj.material.sign(mechanism, input, encoding)?;
    obj.usage.sign.fetch_add(1, Ordering::Relaxed);
    Ok(sig)
}

fn seal_json<T: Serialize>(
    cipher: &RecordCipher,
    kind: &str,
    id: &str,
    version: u64,
    value: &T,
) -> Result<Record> {
    let plain =
        Zeroizing::new(serde_json::to_vec(value).map_err(|_| Error::Internal("record encode"))?);
    Ok(Record {
        kind: kind.into(),
        id: id.into(),
        version,
        blob: cipher.seal(kind, id, version, &plain)?,
    })
}

fn open_json<T: for<'de> Deserialize<'de>>(
    cipher: &RecordCipher,
    store: &dyn Backend,
    kind: &str,
    id: &str,
) -> Result<Option<T>> {
    let Some(rec) = store.get(kind, id)? else {
        return Ok(None);
    };
    let plain = cipher.open(kind, id, rec.version, &rec.blob)?;
    serde_json::from_slice(&plain)
        .map(Some)
        .map_err(|_| tampered(kind, id))
}

fn load_object(data_key: &RecordCipher, rec: &Record) -> Result<KeyObject> {
    let plain = data_key.open(&rec.kind, &rec.id, rec.version, &rec.blob)?;
    let (info, value) = decode_key_record(&plain).ok_or_else(|| tampered(&rec.kind, &rec.id))?;
    if info.handle.to_string() != rec.id {
        return Err(tampered(&rec.kind, &rec.id));
    }
    let value = Zeroizing::new(value.to_vec());
    let material = match info.class {
        KeyClass::Private => Material::from_pkcs8(Some(info.spec), value),
        KeyClass::Public => Material::from_spki(&value),
        KeyClass::Secret => Material::secret(info.spec, value),
    }
    .map_err(|_| tampered(&rec.kind, &rec.id))?;
    if material.spec() != info.spec {
        return Err(tampered(&rec.kind, &rec.id));
    }
    Ok(KeyObject::new(info, rec.version, material, None))
}

/// A private key object ready to sign, held by long-lived users such as the TLS proxy.
///
/// Cloning is cheap (one `Arc`). `Debug` prints the handle and label only.
#[derive(Clone)]
pub struct KeySigner {
    obj: Arc<KeyObject>,
    /// Whose rights the signer uses: checked at every signature, so logout, expiry, unshare
    /// and user deletion take effect at once.
    session: Session,
}

impl std::fmt::Debug for KeySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.obj.state.load();
        f.debug_struct("KeySigner")
            .field("handle", &s.info.handle)
            .field("label", &s.info.attributes.label)
            .finish()
    }
}

impl KeySigner {
    /// The key's description now.
    pub fn info(&self) -> KeyInfo {
        self.obj.state.load().info.clone()
    }

    /// The key's type.
    pub fn spec(&self) -> KeySpec {
        self.obj.material.spec()
    }

    /// The public key as SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        self.obj.material.spki().unwrap_or_default()
    }

    /// Whether `mechanism` fits this key's type (attributes are checked at each sign).
    pub fn supports(&self, mechanism: SignMechanism) -> bool {
        self.obj.material.can_sign(mechanism)
    }

    /// Signatures made with this key since the HSM was opened, by any caller.
    pub fn sign_count(&self) -> u64 {
        self.obj.usage.sign.load(Ordering::Relaxed)
    }

    /// Signs `message` (the whole message; the mechanism hashes it). ECDSA signatures are DER.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] once destroyed; [`Error::AttributeViolation`] if `sign` is false;
    /// [`Error::MechanismInvalid`]; [`Error::Crypto`].
    pub fn sign(&self, mechanism: SignMechanism, message: &[u8]) -> Result<Vec<u8>> {
        let state = self.obj.state.load();
        self.session.check()?;
        if !Hsm::may_use(&self.session, &state.info) || !self.obj.in_scope(&self.session) {
            return Err(Error::PermissionDenied {
                reason: "the key is no longer owned by or shared with this signer's user",
            });
        }
        sign_checked(
            &self.obj,
            &state,
            mechanism,
            SignInput::Message(message),
            SignatureEncoding::Der,
        )
    }
}

/// A secret AES key object ready for AES-GCM (NIST SP 800-38D), held by long-lived users such
/// as the TLS proxy's session-ticket encrypter.
///
/// Output of [`encrypt`](Self::encrypt): 12-byte IV chosen by the HSM ‖ ciphertext ‖ 16-byte
/// tag, as [`EncryptMechanism::AesGcm`]. Cloning is cheap (one `Arc`); the key's value stays
/// inside the HSM (zeroized when the last holder drops it). `Debug` prints the handle and
/// label only.
#[derive(Clone)]
pub struct KeyCipher {
    obj: Arc<KeyObject>,
    /// Whose rights the cipher uses: checked at every call, as for [`KeySigner`].
    session: Session,
}

impl std::fmt::Debug for KeyCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.obj.state.load();
        f.debug_struct("KeyCipher")
            .field("handle", &s.info.handle)
            .field("label", &s.info.attributes.label)
            .finish()
    }
}

impl KeyCipher {
    /// The key's description now.
    pub fn info(&self) -> KeyInfo {
        self.obj.state.load().info.clone()
    }

    /// The key's handle.
    pub fn handle(&self) -> KeyHandle {
        self.obj.state.load().info.handle
    }

    /// Checks, for one operation, that the key still exists, that the session may still use
    /// it and that `allowed` (the attribute named `attribute`) is set.
    fn check(
        &self,
        allowed: impl Fn(&Attributes) -> bool,
        operation: &'static str,
        attribute: &'static str,
    ) -> Result<()> {
        let state = self.obj.state.load();
        let handle = state.info.handle;
        self.session.check()?;
        if self.obj.destroyed.load(Ordering::Acquire) {
            return Err(Error::KeyNotFound { handle });
        }
        if !Hsm::may_use(&self.session, &state.info) || !self.obj.in_scope(&self.session) {
            return Err(Error::PermissionDenied {
                reason: "the key is no longer owned by or shared with this cipher's user",
            });
        }
        Hsm::need(
            allowed(&state.info.attributes),
            handle,
            operation,
            attribute,
        )
    }

    /// Encrypts `plaintext` (at most [`MAX_DATA_BYTES`]) with AES-GCM and a fresh random
    /// 96-bit IV, authenticating `aad` too. The key needs `encrypt`.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] once destroyed; [`Error::AttributeViolation`] if `encrypt` is
    /// false; [`Error::PermissionDenied`], [`Error::SessionInvalid`]; [`Error::InvalidInput`]
    /// for too much input; [`Error::Crypto`].
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        self.check(|a| a.encrypt, "encrypt", "encrypt")?;
        Hsm::check_len(plaintext)?;
        let out = self
            .obj
            .material
            .encrypt(EncryptMechanism::AesGcm, plaintext, aad)?;
        self.obj.usage.encrypt.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    /// Decrypts what [`encrypt`](Self::encrypt) made with this key and the same `aad`. The key
    /// needs `decrypt`.
    ///
    /// # Errors
    /// As [`encrypt`](Self::encrypt) (with `decrypt`); input that was changed, made under
    /// another key or with another `aad`, or is too short, is [`Error::InvalidInput`]
    /// ("decryption failed"), with nothing to tell the cases apart.
    pub fn decrypt(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.check(|a| a.decrypt, "decrypt", "decrypt")?;
        Hsm::check_len(sealed)?;
        let out = self
            .obj
            .material
            .decrypt(EncryptMechanism::AesGcm, sealed, aad)?;
        self.obj.usage.decrypt.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }
}
