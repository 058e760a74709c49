//! Sign, verify, encrypt, decrypt, rewrap, random bytes, and batches of them.
//!
//! Key versions: signatures, MACs and ciphertexts come back with the `key_version` that made
//! them, as bare base64 (the field older clients read) and as `versioned`, the
//! self-describing `kw:vN:BASE64`; verify, decrypt and rewrap take either form (see
//! [`VersionedBase64`]: bare base64 without `key_version` is version 1).

use serde::{Deserialize, Serialize};

use crate::base64::{Base64, SecretBase64};
use crate::error::ErrorBody;
use crate::versioned::VersionedBase64;

fn version_one() -> u32 {
    1
}

/// `POST /v1/crypto/sign` (also a batch item)
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// Key handle.
    pub key: u64,
    /// e.g. `ecdsa-sha256`, `rsa-pss-sha256`, `ed25519`, `hmac-sha256`.
    pub mechanism: String,
    /// The message, base64 ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub message: Option<Base64>,
    /// ... or its digest, base64 (ECDSA and RSA only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub digest: Option<Base64>,
    /// ECDSA signature encoding: `der` (default) or `raw` (r‖s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Sign with this key version instead of the latest; refused below the key's
    /// `min_decryption_version` and `min_encryption_version` (403 `key_version_retired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
}

/// A signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = SignatureDto))]
pub struct Signature {
    /// The signature or MAC, base64.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub signature: Base64,
    /// The key version that made it (1 from servers before key versions).
    #[serde(default = "version_one")]
    pub key_version: u32,
    /// The same signature as `kw:vN:BASE64`, which verify takes without `key_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub versioned: Option<VersionedBase64>,
}

/// `POST /v1/crypto/verify` (also a batch item)
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// Key handle.
    pub key: u64,
    /// Mechanism.
    pub mechanism: String,
    /// The message, base64 ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub message: Option<Base64>,
    /// ... or its digest, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub digest: Option<Base64>,
    /// The signature: `kw:vN:BASE64`, or bare base64 made by version `key_version` (default
    /// 1).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub signature: VersionedBase64,
    /// `der` (default) or `raw`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// The key version that made a bare base64 `signature`; must match a `kw:vN:` prefix.
    /// Versions below the key's `min_decryption_version` are refused (403
    /// `key_version_retired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
}

/// A verification result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = VerifiedDto))]
pub struct Verified {
    /// Whether the signature is valid.
    pub valid: bool,
}

/// `POST /v1/crypto/encrypt` (also a batch item)
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EncryptRequest {
    /// Key handle.
    pub key: u64,
    /// `aes-gcm`, `aes-cbc-pad`, `rsa-oaep-sha256/384/512`.
    pub mechanism: String,
    /// Plaintext, base64.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub plaintext: SecretBase64,
    /// Additional authenticated data for aes-gcm, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub aad: Option<Base64>,
    /// Encrypt with this key version instead of the latest; refused below the key's
    /// `min_decryption_version` and `min_encryption_version` (403 `key_version_retired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    /// The IV, base64: 12 bytes for aes-gcm, 16 for aes-cbc-pad (400 `invalid_input`
    /// otherwise, and with other mechanisms). Absent: the HSM picks a random one, which is
    /// what applications should do; this is for PKCS#11's `C_EncryptInit`, whose caller
    /// chooses it. An aes-gcm IV must never repeat under one key (NIST SP 800-38D §8). The
    /// ciphertext starts with the IV either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub iv: Option<Base64>,
}

/// A ciphertext.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = CiphertextDto))]
pub struct Ciphertext {
    /// Ciphertext, base64; aes-gcm: IV(12) ‖ ciphertext ‖ tag(16); aes-cbc-pad: IV(16) ‖ ciphertext.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub ciphertext: Base64,
    /// The key version that made it (1 from servers before key versions). Decrypting needs
    /// it once the key is rotated: keep it, or keep `versioned`.
    #[serde(default = "version_one")]
    pub key_version: u32,
    /// The same ciphertext as `kw:vN:BASE64`, which decrypt and rewrap take without
    /// `key_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub versioned: Option<VersionedBase64>,
}

/// `POST /v1/crypto/decrypt` (also a batch item)
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DecryptRequest {
    /// Key handle.
    pub key: u64,
    /// Mechanism.
    pub mechanism: String,
    /// Ciphertext in the layout `encrypt` returns: `kw:vN:BASE64`, or bare base64 made by
    /// version `key_version` (default 1).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub ciphertext: VersionedBase64,
    /// AAD for aes-gcm, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub aad: Option<Base64>,
    /// The key version that made a bare base64 `ciphertext`; must match a `kw:vN:` prefix.
    /// Versions below the key's `min_decryption_version` are refused (403
    /// `key_version_retired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
}

/// `POST /v1/crypto/rewrap` (also a batch item): decrypts inside the HSM with the version that
/// made the ciphertext and encrypts again with the key's latest version, the same mechanism
/// and the same AAD; the plaintext never leaves the HSM. The key needs `decrypt` and
/// `encrypt`. The answer is a [`Ciphertext`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RewrapRequest {
    /// Key handle.
    pub key: u64,
    /// Mechanism the ciphertext was made with (`aes-gcm`, `aes-cbc-pad`, `rsa-oaep-*`).
    pub mechanism: String,
    /// The ciphertext: `kw:vN:BASE64`, or bare base64 made by version `key_version`
    /// (default 1).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub ciphertext: VersionedBase64,
    /// AAD for aes-gcm, base64: the same for the old and the new ciphertext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub aad: Option<Base64>,
    /// The key version that made a bare base64 `ciphertext`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
}

/// A plaintext.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = PlaintextDto))]
pub struct Plaintext {
    /// Plaintext, base64.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub plaintext: SecretBase64,
}

/// `POST /v1/crypto/random`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RandomRequest {
    /// Number of bytes, 1 to 65536.
    pub length: usize,
}

/// Random bytes.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = RandomDto))]
pub struct RandomBytes {
    /// Random bytes, base64.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub bytes: SecretBase64,
}

/// A batch of requests of one kind (1 to 1000 items).
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Batch<T> {
    /// The items, processed in order.
    pub items: Vec<T>,
}

/// One batch result: the item's result or its error.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchItem<T> {
    /// The result, when the item succeeded (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<T>,
    /// The error, when it failed (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// Results of a batch, in the items' order.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchResults<T> {
    /// One entry per item.
    pub results: Vec<BatchItem<T>>,
}
