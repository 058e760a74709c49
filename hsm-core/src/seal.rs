//! Sealing and the encrypted record format.
//!
//! Every record at rest is AES-256-GCM (NIST SP 800-38D) encrypted under the *data key*, with a
//! random 96-bit nonce and a 128-bit tag. The data key is itself stored as a record encrypted
//! under the *master key*. A record's blob is self-describing:
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

use crate::error::{Error, Result};

const MAGIC: &[u8; 2] = b"KW";
const FORMAT_V1: u8 = 1;
const ALG_AES_256_GCM: u8 = 1;
const HEADER_LEN: usize = 2 + 1 + 1 + 4 + NONCE_LEN;
const TAG_LEN: usize = 16;
/// Key version written for records encrypted directly under the master key.
const MASTER_KEY_VERSION: u32 = 0;
/// Key version of the current data key.
pub(crate) const DATA_KEY_VERSION: u32 = 1;

/// Length of a master key in bytes (AES-256).
pub const MASTER_KEY_LEN: usize = 32;

/// The master key: 32 random bytes that seal the store. Not `Clone`; zeroized on drop;
/// `Debug` prints `MasterKey(..)`.
pub struct MasterKey(Zeroizing<[u8; MASTER_KEY_LEN]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A new random master key from the system's CSPRNG.
    ///
    /// # Errors
    /// [`Error::Crypto`] if the random generator fails.
    pub fn generate() -> Result<Self> {
        let mut k = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        aws_lc_rs::rand::fill(&mut k[..]).map_err(|_| Error::Crypto {
            operation: "random",
        })?;
        Ok(MasterKey(k))
    }

    /// Takes a master key from exactly 32 bytes (e.g. a key file's contents).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if `bytes` is not 32 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; MASTER_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| Error::invalid(format!("a master key is {MASTER_KEY_LEN} bytes")))?;
        Ok(MasterKey(Zeroizing::new(arr)))
    }

    /// The key's bytes, for writing the key file when the store is created.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0[..]
    }

    pub(crate) fn cipher(&self) -> Result<RecordCipher> {
        RecordCipher::new(&self.0[..], MASTER_KEY_VERSION)
    }
}

/// A record kind or id made safe for one line of an error message.
pub(crate) fn printable(s: &str) -> String {
    s.chars()
        .take(80)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// AES-256-GCM under one key, producing and opening record blobs.
pub(crate) struct RecordCipher {
    key: RandomizedNonceKey,
    key_version: u32,
}

impl std::fmt::Debug for RecordCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordCipher")
            .field("key_version", &self.key_version)
            .finish_non_exhaustive()
    }
}

fn aad(kind: &str, id: &str, version: u64) -> Vec<u8> {
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
        let key = RandomizedNonceKey::new(&AES_256_GCM, key).map_err(|_| Error::Crypto {
            operation: "aes-256-gcm key setup",
        })?;
        Ok(RecordCipher { key, key_version })
    }

    /// Encrypts `plaintext` as record `(kind, id, version)`.
    pub(crate) fn seal(
        &self,
        kind: &str,
        id: &str,
        version: u64,
        plaintext: &[u8],
    ) -> Result<Vec<u8>> {
        let mut body = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(aad(kind, id, version)), &mut body)
            .map_err(|_| Error::Crypto {
                operation: "record encrypt",
            })?;
        let mut blob = Vec::with_capacity(HEADER_LEN + body.len());
        blob.extend_from_slice(MAGIC);
        blob.push(FORMAT_V1);
        blob.push(ALG_AES_256_GCM);
        blob.extend_from_slice(&self.key_version.to_be_bytes());
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
        kind: &str,
        id: &str,
        version: u64,
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let tampered = || Error::RecordTampered {
            kind: printable(kind),
            id: printable(id),
        };
        if blob.len() < HEADER_LEN + TAG_LEN
            || &blob[..2] != MAGIC
            || blob[2] != FORMAT_V1
            || blob[3] != ALG_AES_256_GCM
            || blob[4..8] != self.key_version.to_be_bytes()
        {
            return Err(tampered());
        }
        let nonce =
            Nonce::try_assume_unique_for_key(&blob[8..HEADER_LEN]).map_err(|_| tampered())?;
        let mut body = Zeroizing::new(blob[HEADER_LEN..].to_vec());
        let len = self
            .key
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
        let blob = c.seal("key", "42", 3, b"hello").unwrap();
        assert_eq!(&c.open("key", "42", 3, &blob).unwrap()[..], b"hello");
        assert!(matches!(
            c.open("key", "43", 3, &blob),
            Err(Error::RecordTampered { .. })
        ));
        assert!(matches!(
            c.open("user", "42", 3, &blob),
            Err(Error::RecordTampered { .. })
        ));
        assert!(matches!(
            c.open("key", "42", 4, &blob),
            Err(Error::RecordTampered { .. })
        ));
        for i in 0..blob.len() {
            let mut b = blob.clone();
            b[i] ^= 0x01;
            assert!(
                c.open("key", "42", 3, &b).is_err(),
                "flip at byte {i} not detected"
            );
        }
        for n in 0..blob.len() {
            assert!(c.open("key", "42", 3, &blob[..n]).is_err());
        }
        let other = RecordCipher::new(&[8u8; 32], 1).unwrap();
        assert!(other.open("key", "42", 3, &blob).is_err());
    }

    #[test]
    fn master_key_debug_is_redacted_and_length_checked() {
        let k = MasterKey::from_bytes(&[0xAB; 32]).unwrap();
        assert_eq!(format!("{k:?}"), "MasterKey(..)");
        assert!(MasterKey::from_bytes(&[0; 31]).is_err());
    }
}
