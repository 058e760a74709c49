//! The audit trail: a hash chain of entries in the store.
//!
//! Entry `n` carries `prev_hash`, the chain hash of entry `n-1` (64 zero hex digits for the
//! first); its own chain hash is `SHA-256(prev_hash_bytes ‖ entry_json_without_hash)`. Each
//! entry is its own encrypted record (kind `audit`, id = sequence number, zero-padded to 20
//! digits), and a head record (kind `audit-head`) holds the last sequence number and hash.
//! The entry and the head are written in one transaction. [`AuditReport`] finds an edited
//! entry (authentication fails), a deleted or inserted one (gap, or chain break), a reordered
//! one (the record id binds the sequence number), and a truncated tail (head mismatch).

use serde::{Deserialize, Serialize};

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
    ctx.update(&hex_decode(&entry.prev_hash));
    ctx.update(&json);
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
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

pub(crate) fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
