//! Shamir M-of-N shares of the master key, and unsealing from them one share at a time.
//!
//! Splitting and combining are `vsss-rs`'s byte-wise Shamir sharing over GF(2^8)
//! (`Gf256::split_array` / `combine_array`; audited for LIT Protocol and Turnkey, maintained,
//! constant-time field arithmetic). A share is `1 + 32` bytes (the x-coordinate, then one
//! y-byte per key byte), printed as standard base64 (44 characters).
//!
//! Each share's SHA-256 (over `"keyward-unseal-share/1" 0x00 share`) is kept in the seal
//! configuration, so a share that is not one of this seal's (mistyped, of another cluster, or
//! replaced by a rekey) is refused the moment it is given, and counts nothing.

use base64::Engine as _;
use zeroize::Zeroizing;

use super::config::{SealConfig, SealType, ShamirParams};
use super::MasterKey;
use crate::error::{Error, Result};

/// Most shares a seal may have.
pub const MAX_SHARES: u8 = 16;

/// One unseal share, base64. Zeroized on drop; `Debug` prints `UnsealShare(..)`.
pub struct UnsealShare(Zeroizing<String>);

impl std::fmt::Debug for UnsealShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsealShare(..)")
    }
}

impl UnsealShare {
    /// The share as printed to its holder (base64).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn share_digest(share: &[u8]) -> String {
    let mut input = Vec::with_capacity(24 + share.len());
    input.extend_from_slice(b"keyward-unseal-share/1\0");
    input.extend_from_slice(share);
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &input,
    ))
}

/// Splits `master` into `shares` shares, any `threshold` of which rebuild it; returns them and
/// the seal configuration that recognises them.
///
/// # Errors
/// [`Error::InvalidInput`] unless `2 <= threshold <= shares <= MAX_SHARES`.
pub fn split(
    master: &MasterKey,
    shares: u8,
    threshold: u8,
) -> Result<(Vec<UnsealShare>, SealConfig)> {
    if threshold < 2 || threshold > shares || shares > MAX_SHARES {
        return Err(Error::invalid(format!(
            "shares and threshold must satisfy 2 <= threshold <= shares <= {MAX_SHARES} (got {threshold} of {shares})"
        )));
    }
    let raw = vsss_rs::Gf256::split_array(
        usize::from(threshold),
        usize::from(shares),
        master.as_bytes(),
        rand_core::OsRng,
    )
    .map_err(|_| Error::Crypto {
        operation: "shamir split",
    })?;
    let raw: Vec<Zeroizing<Vec<u8>>> = raw.into_iter().map(Zeroizing::new).collect();
    let config = SealConfig {
        seal_type: SealType::Shamir,
        generation: 1,
        passphrase: None,
        shamir: Some(ShamirParams {
            shares,
            threshold,
            share_digests: raw.iter().map(|s| share_digest(s)).collect(),
        }),
    };
    let printed = raw
        .iter()
        .map(|s| {
            UnsealShare(Zeroizing::new(
                base64::engine::general_purpose::STANDARD.encode(&s[..]),
            ))
        })
        .collect();
    Ok((printed, config))
}

/// The shares given so far towards unsealing a store sealed by `config`.
pub struct Unsealer {
    config: SealConfig,
    given: Vec<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for Unsealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsealer")
            .field("given", &self.given.len())
            .field("threshold", &self.threshold())
            .finish()
    }
}

/// What one share did.
#[derive(Debug)]
pub enum UnsealStep {
    /// Counted; `given` of `threshold` so far.
    NeedMore {
        /// Shares counted.
        given: u8,
        /// Shares needed.
        threshold: u8,
    },
    /// The last share needed: the rebuilt master key (still to be tried on the store).
    Complete(MasterKey),
}

impl Unsealer {
    /// Collects shares for a store sealed by `config` (a [`SealType::Shamir`] seal).
    pub fn new(config: SealConfig) -> Self {
        Unsealer {
            config,
            given: Vec::new(),
        }
    }

    /// Shares needed (M); 0 for a seal without shares.
    pub fn threshold(&self) -> u8 {
        self.config.shamir.as_ref().map_or(0, |s| s.threshold)
    }

    /// Shares counted so far.
    pub fn progress(&self) -> u8 {
        u8::try_from(self.given.len()).unwrap_or(u8::MAX)
    }

    /// The seal configuration the shares are checked against.
    pub fn config(&self) -> &SealConfig {
        &self.config
    }

    /// Forgets the shares given so far.
    pub fn reset(&mut self) {
        self.given.clear();
    }

    /// Counts `share` (base64, surrounding whitespace ignored).
    ///
    /// # Errors
    /// [`Error::UnsealKeyRejected`] (nothing counted) if it is not base64, not a share of this
    /// seal, or already given; [`Error::InvalidInput`] if the seal has no shares.
    pub fn add(&mut self, share: &str) -> Result<UnsealStep> {
        let Some(params) = &self.config.shamir else {
            return Err(Error::invalid(format!(
                "this store's seal is {}, not shamir: it takes no shares",
                self.config.seal_type.as_str()
            )));
        };
        let rejected = |reason: &str| Error::UnsealKeyRejected {
            reason: reason.into(),
        };
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(share.trim())
                .map_err(|_| {
                    rejected("a share is 44 characters of base64, as `init` printed it")
                })?,
        );
        if bytes.len() != 1 + super::MASTER_KEY_LEN {
            return Err(rejected(
                "a share is 44 characters of base64, as `init` printed it",
            ));
        }
        let digest = share_digest(&bytes);
        if !params.share_digests.contains(&digest) {
            return Err(rejected(
                "not a share of this store's seal (mistyped, of another HSM, or from before a rekey)",
            ));
        }
        if self.given.iter().any(|g| share_digest(g) == digest) {
            return Err(rejected("this share was already given"));
        }
        self.given.push(bytes);
        if self.given.len() < usize::from(params.threshold) {
            return Ok(UnsealStep::NeedMore {
                given: self.progress(),
                threshold: params.threshold,
            });
        }
        let parts: Vec<Vec<u8>> = self.given.iter().map(|g| g.to_vec()).collect();
        let combined = vsss_rs::Gf256::combine_array(&parts);
        parts.into_iter().for_each(|p| drop(Zeroizing::new(p)));
        self.given.clear();
        let combined = Zeroizing::new(combined.map_err(|_| Error::Crypto {
            operation: "shamir combine",
        })?);
        Ok(UnsealStep::Complete(MasterKey::from_bytes(&combined)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_threshold_shares_rebuild_the_key_and_wrong_ones_count_nothing() {
        let master = MasterKey::generate().unwrap();
        let (shares, config) = split(&master, 5, 3).unwrap();
        assert_eq!(shares.len(), 5);
        assert_eq!(format!("{:?}", shares[0]), "UnsealShare(..)");
        for pick in [[0, 1, 2], [4, 2, 0], [1, 3, 4]] {
            let mut u = Unsealer::new(config.clone());
            assert!(matches!(
                u.add(shares[pick[0]].expose()).unwrap(),
                UnsealStep::NeedMore {
                    given: 1,
                    threshold: 3
                }
            ));
            // Wrong, malformed and repeated shares are refused and count nothing.
            let mut flipped = base64::engine::general_purpose::STANDARD
                .decode(shares[pick[1]].expose())
                .unwrap();
            flipped[5] ^= 1;
            let flipped = base64::engine::general_purpose::STANDARD.encode(flipped);
            for bad in [flipped.as_str(), "not base64!", shares[pick[0]].expose()] {
                assert!(matches!(u.add(bad), Err(Error::UnsealKeyRejected { .. })));
            }
            assert_eq!(u.progress(), 1);
            u.add(shares[pick[1]].expose()).unwrap();
            match u.add(shares[pick[2]].expose()).unwrap() {
                UnsealStep::Complete(k) => assert_eq!(k.as_bytes(), master.as_bytes()),
                other => panic!("{other:?}"),
            }
        }
        // Shares of another split do not count.
        let (others, _) = split(&master, 5, 3).unwrap();
        let mut u = Unsealer::new(config);
        assert!(u.add(others[0].expose()).is_err());
        u.add(shares[0].expose()).unwrap();
        u.reset();
        assert_eq!(u.progress(), 0);
    }

    #[test]
    fn bounds_are_checked() {
        let master = MasterKey::generate().unwrap();
        for (n, m) in [(5, 1), (3, 4), (17, 3), (0, 0)] {
            assert!(split(&master, n, m).is_err(), "{m} of {n}");
        }
    }

    proptest::proptest! {
        /// Any text given as a share: refused without panic, and nothing counted.
        #[test]
        fn any_text_as_a_share_is_refused_and_counts_nothing(text in ".{0,80}") {
            let master = MasterKey::from_bytes(&[3; 32]).unwrap();
            let (_, config) = split(&master, 3, 2).unwrap();
            let mut u = Unsealer::new(config);
            proptest::prop_assert!(u.add(&text).is_err());
            proptest::prop_assert_eq!(u.progress(), 0);
        }
    }
}
