//! The record layer of the HSM's store, above the raw [`keyward_keystore::Backend`]: record
//! kinds and ids, the manifest (the list of records and versions, written with every change
//! so that a deleted, re-added or rolled-back record is noticed), JSON records sealed with the
//! data key, and the key-record codec ([`record`]).
//!
//! Layers (see `docs/architecture.md`): HSM (`crate::hsm`) → this module → encryption
//! format ([`crate::seal`]) → raw backend (`keyward-keystore`, which only sees ciphertext).

use std::collections::BTreeMap;

use keyward_keystore::{Backend, Record};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::seal::{printable, RecordCipher};

pub(crate) mod record;

pub(crate) const KIND_SEAL: &str = "seal";

pub(crate) const ID_DATA_KEY: &str = "data-key";

pub(crate) const KIND_KEY: &str = "key";

pub(crate) const KIND_USER: &str = "user";

pub(crate) const KIND_MANIFEST: &str = "manifest";

pub(crate) const ID_MANIFEST: &str = "records";

pub(crate) const KIND_AUDIT: &str = "audit";

pub(crate) const KIND_AUDIT_HEAD: &str = "audit-head";

pub(crate) const ID_AUDIT_HEAD: &str = "head";

/// Accepted audit damage (see `hsm::integrity`).
pub(crate) const KIND_AUDIT_ACCEPT: &str = "audit-accept";
pub(crate) const KNOWN_KINDS: [&str; 7] = [
    KIND_SEAL,
    KIND_KEY,
    KIND_USER,
    KIND_MANIFEST,
    KIND_AUDIT,
    KIND_AUDIT_HEAD,
    KIND_AUDIT_ACCEPT,
];

/// The list of key and user records with their versions, stored (encrypted) with every change
/// in the same transaction, so that a deleted, re-added or rolled-back record is noticed.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    pub(crate) records: BTreeMap<String, u64>,
    /// Set by every commit since rollback anchors exist: a store so marked must have one.
    #[serde(default)]
    pub(crate) anchored: bool,
    #[serde(skip)]
    pub(crate) version: u64,
}

/// How often a read of a store that another process writes is repeated when that process
/// committed during the read.
pub(crate) const SNAPSHOT_ATTEMPTS: usize = 5;

/// The versions of the manifest and the audit head: every commit changes one of them, so equal
/// marks before and after a read mean nothing was committed in between.
pub(crate) fn change_marks(store: &dyn Backend) -> Result<(Option<u64>, Option<u64>)> {
    Ok((
        store.get(KIND_MANIFEST, ID_MANIFEST)?.map(|r| r.version),
        store
            .get(KIND_AUDIT_HEAD, ID_AUDIT_HEAD)?
            .map(|r| r.version),
    ))
}

pub(crate) fn manifest_key(kind: &str, id: &str) -> String {
    format!("{kind}/{id}")
}

pub(crate) fn tampered(kind: &str, id: &str) -> Error {
    Error::RecordTampered {
        kind: printable(kind),
        id: printable(id),
    }
}

pub(crate) fn seal_json<T: Serialize>(
    cipher: &RecordCipher,
    kind: &str,
    id: &str,
    version: u64,
    value: &T,
) -> Result<Record> {
    let plain =
        Zeroizing::new(serde_json::to_vec(value).map_err(|_| Error::Internal("record encode"))?);
    Ok(Record {
        kind: kind.into(),
        id: id.into(),
        version,
        blob: cipher.seal(kind, id, version, &plain)?,
    })
}

pub(crate) fn open_json<T: for<'de> Deserialize<'de>>(
    cipher: &RecordCipher,
    store: &dyn Backend,
    kind: &str,
    id: &str,
) -> Result<Option<T>> {
    let Some(rec) = store.get(kind, id)? else {
        return Ok(None);
    };
    let plain = cipher.open(kind, id, rec.version, &rec.blob)?;
    serde_json::from_slice(&plain)
        .map(Some)
        .map_err(|_| tampered(kind, id))
}
