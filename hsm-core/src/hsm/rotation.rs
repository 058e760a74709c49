//! Data-key rotation (Vault's `operator rotate`): a new data-key version seals every record
//! written from then on; the records under older versions are rewritten in batches, online
//! (each batch under the store's write lock, a few milliseconds; signing never waits), and
//! when none is left the older versions are destroyed. A rewrite keeps each record's version
//! and content (`Write::Rewrite`), so the manifest, the audit chain and the rollback anchor
//! are untouched; only the ciphertext changes.
//!
//! Resumable: the progress is the store itself (each record's blob names its key version),
//! so a node that stops halfway (even `kill -9`) continues where the store is, on any node.

use serde::Serialize;

use super::*;
use crate::store::format::RecordCipher;

/// Where a data-key rotation stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RotationStatus {
    /// The data-key version new records are sealed under.
    pub current_version: u32,
    /// Every version still readable (more than one while a rotation runs).
    pub versions: Vec<u32>,
    /// Records still under an older version.
    pub pending_records: u64,
    /// Records in the store (the data-key record and the seal configuration not counted).
    pub total_records: u64,
}

impl RotationStatus {
    /// Whether no record is left under an older version and the older keys are gone.
    pub fn done(&self) -> bool {
        self.versions.len() == 1
    }
}

/// The kinds a rotation rewrites: every record sealed under the data key.
fn sealed_kind(kind: &str) -> Option<RecordKind> {
    RecordKind::in_store(kind).filter(|k| *k != RecordKind::Seal)
}

impl Hsm {
    /// Starts a data-key rotation (admins only): a new random data key becomes the current
    /// version (the data-key record is re-encrypted under the master key with both), audited
    /// as `seal.rotate-data-key`. Then call [`rotation_step`](Self::rotation_step) until
    /// [`RotationStatus::done`].
    ///
    /// # Errors
    /// [`Error::PermissionDenied`]; [`Error::InvalidInput`] while a rotation is still under
    /// way; [`Error::ReadOnly`]; [`Error::Store`].
    pub fn rotate_data_key(&self, admin: &Session) -> Result<RotationStatus> {
        self.audited(admin.user(), AuditEvent::RotateDataKey, None, |audit| {
            admin.require(Role::Admin)?;
            self.check_writable("rotate the data key")?;
            let mut manifest = self.begin_write()?;
            let mut keys = lock(&self.data_keys);
            if keys.keys.len() > 1 {
                return Err(Error::invalid(
                    "a data-key rotation is under way: let it finish (`keyward operator rotate --status`)",
                ));
            }
            let next = keys.keys.iter().map(|(v, _)| *v).max().unwrap_or(0) + 1;
            let new_key = MasterKey::generate()?;
            let mut bytes = Zeroizing::new([0u8; crate::seal::MASTER_KEY_LEN]);
            bytes.copy_from_slice(new_key.as_bytes());
            keys.keys.push((next, bytes));
            keys.current = next;
            let write = self.data_keys_write(&keys)?;
            audit.set_target(format!("v{next}"));
            self.commit(&mut manifest, vec![write], &[], Some(audit))?;
            keys.record_version += 1;
            self.data_key.store(Arc::new(keys.cipher()?));
            drop(keys);
            drop(manifest);
            self.rotation_status()
        })
    }

    /// The data-key record re-encrypted (under the kept root key) with `keys`, as the next
    /// version of the record.
    pub(super) fn data_keys_write(&self, keys: &crate::seal::config::DataKeys) -> Result<Write> {
        let binding = match load::data_keys_binding(self.store.as_ref())? {
            Some(b) => b,
            None => SealConfig::key_file().to_json()?,
        };
        let version = keys.record_version + 1;
        let blob = self.root_key()?.cipher()?.seal(
            RecordKind::Seal,
            ID_DATA_KEY,
            version,
            &keys.encode(&binding)?,
        )?;
        Ok(Write::Update(Record {
            kind: RecordKind::Seal.into(),
            id: ID_DATA_KEY.into(),
            version,
            blob,
        }))
    }

    /// Reloads the data keys when another node changed the data-key record (a rotation
    /// started or finished, a rekey): called under the writer lock before catching up.
    pub(super) fn reload_data_keys_if_moved(&self) -> Result<()> {
        let Some(rec) = self.store.get(RecordKind::Seal.as_str(), ID_DATA_KEY)? else {
            return Ok(());
        };
        let mut keys = lock(&self.data_keys);
        if rec.version == keys.record_version {
            return Ok(());
        }
        let (fresh, cipher) = load::open_data_keys(self.store.as_ref(), &self.root_key()?)?;
        *keys = fresh;
        self.data_key.store(Arc::new(cipher));
        Ok(())
    }

    /// Whether a data-key rotation is under way (more than one version readable): cheap, no
    /// store access.
    pub fn rotation_pending(&self) -> bool {
        self.data_key.load().versions().len() > 1
    }

    /// How far the rotation is: records under an older data-key version, of all.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn rotation_status(&self) -> Result<RotationStatus> {
        let cipher = self.data_key.load_full();
        let current = cipher.current_version();
        let (mut pending, mut total) = (0, 0);
        for kind in self.store.kinds()? {
            if sealed_kind(&kind).is_none() {
                continue;
            }
            for rec in self.store.list(&kind)? {
                total += 1;
                if RecordCipher::version_of(&rec.blob) != Some(current) {
                    pending += 1;
                }
            }
        }
        Ok(RotationStatus {
            current_version: current,
            versions: cipher.versions(),
            pending_records: pending,
            total_records: total,
        })
    }

    /// Rewrites at most `batch` records still under an older data-key version, under the
    /// current one, in one transaction under the write lock; when none is left, destroys the
    /// older versions (the data-key record keeps only the current one; audited as
    /// `seal.data-key-destroyed`). Returns the status after it.
    ///
    /// # Errors
    /// [`Error::RecordTampered`] for a record that does not open; [`Error::ReadOnly`];
    /// [`Error::Store`].
    pub fn rotation_step(&self, batch: usize) -> Result<RotationStatus> {
        self.check_writable("rewrite records under the new data key")?;
        let mut manifest = self.begin_write()?;
        let cipher = self.data_key.load_full();
        if cipher.versions().len() == 1 {
            drop(manifest);
            return self.rotation_status();
        }
        let current = cipher.current_version();
        let mut writes = Vec::new();
        let mut left = false;
        'kinds: for kind in self.store.kinds()? {
            let Some(k) = sealed_kind(&kind) else {
                continue;
            };
            for rec in self.store.list(&kind)? {
                if RecordCipher::version_of(&rec.blob) == Some(current) {
                    continue;
                }
                if writes.len() == batch.max(1) {
                    left = true;
                    break 'kinds;
                }
                let plain = cipher.open(k, &rec.id, rec.version, &rec.blob)?;
                let blob = cipher.seal(k, &rec.id, rec.version, &plain)?;
                writes.push(Write::Rewrite(Record { blob, ..rec }));
            }
        }
        if !writes.is_empty() {
            self.store.write_batch(&writes)?;
        }
        if !left {
            // Every record is under the current version: the anchor too, then the old keys go.
            self.advance_anchor(|_| {})?;
            let mut keys = lock(&self.data_keys);
            let old: Vec<String> = keys
                .keys
                .iter()
                .filter(|(v, _)| *v != current)
                .map(|(v, _)| format!("v{v}"))
                .collect();
            keys.keys.retain(|(v, _)| *v == current);
            let write = self.data_keys_write(&keys)?;
            self.commit_audited(
                &mut manifest,
                vec![write],
                &[],
                Some(NewAuditEntry {
                    actor: "rotation",
                    event: AuditEvent::DataKeyDestroyed,
                    target: Some(&old.join(",")),
                    outcome: Outcome::Ok,
                }),
            )?;
            keys.record_version += 1;
            self.data_key.store(Arc::new(keys.cipher()?));
        }
        drop(manifest);
        self.rotation_status()
    }
}
