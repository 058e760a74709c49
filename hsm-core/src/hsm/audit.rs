//! Appending to the audit trail and reading it back: the entry for each management operation,
//! seal and unseal records, `audit_entries` and `verify_audit`. The chain itself (hashing,
//! verification) is in [`crate::audit`].

use super::*;

/// One audit entry to append: who, what, on what, how it ended.
pub(super) struct AuditEvent<'a> {
    pub(super) actor: &'a str,
    pub(super) event: &'a str,
    pub(super) target: Option<&'a str>,
    pub(super) outcome: &'a str,
}

impl Hsm {
    /// The writes that append `event` after `head`, and the head they make.
    pub(super) fn audit_writes(
        &self,
        head: &AuditHead,
        event: &AuditEvent<'_>,
    ) -> Result<(Vec<Write>, AuditHead)> {
        let entry = AuditEntry {
            seq: head.seq + 1,
            time_unix_ms: crate::audit::now_unix_ms(),
            actor: event.actor.into(),
            event: event.event.into(),
            target: event.target.map(Into::into),
            outcome: event.outcome.into(),
            prev_hash: head.hash.clone(),
        };
        let next = AuditHead {
            seq: entry.seq,
            hash: crate::audit::chain_hash(&entry),
            record_version: head.record_version + 1,
        };
        let writes = vec![
            Write::Insert(seal_json(
                &self.data_key,
                KIND_AUDIT,
                &crate::audit::record_id(entry.seq),
                1,
                &entry,
            )?),
            Write::Update(seal_json(
                &self.data_key,
                KIND_AUDIT_HEAD,
                ID_AUDIT_HEAD,
                next.record_version,
                &next,
            )?),
        ];
        Ok((writes, next))
    }

    pub(super) fn audit_append(
        &self,
        actor: &str,
        event: &str,
        target: Option<&str>,
        outcome: &str,
    ) -> Result<()> {
        self.check_writable("write an audit record")?;
        let mut head = lock(&self.audit);
        let (writes, next) = self.audit_writes(
            &head,
            &AuditEvent {
                actor,
                event,
                target,
                outcome,
            },
        )?;
        self.store.write_batch(&writes)?;
        let (seq, hash) = (next.seq, next.hash.clone());
        *head = next;
        self.advance_anchor(|a| {
            a.audit_seq = seq;
            a.audit_hash = hash;
        })
    }

    pub(super) fn audit_result<T>(
        &self,
        actor: &str,
        event: &str,
        target: Option<&str>,
        res: &Result<T>,
    ) -> Result<()> {
        let outcome = match res {
            Ok(_) => "ok",
            Err(Error::PermissionDenied { .. } | Error::AttributeViolation { .. }) => "denied",
            Err(_) => "failed",
        };
        self.audit_append(actor, event, target, outcome)
    }

    /// Records that this node unsealed the HSM and started serving (the caller decides when:
    /// opening the store itself writes nothing).
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn record_unseal(&self, node: &str) -> Result<()> {
        self.audit_append(node, "unseal", None, "ok")
    }

    /// Records that this node stops serving and drops its unsealed keys.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn record_seal(&self, node: &str) -> Result<()> {
        self.audit_append(node, "seal", None, "ok")
    }

    /// Audit entries `from` (sequence number, from 1) on, at most `limit` (admin only).
    ///
    /// # Errors
    /// [`Error::PermissionDenied`]; [`Error::RecordTampered`] for an entry that does not open.
    pub fn audit_entries(
        &self,
        admin: &Session,
        from: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        admin.require(Role::Admin)?;
        let mut out = Vec::new();
        let last = lock(&self.audit).seq;
        let mut seq = from.max(1);
        while seq <= last && out.len() < limit {
            let id = crate::audit::record_id(seq);
            let entry: AuditEntry =
                open_json(&self.data_key, self.store.as_ref(), KIND_AUDIT, &id)?.ok_or_else(
                    || Error::StoreInconsistent {
                        detail: format!("audit entry {seq} is missing"),
                    },
                )?;
            out.push(entry);
            seq += 1;
        }
        Ok(out)
    }

    /// Checks the whole audit chain (admin only).
    ///
    /// # Errors
    /// [`Error::PermissionDenied`]; [`Error::Store`]. Problems in the chain are reported in
    /// the [`AuditReport`], not as errors.
    pub fn verify_audit(&self, admin: &Session) -> Result<AuditReport> {
        admin.require(Role::Admin)?;
        let head: Option<AuditHead> = open_json(
            &self.data_key,
            self.store.as_ref(),
            KIND_AUDIT_HEAD,
            ID_AUDIT_HEAD,
        )
        .unwrap_or_default();
        let Some(head) = head else {
            return Ok(AuditReport {
                entries: 0,
                intact: false,
                problem: Some("the audit head record is missing or does not open".into()),
            });
        };
        // The whole truth: damage an operator accepted at start-up is reported here too.
        let records = self.store.list(KIND_AUDIT)?;
        Ok(crate::audit::verify_chain(
            &self.data_key,
            &records,
            &head,
            &[],
        ))
    }
}
