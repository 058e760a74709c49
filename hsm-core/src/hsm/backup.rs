//! Backups of an open HSM and restores into an empty store (format: [`crate::backup`]).

use super::*;
use crate::backup::{open_archive, seal_archive, ArchiveInfo, BackupHeader};

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Hsm {
    /// A backup archive of the whole store (admins only): every record (keys, users, sessions,
    /// the manifest, the audit chain, the seal), read under the store's write lock so that it
    /// is one consistent state, encrypted under a new backup key wrapped by this seal's master
    /// key. Audited as `backup.create` (after the archive, so the archive does not hold it).
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] for a non-admin; [`Error::Store`].
    pub fn backup(&self, admin: &Session, node: &str) -> Result<(BackupHeader, Vec<u8>)> {
        self.audited(admin.user(), AuditEvent::BackupCreate, None, |audit| {
            admin.require(Role::Admin)?;
            let (header, archive) = self.take_backup(node, false)?;
            audit.set_target(format!("{} records={}", header.id, header.records));
            Ok((header, archive))
        })
    }

    /// [`backup`](Self::backup) for the process that holds the store's master key itself
    /// (the command line on the data directory, a node's backup schedule: `scheduled`): no
    /// session; audited as `backup.create` by `actor`.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn backup_as(
        &self,
        actor: &str,
        node: &str,
        scheduled: bool,
    ) -> Result<(BackupHeader, Vec<u8>)> {
        self.audited(actor, AuditEvent::BackupCreate, None, |audit| {
            let (header, archive) = self.take_backup(node, scheduled)?;
            audit.set_target(format!("{} records={}", header.id, header.records));
            Ok((header, archive))
        })
    }

    /// This store's id (see `BackupHeader::store_id`).
    ///
    /// # Errors
    /// [`Error::Internal`] (never in practice).
    pub fn store_id(&self) -> Result<String> {
        Ok(crate::backup::store_id(&self.root_key()?))
    }

    fn take_backup(&self, node: &str, scheduled: bool) -> Result<(BackupHeader, Vec<u8>)> {
        let root = self.root_key()?;
        let kek = crate::backup::wrapping_key(&root);
        let (records, sequence) = {
            let manifest = self.begin_write()?;
            let mut records = Vec::new();
            for kind in self.store.kinds()? {
                records.extend(self.store.list(&kind)?);
            }
            (records, manifest.version)
        };
        let root_record = records
            .iter()
            .find(|r| r.kind == RecordKind::Seal.as_str() && r.id == ID_ROOT_KEY)
            .map(|r| (r.version, r.blob.clone()));
        let info = ArchiveInfo {
            root_record,
            node: node.to_owned(),
            store_id: crate::backup::store_id(&root),
            scheduled,
            store_sequence: sequence,
            seal: self.seal_config()?,
            created_unix_ms: now_unix_ms(),
        };
        let archive = seal_archive(&records, info, &kek)?;
        let header = crate::backup::read_header(&archive)?;
        Ok((header, archive))
    }

    /// Restores `archive` into `store` with the master key of the archive's seal and opens
    /// it: the store must be empty unless `replace` (then its records are replaced in the same
    /// transaction). The restored store's audit chain continues, with `store.restore` (the
    /// archive's id and time, by `actor`) appended; its rollback anchor is set to the
    /// restored state (the one way a store may go back in time).
    ///
    /// # Errors
    /// [`Error::BackupInvalid`] for a damaged or changed archive or a store that is not empty;
    /// [`Error::UnsealKeyRejected`] for a master key of another seal; [`Error::Store`]; and
    /// what [`Hsm::open`] refuses.
    pub fn restore(
        store: Box<dyn Backend>,
        archive: &[u8],
        master: &MasterKey,
        actor: &str,
        replace: bool,
    ) -> Result<(Hsm, BackupHeader)> {
        let (header, records) = open_archive(archive, master)?;
        let mut writes = Vec::new();
        for kind in store.kinds()? {
            if !replace {
                return Err(Error::BackupInvalid {
                    reason: "the target store is not empty: restore into an empty store (a new data directory or database), or replace its contents (--force)".into(),
                });
            }
            for r in store.list(&kind)? {
                writes.push(Write::Delete(r.kind, r.id, r.version));
            }
        }
        writes.extend(records.into_iter().map(Write::Insert));
        store.write_batch(&writes)?;
        // The anchor of the restored state: its manifest and audit head.
        let (_, _, data_key) = load::open_seal(store.as_ref(), master)?;
        let manifest: Manifest =
            open_json(&data_key, store.as_ref(), RecordKind::Manifest, ID_MANIFEST)?.ok_or(
                Error::BackupInvalid {
                    reason: "the archive holds no manifest".into(),
                },
            )?;
        let manifest_version = store
            .get(RecordKind::Manifest.as_str(), ID_MANIFEST)?
            .map_or(0, |r| r.version);
        let head: AuditHead = open_json(
            &data_key,
            store.as_ref(),
            RecordKind::AuditHead,
            ID_AUDIT_HEAD,
        )?
        .ok_or(Error::BackupInvalid {
            reason: "the archive holds no audit head".into(),
        })?;
        drop(manifest);
        store.write_anchor(&integrity::seal_anchor(
            &data_key,
            &integrity::Anchor {
                manifest_version,
                audit_seq: head.seq,
                audit_hash: head.hash,
            },
        )?)?;
        let hsm = Hsm::open(store, master)?;
        hsm.audit_append(
            actor,
            AuditEvent::StoreRestore,
            Some(&format!(
                "backup {} taken {} ms by {} at sequence {}",
                header.id, header.created_unix_ms, header.node, header.store_sequence
            )),
            Outcome::Ok,
        )?;
        Ok((hsm, header))
    }

    pub(super) fn set_master(&self, root: &MasterKey) {
        lock(&self.master).copy_from_slice(root.as_bytes());
    }

    /// The root key kept while unsealed.
    pub(super) fn root_key(&self) -> Result<MasterKey> {
        MasterKey::from_bytes(&lock(&self.master)[..])
    }
}
