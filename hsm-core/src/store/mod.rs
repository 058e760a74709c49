//! The record layer of the HSM's store, above the raw [`keyward_keystore::Backend`]: record
//! kinds ([`RecordKind`]) and ids, the manifest (the list of records and versions, written
//! with every change so that a deleted, re-added or rolled-back record is noticed), JSON
//! records sealed with the data key, and the key-record codec ([`record`]).
//!
//! Layers (see `docs/architecture.md`): HSM (`crate::hsm`) → this module → encryption
//! format ([`format`]) → raw backend (`keyward-keystore`, which only sees ciphertext).

use std::collections::BTreeMap;

use keyward_keystore::{Backend, Record};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::printable;
use crate::error::{Error, Result};
use format::RecordCipher;

pub(crate) mod format;
pub(crate) mod record;

/// What a record holds; its name is the record's `kind` column in the backend and is bound
/// into the record's encryption (see [`format`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordKind {
    /// The data key, sealed under the master key (one record, [`ID_DATA_KEY`]).
    Seal,
    /// A key object (id = its handle in decimal).
    Key,
    /// A user (id = the user name).
    User,
    /// The [`Manifest`] (one record, [`ID_MANIFEST`]).
    Manifest,
    /// An audit entry (id = its sequence number, zero-padded).
    Audit,
    /// The audit chain's head (one record, [`ID_AUDIT_HEAD`]).
    AuditHead,
    /// Accepted audit damage (one record, see `hsm::integrity`).
    AuditAccept,
    /// A login session of a store several nodes share (id = the SHA-256 of its bearer token,
    /// hex), so that every node accepts it; see `hsm::sessions`.
    Session,
    /// An issuing CA of the register (id = its name); see `hsm::ca`.
    Ca,
    /// A certificate an issuing CA issued (id = `CA:SERIAL`); see `hsm::ca`.
    Cert,
    /// The rollback anchor. Not a store record: the backend keeps it apart from the records
    /// (`Backend::write_anchor`), sealed in the same format under this kind.
    Anchor,
    /// A remembered API response of a shared store (`Backend::put_expiring`; not a store
    /// record), sealed in the same format under this kind.
    Expiring,
}

impl RecordKind {
    /// The kinds a store may hold; any other kind found at load is refused.
    pub(crate) const IN_STORE: [RecordKind; 10] = [
        RecordKind::Seal,
        RecordKind::Key,
        RecordKind::User,
        RecordKind::Manifest,
        RecordKind::Audit,
        RecordKind::AuditHead,
        RecordKind::AuditAccept,
        RecordKind::Session,
        RecordKind::Ca,
        RecordKind::Cert,
    ];

    /// The name stored in the backend's `kind` column and bound into the encryption.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            RecordKind::Seal => "seal",
            RecordKind::Key => "key",
            RecordKind::User => "user",
            RecordKind::Manifest => "manifest",
            RecordKind::Audit => "audit",
            RecordKind::AuditHead => "audit-head",
            RecordKind::AuditAccept => "audit-accept",
            RecordKind::Session => "session",
            RecordKind::Ca => "ca",
            RecordKind::Cert => "cert",
            RecordKind::Anchor => "anchor",
            RecordKind::Expiring => "expiring",
        }
    }

    /// The store kind named `name`, if any.
    pub(crate) fn in_store(name: &str) -> Option<RecordKind> {
        Self::IN_STORE.into_iter().find(|k| k.as_str() == name)
    }
}

impl From<RecordKind> for String {
    fn from(kind: RecordKind) -> String {
        kind.as_str().to_owned()
    }
}

/// The id of the [`RecordKind::Seal`] record holding the data keys (under the root key).
pub(crate) const ID_DATA_KEY: &str = "data-key";

/// The id of the [`RecordKind::Seal`] record holding the root key (under the unseal key made
/// by the seal: key file, passphrase or shares). Stores made before it have none: their
/// data-key record is under the unseal key itself, until a rekey adds one.
pub(crate) const ID_ROOT_KEY: &str = "root-key";

/// The id of the one [`RecordKind::Manifest`] record.
pub(crate) const ID_MANIFEST: &str = "records";

/// The id of the one [`RecordKind::AuditHead`] record.
pub(crate) const ID_AUDIT_HEAD: &str = "head";

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
        store
            .get(RecordKind::Manifest.as_str(), ID_MANIFEST)?
            .map(|r| r.version),
        store
            .get(RecordKind::AuditHead.as_str(), ID_AUDIT_HEAD)?
            .map(|r| r.version),
    ))
}

/// A record's key in the [`Manifest`]: `kind/id`.
pub(crate) fn manifest_key(kind: RecordKind, id: &str) -> String {
    format!("{}/{id}", kind.as_str())
}

pub(crate) fn tampered(kind: RecordKind, id: &str) -> Error {
    Error::RecordTampered {
        kind: kind.as_str().to_owned(),
        id: printable(id),
    }
}

pub(crate) fn seal_json<T: Serialize>(
    cipher: &RecordCipher,
    kind: RecordKind,
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
    kind: RecordKind,
    id: &str,
) -> Result<Option<T>> {
    let Some(rec) = store.get(kind.as_str(), id)? else {
        return Ok(None);
    };
    let plain = cipher.open(kind, id, rec.version, &rec.blob)?;
    serde_json::from_slice(&plain)
        .map(Some)
        .map_err(|_| tampered(kind, id))
}
