//! Reading a whole store at open: the data key, every record verified against the manifest,
//! the audit head, and what [`integrity`](super::integrity) checks.

use super::*;

/// What [`Hsm::open`] reads from the store, verified.
pub(super) struct Loaded {
    pub(super) data_key: RecordCipher,
    pub(super) data_keys: DataKeys,
    /// The root key, kept while unsealed.
    pub(super) root: MasterKey,
    pub(super) objects: ObjectMap,
    pub(super) users: HashMap<String, (UserRecord, u64)>,
    pub(super) manifest: Manifest,
    pub(super) head: AuditHead,
    pub(super) acceptances: Acceptances,
    /// The session records of a shared store (none on a store with one writer).
    pub(super) sessions: HashMap<[u8; 32], super::sessions::SessionRecord>,
}

pub(super) fn load_object(data_key: &RecordCipher, rec: &Record) -> Result<KeyObject> {
    let tampered = || tampered(RecordKind::Key, &rec.id);
    let plain = data_key.open(RecordKind::Key, &rec.id, rec.version, &rec.blob)?;
    let (info, values) = decode_key_record(&plain).ok_or_else(tampered)?;
    if info.handle.to_string() != rec.id {
        return Err(tampered());
    }
    let mut materials = Vec::with_capacity(values.len());
    for value in values {
        let value = Zeroizing::new(value.to_vec());
        let material = match info.class {
            KeyClass::Private => Material::from_pkcs8(Some(info.spec), value),
            KeyClass::Public => Material::from_spki(&value),
            KeyClass::Secret => Material::secret(info.spec, value),
        }
        .map_err(|_| tampered())?;
        if material.spec() != info.spec {
            return Err(tampered());
        }
        materials.push(material);
    }
    let versions = KeyVersions::from_record(info.min_available_version, materials)?;
    Ok(KeyObject::new(info, rec.version, versions, None))
}

/// Opens the seal records of `store` with the unseal key `unseal` (from the key file,
/// passphrase or shares): the root key (from the root-key record; a store without one uses the
/// unseal key as its root key), the data keys under it, and the cipher of every data-key
/// version.
pub(super) fn open_seal(
    store: &dyn Backend,
    unseal: &MasterKey,
) -> Result<(MasterKey, DataKeys, RecordCipher)> {
    let wrong = || {
        Error::Sealed {
        reason: "the master key does not open this store (wrong key, passphrase or shares, or the seal records were modified)",
    }
    };
    let root = match store.get(RecordKind::Seal.as_str(), ID_ROOT_KEY)? {
        Some(rec) => {
            let (_, seal_json) = crate::seal::config::read_stored(store)?;
            let default_json;
            let json = match &seal_json {
                Some((j, _)) => &j[..],
                None => {
                    default_json = SealConfig::key_file().to_json()?;
                    &default_json[..]
                }
            };
            let plain = unseal
                .cipher()?
                .open(RecordKind::Seal, ID_ROOT_KEY, rec.version, &rec.blob)
                .map_err(|_| wrong())?;
            MasterKey::from_bytes(&crate::seal::config::decode_root(&plain, Some(json))?[..])?
        }
        None => MasterKey::from_bytes(unseal.as_bytes())?,
    };
    let (data_keys, cipher) = open_data_keys(store, &root).map_err(|e| match e {
        Error::Sealed { .. } => wrong(),
        other => other,
    })?;
    Ok((root, data_keys, cipher))
}

/// The data keys of `store`, opened with its root key, and the cipher of every version.
pub(super) fn open_data_keys(
    store: &dyn Backend,
    root: &MasterKey,
) -> Result<(DataKeys, RecordCipher)> {
    let rec = store
        .get(RecordKind::Seal.as_str(), ID_DATA_KEY)?
        .ok_or(Error::Sealed {
            reason: "the store has no data key",
        })?;
    let plain = root
        .cipher()?
        .open(RecordKind::Seal, ID_DATA_KEY, rec.version, &rec.blob)
        .map_err(|_| Error::Sealed {
            reason: "the root key does not open the data key record",
        })?;
    let mut data_keys = DataKeys::decode(&plain, data_keys_binding(store)?.as_deref())?;
    data_keys.record_version = rec.version;
    let data_key = data_keys.cipher()?;
    Ok((data_keys, data_key))
}

/// What the data-key record of `store` is bound to: the root key ([`ROOT_BOUND`]) when the
/// store has a root-key record, else (a store from before) its seal configuration (`None`:
/// it has none, the key-file seal of the first versions).
pub(super) fn data_keys_binding(store: &dyn Backend) -> Result<Option<Vec<u8>>> {
    if store.get(RecordKind::Seal.as_str(), ID_ROOT_KEY)?.is_some() {
        return Ok(Some(ROOT_BOUND.to_vec()));
    }
    Ok(crate::seal::config::read_stored(store)?
        .1
        .map(|(json, _)| json))
}

impl Hsm {
    /// Reads and verifies everything [`open`](Self::open) needs.
    pub(super) fn load(
        store: &dyn Backend,
        master_key: &MasterKey,
        options: OpenOptions,
    ) -> Result<Loaded> {
        // Before anything else: a writer committing meanwhile makes the store newer than the
        // anchor read here, never older.
        let anchor_blob = store.read_anchor()?;
        let (root, data_keys, data_key) = open_seal(store, master_key)?;
        for kind in store.kinds()? {
            if RecordKind::in_store(&kind).is_none() && kind != SEAL_CONFIG_KIND {
                return Err(Error::StoreInconsistent {
                    detail: format!("unknown record kind {:?}", printable(&kind)),
                });
            }
        }
        let mut manifest: Manifest = open_json(&data_key, store, RecordKind::Manifest, ID_MANIFEST)?.ok_or_else(|| Error::StoreInconsistent {
            detail: "the manifest record is missing (or this store was made by a development version before it existed)".into(),
        })?;
        manifest.version = store
            .get(RecordKind::Manifest.as_str(), ID_MANIFEST)?
            .map(|r| r.version)
            .unwrap_or(0);
        let mut head: AuditHead =
            open_json(&data_key, store, RecordKind::AuditHead, ID_AUDIT_HEAD)?.ok_or_else(
                || Error::StoreInconsistent {
                    detail: "the audit head record is missing".into(),
                },
            )?;
        head.record_version = store
            .get(RecordKind::AuditHead.as_str(), ID_AUDIT_HEAD)?
            .map(|r| r.version)
            .unwrap_or(0);
        let acceptances =
            integrity::check(store, &data_key, &manifest, &head, anchor_blob, options)?;

        let mut seen = BTreeMap::new();
        let mut objects = HashMap::new();
        for rec in store.list(RecordKind::Key.as_str())? {
            let obj = load_object(&data_key, &rec)?;
            seen.insert(manifest_key(RecordKind::Key, &rec.id), rec.version);
            objects.insert(obj.state.load().info.handle, Arc::new(obj));
        }
        let mut users = HashMap::new();
        for rec in store.list(RecordKind::User.as_str())? {
            let plain = data_key.open(RecordKind::User, &rec.id, rec.version, &rec.blob)?;
            let user: UserRecord =
                serde_json::from_slice(&plain).map_err(|_| tampered(RecordKind::User, &rec.id))?;
            if user.name != rec.id {
                return Err(tampered(RecordKind::User, &rec.id));
            }
            seen.insert(manifest_key(RecordKind::User, &rec.id), rec.version);
            users.insert(user.name.clone(), (user, rec.version));
        }
        let sessions = super::sessions::read_session_records(store, &data_key, &manifest)?;
        for rec in store.list(RecordKind::Session.as_str())? {
            seen.insert(manifest_key(RecordKind::Session, &rec.id), rec.version);
        }
        // The CA records are read when asked for (`hsm::ca`); here only their presence.
        // Certificate records are not in the manifest (their revocations are in the CA's).
        for rec in store.list(RecordKind::Ca.as_str())? {
            seen.insert(manifest_key(RecordKind::Ca, &rec.id), rec.version);
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
            data_keys,
            root,
            objects,
            users,
            manifest,
            head,
            acceptances,
            sessions,
        })
    }
}
