//! The plaintext of a key record: a 4-byte big-endian header length, the JSON header
//! (`KeyInfo`, and for a key with several versions the length of each version's value), then
//! the key's stored values (secret value, PKCS#8 DER or SPKI DER), oldest version first.
//!
//! A key that was never rotated (one value, version 1) is stored exactly as before key
//! versions existed: no `value_lens`, and `KeyInfo` without its version fields, so records
//! written by older versions of Keyward read as version 1 and such keys still read in them.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::material::Material;
use crate::object::KeyInfo;

/// The plaintext header of a key record; the key values follow it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyRecordMeta {
    pub(crate) info: KeyInfo,
    /// The length of each version's value, from `info.min_available_version` to
    /// `info.latest_version`; empty: one value, version 1 (the layout before key versions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) value_lens: Vec<u32>,
}

/// Whether `info` is stored in the one-value layout of keys that were never rotated.
fn single_layout(info: &KeyInfo) -> bool {
    info.latest_version == 1 && info.min_available_version == 1
}

/// Encodes a key record: `values` holds one stored value per version the key holds, from
/// `info.min_available_version` to `info.latest_version`.
pub(crate) fn encode_key_record(info: &KeyInfo, values: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>> {
    let held = info
        .latest_version
        .checked_sub(info.min_available_version)
        .and_then(|d| d.checked_add(1));
    if held.and_then(|n| usize::try_from(n).ok()) != Some(values.len()) {
        return Err(Error::Internal("key record: versions and values differ"));
    }
    let value_lens = if single_layout(info) {
        Vec::new()
    } else {
        values
            .iter()
            .map(|v| u32::try_from(v.len()).map_err(|_| Error::Internal("key record size")))
            .collect::<Result<Vec<_>>>()?
    };
    let header = serde_json::to_vec(&KeyRecordMeta {
        info: info.clone(),
        value_lens,
    })
    .map_err(|_| Error::Internal("key record encode"))?;
    let len = u32::try_from(header.len()).map_err(|_| Error::Internal("key record size"))?;
    let total: usize = values.iter().map(|v| v.len()).sum();
    let mut out = Zeroizing::new(Vec::with_capacity(4 + header.len() + total));
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&header);
    for v in values {
        out.extend_from_slice(v);
    }
    Ok(out)
}

/// Decodes a key record into its header and one value per version held, oldest first.
/// `None` when the layout does not hold together (lengths, version numbers).
pub(crate) fn decode_key_record(plain: &[u8]) -> Option<(KeyInfo, Vec<&[u8]>)> {
    let len = u32::from_be_bytes(plain.get(..4)?.try_into().ok()?) as usize;
    let header = plain.get(4..4usize.checked_add(len)?)?;
    let meta: KeyRecordMeta = serde_json::from_slice(header).ok()?;
    let mut rest = &plain[4 + len..];
    let info = meta.info;
    let versions_ok = info.min_available_version >= 1
        && info.min_available_version <= info.min_decryption_version
        && info.min_decryption_version <= info.latest_version
        && info.min_encryption_version <= info.latest_version;
    if !versions_ok {
        return None;
    }
    if meta.value_lens.is_empty() {
        return single_layout(&info).then(|| (info, vec![rest]));
    }
    let held = usize::try_from(info.latest_version - info.min_available_version + 1).ok()?;
    if meta.value_lens.len() != held {
        return None;
    }
    let mut values = Vec::with_capacity(held);
    for l in meta.value_lens {
        let (v, tail) = rest.split_at_checked(usize::try_from(l).ok()?)?;
        values.push(v);
        rest = tail;
    }
    rest.is_empty().then_some((info, values))
}

/// The stored value of a key object: secret value, PKCS#8, or SPKI for public keys.
pub(crate) fn stored_value(m: &Material) -> Result<&[u8]> {
    m.wrappable_bytes()
        .or_else(|| m.spki())
        .ok_or(Error::Internal("material without a value"))
}
