//! The audit trail: a hash chain of entries in the store.
//!
//! Entry `n` carries `prev_hash`, the chain hash of entry `n-1` (64 zero hex digits for the
//! first); its own chain hash is `SHA-256(prev_hash_bytes ‖ entry_json_without_hash)`. Each
//! entry is its own encrypted record (kind `audit`, id = sequence number, zero-padded to 20
//! digits), and a head record (kind `audit-head`) holds the last sequence number and hash.
//! The entry and the head are written in one transaction. [`AuditReport`] finds an edited
//! entry (authentication fails), a deleted or inserted one (gap, or chain break), a reordered
//! one (the record id binds the sequence number), and a truncated tail (head mismatch).

use keyward_keystore::Record;
use serde::{Deserialize, Serialize};

use crate::error::printable;
use crate::store::format::RecordCipher;
use crate::store::RecordKind;

/// One audit entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// Time of the event, milliseconds since the Unix epoch (UTC).
    pub time_unix_ms: u64,
    /// Who acted: a user name, or `-` before authentication succeeded.
    pub actor: String,
    /// What happened, e.g. `login`, `key.generate`, `user.create`.
    pub event: String,
    /// The object acted on: a key handle, a user name.
    pub target: Option<String>,
    /// `ok`, `failed` or `denied`.
    pub outcome: String,
    /// The chain hash of the previous entry, hex.
    pub prev_hash: String,
}

/// What [`crate::Hsm::verify_audit`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Entries read.
    pub entries: u64,
    /// True when the whole chain is intact.
    pub intact: bool,
    /// The first problem, naming the entry.
    pub problem: Option<String>,
}

pub(crate) const ZERO_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

pub(crate) fn record_id(seq: u64) -> String {
    format!("{seq:020}")
}

/// The chain hash of `entry`.
pub(crate) fn chain_hash(entry: &AuditEntry) -> String {
    let json = serde_json::to_vec(entry).unwrap_or_default();
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    // Always hex: ours, inside an authenticated record. Anything else fails the chain check,
    // which compares the text.
    ctx.update(&hex::decode(&entry.prev_hash).unwrap_or_default());
    ctx.update(&json);
    hex::encode(ctx.finish())
}

/// The last entry's sequence number and chain hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditHead {
    pub(crate) seq: u64,
    pub(crate) hash: String,
    #[serde(skip)]
    pub(crate) record_version: u64,
}

/// A stretch of the audit chain an operator accepted as damaged (`--accept-audit-damage`),
/// stored (encrypted, authenticated) beside the chain: entries `first_seq..=through_seq` are
/// taken exactly as they were then (`digest` covers those records, so a later edit, deletion
/// or insertion in the stretch is found), and the chain goes on from `head_hash`, the head's
/// hash when the damage was accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcceptedDamage {
    /// The first entry that did not verify.
    pub(crate) first_seq: u64,
    /// The head's sequence number when the damage was accepted.
    pub(crate) through_seq: u64,
    /// The head's chain hash then, hex.
    pub(crate) head_hash: String,
    /// SHA-256 (hex) of the audit records of the stretch as stored then ([`stretch_digest`]).
    pub(crate) digest: String,
    /// What was wrong, as found then.
    pub(crate) problem: String,
}

/// SHA-256 over records (each: id, version and blob, length-prefixed), hex.
pub(crate) fn stretch_digest(records: &[Record]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for r in records {
        for part in [r.id.as_bytes(), &r.version.to_be_bytes(), &r.blob] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
    }
    hex::encode(ctx.finish())
}

/// The records (a slice of `records`, from index `from`) with ids up to entry `through_seq`.
pub(crate) fn stretch(records: &[Record], from: usize, through_seq: u64) -> &[Record] {
    let last = record_id(through_seq);
    let n = records[from..].iter().take_while(|r| r.id <= last).count();
    &records[from..from + n]
}

/// Checks the whole chain in `records` (every audit record, ordered by id) against `head`:
/// each entry opens under `cipher` (its kind, id and version are the AEAD's associated data),
/// decodes, has the next sequence number and names the previous entry's hash; the head names
/// the last entry and its hash. Where the chain breaks at the first entry of an `accepted`
/// stretch whose records are unchanged, it goes on after the stretch. Returns the report (in
/// `entries`, how many entries verified before a problem); nothing here is an error.
pub(crate) fn verify_chain(
    cipher: &RecordCipher,
    records: &[Record],
    head: &AuditHead,
    accepted: &[AcceptedDamage],
) -> AuditReport {
    let fail = |entries: u64, problem: String| AuditReport {
        entries,
        intact: false,
        problem: Some(problem),
    };
    let mut prev = ZERO_HASH.to_owned();
    let mut count = 0u64;
    let mut i = 0;
    loop {
        let step = match records.get(i) {
            Some(rec) => check_entry(cipher, rec, count + 1, &prev),
            None if head.seq != count || head.hash != prev => Err(format!(
                "the chain ends at entry {count} but the head names entry {}",
                head.seq
            )),
            None => break,
        };
        match step {
            Ok(hash) => {
                prev = hash;
                count += 1;
                i += 1;
            }
            Err(problem) => {
                let Some(a) = accepted.iter().find(|a| a.first_seq == count + 1) else {
                    return fail(count, problem);
                };
                let taken = stretch(records, i, a.through_seq);
                if stretch_digest(taken) != a.digest {
                    return fail(
                        count,
                        format!(
                            "entries {} to {} changed after their damage was accepted",
                            a.first_seq, a.through_seq
                        ),
                    );
                }
                i += taken.len();
                count = a.through_seq;
                prev.clone_from(&a.head_hash);
            }
        }
    }
    AuditReport {
        entries: count,
        intact: true,
        problem: None,
    }
}

/// One entry of the chain: the record with sequence number `seq`, following `prev`; returns
/// its chain hash or the problem.
fn check_entry(
    cipher: &RecordCipher,
    rec: &Record,
    seq: u64,
    prev: &str,
) -> std::result::Result<String, String> {
    if rec.id != record_id(seq) {
        return Err(format!(
            "entry {seq} is missing (found record {})",
            printable(&rec.id)
        ));
    }
    let Ok(plain) = cipher.open(RecordKind::Audit, &rec.id, rec.version, &rec.blob) else {
        return Err(format!(
            "entry {seq} fails authentication (edited, moved or replaced)"
        ));
    };
    let Ok(entry) = serde_json::from_slice::<AuditEntry>(&plain) else {
        return Err(format!("entry {seq} does not decode"));
    };
    if entry.seq != seq || entry.prev_hash != prev {
        return Err(format!(
            "entry {seq} does not follow entry {} in the hash chain",
            seq - 1
        ));
    }
    Ok(chain_hash(&entry))
}

pub(crate) fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
