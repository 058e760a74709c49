//! Key objects: handles, classes, types and attributes (PKCS#11 / CloudHSM vocabulary).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A key handle: the number that names one key object inside the HSM.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyHandle(pub u64);

impl fmt::Display for KeyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for KeyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHandle({})", self.0)
    }
}

impl FromStr for KeyHandle {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        s.parse::<u64>()
            .map(KeyHandle)
            .map_err(|_| Error::invalid(format!("{s:?} is not a key handle (a decimal number)")))
    }
}

/// Key class (PKCS#11 `CKA_CLASS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyClass {
    /// A symmetric key.
    Secret,
    /// The private half of a key pair.
    Private,
    /// The public half of a key pair.
    Public,
}

impl KeyClass {
    /// The lower-case name, e.g. `private`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyClass::Secret => "secret",
            KeyClass::Private => "private",
            KeyClass::Public => "public",
        }
    }
}

impl fmt::Display for KeyClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Key type with its size or curve, as named on the command line (`ec-p256`, `rsa-2048`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeySpec {
    /// ECDSA key on NIST P-256 (secp256r1), FIPS 186-5.
    #[serde(rename = "ec-p256")]
    EcP256,
    /// ECDSA key on NIST P-384 (secp384r1), FIPS 186-5.
    #[serde(rename = "ec-p384")]
    EcP384,
    /// RSA, 2048-bit modulus, public exponent 65537.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// RSA, 3072-bit modulus, public exponent 65537.
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    /// RSA, 4096-bit modulus, public exponent 65537.
    #[serde(rename = "rsa-4096")]
    Rsa4096,
    /// Ed25519 (RFC 8032).
    #[serde(rename = "ed25519")]
    Ed25519,
}

impl KeySpec {
    /// Every spec, in the order the CLI lists them.
    pub const ALL: [KeySpec; 6] = [
        KeySpec::EcP256,
        KeySpec::EcP384,
        KeySpec::Rsa2048,
        KeySpec::Rsa3072,
        KeySpec::Rsa4096,
        KeySpec::Ed25519,
    ];

    /// The spec's name, e.g. `ec-p256`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeySpec::EcP256 => "ec-p256",
            KeySpec::EcP384 => "ec-p384",
            KeySpec::Rsa2048 => "rsa-2048",
            KeySpec::Rsa3072 => "rsa-3072",
            KeySpec::Rsa4096 => "rsa-4096",
            KeySpec::Ed25519 => "ed25519",
        }
    }

    /// The PKCS#11-style key type: `ec`, `rsa` or `ed25519`.
    pub fn key_type(self) -> &'static str {
        match self {
            KeySpec::EcP256 | KeySpec::EcP384 => "ec",
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => "rsa",
            KeySpec::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeySpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        KeySpec::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = KeySpec::ALL.iter().map(|k| k.as_str()).collect();
                Error::invalid(format!(
                    "unknown key type {s:?}; expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// A key object's attributes, with CloudHSM's defaults and meanings.
///
/// `local`, `never_extractable` and `always_sensitive` are set by the HSM and read-only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attributes {
    /// Free-form label (PKCS#11 `CKA_LABEL`), at most 127 bytes of UTF-8.
    pub label: String,
    /// May create signatures.
    pub sign: bool,
    /// May verify signatures.
    pub verify: bool,
    /// May encrypt.
    pub encrypt: bool,
    /// May decrypt.
    pub decrypt: bool,
    /// May wrap other keys.
    pub wrap: bool,
    /// May unwrap keys.
    pub unwrap: bool,
    /// May derive keys.
    pub derive: bool,
    /// May leave the HSM wrapped under another key. Settable only at creation.
    pub extractable: bool,
    /// The key's value can never be read in plaintext (always true for private/secret keys).
    pub sensitive: bool,
    /// Persistent (stored) object rather than a session object.
    pub token: bool,
    /// May modify attributes (true → false only).
    pub modifiable: bool,
    /// May be destroyed.
    pub destroyable: bool,
    /// Generated inside the HSM (read-only).
    pub local: bool,
    /// Has never been extractable (read-only).
    pub never_extractable: bool,
    /// Has always been sensitive (read-only).
    pub always_sensitive: bool,
}

impl Attributes {
    /// Default attributes for the private half of a generated key pair.
    pub fn private_default(label: &str) -> Self {
        Attributes {
            label: label.to_owned(),
            sign: true,
            verify: false,
            encrypt: false,
            decrypt: false,
            wrap: false,
            unwrap: false,
            derive: false,
            extractable: true,
            sensitive: true,
            token: true,
            modifiable: true,
            destroyable: true,
            local: true,
            never_extractable: false,
            always_sensitive: true,
        }
    }

    /// Default attributes for the public half of a generated key pair.
    pub fn public_default(label: &str) -> Self {
        Attributes {
            sign: false,
            verify: true,
            sensitive: false,
            always_sensitive: false,
            ..Attributes::private_default(label)
        }
    }

    /// Checks a label: 1 to 127 bytes of UTF-8 without control characters.
    ///
    /// # Errors
    /// [`Error::InvalidInput`].
    pub fn check_label(label: &str) -> Result<()> {
        if label.is_empty() || label.len() > 127 {
            return Err(Error::invalid("a label is 1 to 127 bytes of UTF-8"));
        }
        if label.chars().any(char::is_control) {
            return Err(Error::invalid("a label has no control characters"));
        }
        Ok(())
    }
}

/// Options for generating a key pair; the attributes the caller may choose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPairOptions {
    /// Label given to both objects of the pair.
    pub label: String,
    /// Whether the private key may ever leave the HSM wrapped. TLS keys: `false`.
    pub extractable: bool,
}

/// What the HSM tells about a key object: everything but its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The object's handle.
    pub handle: KeyHandle,
    /// The other half of the pair, for private and public keys.
    pub linked_handle: Option<KeyHandle>,
    /// Secret, private or public.
    pub class: KeyClass,
    /// The key's type and size, e.g. `ec-p256`.
    pub spec: KeySpec,
    /// The attributes.
    pub attributes: Attributes,
}
