//! Several writers on one store (a cluster's nodes on PostgreSQL): every change is made under
//! the store's write lock ([`Backend::lock_writes`]), after catching up with what the other
//! nodes committed, so no change is made from a stale view and the manifest and the audit
//! chain stay one sequence. [`Hsm::catch_up`] is also what a node runs when the store tells it
//! of another node's commit ([`Hsm::subscribe_changes`]) and now and then.
//!
//! What catching up re-reads and verifies: the manifest (never older than the one this node
//! knows), the key and session records whose version in it moved and every user record,
//! each checked against it and opened under the data key with its kind, id and version as
//! AAD, and the audit head (its sequence never goes back). Applied all at once, or not at
//! all. (The whole store, every record and the whole audit chain, is verified at open.)

use super::sync::{updated_state, SyncPlan};
use super::*;

/// The writer mutex (the manifest) and, for a shared store, the store's write lock.
pub(super) struct WriteGuard<'a> {
    manifest: MutexGuard<'a, Manifest>,
    _cluster: Option<keyward_keystore::WriteLock>,
}

std::thread_local! {
    /// Whether this thread holds a [`WriteGuard`] (so a key lookup that misses must not wait
    /// for the writer mutex: see [`Hsm::catch_up_on_miss`]).
    static HOLDS_WRITER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        HOLDS_WRITER.with(|h| h.set(false));
    }
}

impl std::ops::Deref for WriteGuard<'_> {
    type Target = Manifest;
    fn deref(&self) -> &Manifest {
        &self.manifest
    }
}

impl std::ops::DerefMut for WriteGuard<'_> {
    fn deref_mut(&mut self) -> &mut Manifest {
        &mut self.manifest
    }
}

impl Hsm {
    /// Takes the writer mutex, then (shared store) the store's write lock, and catches up
    /// with the other writers' commits: what every change of keys and users starts with.
    pub(super) fn begin_write(&self) -> Result<WriteGuard<'_>> {
        let mut manifest = lock(&self.writer);
        let cluster = if self.read_only {
            None
        } else {
            self.store.lock_writes()?
        };
        if cluster.is_some() {
            self.catch_up_locked(&mut manifest)?;
        }
        HOLDS_WRITER.with(|h| h.set(true));
        Ok(WriteGuard {
            manifest,
            _cluster: cluster,
        })
    }

    /// Learns of the changes other nodes committed to a shared store (keys created, changed
    /// or destroyed; users; the audit head) and applies them; returns whether anything
    /// changed. On a store with one writer it changes nothing (a reader node uses
    /// [`sync_token_objects`](Self::sync_token_objects)).
    ///
    /// # Errors
    /// [`Error::StoreInconsistent`] for a manifest or audit head older than this node's, or a
    /// record missing from or not listed in the manifest; [`Error::RecordTampered`];
    /// [`Error::Store`].
    pub fn catch_up(&self) -> Result<bool> {
        if self.read_only {
            return self.sync_token_objects().map(|c| !c.is_empty());
        }
        let mut manifest = lock(&self.writer);
        let Some(_cluster) = self.store.lock_writes()? else {
            return Ok(false);
        };
        self.catch_up_locked(&mut manifest)
    }

    /// Records this node's heartbeat in a shared store (name, what it runs, the change
    /// sequence it has applied, when it started); nothing for a store with one writer.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn heartbeat(&self, node: &str, runs: &str, started_unix_ms: u64) -> Result<()> {
        if !self.store.is_shared() {
            return Ok(());
        }
        let applied = lock(&self.writer).version;
        let store_seq = self
            .store
            .version_of(RecordKind::Manifest.as_str(), ID_MANIFEST)?
            .unwrap_or(0);
        Ok(self.store.heartbeat(&keyward_keystore::NodeBeat::new(
            node.to_owned(),
            runs.to_owned(),
            applied,
            store_seq.max(applied),
            started_unix_ms,
        ))?)
    }

    /// Removes this node's heartbeat (it is stopping cleanly).
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn forget_node(&self, node: &str) -> Result<()> {
        Ok(self.store.forget_node(node)?)
    }

    /// Keeps `value` under `id` for `ttl` where every node of a shared store finds it
    /// ([`recall`](Self::recall)), sealed under the data key (the API's idempotent responses);
    /// nothing on a store with one process. The first value kept under an id stays.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn remember(&self, id: &str, value: &[u8], ttl: Duration) -> Result<()> {
        if !self.store.is_shared() {
            return Ok(());
        }
        let blob = self
            .data_key
            .load()
            .seal(RecordKind::Expiring, id, 1, value)?;
        Ok(self.store.put_expiring(id, &blob, ttl)?)
    }

    /// What [`remember`](Self::remember) kept under `id` (on any node), if it has not expired.
    ///
    /// # Errors
    /// [`Error::RecordTampered`] if it does not open; [`Error::Store`].
    pub fn recall(&self, id: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
        if !self.store.is_shared() {
            return Ok(None);
        }
        match self.store.get_expiring(id)? {
            Some(blob) => Ok(Some(self.data_key.load().open(
                RecordKind::Expiring,
                id,
                1,
                &blob,
            )?)),
            None => Ok(None),
        }
    }

    /// Whether the store can be reached now (always, for a file store): what a node's
    /// readiness reports, since writes fail while it cannot.
    ///
    /// # Errors
    /// [`Error::Store`] with the reason.
    pub fn check_store(&self) -> Result<()> {
        Ok(self.store.ping()?)
    }

    /// [`catch_up`](Self::catch_up) for a lookup that missed, on a shared store only. Not
    /// when this thread holds the writer mutex (it caught up when it took it); otherwise it
    /// waits for it, since the catch-up thread may be applying that very change.
    pub(super) fn catch_up_on_miss(&self) {
        if !self.store.is_shared() || self.read_only || HOLDS_WRITER.with(std::cell::Cell::get) {
            return;
        }
        let mut manifest = lock(&self.writer);
        if let Ok(Some(_cluster)) = self.store.lock_writes() {
            let _ = self.catch_up_locked(&mut manifest);
        }
    }

    /// [`catch_up_on_miss`](Self::catch_up_on_miss), only when the store's change sequence
    /// (one small read, no lock) is ahead of this node's: for lookups an unauthenticated
    /// caller can trigger (a token, a user name at login).
    pub(super) fn catch_up_if_moved(&self) {
        if !self.store.is_shared() || self.read_only {
            return;
        }
        let known = lock(&self.writer).version;
        let moved = self
            .store
            .version_of(RecordKind::Manifest.as_str(), ID_MANIFEST)
            .is_ok_and(|v| v.is_some_and(|v| v != known));
        if moved {
            self.catch_up_on_miss();
        }
    }

    /// A channel that receives `()` when another node may have committed a change (see
    /// [`Backend::subscribe`]); call [`catch_up`](Self::catch_up) then. `None` for a store
    /// with one writer.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn subscribe_changes(&self) -> Result<Option<std::sync::mpsc::Receiver<()>>> {
        Ok(self.store.subscribe()?)
    }

    /// [`catch_up`](Self::catch_up) with the writer mutex and the store's write lock held (no
    /// one commits meanwhile, so one read is a consistent state).
    fn catch_up_locked(&self, manifest: &mut Manifest) -> Result<bool> {
        // A rotation or rekey on another node: the data keys first, so its records open.
        self.reload_data_keys_if_moved()?;
        let missing = |what: &str| Error::StoreInconsistent {
            detail: format!("the {what} record is missing"),
        };
        let rec = self
            .store
            .get(RecordKind::Manifest.as_str(), ID_MANIFEST)?
            .ok_or_else(|| missing("manifest"))?;
        let head_rec = self
            .store
            .get(RecordKind::AuditHead.as_str(), ID_AUDIT_HEAD)?
            .ok_or_else(|| missing("audit head"))?;
        // A change of keys or users moves the manifest; every audit entry (logins too) moves
        // the audit head.
        let manifest_moved = rec.version != manifest.version;
        if !manifest_moved && head_rec.version == lock(&self.audit).record_version {
            return Ok(false);
        }
        if rec.version < manifest.version {
            return Err(went_back("manifest", manifest.version, rec.version));
        }
        let plain = self.data_key.load().open(
            RecordKind::AuditHead,
            ID_AUDIT_HEAD,
            head_rec.version,
            &head_rec.blob,
        )?;
        let mut head: AuditHead = serde_json::from_slice(&plain)
            .map_err(|_| tampered(RecordKind::AuditHead, ID_AUDIT_HEAD))?;
        head.record_version = head_rec.version;
        let changes = if manifest_moved {
            let plain = self.data_key.load().open(
                RecordKind::Manifest,
                ID_MANIFEST,
                rec.version,
                &rec.blob,
            )?;
            let mut next: Manifest = serde_json::from_slice(&plain)
                .map_err(|_| tampered(RecordKind::Manifest, ID_MANIFEST))?;
            next.version = rec.version;
            let changes = self.read_changes(manifest, &next)?;
            Some((next, changes))
        } else {
            None
        };
        {
            let current = lock(&self.audit);
            if head.seq < current.seq {
                return Err(went_back("audit chain", current.seq, head.seq));
            }
        }

        // Everything verified: apply it all (locks in their order: users, sessions, audit).
        if let Some((next, changes)) = changes {
            self.apply_sync(changes.keys);
            *lock(&self.users) = changes
                .users
                .into_iter()
                .map(|(u, v)| (u.name.clone(), (u, v)))
                .collect();
            self.apply_session_changes(changes.sessions, &changes.sessions_removed);
            *manifest = next;
        }
        let mut current_head = lock(&self.audit);
        *current_head = head;
        let mut anchor = lock(&self.anchor);
        anchor.manifest_version = manifest.version;
        anchor.audit_seq = current_head.seq;
        anchor.audit_hash = current_head.hash.clone();
        Ok(true)
    }

    /// What changed from `old` to `next` (the manifests this node knows and the store's):
    /// of keys and sessions, only the records whose version moved are read (so a catch-up
    /// costs the changes, not the number of keys); users are all read. Each record is opened
    /// under the data key and checked against `next`.
    fn read_changes(&self, old: &Manifest, next: &Manifest) -> Result<Changes> {
        let moved = |kind: RecordKind| -> (Vec<(String, u64)>, Vec<String>) {
            let prefix = manifest_key(kind, "");
            let changed = next
                .records
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?, *v)))
                .filter(|(id, v)| old.records.get(&manifest_key(kind, id)) != Some(v))
                .map(|(id, v)| (id.to_owned(), v))
                .collect();
            let removed = old
                .records
                .keys()
                .filter_map(|k| k.strip_prefix(&prefix))
                .filter(|id| !next.records.contains_key(&manifest_key(kind, id)))
                .map(str::to_owned)
                .collect();
            (changed, removed)
        };
        let fetch = |kind: RecordKind, id: &str, version: u64| -> Result<Record> {
            let rec =
                self.store
                    .get(kind.as_str(), id)?
                    .ok_or_else(|| Error::StoreInconsistent {
                        detail: format!("record {} is missing", printable(&manifest_key(kind, id))),
                    })?;
            if rec.version != version {
                return Err(Error::StoreInconsistent {
                    detail: format!(
                        "record {} is at version {}, the manifest says {version}",
                        printable(&manifest_key(kind, id)),
                        rec.version
                    ),
                });
            }
            Ok(rec)
        };

        let (changed, removed) = moved(RecordKind::Key);
        let current = self.objects.load();
        let mut keys = SyncPlan::default();
        for (id, version) in changed {
            let rec = fetch(RecordKind::Key, &id, version)?;
            let handle: KeyHandle = id.parse().map_err(|_| tampered(RecordKind::Key, &id))?;
            let loaded = load_object(&self.data_key.load(), &rec)?;
            match current.get(&handle) {
                Some(o) if o.session.is_some() => {
                    return Err(Error::StoreInconsistent {
                        detail: format!(
                            "record {} has the handle of a session object of this node",
                            printable(&manifest_key(RecordKind::Key, &id))
                        ),
                    })
                }
                Some(o) => {
                    let state = updated_state(&o.state.load(), &loaded, &id)?;
                    keys.updated.push((o.clone(), state));
                }
                None => keys.added.push(Arc::new(loaded)),
            }
        }
        for id in removed {
            keys.removed
                .push(id.parse().map_err(|_| tampered(RecordKind::Key, &id))?);
        }

        // Users are few, and a user deleted and made again starts again at version 1: read
        // them all (keys and sessions have random 64-bit handles and token digests, never
        // reused, so a changed version is a changed record).
        let mut users = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for rec in self.store.list(RecordKind::User.as_str())? {
            let name = manifest_key(RecordKind::User, &rec.id);
            if next.records.get(&name) != Some(&rec.version) {
                return Err(Error::StoreInconsistent {
                    detail: format!(
                        "record {} at version {} is not the manifest's",
                        printable(&name),
                        rec.version
                    ),
                });
            }
            let plain =
                self.data_key
                    .load()
                    .open(RecordKind::User, &rec.id, rec.version, &rec.blob)?;
            let user: UserRecord =
                serde_json::from_slice(&plain).map_err(|_| tampered(RecordKind::User, &rec.id))?;
            if user.name != rec.id {
                return Err(tampered(RecordKind::User, &rec.id));
            }
            seen.insert(name);
            users.push((user, rec.version));
        }
        let user_prefix = manifest_key(RecordKind::User, "");
        if let Some(missing) = next
            .records
            .keys()
            .filter(|k| k.starts_with(&user_prefix))
            .find(|k| !seen.contains(*k))
        {
            return Err(Error::StoreInconsistent {
                detail: format!("record {} is missing", printable(missing)),
            });
        }

        let (changed, removed) = moved(RecordKind::Session);
        let mut sessions = Vec::new();
        for (id, version) in changed {
            let rec = fetch(RecordKind::Session, &id, version)?;
            sessions.push(super::sessions::open_session_record(
                &self.data_key.load(),
                &rec,
            )?);
        }
        let sessions_removed = removed
            .iter()
            .map(|id| super::sessions::digest_of(id))
            .collect::<Result<Vec<_>>>()?;
        Ok(Changes {
            keys,
            users,
            sessions,
            sessions_removed,
        })
    }
}

/// The records another node changed, read and verified ([`Hsm::read_changes`]).
struct Changes {
    keys: SyncPlan,
    /// Every user (they replace this node's).
    users: Vec<(UserRecord, u64)>,
    sessions: Vec<([u8; 32], super::sessions::SessionRecord)>,
    sessions_removed: Vec<[u8; 32]>,
}

fn went_back(what: &str, known: u64, found: u64) -> Error {
    Error::StoreInconsistent {
        detail: format!(
            "the {what} went back from {known} to {found} (a rolled-back or restored store)"
        ),
    }
}

/// The store's change sequence: the version of its manifest, which every change of keys,
/// users and sessions raises by one (0 for an empty store). Read without the master key.
///
/// # Errors
/// [`Error::Store`].
pub fn store_sequence(store: &dyn Backend) -> Result<u64> {
    Ok(store
        .get(RecordKind::Manifest.as_str(), ID_MANIFEST)?
        .map_or(0, |r| r.version))
}

impl Hsm {
    /// Claims `period` (e.g. `backup-schedule/123`) for `node`, for `ttl`: whether this node
    /// got it. On a store several nodes write, the first claim wins (the database's
    /// expiring-entry table, first writer wins); on a store with one writer, always.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn claim_period(&self, period: &str, node: &str, ttl: std::time::Duration) -> Result<bool> {
        if !self.store.is_shared() {
            return Ok(true);
        }
        let id = format!("claim/{period}");
        self.store.put_expiring(&id, node.as_bytes(), ttl)?;
        Ok(self.store.get_expiring(&id)?.as_deref() == Some(node.as_bytes()))
    }
}
