//! Mechanisms: the named algorithms an operation uses (PKCS#11 `CKM_*`, CloudHSM names).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name { $($(#[$vm])* $variant,)+ }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The mechanism's name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|m| m.as_str() == s)
                    .ok_or_else(|| {
                        let names: Vec<&str> = $name::ALL.iter().map(|m| m.as_str()).collect();
                        Error::invalid(format!("unknown mechanism {s:?}; expected one of {}", names.join(", ")))
                    })
            }
        }
    };
}

named_enum! {
    /// A signing (or MAC) mechanism.
    ///
    /// | mechanism | standard | keys | signature bytes |
    /// | --- | --- | --- | --- |
    /// | `ecdsa-sha256` | FIPS 186-5 | P-256, P-521 | DER `Ecdsa-Sig-Value` (RFC 3279 §2.2.3) or raw `r‖s` (2 × field size) |
    /// | `ecdsa-sha384` | FIPS 186-5 | P-384, P-521 | as above |
    /// | `ecdsa-sha512` | FIPS 186-5 | P-521 | as above |
    /// | `rsa-pkcs1-sha256/384/512` | RFC 8017 §8.2 | RSA | modulus length |
    /// | `rsa-pss-sha256/384/512` | RFC 8017 §8.1, MGF1 with the same hash, salt = hash length | RSA | modulus length |
    /// | `ed25519` | RFC 8032 §5.1 (pure) | Ed25519 | 64 |
    /// | `hmac-sha256/384/512` | RFC 2104, FIPS 198-1 | generic-secret, AES | 32 / 48 / 64 |
    ///
    /// ECDSA pairs a curve with a hash as aws-lc-rs offers them: P-256 with SHA-256, P-384 with
    /// SHA-384, P-521 with SHA-256/384/512; verification of DER signatures also accepts P-256
    /// with SHA-384 and P-384 with SHA-256 (as TLS 1.2 peers use them); other pairs are
    /// `mechanism_invalid`.
    SignMechanism {
        /// ECDSA with SHA-256.
        EcdsaSha256 => "ecdsa-sha256",
        /// ECDSA with SHA-384.
        EcdsaSha384 => "ecdsa-sha384",
        /// ECDSA with SHA-512.
        EcdsaSha512 => "ecdsa-sha512",
        /// RSASSA-PKCS1-v1_5 with SHA-256.
        RsaPkcs1Sha256 => "rsa-pkcs1-sha256",
        /// RSASSA-PKCS1-v1_5 with SHA-384.
        RsaPkcs1Sha384 => "rsa-pkcs1-sha384",
        /// RSASSA-PKCS1-v1_5 with SHA-512.
        RsaPkcs1Sha512 => "rsa-pkcs1-sha512",
        /// RSASSA-PSS with SHA-256, MGF1-SHA-256, 32-byte salt.
        RsaPssSha256 => "rsa-pss-sha256",
        /// RSASSA-PSS with SHA-384, MGF1-SHA-384, 48-byte salt.
        RsaPssSha384 => "rsa-pss-sha384",
        /// RSASSA-PSS with SHA-512, MGF1-SHA-512, 64-byte salt.
        RsaPssSha512 => "rsa-pss-sha512",
        /// Pure Ed25519.
        Ed25519 => "ed25519",
        /// HMAC-SHA-256.
        HmacSha256 => "hmac-sha256",
        /// HMAC-SHA-384.
        HmacSha384 => "hmac-sha384",
        /// HMAC-SHA-512.
        HmacSha512 => "hmac-sha512",
    }
}

impl SignMechanism {
    /// The hash the mechanism applies, if any (`None` for Ed25519).
    pub fn digest(self) -> Option<&'static aws_lc_rs::digest::Algorithm> {
        use aws_lc_rs::digest;
        use SignMechanism as M;
        match self {
            M::EcdsaSha256 | M::RsaPkcs1Sha256 | M::RsaPssSha256 | M::HmacSha256 => {
                Some(&digest::SHA256)
            }
            M::EcdsaSha384 | M::RsaPkcs1Sha384 | M::RsaPssSha384 | M::HmacSha384 => {
                Some(&digest::SHA384)
            }
            M::EcdsaSha512 | M::RsaPkcs1Sha512 | M::RsaPssSha512 | M::HmacSha512 => {
                Some(&digest::SHA512)
            }
            M::Ed25519 => None,
        }
    }

    /// Whether this is an HMAC (symmetric) mechanism.
    pub fn is_hmac(self) -> bool {
        matches!(
            self,
            SignMechanism::HmacSha256 | SignMechanism::HmacSha384 | SignMechanism::HmacSha512
        )
    }

    /// Whether the mechanism accepts a precomputed digest (ECDSA and RSA).
    pub fn accepts_digest(self) -> bool {
        !self.is_hmac() && self != SignMechanism::Ed25519
    }
}

/// How an ECDSA signature is encoded. Ignored by other mechanisms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SignatureEncoding {
    /// DER `Ecdsa-Sig-Value` (RFC 3279 §2.2.3), as X.509 and TLS use.
    #[default]
    Der,
    /// Fixed-width `r‖s`, each big-endian and padded to the field size (IEEE P1363, JWS).
    Raw,
}

/// What to sign: the whole message, or a digest the caller computed with the mechanism's hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInput<'a> {
    /// The message; the HSM hashes it.
    Message(&'a [u8]),
    /// A digest of exactly the mechanism's hash length (ECDSA and RSA only).
    Digest(&'a [u8]),
}

named_enum! {
    /// An encryption mechanism.
    ///
    /// | mechanism | standard | keys | output of encrypt |
    /// | --- | --- | --- | --- |
    /// | `aes-gcm` | NIST SP 800-38D | AES | 12-byte IV chosen by the HSM ‖ ciphertext ‖ 16-byte tag |
    /// | `aes-cbc-pad` | NIST SP 800-38A, PKCS#7 padding | AES | 16-byte IV chosen by the HSM ‖ ciphertext |
    /// | `rsa-oaep-sha256/384/512` | RFC 8017 §7.1, MGF1 with the same hash, empty label | RSA | modulus length |
    ///
    /// Decrypt takes the same layout back. AAD applies to `aes-gcm` only.
    EncryptMechanism {
        /// AES-GCM.
        AesGcm => "aes-gcm",
        /// AES-CBC with PKCS#7 padding.
        AesCbcPad => "aes-cbc-pad",
        /// RSA-OAEP with SHA-256.
        RsaOaepSha256 => "rsa-oaep-sha256",
        /// RSA-OAEP with SHA-384.
        RsaOaepSha384 => "rsa-oaep-sha384",
        /// RSA-OAEP with SHA-512.
        RsaOaepSha512 => "rsa-oaep-sha512",
    }
}

named_enum! {
    /// A key-wrapping mechanism. What is wrapped: a secret key's value, or a private key as
    /// PKCS#8 `PrivateKeyInfo` DER (RFC 5958).
    ///
    /// | mechanism | standard | wrapping key | wrapped bytes |
    /// | --- | --- | --- | --- |
    /// | `aes-kw` | RFC 3394 (NIST SP 800-38F KW) | AES-128/256 | input length + 8; input a multiple of 8 bytes, ≥ 16 |
    /// | `aes-kwp` | RFC 5649 (KWP) | AES-128/256 | padded to 8 bytes, + 8 |
    /// | `aes-gcm` | NIST SP 800-38D | AES | 12-byte IV ‖ ciphertext ‖ 16-byte tag |
    /// | `rsa-oaep` | RFC 8017 §7.1, SHA-256, MGF1-SHA-256 | RSA public key | modulus length (secret keys only: they must fit) |
    /// | `rsa-aes` | PKCS#11 `CKM_RSA_AES_KEY_WRAP`: RSA-OAEP-SHA-256 of a fresh AES-256 key ‖ AES-KWP of the target under it | RSA public key | modulus length + KWP length |
    WrapMechanism {
        /// AES Key Wrap.
        AesKw => "aes-kw",
        /// AES Key Wrap with Padding.
        AesKwp => "aes-kwp",
        /// AES-GCM.
        AesGcm => "aes-gcm",
        /// RSA-OAEP with SHA-256.
        RsaOaep => "rsa-oaep",
        /// RSA-OAEP + AES-KWP envelope.
        RsaAes => "rsa-aes",
    }
}

named_enum! {
    /// How a data key of envelope encryption ([`Hsm::generate_data_key`](crate::Hsm::generate_data_key))
    /// is wrapped under its key encryption key (KEK).
    ///
    /// | mechanism | standard | KEK (wraps / unwraps) | wrapped bytes |
    /// | --- | --- | --- | --- |
    /// | `aes-kwp` | RFC 5649 (NIST SP 800-38F KWP) | AES-128/256 secret key | data key padded to 8 bytes, + 8 (40 for 32 bytes) |
    /// | `rsa-oaep-sha256` | RFC 8017 §7.1, SHA-256, MGF1-SHA-256, empty label | RSA public key / its private key | modulus length |
    DataKeyMechanism {
        /// AES Key Wrap with Padding.
        AesKwp => "aes-kwp",
        /// RSA-OAEP with SHA-256.
        RsaOaepSha256 => "rsa-oaep-sha256",
    }
}

impl DataKeyMechanism {
    /// The key-wrapping mechanism that does the work.
    pub(crate) fn wrap_mechanism(self) -> WrapMechanism {
        match self {
            DataKeyMechanism::AesKwp => WrapMechanism::AesKwp,
            DataKeyMechanism::RsaOaepSha256 => WrapMechanism::RsaOaep,
        }
    }
}
