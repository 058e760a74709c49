//! The one way the HSM changes its store: `commit_audited` writes a change, the updated
//! manifest and (when given) its audit entry in one batch, then advances the rollback anchor.

use super::*;

impl Hsm {
    /// Writes `writes` plus the updated manifest, and the entry of the operation's `audit`
    /// (see [`Hsm::audited`]), in one transaction. `changes` lists `(kind, id, new version or
    /// None for deleted)`.
    pub(super) fn commit(
        &self,
        manifest: &mut Manifest,
        writes: Vec<Write>,
        changes: &[(RecordKind, &str, Option<u64>)],
        audit: Option<&Audit<'_>>,
    ) -> Result<()> {
        match audit {
            Some(a) => {
                a.entry(|e| self.commit_audited(manifest, writes, changes, Some(e)))?;
                a.mark_written();
                Ok(())
            }
            None => self.commit_audited(manifest, writes, changes, None),
        }
    }

    /// Writes `writes`, the updated manifest and, with `audit`, its audit entry in one
    /// transaction (so the change and its record cannot part, and every such change costs the
    /// same one commit). `changes` lists `(kind, id, new version or None for deleted)`.
    /// Lock order: the caller holds the writer lock (`manifest`); the audit head's is taken
    /// here.
    pub(super) fn commit_audited(
        &self,
        manifest: &mut Manifest,
        mut writes: Vec<Write>,
        changes: &[(RecordKind, &str, Option<u64>)],
        audit: Option<NewAuditEntry<'_>>,
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
                Some(v) => next.records.insert(manifest_key(*kind, id), *v),
                None => next.records.remove(&manifest_key(*kind, id)),
            };
        }
        next.version = manifest.version + 1;
        writes.push(Write::Update(seal_json(
            &self.data_key.load(),
            RecordKind::Manifest,
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
}
