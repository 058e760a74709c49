//! Keyward's HSM REST API: every `keyward-hsm` operation over HTTP/JSON, under `/v1`.
//!
//! - Authentication: `POST /v1/auth/login` returns a bearer token; send it as
//!   `Authorization: Bearer <token>`.
//! - Bytes are standard padded base64 (RFC 4648 §4) in JSON.
//! - Every error is `{ "code": "...", "message": "..." }`; the status comes from the code in
//!   one place ([`error::status_of`]); 5xx messages are generic.
//! - Request bodies are at most [`MAX_BODY_BYTES`].
//! - The OpenAPI 3.1 document is served at `/v1/openapi.json` and committed as
//!   `hsm-server/openapi.json`.
//!
//! The router needs no socket: tests call it with `tower::ServiceExt::oneshot`. A node serves
//! it over TLS with [`listener::serve`]; [`tls`] builds the API's TLS (its key in the HSM,
//! client-certificate login) and [`pki`] makes HSM-signed certificates and CSRs.
//!
//! ```no_run
//! # fn run(hsm: std::sync::Arc<keyward_hsm::Hsm>) {
//! let router = keyward_server::router(hsm);
//! # let _ = router; }
//! ```
//!
//! Where this crate sits among the others, the handshake path and the design decisions:
//! `docs/architecture.md` in the repository.

#![deny(missing_docs)]

pub mod api;
pub mod body_limit;
pub mod ca;
pub mod data_key;
pub mod error;
pub mod idempotency;
mod jwk;
pub mod listener;
pub mod login_guard;
mod node_error;
pub mod pki;
pub mod seal;
pub mod tickets;
pub mod tls;
pub mod versions;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, patch, post, put};
use axum::{Json, Router};
use body_limit::refuse_declared_over;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub use api::AppState;
pub use error::{ApiError, ErrorBody};
pub use node_error::NodeError;
pub use seal::{NodeStore, Opener, SealGate};

/// Largest request body, in bytes (16 MiB of data as base64 fits). Bodies are read only after
/// the caller is authenticated (a route's extractors check the session first).
pub const MAX_BODY_BYTES: usize = 24 * 1024 * 1024;

/// Largest body of `POST /v1/auth/login`, the one route that reads a body from callers not yet
/// authenticated, in bytes (user names are at most 64 bytes, passwords 256 characters).
pub const MAX_LOGIN_BODY_BYTES: usize = 4096;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document of the API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Keyward HSM API", description = "Key management, cryptography, users and audit of the Keyward HSM."),
    modifiers(&BearerAuth),
    paths(
        api::health, api::ready, api::login, api::logout,
        api::create_user, api::list_users, api::delete_user, api::change_password,
        api::generate_symmetric, api::generate_pair, api::import_public, api::list_keys, api::get_key,
        api::set_attribute, api::share, api::unshare, api::destroy, api::public_key, api::wrap, api::unwrap, api::derive,
        versions::rotate, versions::configure, versions::trim,
        api::sign, api::verify, api::encrypt, api::decrypt, api::hmac, api::random,
        data_key::data_key, data_key::data_key_unwrap,
        api::sign_batch, api::verify_batch, api::encrypt_batch, api::decrypt_batch,
        versions::rewrap, versions::rewrap_batch,
        api::audit_entries, api::audit_verify,
        seal::seal_status, seal::unseal, seal::seal, seal::rekey, seal::backup,
        seal::rotate, seal::rotation,
        tickets::ticket_keys,
        ca::api::create, ca::api::list, ca::api::get, ca::api::certificate, ca::api::issue,
        ca::api::certificates, ca::api::revoke, ca::api::crl_der, ca::api::publish_crl,
        ca::api::ocsp_post,
        ca::api::ocsp_get,
    )
)]
pub struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> (axum::http::StatusCode, Json<ErrorBody>) {
    (
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        Json(ErrorBody::new(
            keyward_api::ErrorCode::MethodNotAllowed,
            "this route does not take that method",
        )),
    )
}

/// The API's router over one HSM.
pub fn router(hsm: Arc<keyward_hsm::Hsm>) -> Router {
    use api::*;
    let cache = Arc::new(idempotency::IdempotencyCache::default());
    // The routes that create something honour Idempotency-Key.
    let creating = Router::new()
        .route("/v1/users", post(create_user))
        .route("/v1/keys/symmetric", post(generate_symmetric))
        .route("/v1/keys/asymmetric-pair", post(generate_pair))
        .route("/v1/keys/import-public", post(import_public))
        .route("/v1/keys/{handle}/share", post(share))
        .route("/v1/keys/{handle}/unwrap", post(unwrap))
        .route("/v1/keys/{handle}/derive", post(derive))
        .route("/v1/keys/{handle}/rotate", post(versions::rotate))
        .route_layer(axum::middleware::from_fn_with_state(
            (cache, hsm.clone()),
            idempotency::idempotency,
        ));
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/ready", get(ready))
        .route("/v1/openapi.json", get(openapi))
        .route(
            "/v1/auth/login",
            post(login)
                .layer(DefaultBodyLimit::max(MAX_LOGIN_BODY_BYTES))
                .layer(from_fn_with_state(
                    MAX_LOGIN_BODY_BYTES,
                    refuse_declared_over,
                )),
        )
        .route("/v1/auth/logout", post(logout))
        .route("/v1/users", get(list_users))
        .route("/v1/users/{username}", delete(delete_user))
        .route("/v1/users/{username}/password", put(change_password))
        .route("/v1/keys", get(list_keys))
        .route("/v1/keys/{handle}", get(get_key).delete(destroy))
        .route("/v1/keys/{handle}/attributes", patch(set_attribute))
        .route("/v1/keys/{handle}/share/{username}", delete(unshare))
        .route("/v1/keys/{handle}/public-key", get(public_key))
        .route("/v1/keys/{handle}/wrap", post(wrap))
        .route("/v1/keys/{handle}/config", patch(versions::configure))
        .route("/v1/keys/{handle}/trim", post(versions::trim))
        .route("/v1/crypto/sign", post(sign))
        .route("/v1/tls/ticket-keys", post(tickets::ticket_keys))
        .route("/v1/crypto/verify", post(verify))
        .route("/v1/crypto/encrypt", post(encrypt))
        .route("/v1/crypto/decrypt", post(decrypt))
        .route("/v1/crypto/hmac", post(hmac))
        .route("/v1/crypto/random", post(random))
        .route("/v1/crypto/data-key", post(data_key::data_key))
        .route(
            "/v1/crypto/data-key/unwrap",
            post(data_key::data_key_unwrap),
        )
        .route("/v1/crypto/sign/batch", post(sign_batch))
        .route("/v1/crypto/verify/batch", post(verify_batch))
        .route("/v1/crypto/encrypt/batch", post(encrypt_batch))
        .route("/v1/crypto/decrypt/batch", post(decrypt_batch))
        .route("/v1/crypto/rewrap", post(versions::rewrap))
        .route("/v1/crypto/rewrap/batch", post(versions::rewrap_batch))
        .route("/v1/audit", get(audit_entries))
        .route("/v1/audit/verify", post(audit_verify))
        .route("/v1/sys/seal", post(crate::seal::seal))
        .route("/v1/sys/rekey", post(crate::seal::rekey))
        .route("/v1/sys/backup", post(crate::seal::backup))
        .route("/v1/sys/rotate", post(crate::seal::rotate))
        .route("/v1/sys/rotation", get(crate::seal::rotation))
        .route("/v1/ca", post(ca::api::create).get(ca::api::list))
        .route("/v1/ca/{name}", get(ca::api::get))
        .route("/v1/ca/{name}/certificate", get(ca::api::certificate))
        .route("/v1/ca/{name}/issue", post(ca::api::issue))
        .route("/v1/ca/{name}/certificates", get(ca::api::certificates))
        .route(
            "/v1/ca/{name}/certificates/{serial}/revoke",
            post(ca::api::revoke),
        )
        .route(
            "/v1/ca/{name}/crl",
            get(ca::api::crl_der).post(ca::api::publish_crl),
        )
        .route(
            "/v1/ca/{name}/ocsp",
            post(ca::api::ocsp_post)
                .layer(DefaultBodyLimit::max(ca::ocsp::MAX_REQUEST_BYTES))
                .layer(from_fn_with_state(
                    ca::ocsp::MAX_REQUEST_BYTES,
                    refuse_declared_over,
                )),
        )
        .route("/v1/ca/{name}/ocsp/{*request}", get(ca::api::ocsp_get))
        .merge(creating)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(from_fn_with_state(MAX_BODY_BYTES, refuse_declared_over))
        .with_state(AppState {
            hsm,
            login: Arc::new(login_guard::LoginGuard::default()),
            ocsp: Arc::new(ca::ocsp::Cache::default()),
        })
}

#[cfg(test)]
mod data_key_tests;
#[cfg(test)]
mod tests;
