//! `Idempotency-Key` on the creating routes (key generation, import, unwrap, derive, share,
//! user creation): a retried request with the same key, from the same authenticated user, to
//! the same route, with the same body, gets the first successful response again instead of
//! creating a second object. The same key with another body is refused with 422
//! `idempotency_key_reused`; one still being processed with 409 `idempotency_conflict`.
//! Unauthenticated requests are never answered from the cache. Entries live 24 h (at most
//! 10,000; the oldest go first); only 2xx responses are kept. Responses of these routes hold
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
