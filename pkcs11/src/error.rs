//! What each failure is in PKCS#11 terms: a `CK_RV` for every error of the SDK and the API
//! (the API's stable error codes, `keyward_api::ErrorCode`).

use cryptoki_sys::*;
use keyward_client::{Error, ErrorCode};

/// The result of a module function: `Err` is the `CK_RV` the application gets.
pub(crate) type Rv<T = ()> = Result<T, CK_RV>;

/// What the failed call was doing: the same API error means a different `CK_RV` in each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Doing {
    /// `C_Login`.
    Login,
    /// Reading or changing an object (attributes, find, destroy).
    Object,
    /// A cryptographic operation with a key (sign, verify, encrypt, decrypt, wrap).
    KeyOp,
    /// Decrypting or unwrapping: a refused input is a bad ciphertext.
    Decrypt,
    /// Creating a key from a template (generate, unwrap).
    Create,
}

/// The `CK_RV` for an SDK error. A node certificate the configured CA does not trust is also
/// said once per process on standard error (the application sees only `CKR_DEVICE_ERROR`).
pub(crate) fn rv(e: &Error, doing: Doing) -> CK_RV {
    if let Error::UntrustedCertificate { .. } = e {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| eprintln!("keyward-pkcs11: {e} (check ca_file in KEYWARD_PKCS11_CONF)"));
    }
    let code = match e {
        Error::AllNodesFailed { last } => return rv(last, doing),
        Error::Api { code, .. } => code,
        Error::Connect(_)
        | Error::UntrustedCertificate { .. }
        | Error::Transport(_)
        | Error::Timeout
        | Error::Decode(_) => return CKR_DEVICE_ERROR,
        _ => return CKR_FUNCTION_FAILED,
    };
    match code {
        ErrorCode::AuthenticationFailed | ErrorCode::UserNotFound => CKR_PIN_INCORRECT,
        ErrorCode::UserLocked => CKR_PIN_LOCKED,
        ErrorCode::SessionInvalid => CKR_USER_NOT_LOGGED_IN,
        ErrorCode::KeyNotFound => match doing {
            Doing::KeyOp | Doing::Decrypt => CKR_KEY_HANDLE_INVALID,
            _ => CKR_OBJECT_HANDLE_INVALID,
        },
        ErrorCode::AttributeViolation | ErrorCode::KeyVersionRetired => match doing {
            Doing::Object => CKR_ATTRIBUTE_READ_ONLY,
            Doing::Create => CKR_TEMPLATE_INCONSISTENT,
            _ => CKR_KEY_FUNCTION_NOT_PERMITTED,
        },
        ErrorCode::MechanismInvalid => CKR_KEY_TYPE_INCONSISTENT,
        ErrorCode::LabelExists | ErrorCode::LabelAmbiguous => CKR_ATTRIBUTE_VALUE_INVALID,
        ErrorCode::InvalidInput => match doing {
            Doing::Decrypt => CKR_ENCRYPTED_DATA_INVALID,
            // The HSM refused the combination (e.g. a key that would both sign and decrypt).
            Doing::Create => CKR_TEMPLATE_INCONSISTENT,
            Doing::Object => CKR_ATTRIBUTE_VALUE_INVALID,
            Doing::Login => CKR_PIN_INCORRECT,
            Doing::KeyOp => CKR_DATA_INVALID,
        },
        ErrorCode::PayloadTooLarge if doing == Doing::Login => CKR_PIN_LEN_RANGE,
        ErrorCode::PayloadTooLarge => CKR_DATA_LEN_RANGE,
        // The node delays logins after failures (per user name and per address; `Retry-After`
        // says how long): for C_Login that is a PIN that cannot be used for now.
        ErrorCode::TooManyRequests if doing == Doing::Login => CKR_PIN_LOCKED,
        ErrorCode::PermissionDenied => CKR_ACTION_PROHIBITED,
        ErrorCode::ReadOnly => CKR_TOKEN_WRITE_PROTECTED,
        _ => CKR_DEVICE_ERROR,
    }
}
