//! What [`Hsm::open`] checks beyond each record's authentication, and the operator's
//! overrides.
//!
//! - **The whole audit chain** is verified at every open (each entry opens, decodes and names
//!   its predecessor's hash; the head names the last one). A flipped byte, a swapped, deleted
//!   or inserted entry, or a cut tail stops the open with [`Error::AuditDamaged`] naming the
//!   entry. Cost: one AES-GCM open, one JSON decode and one SHA-256 per entry (see the
//!   `open-100k-audit` benchmark in `benches/ops.rs`).
//! - **Rollback.** After every commit the HSM writes a *rollback anchor* through the backend
//!   (SQLite: the file `<store>.anchor` beside the database): the manifest version and the
//!   audit head (sequence number and hash), sealed under the data key. At open, a store older
//!   than its anchor (a deleted WAL after a crash, an older copy of the store file put back)
//!   is refused with [`Error::StoreRolledBack`] saying how many changes are missing. A store
//!   whose manifest says it is anchored but has no anchor is refused too.
//!
//!   What this does **not** detect: the store and its anchor rolled back together (an older
//!   copy of the whole data directory), or a store from which the anchor file and the
//!   `anchored` mark were both removed by someone holding the master key. Backups and the
//!   cluster database (later) cover those.
//! - **Overrides** ([`OpenOptions`]): `accept_audit_damage` records, authenticated, the
//!   stretch from the first bad entry to the current head as it is now (its records' digest:
//!   any later change in it is found; entries before and after it are checked as before) and
//!   appends `audit.damage-accepted`; `accept_rollback` starts from the store as it is, writes
//!   a new anchor and appends `store.rollback-accepted`. Both are audited, by the actor
//!   `local` (whoever holds the data directory and its master key). `audit verify` still
//!   reports accepted damage.

use serde::{Deserialize, Serialize};

use super::*;
use crate::audit::AcceptedDamage;

const ID_ANCHOR: &str = "anchor";
const ID_AUDIT_ACCEPT: &str = "accepted";

/// What [`Hsm::open_with`] accepts instead of refusing to open. Both default to `false`; each
/// acceptance is audited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Open although the audit chain is damaged; the damage up to the current head is
    /// recorded as accepted (`audit.damage-accepted`).
    pub accept_audit_damage: bool,
    /// Open although the store is older than its rollback anchor (or the anchor is missing
    /// or does not open); a new anchor is written (`store.rollback-accepted`).
    pub accept_rollback: bool,
}

/// The state the rollback anchor records: every commit raises one of these.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Anchor {
    pub(super) manifest_version: u64,
    pub(super) audit_seq: u64,
    pub(super) audit_hash: String,
}

/// Problems [`Hsm::open_with`] found and was told to accept; recorded once the HSM is up.
#[derive(Default)]
pub(super) struct Acceptances {
    /// Every accepted stretch (those accepted before, then the new one) and the version of the
    /// record that lists them (0: none yet).
    audit_damage: Option<(Vec<AcceptedDamage>, u64)>,
    rollback: Option<String>,
}

pub(super) fn seal_anchor(data_key: &RecordCipher, anchor: &Anchor) -> Result<Vec<u8>> {
    Ok(seal_json(data_key, RecordKind::Anchor, ID_ANCHOR, 1, anchor)?.blob)
}

/// Checks the audit chain and the rollback anchor of a store being opened. `anchor_blob` was
/// read before anything else of the store, so a concurrent writer can only make the store
/// newer than it, never older.
pub(super) fn check(
    store: &dyn Backend,
    data_key: &RecordCipher,
    manifest: &Manifest,
    head: &AuditHead,
    anchor_blob: Option<Vec<u8>>,
    options: OpenOptions,
) -> Result<Acceptances> {
    let mut found = Acceptances::default();
    let (mut accepted, version) = accepted_damage(store, data_key)?;
    let records = store.list(RecordKind::Audit.as_str())?;
    let report = crate::audit::verify_chain(data_key, &records, head, &accepted);
    if let Some(problem) = report.problem {
        if !options.accept_audit_damage {
            return Err(Error::AuditDamaged { problem });
        }
        // The stretch from the first bad entry to the head, exactly as it is now.
        let first_seq = report.entries + 1;
        if first_seq > head.seq {
            return Err(Error::AuditDamaged {
                problem: format!(
                    "{problem}; a record lies beyond the audit head, which cannot be accepted: remove record audit/{} from the store or restore a backup",
                    crate::audit::record_id(first_seq)
                ),
            });
        }
        let from = records.partition_point(|r| r.id < crate::audit::record_id(first_seq));
        accepted.push(AcceptedDamage {
            first_seq,
            through_seq: head.seq,
            head_hash: head.hash.clone(),
            digest: crate::audit::stretch_digest(crate::audit::stretch(&records, from, head.seq)),
            problem,
        });
        found.audit_damage = Some((accepted, version));
    }
    let rollback = match anchor_blob {
        None if manifest.anchored => Some("the store's rollback anchor is missing".to_owned()),
        None => None,
        Some(blob) => match data_key
            .open(RecordKind::Anchor, ID_ANCHOR, 1, &blob)
            .ok()
            .and_then(|p| serde_json::from_slice::<Anchor>(&p).ok())
        {
            None => Some(
                "the store's rollback anchor does not open (edited, or from another HSM)".into(),
            ),
            Some(a) => behind(&a, manifest, head),
        },
    };
    if let Some(detail) = rollback {
        if !options.accept_rollback {
            return Err(Error::StoreRolledBack { detail });
        }
        found.rollback = Some(detail);
    }
    Ok(found)
}

/// How far the store is behind `anchor`, if it is.
fn behind(anchor: &Anchor, manifest: &Manifest, head: &AuditHead) -> Option<String> {
    let entries = anchor.audit_seq.saturating_sub(head.seq);
    let changes = anchor.manifest_version.saturating_sub(manifest.version);
    if entries > 0 || changes > 0 {
        return Some(format!(
            "the store is older than its rollback anchor: {entries} audit entries and {changes} record changes are missing (the store ends at audit entry {}, the anchor names entry {})",
            head.seq, anchor.audit_seq
        ));
    }
    if anchor.audit_seq == head.seq && anchor.audit_hash != head.hash {
        return Some(format!(
            "the store's audit trail differs from its rollback anchor at entry {} (another store was put in its place)",
            head.seq
        ));
    }
    None
}

/// The stretches of the audit chain accepted as damaged, with the version of their record (0:
/// none).
fn accepted_damage(
    store: &dyn Backend,
    data_key: &RecordCipher,
) -> Result<(Vec<AcceptedDamage>, u64)> {
    let Some(rec) = store.get(RecordKind::AuditAccept.as_str(), ID_AUDIT_ACCEPT)? else {
        return Ok((Vec::new(), 0));
    };
    let plain = data_key.open(RecordKind::AuditAccept, &rec.id, rec.version, &rec.blob)?;
    let a =
        serde_json::from_slice(&plain).map_err(|_| tampered(RecordKind::AuditAccept, &rec.id))?;
    Ok((a, rec.version))
}

impl Hsm {
    /// Opens (unseals) an existing store as [`open`](Self::open) does, accepting what
    /// `options` says instead of refusing to open; each acceptance is recorded in the store
    /// and audited before this returns.
    ///
    /// # Errors
    /// As [`open`](Self::open); [`Error::AuditDamaged`] and [`Error::StoreRolledBack`] unless
    /// accepted.
    pub fn open_with(
        store: Box<dyn Backend>,
        master_key: &MasterKey,
        options: OpenOptions,
    ) -> Result<Self> {
        selftest::run()?;
        // A store other nodes write: none commits while this one reads it (one consistent
        // state), the lock released before anything is written here.
        let cluster = store.lock_writes()?;
        let l = Self::load(store.as_ref(), master_key, options)?;
        drop(cluster);
        let acceptances = l.acceptances;
        let mut hsm = Hsm::assemble(
            store,
            l.data_key,
            l.data_keys,
            l.objects,
            l.users,
            l.manifest,
            l.head,
            false,
        );
        hsm.restore_sessions(&l.sessions);
        hsm.set_master(&l.root);
        hsm.accepted_at_open = hsm.record_acceptances(acceptances)?;
        Ok(hsm)
    }

    /// What [`open_with`](Self::open_with) found wrong and accepted (each also in the audit
    /// trail): empty when the store opened clean.
    pub fn accepted_at_open(&self) -> &[String] {
        &self.accepted_at_open
    }

    fn record_acceptances(&self, found: Acceptances) -> Result<Vec<String>> {
        let mut reported = Vec::new();
        if let Some(detail) = found.rollback {
            // The anchor is rewritten from this store's state by the audit entry's commit.
            self.audit_append(
                "local",
                AuditEvent::StoreRollbackAccepted,
                Some(&detail),
                Outcome::Ok,
            )?;
            reported.push(format!("rolled-back store accepted: {detail}"));
        }
        if let Some((accepted, version)) = found.audit_damage {
            let problem = accepted
                .last()
                .map(|a| a.problem.clone())
                .unwrap_or_default();
            let rec = seal_json(
                &self.data_key.load(),
                RecordKind::AuditAccept,
                ID_AUDIT_ACCEPT,
                version + 1,
                &accepted,
            )?;
            self.store.write_batch(&[if version == 0 {
                Write::Insert(rec)
            } else {
                Write::Update(rec)
            }])?;
            self.audit_append(
                "local",
                AuditEvent::AuditDamageAccepted,
                Some(&problem),
                Outcome::Ok,
            )?;
            reported.push(format!("damaged audit trail accepted: {problem}"));
        }
        Ok(reported)
    }

    /// Moves the rollback anchor on after a commit and writes it.
    pub(super) fn advance_anchor(&self, change: impl FnOnce(&mut Anchor)) -> Result<()> {
        let mut anchor = lock(&self.anchor);
        change(&mut anchor);
        let blob = seal_anchor(&self.data_key.load(), &anchor)?;
        self.store.write_anchor(&blob)?;
        Ok(())
    }
}

impl Hsm {
    /// Appends `entries` audit entries (event `test.fill`) in large batches: a store with a
    /// long audit trail in seconds, for measuring [`open`](Hsm::open). Compiled only for tests
    /// and benchmarks (the `test-secrets` feature).
    #[cfg(any(test, feature = "test-secrets"))]
    #[doc(hidden)]
    pub fn test_fill_audit(&self, entries: u64) -> Result<()> {
        let mut head = lock(&self.audit);
        let mut left = entries;
        while left > 0 {
            let n = left.min(5_000);
            let mut writes = Vec::new();
            let mut next = head.clone();
            for _ in 0..n {
                let entry = AuditEntry {
                    seq: next.seq + 1,
                    time_unix_ms: crate::audit::now_unix_ms(),
                    actor: "-".into(),
                    event: "test.fill".into(),
                    target: None,
                    outcome: "ok".into(),
                    prev_hash: next.hash.clone(),
                };
                next.seq = entry.seq;
                next.hash = crate::audit::chain_hash(&entry);
                writes.push(Write::Insert(seal_json(
                    &self.data_key.load(),
                    RecordKind::Audit,
                    &crate::audit::record_id(entry.seq),
                    1,
                    &entry,
                )?));
            }
            next.record_version += 1;
            writes.push(Write::Update(seal_json(
                &self.data_key.load(),
                RecordKind::AuditHead,
                ID_AUDIT_HEAD,
                next.record_version,
                &next,
            )?));
            self.store.write_batch(&writes)?;
            *head = next;
            left -= n;
        }
        let (seq, hash) = (head.seq, head.hash.clone());
        self.advance_anchor(|a| {
            a.audit_seq = seq;
            a.audit_hash = hash;
        })
    }
}
