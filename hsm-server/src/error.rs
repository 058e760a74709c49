//! The one place errors become HTTP responses: `{ "code": "...", "message": "..." }`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
pub use keyward_api::ErrorBody;
use keyward_api::ErrorCode;

/// An API error: an HSM error or a request the API itself refuses.
#[derive(Debug)]
pub enum ApiError {
    /// From the HSM core.
    Hsm(keyward_hsm::Error),
    /// The request is malformed before it reaches the HSM (bad base64, bad JSON, bad query).
    BadRequest(String),
    /// No or malformed `Authorization: Bearer` header.
    Unauthenticated,
    /// No such route or resource.
    NotFound,
    /// The request body is larger than the API accepts.
    PayloadTooLarge,
    /// A login refused before it is checked: too many recent failures from the caller's
    /// address or for the name, or every password-checking place is taken (`429`, with
    /// `Retry-After`).
    TooManyRequests {
        /// Seconds the caller should wait (the `Retry-After` header).
        retry_after_s: u64,
        /// Which limit refused it.
        reason: &'static str,
    },
    /// The client paused longer than the listener's body timeout between two reads of the
    /// request body.
    RequestTimeout,
}

impl From<keyward_hsm::Error> for ApiError {
    fn from(e: keyward_hsm::Error) -> Self {
        ApiError::Hsm(e)
    }
}

/// The status of an HSM error: one exhaustive `match` on its [`keyward_hsm::ErrorCode`].
pub fn status_of(e: &keyward_hsm::Error) -> StatusCode {
    use keyward_hsm::ErrorCode as C;
    match e.code() {
        C::KeyNotFound | C::UserNotFound | C::CaNotFound | C::CertificateNotFound => {
            StatusCode::NOT_FOUND
        }
        C::CertificateRequestRefused => StatusCode::UNPROCESSABLE_ENTITY,
        C::PermissionDenied | C::AttributeViolation | C::KeyVersionRetired => StatusCode::FORBIDDEN,
        C::MechanismInvalid | C::InvalidInput | C::UnsealKeyRejected | C::BackupInvalid => {
            StatusCode::BAD_REQUEST
        }
        C::AuthenticationFailed | C::SessionInvalid => StatusCode::UNAUTHORIZED,
        C::UserLocked => StatusCode::LOCKED,
        C::UserExists | C::LabelExists | C::LabelAmbiguous | C::CaExists => StatusCode::CONFLICT,
        C::Sealed | C::SelfTestFailed | C::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        // Failures of the store, of the crypto library or of Keyward itself, and a write on a
        // read-only node: the caller sees a generic message, the log the details.
        C::RecordTampered
        | C::StoreError
        | C::CryptoError
        | C::ReadOnly
        | C::AuditDamaged
        | C::StoreRolledBack
        | C::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    /// The response body, as a batch item also reports it.
    pub fn body(&self) -> (StatusCode, ErrorBody) {
        match self {
            ApiError::Hsm(e) => {
                let status = status_of(e);
                let message = if status.is_server_error()
                    && status != StatusCode::SERVICE_UNAVAILABLE
                {
                    tracing::error!(error = %e, code = e.code().as_str(), "request failed inside the HSM");
                    "internal error; see the server log".to_owned()
                } else {
                    e.to_string()
                };
                (status, ErrorBody::new(e.code().into(), message))
            }
            ApiError::BadRequest(m) => (
                StatusCode::BAD_REQUEST,
                ErrorBody {
                    code: ErrorCode::InvalidInput,
                    message: m.clone(),
                },
            ),
            ApiError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                ErrorBody {
                    code: ErrorCode::SessionInvalid,
                    message: "send Authorization: Bearer <token> from POST /v1/auth/login".into(),
                },
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorBody {
                    code: ErrorCode::PayloadTooLarge,
                    message: format!(
                        "the request body is larger than this route takes (at most {} bytes; {} for /v1/auth/login, {} for /v1/sys/*, {} for /v1/ca/NAME/ocsp)",
                        crate::MAX_BODY_BYTES,
                        crate::MAX_LOGIN_BODY_BYTES,
                        crate::seal::MAX_SEAL_BODY_BYTES,
                        crate::ca::ocsp::MAX_REQUEST_BYTES
                    ),
                },
            ),
            ApiError::TooManyRequests {
                retry_after_s,
                reason,
            } => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorBody {
                    code: ErrorCode::TooManyRequests,
                    message: format!("{reason}; retry after {retry_after_s} s"),
                },
            ),
            ApiError::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                ErrorBody {
                    code: ErrorCode::RequestTimeout,
                    message: "the request body stopped arriving (the server's body timeout)".into(),
                },
            ),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                ErrorBody {
                    code: ErrorCode::NotFound,
                    message: "no such route".into(),
                },
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.body();
        let mut res = (status, Json(body)).into_response();
        if let ApiError::TooManyRequests { retry_after_s, .. } = self {
            res.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_after_s),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        res
    }
}

/// Whether `e` (or an error it wraps) is the listener's body timeout: a client stopped sending
/// its body for longer than `client_body_timeout_ms`.
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
