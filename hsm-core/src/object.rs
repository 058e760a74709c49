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

/// Key type with its size or curve, as named on the command line (`ec-p256`, `rsa-2048`,
/// `aes-256`, `generic-secret-32`, ...). Serialized as that name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeySpec {
    /// AES, 128-bit key (FIPS 197).
    Aes128,
    /// AES, 192-bit key.
    Aes192,
    /// AES, 256-bit key.
    Aes256,
    /// A generic secret of 1 to 800 bytes, for HMAC (PKCS#11 `CKK_GENERIC_SECRET`).
    GenericSecret {
        /// Length of the secret in bytes, 1 to 800.
        bytes: u16,
    },
    /// ECDSA/ECDH key on NIST P-256 (secp256r1), FIPS 186-5.
    EcP256,
    /// ECDSA/ECDH key on NIST P-384 (secp384r1).
    EcP384,
    /// ECDSA/ECDH key on NIST P-521 (secp521r1).
    EcP521,
    /// RSA, 2048-bit modulus, public exponent 65537.
    Rsa2048,
    /// RSA, 3072-bit modulus, public exponent 65537.
    Rsa3072,
    /// RSA, 4096-bit modulus, public exponent 65537.
    Rsa4096,
    /// Ed25519 (RFC 8032).
    Ed25519,
}

/// Largest generic secret, in bytes (CloudHSM's limit).
pub const GENERIC_SECRET_MAX_BYTES: u16 = 800;

impl KeySpec {
    /// Every asymmetric spec, in the order the CLI lists them.
    pub const ASYMMETRIC: [KeySpec; 7] = [
        KeySpec::EcP256,
        KeySpec::EcP384,
        KeySpec::EcP521,
        KeySpec::Rsa2048,
        KeySpec::Rsa3072,
        KeySpec::Rsa4096,
        KeySpec::Ed25519,
    ];

    /// Fixed-size symmetric specs (generic secrets have a length of their own).
    pub const SYMMETRIC: [KeySpec; 3] = [KeySpec::Aes128, KeySpec::Aes192, KeySpec::Aes256];

    /// The spec's name, e.g. `ec-p256`; generic secrets are `generic-secret-<bytes>`.
    pub fn name(self) -> String {
        match self {
            KeySpec::GenericSecret { bytes } => format!("generic-secret-{bytes}"),
            other => other.as_str().to_owned(),
        }
    }

    /// The spec's name without the generic-secret length (`generic-secret`).
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

    /// Checks the spec's own bounds: a generic secret is 1 to 800 bytes.
    ///
    /// # Errors
    /// [`Error::InvalidInput`].
    pub fn check(self) -> Result<()> {
        match self {
            KeySpec::GenericSecret { bytes }
                if !(1..=GENERIC_SECRET_MAX_BYTES).contains(&bytes) =>
            {
                Err(Error::invalid(format!(
                    "a generic secret is 1 to {GENERIC_SECRET_MAX_BYTES} bytes"
                )))
            }
            _ => Ok(()),
        }
    }

    /// The PKCS#11-style key type: `aes`, `generic-secret`, `ec`, `rsa` or `ed25519`.
    pub fn key_type(self) -> &'static str {
        match self {
            KeySpec::Aes128 | KeySpec::Aes192 | KeySpec::Aes256 => "aes",
            KeySpec::GenericSecret { .. } => "generic-secret",
            KeySpec::EcP256 | KeySpec::EcP384 | KeySpec::EcP521 => "ec",
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => "rsa",
            KeySpec::Ed25519 => "ed25519",
        }
    }

    /// Whether this is a symmetric (secret) key type.
    pub fn is_secret(self) -> bool {
        matches!(self.key_type(), "aes" | "generic-secret")
    }

    /// Length in bytes of a secret key's value; `None` for asymmetric keys.
    pub fn secret_len(self) -> Option<usize> {
        match self {
            KeySpec::Aes128 => Some(16),
            KeySpec::Aes192 => Some(24),
            KeySpec::Aes256 => Some(32),
            KeySpec::GenericSecret { bytes } => Some(usize::from(bytes)),
            _ => None,
        }
    }

    /// The AES spec for a key length in bytes.
    pub fn aes_for_len(len: usize) -> Option<KeySpec> {
        match len {
            16 => Some(KeySpec::Aes128),
            24 => Some(KeySpec::Aes192),
            32 => Some(KeySpec::Aes256),
            _ => None,
        }
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for KeySpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if let Some(n) = s.strip_prefix("generic-secret-") {
            let bytes: u16 = n
                .parse()
                .ok()
                .filter(|b| (1..=GENERIC_SECRET_MAX_BYTES).contains(b))
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "a generic secret is 1 to {GENERIC_SECRET_MAX_BYTES} bytes"
                    ))
                })?;
            return Ok(KeySpec::GenericSecret { bytes });
        }
        KeySpec::ASYMMETRIC
            .into_iter()
            .chain(KeySpec::SYMMETRIC)
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = KeySpec::SYMMETRIC
                    .iter()
                    .chain(KeySpec::ASYMMETRIC.iter())
                    .map(|k| k.as_str())
                    .collect();
                Error::invalid(format!(
                    "unknown key type {s:?}; expected one of {}, generic-secret-<1..800>",
                    names.join(", ")
                ))
            })
    }
}

impl Serialize for KeySpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for KeySpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A key object's attributes, with CloudHSM's meanings (PKCS#11 `CKA_*`).
///
/// `local`, `never_extractable`, `always_sensitive` and `check_value` are set by the HSM and
/// read-only. Rules on change (see [`AttributeName`]): `extractable` only at creation;
/// `modifiable` true → false only; `wrap_with_trusted` false → true only; `trusted` only by an
/// admin; `token` session → token only; nothing changes once `modifiable` is false.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attributes {
    /// Free-form label (PKCS#11 `CKA_LABEL`), 1 to 127 bytes of UTF-8, no control characters.
    pub label: String,
    /// Application identifier (`CKA_ID`), lower-case hex, at most 64 bytes of value.
    #[serde(default)]
    pub id: String,
    /// May create signatures or MACs.
    pub sign: bool,
    /// May verify signatures or MACs.
    pub verify: bool,
    /// May encrypt.
    pub encrypt: bool,
    /// May decrypt.
    pub decrypt: bool,
    /// May wrap other keys.
    pub wrap: bool,
    /// May unwrap keys.
    pub unwrap: bool,
    /// May derive keys (ECDH).
    pub derive: bool,
    /// May leave the HSM wrapped under another key. Settable only at creation.
    pub extractable: bool,
    /// The value can never be read in plaintext (true for private and secret keys).
    pub sensitive: bool,
    /// Persistent (stored) object; false for a session object that ends with its session.
    pub token: bool,
    /// A wrapping key an admin vouches for; keys with `wrap_with_trusted` may be wrapped only
    /// by trusted keys. Set only by an admin.
    pub trusted: bool,
    /// The key may be wrapped only by a `trusted` key. Once true, read-only.
    pub wrap_with_trusted: bool,
    /// Attributes may change (true → false only).
    pub modifiable: bool,
    /// May be destroyed.
    pub destroyable: bool,
    /// Generated inside the HSM (read-only).
    pub local: bool,
    /// Has never been extractable (read-only).
    pub never_extractable: bool,
    /// Has always been sensitive (read-only).
    pub always_sensitive: bool,
    /// Key check value (read-only), 3 bytes in hex: for AES, the first 3 bytes of AES-ECB of a
    /// zero block (PKCS#11 `CKA_CHECK_VALUE`); for other keys, the first 3 bytes of SHA-1 over
    /// the public key DER or the secret value.
    #[serde(default)]
    pub check_value: String,
}

impl Attributes {
    /// Defaults for a new object: everything usable is false until asked for, except as
    /// CloudHSM does (`sign` true for secret keys), `modifiable`, `destroyable` and `token`
    /// true. `extractable` is false (CloudHSM's default is true; Vault transit's `exportable`
    /// is false, as here): a key leaves the HSM, wrapped, only if its creator asked for that,
    /// and `extractable` cannot be set later.
    pub fn defaults(label: &str, class: KeyClass) -> Self {
        Attributes {
            label: label.to_owned(),
            id: String::new(),
            sign: class == KeyClass::Secret,
            verify: class == KeyClass::Secret,
            encrypt: false,
            decrypt: false,
            wrap: false,
            unwrap: false,
            derive: false,
            extractable: false,
            sensitive: class != KeyClass::Public,
            token: true,
            trusted: false,
            wrap_with_trusted: false,
            modifiable: true,
            destroyable: true,
            local: true,
            never_extractable: false,
            always_sensitive: class != KeyClass::Public,
            check_value: String::new(),
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
        // Control characters, and Unicode bidirectional and invisible format characters that
        // could make one label look like another in a listing.
        let deceptive = |c: char| {
            c.is_control()
                || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
        };
        if label.chars().any(deceptive) {
            return Err(Error::invalid(
                "a label has no control, bidirectional or invisible characters",
            ));
        }
        Ok(())
    }

    /// Key-usage separation: one key (or key pair) either protects data (`encrypt`,
    /// `decrypt`) or protects keys (`wrap`, `unwrap`), never both. Otherwise a wrapped key could
    /// be decrypted as data, or data "unwrapped" into a key and exported.
    ///
    /// # Errors
    /// [`Error::InvalidInput`].
    pub fn check_separation(&self, linked: Option<&Attributes>) -> Result<()> {
        let data = |a: &Attributes| a.encrypt || a.decrypt;
        let keys = |a: &Attributes| a.wrap || a.unwrap;
        let (d, k) = match linked {
            Some(l) => (data(self) || data(l), keys(self) || keys(l)),
            None => (data(self), keys(self)),
        };
        if d && k {
            return Err(Error::invalid(
                "a key (or key pair) either encrypts and decrypts data or wraps and unwraps keys, not both",
            ));
        }
        Ok(())
    }

    pub(crate) fn check_id(id: &str) -> Result<()> {
        if id.len() > 128
            || !id.len().is_multiple_of(2)
            || !id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Error::invalid("an id is lower-case hex, at most 64 bytes"));
        }
        Ok(())
    }

    /// The value of a boolean attribute by name.
    pub fn get_bool(&self, name: AttributeName) -> Option<bool> {
        use AttributeName as A;
        Some(match name {
            A::Sign => self.sign,
            A::Verify => self.verify,
            A::Encrypt => self.encrypt,
            A::Decrypt => self.decrypt,
            A::Wrap => self.wrap,
            A::Unwrap => self.unwrap,
            A::Derive => self.derive,
            A::Extractable => self.extractable,
            A::Sensitive => self.sensitive,
            A::Token => self.token,
            A::Trusted => self.trusted,
            A::WrapWithTrusted => self.wrap_with_trusted,
            A::Modifiable => self.modifiable,
            A::Destroyable => self.destroyable,
            A::Local => self.local,
            A::NeverExtractable => self.never_extractable,
            A::AlwaysSensitive => self.always_sensitive,
            A::Label | A::Id | A::CheckValue => return None,
        })
    }

    pub(crate) fn set_bool(&mut self, name: AttributeName, v: bool) {
        use AttributeName as A;
        match name {
            A::Sign => self.sign = v,
            A::Verify => self.verify = v,
            A::Encrypt => self.encrypt = v,
            A::Decrypt => self.decrypt = v,
            A::Wrap => self.wrap = v,
            A::Unwrap => self.unwrap = v,
            A::Derive => self.derive = v,
            A::Extractable => self.extractable = v,
            A::Sensitive => self.sensitive = v,
            A::Token => self.token = v,
            A::Trusted => self.trusted = v,
            A::WrapWithTrusted => self.wrap_with_trusted = v,
            A::Modifiable => self.modifiable = v,
            A::Destroyable => self.destroyable = v,
            A::Local => self.local = v,
            A::NeverExtractable => self.never_extractable = v,
            A::AlwaysSensitive => self.always_sensitive = v,
            A::Label | A::Id | A::CheckValue => {}
        }
    }
}

/// Attribute names as used in filters, templates and `set_attribute` (`sign`, `label`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttributeName {
    /// `label`
    Label,
    /// `id`
    Id,
    /// `sign`
    Sign,
    /// `verify`
    Verify,
    /// `encrypt`
    Encrypt,
    /// `decrypt`
    Decrypt,
    /// `wrap`
    Wrap,
    /// `unwrap`
    Unwrap,
    /// `derive`
    Derive,
    /// `extractable`
    Extractable,
    /// `sensitive`
    Sensitive,
    /// `token`
    Token,
    /// `trusted`
    Trusted,
    /// `wrap_with_trusted`
    WrapWithTrusted,
    /// `modifiable`
    Modifiable,
    /// `destroyable`
    Destroyable,
    /// `local` (read-only)
    Local,
    /// `never_extractable` (read-only)
    NeverExtractable,
    /// `always_sensitive` (read-only)
    AlwaysSensitive,
    /// `check_value` (read-only)
    CheckValue,
}

impl AttributeName {
    /// Every attribute name.
    pub const ALL: [AttributeName; 20] = [
        AttributeName::Label,
        AttributeName::Id,
        AttributeName::Sign,
        AttributeName::Verify,
        AttributeName::Encrypt,
        AttributeName::Decrypt,
        AttributeName::Wrap,
        AttributeName::Unwrap,
        AttributeName::Derive,
        AttributeName::Extractable,
        AttributeName::Sensitive,
        AttributeName::Token,
        AttributeName::Trusted,
        AttributeName::WrapWithTrusted,
        AttributeName::Modifiable,
        AttributeName::Destroyable,
        AttributeName::Local,
        AttributeName::NeverExtractable,
        AttributeName::AlwaysSensitive,
        AttributeName::CheckValue,
    ];

    /// The attribute's name, e.g. `wrap_with_trusted`.
    pub fn as_str(self) -> &'static str {
        use AttributeName as A;
        match self {
            A::Label => "label",
            A::Id => "id",
            A::Sign => "sign",
            A::Verify => "verify",
            A::Encrypt => "encrypt",
            A::Decrypt => "decrypt",
            A::Wrap => "wrap",
            A::Unwrap => "unwrap",
            A::Derive => "derive",
            A::Extractable => "extractable",
            A::Sensitive => "sensitive",
            A::Token => "token",
            A::Trusted => "trusted",
            A::WrapWithTrusted => "wrap_with_trusted",
            A::Modifiable => "modifiable",
            A::Destroyable => "destroyable",
            A::Local => "local",
            A::NeverExtractable => "never_extractable",
            A::AlwaysSensitive => "always_sensitive",
            A::CheckValue => "check_value",
        }
    }

    /// Whether only the HSM sets this attribute.
    pub fn is_read_only(self) -> bool {
        matches!(
            self,
            AttributeName::Local
                | AttributeName::NeverExtractable
                | AttributeName::AlwaysSensitive
                | AttributeName::CheckValue
        )
    }
}

impl fmt::Display for AttributeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AttributeName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let norm = s.replace('-', "_");
        AttributeName::ALL
            .into_iter()
            .find(|a| a.as_str() == norm)
            .ok_or_else(|| Error::invalid(format!("unknown attribute {s:?}")))
    }
}

/// A new value for `set_attribute` or a template entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttributeValue {
    /// For boolean attributes.
    Bool(bool),
    /// For `label` and `id`.
    Text(String),
}

/// Attributes the caller chooses when a key is created (generated, unwrapped, derived or
/// imported). Unset entries take [`Attributes::defaults`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyTemplate {
    /// `label` (required).
    pub label: String,
    /// Other attributes to set, by name.
    pub attributes: Vec<(AttributeName, AttributeValue)>,
}

impl KeyTemplate {
    /// A template with only a label.
    pub fn labelled(label: &str) -> Self {
        KeyTemplate {
            label: label.to_owned(),
            attributes: Vec::new(),
        }
    }

    /// Adds a boolean attribute.
    pub fn with(mut self, name: AttributeName, value: bool) -> Self {
        self.attributes.push((name, AttributeValue::Bool(value)));
        self
    }

    /// Builds the attributes of a new object of `class`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad label or id; [`Error::AttributeViolation`]-free by
    /// design: read-only attributes in a template are refused as invalid input.
    pub(crate) fn build(&self, class: KeyClass) -> Result<Attributes> {
        Attributes::check_label(&self.label)?;
        let mut a = Attributes::defaults(&self.label, class);
        for (name, value) in &self.attributes {
            if name.is_read_only() {
                return Err(Error::invalid(format!("attribute {name} is read-only")));
            }
            if *name == AttributeName::Trusted {
                return Err(Error::invalid(
                    "trusted is set only by an admin, with set-attribute, on an existing key",
                ));
            }
            match (name, value) {
                (AttributeName::Label, AttributeValue::Text(t)) => {
                    Attributes::check_label(t)?;
                    a.label = t.clone();
                }
                (AttributeName::Id, AttributeValue::Text(t)) => {
                    Attributes::check_id(t)?;
                    a.id = t.clone();
                }
                (n, AttributeValue::Bool(v)) if a.get_bool(*n).is_some() => a.set_bool(*n, *v),
                (n, _) => {
                    return Err(Error::invalid(format!(
                        "wrong value type for attribute {n}"
                    )))
                }
            }
        }
        if class == KeyClass::Public {
            // Public keys are never secret.
            a.sensitive = false;
            a.always_sensitive = false;
            a.extractable = true;
        }
        a.never_extractable = !a.extractable;
        a.always_sensitive = a.sensitive;
        Ok(a)
    }
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
    /// The crypto-user who owns the key.
    pub owner: String,
    /// Crypto-users the key is shared with (use only).
    #[serde(default)]
    pub shared_with: Vec<String>,
    /// The attributes.
    pub attributes: Attributes,
    /// The newest version of the key (Vault transit's `latest_version`): new signatures, MACs
    /// and ciphertexts use it unless an older one is asked for. 1 until the key is rotated
    /// ([`Hsm::rotate_key`](crate::Hsm::rotate_key)).
    #[serde(default = "version_one", skip_serializing_if = "is_version_one")]
    pub latest_version: u32,
    /// Decrypt, verify and rewrap refuse input made with an older version
    /// (`min_decryption_version`). 1 by default; at most `latest_version`.
    #[serde(default = "version_one", skip_serializing_if = "is_version_one")]
    pub min_decryption_version: u32,
    /// New signatures, MACs and ciphertexts asked for with an explicit older version refuse
    /// versions below this (`min_encryption_version`); 0 (the default): any version from
    /// `min_decryption_version` on.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_encryption_version: u32,
    /// The oldest version whose key material the HSM still holds (`min_available_version`):
    /// older ones were destroyed by [`Hsm::trim_key_versions`](crate::Hsm::trim_key_versions).
    /// 1 by default.
    #[serde(default = "version_one", skip_serializing_if = "is_version_one")]
    pub min_available_version: u32,
    /// The issuing CA whose key this is, set when the CA is registered
    /// ([`Hsm::create_ca`](crate::Hsm::create_ca)): from then on the key signs only what the
    /// CA signs (certificates, CRLs, OCSP responses, through [`Hsm::signer`](crate::Hsm::signer)),
    /// never caller-supplied data through [`Hsm::sign`](crate::Hsm::sign), and is neither
    /// destroyable nor modifiable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuing_ca: Option<String>,
}

// Records of keys that were never rotated keep the layout they had before key versions.
fn version_one() -> u32 {
    1
}

fn is_version_one(v: &u32) -> bool {
    *v == 1
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}
