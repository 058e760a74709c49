//! `POST /v1/tls/ticket-keys`: the session-ticket keys of a remote proxy fleet, released
//! wrapped to a key the proxy holds (see `keyward-hsm`'s `ticket_keys` module).

use serde::{Deserialize, Serialize};

use crate::base64::Base64;

/// Asks for the caller's ticket keys around now.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TicketKeysRequestDto))]
#[serde(deny_unknown_fields)]
pub struct TicketKeysRequest {
    /// Seconds per ticket key (the proxy's `ticket_key_rotation_s`), 1 to 604800.
    pub rotation_s: u64,
    /// The recipient: an RSA public key of at least 3072 bits, X.509 SubjectPublicKeyInfo DER
    /// (RFC 5280 §4.1.2.7), base64.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub recipient_public_key: Base64,
}

/// The ticket keys of the previous, current and next periods that exist.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TicketKeysDto))]
pub struct TicketKeys {
    /// The period now: unix time in seconds / `rotation_s`.
    pub period: u64,
    /// How each value is wrapped: `rsa-oaep-sha256` (RFC 8017 §7.1, SHA-256 and MGF1-SHA-256,
    /// the key's 16-byte `name` as the OAEP label).
    pub mechanism: String,
    /// By period, oldest first.
    pub keys: Vec<TicketKey>,
}

/// One ticket key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TicketKeyDto))]
pub struct TicketKey {
    /// The period it serves.
    pub period: u64,
    /// Its key handle.
    pub handle: u64,
    /// Its name in tickets: period (8 bytes) ‖ handle (8 bytes), big-endian; base64.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub name: Base64,
    /// The 32-byte AES-256 value encrypted to the recipient key; base64.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub wrapped_key: Base64,
}
