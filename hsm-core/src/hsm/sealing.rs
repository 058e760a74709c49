//! The seal of an open HSM: reading its configuration, and rekeying (a new master key and
//! seal; the data key is re-encrypted, no other record changes).

use super::*;
use crate::seal::config::read_stored;

impl Hsm {
    /// The store's seal configuration as stored now (type, shares, generation); nothing
    /// secret.
    ///
    /// # Errors
    /// [`Error::StoreInconsistent`], [`Error::Store`].
    pub fn seal_config(&self) -> Result<SealConfig> {
        crate::seal::read_seal_config(self.store.as_ref())
    }

    /// Whether `master` (an unseal key) opens this store's seal (proof of the current seal,
    /// e.g. before a rekey).
    ///
    /// # Errors
    /// [`Error::Sealed`] if it does not; [`Error::Store`].
    pub fn check_master_key(&self, master: &MasterKey) -> Result<()> {
        load::open_seal(self.store.as_ref(), master).map(drop)
    }

    /// Replaces the seal (admins only): the root key is re-encrypted under `new_master` (the
    /// unseal key of `new_seal`, from new shares or a new passphrase) and the new seal
    /// configuration stored (its `generation` becomes the old one's plus one), in one commit
    /// with the audit entry `seal.rekey`. The root key, the data keys and every other record
    /// stay as they are, so every unsealed node of a cluster keeps working; the old key file,
    /// passphrase or shares no longer unseal any node. (A store made before root-key records
    /// gets one here: its data-key record is re-encrypted under the root key it had.)
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] for a non-admin; [`Error::ReadOnly`]; [`Error::Store`].
    pub fn rekey(
        &self,
        admin: &Session,
        new_master: &MasterKey,
        mut new_seal: SealConfig,
    ) -> Result<SealConfig> {
        let target = Some(new_seal.seal_type.as_str().to_owned());
        self.audited(admin.user(), AuditEvent::SealRekey, target, |audit| {
            admin.require(Role::Admin)?;
            self.check_writable("rekey the seal")?;
            let mut manifest = self.begin_write()?;
            let (old, stored) = read_stored(self.store.as_ref())?;
            new_seal.generation = old.generation + 1;
            let json = new_seal.to_json()?;
            let root = self.root_key()?;
            let root_rec = self.store.get(RecordKind::Seal.as_str(), ID_ROOT_KEY)?;
            let root_version = root_rec.as_ref().map_or(1, |r| r.version + 1);
            let root_blob = new_master.cipher()?.seal(
                RecordKind::Seal,
                ID_ROOT_KEY,
                root_version,
                &crate::seal::config::encode_root(root.as_bytes(), &json),
            )?;
            let config_record = |version| Record {
                kind: SEAL_CONFIG_KIND.into(),
                id: SEAL_CONFIG_ID.into(),
                version,
                blob: json.clone(),
            };
            let root_record = Record {
                kind: RecordKind::Seal.into(),
                id: ID_ROOT_KEY.into(),
                version: root_version,
                blob: root_blob,
            };
            let mut writes = vec![
                match stored {
                    Some((_, v)) => Write::Update(config_record(v + 1)),
                    None => Write::Insert(config_record(1)),
                },
                match root_rec {
                    Some(_) => Write::Update(root_record),
                    None => Write::Insert(root_record),
                },
            ];
            let mut keys = lock(&self.data_keys);
            let migrated = root_rec_missing(&writes);
            if migrated {
                // The data keys move under the root key (the old unseal key) with its binding.
                let version = keys.record_version + 1;
                writes.push(Write::Update(Record {
                    kind: RecordKind::Seal.into(),
                    id: ID_DATA_KEY.into(),
                    version,
                    blob: root.cipher()?.seal(
                        RecordKind::Seal,
                        ID_DATA_KEY,
                        version,
                        &keys.encode(ROOT_BOUND)?,
                    )?,
                }));
            }
            self.commit(&mut manifest, writes, &[], Some(audit))?;
            if migrated {
                keys.record_version += 1;
            }
            Ok(new_seal)
        })
    }
}

/// Whether `writes` insert the root-key record (a store from before root-key records).
fn root_rec_missing(writes: &[Write]) -> bool {
    writes
        .iter()
        .any(|w| matches!(w, Write::Insert(r) if r.id == ID_ROOT_KEY))
}
