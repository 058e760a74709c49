//! `Idempotency-Key` on the creating routes (key generation, import, unwrap, derive, share,
//! user creation): a retried request with the same key, from the same bearer token, to the
//! same route gets the first response again instead of creating a second object. Entries live
//! 24 h (at most 10,000; the oldest go first). A request whose key is still being processed is
//! refused with 409 `idempotency_conflict`. 5xx responses are not kept, so such a call can be
//! retried. Responses of these routes hold descriptions of keys and users, never key bytes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

const HEADER: &str = "idempotency-key";
const TTL: Duration = Duration::from_secs(24 * 3600);
const MAX_ENTRIES: usize = 10_000;
const MAX_KEY_LEN: usize = 255;
const MAX_KEPT_BODY: usize = 1024 * 1024;

enum Entry {
    InFlight,
    Done {
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

fn scope(auth: &[u8], path: &str, key: &str) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(auth);
    ctx.update(&[0]);
    ctx.update(path.as_bytes());
    ctx.update(&[0]);
    ctx.update(key.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The middleware.
pub async fn idempotency(
    State(cache): State<Arc<IdempotencyCache>>,
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
    let auth = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    let id = scope(&auth, req.uri().path(), &key);
    {
        let mut guard = cache.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *guard;
        match map.get(&id) {
            Some(Entry::InFlight) => {
                let mut res = ApiError::BadRequest(String::new()).into_response();
                *res.status_mut() = StatusCode::CONFLICT;
                *res.body_mut() = Body::from(
                    r#"{"code":"idempotency_conflict","message":"a request with this Idempotency-Key is still being processed"}"#,
                );
                return res;
            }
            Some(Entry::Done {
                status,
                content_type,
                body,
                at,
            }) if at.elapsed() < TTL => {
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
        map.insert(id, Entry::InFlight);
        order.push_back(id);
        while order.len() > MAX_ENTRIES {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }
    let res = next.run(req).await;
    let (parts, body) = res.into_parts();
    let bytes = to_bytes(body, MAX_KEPT_BODY).await.unwrap_or_default();
    let mut guard = cache.inner.lock().unwrap_or_else(|e| e.into_inner());
    if parts.status.is_server_error() {
        guard.0.remove(&id);
    } else {
        guard.0.insert(
            id,
            Entry::Done {
                status: parts.status,
                content_type: parts.headers.get(axum::http::header::CONTENT_TYPE).cloned(),
                body: bytes.clone(),
                at: Instant::now(),
            },
        );
    }
    drop(guard);
    Response::from_parts(parts, Body::from(bytes))
}
