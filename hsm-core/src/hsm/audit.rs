//! Appending to the audit trail and reading it back: the entry for each management operation,
//! seal and unseal records, `audit_entries` and `verify_audit`. The chain itself (hashing,
//! verification) is in [`crate::audit`].

use super::*;

/// What an audit entry records: the operation. Its text (the entry's `event` field, e.g.
/// `key.generate`) is [`AuditEvent::name`]; tools and tests read these names, so they do not
/// change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AuditEvent {
    HsmCreate,
    Unseal,
    Seal,
    SealRekey,
    RotateDataKey,
    DataKeyDestroyed,
    BackupCreate,
    StoreRestore,
    KeyGenerate,
    KeyImport,
    KeyUnwrap,
    KeyDerive,
    KeyWrap,
    KeySetAttribute(AttributeName),
    KeyShare,
    KeyUnshare,
    KeyDestroy,
    KeyDestroyByAdmin,
    KeyRotate,
    KeyConfigVersions,
    KeyTrimVersions,
    TicketKeysRelease,
    CaCreate,
    CaIssue,
    CaRevoke,
    CaCrl,
    DataKeyGenerate,
    DataKeyUnwrap,
    UserCreate,
    UserBootstrapAdmin,
    UserDelete,
    UserChangePassword,
    UserOfflineResetPassword,
    UserLockoutExpired,
    Login,
    LoginCertificate,
    Logout,
    StoreRollbackAccepted,
    AuditDamageAccepted,
}

impl AuditEvent {
    /// The entry's `event` text.
    pub(super) fn name(self) -> std::borrow::Cow<'static, str> {
        use AuditEvent::*;
        std::borrow::Cow::Borrowed(match self {
            HsmCreate => "hsm.create",
            Unseal => "unseal",
            Seal => "seal",
            SealRekey => "seal.rekey",
            RotateDataKey => "seal.rotate-data-key",
            DataKeyDestroyed => "seal.data-key-destroyed",
            BackupCreate => "backup.create",
            StoreRestore => "store.restore",
            KeyGenerate => "key.generate",
            KeyImport => "key.import",
            KeyUnwrap => "key.unwrap",
            KeyDerive => "key.derive",
            KeyWrap => "key.wrap",
            KeySetAttribute(name) => {
                return std::borrow::Cow::Owned(format!("key.set-attribute.{name}"))
            }
            KeyShare => "key.share",
            KeyUnshare => "key.unshare",
            KeyDestroy => "key.destroy",
            KeyDestroyByAdmin => "key.destroy-by-admin",
            KeyRotate => "key.rotate",
            KeyConfigVersions => "key.config-versions",
            KeyTrimVersions => "key.trim-versions",
            TicketKeysRelease => "tls.ticket-keys-release",
            CaCreate => "ca.create",
            CaIssue => "ca.issue",
            CaRevoke => "ca.revoke",
            CaCrl => "ca.crl",
            DataKeyGenerate => "crypto.data-key",
            DataKeyUnwrap => "crypto.data-key-unwrap",
            UserCreate => "user.create",
            UserBootstrapAdmin => "user.bootstrap-admin",
            UserDelete => "user.delete",
            UserChangePassword => "user.change-password",
            UserOfflineResetPassword => "user.offline-reset-password",
            UserLockoutExpired => "user.lockout-expired",
            Login => "login",
            LoginCertificate => "login.certificate",
            Logout => "logout",
            StoreRollbackAccepted => "store.rollback-accepted",
            AuditDamageAccepted => "audit.damage-accepted",
        })
    }
}

/// How an audited operation ended (the entry's `outcome` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Done.
    Ok,
    /// Refused by policy: role, ownership or a key attribute.
    Denied,
    /// Any other error.
    Failed,
    /// A login refused because the account is locked.
    Locked,
    /// A failed login that locked the account.
    FailedAndLocked,
}

impl Outcome {
    /// The outcome of an operation that returned `res`.
    pub(super) fn of<T>(res: &Result<T>) -> Self {
        match res {
            Ok(_) => Outcome::Ok,
            Err(
                Error::PermissionDenied { .. }
                | Error::AttributeViolation { .. }
                | Error::KeyVersionRetired { .. },
            ) => Outcome::Denied,
            Err(_) => Outcome::Failed,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
            Outcome::Locked => "locked",
            Outcome::FailedAndLocked => "failed; user locked",
        }
    }
}

/// One audit entry to append: who, what, on what, how it ended.
pub(super) struct NewAuditEntry<'a> {
    pub(super) actor: &'a str,
    pub(super) event: AuditEvent,
    pub(super) target: Option<&'a str>,
    pub(super) outcome: Outcome,
}

/// The audit entry of one management operation run by [`Hsm::audited`]. When the operation
/// commits a change, [`Hsm::commit`] writes this entry (outcome `ok`) in the same batch, so a
/// change and its record never part; otherwise (refused, failed, or nothing stored, as for
/// session objects and wraps) `audited` appends it when the operation returns.
pub(super) struct Audit<'a> {
    actor: &'a str,
    event: AuditEvent,
    target: std::cell::RefCell<Option<String>>,
    /// `ok` unless the operation says otherwise (a failed login is recorded with its change).
    outcome: std::cell::Cell<Outcome>,
    written: std::cell::Cell<bool>,
}

impl<'a> Audit<'a> {
    /// The entry of an operation that is written only with its change: nothing is recorded
    /// if the operation fails before it commits (use [`Hsm::audited`] to record failures too).
    pub(super) fn new(actor: &'a str, event: AuditEvent, target: Option<String>) -> Self {
        Audit {
            actor,
            event,
            target: std::cell::RefCell::new(target),
            outcome: std::cell::Cell::new(Outcome::Ok),
            written: std::cell::Cell::new(false),
        }
    }

    /// Names what the operation acts on, once it is known (a new key's handle).
    pub(super) fn set_target(&self, target: String) {
        *self.target.borrow_mut() = Some(target);
    }

    /// Sets the outcome the entry records when it is written with the change.
    pub(super) fn set_outcome(&self, outcome: Outcome) {
        self.outcome.set(outcome);
    }

    /// Builds the entry that goes into the operation's commit, and calls `f`
    /// with it.
    pub(super) fn entry<R>(&self, f: impl FnOnce(NewAuditEntry<'_>) -> R) -> R {
        let target = self.target.borrow();
        f(NewAuditEntry {
            actor: self.actor,
            event: self.event,
            target: target.as_deref(),
            outcome: self.outcome.get(),
        })
    }

    /// Marks the entry as written with the operation's change.
    pub(super) fn mark_written(&self) {
        self.written.set(true);
    }
}

impl Hsm {
    /// The writes that append `event` after `head`, and the head they make.
    pub(super) fn audit_writes(
        &self,
        head: &AuditHead,
        event: &NewAuditEntry<'_>,
    ) -> Result<(Vec<Write>, AuditHead)> {
        let entry = AuditEntry {
            seq: head.seq + 1,
            time_unix_ms: crate::audit::now_unix_ms(),
            actor: event.actor.into(),
            event: event.event.name().into_owned(),
            target: event.target.map(Into::into),
            outcome: event.outcome.as_str().into(),
            prev_hash: head.hash.clone(),
        };
        let next = AuditHead {
            seq: entry.seq,
            hash: crate::audit::chain_hash(&entry),
            record_version: head.record_version + 1,
        };
        let writes = vec![
            Write::Insert(seal_json(
                &self.data_key.load(),
                RecordKind::Audit,
                &crate::audit::record_id(entry.seq),
                1,
                &entry,
            )?),
            Write::Update(seal_json(
                &self.data_key.load(),
                RecordKind::AuditHead,
                ID_AUDIT_HEAD,
                next.record_version,
                &next,
            )?),
        ];
        Ok((writes, next))
    }

    /// Appends one audit entry on its own (an event that changes nothing else in the store:
    /// logins, seal and unseal, or an operation that was refused or failed).
    pub(super) fn audit_append(
        &self,
        actor: &str,
        event: AuditEvent,
        target: Option<&str>,
        outcome: Outcome,
    ) -> Result<()> {
        self.check_writable("write an audit record")?;
        // On a store several nodes write, the entry goes after every other node's: under the
        // store's write lock, after catching up (which also moves the audit head).
        let _writer = self.begin_write()?;
        let mut head = lock(&self.audit);
        let (writes, next) = self.audit_writes(
            &head,
            &NewAuditEntry {
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

    /// Runs a management operation and records it: the entry (`actor`, `event`, `target`)
    /// goes into the operation's commit when it makes one (see [`Audit`]), or is appended
    /// with the outcome of `op` when it returns. An error writing that entry is returned
    /// instead of `op`'s result.
    pub(super) fn audited<T>(
        &self,
        actor: &str,
        event: AuditEvent,
        target: Option<String>,
        op: impl FnOnce(&Audit<'_>) -> Result<T>,
    ) -> Result<T> {
        let audit = Audit::new(actor, event, target);
        let res = op(&audit);
        if !audit.written.get() {
            let target = audit.target.borrow();
            self.audit_append(actor, event, target.as_deref(), Outcome::of(&res))?;
        }
        res
    }

    /// Records that this node unsealed the HSM and started serving (the caller decides when:
    /// opening the store itself writes nothing).
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn record_unseal(&self, node: &str) -> Result<()> {
        self.audit_append(node, AuditEvent::Unseal, None, Outcome::Ok)
    }

    /// Records that this node stops serving and drops its unsealed keys.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn record_seal(&self, node: &str) -> Result<()> {
        self.audit_append(node, AuditEvent::Seal, None, Outcome::Ok)
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
            let entry: AuditEntry = open_json(
                &self.data_key.load(),
                self.store.as_ref(),
                RecordKind::Audit,
                &id,
            )?
            .ok_or_else(|| Error::StoreInconsistent {
                detail: format!("audit entry {seq} is missing"),
            })?;
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
            &self.data_key.load(),
            self.store.as_ref(),
            RecordKind::AuditHead,
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
        let records = self.store.list(RecordKind::Audit.as_str())?;
        Ok(crate::audit::verify_chain(
            &self.data_key.load(),
            &records,
            &head,
            &[],
        ))
    }
}
