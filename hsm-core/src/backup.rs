//! Backup archives: every record of a store, encrypted and authenticated under a random
//! backup key that is itself wrapped by a key derived from the master key, so that an
//! archive restores only where its seal (key file, passphrase or shares) is known.
//!
//! Format (`.kwbackup`, version 1):
//!
//! | bytes | field |
//! | --- | --- |
//! | 8 | magic `KWBACKUP` |
//! | 4 | header length *h*, big-endian |
//! | *h* | header, JSON ([`BackupHeader`]: id, time, node, counts, the seal, the wrapped key) |
//! | 12 | body nonce |
//! | *n* + 16 | body: AES-256-GCM under the backup key, associated data `"keyward-backup/1" 0x00` ‖ the header bytes |
//!
//! The body's plaintext is JSON: `{"records":[{"kind","id","version","blob"(base64)}]}`, the
//! store's records as stored (each still encrypted under the data key, see
//! `store::format`). The backup key (32 random bytes) is wrapped with AES-256-GCM
//! under the *backup wrapping key*, HKDF-SHA256 (RFC 5869) of the master key with info
//! `"keyward backup wrapping key/1"`, with associated data `"keyward-backup-key/1" 0x00` ‖ the
//! archive id. Changing any byte of an archive makes it fail to open.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::Engine as _;
use keyward_keystore::Record;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::seal::{MasterKey, SealConfig, MASTER_KEY_LEN};

const MAGIC: &[u8; 8] = b"KWBACKUP";
/// Largest header accepted, bytes.
const MAX_HEADER: usize = 64 * 1024;

/// What an archive says about itself, readable without any key (authenticated by the body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupHeader {
    /// Format version, 1.
    pub format: u32,
    /// Random id, 32 hex digits.
    pub id: String,
    /// When it was taken, Unix milliseconds.
    pub created_unix_ms: u64,
    /// The node that took it.
    pub node: String,
    /// The store's id: 32 hex digits derived from its root key (HKDF-SHA256, info
    /// `"keyward store id/1"`), the same for every node, rekey and restored copy of one store;
    /// a schedule prunes only its own store's archives.
    #[serde(default)]
    pub store_id: String,
    /// Taken by a node's schedule (which prunes them by retention), not by `backup create`.
    #[serde(default)]
    pub scheduled: bool,
    /// The store's change sequence (manifest version) it holds.
    pub store_sequence: u64,
    /// Records in it.
    pub records: u64,
    /// Key objects and users among them.
    pub keys: u64,
    /// Users among them.
    pub users: u64,
    /// Audit entries among them.
    pub audit_entries: u64,
    /// The seal that restores it (type, shares, Argon2id parameters).
    pub seal: SealConfig,
    /// The store's root-key record (version, blob hex: the root key under the seal's unseal
    /// key); absent for a store from before root-key records, whose unseal key is its root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_key_record: Option<(u64, String)>,
    /// Nonce of the wrapped backup key, hex.
    pub key_nonce: String,
    /// The backup key wrapped under the backup wrapping key, hex (48 bytes).
    pub wrapped_key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    records: Vec<WireRecord>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRecord {
    kind: String,
    id: String,
    version: u64,
    blob: String,
}

/// HKDF-SHA256 (RFC 5869, empty salt) of `key` with `info`, 32 bytes. Zeroized on drop.
fn hkdf(key: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    struct Len;
    impl aws_lc_rs::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            32
        }
    }
    let mut out = Zeroizing::new([0u8; 32]);
    let prk = aws_lc_rs::hkdf::Salt::new(aws_lc_rs::hkdf::HKDF_SHA256, &[]).extract(key);
    if let Ok(okm) = prk.expand(&[info], Len) {
        let _ = okm.fill(&mut out[..]);
    }
    out
}

/// The backup wrapping key of a root key (see the module docs). Zeroized on drop.
pub(crate) fn wrapping_key(root: &MasterKey) -> Zeroizing<[u8; 32]> {
    hkdf(root.as_bytes(), b"keyward backup wrapping key/1")
}

/// The public id of the store whose root key is `root` (see [`BackupHeader::store_id`]).
pub(crate) fn store_id(root: &MasterKey) -> String {
    hex::encode(&hkdf(root.as_bytes(), b"keyward store id/1")[..16])
}

fn gcm(key: &[u8]) -> Result<LessSafeKey> {
    Ok(LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key).map_err(|_| Error::Crypto {
            operation: "aes-256-gcm key setup",
        })?,
    ))
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| Error::Crypto {
        operation: "random",
    })?;
    Ok(b)
}

fn key_aad(id: &str) -> Vec<u8> {
    [b"keyward-backup-key/1\0".as_slice(), id.as_bytes()].concat()
}

/// What [`seal_archive`] is given besides the records.
pub(crate) struct ArchiveInfo {
    /// The root-key record (version, blob), if the store has one.
    pub(crate) root_record: Option<(u64, Vec<u8>)>,
    pub(crate) node: String,
    pub(crate) store_id: String,
    pub(crate) scheduled: bool,
    pub(crate) store_sequence: u64,
    pub(crate) seal: SealConfig,
    pub(crate) created_unix_ms: u64,
}

/// Writes the archive of `records` (module docs) under a new backup key wrapped by
/// `wrapping_key`.
pub(crate) fn seal_archive(
    records: &[Record],
    info: ArchiveInfo,
    wrapping_key: &[u8; 32],
) -> Result<Vec<u8>> {
    let id = hex::encode(random::<16>()?);
    let backup_key = Zeroizing::new(random::<32>()?);
    let key_nonce = random::<NONCE_LEN>()?;
    let mut wrapped = backup_key.to_vec();
    gcm(wrapping_key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(key_nonce),
            Aad::from(key_aad(&id)),
            &mut wrapped,
        )
        .map_err(|_| Error::Crypto {
            operation: "backup key wrap",
        })?;
    let count = |kind: &str| records.iter().filter(|r| r.kind == kind).count() as u64;
    let header = BackupHeader {
        format: 1,
        id,
        created_unix_ms: info.created_unix_ms,
        node: info.node,
        store_id: info.store_id,
        scheduled: info.scheduled,
        store_sequence: info.store_sequence,
        records: records.len() as u64,
        keys: count("key"),
        users: count("user"),
        audit_entries: count("audit"),
        seal: info.seal,
        root_key_record: info.root_record.map(|(v, b)| (v, hex::encode(b))),
        key_nonce: hex::encode(key_nonce),
        wrapped_key: hex::encode(&wrapped),
    };
    let header = serde_json::to_vec(&header).map_err(|_| Error::Internal("backup header"))?;
    let body = Body {
        records: records
            .iter()
            .map(|r| WireRecord {
                kind: r.kind.clone(),
                id: r.id.clone(),
                version: r.version,
                blob: base64::engine::general_purpose::STANDARD.encode(&r.blob),
            })
            .collect(),
    };
    let mut plain = serde_json::to_vec(&body).map_err(|_| Error::Internal("backup body"))?;
    let nonce = random::<NONCE_LEN>()?;
    gcm(&backup_key[..])?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(body_aad(&header)),
            &mut plain,
        )
        .map_err(|_| Error::Crypto {
            operation: "backup encrypt",
        })?;
    let header_len = u32::try_from(header.len()).map_err(|_| Error::Internal("backup header"))?;
    let mut out = Vec::with_capacity(8 + 4 + header.len() + NONCE_LEN + plain.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&header_len.to_be_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&plain);
    Ok(out)
}

fn body_aad(header: &[u8]) -> Vec<u8> {
    [b"keyward-backup/1\0".as_slice(), header].concat()
}

fn damaged(what: &str) -> Error {
    Error::BackupInvalid {
        reason: what.to_owned(),
    }
}

/// An archive split in its parts.
struct Parts<'a> {
    header_bytes: &'a [u8],
    header: BackupHeader,
    nonce: &'a [u8],
    body: &'a [u8],
}

/// Splits an archive: header bytes, parsed header, body nonce, body.
fn split(archive: &[u8]) -> Result<Parts<'_>> {
    if archive.len() < 12 || &archive[..8] != MAGIC {
        return Err(damaged("not a Keyward backup archive (no KWBACKUP magic)"));
    }
    let len = u32::from_be_bytes(archive[8..12].try_into().map_err(|_| damaged("short"))?) as usize;
    if len > MAX_HEADER || archive.len() < 12 + len + NONCE_LEN + 16 {
        return Err(damaged(
            "the archive is truncated or its header length is wrong",
        ));
    }
    let header_bytes = &archive[12..12 + len];
    let header: BackupHeader = serde_json::from_slice(header_bytes)
        .map_err(|_| damaged("the archive header does not parse"))?;
    if header.format != 1 {
        return Err(damaged("unknown archive format version"));
    }
    Ok(Parts {
        header_bytes,
        header,
        nonce: &archive[12 + len..12 + len + NONCE_LEN],
        body: &archive[12 + len + NONCE_LEN..],
    })
}

/// The header of an archive (or of its first bytes, header included), without any key (not
/// yet authenticated: [`open_archive`] does).
///
/// # Errors
/// [`Error::BackupInvalid`] if it is not an archive.
pub fn read_header(archive: &[u8]) -> Result<BackupHeader> {
    // The header alone may be given (the first bytes of an archive): no body needed.
    if archive.len() < 12 || &archive[..8] != MAGIC {
        return Err(damaged("not a Keyward backup archive (no KWBACKUP magic)"));
    }
    let len = u32::from_be_bytes(archive[8..12].try_into().map_err(|_| damaged("short"))?) as usize;
    let bytes = archive
        .get(12..12 + len)
        .filter(|_| len <= MAX_HEADER)
        .ok_or_else(|| damaged("the archive is truncated or its header length is wrong"))?;
    serde_json::from_slice(bytes).map_err(|_| damaged("the archive header does not parse"))
}

/// Opens an archive with the master key of its seal: every byte checked.
///
/// # Errors
/// [`Error::BackupInvalid`] if it is damaged or was changed; [`Error::UnsealKeyRejected`] if
/// `master` is not the key of the seal it was taken under.
pub fn open_archive(archive: &[u8], master: &MasterKey) -> Result<(BackupHeader, Vec<Record>)> {
    let Parts {
        header_bytes,
        header,
        nonce,
        body,
    } = split(archive)?;
    let root = match &header.root_key_record {
        Some((version, blob)) => {
            let blob = hex::decode(blob).map_err(|_| damaged("the root key record is not hex"))?;
            let plain = master
                .cipher()?
                .open(
                    crate::store::RecordKind::Seal,
                    crate::store::ID_ROOT_KEY,
                    *version,
                    &blob,
                )
                .map_err(|_| Error::UnsealKeyRejected {
                    reason: "the seal given is not the one this backup was taken under (or the archive's header was changed)".into(),
                })?;
            MasterKey::from_bytes(&crate::seal::config::decode_root(&plain, None)?[..])?
        }
        None => MasterKey::from_bytes(master.as_bytes())?,
    };
    let kek = wrapping_key(&root);
    let mut key = Zeroizing::new(
        hex::decode(&header.wrapped_key).map_err(|_| damaged("the wrapped key is not hex"))?,
    );
    let key_nonce: [u8; NONCE_LEN] = hex::decode(&header.key_nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| damaged("the key nonce is malformed"))?;
    let key_len = gcm(&kek[..])?
        .open_in_place(
            Nonce::assume_unique_for_key(key_nonce),
            Aad::from(key_aad(&header.id)),
            &mut key,
        )
        .map_err(|_| Error::UnsealKeyRejected {
            reason:
                "the seal given is not the one this backup was taken under (or the archive's header was changed)"
                    .into(),
        })?
        .len();
    if key_len != MASTER_KEY_LEN {
        return Err(damaged("the backup key has the wrong length"));
    }
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| damaged("nonce"))?;
    let mut plain = Zeroizing::new(body.to_vec());
    let len = gcm(&key[..key_len])?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(body_aad(header_bytes)),
            &mut plain,
        )
        .map_err(|_| damaged("the archive failed authentication: it was changed or damaged"))?
        .len();
    let body: Body = serde_json::from_slice(&plain[..len])
        .map_err(|_| damaged("the archive body does not parse"))?;
    let records = body
        .records
        .into_iter()
        .map(|r| {
            Ok(Record {
                blob: base64::engine::general_purpose::STANDARD
                    .decode(&r.blob)
                    .map_err(|_| damaged("a record is not base64"))?,
                kind: r.kind,
                id: r.id,
                version: r.version,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if records.len() as u64 != header.records {
        return Err(damaged("the record count does not match the header"));
    }
    Ok((header, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_opens_with_its_master_key_only_and_every_byte_counts() {
        let master = MasterKey::generate().unwrap();
        let records = vec![Record {
            kind: "key".into(),
            id: "1".into(),
            version: 3,
            blob: vec![1, 2, 3],
        }];
        let info = || ArchiveInfo {
            root_record: None,
            node: "n".into(),
            store_id: String::new(),
            scheduled: false,
            store_sequence: 7,
            seal: SealConfig::key_file(),
            created_unix_ms: 1,
        };
        let archive = seal_archive(&records, info(), &wrapping_key(&master)).unwrap();
        let (h, back) = open_archive(&archive, &master).unwrap();
        assert_eq!((h.records, h.keys, h.store_sequence), (1, 1, 7));
        assert!(back == records);
        assert_eq!(read_header(&archive).unwrap(), h);
        let other = MasterKey::generate().unwrap();
        assert!(matches!(
            open_archive(&archive, &other),
            Err(Error::UnsealKeyRejected { .. })
        ));
        for i in 0..archive.len() {
            let mut a = archive.clone();
            a[i] ^= 0x01;
            assert!(
                open_archive(&a, &master).is_err(),
                "flip at {i} not detected"
            );
        }
        assert!(open_archive(&archive[..archive.len() - 1], &master).is_err());
    }

    proptest::proptest! {
        /// Any bytes, and any archive with bytes changed, inserted or cut: an error, never a
        /// panic, never a wrong success.
        #[test]
        fn archives_of_any_shape_are_refused_without_panic(
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            at in 0usize..10_000,
            cut in 0usize..10_000,
            byte in proptest::prelude::any::<u8>(),
        ) {
            let master = MasterKey::from_bytes(&[5; 32]).unwrap();
            let _ = read_header(&junk);
            proptest::prop_assert!(open_archive(&junk, &master).is_err());
            let records = vec![Record { kind: "user".into(), id: "a".into(), version: 1, blob: vec![9; 20] }];
            let info = ArchiveInfo { root_record: None, node: "n".into(), store_id: String::new(), scheduled: false, store_sequence: 1, seal: SealConfig::key_file(), created_unix_ms: 0 };
            let archive = seal_archive(&records, info, &wrapping_key(&master)).unwrap();
            let mut changed = archive.clone();
            let i = at % changed.len();
            if changed[i] != byte {
                changed[i] = byte;
                proptest::prop_assert!(open_archive(&changed, &master).is_err());
            }
            let short = &archive[..cut % archive.len()];
            proptest::prop_assert!(open_archive(short, &master).is_err());
            let mut longer = archive.clone();
            longer.insert(at % archive.len(), byte);
            proptest::prop_assert!(open_archive(&longer, &master).is_err());
        }
    }
}
