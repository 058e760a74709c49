//! Request and response types of the API, with bytes as `Vec<u8>`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A session on one node, as login returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The user.
    pub username: String,
    /// `admin` or `crypto-user`.
    pub role: String,
    /// Seconds until the session expires.
    pub expires_in_seconds: u64,
}

/// A user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    /// User name.
    pub username: String,
    /// `admin` or `crypto-user`.
    pub role: String,
    /// Locked after 5 consecutive failed logins: a crypto-user until an admin sets a new
    /// password, an admin until `lockout_ends_unix_ms`.
    pub locked: bool,
    /// Consecutive failed logins.
    pub failed_logins: u32,
    /// For a locked admin: when the lockout ends by itself (ms since the Unix epoch).
    #[serde(default)]
    pub lockout_ends_unix_ms: Option<u64>,
    /// A service identity without a password.
    pub service: bool,
}

/// A key object's attributes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Attributes {
    /// Label, unique per owner and key class.
    pub label: String,
    /// Application id, lower-case hex.
    pub id: String,
    /// May sign / MAC.
    pub sign: bool,
    /// May verify.
    pub verify: bool,
    /// May encrypt.
    pub encrypt: bool,
    /// May decrypt.
    pub decrypt: bool,
    /// May wrap keys.
    pub wrap: bool,
    /// May unwrap keys.
    pub unwrap: bool,
    /// May derive keys.
    pub derive: bool,
    /// May be exported wrapped.
    pub extractable: bool,
    /// Never readable in plaintext.
    pub sensitive: bool,
    /// Persistent (false: session key).
    pub token: bool,
    /// Set by an admin.
    pub trusted: bool,
    /// Only trusted keys may wrap it.
    pub wrap_with_trusted: bool,
    /// Attributes may change.
    pub modifiable: bool,
    /// May be destroyed.
    pub destroyable: bool,
    /// Generated in the HSM.
    pub local: bool,
    /// Never extractable.
    pub never_extractable: bool,
    /// Always sensitive.
    pub always_sensitive: bool,
    /// Key check value (6 hex digits, or empty).
    pub check_value: String,
}

/// A key object: everything but its value. Handles are per node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Key {
    /// Key handle on the node that answered.
    pub handle: u64,
    /// The other half of a pair.
    pub linked_handle: Option<u64>,
    /// `secret`, `private` or `public`.
    pub class: String,
    /// Key type and size, e.g. `ec-p256`, `aes-256`.
    pub spec: String,
    /// Owning crypto-user.
    pub owner: String,
    /// Crypto-users it is shared with.
    pub shared_with: Vec<String>,
    /// Attributes.
    pub attributes: Attributes,
}

/// A new key pair.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KeyPair {
    /// The private key.
    pub private: Key,
    /// The public key.
    pub public: Key,
}

/// A page of keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KeyPage {
    /// Keys ordered by handle.
    pub keys: Vec<Key>,
    /// Pass as [`KeyFilter::after`] for the next page; `None` on the last page.
    pub next: Option<u64>,
}

/// Attributes chosen for a new key: a label and boolean attributes by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyTemplate {
    /// Label (unique per key class).
    pub label: String,
    /// Optional application id, lower-case hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Boolean attributes, e.g. `sign = true`.
    pub attributes: BTreeMap<String, bool>,
}

impl KeyTemplate {
    /// A template with only a label.
    pub fn new(label: impl Into<String>) -> Self {
        KeyTemplate {
            label: label.into(),
            id: None,
            attributes: BTreeMap::new(),
        }
    }

    /// Sets a boolean attribute (`sign`, `encrypt`, `extractable`, ...).
    pub fn with(mut self, name: impl Into<String>, value: bool) -> Self {
        self.attributes.insert(name.into(), value);
        self
    }

    /// Sets the application id (lower-case hex).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}

/// Filters and pagination of [`crate::Client::list_keys`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeyFilter {
    /// Exact label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// `secret`, `private` or `public`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// `aes`, `generic-secret`, `rsa`, `ec` or `ed25519`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
    /// Exact owner (user name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Boolean attribute filters.
    #[serde(skip)]
    pub attributes: Vec<(String, bool)>,
    /// Keys with a handle greater than this (the previous page's `next`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// Page size, 1 to 1000 (server default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
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
}

impl SignItem {
    /// Signs `message` with `key` and `mechanism`.
    pub fn message(key: u64, mechanism: impl Into<String>, message: impl Into<Vec<u8>>) -> Self {
        SignItem {
            key,
            mechanism: mechanism.into(),
            input: SignInput::Message(message.into()),
            encoding: None,
        }
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
        }
    }
}

/// One encryption request; also a batch item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptItem {
    /// Key handle.
    pub key: u64,
    /// `aes-gcm`, `aes-cbc-pad`, `rsa-oaep-sha256`, ...
    pub mechanism: String,
    /// Plaintext.
    pub plaintext: Vec<u8>,
    /// AAD for aes-gcm.
    pub aad: Option<Vec<u8>>,
}

impl EncryptItem {
    /// Encrypts `plaintext` without AAD.
    pub fn new(key: u64, mechanism: impl Into<String>, plaintext: impl Into<Vec<u8>>) -> Self {
        EncryptItem {
            key,
            mechanism: mechanism.into(),
            plaintext: plaintext.into(),
            aad: None,
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
}

impl DecryptItem {
    /// Decrypts `ciphertext` without AAD.
    pub fn new(key: u64, mechanism: impl Into<String>, ciphertext: impl Into<Vec<u8>>) -> Self {
        DecryptItem {
            key,
            mechanism: mechanism.into(),
            ciphertext: ciphertext.into(),
            aad: None,
        }
    }
}

/// The error of one batch item.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ItemError {
    /// Stable code, e.g. `key_not_found`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

/// An audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct AuditEntry {
    /// Position in the chain.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_unix_ms: u64,
    /// Who acted.
    pub actor: String,
    /// What happened.
    pub event: String,
    /// On what.
    pub target: Option<String>,
    /// `ok`, `failed`, `denied`, ...
    pub outcome: String,
    /// Chain hash of the previous entry, hex.
    pub prev_hash: String,
}

/// The audit chain check.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuditReport {
    /// Entries read.
    pub entries: u64,
    /// Whether the chain is intact.
    pub intact: bool,
    /// The first problem found.
    pub problem: Option<String>,
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
