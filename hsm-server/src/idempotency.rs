//! `Idempotency-Key` on the creating routes (key generation, import, unwrap, derive, rotate, share,
//! user creation): a retried request with the same key, from the same authenticated user, to
//! the same route, with the same body, gets the first successful response again instead of
//! creating a second object. The same key with another body is refused with 422
//! `idempotency_key_reused`; one still being processed with 409 `idempotency_conflict`.
//! Unauthenticated requests are never answered from the cache. Entries live 24 h (at most
//! 10,000 per node; the oldest go first); only 2xx responses are kept. On a cluster store the
//! node also keeps each 2xx answer in the database before sending it (`Hsm::remember`, sealed
//! under the data key), and a node that does not know a key asks there first, so a retry on
//! another node is answered the same. Responses of these routes hold
//! descriptions of keys and users, never key bytes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use keyward_api::{ErrorBody, ErrorCode};

use crate::error::ApiError;

const HEADER: &str = "idempotency-key";
const TTL: Duration = Duration::from_secs(24 * 3600);
const MAX_ENTRIES: usize = 10_000;
const MAX_KEY_LEN: usize = 255;
const MAX_KEPT_BODY: usize = 1024 * 1024;

enum Entry {
    InFlight([u8; 32]),
    Done {
        body_hash: [u8; 32],
        status: StatusCode,
        content_type: Option<HeaderValue>,
        body: bytes::Bytes,
        at: Instant,
    },
}

/// Entries by scope, and scopes in insertion order (for eviction).
type Entries = (HashMap<[u8; 32], Entry>, VecDeque<[u8; 32]>);

/// The remembered responses.
#[derive(Default)]
pub struct IdempotencyCache {
    inner: Mutex<Entries>,
}

impl std::fmt::Debug for IdempotencyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdempotencyCache(..)")
    }
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn error(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    (status, axum::Json(ErrorBody::new(code, message))).into_response()
}

/// The user of an authenticated request: its bearer session, or the session its TLS client
/// certificate logged in; `None` for anonymous or expired ones.
fn request_user(req: &Request, hsm: &keyward_hsm::Hsm) -> Option<String> {
    let bearer = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.get(..7)
                .filter(|p| p.eq_ignore_ascii_case("bearer "))
                .map(|_| v[7..].trim().to_owned())
        });
    match bearer {
        Some(t) => hsm
            .session(&keyward_hsm::SessionToken::from_string(t))
            .ok()
            .map(|s| s.user().to_owned()),
        None => req
            .extensions()
            .get::<crate::api::ClientCertificateSession>()
            .filter(|s| s.0.is_active())
            .map(|s| s.0.user().to_owned()),
    }
}

/// The middleware; its state is the cache and the HSM (to authenticate before replaying).
pub async fn idempotency(
    State((cache, hsm)): State<(Arc<IdempotencyCache>, Arc<keyward_hsm::Hsm>)>,
    req: Request,
    next: Next,
) -> Response {
    let Some(key) = req.headers().get(HEADER).cloned() else {
        return next.run(req).await;
    };
    let key = match key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= MAX_KEY_LEN => k.to_owned(),
        _ => {
            return ApiError::BadRequest(format!(
                "Idempotency-Key is 1 to {MAX_KEY_LEN} visible ASCII characters"
            ))
            .into_response()
        }
    };
    // Who is asking: replays are per authenticated user, never for anonymous requests.
    let user = request_user(&req, &hsm);
    let Some(user) = user else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, crate::MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) if crate::error::is_body_timeout(&e) => {
            return ApiError::RequestTimeout.into_response()
        }
        Err(_) => return ApiError::PayloadTooLarge.into_response(),
    };
    let body_hash = sha256(&[&bytes]);
    let id = sha256(&[user.as_bytes(), parts.uri.path().as_bytes(), key.as_bytes()]);
    // On a cluster store, another node may have answered this request already.
    let known = cache
        .inner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .0
        .contains_key(&id);
    if !known {
        if let Some(entry) = recall(&hsm, &id).await {
            let mut guard = cache.inner.lock().unwrap_or_else(|e| e.into_inner());
            guard.0.insert(id, entry);
            guard.1.push_back(id);
        }
    }
    {
        let mut guard = cache.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *guard;
        match map.get(&id) {
            Some(Entry::InFlight(h)) => {
                return if *h == body_hash {
                    error(
                        StatusCode::CONFLICT,
                        ErrorCode::IdempotencyConflict,
                        "a request with this Idempotency-Key is still being processed",
                    )
                } else {
                    error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        ErrorCode::IdempotencyKeyReused,
                        "this Idempotency-Key was used with another request body",
                    )
                };
            }
            Some(Entry::Done {
                body_hash: h,
                status,
                content_type,
                body,
                at,
            }) if at.elapsed() < TTL => {
                if *h != body_hash {
                    return error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        ErrorCode::IdempotencyKeyReused,
                        "this Idempotency-Key was used with another request body",
                    );
                }
                let mut res = Response::new(Body::from(body.clone()));
                *res.status_mut() = *status;
                if let Some(ct) = content_type {
                    res.headers_mut()
                        .insert(axum::http::header::CONTENT_TYPE, ct.clone());
                }
                res.headers_mut()
                    .insert("idempotent-replay", HeaderValue::from_static("true"));
                return res;
            }
            _ => {}
        }
        map.insert(id, Entry::InFlight(body_hash));
        order.push_back(id);
        while order.len() > MAX_ENTRIES {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }
    let res = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (parts, body) = res.into_parts();
    let bytes = to_bytes(body, MAX_KEPT_BODY).await.unwrap_or_default();
    if parts.status.is_success() {
        // Before the answer leaves: a retry that reaches another node finds it there.
        remember(
            &hsm,
            &id,
            &Shared {
                body_hash: hex::encode(body_hash),
                status: parts.status.as_u16(),
                content_type: parts
                    .headers
                    .get(axum::http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                body: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes),
            },
        )
        .await;
    }
    let mut guard = cache.inner.lock().unwrap_or_else(|e| e.into_inner());
    if parts.status.is_success() {
        guard.0.insert(
            id,
            Entry::Done {
                body_hash,
                status: parts.status,
                content_type: parts.headers.get(axum::http::header::CONTENT_TYPE).cloned(),
                body: bytes.clone(),
                at: Instant::now(),
            },
        );
    } else {
        guard.0.remove(&id);
    }
    drop(guard);
    Response::from_parts(parts, Body::from(bytes))
}

/// A remembered response as every node of a cluster store finds it (`Hsm::remember`, sealed
/// under the data key, kept [`TTL`]).
#[derive(serde::Serialize, serde::Deserialize)]
struct Shared {
    /// SHA-256 of the request body, hex.
    body_hash: String,
    status: u16,
    content_type: Option<String>,
    /// The response body, standard base64.
    body: String,
}

/// The entry another node of a cluster store remembered for `id`, if any (none on a store of
/// one process, or when the store cannot be read: the request then runs here).
async fn recall(hsm: &Arc<keyward_hsm::Hsm>, id: &[u8; 32]) -> Option<Entry> {
    let (hsm, id) = (hsm.clone(), hex::encode(id));
    let plain = tokio::task::spawn_blocking(move || hsm.recall(&id))
        .await
        .ok()?
        .map_err(|e| tracing::warn!(error = %e, "cannot read remembered idempotent responses"))
        .ok()??;
    let shared: Shared = serde_json::from_slice(&plain).ok()?;
    let mut body_hash = [0u8; 32];
    hex::decode_to_slice(&shared.body_hash, &mut body_hash).ok()?;
    Some(Entry::Done {
        body_hash,
        status: StatusCode::from_u16(shared.status).ok()?,
        content_type: shared
            .content_type
            .and_then(|c| HeaderValue::from_str(&c).ok()),
        body: base64::Engine::decode(&base64::engine::general_purpose::STANDARD, shared.body)
            .ok()?
            .into(),
        at: Instant::now(),
    })
}

/// Remembers a successful response for the other nodes of a cluster store (a failure is
/// logged: the response still goes out, and a retry elsewhere would run again).
async fn remember(hsm: &Arc<keyward_hsm::Hsm>, id: &[u8; 32], shared: &Shared) {
    let Ok(value) = serde_json::to_vec(shared) else {
        return;
    };
    let (hsm, id) = (hsm.clone(), hex::encode(id));
    let done = tokio::task::spawn_blocking(move || hsm.remember(&id, &value, TTL)).await;
    if let Ok(Err(e)) = done {
        tracing::warn!(error = %e, "cannot share an idempotent response with the other nodes");
    }
}
