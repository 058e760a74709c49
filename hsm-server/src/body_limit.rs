//! A request that declares a body over its route's limit (`Content-Length`) is refused with
//! `413 payload_too_large` before any of the body is read, as nginx's `client_max_body_size`
//! does: nobody holds a connection for the body timeout by announcing a body that never
//! comes. Each route's limit is set twice, side by side: this layer, and axum's
//! `DefaultBodyLimit` for bodies sent without a length (chunked) or longer than declared.

use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Middleware (`axum::middleware::from_fn_with_state(max, refuse_declared_over)`): `413` when
/// the request's `Content-Length` is over `max` bytes, else the request goes on.
pub async fn refuse_declared_over(State(max): State<usize>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return ApiError::PayloadTooLarge.into_response();
    }
    next.run(req).await
}
