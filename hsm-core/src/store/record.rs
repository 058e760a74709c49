//! The plaintext of a key record: a 4-byte big-endian header length, the JSON header
//! (`KeyInfo`), then the key's stored value (secret value, PKCS#8 DER or SPKI DER).

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::material::Material;
use crate::object::KeyInfo;

/// The plaintext header of a key record; the key value follows it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyRecordMeta {
    pub(crate) info: KeyInfo,
}

pub(crate) fn encode_key_record(info: &KeyInfo, value: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let header = serde_json::to_vec(&KeyRecordMeta { info: info.clone() })
        .map_err(|_| Error::Internal("key record encode"))?;
    let len = u32::try_from(header.len()).map_err(|_| Error::Internal("key record size"))?;
    let mut out = Zeroizing::new(Vec::with_capacity(4 + header.len() + value.len()));
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(value);
    Ok(out)
}

pub(crate) fn decode_key_record(plain: &[u8]) -> Option<(KeyInfo, &[u8])> {
    let len = u32::from_be_bytes(plain.get(..4)?.try_into().ok()?) as usize;
    let header = plain.get(4..4usize.checked_add(len)?)?;
    let meta: KeyRecordMeta = serde_json::from_slice(header).ok()?;
    Some((meta.info, &plain[4 + len..]))
}

/// The stored value of a key object: secret value, PKCS#8, or SPKI for public keys.
pub(crate) fn stored_value(m: &Material) -> Result<&[u8]> {
    m.wrappable_bytes()
        .or_else(|| m.spki())
        .ok_or(Error::Internal("material without a value"))
}
