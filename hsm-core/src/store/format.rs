//! The encryption format of every record at rest (the middle layer: store API above, raw
//! backend below, see `docs/architecture.md`).
//!
//! A record is AES-256-GCM (NIST SP 800-38D) encrypted under the *data key* (the data key's
//! own record under the *master key*, see [`crate::seal`]), with a random 96-bit nonce and a
//! 128-bit tag. A record's blob is self-describing:
//!
//! | bytes | field |
//! | --- | --- |
//! | 2 | magic `KW` |
//! | 1 | format version, `1` |
//! | 1 | algorithm id, `1` = AES-256-GCM |
//! | 4 | version of the key that encrypted it, big-endian (`0` = master key) |
//! | 12 | nonce |
//! | n + 16 | ciphertext and tag |
//!
//! The associated data binds the record's kind, id and version:
//! `"keyward-record/1" 0x00 kind 0x00 id 0x00 version(u64, big-endian)`, so a blob copied
//! to another row, or an old version replayed under a new version number, fails to open.

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use zeroize::Zeroizing;

use super::RecordKind;
use crate::error::{printable, Error, Result};

const MAGIC: &[u8; 2] = b"KW";
const FORMAT_V1: u8 = 1;
const ALG_AES_256_GCM: u8 = 1;
const HEADER_LEN: usize = 2 + 1 + 1 + 4 + NONCE_LEN;
const TAG_LEN: usize = 16;
/// Key version written for records encrypted directly under the master key.
pub(crate) const MASTER_KEY_VERSION: u32 = 0;
/// Key version of the current data key.
pub(crate) const DATA_KEY_VERSION: u32 = 1;

/// AES-256-GCM record blobs: sealed under the current key version, opened under the version
/// a blob names (several during a data-key rotation).
pub(crate) struct RecordCipher {
    /// `(version, key)`; the first is the current one.
    keys: Vec<(u32, RandomizedNonceKey)>,
}

impl std::fmt::Debug for RecordCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordCipher")
            .field("versions", &self.versions())
            .finish_non_exhaustive()
    }
}

fn aad(kind: RecordKind, id: &str, version: u64) -> Vec<u8> {
    let kind = kind.as_str();
    let mut a = Vec::with_capacity(32 + kind.len() + id.len());
    a.extend_from_slice(b"keyward-record/1\0");
    a.extend_from_slice(kind.as_bytes());
    a.push(0);
    a.extend_from_slice(id.as_bytes());
    a.push(0);
    a.extend_from_slice(&version.to_be_bytes());
    a
}

impl RecordCipher {
    pub(crate) fn new(key: &[u8], key_version: u32) -> Result<Self> {
        Self::with_versions(key_version, [(key_version, key)])
    }

    /// A cipher that seals under `current` and opens under any of `keys`.
    pub(crate) fn with_versions<'a>(
        current: u32,
        keys: impl IntoIterator<Item = (u32, &'a [u8])>,
    ) -> Result<Self> {
        let mut all = Vec::new();
        for (v, k) in keys {
            let key = RandomizedNonceKey::new(&AES_256_GCM, k).map_err(|_| Error::Crypto {
                operation: "aes-256-gcm key setup",
            })?;
            all.push((v, key));
        }
        all.sort_by_key(|(v, _)| *v != current);
        if all.first().map(|(v, _)| *v) != Some(current) {
            return Err(Error::Internal("the current data key is missing"));
        }
        Ok(RecordCipher { keys: all })
    }

    /// The version new blobs are sealed under.
    pub(crate) fn current_version(&self) -> u32 {
        self.keys[0].0
    }

    /// Every version it opens, the current first.
    pub(crate) fn versions(&self) -> Vec<u32> {
        self.keys.iter().map(|(v, _)| *v).collect()
    }

    /// The key version a blob was sealed under (`None` if it is no blob).
    pub(crate) fn version_of(blob: &[u8]) -> Option<u32> {
        Some(u32::from_be_bytes(blob.get(4..8)?.try_into().ok()?))
    }

    /// Encrypts `plaintext` as record `(kind, id, version)`.
    pub(crate) fn seal(
        &self,
        kind: RecordKind,
        id: &str,
        version: u64,
        plaintext: &[u8],
    ) -> Result<Vec<u8>> {
        let mut body = plaintext.to_vec();
        let (key_version, key) = &self.keys[0];
        let nonce = key
            .seal_in_place_append_tag(Aad::from(aad(kind, id, version)), &mut body)
            .map_err(|_| Error::Crypto {
                operation: "record encrypt",
            })?;
        let mut blob = Vec::with_capacity(HEADER_LEN + body.len());
        blob.extend_from_slice(MAGIC);
        blob.push(FORMAT_V1);
        blob.push(ALG_AES_256_GCM);
        blob.extend_from_slice(&key_version.to_be_bytes());
        blob.extend_from_slice(nonce.as_ref());
        blob.extend_from_slice(&body);
        body.iter_mut().for_each(|b| *b = 0);
        Ok(blob)
    }

    /// Opens a blob stored as record `(kind, id, version)`.
    ///
    /// # Errors
    /// [`Error::RecordTampered`] if the header, key version, tag or binding does not match.
    pub(crate) fn open(
        &self,
        kind: RecordKind,
        id: &str,
        version: u64,
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let tampered = || Error::RecordTampered {
            kind: kind.as_str().to_owned(),
            id: printable(id),
        };
        if blob.len() < HEADER_LEN + TAG_LEN
            || &blob[..2] != MAGIC
            || blob[2] != FORMAT_V1
            || blob[3] != ALG_AES_256_GCM
        {
            return Err(tampered());
        }
        let key_version = Self::version_of(blob).ok_or_else(tampered)?;
        let Some((_, key)) = self.keys.iter().find(|(v, _)| *v == key_version) else {
            return Err(tampered());
        };
        let nonce =
            Nonce::try_assume_unique_for_key(&blob[8..HEADER_LEN]).map_err(|_| tampered())?;
        let mut body = Zeroizing::new(blob[HEADER_LEN..].to_vec());
        let len = key
            .open_in_place(nonce, Aad::from(aad(kind, id, version)), &mut body)
            .map_err(|_| tampered())?
            .len();
        body.truncate(len);
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_every_binding() {
        let c = RecordCipher::new(&[7u8; 32], 1).unwrap();
        let blob = c.seal(RecordKind::Key, "42", 3, b"hello").unwrap();
        assert_eq!(
            &c.open(RecordKind::Key, "42", 3, &blob).unwrap()[..],
            b"hello"
        );
        assert!(matches!(
            c.open(RecordKind::Key, "43", 3, &blob),
            Err(Error::RecordTampered { .. })
        ));
        assert!(matches!(
            c.open(RecordKind::User, "42", 3, &blob),
            Err(Error::RecordTampered { .. })
        ));
        assert!(matches!(
            c.open(RecordKind::Key, "42", 4, &blob),
            Err(Error::RecordTampered { .. })
        ));
        for i in 0..blob.len() {
            let mut b = blob.clone();
            b[i] ^= 0x01;
            assert!(
                c.open(RecordKind::Key, "42", 3, &b).is_err(),
                "flip at byte {i} not detected"
            );
        }
        for n in 0..blob.len() {
            assert!(c.open(RecordKind::Key, "42", 3, &blob[..n]).is_err());
        }
        let other = RecordCipher::new(&[8u8; 32], 1).unwrap();
        assert!(other.open(RecordKind::Key, "42", 3, &blob).is_err());
    }

    #[test]
    fn a_rotated_cipher_opens_both_versions_and_seals_under_the_new_one() {
        let old = RecordCipher::new(&[7u8; 32], 1).unwrap();
        let blob1 = old.seal(RecordKind::Key, "1", 1, b"one").unwrap();
        let both =
            RecordCipher::with_versions(2, [(1, &[7u8; 32][..]), (2, &[9u8; 32][..])]).unwrap();
        let blob2 = both.seal(RecordKind::Key, "1", 1, b"one").unwrap();
        assert_eq!(RecordCipher::version_of(&blob2), Some(2));
        assert_eq!(
            &both.open(RecordKind::Key, "1", 1, &blob1).unwrap()[..],
            b"one"
        );
        assert_eq!(
            &both.open(RecordKind::Key, "1", 1, &blob2).unwrap()[..],
            b"one"
        );
        assert!(old.open(RecordKind::Key, "1", 1, &blob2).is_err());
        let only_new = RecordCipher::new(&[9u8; 32], 2).unwrap();
        assert!(only_new.open(RecordKind::Key, "1", 1, &blob1).is_err());
        assert_eq!(both.versions(), vec![2, 1]);
    }
}
