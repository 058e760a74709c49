//! `[api]`: the HSM REST API served beside the proxy, and the defences of its listener (the
//! proxy's, with the same defaults: timeouts and a connection limit). `keyward hsm serve` takes
//! the same settings as flags, with the same defaults ([`ApiLimits::default`]). On SIGTERM the
//! API drains with the proxy, within `[lifecycle] drain_timeout_ms`.

use std::net::SocketAddr;

use serde::Deserialize;

use crate::check::Context;
use crate::Error;

/// `[api]`: serve the HSM REST API (TLS with the HSM's `api-tls` key from `keyward init`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiConfig {
    /// `address`: `IP:port`, e.g. `127.0.0.1:9200`.
    pub address: SocketAddr,
    /// The listener's timeouts and connection limit (the other keys of `[api]`).
    pub limits: ApiLimits,
    /// `admin_lockout_s`: how long an admin stays locked after 5 consecutive failed logins,
    /// in seconds; `0` = until another admin (or `keyward recover reset-password`) sets a new
    /// password. Default 900 (15 minutes). Crypto-users stay locked until an admin resets
    /// them, whatever this says.
    pub admin_lockout_s: u64,
}

/// Default of `[api] admin_lockout_s` and `hsm serve --admin-lockout-s`: 15 minutes.
pub const DEFAULT_ADMIN_LOCKOUT_S: u64 = 900;

/// The API listener's defences. Every value is greater than 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiLimits {
    /// `handshake_timeout_ms`: a client must finish the TLS handshake within it. Default 10000.
    pub handshake_timeout_ms: u64,
    /// `client_header_timeout_ms`: an HTTP/1.1 request head must arrive whole within it
    /// (slowloris defence); the connection is closed otherwise. It also runs while a keep-alive
    /// connection waits for its next request. Default 30000.
    pub client_header_timeout_ms: u64,
    /// `client_body_timeout_ms`: longest wait between two reads of a request body; beyond it
    /// the request is answered `408 request_timeout`. Default 60000.
    pub client_body_timeout_ms: u64,
    /// `idle_timeout_ms`: a connection with no request in flight and no bytes moving for this
    /// long is closed (HTTP/2 gets GOAWAY). Default 60000.
    pub idle_timeout_ms: u64,
    /// `max_connections`: connections open at once; more wait in the kernel's backlog. Default
    /// 1024 (API clients keep few pooled connections; this stays under the common 1024
    /// open-file limit, so the limit acts before `accept` fails).
    pub max_connections: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            handshake_timeout_ms: 10_000,
            client_header_timeout_ms: 30_000,
            client_body_timeout_ms: 60_000,
            idle_timeout_ms: 60_000,
            max_connections: 1024,
        }
    }
}

impl ApiLimits {
    /// The first key whose value is 0 (each must be greater than 0), if any.
    pub fn zero_key(&self) -> Option<&'static str> {
        [
            ("handshake_timeout_ms", self.handshake_timeout_ms),
            ("client_header_timeout_ms", self.client_header_timeout_ms),
            ("client_body_timeout_ms", self.client_body_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("max_connections", self.max_connections as u64),
        ]
        .into_iter()
        .find_map(|(key, value)| (value == 0).then_some(key))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [api] table")]
pub(crate) struct RawApi {
    address: SocketAddr,
    handshake_timeout_ms: Option<u64>,
    client_header_timeout_ms: Option<u64>,
    client_body_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    max_connections: Option<usize>,
    admin_lockout_s: Option<u64>,
}

impl RawApi {
    /// The `[api]` settings; `cx` is the `api` table.
    pub(crate) fn validate(self, cx: &Context<'_>) -> Result<ApiConfig, Error> {
        let d = ApiLimits::default();
        let limits = ApiLimits {
            handshake_timeout_ms: self.handshake_timeout_ms.unwrap_or(d.handshake_timeout_ms),
            client_header_timeout_ms: self
                .client_header_timeout_ms
                .unwrap_or(d.client_header_timeout_ms),
            client_body_timeout_ms: self
                .client_body_timeout_ms
                .unwrap_or(d.client_body_timeout_ms),
            idle_timeout_ms: self.idle_timeout_ms.unwrap_or(d.idle_timeout_ms),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
        };
        if let Some(key) = limits.zero_key() {
            return Err(cx.invalid(key, "must be greater than 0"));
        }
        Ok(ApiConfig {
            address: self.address,
            limits,
            admin_lockout_s: self.admin_lockout_s.unwrap_or(DEFAULT_ADMIN_LOCKOUT_S),
        })
    }
}
