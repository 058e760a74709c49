//! Sessions on a store several nodes share: each login session is also a record (kind
//! `session`, id = the hex SHA-256 of its bearer token; user, role and expiry, encrypted like
//! every record and listed in the manifest, so a deleted session cannot be put back), written
//! with the login's audit entry. Every node learns of it when it catches up, so a token from
//! one node works on every node; logout, and a lock, deletion or password reset that ends a
//! user's sessions, delete the records, which ends them on every node. A restarted node
//! finds the sessions still valid. On a store with one writer, sessions stay in memory only.

use serde::{Deserialize, Serialize};

use super::*;

/// What a session record holds.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SessionRecord {
    user: String,
    role: Role,
    /// When the session ends, in ms since the Unix epoch.
    expires_unix_ms: u64,
}

/// The record id of the session whose token has this SHA-256.
fn record_id(digest: &[u8; 32]) -> String {
    hex::encode(digest)
}

/// The token digest a session record's id names.
pub(super) fn digest_of(id: &str) -> Result<[u8; 32]> {
    hex::decode(id)
        .ok()
        .and_then(|d| d.try_into().ok())
        .ok_or_else(|| tampered(RecordKind::Session, id))
}

/// One session record, opened under the data key.
pub(super) fn open_session_record(
    data_key: &RecordCipher,
    rec: &Record,
) -> Result<([u8; 32], SessionRecord)> {
    let plain = data_key.open(RecordKind::Session, &rec.id, rec.version, &rec.blob)?;
    let session: SessionRecord =
        serde_json::from_slice(&plain).map_err(|_| tampered(RecordKind::Session, &rec.id))?;
    Ok((digest_of(&rec.id)?, session))
}

/// Every session record of `store`, opened and checked against `manifest` (the same
/// versions; none missing, none extra), by token digest.
pub(super) fn read_session_records(
    store: &dyn Backend,
    data_key: &RecordCipher,
    manifest: &Manifest,
) -> Result<HashMap<[u8; 32], SessionRecord>> {
    let mut out = HashMap::new();
    for rec in store.list(RecordKind::Session.as_str())? {
        let name = manifest_key(RecordKind::Session, &rec.id);
        if manifest.records.get(&name) != Some(&rec.version) {
            return Err(Error::StoreInconsistent {
                detail: format!(
                    "record {} at version {} is not the manifest's",
                    printable(&name),
                    rec.version
                ),
            });
        }
        let (digest, session) = open_session_record(data_key, &rec)?;
        out.insert(digest, session);
    }
    let prefix = manifest_key(RecordKind::Session, "");
    if let Some(missing) = manifest
        .records
        .keys()
        .filter_map(|k| k.strip_prefix(&prefix))
        .find(|id| !out.keys().any(|d| record_id(d) == *id))
    {
        return Err(Error::StoreInconsistent {
            detail: format!(
                "record {} is missing",
                printable(&manifest_key(RecordKind::Session, missing))
            ),
        });
    }
    Ok(out)
}

impl Hsm {
    /// A new session for `user` (from a record: what is left of its lifetime); `None` once
    /// it has expired.
    fn session_of(&self, record: &SessionRecord) -> Option<Session> {
        let left = record
            .expires_unix_ms
            .checked_sub(crate::audit::now_unix_ms())
            .filter(|ms| *ms > 0)?;
        Some(Session::new(
            self.next_session.fetch_add(1, Ordering::Relaxed),
            &record.user,
            record.role,
            Some(Duration::from_millis(left)),
        ))
    }

    /// The sessions `records` describe, for a node opening a shared store.
    pub(super) fn restore_sessions(&self, records: &HashMap<[u8; 32], SessionRecord>) {
        let mut sessions = lock(&self.sessions);
        for (digest, record) in records {
            if let Some(s) = self.session_of(record) {
                sessions.insert(*digest, s);
            }
        }
    }

    /// Applies the session records another node added and removed (catching up): new
    /// sessions are accepted here, removed ones end here too (their session objects
    /// destroyed). The caller holds the writer mutex.
    pub(super) fn apply_session_changes(
        &self,
        added: Vec<([u8; 32], SessionRecord)>,
        removed: &[[u8; 32]],
    ) {
        let mut ended = Vec::new();
        {
            let mut sessions = lock(&self.sessions);
            for digest in removed {
                if let Some(s) = sessions.remove(digest) {
                    s.inner.closed.store(true, Ordering::Release);
                    ended.push(s.id());
                }
            }
            for (digest, record) in added {
                if let std::collections::hash_map::Entry::Vacant(slot) = sessions.entry(digest) {
                    if let Some(s) = self.session_of(&record) {
                        slot.insert(s);
                    }
                }
            }
        }
        for id in ended {
            self.remove_session_objects(id);
        }
    }

    /// Registers a new login session: on a shared store, its record, the records of sessions
    /// that have expired, and the login's audit entry in one commit; else in memory, with the
    /// audit entry appended.
    pub(super) fn add_session(
        &self,
        digest: [u8; 32],
        session: Session,
        ttl: Duration,
    ) -> Result<()> {
        let name = session.user().to_owned();
        if !self.store.is_shared() {
            lock(&self.sessions).insert(digest, session);
            return self.audit_append(&name, AuditEvent::Login, None, Outcome::Ok);
        }
        let audit = Audit::new(&name, AuditEvent::Login, None);
        let mut manifest = self.begin_write()?;
        let id = record_id(&digest);
        let record = SessionRecord {
            user: session.user().to_owned(),
            role: session.role(),
            expires_unix_ms: crate::audit::now_unix_ms()
                .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
        };
        let mut writes = vec![Write::Insert(seal_json(
            &self.data_key.load(),
            RecordKind::Session,
            &id,
            1,
            &record,
        )?)];
        let mut gone = Vec::new();
        for (d, s) in lock(&self.sessions).iter() {
            let rid = record_id(d);
            if let (false, Some(v)) = (
                s.is_active(),
                manifest
                    .records
                    .get(&manifest_key(RecordKind::Session, &rid)),
            ) {
                writes.push(Write::Delete(RecordKind::Session.into(), rid.clone(), *v));
                gone.push(rid);
            }
        }
        let mut changes: Vec<(RecordKind, &str, Option<u64>)> =
            vec![(RecordKind::Session, id.as_str(), Some(1))];
        changes.extend(gone.iter().map(|r| (RecordKind::Session, r.as_str(), None)));
        self.commit(&mut manifest, writes, &changes, Some(&audit))?;
        let mut sessions = lock(&self.sessions);
        sessions.retain(|d, _| !gone.contains(&record_id(d)));
        sessions.insert(digest, session);
        Ok(())
    }

    /// Deletes the records of the sessions with these token digests (shared store only), so
    /// that they end on every node; with `audit` (actor, event), in the same commit as its
    /// entry (or as an entry of its own when no record is left to delete).
    pub(super) fn forget_sessions(
        &self,
        digests: &[[u8; 32]],
        audit: Option<(&str, AuditEvent)>,
    ) -> Result<()> {
        let audit_entry = audit.map(|(actor, event)| Audit::new(actor, event, None));
        if self.store.is_shared() {
            let mut manifest = self.begin_write()?;
            let ids: Vec<(String, u64)> = digests
                .iter()
                .map(record_id)
                .filter_map(|id| {
                    let v = *manifest
                        .records
                        .get(&manifest_key(RecordKind::Session, &id))?;
                    Some((id, v))
                })
                .collect();
            if !ids.is_empty() {
                let writes = ids
                    .iter()
                    .map(|(id, v)| Write::Delete(RecordKind::Session.into(), id.clone(), *v))
                    .collect();
                let changes: Vec<(RecordKind, &str, Option<u64>)> = ids
                    .iter()
                    .map(|(id, _)| (RecordKind::Session, id.as_str(), None))
                    .collect();
                return self.commit(&mut manifest, writes, &changes, audit_entry.as_ref());
            }
        }
        match audit {
            Some((actor, event)) => self.audit_append(actor, event, None, Outcome::Ok),
            None => Ok(()),
        }
    }
}
