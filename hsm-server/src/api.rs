//! Handlers of `/v1`. Each returns `ApiResult<T>`; errors become responses in `error.rs` only.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use keyward_api::{
    AuditEntry, AuditQuery, AuditReport, Base64, Batch, BatchItem, BatchResults, Ciphertext,
    CreateUserRequest, DecryptRequest, DeriveRequest, DestroyQuery, EncryptRequest,
    GeneratePairRequest, GenerateSymmetricRequest, Health, ImportPublicRequest, Key, KeyPage,
    KeyPair, ListQuery, LoginRequest, LoginResponse, PasswordRequest, Plaintext, PublicKey,
    PublicKeyQuery, RandomBytes, RandomRequest, SecretBase64, SetAttributeRequest, ShareRequest,
    SignRequest, Signature, UnwrapRequest, User, Verified, VerifyRequest, WrapRequest, Wrapped,
};
use keyward_hsm::{
    AttributeName, AttributeValue, EcdhKdf, EcdhParams, EncryptMechanism, Hsm, KeyClass, KeyFilter,
    KeyHandle, KeyRef, KeySpec, Role, Session, SessionToken, SignInput, SignMechanism,
    SignatureEncoding, UnwrapTarget, WrapMechanism,
};

use crate::versions::{versioned_input, versioned_output};

use crate::error::{ApiError, ApiResult};
use crate::login_guard::LoginGuard;

/// Shared state of the API.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The HSM.
    pub hsm: Arc<Hsm>,
    /// Admission control and failure throttling of logins.
    pub login: Arc<LoginGuard>,
    /// Signed OCSP responses served again to requests without a nonce.
    pub ocsp: Arc<crate::ca::ocsp::Cache>,
}

/// The address of the connection's client, which the serving layer puts into every request
/// (for login throttling). Absent when the router is called without a socket.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub std::net::IpAddr);

/// Most items in one batch request.
pub const MAX_BATCH_ITEMS: usize = 1000;

/// The session of a connection whose TLS client certificate the server verified (mutual TLS);
/// the TLS layer puts it into every request of that connection.
#[derive(Clone, Debug)]
pub struct ClientCertificateSession(pub Session);

/// The caller's session, from `Authorization: Bearer <token>`, else from the connection's
/// client certificate.
pub struct Caller(pub Session);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION);
        if header.is_none() {
            // A connection authenticated by a client certificate carries its session.
            if let Some(ClientCertificateSession(s)) =
                parts.extensions.get::<ClientCertificateSession>()
            {
                if !s.is_active() {
                    return Err(ApiError::Hsm(keyward_hsm::Error::SessionInvalid));
                }
                return Ok(Caller(s.clone()));
            }
        }
        let value = header
            .and_then(|v| v.to_str().ok())
            // RFC 9110 §11.1: the scheme name is case-insensitive.
            .and_then(|v| {
                v.get(..7)
                    .filter(|p| p.eq_ignore_ascii_case("bearer "))
                    .map(|_| &v[7..])
            })
            .ok_or(ApiError::Unauthenticated)?;
        let token = SessionToken::from_string(value.trim().to_owned());
        Ok(Caller(state.hsm.session(&token)?))
    }
}

/// `Path` whose rejections are API errors (`{code, message}`), not plain text.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    Path<T>: FromRequestParts<S, Rejection = axum::extract::rejection::PathRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(r) => Err(ApiError::BadRequest(r.body_text())),
        }
    }
}

/// `Json` whose rejections are API errors (`{code, message}`), not plain text.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::PayloadTooLarge),
            Err(r) if crate::error::is_body_timeout(&r) => Err(ApiError::RequestTimeout),
            Err(r) => Err(ApiError::BadRequest(r.body_text())),
        }
    }
}

/// Decodes a base64 field, naming it in the error.
pub(crate) fn b64(field: &str, value: &Base64) -> ApiResult<Vec<u8>> {
    value.decode().map_err(|_| not_base64(field))
}

/// Decodes a secret base64 field (zeroized on drop), naming it in the error.
fn secret_b64(field: &str, value: &SecretBase64) -> ApiResult<zeroize::Zeroizing<Vec<u8>>> {
    value.decode().map_err(|_| not_base64(field))
}

fn not_base64(field: &str) -> ApiError {
    ApiError::BadRequest(format!("{field} is not valid standard padded base64"))
}

pub(crate) fn parse<T: std::str::FromStr<Err = keyward_hsm::Error>>(s: &str) -> ApiResult<T> {
    Ok(s.parse()?)
}

fn encoding(e: &Option<String>) -> ApiResult<SignatureEncoding> {
    match e.as_deref() {
        None | Some("der") => Ok(SignatureEncoding::Der),
        Some("raw") => Ok(SignatureEncoding::Raw),
        Some(o) => Err(ApiError::BadRequest(format!(
            "encoding {o:?}: use der or raw"
        ))),
    }
}

fn role(s: &str) -> ApiResult<Role> {
    Ok(s.parse()?)
}

#[utoipa::path(get, path = "/v1/health", tag = "health", responses((status = 200, body = Health)))]
/// Liveness: the process answers.
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

#[utoipa::path(get, path = "/v1/ready", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
/// Readiness: the HSM is unsealed and passed its self-tests (it cannot exist otherwise) and
/// its store can be reached: `200 {"status":"ready"}`. With a PostgreSQL store that cannot be
/// reached, `503 {"status":"store unavailable"}`: keys in memory still sign, encrypt and
/// decrypt, but writes (and logins) fail until it returns.
pub async fn ready(State(s): State<AppState>) -> (StatusCode, Json<Health>) {
    let hsm = s.hsm.clone();
    match tokio::task::spawn_blocking(move || hsm.check_store()).await {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(Health {
                status: "ready".into(),
            }),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "store unavailable".into(),
            }),
        ),
    }
}

#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before the next attempt")))))]
/// Logs in; returns a bearer token. A wrong password, an unknown user and a locked user all
/// answer `401 authentication_failed`. Repeated failures from one address or for one name, or
/// more concurrent logins than the server checks at once, answer `429 too_many_requests` with
/// `Retry-After` (seconds).
pub async fn login(
    State(s): State<AppState>,
    addr: Option<axum::Extension<ClientAddr>>,
    ApiJson(r): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let ttl = Duration::from_secs(r.ttl_seconds.unwrap_or(3600));
    if ttl.is_zero() {
        return Err(ApiError::BadRequest(
            "ttl_seconds must be at least 1".into(),
        ));
    }
    let admission = s.login.admit(addr.map(|a| a.0 .0), &r.username)?;
    let hsm = s.hsm.clone();
    let res = tokio::task::spawn_blocking(move || hsm.login(&r.username, &r.password.into(), ttl))
        .await
        .map_err(|_| ApiError::Hsm(keyward_hsm::Error::Internal("login task")))?;
    match &res {
        Ok(_) => admission.succeeded(),
        Err(keyward_hsm::Error::AuthenticationFailed) => admission.failed(),
        Err(_) => drop(admission),
    }
    let (session, token) = res?;
    Ok(Json(LoginResponse {
        token: keyward_api::SessionToken::new(token.expose().to_owned()),
        expires_in_seconds: ttl.as_secs(),
        username: session.user().to_owned(),
        role: session.role().into(),
    }))
}

#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = crate::error::ErrorBody)))]
/// Ends the session; its session keys are destroyed.
pub async fn logout(State(s): State<AppState>, Caller(c): Caller) -> StatusCode {
    s.hsm.logout(&c);
    StatusCode::NO_CONTENT
}

#[utoipa::path(post, path = "/v1/users", tag = "users", security(("bearer" = [])), request_body = CreateUserRequest,
    responses((status = 201, body = User), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
/// Creates a user (admin).
pub async fn create_user(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let role = role(&r.role)?;
    let hsm = s.hsm.clone();
    let info = tokio::task::spawn_blocking(move || {
        hsm.create_user(&c, &r.username, role, &r.password.into())
    })
    .await
    .map_err(|_| ApiError::Hsm(keyward_hsm::Error::Internal("task")))??;
    Ok((StatusCode::CREATED, Json(info.into())))
}

#[utoipa::path(get, path = "/v1/users", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = [User]), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
/// Lists users.
pub async fn list_users(
    State(s): State<AppState>,
    Caller(c): Caller,
) -> ApiResult<Json<Vec<User>>> {
    Ok(Json(
        s.hsm.list_users(&c)?.into_iter().map(Into::into).collect(),
    ))
}

#[utoipa::path(delete, path = "/v1/users/{username}", tag = "users", security(("bearer" = [])),
    params(("username" = String, Path, description = "User name")),
    responses((status = 204), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// Deletes a user (admin).
pub async fn delete_user(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    s.hsm.delete_user(&c, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/v1/users/{username}/password", tag = "users", security(("bearer" = [])), request_body = PasswordRequest,
    params(("username" = String, Path, description = "User name")),
    responses((status = 204), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 423, body = crate::error::ErrorBody)))]
/// Sets a password: an admin for anyone (this unlocks a locked user), a user for itself.
pub async fn change_password(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(r): ApiJson<PasswordRequest>,
) -> ApiResult<StatusCode> {
    let hsm = s.hsm.clone();
    let user = name.clone();
    tokio::task::spawn_blocking(move || hsm.change_password(&c, &name, &r.password.into()))
        .await
        .map_err(|_| ApiError::Hsm(keyward_hsm::Error::Internal("task")))??;
    // A new password starts the name's login throttling afresh.
    s.login.forget_user(&user);
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/keys/symmetric", tag = "keys", security(("bearer" = [])), request_body = GenerateSymmetricRequest,
    responses((status = 201, body = Key), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
/// Generates an AES or generic-secret key.
pub async fn generate_symmetric(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<GenerateSymmetricRequest>,
) -> ApiResult<(StatusCode, Json<Key>)> {
    let spec: KeySpec = parse(&r.spec)?;
    let k = s.hsm.generate_secret_key(&c, spec, &r.template.to_hsm()?)?;
    Ok((StatusCode::CREATED, Json(k.into())))
}

#[utoipa::path(post, path = "/v1/keys/asymmetric-pair", tag = "keys", security(("bearer" = [])), request_body = GeneratePairRequest,
    responses((status = 201, body = KeyPair), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
/// Generates a key pair.
pub async fn generate_pair(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<GeneratePairRequest>,
) -> ApiResult<(StatusCode, Json<KeyPair>)> {
    let spec: KeySpec = parse(&r.spec)?;
    let (private, public) = (r.private.to_hsm()?, r.public.to_hsm()?);
    let hsm = s.hsm.clone();
    // RSA key generation takes long: keep it off the async workers.
    let (p, u) =
        tokio::task::spawn_blocking(move || hsm.generate_key_pair(&c, spec, &private, &public))
            .await
            .map_err(|_| ApiError::Hsm(keyward_hsm::Error::Internal("task")))??;
    Ok((StatusCode::CREATED, Json(KeyPair::from((p, u)))))
}

#[utoipa::path(post, path = "/v1/keys/import-public", tag = "keys", security(("bearer" = [])), request_body = ImportPublicRequest,
    responses((status = 201, body = Key), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
/// Imports a public key (SPKI PEM or base64 DER).
pub async fn import_public(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<ImportPublicRequest>,
) -> ApiResult<(StatusCode, Json<Key>)> {
    let bytes = match (&r.pem, &r.der) {
        (Some(p), None) => p.as_bytes().to_vec(),
        (None, Some(d)) => b64("der", d)?,
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of pem and der".into(),
            ))
        }
    };
    let k = s.hsm.import_public_key(&c, &bytes, &r.template.to_hsm()?)?;
    Ok((StatusCode::CREATED, Json(k.into())))
}

#[utoipa::path(get, path = "/v1/keys", tag = "keys", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = KeyPage), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)))]
/// Lists keys the caller may see, with filters and pagination.
pub async fn list_keys(
    State(s): State<AppState>,
    Caller(c): Caller,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<KeyPage>> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut filter = KeyFilter {
        label: q.label,
        class: match q.class.as_deref() {
            None => None,
            Some("secret") => Some(KeyClass::Secret),
            Some("private") => Some(KeyClass::Private),
            Some("public") => Some(KeyClass::Public),
            Some(o) => {
                return Err(ApiError::BadRequest(format!(
                    "class {o:?}: use secret, private or public"
                )))
            }
        },
        key_type: q.key_type,
        attributes: Vec::new(),
        owner: q.owner,
    };
    for pair in q
        .attributes
        .iter()
        .flat_map(|a| a.split(','))
        .filter(|p| !p.is_empty())
    {
        let (n, v) = pair.split_once('=').ok_or_else(|| {
            ApiError::BadRequest(format!("attribute filter {pair:?}: use name=true|false"))
        })?;
        let v = match v {
            "true" => true,
            "false" => false,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "attribute filter {pair:?}: use name=true|false"
                )))
            }
        };
        filter.attributes.push((parse::<AttributeName>(n)?, v));
    }
    let page = s
        .hsm
        .list_keys(&c, &filter, q.after.map(KeyHandle), q.limit.unwrap_or(100))?;
    Ok(Json(KeyPage {
        keys: page.keys.into_iter().map(Into::into).collect(),
        next: page.next.map(|h| h.0),
    }))
}

#[utoipa::path(get, path = "/v1/keys/{handle}", tag = "keys", security(("bearer" = [])), params(("handle" = u64, Path, description = "Key handle")),
    responses((status = 200, body = Key), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// One key.
pub async fn get_key(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(h): ApiPath<u64>,
) -> ApiResult<Json<Key>> {
    Ok(Json(s.hsm.key_info(&c, KeyHandle(h))?.into()))
}

#[utoipa::path(patch, path = "/v1/keys/{handle}/attributes", tag = "keys", security(("bearer" = [])), request_body = SetAttributeRequest,
    params(("handle" = u64, Path, description = "Key handle")),
    responses((status = 200, body = Key), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// Changes one attribute.
pub async fn set_attribute(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(h): ApiPath<u64>,
    ApiJson(r): ApiJson<SetAttributeRequest>,
) -> ApiResult<Json<Key>> {
    let name: AttributeName = parse(&r.name)?;
    let value = match r.value {
        serde_json::Value::Bool(b) => AttributeValue::Bool(b),
        serde_json::Value::String(t) => AttributeValue::Text(t),
        _ => {
            return Err(ApiError::BadRequest(
                "value is true, false or a string".into(),
            ))
        }
    };
    Ok(Json(
        s.hsm.set_attribute(&c, KeyHandle(h), name, value)?.into(),
    ))
}

#[utoipa::path(post, path = "/v1/keys/{handle}/share", tag = "keys", security(("bearer" = [])), request_body = ShareRequest,
    params(("handle" = u64, Path, description = "Key handle")),
    responses((status = 200, body = Key), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// Shares a key for use only.
pub async fn share(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(h): ApiPath<u64>,
    ApiJson(r): ApiJson<ShareRequest>,
) -> ApiResult<Json<Key>> {
    Ok(Json(s.hsm.share_key(&c, KeyHandle(h), &r.username)?.into()))
}

#[utoipa::path(delete, path = "/v1/keys/{handle}/share/{username}", tag = "keys", security(("bearer" = [])),
    params(("handle" = u64, Path, description = "Key handle"), ("username" = String, Path, description = "User")),
    responses((status = 200, body = Key), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// Stops sharing a key.
pub async fn unshare(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath((h, user)): ApiPath<(u64, String)>,
) -> ApiResult<Json<Key>> {
    Ok(Json(s.hsm.unshare_key(&c, KeyHandle(h), &user)?.into()))
}

#[utoipa::path(delete, path = "/v1/keys/{handle}", tag = "keys", security(("bearer" = [])), params(("handle" = u64, Path, description = "Key handle"), DestroyQuery),
    responses((status = 204), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// Destroys a key: its owner (the key must be `destroyable`), or an admin with
/// `force_by_admin=true` (any user's token key, `destroyable` or not; audited as
/// `key.destroy-by-admin`).
pub async fn destroy(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(h): ApiPath<u64>,
    q: Result<Query<DestroyQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<StatusCode> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if q.force_by_admin.unwrap_or(false) {
        s.hsm.destroy_key_as_admin(&c, KeyHandle(h))?;
    } else {
        s.hsm.destroy_key(&c, KeyHandle(h))?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/keys/{handle}/public-key", tag = "keys", security(("bearer" = [])), params(("handle" = u64, Path, description = "Key handle"), PublicKeyQuery),
    responses((status = 200, body = PublicKey), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// The public key as PEM, base64 DER and JWK: of the latest version, or of `version` (any
/// version the key still holds).
pub async fn public_key(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(h): ApiPath<u64>,
    q: Result<Query<PublicKeyQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<PublicKey>> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let key = KeyRef {
        handle: KeyHandle(h),
        version: q.version,
    };
    let spki = s.hsm.public_key_spki_at(&c, key)?;
    let spec = s.hsm.key_info(&c, KeyHandle(h))?.spec;
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        Base64::encode(&spki)
            .as_str()
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    );
    Ok(Json(PublicKey {
        pem,
        der: Base64::encode(&spki),
        jwk: crate::jwk::jwk(spec, &spki),
    }))
}

#[utoipa::path(post, path = "/v1/keys/{handle}/wrap", tag = "keys", security(("bearer" = [])), request_body = WrapRequest,
    params(("handle" = u64, Path, description = "Wrapping key handle")),
    responses((status = 200, body = Wrapped), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// Wraps (exports) a key under the wrapping key `{handle}`.
pub async fn wrap(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(h): ApiPath<u64>,
    ApiJson(r): ApiJson<WrapRequest>,
) -> ApiResult<Json<Wrapped>> {
    let m: WrapMechanism = parse(&r.mechanism)?;
    let out = s.hsm.wrap_key(&c, KeyHandle(h), m, KeyHandle(r.target))?;
    Ok(Json(Wrapped {
        wrapped: Base64::encode(&out),
    }))
}

#[utoipa::path(post, path = "/v1/keys/{handle}/unwrap", tag = "keys", security(("bearer" = [])), request_body = UnwrapRequest,
    params(("handle" = u64, Path, description = "Unwrapping key handle")),
    responses((status = 201, body = Key), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// Unwraps (imports) a key under the unwrapping key `{handle}`.
pub async fn unwrap(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(h): ApiPath<u64>,
    ApiJson(r): ApiJson<UnwrapRequest>,
) -> ApiResult<(StatusCode, Json<Key>)> {
    let m: WrapMechanism = parse(&r.mechanism)?;
    let target = match &r.secret_spec {
        Some(spec) => UnwrapTarget::Secret(parse(spec)?),
        None => UnwrapTarget::Private,
    };
    let wrapped = b64("wrapped", &r.wrapped)?;
    let k = s
        .hsm
        .unwrap_key(&c, KeyHandle(h), m, &wrapped, target, &r.template.to_hsm()?)?;
    Ok((StatusCode::CREATED, Json(k.into())))
}

#[utoipa::path(post, path = "/v1/keys/{handle}/derive", tag = "keys", security(("bearer" = [])), request_body = DeriveRequest,
    params(("handle" = u64, Path, description = "EC private key handle")),
    responses((status = 201, body = Key), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// ECDH + HKDF-SHA256 into a new secret key.
pub async fn derive(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiPath(h): ApiPath<u64>,
    ApiJson(r): ApiJson<DeriveRequest>,
) -> ApiResult<(StatusCode, Json<Key>)> {
    let spec: KeySpec = parse(&r.spec)?;
    let peer = b64("peer_public", &r.peer_public)?;
    let salt = r
        .salt
        .as_ref()
        .map(|v| b64("salt", v))
        .transpose()?
        .unwrap_or_default();
    let info = r
        .info
        .as_ref()
        .map(|v| b64("info", v))
        .transpose()?
        .unwrap_or_default();
    let kdf = match r.kdf.as_deref() {
        None | Some("hkdf-sha256") => EcdhKdf::HkdfSha256,
        Some("none") => EcdhKdf::Null,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "kdf {other:?}: use hkdf-sha256 or none"
            )))
        }
    };
    let k = s.hsm.derive_key_with(
        &c,
        KeyHandle(h),
        &EcdhParams {
            peer_public: &peer,
            salt: &salt,
            info: &info,
        },
        kdf,
        spec,
        &r.template.to_hsm()?,
    )?;
    Ok((StatusCode::CREATED, Json(k.into())))
}

fn message_or_digest<'a>(
    message: &'a Option<Vec<u8>>,
    digest: &'a Option<Vec<u8>>,
) -> ApiResult<SignInput<'a>> {
    match (message, digest) {
        (Some(m), None) => Ok(SignInput::Message(m)),
        (None, Some(d)) => Ok(SignInput::Digest(d)),
        _ => Err(ApiError::BadRequest(
            "give exactly one of message and digest".into(),
        )),
    }
}

pub(crate) fn do_sign(hsm: &Hsm, c: &Session, r: &SignRequest) -> ApiResult<Signature> {
    let m: SignMechanism = parse(&r.mechanism)?;
    let message = r.message.as_ref().map(|v| b64("message", v)).transpose()?;
    let digest = r.digest.as_ref().map(|v| b64("digest", v)).transpose()?;
    let key = KeyRef {
        handle: KeyHandle(r.key),
        version: r.key_version,
    };
    let sig = hsm.sign_at(
        c,
        key,
        m,
        message_or_digest(&message, &digest)?,
        encoding(&r.encoding)?,
    )?;
    let (signature, key_version, versioned) = versioned_output(&sig);
    Ok(Signature {
        signature,
        key_version,
        versioned,
    })
}

pub(crate) fn do_verify(hsm: &Hsm, c: &Session, r: &VerifyRequest) -> ApiResult<Verified> {
    let m: SignMechanism = parse(&r.mechanism)?;
    let message = r.message.as_ref().map(|v| b64("message", v)).transpose()?;
    let digest = r.digest.as_ref().map(|v| b64("digest", v)).transpose()?;
    let (key, sig) = versioned_input("signature", r.key, &r.signature, r.key_version)?;
    let valid = hsm.verify_at(
        c,
        key,
        m,
        message_or_digest(&message, &digest)?,
        &sig,
        encoding(&r.encoding)?,
    )?;
    Ok(Verified { valid })
}

pub(crate) fn do_encrypt(hsm: &Hsm, c: &Session, r: &EncryptRequest) -> ApiResult<Ciphertext> {
    let m: EncryptMechanism = parse(&r.mechanism)?;
    let pt = secret_b64("plaintext", &r.plaintext)?;
    let aad = r
        .aad
        .as_ref()
        .map(|v| b64("aad", v))
        .transpose()?
        .unwrap_or_default();
    let iv = r.iv.as_ref().map(|v| b64("iv", v)).transpose()?;
    let key = KeyRef {
        handle: KeyHandle(r.key),
        version: r.key_version,
    };
    let (ciphertext, key_version, versioned) =
        versioned_output(&hsm.encrypt_at_with_iv(c, key, m, &pt, &aad, iv.as_deref())?);
    Ok(Ciphertext {
        ciphertext,
        key_version,
        versioned,
    })
}

pub(crate) fn do_decrypt(hsm: &Hsm, c: &Session, r: &DecryptRequest) -> ApiResult<Plaintext> {
    let m: EncryptMechanism = parse(&r.mechanism)?;
    let (key, ct) = versioned_input("ciphertext", r.key, &r.ciphertext, r.key_version)?;
    let aad = r
        .aad
        .as_ref()
        .map(|v| b64("aad", v))
        .transpose()?
        .unwrap_or_default();
    Ok(Plaintext {
        plaintext: SecretBase64::encode(&hsm.decrypt_at(c, key, m, &ct, &aad)?),
    })
}

#[utoipa::path(post, path = "/v1/crypto/sign", tag = "crypto", security(("bearer" = [])), request_body = SignRequest,
    responses((status = 200, body = Signature), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// Signs (or MACs) a message or digest.
pub async fn sign(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<SignRequest>,
) -> ApiResult<Json<Signature>> {
    Ok(Json(do_sign(&s.hsm, &c, &r)?))
}

#[utoipa::path(post, path = "/v1/crypto/verify", tag = "crypto", security(("bearer" = [])), request_body = VerifyRequest,
    responses((status = 200, body = Verified), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// Verifies a signature or MAC.
pub async fn verify(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<VerifyRequest>,
) -> ApiResult<Json<Verified>> {
    Ok(Json(do_verify(&s.hsm, &c, &r)?))
}

#[utoipa::path(post, path = "/v1/crypto/encrypt", tag = "crypto", security(("bearer" = [])), request_body = EncryptRequest,
    responses((status = 200, body = Ciphertext), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// Encrypts.
pub async fn encrypt(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<EncryptRequest>,
) -> ApiResult<Json<Ciphertext>> {
    Ok(Json(do_encrypt(&s.hsm, &c, &r)?))
}

#[utoipa::path(post, path = "/v1/crypto/decrypt", tag = "crypto", security(("bearer" = [])), request_body = DecryptRequest,
    responses((status = 200, body = Plaintext), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// Decrypts.
pub async fn decrypt(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<DecryptRequest>,
) -> ApiResult<Json<Plaintext>> {
    Ok(Json(do_decrypt(&s.hsm, &c, &r)?))
}

#[utoipa::path(post, path = "/v1/crypto/hmac", tag = "crypto", security(("bearer" = [])), request_body = SignRequest,
    responses((status = 200, body = Signature), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
/// Computes an HMAC (`hmac-sha256/384/512` only).
pub async fn hmac(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<SignRequest>,
) -> ApiResult<Json<Signature>> {
    if !parse::<SignMechanism>(&r.mechanism)?.is_hmac() {
        return Err(ApiError::BadRequest(
            "hmac takes hmac-sha256, hmac-sha384 or hmac-sha512".into(),
        ));
    }
    Ok(Json(do_sign(&s.hsm, &c, &r)?))
}

#[utoipa::path(post, path = "/v1/crypto/random", tag = "crypto", security(("bearer" = [])), request_body = RandomRequest,
    responses((status = 200, body = RandomBytes), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)))]
/// Random bytes from the HSM's DRBG.
pub async fn random(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<RandomRequest>,
) -> ApiResult<Json<RandomBytes>> {
    Ok(Json(RandomBytes {
        bytes: SecretBase64::encode(&s.hsm.random(&c, r.length)?),
    }))
}

pub(crate) fn batch<I, O>(
    items: &[I],
    f: impl Fn(&I) -> ApiResult<O>,
) -> ApiResult<BatchResults<O>> {
    if items.is_empty() || items.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::BadRequest(format!(
            "a batch has 1 to {MAX_BATCH_ITEMS} items"
        )));
    }
    Ok(BatchResults {
        results: items
            .iter()
            .map(|i| match f(i) {
                Ok(v) => BatchItem {
                    ok: Some(v),
                    error: None,
                },
                Err(e) => BatchItem {
                    ok: None,
                    error: Some(e.body().1),
                },
            })
            .collect(),
    })
}

#[utoipa::path(post, path = "/v1/crypto/sign/batch", tag = "crypto", security(("bearer" = [])), request_body = Batch<SignRequest>,
    responses((status = 200, body = BatchResults<Signature>), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)))]
/// Signs up to 1000 items; each has its own result or error.
pub async fn sign_batch(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<Batch<SignRequest>>,
) -> ApiResult<Json<BatchResults<Signature>>> {
    Ok(Json(batch(&r.items, |i| do_sign(&s.hsm, &c, i))?))
}

#[utoipa::path(post, path = "/v1/crypto/verify/batch", tag = "crypto", security(("bearer" = [])), request_body = Batch<VerifyRequest>,
    responses((status = 200, body = BatchResults<Verified>), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)))]
/// Verifies up to 1000 items.
pub async fn verify_batch(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<Batch<VerifyRequest>>,
) -> ApiResult<Json<BatchResults<Verified>>> {
    Ok(Json(batch(&r.items, |i| do_verify(&s.hsm, &c, i))?))
}

#[utoipa::path(post, path = "/v1/crypto/encrypt/batch", tag = "crypto", security(("bearer" = [])), request_body = Batch<EncryptRequest>,
    responses((status = 200, body = BatchResults<Ciphertext>), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)))]
/// Encrypts up to 1000 items.
pub async fn encrypt_batch(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<Batch<EncryptRequest>>,
) -> ApiResult<Json<BatchResults<Ciphertext>>> {
    Ok(Json(batch(&r.items, |i| do_encrypt(&s.hsm, &c, i))?))
}

#[utoipa::path(post, path = "/v1/crypto/decrypt/batch", tag = "crypto", security(("bearer" = [])), request_body = Batch<DecryptRequest>,
    responses((status = 200, body = BatchResults<Plaintext>), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody)))]
/// Decrypts up to 1000 items.
pub async fn decrypt_batch(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<Batch<DecryptRequest>>,
) -> ApiResult<Json<BatchResults<Plaintext>>> {
    Ok(Json(batch(&r.items, |i| do_decrypt(&s.hsm, &c, i))?))
}

#[utoipa::path(get, path = "/v1/audit", tag = "audit", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = [AuditEntry]), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
/// Audit entries (admin).
pub async fn audit_entries(
    State(s): State<AppState>,
    Caller(c): Caller,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit is 1 to 1000".into()));
    }
    let entries = s.hsm.audit_entries(&c, q.from.unwrap_or(1), limit)?;
    Ok(Json(entries.into_iter().map(AuditEntry::from).collect()))
}

#[utoipa::path(post, path = "/v1/audit/verify", tag = "audit", security(("bearer" = [])),
    responses((status = 200, body = AuditReport), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
/// Checks the audit hash chain (admin).
pub async fn audit_verify(
    State(s): State<AppState>,
    Caller(c): Caller,
) -> ApiResult<Json<AuditReport>> {
    Ok(Json(s.hsm.verify_audit(&c)?.into()))
}
