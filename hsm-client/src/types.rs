//! The SDK's own types: what a call takes and returns where the wire type (from
//! `keyward-api`, re-exported at the crate root) is not the handiest shape. Bytes are
//! `Vec<u8>` here; the client encodes them into the API's requests in `client.rs`.

use keyward_api::{ListQuery, Role};

/// A session on one node, as login returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The user.
    pub username: String,
    /// `admin` or `crypto-user`.
    pub role: Role,
    /// Seconds until the session expires.
    pub expires_in_seconds: u64,
}

/// Filters and pagination of [`crate::Client::list_keys`]: the API's [`ListQuery`] with the
/// attribute filters as pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFilter {
    /// Exact label.
    pub label: Option<String>,
    /// `secret`, `private` or `public`.
    pub class: Option<String>,
    /// `aes`, `generic-secret`, `rsa`, `ec` or `ed25519`.
    pub key_type: Option<String>,
    /// Exact owner (user name).
    pub owner: Option<String>,
    /// Boolean attribute filters.
    pub attributes: Vec<(String, bool)>,
    /// Keys with a handle greater than this (the previous page's `next`).
    pub after: Option<u64>,
    /// Page size, 1 to 1000 (server default 100).
    pub limit: Option<usize>,
}

impl From<&KeyFilter> for ListQuery {
    fn from(f: &KeyFilter) -> Self {
        let attributes = (!f.attributes.is_empty()).then(|| {
            f.attributes
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        });
        ListQuery {
            label: f.label.clone(),
            owner: f.owner.clone(),
            class: f.class.clone(),
            key_type: f.key_type.clone(),
            attributes,
            after: f.after,
            limit: f.limit,
        }
    }
}

/// A public key.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicKey {
    /// SubjectPublicKeyInfo PEM.
    pub pem: String,
    /// SubjectPublicKeyInfo DER.
    pub der: Vec<u8>,
    /// RFC 7517 JSON Web Key, when the key type has one.
    pub jwk: Option<serde_json::Value>,
}

/// A public key to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKeyInput {
    /// SubjectPublicKeyInfo PEM.
    Pem(String),
    /// SubjectPublicKeyInfo DER.
    Der(Vec<u8>),
}

/// What is signed: the message, or its digest (ECDSA and RSA only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInput {
    /// The message.
    Message(Vec<u8>),
    /// Its digest.
    Digest(Vec<u8>),
}

/// One signature (or HMAC) request; also a batch item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignItem {
    /// Key handle.
    pub key: u64,
    /// e.g. `ecdsa-sha256`, `rsa-pss-sha256`, `ed25519`, `hmac-sha256`.
    pub mechanism: String,
    /// Message or digest.
    pub input: SignInput,
    /// ECDSA signature encoding: `der` (server default) or `raw`.
    pub encoding: Option<String>,
    /// Sign with this key version instead of the latest.
    pub key_version: Option<u32>,
}

impl SignItem {
    /// Signs `message` with `key` and `mechanism`.
    pub fn message(key: u64, mechanism: impl Into<String>, message: impl Into<Vec<u8>>) -> Self {
        SignItem {
            key,
            mechanism: mechanism.into(),
            input: SignInput::Message(message.into()),
            encoding: None,
            key_version: None,
        }
    }
}

/// A ciphertext, signature or MAC with the key version that made it: what
/// [`Client::encrypt_versioned`](crate::Client::encrypt_versioned),
/// [`Client::sign_versioned`](crate::Client::sign_versioned) and
/// [`Client::rewrap`](crate::Client::rewrap) return. Keep the version with the bytes (or keep
/// [`to_text`](Self::to_text)): after the key is rotated, decrypting and verifying need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The key version.
    pub key_version: u32,
    /// The ciphertext, signature or MAC.
    pub bytes: Vec<u8>,
}

impl Versioned {
    /// The self-describing text `kw:vN:BASE64`.
    pub fn to_text(&self) -> String {
        keyward_api::VersionedBase64::new(self.key_version, &self.bytes)
            .as_str()
            .to_owned()
    }

    /// Reads `kw:vN:BASE64`, or bare base64 as version 1.
    ///
    /// # Errors
    /// [`crate::Error::Decode`] for malformed text.
    pub fn from_text(text: &str) -> crate::Result<Self> {
        let (key_version, bytes) = keyward_api::VersionedBase64::from_text(text)
            .decode_with(None)
            .map_err(|e| crate::Error::Decode(e.to_string()))?;
        Ok(Versioned { key_version, bytes })
    }
}

/// One verification request; also a batch item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyItem {
    /// Key handle.
    pub key: u64,
    /// Mechanism.
    pub mechanism: String,
    /// Message or digest.
    pub input: SignInput,
    /// The signature.
    pub signature: Vec<u8>,
    /// `der` (server default) or `raw`.
    pub encoding: Option<String>,
    /// The key version that made the signature (`None`: version 1, as for signatures from
    /// before keys had versions).
    pub key_version: Option<u32>,
}

impl VerifyItem {
    /// Verifies `signature` over `message`.
    pub fn message(
        key: u64,
        mechanism: impl Into<String>,
        message: impl Into<Vec<u8>>,
        signature: impl Into<Vec<u8>>,
    ) -> Self {
        VerifyItem {
            key,
            mechanism: mechanism.into(),
            input: SignInput::Message(message.into()),
            signature: signature.into(),
            encoding: None,
            key_version: None,
        }
    }

    /// Verifies `signature`, made by its key version, over `message`.
    pub fn versioned(
        key: u64,
        mechanism: impl Into<String>,
        message: impl Into<Vec<u8>>,
        signature: &Versioned,
    ) -> Self {
        let mut item = VerifyItem::message(key, mechanism, message, signature.bytes.clone());
        item.key_version = Some(signature.key_version);
        item
    }
}

/// One encryption request; also a batch item. `Debug` shows the plaintext's length only.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptItem {
    /// Key handle.
    pub key: u64,
    /// `aes-gcm`, `aes-cbc-pad`, `rsa-oaep-sha256`, ...
    pub mechanism: String,
    /// Plaintext.
    pub plaintext: Vec<u8>,
    /// AAD for aes-gcm.
    pub aad: Option<Vec<u8>>,
    /// Encrypt with this key version instead of the latest.
    pub key_version: Option<u32>,
    /// The IV for aes-gcm (12 bytes) or aes-cbc-pad (16); `None`: the HSM picks one (use
    /// that unless a protocol fixes the IV, as PKCS#11 does).
    pub iv: Option<Vec<u8>>,
}

impl std::fmt::Debug for EncryptItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptItem")
            .field("key", &self.key)
            .field("mechanism", &self.mechanism)
            .field(
                "plaintext",
                &format_args!("<{} bytes>", self.plaintext.len()),
            )
            .field("aad", &self.aad)
            .field("key_version", &self.key_version)
            .field("iv", &self.iv)
            .finish()
    }
}

impl EncryptItem {
    /// Encrypts `plaintext` without AAD.
    pub fn new(key: u64, mechanism: impl Into<String>, plaintext: impl Into<Vec<u8>>) -> Self {
        EncryptItem {
            key,
            mechanism: mechanism.into(),
            plaintext: plaintext.into(),
            aad: None,
            key_version: None,
            iv: None,
        }
    }
}

/// One decryption request; also a batch item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptItem {
    /// Key handle.
    pub key: u64,
    /// Mechanism.
    pub mechanism: String,
    /// Ciphertext as `encrypt` returns it.
    pub ciphertext: Vec<u8>,
    /// AAD for aes-gcm.
    pub aad: Option<Vec<u8>>,
    /// The key version that made the ciphertext (`None`: version 1, as for ciphertexts from
    /// before keys had versions).
    pub key_version: Option<u32>,
}

impl DecryptItem {
    /// Decrypts `ciphertext` without AAD.
    pub fn new(key: u64, mechanism: impl Into<String>, ciphertext: impl Into<Vec<u8>>) -> Self {
        DecryptItem {
            key,
            mechanism: mechanism.into(),
            ciphertext: ciphertext.into(),
            aad: None,
            key_version: None,
        }
    }

    /// Decrypts `ciphertext` with the key version that made it, without AAD.
    pub fn versioned(key: u64, mechanism: impl Into<String>, ciphertext: &Versioned) -> Self {
        let mut item = DecryptItem::new(key, mechanism, ciphertext.bytes.clone());
        item.key_version = Some(ciphertext.key_version);
        item
    }
}

/// One rewrap request ([`Client::rewrap`](crate::Client::rewrap)); also a batch item: the
/// ciphertext is decrypted inside the HSM with the version that made it and encrypted again
/// with the key's latest version; the plaintext never leaves the HSM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewrapItem {
    /// Key handle.
    pub key: u64,
    /// The mechanism the ciphertext was made with.
    pub mechanism: String,
    /// The ciphertext and the key version that made it.
    pub ciphertext: Versioned,
    /// AAD for aes-gcm (the same for the new ciphertext).
    pub aad: Option<Vec<u8>>,
}

impl RewrapItem {
    /// Rewraps `ciphertext` without AAD.
    pub fn new(key: u64, mechanism: impl Into<String>, ciphertext: Versioned) -> Self {
        RewrapItem {
            key,
            mechanism: mechanism.into(),
            ciphertext,
            aad: None,
        }
    }
}

/// Options of calls that create something (key generation, unwrap, derive, user creation,
/// share, import).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// Sent as `Idempotency-Key`; when set, the call is retried and fails over like a pure
    /// one. Without it, such a call moves to another node only if it was never sent.
    pub idempotency_key: Option<String>,
}

impl CallOptions {
    /// Options with an idempotency key.
    pub fn idempotency_key(key: impl Into<String>) -> Self {
        CallOptions {
            idempotency_key: Some(key.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EncryptItem;

    #[test]
    fn encrypt_item_debug_hides_the_plaintext() {
        let item = EncryptItem::new(7, "aes-gcm", b"attack at dawn".to_vec());
        let shown = format!("{item:?}");
        assert!(!shown.contains("97, 116"), "{shown}");
        assert!(shown.contains("<14 bytes>"), "{shown}");
    }
}
