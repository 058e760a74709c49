//! Sealing: the master key (the *unseal key*), which opens the root key, which opens the data
//! keys, which open every other record (Vault's barrier: unseal key → root key → keyring).
//!
//! | record | encrypted under | holds |
//! | --- | --- | --- |
//! | `seal/root-key` | the master key (never stored) | the root key (32 bytes), bound to the seal configuration's SHA-256 |
//! | `seal/data-key` | the root key | every data-key version and which is current ([`config`]) |
//! | every other record | a data key (its blob names the version) | keys, users, sessions, the manifest, the audit chain |
//! | `seal-config/config` | nothing (read before unsealing) | [`SealConfig`]: the seal's type, shares, Argon2id parameters |
//!
//! All use the record format of [`crate::store::format`] (AES-256-GCM, record identity bound
//! as associated data). What produces the master key is the store's seal: a key file, a
//! passphrase ([`passphrase`], Argon2id), or Shamir shares ([`shamir`]). A rekey replaces the
//! master key and the seal by re-encrypting the root-key record only: an unsealed node (which
//! keeps the root key in memory) keeps working. A data-key rotation adds a data-key version
//! and rewrites the records under it (`hsm::rotation`). A store made before root-key records
//! has its data-key record under the master key; it still opens, and its first rekey adds the
//! root-key record.

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::store::format::{RecordCipher, MASTER_KEY_VERSION};

pub(crate) mod config;
pub mod passphrase;
pub mod shamir;

pub use config::{read_seal_config, PassphraseParams, SealConfig, SealType, ShamirParams};
pub use shamir::{UnsealShare, UnsealStep, Unsealer};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_key_debug_is_redacted_and_length_checked() {
        let k = MasterKey::from_bytes(&[0xAB; 32]).unwrap();
        assert_eq!(format!("{k:?}"), "MasterKey(..)");
        assert!(MasterKey::from_bytes(&[0; 31]).is_err());
    }
}
