//! The HSM: unsealed key objects in memory over an encrypted store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use keyward_keystore::{Backend, Record};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::material::PrivateMaterial;
use crate::mechanism::SignMechanism;
use crate::object::{Attributes, KeyClass, KeyHandle, KeyInfo, KeyPairOptions, KeySpec};
use crate::seal::{MasterKey, RecordCipher, DATA_KEY_VERSION};
use crate::selftest;

const KIND_SEAL: &str = "seal";
const ID_DATA_KEY: &str = "data-key";
const KIND_KEY: &str = "key";

/// The plaintext header of a key record; the key value follows it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRecordMeta {
    info: KeyInfo,
}

/// One key object held in memory.
struct KeyObject {
    info: KeyInfo,
    record_version: u64,
    /// SubjectPublicKeyInfo DER of the key (or of the pair's public half).
    spki_der: Vec<u8>,
    /// Present for private keys only.
    private: Option<PrivateMaterial>,
    sign_count: AtomicU64,
}

/// The HSM over one store. Cheap to share: wrap it in an `Arc`.
///
/// All key objects are decrypted into memory when the HSM is opened, so signing touches
/// neither the store nor any lock shared with other keys (see [`KeySigner`]).
pub struct Hsm {
    store: Box<dyn Backend>,
    data_key: RecordCipher,
    objects: RwLock<HashMap<KeyHandle, Arc<KeyObject>>>,
}

impl std::fmt::Debug for Hsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hsm")
            .field("objects", &self.read().len())
            .finish_non_exhaustive()
    }
}

fn encode_record(meta: &KeyRecordMeta, value: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let header = serde_json::to_vec(meta).map_err(|_| Error::Internal("key record meta encode"))?;
    let len = u32::try_from(header.len()).map_err(|_| Error::Internal("key record meta size"))?;
    let mut out = Zeroizing::new(Vec::with_capacity(4 + header.len() + value.len()));
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(value);
    Ok(out)
}

fn decode_record(plain: &[u8]) -> Option<(KeyRecordMeta, &[u8])> {
    let len = u32::from_be_bytes(plain.get(..4)?.try_into().ok()?) as usize;
    let header = plain.get(4..4usize.checked_add(len)?)?;
    let meta: KeyRecordMeta = serde_json::from_slice(header).ok()?;
    Some((meta, &plain[4 + len..]))
}

impl Hsm {
    /// Creates a new HSM in an empty store, sealed by `master_key`.
    ///
    /// Runs the known-answer self-tests, generates a random 256-bit data key and stores it
    /// encrypted under the master key.
    ///
    /// # Errors
    /// [`Error::SelfTestFailed`], [`Error::Store`] (e.g. the store already holds a data key).
    pub fn create(store: Box<dyn Backend>, master_key: &MasterKey) -> Result<Self> {
        selftest::run()?;
        let data_key = MasterKey::generate()?;
        let blob = master_key
            .cipher()?
            .seal(KIND_SEAL, ID_DATA_KEY, 1, data_key.as_bytes())?;
        store.insert(&Record {
            kind: KIND_SEAL.into(),
            id: ID_DATA_KEY.into(),
            version: 1,
            blob,
        })?;
        Ok(Hsm {
            store,
            data_key: RecordCipher::new(data_key.as_bytes(), DATA_KEY_VERSION)?,
            objects: RwLock::new(HashMap::new()),
        })
    }

    /// Opens (unseals) an existing store with `master_key` and loads every key object.
    ///
    /// Writes nothing to the store.
    ///
    /// # Errors
    /// [`Error::SelfTestFailed`]; [`Error::Sealed`] if the master key does not open the store;
    /// [`Error::RecordTampered`] naming the first record that fails authentication (nothing is
    /// skipped); [`Error::Store`].
    pub fn open(store: Box<dyn Backend>, master_key: &MasterKey) -> Result<Self> {
        selftest::run()?;
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
        let mut objects = HashMap::new();
        for rec in store.list(KIND_KEY)? {
            let obj = load_object(&data_key, &rec)?;
            objects.insert(obj.info.handle, Arc::new(obj));
        }
        Ok(Hsm {
            store,
            data_key,
            objects: RwLock::new(objects),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<KeyHandle, Arc<KeyObject>>> {
        self.objects.read().unwrap_or_else(|e| e.into_inner())
    }

    fn object(&self, handle: KeyHandle) -> Result<Arc<KeyObject>> {
        self.read()
            .get(&handle)
            .cloned()
            .ok_or(Error::KeyNotFound { handle })
    }

    fn new_handle(
        &self,
        taken: &HashMap<KeyHandle, Arc<KeyObject>>,
        also: Option<KeyHandle>,
    ) -> Result<KeyHandle> {
        loop {
            let mut b = [0u8; 8];
            aws_lc_rs::rand::fill(&mut b).map_err(|_| Error::Crypto {
                operation: "random",
            })?;
            // 53 bits, so handles survive JSON numbers in any client; never 0.
            let h = KeyHandle(u64::from_be_bytes(b) & ((1 << 53) - 1));
            if h.0 != 0 && !taken.contains_key(&h) && Some(h) != also {
                return Ok(h);
            }
        }
    }

    /// Generates a key pair inside the HSM: a private and a public key object with linked
    /// handles, both stored. Returns `(private, public)`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad label; [`Error::Crypto`]; [`Error::Store`].
    pub fn generate_key_pair(
        &self,
        spec: KeySpec,
        options: &KeyPairOptions,
    ) -> Result<(KeyInfo, KeyInfo)> {
        Attributes::check_label(&options.label)?;
        if self
            .read()
            .values()
            .any(|o| o.info.class == KeyClass::Private && o.info.attributes.label == options.label)
        {
            return Err(Error::invalid(format!(
                "a private key labelled {:?} exists already; labels name keys in configurations, so they are unique",
                options.label
            )));
        }
        let (material, pkcs8) = PrivateMaterial::generate(spec)?;
        let spki_der = material.spki_der()?;
        let mut objects = self.objects.write().unwrap_or_else(|e| e.into_inner());
        let private_handle = self.new_handle(&objects, None)?;
        let public_handle = self.new_handle(&objects, Some(private_handle))?;
        let mut private_attrs = Attributes::private_default(&options.label);
        private_attrs.extractable = options.extractable;
        private_attrs.never_extractable = !options.extractable;
        let private = KeyInfo {
            handle: private_handle,
            linked_handle: Some(public_handle),
            class: KeyClass::Private,
            spec,
            attributes: private_attrs,
        };
        let public = KeyInfo {
            handle: public_handle,
            linked_handle: Some(private_handle),
            class: KeyClass::Public,
            spec,
            attributes: Attributes::public_default(&options.label),
        };
        self.insert_record(&private, &pkcs8)?;
        if let Err(e) = self.insert_record(&public, &spki_der) {
            // Leave no half pair behind.
            let _ = self.store.delete(KIND_KEY, &private.handle.to_string(), 1);
            return Err(e);
        }
        objects.insert(
            private_handle,
            Arc::new(KeyObject {
                info: private.clone(),
                record_version: 1,
                spki_der: spki_der.clone(),
                private: Some(material),
                sign_count: AtomicU64::new(0),
            }),
        );
        objects.insert(
            public_handle,
            Arc::new(KeyObject {
                info: public.clone(),
                record_version: 1,
                spki_der,
                private: None,
                sign_count: AtomicU64::new(0),
            }),
        );
        Ok((private, public))
    }

    fn insert_record(&self, info: &KeyInfo, value: &[u8]) -> Result<()> {
        let id = info.handle.to_string();
        let plain = encode_record(&KeyRecordMeta { info: info.clone() }, value)?;
        let blob = self.data_key.seal(KIND_KEY, &id, 1, &plain)?;
        self.store.insert(&Record {
            kind: KIND_KEY.into(),
            id,
            version: 1,
            blob,
        })?;
        Ok(())
    }

    /// Every key object, ordered by handle.
    pub fn list_keys(&self) -> Vec<KeyInfo> {
        let mut v: Vec<KeyInfo> = self.read().values().map(|o| o.info.clone()).collect();
        v.sort_by_key(|k| k.handle);
        v
    }

    /// One key object's description.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`].
    pub fn key_info(&self, handle: KeyHandle) -> Result<KeyInfo> {
        Ok(self.object(handle)?.info.clone())
    }

    /// The one key object of `class` labelled `label`.
    ///
    /// # Errors
    /// [`Error::LabelNotFound`], [`Error::LabelAmbiguous`].
    pub fn find_by_label(&self, label: &str, class: KeyClass) -> Result<KeyInfo> {
        let objects = self.read();
        let found: Vec<&Arc<KeyObject>> = objects
            .values()
            .filter(|o| o.info.class == class && o.info.attributes.label == label)
            .collect();
        match found.as_slice() {
            [one] => Ok(one.info.clone()),
            [] => Err(Error::LabelNotFound {
                label: label.to_owned(),
            }),
            many => Err(Error::LabelAmbiguous {
                label: label.to_owned(),
                count: many.len(),
            }),
        }
    }

    /// The public key of a private or public key object, as SubjectPublicKeyInfo DER
    /// (RFC 5280 §4.1.2.7).
    ///
    /// # Errors
    /// [`Error::KeyNotFound`].
    pub fn public_key_spki(&self, handle: KeyHandle) -> Result<Vec<u8>> {
        Ok(self.object(handle)?.spki_der.clone())
    }

    /// Signs `message` with the private key `handle`.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`]; [`Error::AttributeViolation`] if the key's `sign` is false;
    /// [`Error::MechanismInvalid`] if the mechanism does not fit the key.
    pub fn sign(
        &self,
        handle: KeyHandle,
        mechanism: SignMechanism,
        message: &[u8],
    ) -> Result<Vec<u8>> {
        self.signer(handle)?.sign(mechanism, message)
    }

    /// A handle for signing with one private key without looking it up again: what the TLS
    /// proxy keeps per certificate. Each [`KeySigner::sign`] checks policy, then makes one
    /// aws-lc-rs call; it touches no store and no lock.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`]; [`Error::MechanismInvalid`] if `handle` is not a private key.
    pub fn signer(&self, handle: KeyHandle) -> Result<KeySigner> {
        let obj = self.object(handle)?;
        if obj.private.is_none() {
            return Err(Error::MechanismInvalid {
                handle,
                mechanism: "sign",
                key_type: obj.info.spec.as_str(),
            });
        }
        Ok(KeySigner { obj })
    }

    /// Reads a private key's PKCS#8 DER back from the store. Compiled only with the
    /// `test-secrets` feature, which only tests enable, so that a test can look for leaked key
    /// bytes; release builds of Keyward have no way to read a private key in plaintext.
    #[cfg(any(test, feature = "test-secrets"))]
    pub fn test_secret_pkcs8(&self, handle: KeyHandle) -> Result<Zeroizing<Vec<u8>>> {
        let rec = self
            .store
            .get(KIND_KEY, &handle.to_string())?
            .ok_or(Error::KeyNotFound { handle })?;
        let plain = self
            .data_key
            .open(KIND_KEY, &rec.id, rec.version, &rec.blob)?;
        let (_, value) = decode_record(&plain).ok_or(Error::Internal("record decode"))?;
        Ok(Zeroizing::new(value.to_vec()))
    }
}

fn load_object(data_key: &RecordCipher, rec: &Record) -> Result<KeyObject> {
    let tampered = || Error::RecordTampered {
        kind: crate::seal::printable(&rec.kind),
        id: crate::seal::printable(&rec.id),
    };
    let plain = data_key.open(&rec.kind, &rec.id, rec.version, &rec.blob)?;
    let (meta, value) = decode_record(&plain).ok_or_else(tampered)?;
    if meta.info.handle.to_string() != rec.id {
        return Err(tampered());
    }
    let (spki_der, private) = match meta.info.class {
        KeyClass::Private => {
            let m = PrivateMaterial::from_pkcs8(meta.info.spec, value).map_err(|_| tampered())?;
            (m.spki_der()?, Some(m))
        }
        KeyClass::Public => (value.to_vec(), None),
        KeyClass::Secret => return Err(tampered()),
    };
    Ok(KeyObject {
        info: meta.info,
        record_version: rec.version,
        spki_der,
        private,
        sign_count: AtomicU64::new(0),
    })
}

/// A private key object ready to sign, held by long-lived users such as the TLS proxy.
///
/// Cloning is cheap (one `Arc`). `Debug` prints the handle and label only.
#[derive(Clone)]
pub struct KeySigner {
    obj: Arc<KeyObject>,
}

impl std::fmt::Debug for KeySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySigner")
            .field("handle", &self.obj.info.handle)
            .field("label", &self.obj.info.attributes.label)
            .finish()
    }
}

impl KeySigner {
    /// The key's description.
    pub fn info(&self) -> &KeyInfo {
        &self.obj.info
    }

    /// The public key as SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.obj.spki_der
    }

    /// Whether `mechanism` can be used with this key (type and attributes).
    pub fn supports(&self, mechanism: SignMechanism) -> bool {
        self.obj.info.attributes.sign
            && self
                .obj
                .private
                .as_ref()
                .is_some_and(|m| m.supports(mechanism))
    }

    /// How many signatures this key has made since the HSM was opened.
    pub fn sign_count(&self) -> u64 {
        self.obj.sign_count.load(Ordering::Relaxed)
    }

    /// Signs `message` (the whole message; the mechanism hashes it).
    ///
    /// # Errors
    /// [`Error::AttributeViolation`] if `sign` is false; [`Error::MechanismInvalid`];
    /// [`Error::Crypto`].
    pub fn sign(&self, mechanism: SignMechanism, message: &[u8]) -> Result<Vec<u8>> {
        let info = &self.obj.info;
        if !info.attributes.sign {
            return Err(Error::AttributeViolation {
                handle: info.handle,
                operation: "sign",
                attribute: "sign",
            });
        }
        let material = match &self.obj.private {
            Some(m) if m.supports(mechanism) => m,
            _ => {
                return Err(Error::MechanismInvalid {
                    handle: info.handle,
                    mechanism: mechanism.as_str(),
                    key_type: info.spec.as_str(),
                })
            }
        };
        let sig = material.sign(mechanism, message)?;
        self.obj.sign_count.fetch_add(1, Ordering::Relaxed);
        Ok(sig)
    }
}

impl KeyObject {
    #[allow(
        dead_code,
        reason = "read by attribute updates in the key management issue"
    )]
    fn record_version(&self) -> u64 {
        self.record_version
    }
}
