//! Names with a fixed set of values: key class, key spec, mechanism, role. Each parses from
//! ([`FromStr`]) and prints as ([`fmt::Display`], serde) the exact string of the wire, and
//! compares equal to that string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A name that is not one of a type's values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownName {
    /// What was parsed, e.g. `key class`.
    pub kind: &'static str,
    /// The name given.
    pub name: String,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?}", self.kind, self.name)
    }
}

impl std::error::Error for UnknownName {}

/// `Display`, serde and comparisons with `str` through `as_str`/`FromStr`.
macro_rules! wire_string {
    ($ty:ty) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.name())
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.name())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.name() == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.name() == *other
            }
        }
    };
}

/// An enum of names without data: `ALL`, `as_str`, `name`, `FromStr` and [`wire_string`].
macro_rules! wire_names {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in the order of the documentation.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire string.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $wire, )+
                }
            }

            fn name(&self) -> &'static str {
                self.as_str()
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $( $wire => Ok($name::$variant), )+
                    _ => Err(UnknownName { kind: $kind, name: s.to_owned() }),
                }
            }
        }

        wire_string!($name);
    };
}

wire_names! {
    /// Key class (PKCS#11 `CKA_CLASS`).
    KeyClass, "key class" {
        /// `secret`: a symmetric key.
        Secret = "secret",
        /// `private`: the private half of a key pair.
        Private = "private",
        /// `public`: the public half of a key pair.
        Public = "public",
    }
}

wire_names! {
    /// A user's role.
    Role, "role" {
        /// `admin`: manages users; cannot use keys.
        Admin = "admin",
        /// `crypto-user`: creates, owns and uses keys.
        CryptoUser = "crypto-user",
    }
}

wire_names! {
    /// A mechanism of sign/verify/hmac, encrypt/decrypt or wrap/unwrap (`aes-gcm` is both an
    /// encryption and a wrapping mechanism).
    Mechanism, "mechanism" {
        /// `ecdsa-sha256` (FIPS 186-5).
        EcdsaSha256 = "ecdsa-sha256",
        /// `ecdsa-sha384`.
        EcdsaSha384 = "ecdsa-sha384",
        /// `ecdsa-sha512`.
        EcdsaSha512 = "ecdsa-sha512",
        /// `rsa-pkcs1-sha256` (RFC 8017 §8.2).
        RsaPkcs1Sha256 = "rsa-pkcs1-sha256",
        /// `rsa-pkcs1-sha384`.
        RsaPkcs1Sha384 = "rsa-pkcs1-sha384",
        /// `rsa-pkcs1-sha512`.
        RsaPkcs1Sha512 = "rsa-pkcs1-sha512",
        /// `rsa-pss-sha256` (RFC 8017 §8.1).
        RsaPssSha256 = "rsa-pss-sha256",
        /// `rsa-pss-sha384`.
        RsaPssSha384 = "rsa-pss-sha384",
        /// `rsa-pss-sha512`.
        RsaPssSha512 = "rsa-pss-sha512",
        /// `ed25519` (RFC 8032).
        Ed25519 = "ed25519",
        /// `hmac-sha256` (RFC 2104).
        HmacSha256 = "hmac-sha256",
        /// `hmac-sha384`.
        HmacSha384 = "hmac-sha384",
        /// `hmac-sha512`.
        HmacSha512 = "hmac-sha512",
        /// `aes-gcm`: encryption, or wrapping.
        AesGcm = "aes-gcm",
        /// `aes-cbc-pad`.
        AesCbcPad = "aes-cbc-pad",
        /// `rsa-oaep-sha256` (encryption).
        RsaOaepSha256 = "rsa-oaep-sha256",
        /// `rsa-oaep-sha384` (encryption).
        RsaOaepSha384 = "rsa-oaep-sha384",
        /// `rsa-oaep-sha512` (encryption).
        RsaOaepSha512 = "rsa-oaep-sha512",
        /// `aes-kw` (RFC 3394, wrapping).
        AesKw = "aes-kw",
        /// `aes-kwp` (RFC 5649, wrapping).
        AesKwp = "aes-kwp",
        /// `rsa-oaep` (wrapping).
        RsaOaep = "rsa-oaep",
        /// `rsa-aes` (PKCS#11 `CKM_RSA_AES_KEY_WRAP`, wrapping).
        RsaAes = "rsa-aes",
    }
}

impl From<Mechanism> for String {
    fn from(m: Mechanism) -> String {
        m.as_str().to_owned()
    }
}

/// Key type with its size or curve: `aes-128`, `aes-192`, `aes-256`, `generic-secret-N`,
/// `ec-p256`, `ec-p384`, `ec-p521`, `rsa-2048`, `rsa-3072`, `rsa-4096`, `ed25519`. The HSM
/// checks ranges (a generic secret is 1 to 800 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeySpec {
    /// `aes-128`.
    Aes128,
    /// `aes-192`.
    Aes192,
    /// `aes-256`.
    Aes256,
    /// `generic-secret-N`: a secret of N bytes, for HMAC.
    GenericSecret {
        /// Length in bytes.
        bytes: u16,
    },
    /// `ec-p256` (NIST P-256).
    EcP256,
    /// `ec-p384`.
    EcP384,
    /// `ec-p521`.
    EcP521,
    /// `rsa-2048`.
    Rsa2048,
    /// `rsa-3072`.
    Rsa3072,
    /// `rsa-4096`.
    Rsa4096,
    /// `ed25519`.
    Ed25519,
}

impl KeySpec {
    /// Every spec with a fixed name (generic secrets are `generic-secret-N`).
    pub const FIXED: [KeySpec; 10] = [
        KeySpec::Aes128,
        KeySpec::Aes192,
        KeySpec::Aes256,
        KeySpec::EcP256,
        KeySpec::EcP384,
        KeySpec::EcP521,
        KeySpec::Rsa2048,
        KeySpec::Rsa3072,
        KeySpec::Rsa4096,
        KeySpec::Ed25519,
    ];

    /// The name without a generic secret's length (`generic-secret`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeySpec::Aes128 => "aes-128",
            KeySpec::Aes192 => "aes-192",
            KeySpec::Aes256 => "aes-256",
            KeySpec::GenericSecret { .. } => "generic-secret",
            KeySpec::EcP256 => "ec-p256",
            KeySpec::EcP384 => "ec-p384",
            KeySpec::EcP521 => "ec-p521",
            KeySpec::Rsa2048 => "rsa-2048",
            KeySpec::Rsa3072 => "rsa-3072",
            KeySpec::Rsa4096 => "rsa-4096",
            KeySpec::Ed25519 => "ed25519",
        }
    }

    /// The wire name, e.g. `ec-p256` or `generic-secret-32`.
    pub fn name(&self) -> String {
        match self {
            KeySpec::GenericSecret { bytes } => format!("generic-secret-{bytes}"),
            other => other.as_str().to_owned(),
        }
    }
}

impl FromStr for KeySpec {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        let unknown = || UnknownName {
            kind: "key spec",
            name: s.to_owned(),
        };
        if let Some(n) = s.strip_prefix("generic-secret-") {
            // Only the canonical decimal form, so that the name prints back unchanged.
            let bytes: u16 = n.parse().map_err(|_| unknown())?;
            return (bytes.to_string() == n)
                .then_some(KeySpec::GenericSecret { bytes })
                .ok_or_else(unknown);
        }
        KeySpec::FIXED
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(unknown)
    }
}

wire_string!(KeySpec);
