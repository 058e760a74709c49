//! Keyward's edge proxy: terminates TLS with keys held in the HSM and forwards HTTP (or, in
//! layer-4 mode, a byte stream).
//!
//! The proxy never holds private key bytes. Each configured certificate names an HSM key by
//! label; [`HsmSigningKey`] implements rustls's `SigningKey` over that key, so the TLS 1.3
//! CertificateVerify and TLS 1.2 ServerKeyExchange signatures are made by the HSM. Session
//! tickets are sealed with AES-256 key objects in the HSM, so every node sharing a store
//! resumes every other node's sessions.
//!
//! Per connection: an optional PROXY protocol v1/v2 header (from trusted sources only), the
//! TLS handshake (certificate by SNI: exact, wildcard, default; ECDSA/Ed25519 before RSA by
//! the client's signature schemes; optional client certificates), then by ALPN HTTP/1.1 (behind
//! a request-smuggling guard) or HTTP/2. Per request: routing by Host and path prefix to an
//! upstream pool (round robin or least requests, active and passive health checks, retries of
//! idempotent requests), `X-Forwarded-*` and `Forwarded` (RFC 7239), a request id, limits
//! (`413`, `431`), WebSocket upgrades spliced through. `502` for an unreachable upstream,
//! `503` when no server is healthy, `504` for a slow one. Prometheus metrics in [`metrics`],
//! served with `/healthz` and `/readyz` by [`admin::serve_admin`].
//!
//! ```no_run
//! # async fn run(config: keyward_config::Config, hsm: std::sync::Arc<keyward_hsm::Hsm>) -> Result<(), Box<dyn std::error::Error>> {
//! let session = hsm.service_session(keyward_hsm::PROXY_USER)?;
//! let proxy = keyward_proxy::Proxy::build(&config, &hsm, &session, keyward_proxy::NodeRole::Writer)?;
//! let reload = proxy.handle(); // reload.reload(&new_config) on SIGHUP
//! proxy.run(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```
//!
//! Where this crate sits among the others, the handshake path and the design decisions:
//! `docs/architecture.md` in the repository.

//! # Layout
//!
//! By layer, in the order a connection meets them: [`conn`] (accept, limits, PROXY protocol,
//! I/O wrappers, serving a connection) → `tls` (handshake, `ServerConfig`, certificate
//! resolver, HSM signer, tickets) → `http_layer` (smuggling guard, HTTP/2, the request
//! handler's check/route/rewrite/forward steps, and `respond`, where every status the proxy
//! chooses is made) → `upstream` (routes, pools, balancing, health, connections). `server`
//! holds the whole (build, reload, drain); [`admin`] and [`metrics`] are the operator's view.

#![deny(missing_docs)]

pub mod admin;
pub mod conn;
mod error;
mod http_layer;
mod listen;
pub mod metrics;
pub mod remote;
mod server;
mod tls;
mod upstream;

pub use error::Error;

/// Entry points for the fuzz targets in `fuzz/` (not a stable API).
#[doc(hidden)]
pub mod fuzzing {
    /// Parses a PROXY protocol header at the start of `data`; must never panic.
    pub fn proxy_header(data: &[u8]) -> bool {
        matches!(crate::conn::parse_proxy_header(data), Ok(Some(_)))
    }

    /// Runs the HTTP/1.1 smuggling guard over `data` cut into `split`-byte reads; returns how
    /// many request heads it judged acceptable. Must never panic, and the verdicts must not
    /// depend on `split`.
    pub fn h1_guard(data: &[u8], split: usize) -> usize {
        crate::http_layer::h1guard::inspect_all(data, split, 8192)
            .iter()
            .filter(|v| v.is_ok())
            .count()
    }

    /// Normalises a `Host` / `:authority` value; returns whether it was accepted. Must never
    /// panic, and an accepted value must normalise to itself (checked here with an assert).
    pub fn host_authority(raw: &str) -> bool {
        match crate::http_layer::authority::normalize(raw) {
            Ok(a) => {
                let again = crate::http_layer::authority::normalize(&a.to_string())
                    .expect("canonical form");
                assert_eq!(again.to_string(), a.to_string(), "not canonical: {raw:?}");
                true
            }
            Err(_) => false,
        }
    }
}
pub use server::{Keys, Proxy, ProxyHandle};
pub use tls::signer::{signing_key, HsmSigningKey};
pub use tls::tickets::NodeRole;
