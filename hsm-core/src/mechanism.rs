//! Mechanisms: the named algorithms an operation uses (PKCS#11 `CKM_*`, CloudHSM names).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A signing mechanism.
///
/// The message passed to `sign` is the whole message; the HSM hashes it with the mechanism's
/// hash. Output encodings:
///
/// | mechanism | standard | signature bytes |
/// | --- | --- | --- |
/// | `ecdsa-sha256` (P-256), `ecdsa-sha384` (P-384) | FIPS 186-5, SEC 1 | DER `Ecdsa-Sig-Value` (RFC 3279 §2.2.3), at most 72 / 104 bytes |
/// | `rsa-pkcs1-sha256/384/512` | RFC 8017 §8.2 (RSASSA-PKCS1-v1_5) | modulus length |
/// | `rsa-pss-sha256/384/512` | RFC 8017 §8.1, MGF1 with the same hash, salt length = hash length | modulus length |
/// | `ed25519` | RFC 8032 §5.1 (pure Ed25519) | 64 |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignMechanism {
    /// ECDSA with SHA-256 on P-256, DER signature.
    EcdsaSha256,
    /// ECDSA with SHA-384 on P-384, DER signature.
    EcdsaSha384,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RsaPkcs1Sha256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RsaPkcs1Sha384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RsaPkcs1Sha512,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256, 32-byte salt.
    RsaPssSha256,
    /// RSASSA-PSS with SHA-384, MGF1-SHA-384, 48-byte salt.
    RsaPssSha384,
    /// RSASSA-PSS with SHA-512, MGF1-SHA-512, 64-byte salt.
    RsaPssSha512,
    /// Pure Ed25519.
    Ed25519,
}

impl SignMechanism {
    /// Every signing mechanism.
    pub const ALL: [SignMechanism; 9] = [
        SignMechanism::EcdsaSha256,
        SignMechanism::EcdsaSha384,
        SignMechanism::RsaPkcs1Sha256,
        SignMechanism::RsaPkcs1Sha384,
        SignMechanism::RsaPkcs1Sha512,
        SignMechanism::RsaPssSha256,
        SignMechanism::RsaPssSha384,
        SignMechanism::RsaPssSha512,
        SignMechanism::Ed25519,
    ];

    /// The mechanism's name, e.g. `rsa-pss-sha256`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignMechanism::EcdsaSha256 => "ecdsa-sha256",
            SignMechanism::EcdsaSha384 => "ecdsa-sha384",
            SignMechanism::RsaPkcs1Sha256 => "rsa-pkcs1-sha256",
            SignMechanism::RsaPkcs1Sha384 => "rsa-pkcs1-sha384",
            SignMechanism::RsaPkcs1Sha512 => "rsa-pkcs1-sha512",
            SignMechanism::RsaPssSha256 => "rsa-pss-sha256",
            SignMechanism::RsaPssSha384 => "rsa-pss-sha384",
            SignMechanism::RsaPssSha512 => "rsa-pss-sha512",
            SignMechanism::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for SignMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SignMechanism {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        SignMechanism::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| Error::invalid(format!("unknown signing mechanism {s:?}")))
    }
}
