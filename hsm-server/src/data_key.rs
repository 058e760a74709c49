//! `POST /v1/crypto/data-key` and `POST /v1/crypto/data-key/unwrap`: envelope encryption's
//! data keys (`keyward-hsm`'s `Hsm::generate_data_key` and `Hsm::unwrap_data_key`, where the
//! policy is: the KEK's `wrap` to make one, `unwrap` to open one). Crypto-users; audited
//! (`crypto.data-key`, `crypto.data-key-unwrap`).

use axum::extract::State;
use axum::Json;
use keyward_api::{DataKey, DataKeyRequest, DataKeyUnwrapRequest, Plaintext, SecretBase64};
use keyward_hsm::{DataKeyMechanism, KeyHandle, KeyRef};

use crate::api::{b64, parse, ApiJson, AppState, Caller};
use crate::error::ApiResult;

#[utoipa::path(post, path = "/v1/crypto/data-key", tag = "crypto", security(("bearer" = [])), request_body = DataKeyRequest,
    responses((status = 200, body = DataKey), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// A fresh data key of `bytes` bytes made in the HSM, in plaintext and wrapped under the KEK
/// `key` (which needs `wrap`) with `aes-kwp` (RFC 5649) or `rsa-oaep-sha256` (RFC 8017 §7.1):
/// AWS KMS `GenerateDataKey`, Vault transit `datakey`.
pub async fn data_key(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<DataKeyRequest>,
) -> ApiResult<Json<DataKey>> {
    let m: DataKeyMechanism = parse(&r.mechanism)?;
    let kek = KeyRef {
        handle: KeyHandle(r.key),
        version: r.key_version,
    };
    let len = usize::try_from(r.bytes).unwrap_or(usize::MAX);
    let hsm = s.hsm.clone();
    // The audit entry writes the store (on a cluster, under its write lock).
    let key = tokio::task::spawn_blocking(move || hsm.generate_data_key(&c, kek, m, len))
        .await
        .map_err(|_| keyward_hsm::Error::Internal("data key task failed"))??;
    Ok(Json(key.into()))
}

#[utoipa::path(post, path = "/v1/crypto/data-key/unwrap", tag = "crypto", security(("bearer" = [])), request_body = DataKeyUnwrapRequest,
    responses((status = 200, body = Plaintext), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// The plaintext of a data key wrapped by `POST /v1/crypto/data-key`, unwrapped with version
/// `key_version` of the KEK `key` (which needs `unwrap`; for `rsa-oaep-sha256` the private
/// key). Bytes that do not authenticate are `400 invalid_input` "unwrap failed".
pub async fn data_key_unwrap(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<DataKeyUnwrapRequest>,
) -> ApiResult<Json<Plaintext>> {
    let m: DataKeyMechanism = parse(&r.mechanism)?;
    let wrapped = b64("wrapped", &r.wrapped)?;
    let kek = KeyRef {
        handle: KeyHandle(r.key),
        version: Some(r.key_version),
    };
    let hsm = s.hsm.clone();
    let value = tokio::task::spawn_blocking(move || hsm.unwrap_data_key(&c, kek, m, &wrapped))
        .await
        .map_err(|_| keyward_hsm::Error::Internal("data key task failed"))??;
    Ok(Json(Plaintext {
        plaintext: SecretBase64::encode(&value),
    }))
}
