//! Keeping a reader node's key objects current: `sync_token_objects` re-reads the key records
//! another process wrote, verifies them as `open` does, and applies the difference.

use super::*;

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
pub(super) struct SyncPlan {
    pub(super) added: Vec<Arc<KeyObject>>,
    pub(super) updated: Vec<(Arc<KeyObject>, KeyState)>,
    pub(super) removed: Vec<KeyHandle>,
}

impl SyncPlan {
    pub(super) fn changes(&self) -> TokenObjectChanges {
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

/// The new state of an existing key object from its changed record (`loaded`), checked: a
/// changed record may change attributes, sharing and version settings, add versions (a
/// rotation) and drop old ones (a trim), never the key's class, type or the material of a
/// version both hold.
///
/// # Errors
/// [`Error::RecordTampered`] naming the record.
pub(super) fn updated_state(old: &KeyState, loaded: &KeyObject, id: &str) -> Result<KeyState> {
    let new = loaded.state.load_full();
    let (o, n) = (&old.info, &new.info);
    let rotated = n.latest_version > o.latest_version;
    if n.class != o.class
        || n.spec != o.spec
        || n.latest_version < o.latest_version
        || n.min_available_version < o.min_available_version
        || (!rotated && n.attributes.check_value != o.attributes.check_value)
        || !old.versions.same_material(&new.versions)?
    {
        return Err(tampered(RecordKind::Key, id));
    }
    Ok((*new).clone())
}

impl Hsm {
    /// Re-reads the token (persistent) key objects from the store, to learn of keys another
    /// process created, changed or destroyed since this HSM was opened: what a node opened by
    /// [`open_read_only`](Self::open_read_only) calls now and then, the way a PKCS#11
    /// application finds objects another session created. On the writer node it finds
    /// nothing new. Session objects and users are not re-read.
    ///
    /// Records are verified as [`open`](Self::open) verifies them: each decrypts under the data
    /// key with its kind, id and version as AAD; the manifest record is re-read and must list
    /// exactly the key records present, at their versions, and must not be older than the one
    /// this HSM knows. A changed record may change attributes and key versions only (see
    /// `updated_state`), never the key's class, type or the value of a version. Nothing is
    /// applied unless everything verifies. If the other process commits while the store is
    /// read, the read is repeated.
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
        self.reload_data_keys_if_moved()?;
        for _ in 0..SNAPSHOT_ATTEMPTS {
            let Some(manifest_rec) = self.store.get(RecordKind::Manifest.as_str(), ID_MANIFEST)?
            else {
                return Err(Error::StoreInconsistent {
                    detail: "the manifest record is missing".into(),
                });
            };
            let records = self.store.list(RecordKind::Key.as_str())?;
            let after = self
                .store
                .get(RecordKind::Manifest.as_str(), ID_MANIFEST)?
                .map(|r| r.version);
            if after != Some(manifest_rec.version) {
                continue;
            }
            let plain = self.data_key.load().open(
                RecordKind::Manifest,
                ID_MANIFEST,
                manifest_rec.version,
                &manifest_rec.blob,
            )?;
            let mut next: Manifest = serde_json::from_slice(&plain)
                .map_err(|_| tampered(RecordKind::Manifest, ID_MANIFEST))?;
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
            let changes = self.apply_sync(plan);
            *manifest = next;
            return Ok(changes);
        }
        Err(Error::StoreInconsistent {
            detail: format!(
                "the store changed while it was read, {SNAPSHOT_ATTEMPTS} times in a row"
            ),
        })
    }

    /// Applies a verified plan to the key objects; returns what changed.
    pub(super) fn apply_sync(&self, plan: SyncPlan) -> TokenObjectChanges {
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
        changes
    }

    /// Verifies `records` (every key record) against `manifest` and works out what changes;
    /// applies nothing.
    pub(super) fn plan_sync(&self, manifest: &Manifest, records: &[Record]) -> Result<SyncPlan> {
        let key_prefix = manifest_key(RecordKind::Key, "");
        for rec in records {
            let name = manifest_key(RecordKind::Key, &rec.id);
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
                    printable(&manifest_key(RecordKind::Key, missing))
                ),
            });
        }
        let current = self.objects.load();
        let mut plan = SyncPlan::default();
        let mut in_store = std::collections::HashSet::new();
        for rec in records {
            let handle: KeyHandle = rec
                .id
                .parse()
                .map_err(|_| tampered(RecordKind::Key, &rec.id))?;
            in_store.insert(handle);
            match current.get(&handle) {
                Some(o) if o.session.is_some() => {
                    return Err(Error::StoreInconsistent {
                        detail: format!(
                            "record {} has the handle of a session object of this node",
                            printable(&manifest_key(RecordKind::Key, &rec.id))
                        ),
                    })
                }
                Some(o) => {
                    let old = o.state.load_full();
                    if old.record_version == rec.version {
                        continue;
                    }
                    let loaded = load_object(&self.data_key.load(), rec)?;
                    plan.updated
                        .push((o.clone(), updated_state(&old, &loaded, &rec.id)?));
                }
                None => plan
                    .added
                    .push(Arc::new(load_object(&self.data_key.load(), rec)?)),
            }
        }
        plan.removed = current
            .iter()
            .filter(|(h, o)| o.session.is_none() && !in_store.contains(*h))
            .map(|(h, _)| *h)
            .collect();
        Ok(plan)
    }
}
