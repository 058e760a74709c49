//! Data keys of envelope encryption (AWS KMS `GenerateDataKey`, Vault transit `datakey`): a
//! fresh key made in the HSM, returned in plaintext and wrapped under a key encryption key
//! (KEK); and the unwrap of a wrapped one.
//!
//! Mechanisms: `aes-kwp` (RFC 5649 under an AES KEK) and `rsa-oaep-sha256` (RFC 8017 §7.1,
//! SHA-256, MGF1-SHA-256, empty label: an RSA public key wraps, its private key unwraps).

use serde::{Deserialize, Serialize};

use crate::base64::{Base64, SecretBase64};

fn thirty_two() -> u32 {
    32
}

/// `POST /v1/crypto/data-key`: the KEK needs `wrap`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DataKeyRequest {
    /// The KEK's handle: an AES key (`aes-kwp`) or an RSA public key (`rsa-oaep-sha256`).
    pub key: u64,
    /// `aes-kwp` or `rsa-oaep-sha256`.
    pub mechanism: String,
    /// The data key's length in bytes: 16, 24 or 32 (default).
    #[serde(default = "thirty_two")]
    pub bytes: u32,
    /// Wrap with this KEK version instead of the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
}

/// A data key: use `plaintext`, store `wrapped` and `key_version` with the content.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = DataKeyDto))]
pub struct DataKey {
    /// The data key, base64 (zeroized, redacted in `Debug`): encrypt with it, then drop it.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub plaintext: SecretBase64,
    /// The data key wrapped under the KEK, base64.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub wrapped: Base64,
    /// The KEK version that wrapped it.
    pub key_version: u32,
}

/// `POST /v1/crypto/data-key/unwrap`: the KEK needs `unwrap`. Answers a
/// [`Plaintext`](crate::Plaintext).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DataKeyUnwrapRequest {
    /// The KEK's handle: the AES key, or the RSA private key.
    pub key: u64,
    /// `aes-kwp` or `rsa-oaep-sha256`.
    pub mechanism: String,
    /// The wrapped data key, base64.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub wrapped: Base64,
    /// The KEK version that wrapped it (from [`DataKey::key_version`]).
    pub key_version: u32,
}
