//! `POST /v1/tls/ticket-keys`: a remote proxy fleet's session-ticket keys, made by the HSM and
//! released to their owner encrypted to a key the proxy holds (`keyward-hsm`'s
//! `Hsm::release_ticket_keys`). Crypto-users only; audited (`tls.ticket-keys-release`).

use axum::extract::State;
use axum::Json;
use keyward_api::{Base64, TicketKey, TicketKeys, TicketKeysRequest};

use crate::api::{b64, ApiJson, AppState, Caller};
use crate::error::ApiResult;

#[utoipa::path(post, path = "/v1/tls/ticket-keys", tag = "keys", security(("bearer" = [])), request_body = TicketKeysRequest,
    responses((status = 200, body = TicketKeys), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
/// The caller's TLS session-ticket keys for the previous, current and next rotation periods
/// (made when missing; older ones destroyed), each AES-256 value encrypted with RSAES-OAEP
/// (SHA-256, RFC 8017 §7.1) to `recipient_public_key`, the key's name as the OAEP label. What
/// `keyward serve` in remote mode calls to share ticket keys across its fleet.
pub async fn ticket_keys(
    State(s): State<AppState>,
    Caller(c): Caller,
    ApiJson(r): ApiJson<TicketKeysRequest>,
) -> ApiResult<Json<TicketKeys>> {
    let recipient = b64("recipient_public_key", &r.recipient_public_key)?;
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let hsm = s.hsm.clone();
    let rotation_s = r.rotation_s;
    // Making a key writes the store (on a cluster, under its write lock).
    let keys = tokio::task::spawn_blocking(move || {
        hsm.release_ticket_keys(&c, rotation_s, now_s, &recipient)
    })
    .await
    .map_err(|_| keyward_hsm::Error::Internal("ticket key release task failed"))??;
    Ok(Json(TicketKeys {
        period: now_s / rotation_s.max(1),
        mechanism: "rsa-oaep-sha256".into(),
        keys: keys
            .into_iter()
            .map(|k| TicketKey {
                period: k.period,
                handle: k.handle.0,
                name: Base64::encode(&k.name),
                wrapped_key: Base64::encode(&k.wrapped),
            })
            .collect(),
    }))
}
