//! The HSM's one error type.

use crate::object::KeyHandle;

/// Every error `keyward-hsm` returns.
///
/// Each variant has a stable machine-readable [`code`](Error::code). Messages name the object
/// concerned (handle, label, record) but never contain key bytes or passwords.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No key object has this handle.
    #[error("no key with handle {handle}")]
    KeyNotFound {
        /// The handle asked for.
        handle: KeyHandle,
    },
    /// No key object has this label (or no object of the asked class).
    #[error("no key labelled {label:?}")]
    LabelNotFound {
        /// The label asked for.
        label: String,
    },
    /// More than one key object matches a label where one was expected.
    #[error("label {label:?} names {count} keys; use a key handle")]
    LabelAmbiguous {
        /// The label asked for.
        label: String,
        /// How many objects carry it.
        count: usize,
    },
    /// The caller already owns a key of this class with this label. Labels are unique per
    /// owner and class (two users may each own a key labelled `data`), so this never tells of
    /// another user's keys.
    #[error(
        "you already own a {class} key labelled {label:?}; labels are unique per owner and class"
    )]
    LabelExists {
        /// The label asked for.
        label: String,
        /// The key class (`secret`, `private`, `public`).
        class: &'static str,
    },
    /// The key's attributes do not allow the operation (e.g. `sign = false`).
    #[error("key {handle} does not allow {operation} ({attribute})")]
    AttributeViolation {
        /// The key.
        handle: KeyHandle,
        /// What was attempted, e.g. `sign`.
        operation: &'static str,
        /// The attribute that forbids it.
        attribute: &'static str,
    },
    /// The key version that made a ciphertext or signature, or that was asked for, may no
    /// longer be used for the operation: it is below the key's `min_decryption_version`
    /// (decrypt, verify, rewrap, and every other use), below its `min_encryption_version`
    /// (a new signature or ciphertext with an explicit version), or was trimmed. Ask the
    /// key's owner to lower the minimum, or rewrap the data while its version is allowed.
    #[error("key {handle} version {version} is retired for {operation}: the oldest version allowed is {min_version}")]
    KeyVersionRetired {
        /// The key.
        handle: KeyHandle,
        /// The version refused.
        version: u32,
        /// The oldest version the operation accepts.
        min_version: u32,
        /// What was attempted, e.g. `decrypt`.
        operation: &'static str,
    },
    /// The mechanism does not fit the key type or class.
    #[error("mechanism {mechanism} cannot be used with key {handle} ({key_type})")]
    MechanismInvalid {
        /// The key.
        handle: KeyHandle,
        /// The mechanism asked for.
        mechanism: &'static str,
        /// The key's type.
        key_type: &'static str,
    },
    /// Input was malformed: wrong length, unparsable, out of range.
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What is wrong, without echoing secret input.
        reason: String,
    },
    /// A key (imported, unwrapped) is of a type the HSM does not take, e.g. RSA-1024 or
    /// secp256k1.
    #[error(
        "unsupported key type: got {found}; the HSM takes {}",
        crate::key_type::SUPPORTED
    )]
    UnsupportedKeyType {
        /// The type found, in words (`EC secp256k1`, `RSA 1024 bits`, `X25519`); never key
        /// bytes.
        found: String,
    },
    /// The master key does not open this store (wrong key file), or the HSM is sealed.
    #[error("the HSM is sealed: {reason}")]
    Sealed {
        /// Why.
        reason: &'static str,
    },
    /// An unseal share or passphrase was refused: not a share of this store's seal, given twice,
    /// malformed, or (passphrase, or shares once enough were given) does not open the store.
    /// Nothing changes: shares given before stay counted.
    #[error("unseal key rejected: {reason}")]
    UnsealKeyRejected {
        /// Why, without echoing the share or passphrase.
        reason: String,
    },
    /// A backup archive is damaged, was changed, or is not one; or a restore was refused
    /// (the target store is not empty). Nothing was written.
    #[error("backup refused: {reason}")]
    BackupInvalid {
        /// What is wrong.
        reason: String,
    },
    /// A stored record failed authentication or decoding: it was edited, swapped or damaged.
    /// Nothing is overwritten or skipped when this happens.
    #[error("record {kind}/{id} failed authentication: the store was modified or damaged")]
    RecordTampered {
        /// Record kind.
        kind: String,
        /// Record id.
        id: String,
    },
    /// A known-answer self-test failed; the HSM refuses every operation.
    #[error("self-test failed: {algorithm}")]
    SelfTestFailed {
        /// The algorithm whose test failed.
        algorithm: &'static str,
    },
    /// The storage backend failed.
    #[error(transparent)]
    Store(#[from] keyward_keystore::Error),
    /// The cryptographic library reported a failure for valid-looking input.
    #[error("cryptographic operation failed: {operation}")]
    Crypto {
        /// The operation, e.g. `ecdsa sign`.
        operation: &'static str,
    },
    /// The caller's role or relation to the key does not allow the operation.
    #[error("permission denied: {reason}")]
    PermissionDenied {
        /// Which rule refused it.
        reason: &'static str,
    },
    /// User name or password is wrong. Deliberately the same for both.
    #[error("authentication failed: wrong user name or password")]
    AuthenticationFailed,
    /// The user is locked after too many failed logins; an admin must set a new password.
    #[error(
        "user {user:?} is locked after too many failed logins; an admin must set a new password"
    )]
    UserLocked {
        /// The user.
        user: String,
    },
    /// No such user.
    #[error("no user named {user:?}")]
    UserNotFound {
        /// The user.
        user: String,
    },
    /// A user with this name exists.
    #[error("a user named {user:?} exists already")]
    UserExists {
        /// The user.
        user: String,
    },
    /// The session was logged out, expired, or never existed.
    #[error("the session is not valid (logged out or expired); log in again")]
    SessionInvalid,
    /// A record that the store's manifest lists is missing, or one it does not list is present.
    #[error("the store's set of records was changed: {detail}")]
    StoreInconsistent {
        /// What differs, naming the record.
        detail: String,
    },
    /// The audit chain does not verify at open: an entry was edited, swapped, deleted or
    /// inserted, or the tail was cut. The store is not opened unless the damage is accepted
    /// (`OpenOptions::accept_audit_damage`, audited).
    #[error("the audit trail is damaged: {problem}")]
    AuditDamaged {
        /// The first problem, naming the entry.
        problem: String,
    },
    /// The store is older than its rollback anchor (changes the HSM confirmed are missing),
    /// or the anchor is missing or does not open. The store is not opened unless this is
    /// accepted (`OpenOptions::accept_rollback`, audited).
    #[error("the store was rolled back or replaced: {detail}")]
    StoreRolledBack {
        /// What differs, with how many changes are missing.
        detail: String,
    },
    /// The HSM was opened read-only ([`Hsm::open_read_only`](crate::Hsm::open_read_only)):
    /// another process holds the store's writer lock, and this one never writes to the store
    /// (keys, users, audit). Make the change on the writer node.
    #[error("the HSM was opened read-only (another process writes this store): cannot {operation}; do it on the writer node")]
    ReadOnly {
        /// What was refused, e.g. `write the store`.
        operation: &'static str,
    },
    /// No issuing CA has this name.
    #[error("no CA named {name:?}")]
    CaNotFound {
        /// The name asked for.
        name: String,
    },
    /// An issuing CA of this name exists.
    #[error("a CA named {name:?} exists")]
    CaExists {
        /// The name asked for.
        name: String,
    },
    /// The CA issued no certificate with this serial number.
    #[error("no certificate with serial {serial} in this CA's register")]
    CertificateNotFound {
        /// The serial asked for (lowercase hex).
        serial: String,
    },
    /// A certificate request the CA's profile does not allow (a name outside its policy, a
    /// weak key, a bad CSR signature, a validity too long).
    #[error("certificate request refused: {reason}")]
    CertificateRequestRefused {
        /// Why, naming the offending value.
        reason: String,
    },
    /// A bug in Keyward: an invariant did not hold.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl Error {
    /// The stable error code, e.g. [`ErrorCode::KeyNotFound`] (`key_not_found`), for APIs and
    /// exit statuses.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::KeyNotFound { .. } | Error::LabelNotFound { .. } => ErrorCode::KeyNotFound,
            Error::LabelAmbiguous { .. } => ErrorCode::LabelAmbiguous,
            Error::LabelExists { .. } => ErrorCode::LabelExists,
            Error::AttributeViolation { .. } => ErrorCode::AttributeViolation,
            Error::KeyVersionRetired { .. } => ErrorCode::KeyVersionRetired,
            Error::MechanismInvalid { .. } => ErrorCode::MechanismInvalid,
            Error::InvalidInput { .. } | Error::UnsupportedKeyType { .. } => {
                ErrorCode::InvalidInput
            }
            Error::Sealed { .. } => ErrorCode::Sealed,
            Error::UnsealKeyRejected { .. } => ErrorCode::UnsealKeyRejected,
            Error::BackupInvalid { .. } => ErrorCode::BackupInvalid,
            Error::RecordTampered { .. } => ErrorCode::RecordTampered,
            Error::SelfTestFailed { .. } => ErrorCode::SelfTestFailed,
            Error::Store(keyward_keystore::Error::Unavailable { .. }) => {
                ErrorCode::StoreUnavailable
            }
            Error::Store(_) => ErrorCode::StoreError,
            Error::Crypto { .. } => ErrorCode::CryptoError,
            Error::PermissionDenied { .. } => ErrorCode::PermissionDenied,
            Error::AuthenticationFailed => ErrorCode::AuthenticationFailed,
            Error::UserLocked { .. } => ErrorCode::UserLocked,
            Error::UserNotFound { .. } => ErrorCode::UserNotFound,
            Error::UserExists { .. } => ErrorCode::UserExists,
            Error::SessionInvalid => ErrorCode::SessionInvalid,
            Error::StoreInconsistent { .. } => ErrorCode::RecordTampered,
            Error::ReadOnly { .. } => ErrorCode::ReadOnly,
            Error::AuditDamaged { .. } => ErrorCode::AuditDamaged,
            Error::StoreRolledBack { .. } => ErrorCode::StoreRolledBack,
            Error::CaNotFound { .. } => ErrorCode::CaNotFound,
            Error::CaExists { .. } => ErrorCode::CaExists,
            Error::CertificateNotFound { .. } => ErrorCode::CertificateNotFound,
            Error::CertificateRequestRefused { .. } => ErrorCode::CertificateRequestRefused,
            Error::Internal(_) => ErrorCode::InternalError,
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            reason: reason.into(),
        }
    }
}

/// A name (record id, user name, label) made safe for one line of an error message.
pub(crate) fn printable(s: &str) -> String {
    s.chars()
        .take(80)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The class of an [`Error`]: its stable machine-readable code. Several errors share one code
/// (a label that names no key is `key_not_found`, like a handle that names none).
///
/// Deliberately not `#[non_exhaustive]`: the API maps each code to an HTTP status with an
/// exhaustive `match`, so a new code cannot fall into a default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `key_not_found`: [`Error::KeyNotFound`], [`Error::LabelNotFound`].
    KeyNotFound,
    /// `label_ambiguous`: [`Error::LabelAmbiguous`].
    LabelAmbiguous,
    /// `label_exists`: [`Error::LabelExists`].
    LabelExists,
    /// `attribute_violation`: [`Error::AttributeViolation`].
    AttributeViolation,
    /// `key_version_retired`: [`Error::KeyVersionRetired`].
    KeyVersionRetired,
    /// `mechanism_invalid`: [`Error::MechanismInvalid`].
    MechanismInvalid,
    /// `invalid_input`: [`Error::InvalidInput`], [`Error::UnsupportedKeyType`].
    InvalidInput,
    /// `sealed`: [`Error::Sealed`].
    Sealed,
    /// `unseal_key_rejected`: [`Error::UnsealKeyRejected`].
    UnsealKeyRejected,
    /// `backup_invalid`: [`Error::BackupInvalid`].
    BackupInvalid,
    /// `record_tampered`: [`Error::RecordTampered`], [`Error::StoreInconsistent`].
    RecordTampered,
    /// `self_test_failed`: [`Error::SelfTestFailed`].
    SelfTestFailed,
    /// `store_error`: [`Error::Store`].
    StoreError,
    /// `store_unavailable`: [`Error::Store`] with [`keyward_keystore::Error::Unavailable`]:
    /// the store's database cannot be reached (writes wait for it; keys in memory still work).
    StoreUnavailable,
    /// `crypto_error`: [`Error::Crypto`].
    CryptoError,
    /// `permission_denied`: [`Error::PermissionDenied`].
    PermissionDenied,
    /// `authentication_failed`: [`Error::AuthenticationFailed`].
    AuthenticationFailed,
    /// `user_locked`: [`Error::UserLocked`].
    UserLocked,
    /// `user_not_found`: [`Error::UserNotFound`].
    UserNotFound,
    /// `user_exists`: [`Error::UserExists`].
    UserExists,
    /// `session_invalid`: [`Error::SessionInvalid`].
    SessionInvalid,
    /// `read_only`: [`Error::ReadOnly`].
    ReadOnly,
    /// `audit_damaged`: [`Error::AuditDamaged`].
    AuditDamaged,
    /// `store_rolled_back`: [`Error::StoreRolledBack`].
    StoreRolledBack,
    /// `ca_not_found`: [`Error::CaNotFound`].
    CaNotFound,
    /// `ca_exists`: [`Error::CaExists`].
    CaExists,
    /// `certificate_not_found`: [`Error::CertificateNotFound`].
    CertificateNotFound,
    /// `certificate_request_refused`: [`Error::CertificateRequestRefused`].
    CertificateRequestRefused,
    /// `internal_error`: [`Error::Internal`].
    InternalError,
}

impl ErrorCode {
    /// The code's string, e.g. `key_not_found`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::KeyNotFound => "key_not_found",
            ErrorCode::LabelAmbiguous => "label_ambiguous",
            ErrorCode::LabelExists => "label_exists",
            ErrorCode::AttributeViolation => "attribute_violation",
            ErrorCode::KeyVersionRetired => "key_version_retired",
            ErrorCode::MechanismInvalid => "mechanism_invalid",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::Sealed => "sealed",
            ErrorCode::UnsealKeyRejected => "unseal_key_rejected",
            ErrorCode::BackupInvalid => "backup_invalid",
            ErrorCode::RecordTampered => "record_tampered",
            ErrorCode::SelfTestFailed => "self_test_failed",
            ErrorCode::StoreError => "store_error",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::CryptoError => "crypto_error",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::AuthenticationFailed => "authentication_failed",
            ErrorCode::UserLocked => "user_locked",
            ErrorCode::UserNotFound => "user_not_found",
            ErrorCode::UserExists => "user_exists",
            ErrorCode::SessionInvalid => "session_invalid",
            ErrorCode::ReadOnly => "read_only",
            ErrorCode::AuditDamaged => "audit_damaged",
            ErrorCode::StoreRolledBack => "store_rolled_back",
            ErrorCode::CaNotFound => "ca_not_found",
            ErrorCode::CaExists => "ca_exists",
            ErrorCode::CertificateNotFound => "certificate_not_found",
            ErrorCode::CertificateRequestRefused => "certificate_request_refused",
            ErrorCode::InternalError => "internal_error",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
