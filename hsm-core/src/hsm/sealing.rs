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

    /// Whether `master` opens this store's data-key record (proof of the current seal, e.g.
    /// before a rekey).
    ///
    /// # Errors
    /// [`Error::Sealed`] if it does not; [`Error::Store`].
    pub fn check_master_key(&self, master: &MasterKey) -> Result<()> {
        let rec = self
            .store
            .get(RecordKind::Seal.as_str(), ID_DATA_KEY)?
            .ok_or(Error::Sealed {
                reason: "the store has no data key",
            })?;
        master
            .cipher()?
            .open(RecordKind::Seal, ID_DATA_KEY, rec.version, &rec.blob)
            .map(drop)
            .map_err(|_| Error::Sealed {
                reason: "the master key does not open this store",
            })
    }

    /// Replaces the master key with `new_master` and the seal with `new_seal` (admins only):
    /// re-encrypts the data-key record under the new master key and stores the new seal
    /// configuration (its `generation` becomes the old one's plus one), in one commit with
    /// the audit entry `seal.rekey`. Every other record is untouched; the old key file,
    /// passphrase or shares stop opening the store. Nodes of a cluster that are unsealed stay
    /// unsealed; each next unseal takes the new seal.
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
            let rec = self
                .store
                .get(RecordKind::Seal.as_str(), ID_DATA_KEY)?
                .ok_or(Error::Sealed {
                    reason: "the store has no data key",
                })?;
            let version = rec.version + 1;
            let plain = lock(&self.data_keys).encode(&json)?;
            let blob = new_master
                .cipher()?
                .seal(RecordKind::Seal, ID_DATA_KEY, version, &plain)?;
            let config_record = |version| Record {
                kind: SEAL_CONFIG_KIND.into(),
                id: SEAL_CONFIG_ID.into(),
                version,
                blob: json.clone(),
            };
            let writes = vec![
                match stored {
                    Some((_, v)) => Write::Update(config_record(v + 1)),
                    None => Write::Insert(config_record(1)),
                },
                Write::Update(Record {
                    kind: RecordKind::Seal.into(),
                    id: ID_DATA_KEY.into(),
                    version,
                    blob,
                }),
            ];
            self.commit(&mut manifest, writes, &[], Some(audit))?;
            lock(&self.data_keys).record_version = version;
            self.set_master(new_master);
            Ok(new_seal)
        })
    }
}
