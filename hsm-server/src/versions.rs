//! Key versions over HTTP (Vault transit style): rotate, version settings, trim, rewrap, and
//! the one place ciphertexts and signatures gain and lose their `kw:vN:` form.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /v1/keys/{handle}/rotate` | a new version (a pair: through its private key) |
//! | `PATCH /v1/keys/{handle}/config` | `min_decryption_version`, `min_encryption_version` |
//! | `POST /v1/keys/{handle}/trim` | destroy versions below `min_available_version` |
//! | `POST /v1/crypto/rewrap`, `/batch` | re-encrypt under the latest version inside the HSM |

use axum::extract::State;
use axum::Json;
use keyward_api::{
    Base64, Batch, BatchResults, Ciphertext, Key, KeyConfigRequest, RewrapRequest, TrimRequest,
    VersionedBase64,
};
use keyward_hsm::{EncryptMechanism, Hsm, KeyHandle, KeyRef, Session, VersionSettings, Versioned};

use crate::api::{b64, batch, parse, ApiJson, ApiPath, AppState, Caller};
use crate::error::{ApiError, ApiResult};

/// The key version and bytes of a ciphertext or signature field: its `kw:vN:` prefix, else
/// the request's `key_version`, else version 1 (see [`VersionedBase64`]).
pub(crate) fn versioned_input(
    field: &str,
    key: u64,
    value: &VersionedBase64,
    key_version: Option<u32>,
) -> ApiResult<(KeyRef, Vec<u8>)> {
    let (version, bytes) = value
        .decode_with(key_version)
        .map_err(|e| ApiError::BadRequest(format!("{field}: {e}")))?;
    Ok((KeyRef::version(KeyHandle(key), version), bytes))
}

/// A ciphertext or signature as the API answers it: bare base64, its key version, and the
/// `kw:vN:BASE64` form.
pub(crate) fn versioned_output(v: &Versioned) -> (Base64, u32, Option<VersionedBase64>) {
    (
        Base64::encode(&v.bytes),
        v.key_version,
        Some(VersionedBase64::new(v.key_version, &v.bytes)),
    )
}

#[utoipa::path(post, path = "/v1/keys/{handle}/rotate", tag = "keys", security(("bearer" = [])),
    params(("handle" = u64, Path, description = "Secret key, or the private key of a pair")),
    responses((status = 200, body = Key), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// Adds a new version to a key (Vault transit's `rotate`): new material under the same handle
/// and label, used by every new signature, MAC and ciphertext; older versions still decrypt
/// and verify down to `min_decryption_version`. A pair rotates through its private key; its
/// public key object gets the new public key. The owner only; the key must be `modifiable` and
/// must not wrap, unwrap or derive (400). A TLS certificate names one version's public key:
/// the proxy keeps signing with that version until it loads a certificate for the new one.
pub async fn rotate(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(h): ApiPath<u64>,
) -> ApiResult<Json<Key>> {
    let hsm = s.hsm.clone();
    // RSA key generation takes long: keep it off the async workers.
    let info = tokio::task::spawn_blocking(move || hsm.rotate_key(&c, KeyHandle(h)))
        .await
        .map_err(|_| ApiError::Hsm(keyward_hsm::Error::Internal("task")))??;
    Ok(Json(info.into()))
}

#[utoipa::path(patch, path = "/v1/keys/{handle}/config", tag = "keys", security(("bearer" = [])), request_body = KeyConfigRequest,
    params(("handle" = u64, Path, description = "Secret key, or the private key of a pair")),
    responses((status = 200, body = Key), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// Sets a key's `min_decryption_version` and `min_encryption_version` (Vault transit's key
/// `config`), for both halves of a pair. The owner only; the key must be `modifiable`.
pub async fn configure(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(h): ApiPath<u64>,
    ApiJson(r): ApiJson<KeyConfigRequest>,
) -> ApiResult<Json<Key>> {
    let settings = VersionSettings {
        min_decryption_version: r.min_decryption_version,
        min_encryption_version: r.min_encryption_version,
    };
    Ok(Json(
        s.hsm
            .configure_key_versions(&c, KeyHandle(h), settings)?
            .into(),
    ))
}

#[utoipa::path(post, path = "/v1/keys/{handle}/trim", tag = "keys", security(("bearer" = [])), request_body = TrimRequest,
    params(("handle" = u64, Path, description = "Secret key, or the private key of a pair")),
    responses((status = 200, body = Key), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// Destroys the material of every version below `min_available_version` (Vault transit's
/// `trim`), which may not be above `min_decryption_version` nor a set
/// `min_encryption_version`. There is no undo.
pub async fn trim(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(h): ApiPath<u64>,
    ApiJson(r): ApiJson<TrimRequest>,
) -> ApiResult<Json<Key>> {
    Ok(Json(
        s.hsm
            .trim_key_versions(&c, KeyHandle(h), r.min_available_version)?
            .into(),
    ))
}

pub(crate) fn do_rewrap(hsm: &Hsm, c: &Session, r: &RewrapRequest) -> ApiResult<Ciphertext> {
    let m: EncryptMechanism = parse(&r.mechanism)?;
    let (key, ct) = versioned_input("ciphertext", r.key, &r.ciphertext, r.key_version)?;
    let aad = r
        .aad
        .as_ref()
        .map(|v| b64("aad", v))
        .transpose()?
        .unwrap_or_default();
    let (ciphertext, key_version, versioned) = versioned_output(&hsm.rewrap(c, key, m, &ct, &aad)?);
    Ok(Ciphertext {
        ciphertext,
        key_version,
        versioned,
    })
}

#[utoipa::path(post, path = "/v1/crypto/rewrap", tag = "crypto", security(("bearer" = [])), request_body = RewrapRequest,
    responses((status = 200, body = Ciphertext), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// Re-encrypts a ciphertext under the key's latest version without the plaintext leaving the
/// HSM (Vault transit's `rewrap`); the key needs `decrypt` and `encrypt`. A version below
/// `min_decryption_version` is refused (403 `key_version_retired`).
pub async fn rewrap(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<RewrapRequest>,
) -> ApiResult<Json<Ciphertext>> {
    Ok(Json(do_rewrap(&s.hsm, &c, &r)?))
}

#[utoipa::path(post, path = "/v1/crypto/rewrap/batch", tag = "crypto", security(("bearer" = [])), request_body = Batch<RewrapRequest>,
    responses((status = 200, body = BatchResults<Ciphertext>), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)))]
/// Rewraps up to 1000 items; each has its own result or error.
pub async fn rewrap_batch(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<Batch<RewrapRequest>>,
) -> ApiResult<Json<BatchResults<Ciphertext>>> {
    Ok(Json(batch(&r.items, |i| do_rewrap(&s.hsm, &c, i))?))
}
