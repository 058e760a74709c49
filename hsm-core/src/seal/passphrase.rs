//! A passphrase seal: the master key is Argon2id (RFC 9106) of the passphrase with a random
//! 16-byte salt, 32 bytes out. Parameters: RFC 9106 §4's second recommended option, 64 MiB of
//! memory, 3 passes, 4 lanes ([`MEMORY_KIB`], [`ITERATIONS`], [`PARALLELISM`]); they are stored
//! with the salt in the seal configuration, so a store keeps opening if the defaults change.

use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use super::config::{PassphraseParams, SealConfig, SealType};
use super::{MasterKey, MASTER_KEY_LEN};
use crate::error::{Error, Result};

/// Argon2id memory cost, KiB (64 MiB).
pub const MEMORY_KIB: u32 = 64 * 1024;
/// Argon2id passes.
pub const ITERATIONS: u32 = 3;
/// Argon2id lanes.
pub const PARALLELISM: u32 = 4;
/// Shortest passphrase accepted, in characters.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

/// A new passphrase seal: a random salt, and the master key `passphrase` makes with it.
///
/// # Errors
/// [`Error::InvalidInput`] for a passphrase shorter than [`MIN_PASSPHRASE_CHARS`].
pub fn new_seal(passphrase: &str) -> Result<(MasterKey, SealConfig)> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(Error::invalid(format!(
            "a seal passphrase must be at least {MIN_PASSPHRASE_CHARS} characters"
        )));
    }
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| Error::Crypto {
        operation: "random",
    })?;
    let params = PassphraseParams {
        memory_kib: MEMORY_KIB,
        iterations: ITERATIONS,
        parallelism: PARALLELISM,
        salt: hex::encode(salt),
    };
    let config = SealConfig {
        seal_type: SealType::Passphrase,
        generation: 1,
        passphrase: Some(params),
        shamir: None,
    };
    Ok((master_key(&config, passphrase)?, config))
}

/// The master key `passphrase` makes under `config` (whether it opens the store is for the
/// caller to find out).
///
/// # Errors
/// [`Error::InvalidInput`] if `config` is not a passphrase seal; [`Error::StoreInconsistent`]
/// if its parameters are unusable.
pub fn master_key(config: &SealConfig, passphrase: &str) -> Result<MasterKey> {
    let Some(p) = &config.passphrase else {
        return Err(Error::invalid(format!(
            "this store's seal is {}, not passphrase",
            config.seal_type.as_str()
        )));
    };
    let bad = || Error::StoreInconsistent {
        detail: "the seal configuration's Argon2id parameters are unusable".into(),
    };
    let salt = hex::decode(&p.salt).map_err(|_| bad())?;
    let params = Params::new(
        p.memory_kib,
        p.iterations,
        p.parallelism,
        Some(MASTER_KEY_LEN),
    )
    .map_err(|_| bad())?;
    let mut out = Zeroizing::new([0u8; MASTER_KEY_LEN]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), &salt, &mut out[..])
        .map_err(|_| bad())?;
    MasterKey::from_bytes(&out[..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_passphrase_same_key_other_passphrase_other_key() {
        let (k, config) = new_seal("correct horse battery").unwrap();
        assert_eq!(
            master_key(&config, "correct horse battery")
                .unwrap()
                .as_bytes(),
            k.as_bytes()
        );
        assert_ne!(
            master_key(&config, "correct horse batterz")
                .unwrap()
                .as_bytes(),
            k.as_bytes()
        );
        assert!(new_seal("short").is_err());
        let p = config.passphrase.unwrap();
        assert_eq!((p.memory_kib, p.iterations, p.parallelism), (65536, 3, 4));
        assert_eq!(p.salt.len(), 32);
    }
}
