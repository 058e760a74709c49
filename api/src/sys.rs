//! The seal of a node (`/v1/sys/…`, named as Vault names them): its status, unsealing with a
//! share or passphrase, sealing, and rekeying.

use serde::{Deserialize, Serialize};

use crate::secret::Password;

/// `GET /v1/sys/seal-status` (no login needed), and the answer of every call below.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = SealStatusDto))]
pub struct SealStatus {
    /// Whether the node is sealed (every call but health, readiness and `/v1/sys/*` answers
    /// `503 sealed`).
    pub sealed: bool,
    /// `key-file`, `passphrase` or `shamir`.
    #[serde(rename = "type")]
    pub seal_type: String,
    /// Shares needed to unseal (M; 0 unless `shamir`).
    pub threshold: u8,
    /// Shares made (N; 0 unless `shamir`).
    pub shares: u8,
    /// Shares given so far towards the next unseal (0 when unsealed).
    pub progress: u8,
    /// Seal generation: 1 at `init`, +1 per rekey.
    pub generation: u64,
}

/// `POST /v1/sys/unseal`: one of `key` (a share), `passphrase`, or `reset`; with none of them
/// a node sealed by a key file reads its key file again.
#[derive(Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = UnsealRequestDto))]
#[serde(deny_unknown_fields)]
pub struct UnsealRequest {
    /// One unseal share (base64, 44 characters), as `keyward init` printed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub key: Option<Password>,
    /// The seal passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub passphrase: Option<Password>,
    /// Forget the shares given so far.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
}

/// `POST /v1/sys/rekey` (admin): a new master key under a new seal. The current seal is
/// proven with `current_keys` (M shares) or `current_passphrase`; a key-file seal needs
/// neither (whoever reads the node's key file holds it already).
#[derive(Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = RekeyRequestDto))]
#[serde(deny_unknown_fields)]
pub struct RekeyRequest {
    /// Shares of the current seal (at least its threshold).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub current_keys: Vec<Password>,
    /// The current seal's passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub current_passphrase: Option<Password>,
    /// The new seal: `shamir` or `passphrase`.
    #[serde(rename = "type")]
    pub seal_type: String,
    /// `shamir`: shares to make (N, 2 to 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shares: Option<u8>,
    /// `shamir`: shares needed (M, 2 to N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u8>,
    /// `passphrase`: the new passphrase (12 characters or more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub passphrase: Option<Password>,
}

/// The answer of a rekey: the new seal, and (shamir) the new shares, shown this once.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = RekeyResponseDto))]
pub struct RekeyResponse {
    /// The seal after the rekey.
    pub status: SealStatus,
    /// The new shares (base64); empty for a passphrase seal.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub keys: Vec<Password>,
}

/// `GET /v1/sys/rotation` and `POST /v1/sys/rotate` (admin): where a data-key rotation stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = RotationStatusDto))]
pub struct RotationStatus {
    /// The data-key version new records are sealed under.
    pub current_version: u32,
    /// Every version still readable (two while a rotation runs, then one).
    pub versions: Vec<u32>,
    /// Records still under an older version.
    pub pending_records: u64,
    /// Records in the store.
    pub total_records: u64,
    /// Whether the rotation is finished (the older versions destroyed).
    pub done: bool,
}
