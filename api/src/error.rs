//! The error body of every failed request, and its codes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares [`ErrorCode`] with its wire strings.
macro_rules! error_codes {
    ( $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )+ ) => {
        /// The stable machine-readable code of an error (`key_not_found`, ...).
        ///
        /// The HSM's codes (the server derives each from `keyward_hsm::ErrorCode`), the codes
        /// of requests the API itself refuses, and [`ErrorCode::Other`] for a code this version
        /// does not know (a newer server), so that an older client still reads the error.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$vmeta])* $variant, )+
            /// A code this version does not know, as received.
            Other(String),
        }

        impl ErrorCode {
            /// Every known code (all but [`ErrorCode::Other`]).
            pub const KNOWN: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The wire string, e.g. `key_not_found`.
            pub fn as_str(&self) -> &str {
                match self {
                    $( ErrorCode::$variant => $wire, )+
                    ErrorCode::Other(s) => s,
                }
            }
        }

        impl FromStr for ErrorCode {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(match s {
                    $( $wire => ErrorCode::$variant, )+
                    other => ErrorCode::Other(other.to_owned()),
                })
            }
        }
    };
}

error_codes! {
    /// `key_not_found`: no key with this handle or label that the caller may see (404).
    KeyNotFound = "key_not_found",
    /// `label_ambiguous`: a label names more than one key (409).
    LabelAmbiguous = "label_ambiguous",
    /// `label_exists`: the caller owns a key of this class with this label (409).
    LabelExists = "label_exists",
    /// `attribute_violation`: the key's attributes forbid the operation (403).
    AttributeViolation = "attribute_violation",
    /// `key_version_retired`: the key version that made the input, or the one asked for, is
    /// below the key's `min_decryption_version` (or `min_encryption_version` for new data),
    /// or was trimmed (403).
    KeyVersionRetired = "key_version_retired",
    /// `mechanism_invalid`: the mechanism does not fit the key (400).
    MechanismInvalid = "mechanism_invalid",
    /// `invalid_input`: a malformed request or value (400).
    InvalidInput = "invalid_input",
    /// `sealed`: the HSM is sealed (503).
    Sealed = "sealed",
    /// `unseal_key_rejected`: an unseal share or passphrase was refused (not of this seal,
    /// given twice, malformed, or it does not open the store); nothing changed (400).
    UnsealKeyRejected = "unseal_key_rejected",
    /// `backup_invalid`: a backup archive is damaged or changed, or a restore was refused
    /// (400).
    BackupInvalid = "backup_invalid",
    /// `record_tampered`: a stored record failed authentication (500).
    RecordTampered = "record_tampered",
    /// `self_test_failed`: a known-answer self-test failed (503).
    SelfTestFailed = "self_test_failed",
    /// `store_error`: the storage backend failed (500).
    StoreError = "store_error",
    /// `store_unavailable`: the store's database cannot be reached; reads and crypto with
    /// the keys in memory go on, writes are refused until it returns (503).
    StoreUnavailable = "store_unavailable",
    /// `crypto_error`: the cryptographic library failed (500).
    CryptoError = "crypto_error",
    /// `permission_denied`: the caller's role or relation to the key forbids it (403).
    PermissionDenied = "permission_denied",
    /// `authentication_failed`: wrong user name or password (401).
    AuthenticationFailed = "authentication_failed",
    /// `user_locked`: locked after too many failed logins (423).
    UserLocked = "user_locked",
    /// `user_not_found`: no such user (404).
    UserNotFound = "user_not_found",
    /// `user_exists`: a user with this name exists (409).
    UserExists = "user_exists",
    /// `session_invalid`: no, an expired or a logged-out session (401).
    SessionInvalid = "session_invalid",
    /// `read_only`: the node opened its store read-only (500).
    ReadOnly = "read_only",
    /// `audit_damaged`: the audit chain does not verify (500).
    AuditDamaged = "audit_damaged",
    /// `store_rolled_back`: the store is older than its rollback anchor (500).
    StoreRolledBack = "store_rolled_back",
    /// `ca_not_found`: no issuing CA has this name (404).
    CaNotFound = "ca_not_found",
    /// `ca_exists`: an issuing CA of this name exists (409).
    CaExists = "ca_exists",
    /// `certificate_not_found`: the CA issued no certificate with this serial (404).
    CertificateNotFound = "certificate_not_found",
    /// `certificate_request_refused`: the CA's profile does not allow the request: a name
    /// outside its policy, a weak key, a bad CSR signature, a validity too long (422).
    CertificateRequestRefused = "certificate_request_refused",
    /// `internal_error`: a bug in Keyward (500).
    InternalError = "internal_error",
    /// `not_found`: no such route (404).
    NotFound = "not_found",
    /// `method_not_allowed`: the route does not take the method (405).
    MethodNotAllowed = "method_not_allowed",
    /// `payload_too_large`: the body is larger than the API accepts (413).
    PayloadTooLarge = "payload_too_large",
    /// `too_many_requests`: a login refused before it is checked; see `Retry-After` (429).
    TooManyRequests = "too_many_requests",
    /// `request_timeout`: the request body stopped arriving (408).
    RequestTimeout = "request_timeout",
    /// `idempotency_conflict`: a request with this `Idempotency-Key` is in progress (409).
    IdempotencyConflict = "idempotency_conflict",
    /// `idempotency_key_reused`: the `Idempotency-Key` came with another body (422).
    IdempotencyKeyReused = "idempotency_key_reused",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(s.parse().unwrap_or_else(|never| match never {}))
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `key_not_found`, `permission_denied`, `invalid_input`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub code: ErrorCode,
    /// What went wrong, for people. 5xx messages are generic; details go to the server log.
    pub message: String,
}

impl ErrorBody {
    /// A body of `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ErrorBody {}
