//! What seals a store, as the store records it: the [`SealConfig`] (plaintext JSON, record
//! `seal-config/config`), and the data-key record it is bound to (record `seal/data-key`,
//! encrypted under the master key).
//!
//! The seal configuration must be readable before the store is unsealed (it says how many
//! shares to ask for, or the passphrase's salt), so it is not encrypted; it is authenticated
//! instead: the data-key record, which only the master key opens, holds the SHA-256 of the
//! configuration's JSON, and an open whose configuration does not match is refused. Editing
//! the configuration can therefore only make unsealing fail, never weaken it.
//!
//! Data-key record plaintext (format 2):
//!
//! | bytes | field |
//! | --- | --- |
//! | 4 | magic `KWDK` |
//! | 1 | format, `2` |
//! | 32 | SHA-256 of the seal configuration's JSON |
//! | 4 | current data-key version, big-endian |
//! | 2 | number of data keys *n*, big-endian |
//! | *n* × 36 | each data key: version (4, big-endian), key (32) |
//!
//! A store made before seals were configurable holds format 1: the 32 key bytes alone
//! (data-key version 1, seal `key-file`).

use keyward_keystore::Backend;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::MASTER_KEY_LEN;
use crate::error::{Error, Result};

/// Record kind of the seal configuration (plaintext, see the module docs).
pub(crate) const SEAL_CONFIG_KIND: &str = "seal-config";
/// Record id of the seal configuration.
pub(crate) const SEAL_CONFIG_ID: &str = "config";

/// How the master key is produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SealType {
    /// A 32-byte key file (`[seal] key_file`, default `DATA_DIR/master.key`): the node
    /// unseals itself at start.
    KeyFile,
    /// A passphrase, stretched with Argon2id ([`PassphraseParams`]); an operator unseals.
    Passphrase,
    /// Shamir M-of-N shares of the master key; operators unseal with any M.
    Shamir,
}

impl SealType {
    /// The name used in configuration and output: `key-file`, `passphrase`, `shamir`.
    pub fn as_str(self) -> &'static str {
        match self {
            SealType::KeyFile => "key-file",
            SealType::Passphrase => "passphrase",
            SealType::Shamir => "shamir",
        }
    }

    /// Whether an operator must unseal a node (passphrase, shares) rather than the node
    /// itself (key file).
    pub fn needs_operator(self) -> bool {
        !matches!(self, SealType::KeyFile)
    }
}

/// Argon2id (RFC 9106) parameters of a passphrase seal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassphraseParams {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// The random 16-byte salt, hex.
    pub salt: String,
}

/// Shamir parameters of a shares seal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShamirParams {
    /// Shares made (N).
    pub shares: u8,
    /// Shares needed to unseal (M).
    pub threshold: u8,
    /// SHA-256 of each share (see `shamir::share_digest`), hex, so that a wrong share is refused
    /// when it is given rather than after M shares.
    pub share_digests: Vec<String>,
}

/// How a store is sealed: stored in plaintext, bound to the data-key record (module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealConfig {
    /// The seal's type.
    #[serde(rename = "type")]
    pub seal_type: SealType,
    /// Counts rekeys: 1 at `init`, +1 per rekey.
    pub generation: u64,
    /// For [`SealType::Passphrase`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<PassphraseParams>,
    /// For [`SealType::Shamir`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shamir: Option<ShamirParams>,
}

impl SealConfig {
    /// The seal of a key file.
    pub fn key_file() -> Self {
        SealConfig {
            seal_type: SealType::KeyFile,
            generation: 1,
            passphrase: None,
            shamir: None,
        }
    }

    pub(crate) fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|_| Error::Internal("seal config encode"))
    }

    /// SHA-256 of the JSON as stored.
    pub(crate) fn digest_of(json: &[u8]) -> [u8; 32] {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, json);
        d.as_ref().try_into().unwrap_or([0; 32])
    }
}

/// The seal configuration of `store` and its stored JSON (for the digest check at open);
/// a store without one (made before seals were configurable) is sealed by a key file.
///
/// # Errors
/// [`Error::StoreInconsistent`] if the record does not parse; [`Error::Store`].
pub fn read_seal_config(store: &dyn Backend) -> Result<SealConfig> {
    read_stored(store).map(|(c, _)| c)
}

/// The stored seal configuration's JSON and record version.
pub(crate) type StoredConfig = Option<(Vec<u8>, u64)>;

pub(crate) fn read_stored(store: &dyn Backend) -> Result<(SealConfig, StoredConfig)> {
    match store.get(SEAL_CONFIG_KIND, SEAL_CONFIG_ID)? {
        None => Ok((SealConfig::key_file(), None)),
        Some(rec) => {
            let config =
                serde_json::from_slice(&rec.blob).map_err(|_| Error::StoreInconsistent {
                    detail: "the seal configuration record does not parse".into(),
                })?;
            Ok((config, Some((rec.blob, rec.version))))
        }
    }
}

/// What the data-key record of a store with a root-key record is bound to (instead of the
/// seal configuration, which the root-key record binds).
pub(crate) const ROOT_BOUND: &[u8] = b"keyward data keys under the root key/1";

const RK_MAGIC: &[u8; 4] = b"KWRK";

/// The root-key record's plaintext: `KWRK`, format `1`, the SHA-256 of the seal
/// configuration's JSON, the 32-byte root key.
pub(crate) fn encode_root(root: &[u8], config_json: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(69));
    out.extend_from_slice(RK_MAGIC);
    out.push(1);
    out.extend_from_slice(&SealConfig::digest_of(config_json));
    out.extend_from_slice(root);
    out
}

/// The root key from a root-key record's plaintext; with `config_json`, checked to be bound
/// to that seal configuration.
pub(crate) fn decode_root(
    plain: &[u8],
    config_json: Option<&[u8]>,
) -> Result<Zeroizing<[u8; MASTER_KEY_LEN]>> {
    if plain.len() != 37 + MASTER_KEY_LEN || &plain[..4] != RK_MAGIC || plain[4] != 1 {
        return Err(Error::Sealed {
            reason: "the root key record does not decode",
        });
    }
    if let Some(json) = config_json {
        if plain[5..37] != SealConfig::digest_of(json) {
            return Err(Error::Sealed {
                reason: "the seal configuration does not match the root key record (edited?)",
            });
        }
    }
    let mut k = Zeroizing::new([0u8; MASTER_KEY_LEN]);
    k.copy_from_slice(&plain[37..]);
    Ok(k)
}

const DK_MAGIC: &[u8; 4] = b"KWDK";
const DK_FORMAT: u8 = 2;

/// The data keys, as the data-key record holds them. Zeroized on drop; `Debug` shows versions
/// only.
pub(crate) struct DataKeys {
    /// The version new records are written under.
    pub(crate) current: u32,
    /// Every version still readable, with its key.
    pub(crate) keys: Vec<(u32, Zeroizing<[u8; MASTER_KEY_LEN]>)>,
    /// The version of the data-key record they were read from (not encoded).
    pub(crate) record_version: u64,
}

impl std::fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeys")
            .field("current", &self.current)
            .field(
                "versions",
                &self.keys.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl DataKeys {
    /// A cipher sealing under the current key and opening under every version.
    pub(crate) fn cipher(&self) -> Result<crate::store::format::RecordCipher> {
        crate::store::format::RecordCipher::with_versions(
            self.current,
            self.keys.iter().map(|(v, k)| (*v, &k[..])),
        )
    }

    /// The key of `version`.
    pub(crate) fn key(&self, version: u32) -> Option<&[u8; MASTER_KEY_LEN]> {
        self.keys
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, k)| &**k)
    }

    /// The plaintext of the data-key record, bound to the seal configuration `config_json`.
    pub(crate) fn encode(&self, config_json: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let count = u16::try_from(self.keys.len()).map_err(|_| Error::Internal("data keys"))?;
        let mut out = Zeroizing::new(Vec::with_capacity(43 + self.keys.len() * 36));
        out.extend_from_slice(DK_MAGIC);
        out.push(DK_FORMAT);
        out.extend_from_slice(&SealConfig::digest_of(config_json));
        out.extend_from_slice(&self.current.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        for (v, k) in &self.keys {
            out.extend_from_slice(&v.to_be_bytes());
            out.extend_from_slice(&k[..]);
        }
        Ok(out)
    }

    /// Reads a data-key record's plaintext and checks that it was written for the seal
    /// configuration `config_json` (`None`: the store has none, a key-file seal). `None` if the
    /// plaintext is not a data-key record; `Some(Err)` if it is bound to another configuration.
    pub(crate) fn decode(plain: &[u8], config_json: Option<&[u8]>) -> Result<DataKeys> {
        let malformed = || Error::Sealed {
            reason: "the data key record does not decode",
        };
        if plain.len() == MASTER_KEY_LEN {
            // Format 1: a store from before configurable seals.
            if config_json.is_some() {
                return Err(Error::Sealed {
                    reason: "the seal configuration does not match the data key record (edited?)",
                });
            }
            let mut k = Zeroizing::new([0u8; MASTER_KEY_LEN]);
            k.copy_from_slice(plain);
            return Ok(DataKeys {
                current: 1,
                keys: vec![(1, k)],
                record_version: 0,
            });
        }
        if plain.len() < 43 || &plain[..4] != DK_MAGIC || plain[4] != DK_FORMAT {
            return Err(malformed());
        }
        let default_json;
        let json = match config_json {
            Some(j) => j,
            None => {
                default_json = SealConfig::key_file().to_json()?;
                &default_json
            }
        };
        if plain[5..37] != SealConfig::digest_of(json) {
            return Err(Error::Sealed {
                reason: "the seal configuration does not match the data key record (edited?)",
            });
        }
        let current = u32::from_be_bytes(plain[37..41].try_into().map_err(|_| malformed())?);
        let count = usize::from(u16::from_be_bytes(
            plain[41..43].try_into().map_err(|_| malformed())?,
        ));
        let body = &plain[43..];
        if body.len() != count * 36 || count == 0 {
            return Err(malformed());
        }
        let mut keys = Vec::with_capacity(count);
        for chunk in body.chunks_exact(36) {
            let v = u32::from_be_bytes(chunk[..4].try_into().map_err(|_| malformed())?);
            let mut k = Zeroizing::new([0u8; MASTER_KEY_LEN]);
            k.copy_from_slice(&chunk[4..]);
            keys.push((v, k));
        }
        let keys = DataKeys {
            current,
            keys,
            record_version: 0,
        };
        if keys.key(current).is_none() {
            return Err(malformed());
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_keys_round_trip_and_bind_the_config() {
        let keys = DataKeys {
            current: 2,
            keys: vec![(1, Zeroizing::new([1; 32])), (2, Zeroizing::new([2; 32]))],
            record_version: 0,
        };
        let json = SealConfig::key_file().to_json().unwrap();
        let plain = keys.encode(&json).unwrap();
        let back = DataKeys::decode(&plain, Some(&json)).unwrap();
        assert_eq!(back.current, 2);
        assert_eq!(back.key(1).unwrap(), &[1; 32]);
        assert_eq!(back.key(2).unwrap(), &[2; 32]);
        // No stored config means key-file: the same digest.
        assert!(DataKeys::decode(&plain, None).is_ok());
        let mut other = SealConfig::key_file();
        other.generation = 2;
        let other = other.to_json().unwrap();
        assert!(DataKeys::decode(&plain, Some(&other)).is_err());
        assert!(DataKeys::decode(&plain[..plain.len() - 1], Some(&json)).is_err());
        assert!(!format!("{back:?}").contains("1, 1"));
        // Format 1.
        let legacy = DataKeys::decode(&[9; 32], None).unwrap();
        assert_eq!((legacy.current, legacy.key(1).unwrap()), (1, &[9; 32]));
        assert!(DataKeys::decode(&[9; 32], Some(&json)).is_err());
    }
}
